"""TF's CPU ``MatMul`` and ``BiasAddGrad``, in TF's summation order (float64 exact).

``tf.matmul`` in float64 runs Eigen, without FMA, and TF picks Eigen's path by shape
(``LaunchBatchMatMul``): with ``m x k`` times ``k x n``,

* no dimension 1: Eigen's tensor contraction, on one thread (``_eigen_gemm``): its GEBP
  kernel (double, AVX without FMA: register panels of 8, 4, 2 and 1 output columns, times
  4 or 1 output rows) sums over the inner index ``k`` one term at a time,
  ``((0 + x0*w0) + x1*w1) + ...``, except on the 4- and 2-wide column panels (two
  accumulators, even and odd terms) and in the last column of an odd ``n`` (four
  accumulators), in whole 4-row blocks; ``k`` beyond Eigen's depth block (``kc``, about 500
  with a 48 KiB L1) is summed block by block, each block's sum added to the output;
* a dimension 1 (``min(m, k, n) == 1``): an ``Eigen::Matrix`` product, and then

  - ``m + k + n < 20`` (Eigen's ``EIGEN_GEMM_TO_COEFFBASED_THRESHOLD``): the lazy,
    coefficient-based product. Each output is the dot product of a row of ``op(a)`` and a
    column of ``op(b)``; when both are contiguous in memory (``a`` not transposed, ``b``
    transposed) Eigen's vectorized ``sum()`` adds it (``_redux``), else one term at a time.
    Measured: a sum of -0s is -0 (the sum starts from the first product), except with
    neither operand transposed, where it is +0 (from 0);
  - a single output column (GEMV): with a row-major left operand, one 4-lane (AVX)
    accumulator per row, the lanes added as ``(a0 + a2) + (a1 + a3)``, then the leftover
    terms one by one; the rows go in blocks of 8, 4 and 2, and an odd last row adds two of
    its leftover terms as a 2-lane half packet first (``_gemv``). With a transposed left
    operand (``transpose_a=True``, as in the kernel's gradient), or a single row, one term
    at a time;
  - ``k == 1``: one product per output, the same in any order.

So a ``(8, 8) @ (8, 1)`` product (a batch of 8 through a one-unit layer on 8 features)
sums one term at a time, and ``(16, 8) @ (8, 1)`` in 4 lanes. Not reproduced: a single
row times a transposed ``b`` with ``1 + k + n >= 20`` (in a network, the backward pass of a
batch of one row): Eigen has other kernels for a row vector, summed one term at a time
here.

``tf.matmul`` in float32 goes to oneDNN's JIT kernels (FMA, their own blocking), which we
do not reproduce: float32 uses NumPy's ``@`` and differs in the last bits; the difference
this makes to training is measured in ``parity_tests/test_nn.py``.

Keras adds a Dense bias with ``tf.nn.bias_add`` when it has more than one unit; its
gradient (``BiasAddGrad``) sums the batch rows one at a time. A one-unit bias goes through
a broadcasting ``tf.add`` instead, whose gradient is ``tf.reduce_sum`` over the batch:
Eigen's full reduction (``numerics.reduce_sum``).
"""

import os

import numpy as np

from ..backend import namespace
from . import sums_fast
from .fpenv import tf_arithmetic
from .sums import reduce_sum

#: Eigen's ``EIGEN_GEMM_TO_COEFFBASED_THRESHOLD``: below it (rows + depth + columns) a
#: dynamic-size product is computed coefficient by coefficient.
COEFF_BASED_THRESHOLD = 20


@tf_arithmetic()
def matmul(a, b, transpose_a=False, transpose_b=False):
    """``op(a) @ op(b)`` for 2-d arrays, summed as ``tf.matmul`` sums it (exact in float64).

    >>> import numpy as np
    >>> a = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> matmul(a, a).tolist(), matmul(a, a, transpose_a=True).tolist()
    ([[7.0, 10.0], [15.0, 22.0]], [[10.0, 14.0], [14.0, 20.0]])
    """
    a = a.T if transpose_a else a
    b = b.T if transpose_b else b
    if namespace(a) is not np or a.dtype != np.float64:
        return a @ b
    (m, k), n = a.shape, b.shape[1]
    contiguous = not transpose_a and transpose_b  # rows of op(a) and columns of op(b)
    if min(m, k, n) == 1 and m + k + n < COEFF_BASED_THRESHOLD:  # the lazy product
        if contiguous:
            return _redux(a, b)
        return _one_term_at_a_time(a, b, from_zero=not (transpose_a or transpose_b))
    if n == 1 and m > 1 and not transpose_a:
        return _gemv(a, b)
    if min(m, k, n) == 1:  # Eigen::Matrix products (TF's SequentialMatMulKernel), not GEBP
        return _one_term_at_a_time(a, b)
    return _eigen_gemm(a, b)  # Eigen's tensor contraction (TF's ParallelMatMulKernel)


def _one_term_at_a_time(a, b, from_zero=True):
    """Over ``k`` one term at a time, every output at once: ``0 + x0*w0 + ...``, or from the
    first product ``x0*w0 + ...`` (the lazy product; a sum of -0s is then -0, not +0)."""
    out = np.zeros((a.shape[0], b.shape[1])) if from_zero else a[:, 0:1] * b[0:1, :]
    for j in range(0 if from_zero else 1, a.shape[1]):
        out = out + a[:, j:j + 1] * b[j:j + 1, :]
    return out


def _l1_data_bytes(default=32 * 1024):
    """The per-core L1 data cache, as Eigen reads it from CPUID (here: from Linux's sysfs);
    it sets Eigen's depth block ``kc``, which matters only for ``k`` above ~300."""
    root = "/sys/devices/system/cpu/cpu0/cache"

    def read(entry, name):
        with open(os.path.join(root, entry, name)) as f:
            return f.read().strip()

    try:
        for entry in sorted(os.listdir(root)):
            if read(entry, "level") == "1" and read(entry, "type") in ("Data", "Unified"):
                size = read(entry, "size")
                return int(size[:-1]) * 1024 if size.endswith("K") else int(size)
    except (OSError, ValueError):
        pass
    return default


L1_BYTES = _l1_data_bytes()


def _depth_block(m, k, n, l1=None):
    """Eigen's ``kc`` (evaluateProductBlockingSizesHeuristic, one thread, double, mr=8, nr=4)."""
    l1 = L1_BYTES if l1 is None else l1
    if max(m, k, n) < 48:
        return k
    max_kc = max(((l1 - 8 * 4 * 8) // (8 * 8 + 4 * 8)) & ~7, 1)
    if k <= max_kc:
        return k
    if k % max_kc == 0:
        return max_kc
    return max_kc - 8 * ((max_kc - 1 - k % max_kc) // (8 * (k // max_kc + 1)))


def _gebp_block(a, b):
    """One depth block of Eigen's GEBP kernel (double, AVX without FMA: mr = 8, nr = 4, pk = 8),
    as TF calls it on row-major tensors: Eigen's panel rows are the output's *columns* and its
    nr = 4 column panels are the output's *rows*. Every output starts from +0, then:

    * output columns in whole 8-wide panels (``j < n8``), and any output rows past the last
      whole 4-row block (``i >= m4``): one term at a time, ``((0 + p0) + p1) + ...``;
    * columns of the 4- and 2-wide panels (``n8 <= j < n - n % 2``), rows ``i < m4``: two
      accumulators over the first ``k - k % 8`` terms, even terms in one and odd in the other,
      added, then the remaining terms one at a time: ``((0+p0+p2+..) + (0+p1+p3+..)) + p8k + ...``;
    * the last column when ``n`` is odd, rows ``i < m4``: four accumulators over the first
      ``k - k % 4`` terms (term t into t % 4), added as ``(c0 + c1) + (c2 + c3)``, then the
      remaining terms one at a time.
    """
    m, k = a.shape
    n = b.shape[1]
    m4, n8, n2 = m - m % 4, n - n % 8, n - n % 2
    out = np.empty((m, n))
    out[:, :n8] = _one_term_at_a_time(a, b[:, :n8])
    out[m4:, n8:] = _one_term_at_a_time(a[m4:], b[:, n8:])
    if m4 and n2 > n8:  # 1-packet (4) and half-packet (2) column panels: even/odd accumulators
        x, w = a[:m4], b[:, n8:n2]
        even, odd = np.zeros((m4, n2 - n8)), np.zeros((m4, n2 - n8))
        peeled = k - k % 8
        for j in range(0, peeled, 2):
            even = even + x[:, j:j + 1] * w[j:j + 1]
            odd = odd + x[:, j + 1:j + 2] * w[j + 1:j + 2]
        acc = even + odd
        for j in range(peeled, k):
            acc = acc + x[:, j:j + 1] * w[j:j + 1]
        out[:m4, n8:n2] = acc
    if m4 and n2 < n:  # the last, odd column: one row at a time, 4 lanes over k
        x, w = a[:m4], b[:, n - 1]
        lanes = np.zeros((4, m4))
        whole = k - k % 4
        for j in range(whole):
            lanes[j % 4] = lanes[j % 4] + x[:, j] * w[j]
        acc = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3])
        for j in range(whole, k):
            acc = acc + x[:, j] * w[j]
        out[:m4, n - 1] = acc
    return out


def _eigen_gemm(a, b):
    """TF's float64 CPU MatMul with no dimension 1 (Eigen's tensor contraction on one thread):
    the output starts at +0 and each depth block of ``kc`` terms adds its GEBP sums to it."""
    m, k = a.shape
    n = b.shape[1]
    kc = _depth_block(n, k, m)  # Eigen's (rows, depth, cols) are TF's (n, k, m)
    out = np.zeros((m, n))
    for k0 in range(0, k, kc):
        out = out + _gebp_block(a[:, k0:k0 + kc], b[k0:k0 + kc])
    return out


def _gemv(a, b):
    """Eigen's row-major GEMV (one output column): 4 lanes per row, then the tail."""
    m, k = a.shape
    whole = (k // 4) * 4
    acc = np.zeros((m, 4))
    for j in range(whole // 4):
        acc = acc + a[:, 4 * j:4 * j + 4] * b[4 * j:4 * j + 4, 0]
    out = (acc[:, 0] + acc[:, 2]) + (acc[:, 1] + acc[:, 3])
    start = whole
    if m % 2 and k - whole >= 2:  # the odd last row: a 2-lane half packet first
        last = out[-1] + (a[-1, whole] * b[whole, 0] + a[-1, whole + 1] * b[whole + 1, 0])
        for j in range(whole + 2, k):
            last = last + a[-1, j] * b[j, 0]
        out, a, m = out[:-1], a[:-1], m - 1
    else:
        last = None
    for j in range(start, k):
        out = out + a[:, j] * b[j, 0]
    if last is not None:
        out = np.append(out, last)
    return out[:, None]


def _redux(a, b):
    """Each output as Eigen's vectorized ``sum()`` of a row of ``a`` times a column of ``b``.

    Packets of 4 products: two accumulators take the packets alternately, are added, then
    the 4 lanes as ``(l0 + l2) + (l1 + l3)``, then the leftover terms one at a time.
    """
    k = a.shape[1]
    p = a[:, :, None] * b[None, :, :]  # (m, k, n): every product
    whole = (k // 4) * 4
    if whole == 0:
        out = p[:, 0]
        for j in range(1, k):
            out = out + p[:, j]
        return out
    acc0 = p[:, 0:4]
    if whole > 4:
        acc1 = p[:, 4:8]
        pairs = (k // 8) * 8
        for j in range(8, pairs, 8):
            acc0 = acc0 + p[:, j:j + 4]
            acc1 = acc1 + p[:, j + 4:j + 8]
        acc0 = acc0 + acc1
        if whole > pairs:
            acc0 = acc0 + p[:, pairs:pairs + 4]
    out = (acc0[:, 0] + acc0[:, 2]) + (acc0[:, 1] + acc0[:, 3])
    for j in range(whole, k):
        out = out + p[:, j]
    return out


@tf_arithmetic()
def bias_add_grad(dz):
    """The bias gradient of a Dense layer: the sum over the batch, in TF's order.

    >>> import numpy as np
    >>> bias_add_grad(np.array([[1.0, 2.0], [3.0, 4.0]])).tolist()
    [4.0, 6.0]
    """
    if namespace(dz) is not np:
        return dz.sum(axis=0)
    if dz.shape[1] == 1:  # tf.add's gradient: reduce_sum over the batch
        return np.asarray(reduce_sum(dz[:, 0])).reshape(1)
    # BiasAddGrad: one row at a time (compiled, the same additions, when numba is installed)
    if sums_fast.wanted(dz) and dz.ndim == 2:
        return sums_fast.column_sums(np.ascontiguousarray(dz))
    total = np.zeros(dz.shape[1], dz.dtype)
    for row in dz:
        total = total + row
    return total
