"""LayerNormalization: normalize each example over its own features.

``LayerNormalization(axis=-1, epsilon=0.001, center=True, scale=True)``. ``axis`` (an int
or a list of ints) names the normalized axes; every other index (the example, the time
step, ...) is one "row" with its own statistics over the M values it spans. ``gamma`` and
``beta`` have the shape of the normalized axes. Unlike BatchNormalization there are no
moving statistics and no difference between training and inference. The formulas are in
the docstrings of ``call`` and ``_backward``, right above the lines that compute them;
``nn.layer.moments`` has the mean and the (biased, divided by M) variance.

``epsilon`` defaults to 1e-3 (PyTorch's ``nn.LayerNorm``: 1e-5); ``epsilon=None`` means
Keras's ``backend.epsilon()``, 1e-7.

Bits: float64 equals Keras's everywhere. float32 equals it wherever TF's ``rsqrt`` is
exact: TF takes ``rsqrt`` of the vector of per-row variances in packets of 8 with the
CPU's approximate instruction (``numerics.rsqrt``), so with 8 or more rows all but the
last ``rows % 8`` rows of ``y`` and ``dx``, and ``dgamma``, can be a few ULP apart (the
bound is measured in ``parity_tests/test_layers.py``); ``dbeta`` is always exact.

Two Keras quirks kept here. With several axes, ``gamma``/``beta`` have the shape of
``sorted(axis)`` and are *reshaped* (not transposed) onto the input: when the list mixes
negative and positive axes (``axis=[-1, 1]``), ``sorted`` puts the last axis first and the
parameters' elements land elsewhere than their shape suggests. When every axis is
normalized that way (``axis=[-1, 0]``), Keras cannot apply the parameters at all (it fails,
or broadcasts to another shape); we raise a ValueError.

Inputs of another rank than the first call's are taken, as in Keras: ``axis`` indexes each
input anew (-1 is always the last axis), and the normalized axes must have the sizes
``gamma`` and ``beta`` were built for. Keras checks only that their *product* matches (it
reshapes ``gamma``), so a ``(3, 4)`` layer applies its parameters to a ``(4, 3)`` slice
scrambled; we raise a ValueError there.
"""

import numpy as np

from .. import checks
from ..backend import namespace
from ..checks import received
from ..numerics import (
    rsqrt,
    rsqrt_grad,
    tf_arithmetic,
)
from ..nn.layer import Layer, moments, normalize_axis, unbroadcast
from . import normalization_fast

KERAS_BACKEND_EPSILON = 1e-7  # keras.backend.epsilon(), used for epsilon=None


def _broadcasts_to(shape, target):
    try:
        return np.broadcast_shapes(tuple(shape), tuple(target)) == tuple(target)
    except ValueError:
        return False


def _axis(axis):
    """Keras: an int or a list/tuple of ints, else TypeError. Empty or repeated: ValueError here."""
    if isinstance(axis, (list, tuple)):
        axes = list(axis)
        for a in axes:
            if isinstance(a, bool) or not isinstance(a, int):
                raise TypeError(f"Expected an int or a list/tuple of ints for `axis`. {received('axis', axis)}")
        if not axes or len(set(axes)) != len(axes):
            raise ValueError(f"`axis` must name at least one axis, each once. {received('axis', axis)}")
        return axes
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError(f"Expected an int or a list/tuple of ints for `axis`. {received('axis', axis)}")
    return axis


def _epsilon(epsilon):
    """Keras does not look at epsilon until the first call; we want a number (TypeError)."""
    return float(checks.number("epsilon", epsilon, what="a number or None"))


class LayerNormalization(Layer):
    """Keras's LayerNormalization, forward and backward.

    ``gamma`` (ones, if ``scale``) and ``beta`` (zeros, if ``center``) are made at the first
    call (or by ``build``) with the shape of the normalized axes and the input's dtype.
    ``training`` is accepted and ignored, as the layer behaves the same either way.

    Examples
    --------
    Each row is normalized on its own, so rows that differ only in scale give the same
    output: ``(x - 2) / sqrt(2/3)`` and ``(x - 20) / sqrt(200/3)``, about -1.22, 0, 1.22
    (``epsilon`` aside).

    >>> import numpy as np
    >>> from scratchopt.layers import LayerNormalization
    >>> layer = LayerNormalization()
    >>> x = np.array([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]])
    >>> np.round(layer(x), 2)
    array([[-1.22,  0.  ,  1.22],
           [-1.22,  0.  ,  1.22]])
    >>> layer.params["gamma"].shape  # one scale per normalized feature
    (3,)
    """

    def __init__(self, axis=-1, epsilon=0.001, center=True, scale=True):
        super().__init__()
        self.axis = _axis(axis)
        self.epsilon = None if epsilon is None else _epsilon(epsilon)
        self.center = checks.flag("center", center)
        self.scale = checks.flag("scale", scale)
        self.gamma = self.beta = None

    def get_config(self):
        return {"axis": self.axis, "epsilon": self.epsilon, "center": self.center, "scale": self.scale}

    def _axes(self, ndim):
        """The normalized axes as indices, in Keras's ``sorted(axis)`` order (negatives first)."""
        given = sorted(self.axis if isinstance(self.axis, list) else [self.axis])
        indices = [normalize_axis(a, ndim) for a in given]
        if len(set(indices)) != len(indices):
            raise ValueError(f"`axis` {self.axis} names an axis twice for an input of rank {ndim}")
        return indices

    def build(self, input_shape, dtype=np.float32, xp=np):
        """Make ``gamma`` and ``beta`` for inputs of ``input_shape`` and ``dtype``."""
        dtype = np.dtype(dtype)
        if dtype not in checks.FLOAT_DTYPES:
            raise TypeError(f"`dtype` must be float32 or float64, got {dtype}")
        self._indices = self._axes(len(input_shape))
        self._input_shape = tuple(input_shape)
        shape = tuple(input_shape[i] for i in self._indices)  # in sorted(axis) order, as Keras
        self.gamma = xp.ones(shape, dtype) if self.scale else None
        self.beta = xp.zeros(shape, dtype) if self.center else None
        self.params = {k: v for k, v in (("gamma", self.gamma), ("beta", self.beta)) if v is not None}
        self.built = True

    def _param_shape(self, x):
        """The shape Keras gives ``gamma``/``beta`` against ``x``; ValueError where Keras fails.

        Keras reshapes them onto the input (1s on the other axes), except when they already
        have the input's rank or ``axis`` is ``[rank - 1]``; then they are used as they are.
        With every axis normalized and ``axis`` mixing signs (``[-1, 0]``), their shape is a
        permutation of the input's, and Keras either fails or broadcasts to another shape.
        """
        indices = self._axes(x.ndim)
        given = sorted(self.axis if isinstance(self.axis, list) else [self.axis])
        own = tuple(x.shape[i] for i in indices)
        if len(own) != x.ndim and given != [x.ndim - 1]:
            return tuple(x.shape[i] if i in indices else 1 for i in range(x.ndim))
        if (self.scale or self.center) and not _broadcasts_to(own, x.shape):
            raise ValueError(f"Keras cannot apply parameters of shape {own} (axis={self.axis}) to "
                             f"inputs of shape {x.shape}: it fails or returns another shape")
        return own

    def _check(self, x):
        if not self.built:
            self._param_shape(x)  # ValueError before anything is made
            self.build(x.shape, x.dtype, namespace(x))
            return
        # Any rank, as in Keras: `axis` indexes each input anew (-1 is always the last axis);
        # the normalized axes must have the sizes gamma and beta were built for.
        normalized = [self._input_shape[i] for i in self._indices]
        if [x.shape[i] for i in self._axes(x.ndim)] != normalized:
            raise ValueError(f"LayerNormalization was built for sizes {normalized} on axes {self.axis}; "
                             f"got shape {x.shape}")
        self._param_shape(x)
        param = self.gamma if self.gamma is not None else self.beta
        if param is not None:
            if x.dtype != param.dtype:
                raise TypeError(f"LayerNormalization was built for {param.dtype} inputs, got {x.dtype}")
            namespace(x, param)  # TypeError when NumPy and CuPy are mixed

    def call(self, x, training=False):
        """``y = layer(x)``, the same in training and inference (``training`` is ignored).

        Textbook (Ba, Kiros & Hinton, 2016)      Keras / TF (this code), per row
        -----------------------------------      ------------------------------------------
        x_hat = (x - mean) / sqrt(var + eps)     r       = rsqrt(var + eps)        (one per row)
        y     = gamma * x_hat + beta             inv     = r * gamma               (r if scale=False)
                                                 centred = (-mean) * inv
                                                 y       = x * inv + (centred + beta)
                                                                   (+ centred if center=False)
        """
        self._check(x)
        t = x.dtype.type
        axes = self._axes(x.ndim)
        shape = self._param_shape(x)  # reshaped (not transposed) onto the input, as Keras does
        gamma = self.gamma.reshape(shape).copy() if self.scale else None
        beta = self.beta.reshape(shape) if self.center else None
        eps = KERAS_BACKEND_EPSILON if self.epsilon is None else self.epsilon
        if self.scale and self.center and normalization_fast.wanted(x, axes == [x.ndim - 1]):
            with tf_arithmetic():  # the lines below, compiled: one pass, the same bits
                reuse = self._last["x"] if self._last and self._last.get("fast") else None  # only backward reads it
                y, kept, mean, r = normalization_fast.layer_forward(x, gamma, beta, eps, reuse)
            self._last = {"fast": True, "x": kept, "mean": mean, "r": r, "gamma": gamma}
            return y
        with tf_arithmetic():
            mean, var = moments(x, axes)
            r = rsqrt(var + t(eps))
            inv = r * gamma if self.scale else r
            centred = (-mean) * inv
            shift = centred + beta if self.center else centred
            y = x * inv + shift
        # Copies of x and gamma: backward uses this call's values, as Keras's tape does, even
        # if the caller changes the input (or an optimizer gamma) in place before backward.
        self._last = {"x": x.copy(order="K"), "mean": mean, "r": r, "inv": inv, "gamma": gamma,
                      "beta_shape": None if beta is None else beta.shape,
                      "shapes": (centred.shape, shift.shape)}
        return y

    def _backward(self, dy):
        """``dx``, and ``dgamma``, ``dbeta`` into ``self.grads``.

        "row sums" run over the M normalized values of a row, "column sums" over the rows;
        ``down(g, shape)`` is the gradient of a broadcast (``nn.layer.unbroadcast``):

        dbeta  = column sums of dy
        dinv   = x * dy + (-mean) * dy                (row sums of each if scale=False)
        dgamma = column sums of r * dinv
        dvar   = RsqrtGrad(r, row sums of dinv * gamma)  = -0.5 * dr * r**3
        dmean  = -(row sums of dy * inv)
        dx     = (dy * inv + dmean / M) + (2 * (dvar / M)) * (x - mean)

        This is ``tf.GradientTape`` through Keras's graph, op by op (the broadcasts of ``inv``
        against ``gamma`` decide which sums appear, so the code follows the graph with
        ``down``); the three uses of ``x`` are added in the tape's order, as in
        BatchNormalization.
        """
        last = self._last
        if last.get("fast"):  # the lines below, compiled: one pass, the same bits
            with tf_arithmetic():
                dx, dgamma, dbeta = normalization_fast.layer_backward(last["x"], dy, last["gamma"],
                                                                      last["mean"], last["r"])
            self.grads = {"gamma": dgamma.reshape(self.gamma.shape), "beta": dbeta.reshape(self.beta.shape)}
            return dx
        x, mean, r, inv, gamma = (last[k] for k in ("x", "mean", "r", "inv", "gamma"))
        t = x.dtype.type
        m = t(x.size // max(mean.size, 1))  # M, the values per row

        with tf_arithmetic():
            # y = x * inv + shift; shift = centred + beta; centred = (-mean) * inv
            centred_shape, shift_shape = last["shapes"]
            down = unbroadcast
            dshift = down(dy, shift_shape)
            dcentred = down(dshift, centred_shape) if self.center else dshift
            dbeta = down(dshift, last["beta_shape"]) if self.center else None
            neg_mean = -mean
            dneg_mean = down(dcentred * inv, mean.shape)
            dinv = down(x * dy, inv.shape) + down(neg_mean * dcentred, inv.shape)
            # inv = r * gamma
            if self.scale:
                dgamma = down(r * dinv, gamma.shape)
                dr = down(dinv * gamma, r.shape)
            else:
                dr = dinv
            dvar = rsqrt_grad(r, dr)
            dmean = -dneg_mean
            dx = (dy * inv + dmean / m) + (t(2) * (dvar / m)) * (x - mean)
        self.grads = {}
        if self.scale:
            self.grads["gamma"] = dgamma.reshape(self.gamma.shape)
        if self.center:
            self.grads["beta"] = dbeta.reshape(self.beta.shape)
        return dx
