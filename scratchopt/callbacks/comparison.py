"""The comparison behind "improved": ``x1 < x2``, ``x1 > x2`` as ``keras.ops.less``/``greater`` decide.

::

    less(x1, x2) = as_tensor(x1) < as_tensor(x2)      in the wider float of the two
    as_tensor:  Python float -> float32    Python int -> int32 (int64 if it does not fit)
                NumPy scalar -> its dtype  bool -> bool
    subnormal float32/float64 -> 0          (TF's CPU kernels: the DAZ bit)

The subtraction in ``current - min_delta`` happens in Python/NumPy, then ``keras.ops.less``
turns both sides into tensors before comparing: a Python float becomes float32, a Python
int int32, a NumPy scalar keeps its dtype, and the comparison runs in the wider float. So
with Python floats the test is done in **float32**: ``0.3 - 1e-10 < 0.3`` is True in Python
and False here, as in Keras. And TF's CPU kernels read subnormal float32/float64 numbers as
zero: ``-1e-45 < 0.0`` is False.
"""

import math

import numpy as np

from .. import checks


def _as_tensor(x):
    """``x`` with the dtype Keras's TF backend gives it in ``convert_to_tensor``."""
    if isinstance(x, (np.generic, np.ndarray)):  # before float: np.float64 is a float subclass
        return np.asarray(x)
    if isinstance(x, bool):
        return np.asarray(x)
    if isinstance(x, int):  # int32 if it fits, else int64, else TF refuses
        if -(2**31) <= x < 2**31:
            return np.asarray(x, np.int32)
        if -(2**63) <= x < 2**63:
            return np.asarray(x, np.int64)
        raise ValueError("Can't convert Python sequence with out-of-range integer to Tensor.")
    if isinstance(x, float):
        with np.errstate(over="ignore"):
            x32 = np.asarray(x, np.float32)
        if np.isinf(x32) and not math.isinf(x):  # Quirk: a float beyond float32's range is an error
            raise ValueError("Can't convert Python sequence with a value out of range for a "
                             "double-precision float.")
        return x32
    raise TypeError(f"A monitored value must be a number. {checks.received('value', x)}")


def _subnormal_as_zero(x):
    """TF's CPU kernels read a subnormal float32/float64 as 0 (the DAZ bit); float16 keeps its own."""
    if x.dtype in checks.FLOAT_DTYPES and 0 < abs(x) < np.finfo(x.dtype).tiny:
        return np.zeros_like(x)
    return x


def _compare(op, x1, x2):
    x1, x2 = _subnormal_as_zero(_as_tensor(x1)), _subnormal_as_zero(_as_tensor(x2))
    floats = [x.dtype for x in (x1, x2) if x.dtype.kind == "f"]
    if floats:  # Keras's promotion: a float beats ints and bools, the wider float wins
        dtype = max(floats, key=lambda d: d.itemsize)
        with np.errstate(over="ignore"):  # an int beyond float16's range becomes inf, as in TF
            x1, x2 = x1.astype(dtype), x2.astype(dtype)
    return bool(op(x1, x2))


def less(x1, x2):
    """``x1 < x2`` as ``keras.ops.less`` decides it (Python floats compared in float32).

    Examples
    --------
    0.3 and 0.3 - 1e-10 are the same float32 number (float32's spacing near 0.3 is 3e-8):

    >>> from scratchopt.callbacks import less
    >>> 0.3 - 1e-10 < 0.3, less(0.3 - 1e-10, 0.3)
    (True, False)
    """
    return _compare(np.less, x1, x2)


def greater(x1, x2):
    """``x1 > x2`` as ``keras.ops.greater`` decides it.

    Examples
    --------
    1e-45 becomes float32's smallest subnormal, which TF's CPU kernels read as 0:

    >>> from scratchopt.callbacks import greater
    >>> greater(0.5, 0.25), greater(1e-45, 0.0)
    (True, False)
    """
    return _compare(np.greater, x1, x2)
