"""TF's CPU ``MatMul`` and ``BiasAddGrad``, in TF's summation order (float64 exact).

``tf.matmul`` in float64 runs Eigen's contraction, without FMA:

* a matrix product sums over the inner index ``k`` one term at a time,
  ``((x0*w0 + x1*w1) + x2*w2) + ...``, every output at once;
* a product with a single output column is Eigen's GEMV. With a row-major left operand it
  keeps one 4-lane (AVX) accumulator per row, adds the lanes as ``(a0 + a2) + (a1 + a3)``,
  then the leftover terms; with a transposed left operand (``transpose_a=True``, as in the
  kernel's gradient) it sums over ``k`` one term at a time, like the matrix product.

``tf.matmul`` in float32 goes to oneDNN's JIT kernels (FMA, their own blocking), which we
do not reproduce: float32 uses NumPy's ``@`` and differs in the last bits; the difference
this makes to training is measured in ``parity_tests/test_nn.py``.

Keras adds a Dense bias with ``tf.nn.bias_add`` when it has more than one unit; its
gradient (``BiasAddGrad``) sums the batch rows one at a time. A one-unit bias goes through
a broadcasting ``tf.add`` instead, whose gradient is ``tf.reduce_sum`` over the batch:
Eigen's full reduction (``numerics.reduce_sum``).
"""

import numpy as np

from ..backend import namespace
from .fpenv import tf_arithmetic
from .sums import reduce_sum


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
    m, k = a.shape
    if b.shape[1] == 1 and not transpose_a:  # row-major GEMV: 4 lanes per row, then the tail
        whole = (k // 4) * 4
        acc = np.zeros((m, 4))
        for j in range(0, whole, 4):
            acc = acc + a[:, j:j + 4] * b[j:j + 4, 0]
        out = (acc[:, 0] + acc[:, 2]) + (acc[:, 1] + acc[:, 3])
        for j in range(whole, k):
            out = out + a[:, j] * b[j, 0]
        return out[:, None]
    out = np.zeros((m, b.shape[1]))
    for j in range(k):  # one k at a time, every output at once
        out = out + a[:, j:j + 1] * b[j:j + 1, :]
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
    # BiasAddGrad: one row at a time
    total = np.zeros(dz.shape[1], dz.dtype)
    for row in dz:
        total = total + row
    return total
