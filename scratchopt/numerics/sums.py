"""Sums in Eigen's order: ``tf.reduce_sum`` and ``tf.reduce_mean``, all elements or over axes.

A float sum depends on the order of its additions; ``np.sum`` (pairwise) and TF (Eigen's
vectorised reducers) round differently, by up to hundreds of ULP. These follow Eigen's
order, bit for bit, on one intra-op thread (the parity tests pin it).

**The full reduction** (``reduce_sum``, Eigen's ``InnerMostDimReducer``). The elements are
split in halves, recursively, until a range has at most 1024 packets (``kLeafSize``); the
split points fall on packet boundaries of the whole array (packet P = 8 float32 / 4
float64: TF's x86 wheels are built for AVX, 256 bits). Each leaf is summed in packets:
four interleaved packet accumulators (``p_j += x[4*P*i + P*j : +P]``) when it has at least
4 packets, then the remaining whole packets into one accumulator, then the last < P
elements one by one, plus the accumulator's horizontal sum. Two halves combine as
``accum = 0; accum += left; accum += right``.

**Over some axes** (``reduce_sum_over``, ``reduce_mean_over``). TF first simplifies the
problem (``ReductionHelper::Simplify``): size-1 dimensions are dropped and neighbouring
dimensions that are both reduced, or both kept, are merged. What is left picks one of
Eigen's loops, and each adds in its own order:

==========  ================  ==========================================================
dims        reduced           order
==========  ================  ==========================================================
(n,)        all               the full reduction above (``reduce_sum``)
(R, C)      R                 "column" sums: whole packets of P columns use four
                              row-interleaved accumulators when R >= 16; the last
                              C % P columns are added row by row
(R, C)      C                 "row" sums: each row as the full reduction, its tree split
                              aligned to the row's offset in the flat array
(A, B, C)   B                 like column sums on each (B, C) slab, except that a packet
                              of P outputs that crosses a slab edge, and the last
                              (A*C) % P outputs, are added one by one
(A, B, C)   A and C           one by one, C the outer loop and A the inner one
more dims   any               reduced dims moved last (a transpose), then row sums
==========  ================  ==========================================================

``reduce_mean`` is that sum divided by ``T(count)``, except where nothing is really
reduced (all reduced dims have size 1): TF then copies the input, with no division.

CuPy arrays get CuPy's own ``sum`` (a GPU has its own order): compared under a bound.

**Fast path.** The functions here are the readable reference. When numba is installed
(the ``fast`` extra), NumPy float32/float64 arrays are summed by the compiled kernels of
``sums_fast``, which do the same additions in the same order: the same bits, tested
against these (``parity_tests/test_sums_fast.py``). ``SCRATCHOPT_BACKEND=numpy`` forces
the reference, as it does for the optimizers. ``sum_of_squares`` and ``sum_of_abs`` are
``reduce_sum(x * x)`` and ``reduce_sum(abs(x))`` without the temporary array on that path.
"""

import functools

import numpy as np

from . import sums_fast
from .fpenv import tf_arithmetic

_LEAF_PACKETS = 1024  # Eigen's kLeafSize: a range of more packets than this is split in two


def _packet_size(dtype):
    """Elements in one of Eigen's packets: TF's x86 wheels are built for AVX (256 bits)."""
    return 8 if dtype == np.float32 else 4


# --- the full reduction, and each row of a matrix as one ----------------------------------


@functools.lru_cache(maxsize=512)
def _eigen_tree(first, n, packet):
    """Eigen's split of [first, first + n) into leaves: (tree, leaves). A node is (left, right).

    A leaf is (offset relative to ``first``, length). The split points are aligned on
    packet boundaries of the *whole* array, so the tree depends on where the range starts
    (only modulo ``packet``): ``first`` is 0 for a whole array, a row's offset for a row.
    """
    leaves = []

    def split(begin, count):
        if count <= packet * _LEAF_PACKETS:
            leaves.append((begin - first, count))
            return len(leaves) - 1
        # Split near the middle, on a packet boundary counted from index 0.
        middle = packet * -(-(begin + -(-count // 2)) // packet)
        left = middle - begin  # < count: the halves are at least a leaf apart
        return split(begin, left), split(middle, count - left)

    return split(first, n), tuple(leaves)


def _hsum(p):
    """Eigen's horizontal add of one AVX packet (last axis)."""
    if p.shape[-1] == 8:  # float32: halves, then quarters, then pairs
        return ((p[..., 0] + p[..., 4]) + (p[..., 2] + p[..., 6])) + (
            (p[..., 1] + p[..., 5]) + (p[..., 3] + p[..., 7])
        )
    return (p[..., 0] + p[..., 2]) + (p[..., 1] + p[..., 3])


def _leaf_sums(rows, packet):
    """Eigen's InnerMostDimReducer on each row of ``rows`` (k leaves of one length L)."""
    k, length = rows.shape
    whole = (length // packet) * packet
    acc = np.zeros((k, packet), rows.dtype)
    start = 0
    if length >= 4 * packet:
        # Four packet accumulators, interleaved: p_j += x[4*P*i + P*j : ... + P].
        whole4 = (length // (4 * packet)) * (4 * packet)
        blocks = rows[:, :whole4].reshape(k, -1, 4, packet)
        p = np.add.accumulate(blocks, axis=1)[:, -1] + rows.dtype.type(0)  # strictly in order
        acc = ((p[:, 0] + p[:, 1]) + p[:, 2]) + p[:, 3]
        start = whole4
    for j in range(start, whole, packet):  # remaining whole packets into accumulator 0
        acc = acc + rows[:, j : j + packet]
    tail = np.zeros(k, rows.dtype)
    for j in range(whole, length):  # the last < P elements, one by one
        tail = tail + rows[:, j]
    return tail + _hsum(acc)


def _combine(node, sums, zero):
    """A tree node's sum: ``accum = 0; accum += left; accum += right``."""
    if isinstance(node, int):
        return sums[node]
    return (zero + _combine(node[0], sums, zero)) + _combine(node[1], sums, zero)


def _row_sums(rows):
    """Each row of a 2-D array as Eigen's full reduction, row r starting at offset r * n.

    The full reduction of a flat array is the one-row case.
    """
    k, n = rows.shape
    packet = _packet_size(rows.dtype)
    out = np.zeros(k, rows.dtype)
    if k == 0:
        return out
    if k == 1 or n % packet == 0:  # every row starts on a packet boundary: one tree for all
        out[:] = _aligned_row_sums(rows, 0, packet)
        return out
    # The tree's shape depends on the row's start modulo P, which repeats every P rows.
    starts = (np.arange(k) * n) % packet
    for residue in sorted(set(starts[:packet].tolist())):
        which = np.nonzero(starts == residue)[0]
        out[which] = _aligned_row_sums(rows[which], residue, packet)
    return out


def _aligned_row_sums(rows, first, packet):
    """The rows' sums, each row starting at ``first`` modulo ``packet`` in the flat array."""
    tree, leaves = _eigen_tree(first, rows.shape[1], packet)
    if len(rows) == 1 and len(leaves) > 1:  # one long row: its leaves of one length in one go
        row, sums = rows[0], [None] * len(leaves)
        by_length = {}
        for i, (offset, count) in enumerate(leaves):
            by_length.setdefault(count, []).append((i, offset))
        for count, items in by_length.items():
            offsets = np.array([offset for _, offset in items])
            leaf_sums = _leaf_sums(row[offsets[:, None] + np.arange(count)], packet)
            for (i, _), leaf_sum in zip(items, leaf_sums):
                sums[i] = leaf_sum
    else:
        sums = [_leaf_sums(rows[:, offset:offset + count], packet) for offset, count in leaves]
    return _combine(tree, sums, rows.dtype.type(0))


@tf_arithmetic()
def reduce_sum(x):
    """Sum of all elements in the order ``tf.reduce_sum`` uses on the CPU (a 0-d scalar).

    NumPy arrays get Eigen's order, bit for bit; CuPy arrays get CuPy's own ``sum``.

    >>> import numpy as np
    >>> x = np.ones(16, np.float32)
    >>> x[0] = 2**24                 # 1 more than this rounds back in float32
    >>> float(reduce_sum(x))         # the exact sum is 16777231; adding left to right gives 16777216
    16777230.0
    """
    if not isinstance(x, (np.ndarray, np.generic)):
        return x.sum()
    if x.size == 1:  # nothing to add up: TF copies the element (a -0.0 stays -0.0)
        return np.asarray(x).reshape(-1)[0].copy()
    if sums_fast.wanted(x):
        return x.dtype.type(sums_fast.reduce_sum(np.ascontiguousarray(x)))
    return _row_sums(np.ascontiguousarray(x).reshape(1, -1))[0]


@tf_arithmetic()
def sum_of_squares(x):
    """``reduce_sum(x * x)``, the same bits; on the fast path without the array ``x * x``.

    >>> import numpy as np
    >>> float(sum_of_squares(np.array([3.0, 4.0], np.float32)))
    25.0
    """
    if sums_fast.wanted(x) and x.size > 1:  # one element: reduce_sum's copy
        return x.dtype.type(sums_fast.reduce_sum(np.ascontiguousarray(x), "square"))
    return reduce_sum(x * x)


@tf_arithmetic()
def sums_of_squares(xs):
    """``[sum_of_squares(x) for x in xs]`` of NumPy arrays, stacked into one array: the same
    bits, with the fast path's checks made once for the list (a global norm's sums).

    >>> import numpy as np
    >>> sums_of_squares([np.array([3.0, 4.0]), np.array([1.0, 2.0])]).tolist()
    [25.0, 5.0]
    """
    if len(xs) == 0:
        raise ValueError("xs must hold at least one array, got an empty list")
    first = xs[0]
    if sums_fast.wanted(first) and all(type(x) is np.ndarray and x.dtype == first.dtype and x.size > 1 for x in xs):
        return np.array([sums_fast.reduce_sum(np.ascontiguousarray(x), "square") for x in xs], first.dtype)
    return np.stack([np.asarray(sum_of_squares(x)) for x in xs])


@tf_arithmetic()
def segment_sums_of_squares(flat, starts, sizes):
    """``[sum_of_squares(flat[a:a + n]) for a, n in zip(starts, sizes)]`` as one array: the
    squared norms of the params of a packed buffer (each a tensor of its own), the same bits;
    on the fast path one compiled call for all of them.

    >>> import numpy as np
    >>> segment_sums_of_squares(np.array([3.0, 4.0, 1.0, 2.0]), np.array([0, 2]), (2, 2)).tolist()
    [25.0, 5.0]
    """
    starts, sizes = np.asarray(starts, np.int64), tuple(sizes)
    _check_segments(flat, starts, _as_counts(sizes))
    if sums_fast.wanted(flat) and flat.flags.c_contiguous:
        return sums_fast.segment_sums(flat, starts, sizes, "square")
    return np.array([sum_of_squares(flat[a:a + n]) for a, n in zip(starts, sizes)], flat.dtype).reshape(-1)


@functools.lru_cache(maxsize=64)
def _as_counts(sizes):
    return np.array(sizes, np.int64).reshape(-1)


def _check_segments(flat, starts, counts):
    """ValueError unless every segment lies inside the 1-d ``flat`` (the compiled sum reads
    where it is told: it must not be told to read outside)."""
    if getattr(flat, "ndim", None) != 1:
        raise ValueError(f"flat must be a 1-d array, got shape {getattr(flat, 'shape', None)}")
    if starts.shape != counts.shape:
        raise ValueError(f"starts and sizes must have one entry per segment, got {starts.size} and {counts.size}")
    if counts.size and ((counts < 0).any() or (starts < 0).any() or (starts + counts > flat.size).any()):
        raise ValueError(f"every segment must lie inside flat (size {flat.size}): starts {starts.tolist()[:8]}, "
                         f"sizes {counts.tolist()[:8]}")


@tf_arithmetic()
def sum_of_abs(x):
    """``reduce_sum(abs(x))``, the same bits; on the fast path without the array ``abs(x)``.

    >>> import numpy as np
    >>> float(sum_of_abs(np.array([-3.0, 4.0])))
    7.0
    """
    if sums_fast.wanted(x) and x.size > 1:
        return x.dtype.type(sums_fast.reduce_sum(np.ascontiguousarray(x), "abs"))
    return reduce_sum(abs(x))


# --- over some axes (the table in the module docstring) ------------------------------------


def _reduction_plan(shape, axes):
    """TF's ``ReductionHelper::Simplify``: the merged dims and whether dim 0 is reduced."""
    reduced = [i in axes for i in range(len(shape))]
    start = 0
    while start < len(shape) and shape[start] == 1:  # leading 1s are skipped
        start += 1
    if start == len(shape):
        return [], True  # a scalar in disguise
    dims, reduce_first = [shape[start]], reduced[start]
    for i in range(start + 1, len(shape)):
        if shape[i] == 1:  # a size-1 dim joins the run it is in
            reduced[i] = reduced[i - 1]
        if reduced[i] != reduced[i - 1]:
            dims.append(shape[i])
        else:
            dims[-1] *= shape[i]
    return dims, reduce_first


def _sequential_sums(x, axis):
    """``accum = 0; accum += x[j]`` along ``axis``, strictly in order (Eigen's scalar loop)."""
    if x.shape[axis] == 0:
        return np.zeros(np.delete(x.shape, axis), x.dtype)
    # accumulate starts from x[0] instead of 0 + x[0]: the two differ only for an all -0.0
    # input (-0.0 instead of +0.0), which the final + 0 repairs; a subnormal x[0] is read
    # as 0 by the next addition either way (DAZ).
    return np.add.accumulate(x, axis=axis).take(-1, axis=axis) + x.dtype.type(0)


def _slab_sums(x):
    """(A, B, C) summed over B as Eigen's reducer that keeps the inner-most dim: (A, C)."""
    a, b, c = x.shape
    packet = _packet_size(x.dtype)
    if b < 16:  # whole packets, but added row by row: the same order
        return _sequential_sums(x, axis=1)
    # Output o is computed in a packet when its packet [o - o % P, +P) lies inside the
    # flat output and inside one row of C outputs; otherwise one coefficient at a time.
    o = np.arange(a * c)
    start = o - o % packet
    in_packet = (start + packet <= a * c) & (start % c + packet <= c)
    if not in_packet.any():
        return _sequential_sums(x, axis=1)
    whole = (b // 4) * 4
    p = _sequential_sums(x[:, :whole].reshape(a, whole // 4, 4, c), axis=1)  # 4 accumulators
    packed = ((p[:, 0] + p[:, 1]) + p[:, 2]) + p[:, 3]
    for j in range(whole, b):
        packed = packed + x[:, j]
    if in_packet.all():
        return packed  # each output's own sum: the one-by-one ones need not be computed
    return np.where(in_packet.reshape(a, c), packed, _sequential_sums(x, axis=1))


def _sum_over(x, axes, fast=None):
    """``tf.reduce_sum(x, axes)`` (keepdims=False) on a NumPy array: (result, count, copied).

    ``fast``: use ``sums_fast``'s kernels (the same bits); None decides by ``sums_fast.wanted``.
    """
    out_shape = tuple(s for i, s in enumerate(x.shape) if i not in axes)
    count = int(np.prod([x.shape[i] for i in axes], dtype=np.int64))
    dims, reduce_first = _reduction_plan(x.shape, axes)
    if len(dims) == 0 or (len(dims) == 1 and not reduce_first):
        return x.reshape(out_shape).copy(), count, True  # nothing to add up: a copy
    if x.size == 0:
        return np.zeros(out_shape, x.dtype), count, False
    y = np.ascontiguousarray(x).reshape(dims)
    if fast is None:
        fast = sums_fast.wanted(y)
    row_sums = sums_fast.row_sums if fast else _row_sums
    slab_sums = sums_fast.slab_sums if fast else _slab_sums
    if len(dims) == 1:
        result = row_sums(y.reshape(1, -1))[0]
    elif len(dims) == 2 and reduce_first:
        result = slab_sums(y.reshape(1, *dims))[0]
    elif len(dims) == 2:
        result = row_sums(y)
    elif len(dims) == 3 and reduce_first:
        a, b, c = dims
        rows = y.transpose(1, 2, 0).reshape(b, c * a)
        result = sums_fast.sequential_sums(rows) if fast else _sequential_sums(rows, axis=1)
    elif len(dims) == 3:
        result = slab_sums(y)
    else:  # TF transposes the reduced dims to the end, then sums rows
        kept = list(range(1 if reduce_first else 0, len(dims), 2))
        summed = list(range(0 if reduce_first else 1, len(dims), 2))
        shuffled = np.ascontiguousarray(y.transpose(kept + summed))
        result = row_sums(shuffled.reshape(int(np.prod([dims[i] for i in kept])), -1))
    return np.asarray(result, x.dtype).reshape(out_shape), count, False


def _axes_tuple(axes, ndim):
    axes = (axes,) if isinstance(axes, (int, np.integer)) else tuple(axes)
    out = set()
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of bounds for an array of rank {ndim}")
        out.add(int(a) % ndim)
    return out


def _keep(result, shape, axes, keepdims):
    if not keepdims:
        return result
    return result.reshape(tuple(1 if i in axes else s for i, s in enumerate(shape)))


@tf_arithmetic()
def reduce_sum_over(x, axes, keepdims=False):
    """``tf.reduce_sum(x, axes, keepdims)``: the sums in Eigen's order (the module's table).

    NumPy arrays get TF's bits; CuPy arrays get CuPy's own ``sum``.

    >>> import numpy as np
    >>> x = np.arange(6.0).reshape(2, 3)
    >>> reduce_sum_over(x, 1).tolist(), reduce_sum_over(x, 0, keepdims=True).tolist()
    ([3.0, 12.0], [[3.0, 5.0, 7.0]])
    """
    axes = _axes_tuple(axes, x.ndim)
    if not isinstance(x, np.ndarray):
        return x.sum(axis=tuple(sorted(axes)), keepdims=keepdims)
    result, _, _ = _sum_over(x, axes)
    return _keep(result, x.shape, axes, keepdims)


@tf_arithmetic()
def reduce_mean_over(x, axes, keepdims=False):
    """``tf.reduce_mean(x, axes, keepdims)``: ``reduce_sum_over / T(count)`` (a copy if count is 1).

    An empty reduction is NaN, as TF's. CuPy arrays get CuPy's own ``sum / count``.

    >>> import numpy as np
    >>> x = np.arange(6.0).reshape(2, 3)
    >>> reduce_mean_over(x, (0, 1)).tolist(), reduce_mean_over(x, 0).tolist()
    (2.5, [1.5, 2.5, 3.5])
    """
    axes = _axes_tuple(axes, x.ndim)
    if not isinstance(x, np.ndarray):
        count = int(np.prod([x.shape[i] for i in axes], dtype=np.int64))
        return x.sum(axis=tuple(sorted(axes)), keepdims=keepdims) / x.dtype.type(count)
    result, count, copied = _sum_over(x, axes)
    if not copied:
        result = result / x.dtype.type(count) if count else np.full_like(result, np.nan)
    return _keep(result, x.shape, axes, keepdims)
