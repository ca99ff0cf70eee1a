"""``Dense``: the fully connected layer of the lesson's network, forward and backward by hand."""

import numbers

import numpy as np

from .. import checks
from ..backend import namespace
from ..numerics.matmul import bias_add_grad, matmul
from .activations import ACTIVATIONS, activate, activation_gradient
from .layer import Layer


class Dense(Layer):
    """A fully connected layer: ``y = activation(x @ kernel + bias)``.

    ::

        forward:   z = x @ W + b                 (N, in) @ (in, units) + (units,)
                   y = relu(z)                   with activation="relu"
                   y = softmax(z)                with activation="softmax" (last axis)
        backward:  dz = dy * (y > 0)             ReLU passes the gradient where it was active
                   dz = (dy - sum(dy * y)) * y   softmax (TF's _SoftmaxGrad)
                   dW = x^T @ dz  (+ the kernel_regularizer's gradient)
                   db = sum over the batch of dz
                   dx = dz @ W^T

    Keras's order, operation for operation: the matmul, then the bias add, then ReLU; the
    gradients as TF's registered ``MatMul``/``AddV2``/``Relu`` gradients compute them. The
    kernel starts Glorot-uniform, as Keras's: ``U(-limit, limit)``, ``limit =
    sqrt(6 / (in + units))``, drawn from ``checks.generator(seed)``; the bias starts at 0.

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

    regularizable = (("kernel", "kernel_regularizer"),)  # Keras adds its penalty to the loss

    def __init__(self, units, activation=None, use_bias=True, kernel_regularizer=None, seed=None,
                 dtype="float32"):
        super().__init__()
        if isinstance(units, bool) or not isinstance(units, numbers.Integral) or units < 1:
            # Keras's exception for either (not an int, or not positive)
            raise ValueError(f"`units` must be a positive integer. {checks.received('units', units)}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"`activation` must be None, 'linear', 'relu' or 'softmax'. "
                             f"{checks.received('activation', activation)}")
        self.units = int(units)
        self.activation = None if activation == "linear" else activation
        self.use_bias = checks.flag("use_bias", use_bias)
        self.kernel_regularizer = kernel_regularizer
        self.seed = seed
        self.dtype = checks.float_dtype("dtype", dtype)
        self._rng = checks.generator(seed)

    def get_config(self):
        return {"units": self.units, "activation": self.activation, "use_bias": self.use_bias,
                "kernel_regularizer": self.kernel_regularizer, "seed": self.seed,
                "dtype": self.dtype.name}

    def build(self, input_shape, xp=np):
        """Make the kernel ``(in, units)`` and the bias ``(units,)``; ``input_shape`` is the
        input's shape, or its last dimension ``in`` alone."""
        input_dim = input_shape if isinstance(input_shape, numbers.Integral) else input_shape[-1]
        limit = np.sqrt(6.0 / (input_dim + self.units))
        kernel = self._rng.uniform(-limit, limit, (input_dim, self.units)).astype(self.dtype)
        self.params["kernel"] = xp.asarray(kernel)
        if self.use_bias:
            self.params["bias"] = xp.zeros(self.units, self.dtype)
        self.built = True

    def call(self, x, training=False):
        if not self.built:
            self.build(x.shape[-1], namespace(x))
        z = matmul(x, self.params["kernel"])
        if self.use_bias:
            z = z + self.params["bias"]
        y, saved = activate(self.activation, z)  # activations.py: shared with Conv2D
        # Copies of x and the kernel, and the activation's saved values (ReLU's mask, a copy of
        # softmax's output): backward uses this call's values, as Keras's tape does, even if
        # x, y or the kernel change in place before backward.
        self._last = {"x": x.copy(order="K"), "kernel": self.params["kernel"].copy(),
                      "saved": saved}
        return y

    def _backward(self, dy):
        x, kernel = self._last["x"], self._last["kernel"]
        dz = activation_gradient(self.activation, dy, self._last["saved"])
        self.grads["kernel"] = matmul(x, dz, transpose_a=True)  # TF's MatMul gradient
        if self.kernel_regularizer is not None:
            self.grads["kernel"] = self.grads["kernel"] + self.kernel_regularizer.gradient(kernel)
        if self.use_bias:
            self.grads["bias"] = bias_add_grad(dz)
        return matmul(dz, kernel, transpose_b=True)
