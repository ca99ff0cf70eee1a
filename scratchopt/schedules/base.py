"""What every schedule shares: ``rate = schedule(step)`` in Keras's dtype, and its checks.

::

    schedule(step)    int step         -> a Python float
                      array of steps   -> the array of rates
    dtype             float32 for a Python float initial_learning_rate (or np.float32)
                      float64 for an np.float64 one
    step -> rate      steps cast to dtype, then the subclass's formula, in Keras's order

The value is Keras's, to the last bit. Keras computes in the dtype of
``initial_learning_rate`` as a tensor: **float32** for a Python float (hence
``ExponentialDecay(0.1, ...)(0) == 0.10000000149011612``), float64 for an ``np.float64``.
Every ``pow``, ``cos`` and ``log`` is the C library's, as in TF's kernels
(``scratchopt/numerics/``).

Arguments Keras does not check (a negative ``decay_rate``, ``alpha > 1``) are not checked
here either; Keras's only check, ``decay_steps <= 0``, is ``_positive`` (NaN passes it, as in
Keras).

Where we refuse what Keras accepts:

* an **int** ``initial_learning_rate`` (or an int first value of
  ``PiecewiseConstantDecay``) is a ``TypeError``. Keras silently switches the whole schedule
  to int32 arithmetic: ``ExponentialDecay(1, ...)`` returns 0 or 1, ``CosineDecay(1, ...)``
  uses pi = 3, and ``CosineDecay(0, ..., warmup_target=0.1)`` fails at the first call.
  Write ``1.0``.
* ``PiecewiseConstantDecay`` with no boundaries, or with values of different float types,
  is refused at construction; Keras fails at the first call.

A step Keras cannot make a tensor of is Keras's ValueError here too, naming ``step`` and the
range: a Python int beyond int64 (``schedule(2**64)``), a finite Python float beyond
float32 (``schedule(1e39)``), or a list holding one.
"""

import math

import numpy as np

from .. import checks
from ..numerics import tf_arithmetic

#: What Keras's ``convert_to_tensor`` makes a number tensor of: a Python or NumPy int or float.
_TENSOR_NUMBERS = (int, float, np.integer, np.floating)


def _compute_dtype(name, value):
    """The dtype Keras's ``convert_to_tensor(value)`` gives a schedule's arithmetic."""
    if isinstance(value, (bool, int, np.integer)):
        raise TypeError(
            f"`{name}` must be a float, not an int: Keras would then compute the whole schedule "
            f"in int32 (cosine with pi = 3, decay to 0). Write {float(value)!r}. "
            f"{checks.received(name, value)}")
    if isinstance(value, np.float64):
        return np.dtype(np.float64)
    if isinstance(value, (float, np.float32)):
        return np.dtype(np.float32)
    raise TypeError(f"`{name}` must be a Python float, np.float32 or np.float64. "
                    f"{checks.received(name, value)}")


def _number(name, value):
    """``checks.number``, and only the numbers Keras makes a tensor of (``_TENSOR_NUMBERS``):
    a real number of another kind (a ``Fraction``) is a TypeError here, as Keras would fail
    at the first call."""
    if checks.is_real(value) and not isinstance(value, _TENSOR_NUMBERS):
        raise TypeError(f"`{name}` must be an int or a float. {checks.received(name, value)}")
    return checks.number(name, value)


def _positive(name, value):
    """Keras's only check: ``value <= 0`` is a ValueError. NaN passes, as in Keras
    (``checks.positive`` refuses NaN, so it is not used here)."""
    if _number(name, value) <= 0:
        raise ValueError(f"`{name}` must be > 0. {checks.received(name, value)}")
    return value


_INT64 = (-(2**63), 2**63 - 1)
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _step_array(step):
    """``step`` as Keras's ``convert_to_tensor`` makes it, as a NumPy array, or an error first.

    A Python float becomes a float32 tensor, a Python int an int64 one: beyond those ranges
    Keras raises ValueError ("Can't convert Python sequence with ... out of range"), and so
    do we, naming ``step`` and the range (a Python sequence of them, the same). What is not
    a number is a TypeError.
    """
    if isinstance(step, int) and not isinstance(step, bool) and not _INT64[0] <= step <= _INT64[1]:
        raise ValueError(f"`step` must be within int64's range, [-2**63, 2**63 - 1]: Keras makes an "
                         f"int64 tensor of it. {checks.received('step', step)}")
    if type(step) is float and math.isfinite(step) and _beyond_float32(step):
        raise ValueError(f"`step` must be within float32's range, |step| <= {_FLOAT32_MAX:.8g}: Keras "
                         f"makes a float32 tensor of it. {checks.received('step', step)}")
    with np.errstate(over="ignore"):
        try:
            steps = np.asarray(step, np.float32 if type(step) is float else None)  # a float32 tensor
        except (TypeError, ValueError, OverflowError):
            steps = np.asarray(None, object)
    if isinstance(step, (list, tuple)):  # Python numbers: the same ranges, element by element
        if any(isinstance(v, int) and not isinstance(v, bool) and not _INT64[0] <= v <= _INT64[1]
               for v in _flat(step)):
            raise ValueError(f"every `step` must be within int64's range, [-2**63, 2**63 - 1]: Keras "
                             f"makes an int64 tensor of them. {checks.received('step', step)}")
        if steps.dtype.kind == "f" and np.any(np.isfinite(steps) & _beyond_float32(steps)):
            raise ValueError(f"every `step` must be within float32's range, |step| <= "
                             f"{_FLOAT32_MAX:.8g}: Keras makes a float32 tensor of them. "
                             f"{checks.received('step', step)}")
    if steps.dtype.kind not in "iuf":
        raise TypeError("`step` must be an int, a float or an array of them. "
                        f"{checks.received('step', step)}")
    return steps


def _flat(values):
    """The items of nested Python lists and tuples, in order."""
    for v in values:
        if isinstance(v, (list, tuple)):
            yield from _flat(v)
        else:
            yield v


def _beyond_float32(value):
    """Whether a double rounds to ±inf in float32 (what TF's conversion refuses)."""
    with np.errstate(over="ignore"):
        return np.isinf(np.asarray(value, np.float32))


class LearningRateSchedule(checks.Configurable):
    """The shared part: calling with a step (or steps), the dtype, and the config.

    A subclass sets ``self.dtype`` and writes ``rate(step)``: the formula on a NumPy array
    of steps already cast to ``dtype``, in Keras's operation order. ``from_config`` and
    ``repr`` (the call, with the arguments that differ from the defaults) come from
    ``checks.Configurable``.

    Examples
    --------
    A schedule of your own: halve the rate every 10 steps. An int step gives a Python
    float; any optimizer takes the schedule as its ``learning_rate``.

    >>> import numpy as np
    >>> from scratchopt.schedules import LearningRateSchedule
    >>> class Halving(LearningRateSchedule):
    ...     def rate(self, step):
    ...         return 0.5 ** np.floor(step / 10)
    >>> schedule = Halving()
    >>> schedule(0), schedule(10), schedule(25)
    (1.0, 0.5, 0.25)
    >>> from scratchopt.optimizers import SGD
    >>> SGD(learning_rate=schedule).learning_rate  # at iterations = 0
    1.0
    """

    dtype = np.dtype(np.float32)

    def __call__(self, step):
        steps = _step_array(step)
        with tf_arithmetic():
            rates = np.asarray(self.rate(steps), self.dtype)
        if rates.ndim == 0:
            return float(rates)
        return rates

    def _steps(self, step):
        """``ops.cast(step, dtype)``."""
        return step.astype(self.dtype)

    def get_config(self):
        return dict(self._config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    __hash__ = object.__hash__
