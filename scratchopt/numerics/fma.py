"""Fused multiply-add: ``a*b + c`` rounded once, as PyTorch's CPU kernels compute it.

Why torch needs it and TensorFlow does not
------------------------------------------
TensorFlow's CPU kernels never contract ``a*b + c`` (see this package's docstring), so Keras's
optimizers are reproduced with plain ``*`` and ``+``. PyTorch's ATen CPU kernels do, in their
vectorised body and in their scalar tail alike (``Vectorized<T>::fmadd`` and ``std::fma``):

=======================================  ========================================================
torch call (the optimizers use)           what ATen computes
=======================================  ========================================================
``x.add_(y, alpha=a)`` / ``x.add(y, a)``  ``fma(y, a, x)``
``x.lerp_(y, w)`` (``|w| < 0.5``)         ``fma(w, y - x, x)``
``x.lerp_(y, w)`` (``|w| >= 0.5``)        ``fma(-(y - x), 1 - w, y)``
``x.addcmul_(t1, t2, value=v)``           ``fma(v * t1, t2, x)``
``x.addcdiv_(t1, t2, value=v)``           ``x + (v * t1) / t2`` (no FMA)
=======================================  ========================================================

(the exact forms, with the source lines, are in ``scratchopt/torch/optim/_ops.py``). Two
roundings (``x + a*y`` in NumPy) instead of one differ in the last bit on a few percent of
elements, and over 500 optimizer steps that grows to thousands of ULP; one rounding gives
torch's bits.

NumPy has no FMA ufunc and Python 3.11 has no ``math.fma`` (it came in 3.13), so this module
builds one from exact arithmetic:

* **float32**: the product of two float32 numbers has at most 48 significant bits, so it is
  exact in float64. ``p + c`` in float64 is then rounded once to 53 bits, and rounding that
  to 24 bits would be a *double rounding*, wrong when the first rounding lands exactly on a
  float32 midpoint. So the float64 sum is taken **rounded to odd** (if the sum was inexact
  and the float64 result's last bit is even, step to its neighbour toward the exact sum;
  the error is known exactly from Knuth's TwoSum). Round-to-odd at 53 bits followed by
  round-to-nearest at 24 bits equals one round-to-nearest (53 >= 24 + 2; Boldo & Melquiond
  2008).
* **float64**: an error-free transform. Dekker's product with Veltkamp's split gives
  ``a*b = uh + ul`` exactly, TwoSum gives ``c + uh = th + tl`` exactly, and
  ``fma = RN(th + RO(tl + ul))`` (Boldo & Melquiond's emulated FMA, Algorithm 5.4 of
  "Emulation of FMA and correctly rounded sums: proved algorithms using rounding to odd",
  IEEE Trans. Computers 57(4), 2008).

Both are checked against exact rational arithmetic (``fractions.Fraction``) in
``parity_tests/test_fma.py``, including constructed midpoint cases.

Domain: exact for finite inputs whose product and sum stay in the normal range, away from
overflow (``|a|, |b| < 2**995`` for float64, where Veltkamp's split would overflow) and
deep underflow of the float64 error terms (``|a*b|`` above about ``2**-968``); float32
inputs are exact over their whole range. Infinities and NaNs give ``a*b + c`` (the same
special value as a hardware FMA, except for the sign of some NaNs). Signed zeros follow
IEEE's rule for ``fma`` (``-0*1 + -0 = -0``).
"""

import numpy as np

__all__ = ["fma"]

_SPLIT = 134217729.0  # 2**27 + 1: Veltkamp's splitter for 53-bit doubles


def _two_sum(x, y):
    """``(s, e)`` with ``s = fl(x + y)`` and ``s + e = x + y`` exactly (Knuth)."""
    s = x + y
    yv = s - x
    xv = s - yv
    return s, (x - xv) + (y - yv)


def _round_to_odd(s, e):
    """The float64 ``s + e`` rounded to odd, given ``s = RN(s + e)`` and the exact error ``e``.

    Exact sums (``e == 0``) stay; an inexact ``s`` whose last significand bit is even moves
    one step toward the exact value (that neighbour is odd).
    """
    even = (s.view(np.int64) & 1) == 0
    toward = np.nextafter(s, np.where(e > 0, np.inf, -np.inf))
    return np.where((e != 0) & even & np.isfinite(s), toward, s)


def _fma32(a, b, c):
    p = a.astype(np.float64) * b.astype(np.float64)  # exact: 24 + 24 bits
    s, e = _two_sum(p, c.astype(np.float64))
    odd = _round_to_odd(s, np.where(np.isfinite(s), e, 0.0))
    return odd.astype(np.float32)


def _two_product(a, b):
    """``(p, err)`` with ``p = fl(a*b)`` and ``p + err = a*b`` exactly (Dekker, Veltkamp)."""
    p = a * b
    t = _SPLIT * a
    ah = t - (t - a)
    al = a - ah
    t = _SPLIT * b
    bh = t - (t - b)
    bl = b - bh
    err = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, err


def _fma64(a, b, c):
    uh, ul = _two_product(a, b)
    th, tl = _two_sum(c, uh)
    lo, lo_err = _two_sum(tl, ul)
    v = _round_to_odd(lo, np.where(np.isfinite(lo), lo_err, 0.0))
    # A zero low part must not turn th's sign (-0 + +0 = +0).
    z = np.where(v == 0, th, th + v)
    plain = a * b + c
    return np.where(np.isfinite(uh) & np.isfinite(th) & np.isfinite(ul) & np.isfinite(z), z, plain)


def fma(a, b, c):
    """``a*b + c`` with one rounding, elementwise, for float32 or float64 NumPy values.

    The dtype is NumPy's promotion of the three (Python floats are weak: ``fma(x32, 0.1, y32)``
    is float32, with ``0.1`` rounded to float32 first, as ATen casts a scalar ``alpha`` to the
    tensor's type). Returns an array (0-d for scalars).

    >>> import numpy as np
    >>> a = np.float32(1 + 2**-12); c = np.float32(-(1 + 2**-11))
    >>> float(fma(a, a, c)) == 2.0**-24           # exact: one rounding keeps the tiny term
    True
    >>> float(a * a + c)                            # two roundings lose it
    0.0
    >>> x = np.float64(1 + 2**-30)
    >>> float(fma(x, x, np.float64(-(1 + 2**-29)))) == 2.0**-60
    True
    """
    dtype = np.result_type(a, b, c)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"`fma` works on float32 or float64 values. Received: dtype={dtype}")
    a, b, c = np.broadcast_arrays(*(np.asarray(v, dtype) for v in (a, b, c)))
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        return _fma32(a, b, c) if dtype == np.float32 else _fma64(a, b, c)
