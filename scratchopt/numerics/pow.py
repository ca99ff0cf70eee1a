"""``tf.pow`` on arrays, element for element: Eigen's ``generic_pow`` on whole packets, the C
library's ``pow`` on the rest.

TF's CPU ``Pow`` kernel on an array evaluates ``scalar_pow_op`` through Eigen's vectorised
executor: the elements are taken a SIMD packet at a time (8 float32 or 4 float64: the TF
wheel is built for AVX, without FMA), and each packet goes through Eigen's own
approximation ``generic_pow`` (``Eigen/src/Core/arch/Default/GenericPacketMathFunctions.h``
in the TF wheel's headers); the last ``size % 8`` (``% 4``) elements go one at a time
through ``numext::pow``, which is libm's ``powf``/``pow``. The two differ by 1-2 ULP on about
a quarter of the inputs, so code that needs Keras's bits for an array ``Pow`` (Ftrl's
``accumulator ** -lr_power``, Lamb's ...) calls ``power_array`` here. A scalar ``Pow`` (a
0-d tensor: Adam's ``beta_1 ** t``) is all tail: ``libm.power``.

``generic_pow(x, y)``, as Eigen writes it (every step an IEEE-rounded operation of the
dtype; ``pmadd(a, b, c)`` is ``a * b + c`` rounded twice, there being no FMA)::

    m, e = frexp(|x|);  if m < sqrt(1/2): m, e = 2m, e - 1        (m in [0.707, 1.414))
    log2(m) as a double word (hi, lo)      float32: a degree-10 polynomial in m - 1, its last
                                           two Horner steps in double-word arithmetic;
                                           float64: r = c (m-1)/(m+1), an odd polynomial in r
    f = y * e + y * log2(m)                in double words (Dekker's products, Veltkamp splits)
    n = round(f);  r = f - n               (twice, to fold in the low word)
    x**y = exp2(r) * 2**n                  exp2(r) = exp(hi(ln2 * r)) * (1 + lo(ln2 * r)),
                                           with Eigen's Cephes-style exp
    then C's special cases (x = 0, 1, inf, NaN; y = 0, 1, +-inf, odd integers; x < 0)

All of it runs under ``tf_arithmetic`` (flush-to-zero, as TF's kernels). Subnormal *inputs*
are read as zero by TF there (DAZ) and by this code too, except in ``frexp``; inputs that
small are not what an optimizer raises to a power, and they are not tested.
"""

import numpy as np

from .fpenv import tf_arithmetic
from .libm import power

#: SIMD lanes of the TF wheel's CPU kernels (AVX: 256-bit registers).
LANES = {np.dtype(np.float32): 8, np.dtype(np.float64): 4}
_LN2 = 0.693147180559945309417232121458176568
#: Elements per block of ``power_array`` (a multiple of every packet size): 16384 float32
#: elements are 64 KiB an array (as the engine's blocks; 3-4x faster than one whole call at 1e6).
_BLOCK = 16384


def _split(x):
    """Veltkamp's split: ``x = hi + lo`` exactly, ``hi`` holding half the significand."""
    t = x.dtype.type
    shift = (np.finfo(x.dtype).nmant + 2) // 2  # (digits + 1) / 2: 12 for float32, 27 for float64
    gamma = t(2.0 ** shift + 1) * x
    rho = x - gamma
    hi = rho + gamma
    return hi, x - hi


def _twoprod(x, y):
    """Dekker's product without FMA: ``x * y = hi + lo`` exactly."""
    x_hi, x_lo = _split(x)
    y_hi, y_lo = _split(y)
    p_hi = x * y
    p_lo = x_hi * y_hi + (-p_hi)
    p_lo = x_hi * y_lo + p_lo
    p_lo = x_lo * y_hi + p_lo
    p_lo = x_lo * y_lo + p_lo
    return p_hi, p_lo


def _fast_twosum(x, y):
    s_hi = x + y
    return s_hi, y - (s_hi - x)


def _dw_add(x_hi, x_lo, y_hi, y_lo):
    """Double word + double word, assuming ``|x_hi| >= |y_hi|``."""
    r_hi, r_lo = _fast_twosum(x_hi, y_hi)
    return _fast_twosum(r_hi, (y_lo + r_lo) + x_lo)


def _dw_add_fp(x, y_hi, y_lo):
    """Float + double word, assuming ``|x| >= |y_hi|``."""
    r_hi, r_lo = _fast_twosum(x, y_hi)
    return _fast_twosum(r_hi, y_lo + r_lo)


def _dw_mul_fp(x_hi, x_lo, y):
    """Double word * float (Muller's Algorithm 7)."""
    c_hi, c_lo1 = _twoprod(x_hi, y)
    c_lo2 = x_lo * y
    t_hi, t_lo1 = _fast_twosum(c_hi, c_lo2)
    return _fast_twosum(t_hi, t_lo1 + c_lo1)


def _dw_mul(x_hi, x_lo, y_hi, y_lo):
    a_hi, a_lo = _dw_mul_fp(x_hi, x_lo, y_hi)
    b_hi, b_lo = _dw_mul_fp(x_hi, x_lo, y_lo)
    return _dw_add(a_hi, a_lo, b_hi, b_lo)


def _dw_div_fp(x_hi, x_lo, y):
    """Double word / float (Joldes, Muller & Popescu, Algorithm 15)."""
    t_hi = x_hi / y
    pi_hi, pi_lo = _twoprod(t_hi, y)
    delta = ((x_hi - pi_hi) - pi_lo) + x_lo
    return _fast_twosum(t_hi, delta / y)


def _log2_float32(z):
    t = np.float32
    c0 = 1.442695041742110273474963832995854318141937255859375
    c1 = -7.2134751588268664068692714863573201000690460205078125e-01
    c0_hi, c1_hi = t(c0), t(c1)
    c0_lo, c1_lo = t(c0 - float(c0_hi)), t(c1 - float(c1_hi))
    coefficients = [9.7010828554630279541015625e-02, -1.6896486282348632812500000e-01,
                    1.7200836539268493652343750e-01, -1.7892272770404815673828125e-01,
                    2.0505344867706298828125000e-01, -2.4046677350997924804687500e-01,
                    2.8857553005218505859375000e-01, -3.6067414283752441406250000e-01,
                    4.8089790344238281250000000e-01]
    x = z - t(1.0)
    p = np.full_like(x, t(coefficients[0]))
    for c in coefficients[1:]:
        p = p * x + t(c)
    p_hi, p_lo = _twoprod(x, p)
    p_hi, p_lo = _dw_add(np.full_like(x, c1_hi), np.full_like(x, c1_lo), p_hi, p_lo)
    p_hi, p_lo = _dw_mul_fp(p_hi, p_lo, x)
    p_hi, p_lo = _dw_add(np.full_like(x, c0_hi), np.full_like(x, c0_lo), p_hi, p_lo)
    return _dw_mul_fp(p_hi, p_lo, x)


def _log2_float64(x):
    t = np.float64
    q12, q10, q8 = t(2.87074255468000586e-9), t(2.38957980901884082e-8), t(2.31032094540014656e-7)
    q6, q4, q2 = t(2.27279857398537278e-6), t(2.31271023278625638e-5), t(2.47556738444535513e-4)
    q0 = t(2.88543873228900172e-3)
    c_hi, c_lo = t(0.0400377511598501157), t(-4.77726582251425391e-19)
    one = t(1.0)
    t_hi, t_lo = _dw_mul_fp(np.full_like(x, 2.88539008177792677), np.full_like(x, 4.07660016854549667e-17),
                            x - one)
    r_hi, r_lo = _dw_div_fp(t_hi, t_lo, x + one)
    r2_hi, r2_lo = _dw_mul(r_hi, r_lo, r_hi, r_lo)
    r4_hi, _ = _dw_mul(r2_hi, r2_lo, r2_hi, r2_lo)
    q_even = q12 * r4_hi + q8
    q_odd = q10 * r4_hi + q6
    q_even = q_even * r4_hi + q4
    q_odd = q_odd * r4_hi + q2
    q_even = q_even * r4_hi + q0
    q = q_odd * r2_hi + q_even
    p_hi, p_lo = _dw_mul_fp(r2_hi, r2_lo, q)
    p1_hi, p1_lo = _dw_add(np.full_like(x, c_hi), np.full_like(x, c_lo), p_hi, p_lo)
    p2_hi, p2_lo = _dw_mul(r2_hi, r2_lo, p1_hi, p1_lo)
    p3_hi, p3_lo = _dw_add_fp(np.full_like(x, one), p2_hi, p2_lo)
    return _dw_mul(p3_hi, p3_lo, r_hi, r_lo)


def _round(a):
    """Eigen's ``pround`` on AVX: half away from zero, by adding the float just below 0.5."""
    below_half = a.dtype.type(np.nextafter(a.dtype.type(0.5), a.dtype.type(0)))
    return np.trunc(a + np.copysign(below_half, a))


def _ldexp_fast(a, e):
    """``a * 2**e`` with the biased exponent clamped to [0, max]: 2**e is 0 or inf beyond."""
    info = np.finfo(a.dtype)
    bias = info.maxexp - 1
    biased = np.clip(e + bias, 0, 2 * info.maxexp - 1)
    factor = np.where(biased == 0, 0.0, np.where(biased == 2 * info.maxexp - 1, np.inf,
                                                 np.ldexp(np.ones_like(a), (biased - bias).astype(np.int64))))
    return a * factor.astype(a.dtype)


def _ldexp(a, e):
    """Eigen's ``pldexp_generic``: ``a * 2**b * 2**b * 2**b * 2**(e - 3b)``, ``b = floor(e / 4)``."""
    info = np.finfo(a.dtype)
    limit = 2 * info.maxexp + info.nmant - 1
    e = np.clip(e, -limit, limit).astype(np.int64)
    b = e >> 2
    c = np.ldexp(np.ones_like(a), b)
    out = ((a * c) * c) * c
    return out * np.ldexp(np.ones_like(a), e - 3 * b)


def _exp(x_in):
    """Eigen's ``pexp`` for the small arguments ``exp2`` gives it (|x| < 0.35)."""
    if x_in.dtype == np.float32:
        t = np.float32
        x = np.minimum(x_in, t(88.723))
        m = np.floor(x * t(1.44269504088896341) + t(0.5))
        r = m * t(-0.693359375) + x
        r = m * t(2.12194440e-4) + r
        r2 = r * r
        p_even = r2 * t(1.37449637986719608306884765625e-3) + t(4.166965186595916748046875e-2)
        p_odd = r2 * t(8.36894474923610687255859375e-3) + t(0.16666518151760101318359375)
        p_even = r2 * p_even + t(0.49999988079071044921875)
        p_low = r + t(1.0)
        y = r * p_odd + p_even
        y = r2 * y + p_low
        return np.maximum(_ldexp_fast(y, m), x_in)
    t = np.float64
    x = np.minimum(x_in, t(709.784))
    fx = np.floor(t(1.4426950408889634073599) * x + t(0.5))
    x = x - fx * t(0.693145751953125)
    x = x - fx * t(1.42860682030941723212e-6)
    x2 = x * x
    px = t(1.26177193074810590878e-4) * x2 + t(3.02994407707441961300e-2)
    px = px * x2 + t(9.99999999999999999910e-1)
    px = px * x
    qx = t(3.00198505138664455042e-6) * x2 + t(2.52448340349684104192e-3)
    qx = qx * x2 + t(2.27265548208155028766e-1)
    qx = qx * x2 + t(2.00000000000000000009e0)
    x = px / (qx - px)
    x = t(2.0) * x + t(1.0)
    return np.maximum(_ldexp_fast(x, fx), x_in)


def _exp2(x):
    info = np.finfo(x.dtype)
    t = x.dtype.type
    x = np.maximum(np.minimum(x, t(info.maxexp + 1)), t(-(info.maxexp + info.nmant)))
    p_hi, p_lo = _twoprod(np.full_like(x, t(_LN2)), x)
    return _exp(p_hi) * (t(1.0) + p_lo)


def _pow_positive(x, y):
    """``generic_pow_impl``: x**y for x > 0 (finite), y finite, before the special cases."""
    t = x.dtype.type
    m, e = np.frexp(x)
    e = e.astype(x.dtype)
    small = m < t(0.70710678118654752440)
    m = np.where(small, t(2.0) * m, m)
    e = np.where(small, e - t(1.0), e)
    rx_hi, rx_lo = (_log2_float32 if x.dtype == np.float32 else _log2_float64)(m)
    f1_hi, f1_lo = _twoprod(e, y)
    f2_hi, f2_lo = _dw_mul_fp(rx_hi, rx_lo, y)
    f_hi, f_lo = _dw_add(f1_hi, f1_lo, f2_hi, f2_lo)
    n_z = _round(f_hi)
    r_z = (f_hi - n_z) + f_lo
    n_r = _round(r_z)
    r_z = r_z - n_r
    n_z = n_z + n_r
    e_r = _exp2(r_z)
    fast = np.abs(n_z) <= t(info_max_exponent(x.dtype) - 2)
    return np.where(fast, _ldexp_fast(e_r, n_z), _ldexp(e_r, n_z))


def info_max_exponent(dtype):
    return np.finfo(dtype).maxexp


def generic_pow(x, y):
    """Eigen's packet ``generic_pow(x, y)``, elementwise on same-shape arrays of one dtype."""
    t = x.dtype.type
    zero, one, inf = t(0.0), t(1.0), t(np.inf)
    x_abs = np.abs(x)
    with np.errstate(all="ignore"):
        out = _pow_positive(x_abs, y)
        x_is_negative, x_is_zero, x_is_one = x < zero, x == zero, x == one
        x_has_signbit = np.signbit(x)
        x_abs_gt_one, x_abs_is_inf = x_abs > one, x_abs == inf
        y_abs = np.abs(y)
        y_abs_is_inf = y_abs == inf
        y_is_negative, y_is_zero, y_is_one = y < zero, y == zero, y == one
        y_is_int = (np.floor(y) == y) & ~y_abs_is_inf
        y_half = y * t(0.5)
        y_is_odd_int = y_is_int & ~(_round(y_half) == y_half)
        info = np.finfo(x.dtype)
        huge = t((info.maxexp * t(_LN2)) / info.eps)
        y_abs_is_huge = huge <= y_abs
        out = np.where(x_is_negative & ~y_is_int, t(np.nan), out)
        out = np.where(x_is_zero, np.where(y_is_negative, inf, zero), out)
        out = np.where(x_has_signbit & y_is_odd_int, -out, out)
        inf_y = np.where((y_is_negative & x_is_zero) | (y_is_negative ^ x_abs_gt_one), inf, zero)
        inf_y = np.where(x == t(-1.0), one, inf_y)
        out = np.where(y_abs_is_huge, inf_y, out)
        pos_inf_value = np.where(y_is_negative, zero, inf)
        neg_inf_value = np.where(y_is_odd_int, -pos_inf_value, pos_inf_value)
        out = np.where(x_abs_is_inf, np.where(x_is_negative, neg_inf_value, pos_inf_value), out)
        out = np.where(np.isnan(x) | np.isnan(y), t(np.nan), out)
        out = np.where(y_is_one, x, np.where(x_is_one | y_is_zero, one, out))
    return out.astype(x.dtype, copy=False)


@tf_arithmetic()
def power_array(x, y):
    """``tf.pow(x, y)`` on the CPU for float32/float64 arrays (either may be a scalar, broadcast):
    ``generic_pow`` on the whole packets of the flattened result, libm on the last
    ``size % LANES`` elements.

    >>> import numpy as np
    >>> power_array(np.array([4.0, 9.0], np.float32), np.float32(0.5)).tolist()
    [2.0, 3.0]
    """
    x, y = np.asarray(x), np.asarray(y)
    dtype = np.result_type(x, y)
    x, y = x.astype(dtype, copy=False), y.astype(dtype, copy=False)
    compiled = _compiled(x, y)
    if compiled is not None:  # the same bits, from numba (pow_fast.py); the lines below are the reference
        out = np.empty(x.shape, dtype)
        whole = compiled.power_array_whole_packets(x, y, out)
        if whole < x.size:
            tail = out.reshape(-1)[whole:]
            tail[...] = power(x.reshape(-1)[whole:], y.reshape(-1)[whole:] if y.ndim else np.full(tail.size, y))
        return out
    x, y = np.broadcast_arrays(x, y)
    shape = x.shape
    x, y = x.reshape(-1), y.reshape(-1)
    whole = x.size - x.size % LANES[dtype]
    out = np.empty(x.size, dtype)
    # generic_pow is elementwise: blocks that fit the cache give the whole call's bits, with
    # its ~40 temporaries recycled in the cache instead of streamed through memory
    for start in range(0, whole, _BLOCK):
        end = min(start + _BLOCK, whole)
        out[start:end] = generic_pow(x[start:end], y[start:end])
    if whole < x.size:
        out[whole:] = power(x[whole:], y[whole:])
    return out.reshape(shape)


def _compiled(x, y):
    """``pow_fast`` when it takes ``power_array(x, y)`` (numba installed, not
    ``SCRATCHOPT_BACKEND=numpy``, a C-contiguous NumPy ``x``, ``y`` 0-d or of its shape), else None."""
    from . import sums_fast

    if not sums_fast.wanted(x) or x.ndim == 0:
        return None
    from . import pow_fast

    return pow_fast if pow_fast.wanted(x, y) else None
