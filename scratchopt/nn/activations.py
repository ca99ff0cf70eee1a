"""``ReLU``, and the gradient of ReLU that ``Dense(activation="relu")`` shares with it."""

from ..backend import namespace
from .layer import Layer


def relu_gradient(dy, active):
    """TF's ``ReluGrad``: ``dy * (y > 0)``, so the gradient flows where the output is positive.

    ``active`` is the forward's ``y > 0``, kept by the layer (not ``y`` itself, which the
    caller may change in place before backward)."""
    return dy * active.astype(dy.dtype)


class ReLU(Layer):
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

    def call(self, x, training=False):
        y = namespace(x).maximum(x, 0)
        self._last = {"active": y > 0}
        return y

    def _backward(self, dy):
        return relu_gradient(dy, self._last["active"])
