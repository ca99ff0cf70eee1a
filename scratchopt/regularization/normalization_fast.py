"""BatchNormalization and LayerNormalization compiled (numba): the layers' own arithmetic, fewer passes.

``batch_normalization.py`` and ``layer_normalization.py`` are the readable reference: each
line a NumPy operation over the whole array, a temporary array per line. Here the same
operations, in the same order, run per element inside a few compiled loops, so the bits
are the same (``parity_tests/test_normalization_fast.py`` compares the two on drawn shapes
and values, -0.0, subnormals, inf and NaN included) and memory is read a few times
instead of a dozen:

===========================  ===================================================================
layer, call                  passes over memory (the reference makes about 10 to 20)
===========================  ===================================================================
BatchNormalization forward   column sums of x; of (x - mean)**2; y = x * inv + shift (+ the copy
                             of x that backward reads, written in the same pass)
BatchNormalization backward  column sums of dy and of x * dy in one pass; then dx
LayerNormalization forward   one pass: each row's mean, variance and y while the row is in cache
LayerNormalization backward  one pass: each row's two row sums and dx; then the column sums
                             (dbeta, dgamma) in one pass, with BatchNormalization's kernel
===========================  ===================================================================

The sums keep TF's orders (``numerics.sums``): a column sum over the rows is Eigen's
"slab" order (four row-interleaved accumulators for the columns in whole packets, then the
leftover rows; the last ``C % P`` columns one row at a time), which can be added up row by
row as the rows stream past; a row sum is Eigen's tree, its leaves placed by the row's
offset in the flat array (``sums_fast``'s plans and leaf kernel). The per-channel (C,)
arithmetic of BatchNormalization (rsqrt, the moving averages, dinv, dvar) stays in the
layer's NumPy code: it is C values, not N * C.

Where it applies (``wanted``): numba installed, ``SCRATCHOPT_BACKEND`` not ``numpy``, a
C-contiguous NumPy float32/float64 input normalized over (LayerNormalization) or
per (BatchNormalization) its **last** axis, as Keras's defaults are, with at least 2 rows
and 2 columns (with fewer, TF skips a reduction and copies: the reference handles it);
LayerNormalization also needs ``scale`` and ``center`` (the defaults). Everything else
takes the reference.

Flush-to-zero: the serial kernels run in the calling thread, inside the layers'
``tf_arithmetic``; the parallel ones set the caller's FTZ/DAZ bits in each worker for its
chunk (as ``sums_fast`` does). Parallel (from ``PARALLEL_MIN_ELEMENTS``): a
column sum's four accumulators are independent, and so are its columns, so its tasks are
two groups of accumulators (rows 0, 1 and 2, 3 mod 4) times ``threads // 2`` column ranges,
each going down the rows once (``column_sums``, ``ROW_BLOCK``); the elementwise passes and
LayerNormalization's row passes split the rows into chunks.

Both sums once went otherwise. The four accumulators were four tasks, each sweeping all of
memory for every fourth row; and LayerNormalization's backward added its column sums in the
pass that computes dx, as the same four tasks. The row passes now take contiguous chunks
and the column sums their own pass: ``benchmarks/results/intel-xeon-2c/README.md`` has
the steps before and after, ``python benchmarks/normalization_passes.py`` each pass.

Each layer writes the copy of ``x`` that its backward reads into its last call's copy when
the shapes agree (``_buffer``): only backward reads it, and a fresh array costs the kernel's
zeroing of its pages. The outputs ``y`` and ``dx`` come from ``scratchopt.memory``: the
memory of a dropped earlier output when there is one, for the same reason.
"""

import functools
import os

import numpy as np

from .. import memory
from ..numerics import sums_fast

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: From this many elements on, the kernels run in parallel. They do more per element than
#: a plain sum (``sums_fast.PARALLEL_MIN_ELEMENTS``, 262,144), so threads pay off sooner. On this
#: project's 2-core VM, forward + backward, serial against 2 threads: LayerNormalization
#: (1000, 100) 0.43 vs 0.30 ms, (10000, 100) 3.2 vs 2.1 ms; BatchNormalization 0.32 vs
#: 0.32 ms and 2.6 vs 2.3 ms.
PARALLEL_MIN_ELEMENTS = 1 << 16

#: Rows per block of the column sums (a multiple of 4: block starts keep ``row % 4``). A task
#: adds its accumulators' rows of a block one accumulator after the other, while the block
#: is in cache. ``python benchmarks/normalization_passes.py --row-block B`` on this project's
#: 2-core VM, (100000, 100) float32, ``sum(x)`` in a BatchNormalization step: 2.82, 2.05,
#: 1.83 and 1.97 ms for B = 16, 64, 128, 512. With ``--groups``: 2.40 ms when the two
#: threads split the columns only (each then reads a few lines of every row), 1.91 ms for
#: two groups of accumulators (the default), 3.46 ms for four one-accumulator tasks.
ROW_BLOCK = 128


def wanted(x, last_axis):
    """Whether ``x`` takes the compiled path (see the module's docstring)."""
    return (type(x) is np.ndarray and x.dtype in _DTYPES and x.flags.c_contiguous and x.ndim >= 2
            and last_axis and x.shape[-1] >= 2 and x.size // x.shape[-1] >= 2
            and os.environ.get("SCRATCHOPT_BACKEND") != "numpy" and sums_fast.available())


def _packet(dtype):
    return 8 if dtype == np.float32 else 4


def _threads():
    from ..optimizers.engine import fused_cpu

    return fused_cpu._threads()


def _parallel(size):
    return size >= PARALLEL_MIN_ELEMENTS and _threads() > 1


# --- the column sums in Eigen's slab order, row by row -------------------------------------------


def _slab_layout(rows, cols, packet):
    """``(whole, single_from)`` for column sums over ``rows`` rows of ``cols`` (``sums._slab_sums``
    with A = 1): rows below ``whole`` go to accumulator ``row % 4``, the rest are added after
    the four are combined; columns from ``single_from`` on are added one row at a time from 0.
    With fewer than 16 rows every column is one by one, which is ``whole = 0``: the combined
    accumulators are then ``+0`` and the rows are added in order, the same additions."""
    if rows < 16:
        return 0, cols
    return (rows // 4) * 4, (cols // packet) * packet


def _row_bounds(rows, parallel):
    """The rows' split among the threads (one chunk when serial), as chunk bounds."""
    chunks = _threads() if parallel else 1
    per = -(-rows // chunks)
    return np.array(sorted({min(rows, k * per) for k in range(chunks + 1)}), np.int64)


@functools.cache
def _kernels(packet):
    """Every kernel for one dtype (packet 8: float32; 4: float64). numba freezes the
    closure's constants (the dtype ``T``) into the code, so no literal widens a float32."""
    import numba

    T = np.float32 if packet == 8 else np.float64
    options = {"fastmath": False, "error_model": "numpy", "nogil": True}
    inline = dict(options, inline="always")  # the helpers: no call (and no copy of their array arguments)
    base = sums_fast._kernels(packet, "none")
    leaf, leaf_of, leaf_pair = base["leaf"], base["leaf_of"], base["leaf_pair"]
    get_mxcsr, set_mxcsr, FTZ_DAZ = base["mxcsr"]
    enter_worker = base["enter_worker"]
    P = packet

    # -- Column sums over the rows of (N, C): BatchNormalization's statistics and backward
    #    sums, and LayerNormalization's dbeta and dgamma -----------------------------------

    def column_sums(kind, parallel):
        loop = numba.prange if parallel else range

        @numba.njit(**inline)
        def add(x, dy, mean, rows_r, i, c, acc, acc2, r):
            """Row i, column c into ``acc[r, c]``: kind 0: x; 1: (x - mean)**2 (TF's
            SquaredDifference, ``d = x - mean; d * d``); 2: dy, and x * dy into ``acc2``;
            3 (LayerNormalization's dbeta and dgamma): dy, and ``r * (x * dy + (-mean) * dy)``
            with row i's ``mean`` and ``r`` (``rows_r``)."""
            if kind == 0:
                acc[r, c] += x[i, c]
            elif kind == 1:
                d = x[i, c] - mean[c]
                acc[r, c] += d * d
            elif kind == 2:
                acc[r, c] += dy[i, c]
                acc2[r, c] += x[i, c] * dy[i, c]
            else:
                acc[r, c] += dy[i, c]
                acc2[r, c] += rows_r[i] * (x[i, c] * dy[i, c] + (-mean[i]) * dy[i, c])

        def kernel(x, dy, mean, rows_r, whole, single_from, out, out2, bounds, groups):
            """Column sums over the N rows into ``out[0]`` (and ``out2[0]``), in Eigen's slab
            order (``_slab_layout``). A task is a range of columns (``bounds``) and a group of
            the four accumulators (``groups``: 1, 2 or 4 groups). It goes down the rows once,
            in blocks of ``ROW_BLOCK`` rows, and in each block adds the rows of its
            accumulators (row % 4), one accumulator after the other, while the block is in
            cache. Columns are independent, and so are the four accumulators; the rows of
            one accumulator are added in order."""
            rows, cols = x.shape
            mode = get_mxcsr() & FTZ_DAZ
            ranges = bounds.size - 1
            per_group = 4 // groups
            part = np.zeros((ranges * groups, 4, cols), x.dtype)  # each task its own accumulators
            part2 = np.zeros((ranges * groups, 4, cols), x.dtype)
            for task in loop(ranges * groups):
                saved = enter_worker(mode)
                k, g = task // groups, task % groups
                lo, hi = np.uint64(bounds[k]), np.uint64(bounds[k + 1])  # unsigned: no negative-index check
                mid = max(lo, min(hi, np.uint64(single_from)))  # [lo, mid): in whole packets; [mid, hi): one by one
                for b0 in range(0, whole, ROW_BLOCK):
                    b1 = min(whole, b0 + ROW_BLOCK)
                    for j in range(g * per_group, (g + 1) * per_group):
                        for i in range(b0 + j, b1, 4):
                            for c in range(lo, mid):
                                add(x, dy, mean, rows_r, i, c, part[task], part2[task], j)
                    if g == 0:  # the one-by-one columns, every row in order
                        for i in range(b0, b1):
                            for c in range(mid, hi):
                                add(x, dy, mean, rows_r, i, c, out, out2, 0)
                set_mxcsr(saved)
            for k in range(ranges):
                mid = max(bounds[k], min(bounds[k + 1], single_from))
                t0, t1 = k * groups, k * groups + 1 // per_group  # the task that holds accumulator j
                t2, t3 = k * groups + 2 // per_group, k * groups + 3 // per_group
                for c in range(bounds[k], mid):  # ((acc0 + acc1) + acc2) + acc3
                    out[0, c] = ((part[t0, 0, c] + part[t1, 1, c]) + part[t2, 2, c]) + part[t3, 3, c]
                    out2[0, c] = ((part2[t0, 0, c] + part2[t1, 1, c]) + part2[t2, 2, c]) + part2[t3, 3, c]
            for i in range(whole, rows):  # the rows after the last four, in order
                for c in range(cols):
                    add(x, dy, mean, rows_r, i, c, out, out2, 0)

        return numba.njit(parallel=parallel, **options)(kernel)

    # -- BatchNormalization's elementwise passes: x is (N, C), channel last ----------------------

    def bn_output(parallel):
        loop = numba.prange if parallel else range

        def kernel(x, inv, shift, y, kept, bounds):
            """``y = x * inv + shift`` per channel, and ``kept = x`` (backward's copy)."""
            cols = x.shape[1]
            mode = get_mxcsr() & FTZ_DAZ
            for k in loop(bounds.size - 1):
                saved = enter_worker(mode)
                for i in range(bounds[k], bounds[k + 1]):
                    x_row, y_row, kept_row = x[i], y[i], kept[i]
                    for c in range(cols):
                        e = x_row[c]
                        kept_row[c] = e
                        y_row[c] = e * inv[c] + shift[c]
                set_mxcsr(saved)

        return numba.njit(parallel=parallel, **options)(kernel)

    def bn_dx(parallel):
        loop = numba.prange if parallel else range

        def kernel(x, dy, inv, a, b, mean, batch_stats, dx, bounds):
            """``dx = (dy * inv + a) + b * (x - mean)``; ``dy * inv`` with moving statistics."""
            cols = x.shape[1]
            mode = get_mxcsr() & FTZ_DAZ
            for k in loop(bounds.size - 1):
                saved = enter_worker(mode)
                for i in range(bounds[k], bounds[k + 1]):
                    x_row, dy_row, dx_row = x[i], dy[i], dx[i]
                    if batch_stats:
                        for c in range(cols):
                            dx_row[c] = (dy_row[c] * inv[c] + a[c]) + b[c] * (x_row[c] - mean[c])
                    else:
                        for c in range(cols):
                            dx_row[c] = dy_row[c] * inv[c]
                set_mxcsr(saved)

        return numba.njit(parallel=parallel, **options)(kernel)

    # -- LayerNormalization: x is (R, M), each row normalized ----------------------------------
    #
    # Rows go in blocks of ``block`` (a few KiB): first every row sum of the block, then the
    # elementwise lines. Kept apart, each loop stays simple enough for LLVM to vectorise;
    # interleaved per row, the leaf sums ran 3x slower.

    @numba.njit(**inline)
    def whole_row(plans, q, m):
        """Whether plan ``q`` of rows of ``m`` is one leaf: the whole row."""
        _, offsets, lengths, counts = plans[:4]
        return counts[q] == 1 and offsets[q, 0] == 0 and lengths[q, 0] == m

    @numba.njit(**options)
    def tree_sums(src, src_first, first, count, plans, out, sums, acc):
        """``out[k]`` = Eigen's tree sum of ``src[src_first + k]``, the flat array's row
        ``first + k`` (which decides the tree's plan), for k < ``count``. Two rows that are
        one leaf each are summed side by side (``leaf_pair``; ``acc``: 2 * P elements)."""
        plan_of, offsets, lengths, counts, lefts, rights, inner, roots = plans
        m = src.shape[1]
        flat = src.reshape(src.size)
        k = 0
        while k < count:
            q = plan_of[((first + k) * m) % P]
            row = src[src_first + k]
            n = counts[q]
            if whole_row(plans, q, m):  # one leaf: the whole row
                if k + 1 < count and whole_row(plans, plan_of[((first + k + 1) * m) % P], m):
                    lo = (src_first + k) * m
                    out[k], out[k + 1] = leaf_pair(flat, lo, m, lo + m, m, acc)
                    k += 2
                    continue
                out[k] = leaf_of(row, m, acc)
                k += 1
                continue
            for j in range(n):
                sums[j] = leaf(row, offsets[q, j], lengths[q, j], acc)
            for j in range(inner[q]):
                sums[n + j] = (T(0) + sums[lefts[q, j]]) + sums[rights[q, j]]
            out[k] = sums[roots[q]]
            k += 1

    def ln_forward(parallel):
        loop = numba.prange if parallel else range

        def kernel(x, gamma, beta, eps, plans, y, kept, mean, r, bounds, block, width):
            """Per row: mean, variance, r = 1 / sqrt(var + eps), then
            ``inv = r * gamma; y = x * inv + ((-mean) * inv + beta)``."""
            m = x.shape[1]
            count = T(m)
            mode = get_mxcsr() & FTZ_DAZ
            for k in loop(bounds.size - 1):
                saved = enter_worker(mode)
                v = np.empty((block, m), x.dtype)
                s = np.empty(block, x.dtype)
                sums = np.empty(width, x.dtype)
                acc = np.empty(2 * P, x.dtype)
                for lo in range(bounds[k], bounds[k + 1], block):
                    n = min(block, bounds[k + 1] - lo)
                    tree_sums(x, lo, lo, n, plans, s, sums, acc)
                    for b in range(n):
                        mu = s[b] / count
                        mean[lo + b] = mu
                        for j in range(m):
                            d = x[lo + b, j] - mu
                            v[b, j] = d * d
                    tree_sums(v, 0, lo, n, plans, s, sums, acc)
                    for b in range(n):
                        i = lo + b
                        ri = T(1) / np.sqrt(s[b] / count + eps)
                        r[i] = ri
                        neg = -mean[i]
                        for j in range(m):
                            inv = ri * gamma[j]
                            e = x[i, j]
                            kept[i, j] = e
                            y[i, j] = e * inv + (neg * inv + beta[j])
                set_mxcsr(saved)

        return numba.njit(parallel=parallel, **options)(kernel)

    @numba.njit(**inline)
    def rsqrt_grad(r, dr, packed):
        """``numerics.rsqrt_grad`` of one element: the packet form or the tail form."""
        if packed:
            r_dr = T(0) if dr == 0 else r * dr
            return T(0) if r_dr == 0 else ((r * r) * T(-0.5)) * r_dr
        return T(0) if dr == 0 else (T(-0.5) * (dr * r)) * (r * r)

    def ln_dx(parallel):
        loop = numba.prange if parallel else range

        def kernel(x, dy, gamma, mean, r, plans, packed_rows, dx, bounds, block, width):
            """Every row's dx, the rows split into chunks. Per block of rows: the two row
            sums (of ``dy * inv`` and of ``dinv * gamma``), then the dx line."""
            m = x.shape[1]
            count = T(m)
            mode = get_mxcsr() & FTZ_DAZ
            for k in loop(bounds.size - 1):
                saved = enter_worker(mode)
                u, v = np.empty((block, m), x.dtype), np.empty((block, m), x.dtype)
                su, sv = np.empty(block, x.dtype), np.empty(block, x.dtype)
                sums = np.empty(width, x.dtype)
                acc = np.empty(2 * P, x.dtype)
                for lo in range(bounds[k], bounds[k + 1], block):
                    n = min(block, bounds[k + 1] - lo)
                    for b in range(n):
                        i = lo + b
                        ri, neg = r[i], -mean[i]
                        for j in range(m):
                            inv = ri * gamma[j]
                            dinv = x[i, j] * dy[i, j] + neg * dy[i, j]
                            u[b, j] = dy[i, j] * inv  # d(-mean), summed over the row
                            v[b, j] = dinv * gamma[j]  # dr, summed over the row
                    tree_sums(u, 0, lo, n, plans, su, sums, acc)
                    tree_sums(v, 0, lo, n, plans, sv, sums, acc)
                    for b in range(n):
                        i = lo + b
                        ri, mu = r[i], mean[i]
                        dvar = rsqrt_grad(ri, sv[b], i < packed_rows)
                        a = (-su[b]) / count
                        c = T(2) * (dvar / count)
                        for j in range(m):
                            dx[i, j] = (dy[i, j] * (ri * gamma[j]) + a) + c * (x[i, j] - mu)
                set_mxcsr(saved)

        return numba.njit(parallel=parallel, **options)(kernel)

    both = (False, True)
    return {"column_sums": {(k, p): column_sums(k, p) for k in range(4) for p in both},
            "bn_output": {p: bn_output(p) for p in both}, "bn_dx": {p: bn_dx(p) for p in both},
            "ln_forward": {p: ln_forward(p) for p in both}, "ln_dx": {p: ln_dx(p) for p in both}}


# --- BatchNormalization ---------------------------------------------------------------------------


def _as_rows(a):
    return a.reshape(-1, a.shape[-1])


def _column_bounds(cols, packet, ranges):
    """Up to ``ranges`` column ranges (fewer when narrow), cut at whole pairs of packets."""
    width = 2 * packet
    chunks = min(ranges, max(1, cols // width))
    per = -(-(cols // width) // chunks) * width
    return np.array([min(cols, k * per) for k in range(chunks)] + [cols], np.int64)


def _tasks(cols, packet, parallel):
    """The column sums' tasks, as ``(column bounds, accumulator groups)``: serial, one task;
    in parallel, the accumulators in two groups (0, 1 and 2, 3) and the columns in
    ``threads // 2`` ranges. See ``ROW_BLOCK`` for what that was measured against."""
    threads = _threads() if parallel else 1
    if threads < 2:
        return _column_bounds(cols, packet, 1), 1
    return _column_bounds(cols, packet, threads // 2), 2


def _column_sums(x, dy, mean, kind, rows_r=None):
    """Column sums of ``x`` (kind 0), ``(x - mean)**2`` (1), ``dy`` and ``x * dy`` (2), or
    ``dy`` and ``r * (x * dy + (-mean) * dy)`` with per-row ``mean`` and ``r`` (3)."""
    rows, cols = x.shape
    packet, parallel = _packet(x.dtype), _parallel(x.size)
    whole, single_from = _slab_layout(rows, cols, packet)
    out, out2 = np.zeros((1, cols), x.dtype), np.zeros((1, cols), x.dtype)
    _kernels(packet)["column_sums"][kind, parallel](
        x, x if dy is None else dy, x[0] if mean is None else mean, x[0] if rows_r is None else rows_r,
        whole, single_from, out, out2, *_tasks(cols, packet, parallel))
    return out[0], out2[0]


def batch_moments(x):
    """``nn.layer.moments(x, all axes but the last)``, as (C,) arrays: the mean and the variance."""
    rows = _as_rows(x)
    t = x.dtype.type(rows.shape[0])
    mean = _column_sums(rows, None, None, 0)[0] / t
    return mean, _column_sums(rows, None, mean, 1)[0] / t


def _buffer(x, reuse):
    """``reuse`` if it can hold a copy of ``x``, else a new array. The layers pass their
    last call's copy of ``x``, which no one else reads: writing into it saves the kernel's
    zeroing of fresh pages (about 4 ms per 40 MB here), which a new array costs."""
    if (type(reuse) is np.ndarray and reuse.shape == x.shape and reuse.dtype == x.dtype
            and reuse.flags.c_contiguous and reuse.flags.writeable):
        return reuse
    return np.empty_like(x)


def batch_output(x, inv, shift, reuse=None):
    """``x * inv + shift`` over the last axis, and a copy of ``x`` (into ``reuse`` if it
    fits): ``(y, x_copy)``."""
    rows = _as_rows(x)
    y, kept = memory.empty_like(x), _buffer(x, reuse)
    parallel = _parallel(x.size)
    bounds = _row_bounds(rows.shape[0], parallel)
    _kernels(_packet(x.dtype))["bn_output"][parallel](rows, inv.reshape(-1), shift.reshape(-1),
                                                       _as_rows(y), _as_rows(kept), bounds)
    return y, kept


def batch_backward_sums(x, dy):
    """``(sum(dy), sum(x * dy))`` over all axes but the last, in one pass."""
    return _column_sums(_as_rows(x), np.ascontiguousarray(_as_rows(dy)), None, 2)


def batch_dx(x, dy, inv, batch_terms=None):
    """``(dy * inv + a) + b * (x - mean)`` for ``batch_terms = (a, b, mean)``; ``dy * inv``
    without them (the moving statistics)."""
    rows = _as_rows(x)
    dx = memory.empty_like(x)
    parallel = _parallel(x.size)
    a, b, mean = batch_terms if batch_terms is not None else (inv, inv, inv)  # unread then
    flat = (v.reshape(-1) for v in (inv, a, b, mean))
    _kernels(_packet(x.dtype))["bn_dx"][parallel](rows, np.ascontiguousarray(_as_rows(dy)), *flat,
                                                  batch_terms is not None, _as_rows(dx),
                                                  _row_bounds(rows.shape[0], parallel))
    return dx


# --- LayerNormalization ---------------------------------------------------------------------------


def _block(m):
    """Rows per block: about 16 KiB of float32 (at least one row)."""
    return max(1, min(64, 4096 // m))


def _ln_plans(m, packet):
    plans = sums_fast._row_plans(m, packet)
    width = plans[1].shape[1] + plans[4].shape[1]
    return plans, width


def layer_forward(x, gamma, beta, eps, reuse=None):
    """``(y, x_copy, mean, r)``: ``mean`` and ``r = rsqrt(var + eps)`` are (R,) over the rows;
    the copy of ``x`` goes into ``reuse`` if it fits."""
    rows = _as_rows(x)
    count, m = rows.shape
    packet = _packet(x.dtype)
    plans, width = _ln_plans(m, packet)
    y, kept = memory.empty_like(x), _buffer(x, reuse)
    mean, r = np.empty(count, x.dtype), np.empty(count, x.dtype)
    parallel = _parallel(x.size)
    bounds = _row_bounds(count, parallel)
    _kernels(packet)["ln_forward"][parallel](rows, gamma.reshape(-1), beta.reshape(-1), x.dtype.type(eps), plans,
                                             _as_rows(y), _as_rows(kept), mean, r, bounds, _block(m), width)
    return y, kept, mean, r


def layer_backward(x, dy, gamma, mean, r):
    """``(dx, dgamma, dbeta)`` of ``layer_forward`` (``dgamma``, ``dbeta``: (M,)): dx row by
    row, then the column sums ``dbeta = sum(dy)`` and ``dgamma = sum(r * dinv)`` over the rows."""
    rows = _as_rows(x)
    count, m = rows.shape
    packet = _packet(x.dtype)
    plans, width = _ln_plans(m, packet)
    dy = np.ascontiguousarray(_as_rows(dy))
    dx = memory.empty_like(x)
    parallel = _parallel(x.size)
    _kernels(packet)["ln_dx"][parallel](rows, dy, gamma.reshape(-1), mean, r, plans, count - count % packet,
                                        _as_rows(dx), _row_bounds(count, parallel), _block(m), width)
    dbeta, dgamma = _column_sums(rows, dy, mean, 3, r)
    return dx, dgamma, dbeta
