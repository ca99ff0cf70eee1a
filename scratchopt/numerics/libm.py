"""``pow``, ``cos`` and ``log`` as TF's scalar kernels compute them: calls into the C library.

TF's ``Pow``, ``Cos`` and ``Log`` on a scalar (Adam's ``beta_1 ** t``, every schedule's
decay) call libm's ``powf``/``cosf``/``logf`` (``pow``/``cos``/``log`` in float64). NumPy's
own float32 ``np.power``/``np.cos``/``np.log`` are up to 1 ULP away, so these call libm.
"""

import ctypes

import numpy as np

from .fpenv import _libm, tf_arithmetic


def _c_function(name, ctype, arity):
    f = getattr(_libm, name)
    f.restype, f.argtypes = ctype, [ctype] * arity
    return f


_LIBM = {  # (TF op, dtype) -> the C function TF's scalar kernel calls
    ("pow", np.float32): _c_function("powf", ctypes.c_float, 2),
    ("pow", np.float64): _c_function("pow", ctypes.c_double, 2),
    ("cos", np.float32): _c_function("cosf", ctypes.c_float, 1),
    ("cos", np.float64): _c_function("cos", ctypes.c_double, 1),
    ("log", np.float32): _c_function("logf", ctypes.c_float, 1),
    ("log", np.float64): _c_function("log", ctypes.c_double, 1),
}


@tf_arithmetic()
def _libm_elementwise(op, *args):
    """The C function for ``op`` applied to each element (broadcast), in the args' dtype.

    A NumPy scalar in gives a NumPy scalar out. Each element is one C call: these are
    for scalars and short step arrays (schedules), not for parameter-sized arrays.
    """
    dtype = np.result_type(*args)
    f = _LIBM[op, dtype.type]
    if all(np.ndim(a) == 0 for a in args):  # the common case (an optimizer's scalars): one call
        return dtype.type(f(*(float(a) for a in args)))
    arrays = np.broadcast_arrays(*(np.asarray(a, dtype) for a in args))
    values = [f(*xs) for xs in zip(*(a.reshape(-1).tolist() for a in arrays))]
    out = np.array(values, dtype).reshape(arrays[0].shape)
    return out[()] if out.ndim == 0 else out


def power(base, exponent):
    """``base ** exponent`` as TF's scalar ``Pow`` computes it: libm ``powf`` / ``pow``.

    The dtype is ``base``'s (float32 or float64); ``exponent`` may be an int or an array.

    >>> import numpy as np
    >>> power(np.float32(0.5), 3)
    np.float32(0.125)
    >>> power(np.float64(2.0), np.array([1, 2, 10])).tolist()
    [2.0, 4.0, 1024.0]
    """
    base = np.asarray(base)
    return _libm_elementwise("pow", base, np.asarray(exponent, base.dtype))


def cos(x):
    """``cos(x)`` as TF's scalar ``Cos`` computes it: libm ``cosf`` / ``cos``.

    >>> import numpy as np
    >>> cos(np.float32(0.0))
    np.float32(1.0)
    """
    return _libm_elementwise("cos", x)


def log(x):
    """``log(x)`` as TF's scalar ``Log`` computes it: libm ``logf`` / ``log``.

    >>> import numpy as np
    >>> log(np.float64(1.0))
    np.float64(0.0)
    """
    return _libm_elementwise("log", x)
