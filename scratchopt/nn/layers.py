"""``Dense`` and ``ReLU``: the two layers of the lesson's network, forward and backward by hand.

Every layer here has the same small interface, which the normalization and dropout layers of
``scratchopt.layers`` share, so ``Sequential`` can chain any of them::

    y = layer(x, training=False)   # forward; remembers what backward needs
    dx = layer.backward(dy)        # backward for the last forward call; fills layer.grads
    layer.params, layer.grads      # dicts of the live arrays an optimizer updates, and their gradients
"""

import numpy as np

from ..backend import namespace
from ..numerics.matmul import bias_add_grad, matmul


class Dense:
    """A fully connected layer: ``y = activation(x @ kernel + bias)``.

    ::

        forward:   z = x @ W + b                 (N, in) @ (in, units) + (units,)
                   y = relu(z)                   with activation="relu"
        backward:  dz = dy * (y > 0)             ReLU passes the gradient where it was active
                   dW = x^T @ dz  (+ the kernel_regularizer's gradient)
                   db = sum over the batch of dz
                   dx = dz @ W^T

    Keras's order, operation for operation: the matmul, then the bias add, then ReLU; the
    gradients as TF's registered ``MatMul``/``AddV2``/``Relu`` gradients compute them. The
    kernel starts Glorot-uniform, as Keras's: ``U(-limit, limit)``, ``limit =
    sqrt(6 / (in + units))``; the bias starts at 0.

    Examples
    --------
    A kernel set by hand: ``z = [1, 2, 3] @ W = [1 + 3, 2 - 3] = [4, -1]``, and ReLU
    zeroes the -1. Backward, only the active unit passes the gradient: ``dz = [1, 0]``.

    >>> import numpy as np
    >>> from scratchopt.nn import Dense
    >>> dense = Dense(2, activation="relu")
    >>> dense.build(3)  # the kernel (3, 2), Glorot-uniform; the bias (2,), zeros
    >>> dense.params["kernel"][...] = [[1, 0], [0, 1], [1, -1]]
    >>> dense(np.array([[1.0, 2.0, 3.0]], np.float32)).tolist()
    [[4.0, 0.0]]
    >>> dx = dense.backward(np.ones((1, 2), np.float32))
    >>> dense.grads["kernel"].tolist()  # x^T @ dz
    [[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]
    >>> dense.grads["bias"].tolist(), dx.tolist()  # sum of dz; dz @ W^T
    ([1.0, 0.0], [[1.0, 0.0, 1.0]])
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_regularizer=None, seed=None,
                 dtype="float32"):
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"`units` must be a positive int, got units={units!r}")
        if activation not in (None, "relu", "linear"):
            raise ValueError(f"`activation` must be None, 'linear' or 'relu', got activation={activation!r}")
        self.units = int(units)
        self.activation = None if activation == "linear" else activation
        self.use_bias = bool(use_bias)
        self.kernel_regularizer = kernel_regularizer
        self.dtype = np.dtype(dtype)
        self._rng = np.random.default_rng(seed)
        self.params, self.grads = {}, {}

    def build(self, input_dim, xp=np):
        limit = np.sqrt(6.0 / (input_dim + self.units))
        kernel = self._rng.uniform(-limit, limit, (input_dim, self.units)).astype(self.dtype)
        self.params["kernel"] = xp.asarray(kernel)
        if self.use_bias:
            self.params["bias"] = xp.zeros(self.units, self.dtype)

    def __call__(self, x, training=False):
        if not self.params:
            self.build(x.shape[-1], namespace(x))
        self._x = x
        z = matmul(x, self.params["kernel"])
        if self.use_bias:
            z = z + self.params["bias"]
        self._y = namespace(z).maximum(z, 0) if self.activation == "relu" else z
        return self._y

    def backward(self, dy):
        dz = relu_gradient(dy, self._y) if self.activation == "relu" else dy
        kernel = self.params["kernel"]
        self.grads["kernel"] = matmul(self._x, dz, transpose_a=True)  # TF's MatMul gradient
        if self.kernel_regularizer is not None:
            self.grads["kernel"] = self.grads["kernel"] + self.kernel_regularizer.gradient(kernel)
        if self.use_bias:
            self.grads["bias"] = bias_add_grad(dz)
        return matmul(dz, kernel, transpose_b=True)

    def penalty(self):
        """The kernel_regularizer's penalty (0.0 without one): Keras adds it to the loss."""
        if self.kernel_regularizer is None:
            return 0.0
        return self.kernel_regularizer(self.params["kernel"])


def relu_gradient(dy, y):
    """TF's ``ReluGrad``: ``dy * (y > 0)``, so the gradient flows where the output is positive."""
    return dy * (y > 0).astype(dy.dtype)


class ReLU:
    """``y = max(x, 0)``; backward ``dx = dy * (y > 0)``.

    Examples
    --------
    >>> import numpy as np
    >>> from scratchopt.nn import ReLU
    >>> relu = ReLU()
    >>> relu(np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 2.])
    >>> relu.backward(np.array([5.0, 5.0, 5.0]))  # no gradient where the output is 0
    array([0., 0., 5.])
    """

    def __init__(self):
        self.params, self.grads = {}, {}

    def __call__(self, x, training=False):
        self._y = namespace(x).maximum(x, 0)
        return self._y

    def backward(self, dy):
        return relu_gradient(dy, self._y)
