"""Dropout's lines compiled (numba): the mask, ``where(keep, x * scale, 0)`` and ``where(keep, dy, 0) * scale``.

NumPy runs each line as two passes with a temporary (``x * scale``, then ``where``), and its
``where`` with a scalar is slow: 57 ms for 1e7 float32 elements on this project's VM, where
one compiled pass takes a few. Here each line is one loop that does the same operations per
element, so the bits are the same (``parity_tests/test_dropout_fast.py``): a kept element is
``x * scale`` (flushed to zero under ``tf_arithmetic`` as in NumPy), a dropped one ``+0``;
backward selects first, then multiplies, as TF's gradient does (so a dropped element is
``0 * scale``, and a NaN ``dy`` there gives 0).

Where it applies (``wanted``): numba installed, ``SCRATCHOPT_BACKEND`` not ``numpy``, C-contiguous
NumPy float32/float64 values and a boolean mask of the same shape (no ``noise_shape``
broadcast).

The mask (``keep_mask``): ``numerics.philox_fast`` draws TF's Philox numbers and compares
them with the threshold in one pass, for any NumPy float32/float64 draw (``mask_wanted``);
``parity_tests/test_philox.py`` checks it against ``numerics.philox``, the array code.
"""

import functools
import os

import numpy as np

from .. import memory
from ..numerics import sums_fast

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _compiled():
    """numba installed, and ``SCRATCHOPT_BACKEND`` not ``numpy``."""
    return os.environ.get("SCRATCHOPT_BACKEND") != "numpy" and sums_fast.available()


def wanted(values, keep):
    """Whether ``values`` (x or dy) and the mask ``keep`` take the compiled path."""
    return (type(values) is np.ndarray and values.dtype in _DTYPES and values.flags.c_contiguous
            and type(keep) is np.ndarray and keep.dtype == np.bool_ and keep.shape == values.shape
            and keep.flags.c_contiguous and _compiled())


def mask_wanted(xp, dtype):
    """Whether a mask drawn for ``xp`` (an array module) in ``dtype`` takes the compiled path."""
    return xp is np and np.dtype(dtype) in _DTYPES and _compiled()


def keep_mask(shape, seed, threshold, dtype):
    """``numerics.philox.stateless_uniform(shape, seed, dtype) >= threshold``, compiled."""
    from ..numerics import philox_fast

    return philox_fast.keep_mask(shape, seed, threshold, dtype)


@functools.cache
def _kernels():
    import numba

    base = sums_fast._kernels(8, "none")
    get_mxcsr, set_mxcsr, FTZ_DAZ = base["mxcsr"]
    enter_worker = base["enter_worker"]
    options = {"fastmath": False, "error_model": "numpy", "nogil": True}

    def kernel(parallel, backward):
        loop = numba.prange if parallel else range

        def run(values, keep, scale, zero, out, chunks):
            n = values.size
            per = (n + chunks - 1) // chunks
            mode = get_mxcsr() & FTZ_DAZ
            for c in loop(chunks):
                saved = enter_worker(mode)
                lo, hi = c * per, min(n, (c + 1) * per)
                v, k, o = values[lo:hi], keep[lo:hi], out[lo:hi]  # from 0: no wraparound checks
                for i in range(hi - lo):
                    if backward:  # where(keep, dy, 0) * scale
                        o[i] = (v[i] if k[i] else zero) * scale
                    else:  # where(keep, x * scale, 0)
                        o[i] = v[i] * scale if k[i] else zero
                set_mxcsr(saved)

        return numba.njit(parallel=parallel, **options)(run)

    return {(p, b): kernel(p, b) for p in (False, True) for b in (False, True)}


def _run(values, keep, scale, backward):
    out = memory.empty_like(values)  # a dropped output's memory when there is one
    parallel = sums_fast._parallel(values.size)
    chunks = sums_fast._chunks(values.size, 64) if parallel else 1
    t = values.dtype.type
    _kernels()[parallel, backward](values.reshape(-1), keep.reshape(-1), t(scale), t(0), out.reshape(-1), chunks)
    return out


def forward(x, keep, scale):
    """``where(keep, x * scale, 0)``."""
    return _run(x, keep, scale, backward=False)


def backward(dy, keep, scale):
    """``where(keep, dy, 0) * scale``."""
    return _run(dy, keep, scale, backward=True)
