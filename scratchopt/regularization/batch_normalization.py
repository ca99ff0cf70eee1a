"""BatchNormalization: normalize each channel by the statistics of the batch.

``BatchNormalization(axis=-1, momentum=0.99, epsilon=0.001, center=True, scale=True)``.
``axis`` is the channel axis; channel c's statistics are taken over every other axis (the
batch and, for images, the pixels): N values per channel. The formulas are in the
docstrings of ``_normalize`` (forward), ``_update_moving`` and ``_backward``, each right
above the lines that compute it; ``nn.layer.moments`` has the mean and the variance.

What differs from the paper and from PyTorch:

* **momentum runs the other way.** Keras keeps ``momentum`` of the old moving average
  (0.99: 99% old, 1% new); PyTorch's ``momentum`` is the share of the *new* batch
  statistic (0.1: 10% new). Keras's 0.99 is PyTorch's 0.01, and PyTorch's default 0.1 is
  Keras's 0.9.
* **biased variance everywhere.** The batch variance divides by N, and Keras puts that same
  biased variance into ``moving_variance``; PyTorch normalizes with the biased one but
  stores the unbiased ``var * N / (N - 1)`` in ``running_var``.
* **epsilon = 1e-3** by default (PyTorch: 1e-5), added to the variance inside the root.
* **training statistics only if ``training and self.trainable``**: a frozen layer
  (``layer.trainable = False``, e.g. when fine-tuning) normalizes with its moving
  statistics even in a training call, and does not update them.
* the output is one multiply-add per element, ``x * inv + (beta - mean * inv)``, so it is
  not ``gamma * (x - mean) / sqrt(var + eps) + beta`` to the last bit.

Bits: float64 equals Keras's everywhere. float32 equals it wherever TF's ``rsqrt`` is
exact: TF takes the channel vector's ``rsqrt`` with the CPU's approximate instruction on
whole packets of 8 channels (``numerics.rsqrt``), so for C >= 8 the first 8 * (C // 8)
channels of ``y``, ``dx`` and ``dgamma`` can be a few ULP apart (the bound is measured in
``parity_tests/test_layers.py``); the moving statistics and ``dbeta`` are always exact.
"""

import numpy as np

from .. import checks
from ..backend import namespace
from ..numerics import reduce_sum_over, rsqrt, rsqrt_grad, tf_arithmetic
from ..nn.layer import Layer, as_float, as_int, moments, normalize_axis
from . import normalization_fast


def _reshaped(arrays, shape):
    return tuple(a.reshape(shape) for a in arrays)


class BatchNormalization(Layer):
    """Keras's BatchNormalization, forward and backward.

    Parameters (shape ``(C,)``, the input's dtype, made at the first call or by ``build``):
    ``gamma`` (ones, if ``scale``) and ``beta`` (zeros, if ``center``) are trainable and in
    ``params``; ``moving_mean`` (zeros) and ``moving_variance`` (ones) are updated in place
    by training calls.

    Validation follows Keras's ``int(axis)``, ``float(momentum)``, ``float(epsilon)``:
    what those refuse, we refuse with the same exception; what they would quietly convert
    (``axis=1.5``, ``momentum="0.9"``) is a ``TypeError`` here, and so is a ``center`` or
    ``scale`` that is not a bool. Inputs need rank 2 or more.

    Examples
    --------
    A batch of two samples, two channels. Channel 0 holds 1 and 3 (mean 2, variance 1),
    channel 1 holds 2 and 6 (mean 4, variance 4): each becomes about -1 and +1
    (``epsilon`` keeps it a hair short). The moving statistics take 1% of the batch's:
    ``0.99 * 0 + 0.01 * mean`` and ``0.99 * 1 + 0.01 * var``.

    >>> import numpy as np
    >>> from scratchopt.layers import BatchNormalization
    >>> layer = BatchNormalization()
    >>> x = np.array([[1.0, 2.0], [3.0, 6.0]])
    >>> np.round(layer(x, training=True), 2)
    array([[-1., -1.],
           [ 1.,  1.]])
    >>> np.round(layer.moving_mean, 4), np.round(layer.moving_variance, 4)
    (array([0.02, 0.04]), array([1.  , 1.03]))
    """

    #: The non-trainable state, by attribute name, in Keras's weight order (after ``params``):
    #: ``Sequential.get_weights``/``set_weights``/``save_weights`` include these arrays; the
    #: optimizer never sees them (they are not in ``params``).
    non_trainable_names = ("moving_mean", "moving_variance")

    def __init__(self, axis=-1, momentum=0.99, epsilon=0.001, center=True, scale=True):
        super().__init__()
        self.axis = as_int("axis", axis)
        self.momentum = as_float("momentum", momentum)
        self.epsilon = as_float("epsilon", epsilon)
        self.center = checks.flag("center", center)
        self.scale = checks.flag("scale", scale)
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None

    def get_config(self):
        return {"axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale}

    def build(self, input_shape, dtype=np.float32, xp=np):
        """Make the four ``(C,)`` arrays for inputs of ``input_shape`` and ``dtype``."""
        dtype = np.dtype(dtype)
        if dtype not in checks.FLOAT_DTYPES:
            raise TypeError(f"`dtype` must be float32 or float64, got {dtype}")
        self._axis = normalize_axis(self.axis, len(input_shape))
        self._input_shape = tuple(input_shape)
        channels = (input_shape[self._axis],)
        self.gamma = xp.ones(channels, dtype) if self.scale else None
        self.beta = xp.zeros(channels, dtype) if self.center else None
        self.moving_mean = xp.zeros(channels, dtype)
        self.moving_variance = xp.ones(channels, dtype)
        self.params = {k: v for k, v in (("gamma", self.gamma), ("beta", self.beta)) if v is not None}
        self.built = True

    def _check(self, x):
        if x.ndim < 2:  # Keras fails on some of these (no batch axis to reduce); we on all
            raise ValueError(f"BatchNormalization needs inputs of rank 2 or more, got shape {x.shape}")
        if not self.built:
            normalize_axis(self.axis, x.ndim)  # ValueError before anything is made
            self.build(x.shape, x.dtype, namespace(x))
            return
        c = self.moving_mean.shape[0]
        if x.ndim != len(self._input_shape) or x.shape[self._axis] != c:
            raise ValueError(f"BatchNormalization was built for inputs of rank {len(self._input_shape)} "
                             f"with {c} channels on axis {self.axis}; got shape {x.shape}")
        if x.dtype != self.moving_mean.dtype:
            raise TypeError(f"BatchNormalization was built for {self.moving_mean.dtype} inputs, got {x.dtype}")
        namespace(x, self.moving_mean)  # TypeError when NumPy and CuPy are mixed

    def call(self, x, training=False):
        """``y = layer(x, training=False)``: batch statistics if ``training and self.trainable``."""
        self._check(x)
        axes = [i for i in range(x.ndim) if i != self._axis]  # the N values of each channel
        shape = [1] * x.ndim  # (C,) arrays, broadcast along the channel axis
        shape[self._axis] = x.shape[self._axis]
        batch_stats = bool(training) and self.trainable
        fast = normalization_fast.wanted(x, self._axis == x.ndim - 1)  # the same bits, compiled
        with tf_arithmetic():
            if batch_stats:
                mean, var = (_reshaped(normalization_fast.batch_moments(x), shape) if fast
                             else moments(x, axes))
                self._update_moving(mean.reshape(-1), var.reshape(-1))
            else:  # copies: backward must see these values, not later updates
                mean = self.moving_mean.reshape(shape).copy()
                var = self.moving_variance.reshape(shape).copy()
            gamma = self.gamma.reshape(shape).copy() if self.scale else None
            beta = self.beta.reshape(shape) if self.center else None
            y, r, inv, kept = self._normalize(x, mean, var, gamma, beta, fast)
        # Copies of x and gamma: backward uses this call's values, as Keras's tape does, even
        # if the caller changes the input (or an optimizer gamma) in place before backward.
        self._last = {"x": x.copy(order="K") if kept is None else kept, "axes": axes, "mean": mean,
                      "r": r, "inv": inv, "gamma": gamma, "batch_stats": batch_stats, "fast": fast}
        return y

    def _normalize(self, x, mean, var, gamma, beta, fast=False):
        """The normalization, with the batch's statistics or the moving ones: ``(y, r, inv, kept)``.

        Textbook (Ioffe & Szegedy, 2015)         Keras / TF (this code)
        -----------------------------------      ------------------------------------------
        x_hat = (x - mean) / sqrt(var + eps)     r   = rsqrt(var + eps)       (C values)
        y     = gamma * x_hat + beta             inv = r * gamma              (r if scale=False)
                                                 y   = x * inv + (beta - mean * inv)
                                                       (+ (-mean * inv) if center=False)

        ``eps`` is a Python double rounded once to the input's dtype. ``fast``: the last
        line compiled, writing ``kept`` (backward's copy of ``x``) in the same pass.
        """
        r = rsqrt(var + x.dtype.type(self.epsilon))
        inv = r * gamma if self.scale else r
        shift = beta - mean * inv if self.center else (-mean) * inv
        if fast:  # into the last call's copy of x when it fits (only backward reads it)
            reuse = self._last["x"] if self._last and self._last.get("fast") else None
            y, kept = normalization_fast.batch_output(x, inv, shift, reuse)
            return y, r, inv, kept
        return x * inv + shift, r, inv, None

    def _update_moving(self, mean, var):
        """The moving averages, after each training call (in place).

        Keras (this code)                                        PyTorch, for comparison
        ----------------------------------------------------     --------------------------------------
        moving_mean = moving_mean * momentum + mean * (1 - momentum)     (1 - m) * running + m * mean
        moving_var  = moving_var  * momentum + var  * (1 - momentum)     ... + m * var * N / (N - 1)

        ``momentum`` and ``1 - momentum`` are Python doubles, each rounded once to the dtype.
        """
        t, m = mean.dtype.type, self.momentum
        self.moving_mean[...] = self.moving_mean * t(m) + mean * t(1.0 - m)
        self.moving_variance[...] = self.moving_variance * t(m) + var * t(1.0 - m)

    def _backward(self, dy):
        """``dx``, and ``dgamma``, ``dbeta`` into ``self.grads``; sums over the N values per channel.

        dbeta  = sum(dy)
        dinv   = sum(x * dy) + (-dbeta) * mean
        dgamma = dinv * r
        dvar   = RsqrtGrad(r, dinv * gamma)  = -0.5 * (dinv * gamma) * r**3   (numerics.rsqrt_grad)
        dmean  = (-dbeta) * inv
        dx     = (dy * inv + dmean / N) + (2 * (dvar / N)) * (x - mean)

        This is ``tf.GradientTape`` through Keras's graph, op by op: ``x`` is used three times
        (``x * inv``, the mean, the variance), and the tape adds the three gradients in that
        order. The textbook's ``dx = (gamma * r / N) * (N * dy - sum(dy) - x_hat * sum(dy *
        x_hat))`` is the same function, rounded differently. With the moving statistics
        (inference, or a frozen layer) only the first term is left: ``dx = dy * inv``.
        """
        last = self._last
        x, axes, mean, r, inv, gamma = (last[k] for k in ("x", "axes", "mean", "r", "inv", "gamma"))
        t = x.dtype.type
        n = t(x.size // max(mean.size, 1))
        with tf_arithmetic():
            if last["fast"]:  # both sums in one compiled pass, the same bits
                dbeta, x_dy = _reshaped(normalization_fast.batch_backward_sums(x, dy), mean.shape)
            else:
                dbeta = reduce_sum_over(dy, axes, keepdims=True)
                x_dy = reduce_sum_over(x * dy, axes, keepdims=True)
            dinv = x_dy + (-dbeta) * mean
            dgamma = dinv * r
            terms = None  # with the moving statistics: dx = dy * inv
            if last["batch_stats"]:
                dvar = rsqrt_grad(r, dinv * gamma if self.scale else dinv)
                dmean = (-dbeta) * inv
                terms = (dmean / n, t(2) * (dvar / n), mean)
            if last["fast"]:  # the dx line compiled: one pass, the same bits
                dx = normalization_fast.batch_dx(x, dy, inv, terms)
            elif terms is None:
                dx = dy * inv
            else:
                dx = (dy * inv + dmean / n) + (t(2) * (dvar / n)) * (x - mean)
        self.grads = {}
        if self.scale:
            self.grads["gamma"] = dgamma.reshape(-1)
        if self.center:
            self.grads["beta"] = dbeta.reshape(-1)
        return dx
