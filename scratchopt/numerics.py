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


@contextlib.contextmanager
def tf_arithmetic():
    """TF's CPU float environment for a block (or, as ``@tf_arithmetic()``, a function).

    Flush-to-zero as above, and inf/NaN treated as results, not NumPy warnings.
    """
    with np.errstate(all="ignore"), flush_denormals():
        yield


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
    dist = np.abs(ia.astype(np.float64) - ib.astype(np.float64))  # exact below 2**53 ULP
    both_nan = np.isnan(a) & np.isnan(b)
    one_nan = np.isnan(a) ^ np.isnan(b)
    return np.where(both_nan, 0.0, np.where(one_nan, np.inf, dist))
