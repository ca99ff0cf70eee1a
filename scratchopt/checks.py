"""Argument checks, written once: every module validates its arguments with these.

One message style everywhere: what the argument must be, then what was received::

    `momentum` must be a number. Received: momentum='0.9' (str)

A value of the wrong *kind* (a str where a number goes, a list where an array goes) is a
``TypeError``; a value of the right kind out of range is a ``ValueError``. Where Keras
raises another type for the same input, the caller says so and raises Keras's.

``Configurable`` gives ``from_config`` and ``__repr__`` to every class with a
``get_config``, so that each rebuilds from its config and prints as the call that makes it.

Examples
--------
>>> from scratchopt import checks
>>> checks.number("beta_1", 0.9)
0.9
>>> checks.number("beta_1", None)
Traceback (most recent call last):
...
TypeError: `beta_1` must be a number. Received: beta_1=None (NoneType)
>>> checks.number("rate", 1.5, at_most=1)
Traceback (most recent call last):
...
ValueError: `rate` must be <= 1. Received: rate=1.5 (float)
>>> checks.generator(-1).integers(10) == checks.generator(2**64 - 1).integers(10)
np.True_
"""

import inspect
import math
import numbers

import numpy as np

#: The float dtypes that parameters, layers and penalties work in.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def received(name, value):
    """The closing part of every message: ``Received: name=value (type)``."""
    return f"Received: {name}={value!r} ({type(value).__name__})"


def is_real(value):
    """A real number that is not a bool (Python or NumPy: ``1``, ``0.5``, ``np.float32(2)``)."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def number(name, value, *, at_least=None, at_most=None, above=None, finite=False, what="a number"):
    """``value`` if it is a real number in range, else ``TypeError`` / ``ValueError``.

    ``at_least``/``at_most`` are inclusive bounds, ``above`` an exclusive one; NaN fails
    every bound. ``finite`` refuses ±inf and NaN.
    """
    if not is_real(value):
        raise TypeError(f"`{name}` must be {what}. {received(name, value)}")
    if finite and not math.isfinite(value):
        raise ValueError(f"`{name}` must be finite. {received(name, value)}")
    for ok, bound in ((at_least is None or value >= at_least, f">= {at_least}"),
                      (at_most is None or value <= at_most, f"<= {at_most}"),
                      (above is None or value > above, f"> {above}")):
        if not ok:
            raise ValueError(f"`{name}` must be {bound}. {received(name, value)}")
    return value


def positive(name, value):
    """A real number > 0 (NaN is refused)."""
    return number(name, value, above=0, what="a positive number")


def integer(name, value, *, at_least=None):
    """An int (Python or NumPy, not a bool), optionally ``>= at_least``."""
    if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be an integer. {received(name, value)}")
    if at_least is not None and value < at_least:
        raise ValueError(f"`{name}` must be >= {at_least}. {received(name, value)}")
    return int(value)


def flag(name, value):
    """True or False (a NumPy bool too); Keras takes any value's truthiness, we want a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be True or False. {received(name, value)}")
    return bool(value)


def factor(name, value):
    """Keras's ``validate_float_arg``: a finite, non-negative Python int or float (a
    ``ValueError`` otherwise, as in Keras, whatever the kind), returned as a float."""
    if not isinstance(value, (float, int)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative float. {received(name, value)}")
    return float(value)


def float_dtype(name, dtype, default=np.float32):
    """``dtype`` (None: ``default``) as a NumPy float32/float64 dtype."""
    if dtype is None:
        return np.dtype(default)
    try:
        value = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"`{name}` must name a float dtype. {received(name, dtype)}") from None
    if value not in FLOAT_DTYPES:
        raise ValueError(f"`{name}` must be float32 or float64. {received(name, dtype)}")
    return value


def one_of(name, value, choices):
    """``value`` if it is one of ``choices`` (a ValueError naming them otherwise)."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"`{name}` must be one of {', '.join(map(repr, choices))}. {received(name, value)}")
    return value


def generator(seed, name="seed"):
    """A ``np.random.Generator`` from a seed, by one rule everywhere.

    None draws fresh entropy; a ``Generator`` is used as it is; an int seeds one. NumPy
    takes only non-negative seeds and Keras any int64, so an int is taken modulo 2**64:
    a negative seed is its int64 bit pattern (-1 and 2**64 - 1 give the same draws).
    """
    if seed is None or isinstance(seed, np.random.Generator):
        return np.random.default_rng(seed)
    return np.random.default_rng(integer(name, seed) % 2**64)


class Configurable:
    """``from_config`` and ``__repr__`` for a class whose ``get_config()`` gives its arguments.

    ``type(x).from_config(x.get_config())`` rebuilds ``x``; ``repr(x)`` is the call that
    makes it, with the arguments that differ from the constructor's defaults (and no
    ``name``).
    """

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        defaults = {k: p.default for k, p in inspect.signature(type(self).__init__).parameters.items()}
        shown = [f"{k}={v!r}" for k, v in self.get_config().items()
                 if k != "name" and not (k in defaults and _same(v, defaults[k]))]
        return f"{type(self).__name__}({', '.join(shown)})"


def _same(value, default):
    if default is inspect.Parameter.empty or type(value) is not type(default):
        return False
    try:
        return bool(value == default)
    except (TypeError, ValueError):  # arrays and the like: shown
        return False


def float32_range(name, value):
    """``value``, if Keras can cast it to float32 (``ops.cast(value, dtype)`` first makes a
    tensor of a Python number: a float becomes float32, an int int32/int64).

    A finite Python float that rounds to inf in float32, or an int beyond int64, makes
    TensorFlow raise at the first step; here it is a ``ValueError`` naming the argument.
    inf itself, and NumPy floats (cast without a check), pass, as in Keras.

    >>> float32_range("beta_1", 1e38)
    1e+38
    >>> float32_range("beta_1", 1e39)
    Traceback (most recent call last):
    ...
    ValueError: `beta_1` must be within float32's range (Keras casts it to float32 and fails beyond 3.4028235e+38). Received: beta_1=1e+39 (float)
    """
    if type(value) is float and math.isfinite(value):
        with np.errstate(over="ignore"):
            too_big = math.isinf(np.float32(value))
    else:
        too_big = type(value) is int and not -2**63 <= value < 2**63
    if too_big:
        raise ValueError(f"`{name}` must be within float32's range (Keras casts it to float32 and fails "
                         f"beyond {float(np.finfo(np.float32).max):.8g}). {received(name, value)}")
    return value
