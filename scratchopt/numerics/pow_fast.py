"""``pow.generic_pow`` and the packet branch of ``elementwise.clip_by_value`` for one element,
compiled by numba: what TF's array ``Pow`` and ``ClipByValue`` do to an element of a whole
SIMD packet, so that a fused kernel (Ftrl's) can run them element by element.

``pow.py`` is the readable reference: Eigen's ``generic_pow`` written with NumPy arrays,
about forty temporaries per call. Here each of its lines is the same IEEE operation on one
element, in the same order (``fastmath=False``: no reassociation, no FMA contraction), so
the bits are the same; ``parity_tests/test_pow_fast.py`` checks it on drawn and special
bases and exponents. Like the reference, it computes the general value for every element
and then overwrites it with the special cases in the reference's order (its ``np.where``
chain, here assignments that compile to selects): a loop without branches, which LLVM
vectorises.

How a rule uses them: the fused CPU engine compiles a rule that calls ``power_array`` or
``clip_by_value`` with ``packet_pow`` and ``packet_clip`` in their place
(``element_forms``, read by ``engine.fused_cpu``), so Ftrl's one ``update`` rule compiles
into the engine's loop unchanged. That loop only ever gets the elements of whole packets:
``Ftrl.run_rule`` runs the last ``size % LANES`` elements of a tensor, which TF gives to
libm's ``pow`` and to Eigen's scalar ``min``/``max``, as array code.

``power_array_whole_packets`` runs ``packet_pow`` over an array's whole packets: the
compiled ``power_array`` (``pow.power_array`` calls it when numba is installed and
``SCRATCHOPT_BACKEND`` is not ``numpy``; Lamb's norms, Ftrl's array code).

numba is optional (the ``fast`` extra): this module imports it, and is imported only when
one of the above runs.
"""

import functools
import math

import numba
import numpy as np

from .elementwise import clip_by_value
from .pow import _LN2, power_array

_OPTIONS = {"fastmath": False, "error_model": "numpy", "nogil": True}


@functools.cache
def kernels(dtype):
    """``(packet_pow, packet_clip)`` for one dtype (float32 or float64), compiled on first use.

    numba freezes the closure's constants, each of the dtype, into the code: float32 math
    stays float32.
    """
    dtype = np.dtype(dtype)
    t = dtype.type
    info = np.finfo(dtype)
    # numba's own inlining (``inline="always"``) for the large pieces only (log2, exp,
    # pow_positive, packet_pow, packet_clip, daz): LLVM would leave them as calls, and a loop
    # with a call in it is not vectorised. The small helpers (double words, exponent bits) are
    # plain functions, which LLVM inlines by itself. numba inlining them too retyped each one at
    # every call site: Ftrl's float64 kernel took 21.0 s to compile instead of 5.1 s, for the
    # same step time (``python benchmarks/ftrl_compile.py``;
    # benchmarks/results/intel-xeon-2c/ftrl_compile_before_after.txt).
    njit = numba.njit(**_OPTIONS)
    inlined = numba.njit(inline="always", **_OPTIONS)
    zero, half, one, two = t(0.0), t(0.5), t(1.0), t(2.0)
    inf, nan, tiny = t(np.inf), t(np.nan), info.tiny
    splitter = t(2.0 ** ((info.nmant + 2) // 2) + 1)
    below_half = t(np.nextafter(half, zero))
    ln2 = t(_LN2)
    sqrt_half = t(0.70710678118654752440)
    bias = t(info.maxexp - 1)
    top = t(2 * info.maxexp - 1)
    limit = t(2 * info.maxexp + info.nmant - 1)
    fast_limit = t(info.maxexp - 2)
    exp2_hi, exp2_lo = t(info.maxexp + 1), t(-(info.maxexp + info.nmant))
    huge = t((info.maxexp * t(_LN2)) / info.eps)  # as pow.generic_pow computes it
    uint = np.uint32 if dtype == np.float32 else np.uint64
    mantissa_bits, exponent_bias = uint(info.nmant), info.maxexp - 1
    exponent_mask = uint(2 * info.maxexp - 1) << mantissa_bits
    half_bits, other_bits = half.view(uint), ~exponent_mask

    # --- double-word arithmetic (pow.py's helpers, one element) ------------------------------

    @njit
    def split(x):
        gamma = splitter * x
        rho = x - gamma
        hi = rho + gamma
        return hi, x - hi

    @njit
    def twoprod(x, y):
        x_hi, x_lo = split(x)
        y_hi, y_lo = split(y)
        p_hi = x * y
        p_lo = x_hi * y_hi + (-p_hi)
        p_lo = x_hi * y_lo + p_lo
        p_lo = x_lo * y_hi + p_lo
        p_lo = x_lo * y_lo + p_lo
        return p_hi, p_lo

    @njit
    def fast_twosum(x, y):
        s_hi = x + y
        return s_hi, y - (s_hi - x)

    @njit
    def dw_add(x_hi, x_lo, y_hi, y_lo):
        r_hi, r_lo = fast_twosum(x_hi, y_hi)
        return fast_twosum(r_hi, (y_lo + r_lo) + x_lo)

    @njit
    def dw_add_fp(x, y_hi, y_lo):
        r_hi, r_lo = fast_twosum(x, y_hi)
        return fast_twosum(r_hi, y_lo + r_lo)

    @njit
    def dw_mul_fp(x_hi, x_lo, y):
        c_hi, c_lo1 = twoprod(x_hi, y)
        c_lo2 = x_lo * y
        t_hi, t_lo1 = fast_twosum(c_hi, c_lo2)
        return fast_twosum(t_hi, t_lo1 + c_lo1)

    @njit
    def dw_mul(x_hi, x_lo, y_hi, y_lo):
        a_hi, a_lo = dw_mul_fp(x_hi, x_lo, y_hi)
        b_hi, b_lo = dw_mul_fp(x_hi, x_lo, y_lo)
        return dw_add(a_hi, a_lo, b_hi, b_lo)

    @njit
    def dw_div_fp(x_hi, x_lo, y):
        t_hi = x_hi / y
        pi_hi, pi_lo = twoprod(t_hi, y)
        delta = ((x_hi - pi_hi) - pi_lo) + x_lo
        return fast_twosum(t_hi, delta / y)

    # --- log2(m) as a double word, m in [0.707, 1.414) ---------------------------------------

    if dtype == np.float32:
        c0, c1 = 1.442695041742110273474963832995854318141937255859375, -7.2134751588268664068692714863573201000690460205078125e-01
        c0_hi, c1_hi = t(c0), t(c1)
        c0_lo, c1_lo = t(c0 - float(c0_hi)), t(c1 - float(c1_hi))
        a0, a1, a2 = t(9.7010828554630279541015625e-02), t(-1.6896486282348632812500000e-01), t(1.7200836539268493652343750e-01)
        a3, a4, a5 = t(-1.7892272770404815673828125e-01), t(2.0505344867706298828125000e-01), t(-2.4046677350997924804687500e-01)
        a6, a7, a8 = t(2.8857553005218505859375000e-01), t(-3.6067414283752441406250000e-01), t(4.8089790344238281250000000e-01)

        @inlined
        def log2(z):
            x = z - one
            p = a0 * x + a1  # pow._log2_float32's Horner loop, unrolled
            p = p * x + a2
            p = p * x + a3
            p = p * x + a4
            p = p * x + a5
            p = p * x + a6
            p = p * x + a7
            p = p * x + a8
            p_hi, p_lo = twoprod(x, p)
            p_hi, p_lo = dw_add(c1_hi, c1_lo, p_hi, p_lo)
            p_hi, p_lo = dw_mul_fp(p_hi, p_lo, x)
            p_hi, p_lo = dw_add(c0_hi, c0_lo, p_hi, p_lo)
            return dw_mul_fp(p_hi, p_lo, x)
    else:
        q12, q10, q8 = t(2.87074255468000586e-9), t(2.38957980901884082e-8), t(2.31032094540014656e-7)
        q6, q4, q2 = t(2.27279857398537278e-6), t(2.31271023278625638e-5), t(2.47556738444535513e-4)
        q0 = t(2.88543873228900172e-3)
        c_hi, c_lo = t(0.0400377511598501157), t(-4.77726582251425391e-19)
        k_hi, k_lo = t(2.88539008177792677), t(4.07660016854549667e-17)

        @inlined
        def log2(x):
            t_hi, t_lo = dw_mul_fp(k_hi, k_lo, x - one)
            r_hi, r_lo = dw_div_fp(t_hi, t_lo, x + one)
            r2_hi, r2_lo = dw_mul(r_hi, r_lo, r_hi, r_lo)
            r4_hi, _ = dw_mul(r2_hi, r2_lo, r2_hi, r2_lo)
            q_even = q12 * r4_hi + q8
            q_odd = q10 * r4_hi + q6
            q_even = q_even * r4_hi + q4
            q_odd = q_odd * r4_hi + q2
            q_even = q_even * r4_hi + q0
            q = q_odd * r2_hi + q_even
            p_hi, p_lo = dw_mul_fp(r2_hi, r2_lo, q)
            p1_hi, p1_lo = dw_add(c_hi, c_lo, p_hi, p_lo)
            p2_hi, p2_lo = dw_mul(r2_hi, r2_lo, p1_hi, p1_lo)
            p3_hi, p3_lo = dw_add_fp(one, p2_hi, p2_lo)
            return dw_mul(p3_hi, p3_lo, r_hi, r_lo)

    # --- exp2, as Eigen's pexp of the double word ln2 * r ------------------------------------

    @njit
    def power_of_two(k):
        """2**k for k in the dtype's normal range (where this code calls it): its bits."""
        return uint((k + exponent_bias) << mantissa_bits).view(t)  # k = -bias: 0; k = bias + 1: inf

    @njit
    def frexp(x):
        """C's ``frexp`` of a positive normal x (where this code calls it), from its bits:
        ``x = m * 2**e``, m in [0.5, 1)."""
        bits = t(x).view(uint)
        m = uint((bits & other_bits) | half_bits).view(t)
        return m, t(np.int32((bits & exponent_mask) >> mantissa_bits) - np.int32(exponent_bias - 1))

    @njit
    def ldexp_fast(a, e):
        """``a * 2**e``, the biased exponent clamped to [0, top]: its ends are the bits of
        0 and inf, as ``pow._ldexp_fast``'s two special cases."""
        biased = min(max(e + bias, zero), top)
        return a * power_of_two(np.int32(biased - bias))

    @njit
    def ldexp(a, e):
        k = np.int32(min(max(e, -limit), limit))
        b = k >> 2
        c = power_of_two(b)
        out = ((a * c) * c) * c
        return out * power_of_two(k - 3 * b)

    if dtype == np.float32:
        e_max, log2e = t(88.723), t(1.44269504088896341)
        m1, m2 = t(-0.693359375), t(2.12194440e-4)
        p0, p1 = t(1.37449637986719608306884765625e-3), t(4.166965186595916748046875e-2)
        p2, p3 = t(8.36894474923610687255859375e-3), t(0.16666518151760101318359375)
        p4 = t(0.49999988079071044921875)

        @inlined
        def exp(x_in):
            x = min(x_in, e_max)
            m = np.floor(x * log2e + half)
            r = m * m1 + x
            r = m * m2 + r
            r2 = r * r
            p_even = r2 * p0 + p1
            p_odd = r2 * p2 + p3
            p_even = r2 * p_even + p4
            p_low = r + one
            y = r * p_odd + p_even
            y = r2 * y + p_low
            return max(ldexp_fast(y, m), x_in)
    else:
        e_max, log2e = t(709.784), t(1.4426950408889634073599)
        m1, m2 = t(0.693145751953125), t(1.42860682030941723212e-6)
        px0, px1, px2 = t(1.26177193074810590878e-4), t(3.02994407707441961300e-2), t(9.99999999999999999910e-1)
        qx0, qx1 = t(3.00198505138664455042e-6), t(2.52448340349684104192e-3)
        qx2, qx3 = t(2.27265548208155028766e-1), t(2.00000000000000000009e0)

        @inlined
        def exp(x_in):
            x = min(x_in, e_max)
            fx = np.floor(log2e * x + half)
            x = x - fx * m1
            x = x - fx * m2
            x2 = x * x
            px = px0 * x2 + px1
            px = px * x2 + px2
            px = px * x
            qx = qx0 * x2 + qx1
            qx = qx * x2 + qx2
            qx = qx * x2 + qx3
            x = px / (qx - px)
            x = two * x + one
            return max(ldexp_fast(x, fx), x_in)

    @njit
    def exp2(x):
        x = max(min(x, exp2_hi), exp2_lo)
        p_hi, p_lo = twoprod(ln2, x)
        return exp(p_hi) * (one + p_lo)

    @njit
    def round_half_away(a):  # Eigen's pround on AVX
        return np.trunc(a + math.copysign(below_half, a))

    @inlined
    def pow_positive(x, y):
        m, e = frexp(x)
        small = m < sqrt_half
        m = two * m if small else m
        e = e - one if small else e
        rx_hi, rx_lo = log2(m)
        f1_hi, f1_lo = twoprod(e, y)
        f2_hi, f2_lo = dw_mul_fp(rx_hi, rx_lo, y)
        f_hi, f_lo = dw_add(f1_hi, f1_lo, f2_hi, f2_lo)
        n_z = round_half_away(f_hi)
        r_z = (f_hi - n_z) + f_lo
        n_r = round_half_away(r_z)
        r_z = r_z - n_r
        n_z = n_z + n_r
        e_r = exp2(r_z)
        fast, slow = ldexp_fast(e_r, n_z), ldexp(e_r, n_z)  # both, then a select: no branch in the loop
        return fast if abs(n_z) <= fast_limit else slow

    @inlined
    def packet_pow(x, y):
        """``generic_pow(x, y)`` for one element: ``pow.generic_pow``'s special cases in its order."""
        x_abs, y_abs = abs(x), abs(y)
        # Computed for every element, as the reference does, so that the loop has no branch;
        # where the value is meaningless (x = 0, inf or NaN; |y| huge) a case below replaces it.
        out = pow_positive(x_abs, y)
        y_is_int = np.floor(y) == y and y_abs != inf
        y_half = y * half
        y_is_odd_int = y_is_int and not (round_half_away(y_half) == y_half)
        if x < zero and not y_is_int:
            out = nan
        if x == zero:
            out = zero
            if y < zero:
                out = inf
        if math.copysign(one, x) < zero and y_is_odd_int:
            out = -out
        if huge <= y_abs:
            out = zero
            if (y < zero and x == zero) or ((y < zero) != (x_abs > one)):
                out = inf
            if x == -one:
                out = one
        if x_abs == inf:
            out = inf
            if y < zero:
                out = zero
            if x < zero and y_is_odd_int:
                out = -out
        if x != x or y != y:
            out = nan
        if y == one:
            out = x
        elif x == one or y == zero:
            out = one
        return out

    @inlined
    def daz(x):
        """A subnormal read as a zero of its sign, as the min/max instructions read it (DAZ)."""
        if abs(x) < tiny:
            x = math.copysign(zero, x)
        return x

    @inlined
    def packet_clip(x, lo, hi):
        """``clip_by_value``'s whole-packet branch for one element: ``max(min(x, hi), lo)``,
        a tie giving the bound, NaN staying NaN."""
        x, lo, hi = daz(x), daz(lo), daz(hi)
        if x != x:
            return x
        m = hi
        if x < hi:
            m = x
        out = lo
        if m > lo:
            out = m
        return out

    return packet_pow, packet_clip


def element_forms(dtype):
    """``{array function: its one-element form}`` for a whole packet of ``dtype``: what the
    fused kernel's compiled rule calls instead (``engine.fused_cpu.element_forms``)."""
    packet_pow, packet_clip = kernels(np.dtype(dtype))
    return {power_array: packet_pow, clip_by_value: packet_clip}


# --- power_array on whole arrays, compiled ---------------------------------------------------


def wanted(x, y):
    """Whether ``power_array(x, y)`` takes the compiled kernel, given ``sums_fast.wanted(x)``
    (numba, ``SCRATCHOPT_BACKEND`` not ``numpy``, a float32/float64 NumPy ``x``): ``x``
    C-contiguous and ``y`` of its dtype, 0-d or of ``x``'s shape (Lamb's ``pow(w, 2)``,
    Ftrl's ``pow(n, -p)``)."""
    return (x.flags.c_contiguous and x.size > 0 and isinstance(y, np.ndarray) and y.dtype == x.dtype
            and (y.ndim == 0 or (y.shape == x.shape and y.flags.c_contiguous)))


@functools.cache
def _array_kernels(dtype):
    """``run(x, y, out, whole, chunks)``: ``out[i] = packet_pow(x[i], y[i or 0])`` for the
    first ``whole`` elements, serial and parallel (chunks of whole packets)."""
    from . import sums_fast

    base = sums_fast._kernels(8, "none")
    get_mxcsr, set_mxcsr, FTZ_DAZ = base["mxcsr"]
    enter_worker = base["enter_worker"]
    packet_pow = kernels(dtype)[0]

    def kernel(parallel):
        loop = numba.prange if parallel else range

        def run(x, y, out, whole, chunks, per):
            mode = get_mxcsr() & FTZ_DAZ
            scalar = y.size == 1
            for c in loop(chunks):
                saved = enter_worker(mode)
                lo, hi = c * per, min(whole, (c + 1) * per)
                xs, os_ = x[lo:hi], out[lo:hi]  # from 0: no wraparound checks
                if scalar:
                    e = y[0]
                    for i in range(hi - lo):
                        os_[i] = packet_pow(xs[i], e)
                else:
                    ys = y[lo:hi]
                    for i in range(hi - lo):
                        os_[i] = packet_pow(xs[i], ys[i])
                set_mxcsr(saved)

        return numba.njit(parallel=parallel, **_OPTIONS)(run)

    return {False: kernel(False), True: kernel(True)}


def power_array_whole_packets(x, y, out):
    """``out[:whole] = generic_pow`` of the whole packets of the flat ``x`` (and ``y``);
    returns ``whole``, where the tail (libm's) starts."""
    from . import sums_fast
    from .pow import LANES

    flat = x.reshape(-1)
    whole = flat.size - flat.size % LANES[x.dtype]
    if whole:
        chunks = sums_fast._chunks(whole, 64)  # 1: serial, below sums_fast's parallel threshold
        per = -(-whole // chunks)  # elementwise: any cut gives the same bits
        _array_kernels(x.dtype)[chunks > 1](flat, y.reshape(-1), out.reshape(-1), whole, chunks, per)
    return whole
