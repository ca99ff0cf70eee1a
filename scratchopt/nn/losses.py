"""The losses: mean squared error, softmax cross-entropy, and Keras's categorical cross-entropies.

Each loss is ``loss(y_true, y_pred)`` -> a 0-d array (the batch mean), and
``loss.gradient(y_true, y_pred)`` -> d loss / d y_pred, shaped like ``y_pred``.
"""

from .. import checks
from ..backend import namespace
from ..numerics import reduce_sum, reduce_sum_over, tf_arithmetic
from .activations import exp, softmax_logits


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


# --- Keras's cross-entropies: CategoricalCrossentropy, SparseCategoricalCrossentropy --------
#
# Keras (TF backend, keras/src/backend/tensorflow/nn.py) has two roads:
#
# * from probabilities (``from_logits=False``, the output is not a softmax's):
#       p   = y_pred / sum(y_pred)             (categorical only: renormalize each row)
#       p   = clip(p, eps, 1 - eps)            eps = 1e-7 (keras.config.epsilon())
#       l_i = -sum_k y[i, k] * log(p[i, k])    (sparse: log p, then the from-logits kernel)
# * from logits (``from_logits=True``, or the output IS a softmax's: Keras then takes the
#   logits the softmax cached on its output, ``_keras_logits``, and uses this road):
#       s   = z - max(z);  S = sum(exp(s))
#       l_i = sum_k y[i, k] * (log S - s[i, k])    (TF's fused SoftmaxCrossEntropyWithLogits)
#       dl_i/dz = exp(s) / S - y                 (computed by the same kernel)
#
# and then "sum_over_batch_size": loss = sum_i l_i / T(count) (count: the number of l_i).
# The sums run in Eigen's order; exp and log are NumPy's, not Eigen's, so these are within a
# measured bound of Keras (parity_tests/measure_softmax.py), not bit-exact.

#: Keras's ``backend.epsilon()``: the probability clip.
EPSILON = 1e-7


def _labels(y_true, y_pred):
    """Sparse labels as int64 indices shaped like ``y_pred`` without its class axis (Keras
    squeezes a last axis of 1); a ValueError for any other shape."""
    labels = y_true
    if labels.ndim == y_pred.ndim and labels.shape[-1] == 1:
        labels = labels.reshape(labels.shape[:-1])
    if labels.shape != y_pred.shape[:-1]:
        raise ValueError(f"`y_true` must hold one class index per sample, shaped {y_pred.shape[:-1]} "
                         f"(or with a last axis of 1). Received: y_true of shape {y_true.shape}, "
                         f"y_pred of shape {y_pred.shape}")
    return labels.astype("int64")


def _check_pair(y_true, y_pred, sparse):
    xp = namespace(y_pred)
    if y_pred.ndim < 1 or y_pred.dtype.kind != "f":
        raise TypeError(f"`y_pred` must be a float array of rank >= 1. Received: y_pred of shape "
                        f"{getattr(y_pred, 'shape', None)}, dtype {getattr(y_pred, 'dtype', None)}")
    y_true = xp.asarray(y_true)
    if sparse:
        return _labels(y_true, y_pred), y_pred
    if y_true.shape != y_pred.shape:
        raise ValueError(f"Arguments `target` and `output` must have the same shape. Received: "
                         f"target.shape={y_true.shape}, output.shape={y_pred.shape}")
    return y_true.astype(y_pred.dtype), y_pred


@tf_arithmetic()
def _xent_from_logits(target, z):
    """TF's ``SoftmaxCrossEntropyWithLogits`` kernel: ``(loss per row, d loss / d z)``.

    ::

        s        = z - max(z)                       per row
        S        = sum(exp(s))                      (Eigen's order)
        loss     = sum(target * (log(S) - s))
        backprop = exp(s) / S - target
    """
    xp = namespace(z)
    s = z - z.max(axis=-1, keepdims=True)
    e = exp(s)
    total = reduce_sum_over(e, -1, keepdims=True)
    loss = reduce_sum_over(target * (xp.log(total) - s), -1)
    return loss, e / total - target


@tf_arithmetic()
def _sparse_xent_from_logits(labels, z):
    """TF's ``SparseSoftmaxCrossEntropyWithLogits``: the same with class indices, ``loss =
    log(S) - s[label]`` and ``backprop = exp(s) / S - onehot(label)``; a label outside
    ``[0, classes)`` is a ValueError (TF's InvalidArgumentError on the CPU)."""
    xp = namespace(z)
    classes = z.shape[-1]
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        raise ValueError(f"`y_true` must hold class indices in [0, {classes}). Received: labels from "
                         f"{int(labels.min())} to {int(labels.max())}")
    s = z - z.max(axis=-1, keepdims=True)
    e = exp(s)
    total = reduce_sum_over(e, -1, keepdims=True)
    picked = xp.take_along_axis(s, labels[..., None], axis=-1)[..., 0]
    onehot = labels[..., None] == xp.arange(classes)
    return xp.log(total[..., 0]) - picked, e / total - onehot.astype(z.dtype)


def _mean_over_batch(per_sample):
    """Keras's "sum_over_batch_size": ``sum(l) / T(count)`` (``divide_no_nan``)."""
    T = per_sample.dtype.type
    count = per_sample.size
    return reduce_sum(per_sample.reshape(-1)) / T(count) if count else T(0)


def _batch_weight(per_sample_shape, dtype):
    """d loss / d l_i, the same for every i: ``divide_no_nan(1, T(count))``."""
    count = 1
    for d in per_sample_shape:
        count *= d
    T = dtype.type
    return T(1) / T(count) if count else T(0)


class CategoricalCrossentropy:
    """Keras's ``CategoricalCrossentropy(from_logits=False)``: one-hot (or soft) labels.

    ::

        from probabilities:  p = clip(y_pred / sum(y_pred), eps, 1 - eps),  eps = 1e-7
                             l_i = -sum_k y[i, k] * log(p[i, k])
        from logits:         l_i = sum_k y[i, k] * (log sum_j exp(s[i, j]) - s[i, k]),
                             s = z - max(z)   (TF's fused kernel)
        loss = sum_i l_i / N                                  ("sum_over_batch_size")

    Backward, in TF's order (``g = 1 / N``)::

        from logits:         dz = g * (exp(s) / S - y)        (the fused kernel's backprop)
        from probabilities:  dlog = -g * y;  dp = dlog * (1 / p)
                             dp = 0 where the clip was active (p < eps or p > 1 - eps)
                             q = y_pred, r = sum(q):  dq = dp / r + sum(dp * ((-q / r) / r))

    **Keras's softmax shortcut.** When ``y_pred`` is the output of a softmax (a ``Dense``,
    ``Conv2D`` or ``Activation`` with ``activation="softmax"``), Keras finds the softmax's
    logits (cached on its output as ``_keras_logits``) and uses the from-logits road on
    them, in eager and graph mode alike: no clip, and the gradient goes straight to the
    logits (``softmax - y``), past the softmax's own backward. Pass those logits as
    ``logits=`` (``nn.activations.softmax_logits(layer)`` gives them) to do the same; the
    gradient is then with respect to the logits. (Only when the loss must cast the output
    to another dtype, a float64 model with Keras's floatx at float32, does the cached
    attribute get lost and Keras clip the probabilities instead.)

    Examples
    --------
    >>> import numpy as np
    >>> from scratchopt.nn.losses import CategoricalCrossentropy
    >>> cce = CategoricalCrossentropy()
    >>> y, p = np.array([[0.0, 1.0]]), np.array([[0.5, 0.5]])
    >>> round(float(cce(y, p)), 6)  # -log 0.5
    0.693147
    >>> cce.gradient(y, p).tolist()  # -1/p on the true class, then through p / sum(p)
    [[1.0, -1.0]]
    >>> cce.gradient(y, p, logits=np.zeros((1, 2))).tolist()  # Keras's shortcut: softmax - y
    [[0.5, -0.5]]
    """

    sparse = False
    _xent = staticmethod(_xent_from_logits)

    def __init__(self, from_logits=False):
        self.from_logits = checks.flag("from_logits", from_logits)

    def get_config(self):
        return {"from_logits": self.from_logits}

    def __repr__(self):
        return f"{type(self).__name__}(from_logits={self.from_logits})"

    def _target(self, y_true, like):
        return y_true

    @tf_arithmetic()
    def __call__(self, y_true, y_pred, logits=None):
        y_true, y_pred = _check_pair(y_true, y_pred, self.sparse)
        z = self._logits(y_pred, logits)
        if z is not None:
            per_sample, _ = self._xent(self._target(y_true, z), z)
        else:
            per_sample = self._from_probabilities(y_true, y_pred)
        return _mean_over_batch(per_sample)

    @tf_arithmetic()
    def gradient(self, y_true, y_pred, logits=None):
        """d loss / d y_pred; with ``logits=``, d loss / d logits (Keras's softmax shortcut)."""
        y_true, y_pred = _check_pair(y_true, y_pred, self.sparse)
        z = self._logits(y_pred, logits)
        g = _batch_weight(y_pred.shape[:-1], y_pred.dtype)
        if z is not None:
            _, backprop = self._xent(self._target(y_true, z), z)
            return g * backprop
        return self._probability_gradient(y_true, y_pred, g)

    def _logits(self, y_pred, logits):
        if logits is not None:
            if logits.shape != y_pred.shape or logits.dtype != y_pred.dtype:
                raise ValueError(f"`logits` must have the shape and dtype of `y_pred`, {y_pred.shape} "
                                 f"{y_pred.dtype}. Received: logits of shape {logits.shape}, dtype {logits.dtype}")
            return logits
        return y_pred if self.from_logits else None

    @staticmethod
    def _clip(p):
        T = p.dtype.type
        lo, hi = T(EPSILON), T(1.0 - EPSILON)
        xp = namespace(p)
        return xp.maximum(xp.minimum(p, hi), lo), (p >= lo) & (p <= hi)

    def _from_probabilities(self, y_true, y_pred):
        xp = namespace(y_pred)
        p, _ = self._clip(y_pred / reduce_sum_over(y_pred, -1, keepdims=True))
        return -reduce_sum_over(y_true * xp.log(p), -1)

    def _probability_gradient(self, y_true, q, g):
        r = reduce_sum_over(q, -1, keepdims=True)
        p, inside = self._clip(q / r)
        dlog = y_true * -g  # Neg, the sum's broadcast, then Mul's gradient
        dp = dlog * (q.dtype.type(1) / p)  # Log's gradient: grad * reciprocal(x)
        dp = namespace(q).where(inside, dp, q.dtype.type(0))  # Minimum / Maximum: 0 outside the clip
        dr = reduce_sum_over(dp * ((-q / r) / r), -1, keepdims=True)  # RealDiv's gradient for r
        return dp / r + dr


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Keras's ``SparseCategoricalCrossentropy(from_logits=False)``: integer class labels,
    shaped ``(N,)`` or ``(N, 1)``.

    ::

        from probabilities:  l_i = xent_from_logits(label_i, log(clip(y_pred, eps, 1 - eps)))
                             (no renormalization: Keras feeds the clipped log-probabilities
                             to TF's sparse from-logits kernel)
        from logits:         l_i = log sum_j exp(s[i, j]) - s[i, label_i],  s = z - max(z)
        loss = sum_i l_i / N

    Backward: the kernel's ``exp(s) / S - onehot``, times ``1 / N``; from probabilities then
    through ``log`` (``* 1 / p``) and the clip (0 outside ``[eps, 1 - eps]``). Keras's softmax
    shortcut applies as for ``CategoricalCrossentropy`` (``logits=``).

    Examples
    --------
    >>> import numpy as np
    >>> from scratchopt.nn.losses import SparseCategoricalCrossentropy
    >>> scce = SparseCategoricalCrossentropy(from_logits=True)
    >>> round(float(scce(np.array([1]), np.array([[0.0, 0.0]]))), 6)  # log 2
    0.693147
    >>> scce.gradient(np.array([[1]]), np.array([[0.0, 0.0]])).tolist()
    [[0.5, -0.5]]
    """

    sparse = True
    _xent = staticmethod(_sparse_xent_from_logits)

    def _target(self, labels, like):
        return labels

    def _from_probabilities(self, labels, y_pred):
        xp = namespace(y_pred)
        p, _ = self._clip(y_pred)
        per_sample, _ = _sparse_xent_from_logits(labels, xp.log(p))
        return per_sample

    def _probability_gradient(self, labels, q, g):
        xp = namespace(q)
        p, inside = self._clip(q)
        _, backprop = _sparse_xent_from_logits(labels, xp.log(p))
        dp = (g * backprop) * (q.dtype.type(1) / p)
        return xp.where(inside, dp, q.dtype.type(0))


def keras_logits(loss, layer):
    """The logits Keras's ``loss`` would use in place of ``layer``'s output, or None.

    Keras's cross-entropies, given the output of a softmax, compute the loss from the
    softmax's logits (``_keras_logits``; see ``CategoricalCrossentropy``): so for a
    ``CategoricalCrossentropy`` or ``SparseCategoricalCrossentropy`` and a layer whose last
    call ended in a softmax, these are that call's logits; otherwise None. A training loop
    then calls ``loss(y, y_pred, logits=logits)``, ``loss.gradient(y, y_pred, logits=logits)``
    and starts the backward pass with ``activations.backward_from_logits(layer, dz)``.

    >>> import numpy as np
    >>> from scratchopt.nn.activations import Activation
    >>> layer = Activation("softmax")
    >>> _ = layer(np.array([[2.0, 0.0]]))
    >>> keras_logits(CategoricalCrossentropy(), layer).tolist(), keras_logits(MeanSquaredError(), layer)
    ([[2.0, 0.0]], None)
    """
    if not isinstance(loss, CategoricalCrossentropy):
        return None
    return softmax_logits(layer)


#: Keras's loss names and the classes they stand for.
NAMES = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
}


def get(identifier):
    """A loss object from Keras's name for it (``"categorical_crossentropy"``,
    ``"sparse_categorical_crossentropy"``, ``"mse"`` / ``"mean_squared_error"``), or the
    loss object itself. An unknown name is a ValueError (Keras's), anything else a TypeError.

    >>> from scratchopt.nn import losses
    >>> losses.get("categorical_crossentropy")
    CategoricalCrossentropy(from_logits=False)
    >>> losses.get("hinge")
    Traceback (most recent call last):
    ...
    ValueError: Could not interpret loss identifier: hinge...
    """
    if isinstance(identifier, str):
        if identifier not in NAMES:
            raise ValueError(f"Could not interpret loss identifier: {identifier}. `loss` must be one of "
                             f"{sorted(NAMES)} or a loss object. {checks.received('loss', identifier)}")
        return NAMES[identifier]()
    if callable(identifier) and hasattr(identifier, "gradient"):
        return identifier
    raise TypeError(f"`loss` must be a loss object or one of {sorted(NAMES)}. "
                    f"{checks.received('loss', identifier)}")
