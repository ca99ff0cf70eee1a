"""ATen's CPU arithmetic for the ops torch's optimizers call, on NumPy arrays, to the bit.

Measured against torch 2.13.0+cpu (``parity_tests/test_torch_optim.py`` pins each line):

==================================  ===========================================  ==========
torch call                          ATen's CPU kernel computes                   here
==================================  ===========================================  ==========
``x.add(y, alpha=a)``               ``fma(y, a, x)`` (vector body and tail)      ``add``
``x.mul_(s)``, ``x / s``, ``x + s``  one IEEE op, ``s`` rounded to x's dtype       plain ops
``x.lerp_(y, w)``, ``|w| < 0.5``    ``fma(w, y - x, x)``                         ``lerp``
``x.lerp_(y, w)``, ``|w| >= 0.5``   ``fma(-(y - x), 1 - w, y)``                  ``lerp``
``x.addcmul_(t1, t2, value=v)``     ``fma(v * t1, t2, x)``                       ``addcmul``
``x.addcdiv_(t1, t2, value=v)``     ``x + (v * t1) / t2`` (no FMA)               ``addcdiv``
``x.sqrt()``                        MKL's vector ``sqrt``: not correctly         ``np.sqrt``
                                    rounded, 1 ULP off on ~0.7% of elements
==================================  ===========================================  ==========

A Python-float scalar (``alpha``, ``value``, ``weight``) is rounded to the tensor's dtype
first (ATen's ``opmath_t`` on the CPU is the dtype itself for float32 and float64).
"""

import numpy as np

from ...numerics.fma import fma


def scalar(value, like):
    """A Python float rounded to ``like``'s dtype, as ATen converts a Scalar argument."""
    return like.dtype.type(value)


def add(x, y, alpha=1.0):
    """``x.add(y, alpha=alpha)``: ``fma(y, alpha, x)``, one rounding."""
    return fma(y, scalar(alpha, x), x)


def lerp(x, end, weight):
    """``x.lerp(end, weight)`` with a scalar weight: two FMA forms, split at ``|w| < 0.5``."""
    w = scalar(weight, x)
    diff = end - x
    if abs(w) < 0.5:
        return fma(w, diff, x)
    return fma(-diff, x.dtype.type(1) - w, end)


def addcmul(x, t1, t2, value=1.0):
    """``x.addcmul(t1, t2, value=v)``: ``fma(v * t1, t2, x)``."""
    return fma(scalar(value, x) * t1, t2, x)


def addcdiv(x, t1, t2, value=1.0):
    """``x.addcdiv(t1, t2, value=v)``: ``x + (v * t1) / t2``, three roundings."""
    return x + (scalar(value, x) * t1) / t2


def sqrt(x):
    """``x.sqrt()``, correctly rounded (torch's MKL one is within 1 ULP of it)."""
    return np.sqrt(x)
