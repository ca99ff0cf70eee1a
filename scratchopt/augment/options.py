"""The arguments of the image augmentation layers, checked as Keras 3.15 checks them.

Keras's rules, with Keras's exception types (so code that catches Keras's errors catches
ours), in scratchopt's message style (what it must be, then what was received):

* **A factor** is a number or a pair ``(low, high)``. What is accepted, and the range it
  means, differs from layer to layer (each layer's docstring has its own); a pair is sorted.
  Anything else: ``ValueError`` (Keras raises ValueError for a string too). Where Keras lets
  a bool through as 0 or 1, or NaN through every comparison, we refuse them.
* **fill_mode / interpolation** outside Keras's four / two names: Keras raises
  ``NotImplementedError``; ours is ``UnknownOptionError``, a ``ValueError`` *and* a
  ``NotImplementedError``.
* **RandomFlip's mode**: Keras accepts any string (an unknown one never flips); we refuse
  it (``ValueError``).
"""

import math
import numbers

from ..checks import received

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("nearest", "bilinear")
FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")


class UnknownOptionError(ValueError, NotImplementedError):
    """An unknown ``fill_mode`` or ``interpolation``: a ValueError, and Keras's NotImplementedError."""


def _choice(name, value, choices, error=ValueError):
    if not isinstance(value, str) or value not in choices:
        raise error(f"`{name}` must be one of {', '.join(map(repr, choices))}. {received(name, value)}")
    return value


def check_fill_mode(fill_mode):
    return _choice("fill_mode", fill_mode, FILL_MODES, UnknownOptionError)


def check_interpolation(interpolation):
    return _choice("interpolation", interpolation, INTERPOLATIONS, UnknownOptionError)


def check_flip_mode(mode):
    return _choice("mode", mode, FLIP_MODES)


def _real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)


def _is_pair(value):
    return isinstance(value, (tuple, list)) and len(value) == 2 and all(_real(v) for v in value)


def base_factor(name, factor, bounds):
    """``BaseImagePreprocessingLayer._set_factor`` (RandomRotation: bounds (-1, 1),
    RandomContrast: (0, 1)): ``(lower, upper)``.

    A number ``f`` in ``bounds`` gives ``(max(-|f|, bounds[0]), |f|)``; a pair is refused
    only when ``low > bounds[1]`` or ``high < bounds[0]`` (so Keras takes ``(-5, 0.5)``),
    then sorted.
    """
    lo, hi = bounds
    what = f"a number in [{lo}, {hi}] or a pair (low, high) with low <= {hi} and high >= {lo}"
    if _is_pair(factor):
        if factor[0] > hi or factor[1] < lo:
            raise ValueError(f"`{name}` must be {what}. {received(name, factor)}")
        low, high = sorted(factor)
        return float(low), float(high)
    if _real(factor):
        if not lo <= factor <= hi:
            raise ValueError(f"`{name}` must be {what}. {received(name, factor)}")
        f = abs(float(factor))
        return max(-f, float(lo)), f
    raise ValueError(f"`{name}` must be {what}. {received(name, factor)}")


def pair_factor(name, factor, low_open):
    """RandomZoom / RandomTranslation's ``_set_factor``: each number in ``(-1, 1]`` (zoom,
    ``low_open``) or ``[-1, 1]`` (translation); a number ``f`` gives ``(-|f|, |f|)``, a pair
    is sorted."""
    what = "a number in (-1, 1] or a pair of them" if low_open else "a number in [-1, 1] or a pair of them"
    values = factor if isinstance(factor, (tuple, list)) else (factor,)
    if (isinstance(factor, (tuple, list)) and len(factor) != 2) or not all(_real(v) for v in values):
        raise ValueError(f"`{name}` must be {what}. {received(name, factor)}")
    for v in values:
        if v > 1.0 or v < -1.0 or (low_open and v == -1.0):
            raise ValueError(f"`{name}` must be {what}. {received(name, factor)}")
    if isinstance(factor, (tuple, list)):
        low, high = sorted(factor)
        return float(low), float(high)
    f = abs(float(factor))
    return -f, f


def check_fill_value(fill_value):
    """A real number (Keras hands it to TF as a float attribute)."""
    if not _real(fill_value) and not (isinstance(fill_value, numbers.Real) and math.isnan(fill_value)):
        raise TypeError(f"`fill_value` must be a number. {received('fill_value', fill_value)}")
    return float(fill_value)


def check_value_range(value_range):
    """``(low, high)``, two real numbers (RandomContrast clips its output to them)."""
    if not _is_pair(value_range):
        raise ValueError(f"`value_range` must be a pair of numbers (low, high). "
                         f"{received('value_range', value_range)}")
    return tuple(value_range)


def check_seed(seed):
    """Keras's ``SeedGenerator`` check: None or a Python int (``ValueError`` otherwise)."""
    if seed is not None and type(seed) is not int:
        raise ValueError(f"`seed` must be an integer. {received('seed', seed)}")
    return seed
