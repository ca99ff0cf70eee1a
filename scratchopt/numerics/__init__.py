"""TensorFlow's arithmetic, reproduced to the last bit: the four rules parity needs.

The optimizers are written with ordinary ``+ - * /`` and ``sqrt``; those are IEEE-exact
in NumPy and in TensorFlow's CPU kernels alike (no FMA contraction on either side), so
doing the same operations in the same order gives the same bits. Four things are not
automatic, and each lives here so the optimizer files can stay readable
(measured facts: ``shared/KERAS_SEMANTICS.md`` §0 and §9):

1. **Python-float constants** (``as_dtype`` / ``through_float32``). Keras hands a Python
   float to TensorFlow in one of two ways. ``ops.multiply(x, 0.1)`` converts it straight
   to ``x``'s dtype, rounding the double once. ``ops.cast(0.9, float64)`` first builds a
   *float32* tensor, so a float64 model sees ``0.8999999761581421``. The learning rate
   always takes the float32 road: Keras keeps it in a float32 variable.
2. **Flush to zero** (``flush_denormals``). TF's CPU kernels run with the FTZ and DAZ
   bits of the x86 MXCSR register set: subnormal inputs read as 0 and subnormal results
   become 0. We set the same bits around an optimizer step (and restore them after), so
   NumPy's own ufuncs flush exactly where TensorFlow's do.
3. **Scalar powers, cosines and logs** (``power``, ``cos``, ``log``). Adam's ``beta_1 ** t``
   and every schedule's ``pow``/``cos``/``log`` run TF's scalar kernels, which are the C
   library's ``powf``/``cosf``/``logf`` (``pow``/``cos``/``log`` in float64). NumPy's own
   float32 ``np.power``/``np.cos``/``np.log`` are up to 1 ULP away, so we call libm.
4. **Summation order** (``reduce_sum``). A float sum depends on its order. TensorFlow
   sums with Eigen's vectorised tree: packets of 8 float32 (4 float64) in four
   interleaved accumulators, split in halves above 1024 packets. ``np.sum`` uses
   another order and differs by up to hundreds of ULP; ``reduce_sum`` follows Eigen's.

On CuPy arrays none of this applies (a GPU has its own libm, FMA contraction and
reduction order): GPU results are compared with the NumPy path under a bound, not bitwise.
"""

import contextlib
import ctypes
import ctypes.util
import functools
import platform
import threading

import numpy as np

_libm = ctypes.CDLL(ctypes.util.find_library("m"))  # the C library TF's scalar kernels call

# --- 1. Python floats becoming tensors -------------------------------------------------


def as_dtype(x, dtype):
    """``x`` rounded once to ``dtype``: what ``ops.add(tensor, x)`` does with a Python float."""
    return np.dtype(dtype).type(x)


def through_float32(x, dtype):
    """``x`` rounded to float32, then widened to ``dtype``: what ``ops.cast(x, dtype)`` does."""
    return np.dtype(dtype).type(np.float32(x))


def keras_cast(x, dtype):
    """``ops.cast(x, dtype)`` for a Python number, NumPy scalar or NumPy array.

    ``tf.cast`` first makes a tensor of ``x``: a Python float becomes float32 (so it is
    rounded through float32), a Python int an integer tensor, a NumPy value keeps its own
    dtype. Then it converts that tensor to ``dtype``.
    """
    if type(x) is float:
        x = np.float32(x)
    return np.asarray(x).astype(dtype)


# --- 2. Flush-to-zero ---------------------------------------------------------------------

_FTZ_DAZ = 0x8040  # MXCSR bit 15 (flush to zero) | bit 6 (denormals are zero)


class _FEMode(ctypes.Structure):  # glibc's femode_t on x86-64
    _fields_ = [("control_word", ctypes.c_ushort), ("reserved", ctypes.c_ushort),
                ("mxcsr", ctypes.c_uint)]


#: Whether this machine can flush subnormals like TF (x86-64 with glibc's fegetmode).
FTZ_SUPPORTED = platform.machine() in ("x86_64", "AMD64") and hasattr(_libm, "fesetmode")


@contextlib.contextmanager
def flush_denormals():
    """Run the block with FTZ+DAZ set for this thread, as TF's CPU kernels run.

    >>> import numpy as np
    >>> with flush_denormals():
    ...     print(np.float32(1e-30) * np.float32(1e-10))
    0.0

    Outside the block the thread's floating-point mode is exactly what it was. Where
    the platform cannot (not x86-64/glibc: see ``FTZ_SUPPORTED``), this does nothing,
    and results may differ from TF's in the subnormal range only.
    """
    if not FTZ_SUPPORTED:
        yield
        return
    saved = _FEMode()
    _libm.fegetmode(ctypes.byref(saved))
    flushing = _FEMode(saved.control_word, saved.reserved, saved.mxcsr | _FTZ_DAZ)
    _libm.fesetmode(ctypes.byref(flushing))
    try:
        yield
    finally:
        _libm.fesetmode(ctypes.byref(saved))


_inside = threading.local()


@contextlib.contextmanager
def tf_arithmetic():
    """TF's CPU float environment for a block (or, as ``@tf_arithmetic()``, a function).

    Flush-to-zero as above, and inf/NaN treated as results, not NumPy warnings. Inside
    an outer ``tf_arithmetic`` block of the same thread nothing is set again (an optimizer
    step runs its scalars' ``pow`` inside its own block: that saves microseconds a step).
    """
    if getattr(_inside, "active", False):
        yield
        return
    _inside.active = True
    try:
        with np.errstate(all="ignore"), flush_denormals():
            yield
    finally:
        _inside.active = False


# --- 3. pow, cos and log through the C library ------------------------------------------


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
    """
    base = np.asarray(base)
    return _libm_elementwise("pow", base, np.asarray(exponent, base.dtype))


def cos(x):
    """``cos(x)`` as TF's scalar ``Cos`` computes it: libm ``cosf`` / ``cos``."""
    return _libm_elementwise("cos", x)


def log(x):
    """``log(x)`` as TF's scalar ``Log`` computes it: libm ``logf`` / ``log``."""
    return _libm_elementwise("log", x)


# --- 4. Eigen's summation order -----------------------------------------------------------

_LEAF_PACKETS = 1024  # Eigen's kLeafSize: a range of more packets than this is split in two


def _packet_size(dtype):
    # TF's x86 wheels are built for AVX: 256-bit packets.
    return 8 if dtype == np.float32 else 4


@functools.lru_cache(maxsize=512)
def _eigen_tree(n, packet):
    """Eigen's split of [0, n) into leaves: (tree, leaves). A node is (left, right)."""
    leaves = []

    def split(first, count):
        if count <= packet * _LEAF_PACKETS:
            leaves.append((first, count))
            return len(leaves) - 1
        # Split near the middle, on a packet boundary counted from index 0.
        middle = packet * -(-(first + -(-count // 2)) // packet)
        left = middle - first
        return split(first, left), split(middle, count - left)

    return split(0, n), tuple(leaves)


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


@tf_arithmetic()
def reduce_sum(x):
    """Sum of all elements in the order ``tf.reduce_sum`` uses on the CPU (a 0-d scalar).

    NumPy arrays get Eigen's order, bit for bit; CuPy arrays get CuPy's own ``sum``.
    """
    if not isinstance(x, (np.ndarray, np.generic)):
        return x.sum()
    flat = np.ascontiguousarray(x).reshape(-1)
    dtype = flat.dtype
    packet = _packet_size(dtype)
    tree, leaves = _eigen_tree(flat.size, packet)
    sums = [None] * len(leaves)
    by_length = {}
    for i, (first, count) in enumerate(leaves):
        by_length.setdefault(count, []).append((i, first))
    for count, items in by_length.items():
        firsts = np.array([first for _, first in items])
        rows = flat[firsts[:, None] + np.arange(count)]
        for (i, _), s in zip(items, _leaf_sums(rows, packet)):
            sums[i] = s

    def combine(node):
        if isinstance(node, int):
            return sums[node]
        return (dtype.type(0) + combine(node[0])) + combine(node[1])  # accum = 0; += left; += right

    return combine(tree)


# --- Units in the last place, to report how far two results are -----------------------


def ulp_distance(a, b):
    """Elementwise distance in representable floats between two same-dtype NumPy arrays.

    NaN against NaN counts as 0; NaN against a number as the largest distance.
    """
    a, b = np.asarray(a), np.asarray(b)
    itype = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}[a.dtype]
    ia, ib = a.view(itype).astype(np.int64), b.view(itype).astype(np.int64)
    sign = np.int64(np.iinfo(itype).min)
    # Map sign-magnitude bit patterns onto a line where neighbours differ by 1.
    ia = np.where(ia < 0, sign - ia, ia)
    ib = np.where(ib < 0, sign - ib, ib)
    # Same sign: the integer difference is exact. Opposite signs: the distance can pass
    # 2**63, so add the two magnitudes as floats (huge either way).
    same_sign = (ia >= 0) == (ib >= 0)
    with np.errstate(over="ignore"):
        exact = np.abs(np.where(same_sign, ia - ib, 0)).astype(np.float64)
    dist = np.where(same_sign, exact, np.abs(ia.astype(np.float64)) + np.abs(ib.astype(np.float64)))
    both_nan = np.isnan(a) & np.isnan(b)
    one_nan = np.isnan(a) ^ np.isnan(b)
    return np.where(both_nan, 0.0, np.where(one_nan, np.inf, dist))


# --- 5. Sums and means over some axes, rsqrt: what BatchNorm and LayerNorm need ----------
#
# ``tf.reduce_sum(x, axes)`` and ``tf.reduce_mean(x, axes)`` first simplify the problem
# (TF's ``ReductionHelper::Simplify``): size-1 dimensions are dropped and neighbouring
# dimensions that are both reduced, or both kept, are merged. What is left picks one of
# Eigen's loops, and each adds in its own order (packet P = 8 float32 / 4 float64):
#
#   (n,)        all reduced          the full reduction above (``reduce_sum``)
#   (R, C)      R reduced            "column" sums: whole packets of P columns use four
#                                    row-interleaved accumulators when R >= 16; the last
#                                    C % P columns are added row by row
#   (R, C)      C reduced            "row" sums: each row like the full reduction, its tree
#                                    split aligned to the row's offset in the flat array
#   (A, B, C)   B reduced            like column sums on each (B, C) slab, except that a
#                                    packet of P outputs that crosses a slab edge, and the
#                                    last (A*C) % P outputs, are added one by one
#   (A, B, C)   A and C reduced      one by one, C the outer loop and A the inner one
#   more dims                        reduced dims moved last (a transpose), then row sums
#
# ``reduce_mean`` is that sum divided by ``T(count)``, except where nothing is really
# reduced (all reduced dims have size 1): TF then copies the input, with no division.
# Exact on one intra-op thread (the parity tests pin it), as for ``reduce_sum``.


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


def _eigen_tree_at(first, n, packet):
    """Eigen's split of [first, first + n) into leaves, as offsets relative to ``first``.

    Like ``_eigen_tree``, but the split points are aligned on packet boundaries of the
    *whole* array, so they depend on where the range starts (only modulo ``packet``).
    """
    leaves = []

    def split(begin, count):
        if count <= packet * _LEAF_PACKETS:
            leaves.append((begin - first, count))
            return len(leaves) - 1
        middle = packet * -(-(begin + -(-count // 2)) // packet)
        left = middle - begin  # < count: the halves are at least a leaf apart
        return split(begin, left), split(middle, count - left)

    return split(first, n), tuple(leaves)


def _row_sums(rows):
    """Each row of a 2-D array summed as Eigen's InnerMostDimReducer, row r starting at r * n."""
    k, n = rows.shape
    packet = _packet_size(rows.dtype)
    out = np.zeros(k, rows.dtype)
    if k == 0:
        return out
    for residue in range(packet):  # the tree's shape depends on the row's start modulo P
        which = np.nonzero((np.arange(k) * n) % packet == residue)[0]
        if which.size == 0:
            continue
        tree, leaves = _eigen_tree_at(residue, n, packet)
        sums = [_leaf_sums(rows[which, off:off + count], packet) for off, count in leaves]
        out[which] = _combine(tree, sums, rows.dtype.type(0))
    return out


def _combine(node, sums, zero):
    """A tree node's sum: ``accum = 0; accum += left; accum += right``."""
    if isinstance(node, int):
        return sums[node]
    return (zero + _combine(node[0], sums, zero)) + _combine(node[1], sums, zero)


def _slab_sums(x):
    """(A, B, C) summed over B as Eigen's reducer that keeps the inner-most dim: (A, C)."""
    a, b, c = x.shape
    packet = _packet_size(x.dtype)
    one_by_one = _sequential_sums(x, axis=1)
    if b < 16:
        return one_by_one  # whole packets, but added row by row: the same order
    whole = (b // 4) * 4
    p = _sequential_sums(x[:, :whole].reshape(a, whole // 4, 4, c), axis=1)  # 4 accumulators
    packed = ((p[:, 0] + p[:, 1]) + p[:, 2]) + p[:, 3]
    for j in range(whole, b):
        packed = packed + x[:, j]
    # Output o is computed in a packet when its packet [o - o % P, +P) lies inside the
    # flat output and inside one row of C outputs; otherwise one coefficient at a time.
    o = np.arange(a * c)
    start = o - o % packet
    in_packet = (start + packet <= a * c) & (start % c + packet <= c)
    return np.where(in_packet.reshape(a, c), packed, one_by_one)


def _sum_over(x, axes):
    """``tf.reduce_sum(x, axes)`` (keepdims=False) on a NumPy array: (result, count, copied)."""
    out_shape = tuple(s for i, s in enumerate(x.shape) if i not in axes)
    count = int(np.prod([x.shape[i] for i in axes], dtype=np.int64))
    dims, reduce_first = _reduction_plan(x.shape, axes)
    if len(dims) == 0 or (len(dims) == 1 and not reduce_first):
        return x.reshape(out_shape).copy(), count, True  # nothing to add up: a copy
    if x.size == 0:
        return np.zeros(out_shape, x.dtype), count, False
    y = np.ascontiguousarray(x).reshape(dims)
    if len(dims) == 1:
        result = reduce_sum(y)
    elif len(dims) == 2 and reduce_first:
        result = _slab_sums(y.reshape(1, *dims))[0]
    elif len(dims) == 2:
        result = _row_sums(y)
    elif len(dims) == 3 and reduce_first:
        a, b, c = dims
        result = _sequential_sums(y.transpose(1, 2, 0).reshape(b, c * a), axis=1)
    elif len(dims) == 3:
        result = _slab_sums(y)
    else:  # TF transposes the reduced dims to the end, then sums rows
        kept = list(range(1 if reduce_first else 0, len(dims), 2))
        summed = list(range(0 if reduce_first else 1, len(dims), 2))
        shuffled = np.ascontiguousarray(y.transpose(kept + summed))
        result = _row_sums(shuffled.reshape(int(np.prod([dims[i] for i in kept])), -1))
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
    """``tf.reduce_sum(x, axes, keepdims)``: the sums in Eigen's order (see the table above).

    NumPy arrays get TF's bits; CuPy arrays get CuPy's own ``sum``.
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
    """
    axes = _axes_tuple(axes, x.ndim)
    if not isinstance(x, np.ndarray):
        count = int(np.prod([x.shape[i] for i in axes], dtype=np.int64))
        return x.sum(axis=tuple(sorted(axes)), keepdims=keepdims) / x.dtype.type(count)
    result, count, copied = _sum_over(x, axes)
    if not copied:
        result = result / x.dtype.type(count) if count else np.full_like(result, np.nan)
    return _keep(result, x.shape, axes, keepdims)


@tf_arithmetic()
def rsqrt(x):
    """``tf.math.rsqrt``: ``1 / sqrt(x)``, elementwise.

    Exact for float64, and for float32 on the last ``size % 8`` elements. TF computes the
    float32 elements in whole 8-lane packets with the CPU's approximate ``rsqrt``
    instruction and one Newton step, a few ULP from ``1 / sqrt`` and different between
    CPU vendors: those cannot be reproduced from NumPy (KERAS_SEMANTICS §0.5).
    """
    one = x.dtype.type(1)
    return one / _xp(x).sqrt(x)


@tf_arithmetic()
def rsqrt_grad(r, dr):
    """TF's ``RsqrtGrad(r, dr)``, the gradient of ``r = rsqrt(v)``: ``-0.5 * dr * r**3``.

    Eigen computes it in two forms: whole packets (the first ``size - size % P`` elements,
    P = 8 float32 / 4 float64) as ``(-0.5 * (r*r)) * (r*dr)``, with each product taken as 0
    when its right factor is 0; the tail as ``(-0.5 * (dr*r)) * (r*r)``, 0 where ``dr == 0``.
    They differ only in how 0, inf and flushed values come out.
    """
    xp = _xp(r)
    t = r.dtype.type
    zero = xp.zeros_like(r)
    packed_rr = (r * r) * t(-0.5)
    r_dr = xp.where(dr == 0, zero, r * dr)
    packed = xp.where(r_dr == 0, zero, packed_rr * r_dr)
    tail = xp.where(dr == 0, zero, (t(-0.5) * (dr * r)) * (r * r))
    packet = _packet_size(r.dtype)
    flat = xp.arange(r.size).reshape(r.shape)
    return xp.where(flat < r.size - r.size % packet, packed, tail)


def _xp(x):
    """NumPy or CuPy, from the array."""
    from ..backend import namespace

    return namespace(x)
