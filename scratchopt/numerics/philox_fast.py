"""A dropout mask from TF's Philox words, compiled (numba): ``stateless_uniform(...) >= threshold``.

``philox.py`` is the readable reference, and it is slow in NumPy: each of the ten rounds is
a dozen whole-array passes over uint64 temporaries. Here one loop runs the same rounds on
one group's four words in registers (LLVM vectorises it across groups) and writes the mask
directly: one pass, one byte per value, the groups split between threads. For 1e7 float32
values that took 7.6 ms, against 576 ms for the array code and 57 ms for NumPy's own
generator (``benchmarks/dropout_mask.py``; ``benchmarks/results/intel-xeon-2c/
issue16_dropout_mask.txt``). Each group depends only on its index, so
the split does not change a bit. ``parity_tests/test_philox.py`` checks it against the
reference, and the reference against TF.

The floats are never built: ``float_from_bits(0x3F800000 | m) - 1`` is exactly ``m * 2**-23``
(``m < 2**23``, so both are exact), and likewise ``m * 2**-52`` in float64. So the kernel
compares ``float(m) * 2**-23`` with the threshold, which gives the same answer.

numba is optional (the ``fast`` extra): this module imports it, and is imported only when a
mask is drawn on the compiled path (``wanted``).
"""

import functools

import numba
import numpy as np

from . import philox, sums_fast

_OPTIONS = {"fastmath": False, "error_model": "numpy", "nogil": True}


@functools.cache
def _kernel(dtype, parallel):
    """``run(n, k0, k1, m2, m3, threshold, out, chunks)`` for float32 or float64 values."""
    per_group = philox.PER_GROUP[np.dtype(dtype)]
    t = np.dtype(dtype).type
    scale = t(2.0 ** -(np.finfo(dtype).nmant))  # 2**-23 or 2**-52
    u32, u64 = np.uint32, np.uint64
    mul0, mul1 = u64(philox.MULTIPLIERS[0]), u64(philox.MULTIPLIERS[1])
    bump0, bump1 = u32(philox.KEY_BUMPS[0]), u32(philox.KEY_BUMPS[1])
    low, shift = u64(0xFFFFFFFF), u64(32)
    loop = numba.prange if parallel else range

    @numba.njit(inline="always", **_OPTIONS)
    def words(g, k0, k1, m2, m3):
        c0, c1, c2, c3 = u32(u64(g) & low), u32(u64(g) >> shift), m2, m3
        for _ in range(10):
            p0 = mul0 * u64(c0)
            p1 = mul1 * u64(c2)
            c0, c1, c2, c3 = u32((p1 >> shift) ^ c1 ^ k0), u32(p1 & low), u32((p0 >> shift) ^ c3 ^ k1), u32(p0 & low)
            k0, k1 = u32(k0 + bump0), u32(k1 + bump1)  # numba widens uint32 sums: wrap them back
        return c0, c1, c2, c3

    @numba.njit(inline="always", **_OPTIONS)
    def values(w):  # the group's values, as multiples of 2**-23 (2**-52)
        if per_group == 4:
            return (t(w[0] & u32(0x7FFFFF)) * scale, t(w[1] & u32(0x7FFFFF)) * scale,
                    t(w[2] & u32(0x7FFFFF)) * scale, t(w[3] & u32(0x7FFFFF)) * scale)
        first = ((u64(w[0]) & u64(0xFFFFF)) << shift) | u64(w[1])
        second = ((u64(w[2]) & u64(0xFFFFF)) << shift) | u64(w[3])
        return t(first) * scale, t(second) * scale, t(0), t(0)

    def run(n, k0, k1, m2, m3, threshold, out, chunks):
        whole = n // per_group  # groups whose values all fit; the last, cut short, after them
        per = (whole + chunks - 1) // chunks
        for c in loop(chunks):
            first, stop = c * per, min(whole, (c + 1) * per)
            o = out[first * per_group:stop * per_group]  # indexed from 0: no wraparound checks
            for i in range(stop - first):
                u = values(words(first + i, k0, k1, m2, m3))
                for j in range(per_group):
                    o[u64(i * per_group + j)] = u[j] >= threshold
        if whole * per_group < n:
            u = values(words(whole, k0, k1, m2, m3))
            for j in range(n - whole * per_group):
                out[whole * per_group + j] = u[j] >= threshold

    return numba.njit(parallel=parallel, **_OPTIONS)(run)


def keep_mask(shape, seed, threshold, dtype):
    """``philox.stateless_uniform(shape, seed, dtype) >= threshold``, as a NumPy bool array."""
    dtype = np.dtype(dtype)
    out = np.empty(shape, np.bool_)
    (k0, k1), (m2, m3) = philox.key_counter(seed)
    parallel = sums_fast._parallel(out.size)
    chunks = sums_fast._chunks(out.size, 64) if parallel else 1
    _kernel(dtype, parallel)(out.size, np.uint32(k0), np.uint32(k1), np.uint32(m2), np.uint32(m3),
                             dtype.type(threshold), out.reshape(-1), chunks)
    return out
