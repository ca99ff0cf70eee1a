"""The two losses of the lesson: mean squared error and softmax cross-entropy.

Each loss is ``loss(y_true, y_pred)`` -> a 0-d array (the batch mean), and
``loss.gradient(y_true, y_pred)`` -> d loss / d y_pred, shaped like ``y_pred``.
"""

from ..backend import namespace
from ..numerics import reduce_sum, reduce_sum_over, tf_arithmetic


class MeanSquaredError:
    """``loss = (1/N) * sum_i mean_j (y_true[i, j] - y_pred[i, j])**2``.

    ::

        d      = y_true - y_pred
        loss   = sum_i (sum_j d[i, j]**2 / D) / N          (Keras: mean over the last axis,
                                                            then "sum over batch size")
        dloss  = -((1/N) / D) * (d * 2)                    (TF's gradients, in their order)

    The sums run in TF's order (``numerics.reduce_sum_over`` over each sample, then
    ``numerics.reduce_sum`` over the batch), so a float64 loss has Keras's bits.

    Examples
    --------
    Errors 1 and -2: the loss is ``(1 + 4) / 2``, the gradient ``-(2 / N) * (y_true - y_pred)``.

    >>> import numpy as np
    >>> from scratchopt.nn import MeanSquaredError
    >>> mse = MeanSquaredError()
    >>> y_true, y_pred = np.array([[1.0], [2.0]]), np.array([[0.0], [4.0]])
    >>> float(mse(y_true, y_pred))
    2.5
    >>> mse.gradient(y_true, y_pred).ravel().tolist()
    [-1.0, 2.0]
    """

    @tf_arithmetic()
    def __call__(self, y_true, y_pred):
        d = y_true.astype(y_pred.dtype) - y_pred
        n, dim = d.shape[0], d[0].size
        per_sample = reduce_sum_over((d * d).reshape(n, dim), 1) / d.dtype.type(dim)
        return reduce_sum(per_sample) / d.dtype.type(n)

    @tf_arithmetic()
    def gradient(self, y_true, y_pred):
        d = y_true.astype(y_pred.dtype) - y_pred
        T = d.dtype.type
        g = (T(1) / T(d.shape[0])) / T(d[0].size)
        return -(g * (d * T(2)))


class SoftmaxCrossEntropy:
    """Cross-entropy of softmax(logits) against labels (class indices or one-hot rows).

    ::

        p      = softmax(z) = exp(z - max z) / sum exp(z - max z)
        loss   = (1/N) * sum_i (log sum_k exp(z[i, k]) - z[i, y_i])
        dloss  = (p - onehot(y)) / N

    Keras's ``CategoricalCrossentropy(from_logits=True)`` runs TF's fused
    ``SoftmaxCrossEntropyWithLogits`` kernel (its own exp and order); this is the same
    math, checked against it under a bound, not bit for bit.

    Examples
    --------
    Equal logits give ``p = [0.5, 0.5]``: the loss is ``log 2`` = 0.693147, the gradient
    ``p - onehot``. Class indices and one-hot rows give the same.

    >>> import numpy as np
    >>> from scratchopt.nn import SoftmaxCrossEntropy
    >>> loss = SoftmaxCrossEntropy()
    >>> logits = np.array([[0.0, 0.0]])
    >>> round(float(loss(np.array([0]), logits)), 6)
    0.693147
    >>> loss.gradient(np.array([[1.0, 0.0]]), logits).tolist()
    [[-0.5, 0.5]]
    """

    @staticmethod
    def _parts(y_true, logits):
        xp = namespace(logits)
        shifted = logits - logits.max(axis=1, keepdims=True)
        e = xp.exp(shifted)
        total = e.sum(axis=1, keepdims=True)
        if y_true.ndim == 1:
            onehot = xp.zeros_like(logits)
            onehot[xp.arange(len(y_true)), y_true.astype(int)] = 1
        else:
            onehot = y_true.astype(logits.dtype)
        return shifted, e / total, xp.log(total), onehot

    def __call__(self, y_true, logits):
        shifted, _, log_total, onehot = self._parts(y_true, logits)
        per_sample = (onehot * (log_total - shifted)).sum(axis=1)
        return per_sample.mean()

    def gradient(self, y_true, logits):
        _, p, _, onehot = self._parts(y_true, logits)
        return (p - onehot) / logits.dtype.type(logits.shape[0])
