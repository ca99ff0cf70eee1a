"""Activations: ``activate`` / ``activation_gradient`` (shared by ``Dense``, ``Conv2D`` and
``Activation``), the ``ReLU`` and ``Activation`` layers, and TF's softmax.

One implementation of each activation, forward and backward, so every layer that applies
one computes the same bits::

    y, saved = activate(name, z)               name in None, "linear", "relu", "softmax"
    dz = activation_gradient(name, dy, saved)  saved: what the backward needs (a copy)

===========  ==============================================  =================================
name         forward                                         backward (TF's registered grad)
===========  ==============================================  =================================
None         ``y = z``                                       ``dz = dy``
"linear"     ``y = z``                                       ``dz = dy``
"relu"       ``y = max(z, 0)``                               ``dz = dy * (y > 0)`` (ReluGrad)
"softmax"    ``e = exp(z - max z); y = e * (1 / sum e)``     ``dz = (dy - sum(dy * y)) * y``
===========  ==============================================  =================================

The softmax runs over the last axis, in the order of TF's CPU ``Softmax`` kernel (measured:
float64 ``tf.nn.softmax`` is reproduced bit for bit from ``tf.exp``'s values with the sum in
Eigen's order and a *multiply by the reciprocal*, not a division). Our ``exp`` is NumPy's,
not Eigen's polynomial, so the softmax is within a measured bound of TF's, not exact
(``parity_tests/measure_softmax.py``; the bound is in ``docs/pooling.md``).
"""

from .. import checks
from ..backend import namespace
from ..numerics import reduce_sum_over, tf_arithmetic
from .layer import Layer

#: The activation names the layers accept (Keras's identifiers that scratchopt implements).
ACTIVATIONS = (None, "linear", "relu", "softmax")


def relu_gradient(dy, active):
    """TF's ``ReluGrad``: ``dy * (y > 0)``, so the gradient flows where the output is positive.

    ``active`` is the forward's ``y > 0``, kept by the layer (not ``y`` itself, which the
    caller may change in place before backward)."""
    return dy * active.astype(dy.dtype)


def exp(x):
    """``exp(x)`` with TF's flush to zero: NumPy's ``exp`` returns subnormal results (its own
    SIMD code ignores the FTZ bit), TF's CPU kernel 0; so values below ``finfo.tiny`` are 0.

    >>> import numpy as np
    >>> exp(np.array([-87.0, -88.0], np.float32)) > 0  # exp(-88) = 6e-39 is subnormal
    array([ True, False])
    """
    xp = namespace(x)
    e = xp.exp(x)
    return xp.where(e < xp.finfo(e.dtype).tiny, e.dtype.type(0), e)


@tf_arithmetic()
def softmax(z):
    """``tf.nn.softmax(z)`` over the last axis, in TF's CPU kernel's order.

    ::

        shifted = z - max(z)              (per row: the largest term becomes exp(0) = 1)
        e       = exp(shifted)
        y       = e * (1 / sum(e))        the sum in Eigen's order, then ONE reciprocal

    >>> import numpy as np
    >>> softmax(np.array([[0.0, 0.0], [0.0, np.log(3.0)]])).tolist()
    [[0.5, 0.5], [0.25, 0.75]]
    """
    e = exp(z - z.max(axis=-1, keepdims=True))
    return e * (z.dtype.type(1) / reduce_sum_over(e, -1, keepdims=True))


@tf_arithmetic()
def softmax_gradient(dy, y):
    """TF's ``_SoftmaxGrad``: ``dz = (dy - sum(dy * y, -1, keepdims=True)) * y``.

    The Jacobian of softmax is ``diag(y) - y y^T``; applied to ``dy`` it is
    ``y * dy - y * (y . dy)``, which TF factors as above (the sum in Eigen's order).

    >>> import numpy as np
    >>> softmax_gradient(np.array([[1.0, 0.0]]), np.array([[0.5, 0.5]])).tolist()
    [[0.25, -0.25]]
    """
    return (dy - reduce_sum_over(dy * y, -1, keepdims=True)) * y


class SoftmaxSaved:
    """What a softmax keeps for backward: its output ``y`` and its logits ``z`` (copies).

    The logits are what Keras caches on a softmax's output (``output._keras_logits``) and
    what its cross-entropy losses then use instead of the probabilities (``losses.py``).
    ``logits_gradient`` is set, for one backward, by ``backward_from_logits``.

    >>> import numpy as np
    >>> saved = SoftmaxSaved(np.array([[0.5, 0.5]]), np.zeros((1, 2)))
    >>> saved.logits.tolist(), saved.logits_gradient
    ([[0.0, 0.0]], False)
    """

    def __init__(self, y, logits):
        self.y, self.logits, self.logits_gradient = y, logits, False


def _softmax_saved(layer):
    last = getattr(layer, "_last", None)
    if isinstance(last, dict):
        for value in last.values():
            if isinstance(value, SoftmaxSaved):
                return value
    return None


def softmax_logits(layer):
    """The logits of ``layer``'s last call if it ended in a softmax (``Dense``, ``Conv2D`` or
    ``Activation`` with ``activation="softmax"``), else None: Keras's ``_keras_logits``.

    A loss given these (``CategoricalCrossentropy(...)(y, y_pred, logits=...)``) does what
    Keras does with a softmax output: the cross-entropy from the logits.

    >>> import numpy as np
    >>> layer = Activation("softmax")
    >>> _ = layer(np.array([[1.0, 2.0]]))
    >>> softmax_logits(layer).tolist(), softmax_logits(ReLU())
    ([[1.0, 2.0]], None)
    """
    saved = _softmax_saved(layer)
    return None if saved is None else saved.logits


def backward_from_logits(layer, dz):
    """``layer.backward`` from ``dz`` = d loss / d (its softmax's logits): the softmax's own
    backward is skipped, as in Keras, where the loss used the logits and the softmax is not
    on the gradient's path. Everything else (the checks, the rest of the layer's backward)
    is ``layer.backward``'s.

    >>> import numpy as np
    >>> layer = Activation("softmax")
    >>> _ = layer(np.array([[1.0, 2.0]]))
    >>> backward_from_logits(layer, np.array([[0.25, -0.25]])).tolist()  # passed through
    [[0.25, -0.25]]
    """
    saved = _softmax_saved(layer)
    if saved is None:
        raise ValueError(f"{type(layer).__name__}'s last call did not end in a softmax: it has no logits")
    saved.logits_gradient = True
    try:
        return layer.backward(dz)
    finally:
        saved.logits_gradient = False


def activate(name, z):
    """``(y, saved)``: the activation ``name`` applied to ``z``, and what its backward needs.

    ``saved`` never aliases ``z`` or ``y`` (a caller may change those in place before
    backward): ``None`` for the identity, the mask ``y > 0`` for ReLU, a ``SoftmaxSaved``
    (copies of ``y`` and of the logits ``z``) for softmax. A layer keeps ``saved`` as a value
    of its ``_last`` dict, where ``softmax_logits`` and ``backward_from_logits`` find it.

    >>> import numpy as np
    >>> y, saved = activate("relu", np.array([-1.0, 2.0]))
    >>> y.tolist(), saved.tolist()
    ([0.0, 2.0], [False, True])
    """
    if name is None or name == "linear":
        return z, None
    if name == "relu":
        y = namespace(z).maximum(z, 0)
        return y, y > 0
    if name == "softmax":
        y = softmax(z)
        return y, SoftmaxSaved(y.copy(), z.copy())
    raise ValueError(f"`activation` must be one of {ACTIVATIONS}. {checks.received('activation', name)}")


def activation_gradient(name, dy, saved):
    """``dz``: the gradient through activation ``name``, from ``dy`` and ``activate``'s ``saved``.

    >>> import numpy as np
    >>> activation_gradient("relu", np.array([5.0, 5.0]), np.array([False, True])).tolist()
    [0.0, 5.0]
    """
    if name is None or name == "linear":
        return dy
    if name == "relu":
        return relu_gradient(dy, saved)
    if name == "softmax":
        if saved.logits_gradient:  # backward_from_logits: dy is already d loss / d z
            return dy
        return softmax_gradient(dy, saved.y)
    raise ValueError(f"`activation` must be one of {ACTIVATIONS}. {checks.received('activation', name)}")


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


def resolve(activation):
    """Keras's ``activations.get`` for the names scratchopt implements: ``None`` and
    ``"linear"`` are the identity (returned as ``None``); an unknown string is Keras's
    ``ValueError``; anything else (a number, a callable) a ``TypeError`` (Keras accepts any
    callable; scratchopt has no gradient for one).

    >>> resolve("linear") is None, resolve("softmax")
    (True, 'softmax')
    """
    if activation is None or activation == "linear":
        return None
    if isinstance(activation, str):
        if activation in ACTIVATIONS:
            return activation
        raise ValueError(f"Could not interpret activation function identifier: {activation}. "
                         f"`activation` must be one of {ACTIVATIONS}. "
                         f"{checks.received('activation', activation)}")
    raise TypeError(f"`activation` must be one of {ACTIVATIONS}. "
                    f"{checks.received('activation', activation)}")


class Activation(Layer):
    """Keras's ``Activation(activation)``: ``y = activation(x)``, with no weights.

    ``activation`` is ``"relu"``, ``"softmax"`` (over the last axis) or ``"linear"``/``None``
    (the identity); the forward and backward are ``activate`` / ``activation_gradient``
    (this module's table).

    Examples
    --------
    >>> import numpy as np
    >>> from scratchopt.nn.activations import Activation
    >>> layer = Activation("softmax")
    >>> layer(np.array([[0.0, 0.0]])).tolist()
    [[0.5, 0.5]]
    >>> layer.backward(np.array([[1.0, 0.0]])).tolist()  # (dy - sum(dy * y)) * y
    [[0.25, -0.25]]
    >>> Activation("swish")
    Traceback (most recent call last):
    ...
    ValueError: Could not interpret activation function identifier: swish...
    """

    def __init__(self, activation):
        super().__init__()
        self.activation = resolve(activation)

    def get_config(self):
        return {"activation": "linear" if self.activation is None else self.activation}

    def call(self, x, training=False):
        y, saved = activate(self.activation, x)
        self._last = {"saved": saved}
        return y

    def _backward(self, dy):
        return activation_gradient(self.activation, dy, self._last["saved"])
