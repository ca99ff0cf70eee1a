"""BatchNorm1d / BatchNorm2d: torch 2.13's batch normalization, channels-first, on NumPy arrays.

``BatchNorm1d(num_features, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)``
takes ``(N, C)`` or ``(N, C, L)``; ``BatchNorm2d`` takes ``(N, C, H, W)``. Channel ``c``'s
statistics are over the ``n = N * L`` (or ``N * H * W``) values of that channel.

How it differs from Keras's ``BatchNormalization`` (``scratchopt/regularization/batch_normalization.py``)::

    Keras                                          PyTorch (this file)
    ---------------------------------------------  -------------------------------------------------
    moving = moving * m + batch * (1 - m), m=0.99  running = (1 - m) * running + m * batch, m = 0.1
    moving_variance gets the biased var (/ n)      running_var gets the unbiased var (/ (n - 1))
    epsilon = 1e-3                                 eps = 1e-5
    frozen by ``trainable = False``                mode by ``train()`` / ``eval()``; with
                                                   ``track_running_stats=False`` eval uses batch stats
    ``momentum=None``: not allowed                 ``momentum=None``: cumulative average, m = 1 / t
    channels-last by default (axis=-1)             channels-first (axis 1)

So Keras's ``momentum=0.99`` is torch's ``0.01``, and torch's ``0.1`` is Keras's ``0.9``: the
running *mean* is then the same bits on both sides (see ``scratchopt conventions``); the
running variance is not, by the factor ``n / (n - 1)``.

Bits (torch 2.13.0+cpu, one intra-op thread; measured, ``parity_tests/test_torch_nn.py``):

* ``(N, C)`` inputs (ATen's "channels-last" kernels: serial sums per channel): everything
  exact in float32 and float64, forward, running statistics, ``dx`` and the gradients;
* ``(N, C, L)`` and ``(N, C, H, W)``: the forward pass and the running statistics are exact
  in float32, and the running mean in float64; in float64 ``y`` and ``running_var`` are
  within 1 ULP (about one case in three has some; not pinned down). The backward pass sums
  each plane with a vector-width tree (``vec::reduce_all``) that is not reproduced, so
  ``dx`` and the gradients are within a measured bound (``parity_tests/measure_torch_nn.py``).
"""

import numpy as np

from ...backend import namespace
from ...numerics.fma import fma
from .module import Module, real, size


def _fma(a, b, c):
    """``a*b + c`` rounded once, with NumPy broadcasting."""
    a, b, c = np.broadcast_arrays(a, b, c)
    return fma(np.ascontiguousarray(a), np.ascontiguousarray(b), np.ascontiguousarray(c))


def _rows(x):
    """``x`` as ``(n, C)``: row ``i`` holds element ``i`` of every channel, in ATen's order (batch, then pixel)."""
    n_batch, channels = x.shape[0], x.shape[1]
    return np.moveaxis(x.reshape(n_batch, channels, -1), 1, 2).reshape(-1, channels)


def _collect_stats(x):
    """``(mean, var_sum)`` per channel, in the input's dtype, as ATen's ``batch_norm_cpu_collect_stats``.

    (N, C) inputs ("channels-last" in ATen: image size 1), one thread:
        s       = x[0] + x[1] + ... + x[n-1]             serial, in the input's dtype
        mean    = T(double(s) / n)
        var_sum = fma(d, d, var_sum) over the rows, d = x[i] - mean   (the compiler fuses
                                                                         y + d * d into one FMA)
    (N, C, L) and (N, C, H, W) ("contiguous"):
        s       = serial sum in double, batch by batch, pixel by pixel
        mean    = T(s / n)
        var_sum = T(serial double sum of T((x - mean) * (x - mean)))
    """
    rows = _rows(x)
    n = rows.shape[0]
    if x.ndim == 2 or x[0, 0].size == 1:
        if n > 1:  # ATen's per-thread buffer in the input's dtype (N > num_threads = 1)
            s = np.zeros(rows.shape[1], x.dtype)
            for row in rows:
                s = s + row
            mean = (s.astype(np.float64) / n).astype(x.dtype)
            var_sum = np.zeros(rows.shape[1], x.dtype)
            for row in rows:
                d = row - mean
                var_sum = _fma(d, d, var_sum)
            return mean, var_sum
        mean = (rows[0].astype(np.float64) / n).astype(x.dtype)
        d = rows[0] - mean
        return mean, (d * d).astype(x.dtype)
    s = np.zeros(rows.shape[1], np.float64)
    for row in rows:
        s += row
    mean = (s / n).astype(x.dtype)
    var_sum = np.zeros(rows.shape[1], np.float64)
    for row in rows:
        d = row - mean
        var_sum += d * d  # float32: d * d rounded to float, then widened
    return mean, var_sum.astype(x.dtype)


class _BatchNorm(Module):
    """The shared code of BatchNorm1d and BatchNorm2d (they differ only in the ranks they accept)."""

    ranks = ()

    def __init__(self, num_features, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features = size("num_features", num_features)
        self.eps = real("eps", eps)
        self.momentum = real("momentum", momentum, optional=True)
        for name, flag in (("affine", affine), ("track_running_stats", track_running_stats)):
            if not isinstance(flag, bool):
                raise TypeError(f"`{name}` must be a bool. Received: {name}={flag!r} ({type(flag).__name__})")
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = self.bias = self.running_mean = self.running_var = None
        self.num_batches_tracked = 0
        self.to(np.float32)

    def get_config(self):
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum,
                "affine": self.affine, "track_running_stats": self.track_running_stats}

    def to(self, dtype=np.float32, xp=np):
        """Fresh parameters and buffers in ``dtype`` (torch makes them float32 at construction;
        the first call with a float64 input remakes them in float64, as ``module.double()``)."""
        c, dtype = self.num_features, np.dtype(dtype)
        if self.affine:
            self.weight, self.bias = xp.ones(c, dtype), xp.zeros(c, dtype)
            self.params = {"weight": self.weight, "bias": self.bias}
        if self.track_running_stats:
            self.running_mean, self.running_var = xp.zeros(c, dtype), xp.ones(c, dtype)
        return self

    def _check(self, x):
        if x.ndim not in self.ranks:
            allowed = " or ".join(f"{r}D" for r in self.ranks)
            raise ValueError(f"expected {allowed} input (got {x.ndim}D input)")
        if x.shape[1] != self.num_features:
            raise RuntimeError(f"running_mean should contain {x.shape[1]} elements not {self.num_features}")
        if self.training and x.size // x.shape[1] <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {x.shape}")
        ref = self.weight if self.affine else self.running_mean
        if ref is not None and (ref.dtype != x.dtype or namespace(ref) is not namespace(x)):
            if self.built:
                raise TypeError(f"{type(self).__name__} holds {ref.dtype} parameters; got a {x.dtype} input")
            self.to(x.dtype, namespace(x))
        self.built = True

    def call(self, x, training=True):
        self._check(x)
        t = x.dtype.type
        shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        batch_stats = training or not self.track_running_stats
        factor = 0.0 if self.momentum is None else self.momentum
        if training and self.track_running_stats:
            self.num_batches_tracked += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        if batch_stats:
            n = x.size // x.shape[1]
            mean, var_sum = _collect_stats(x)
            invstd = self._invstd_train(var_sum, n)
            if training and self.track_running_stats:
                self._update_running(mean, var_sum, n, factor)
        else:
            mean = self.running_mean.copy()
            invstd = t(1) / np.sqrt(self.running_var + t(self.eps))  # in the dtype (ATen's opmath)
        w = self.weight if self.affine else np.ones_like(mean)
        b = self.bias if self.affine else np.zeros_like(mean)
        y, _ = self._normalize(x, mean, invstd, w, b, shape)
        if not batch_stats:  # ATen's backward takes 1 / sqrt(running_var + eps) in double, then T
            invstd = (1.0 / np.sqrt(self.running_var.astype(np.float64) + self.eps)).astype(x.dtype)
        self._last = {"x": x.copy(), "mean": mean, "invstd": invstd, "w": w.copy(), "train": batch_stats}
        return y

    def _invstd_train(self, var_sum, n):
        """``invstd = T(1 / sqrt(double(T(var_sum / n)) + eps))``: ATen's ``InvStd<double>``
        on the float quotient (``float / int64`` divides in float)."""
        var = (var_sum / var_sum.dtype.type(n)).astype(var_sum.dtype)
        with np.errstate(divide="ignore"):
            return (1.0 / np.sqrt(var.astype(np.float64) + self.eps)).astype(var_sum.dtype)

    @staticmethod
    def _normalize(x, mean, invstd, w, b, shape):
        """The output: one fused multiply-add per element.

        Textbook                                  torch 2.13 CPU (this code)
        ----------------------------------------  ----------------------------------------------
        y = (x - mean) / sqrt(var + eps) * w + b  alpha = invstd * w
                                                  beta  = fma(-mean, alpha, b)   (b - mean * alpha,
                                                                                  one rounding)
                                                  y     = fma(x, alpha, beta)
        Keras has the same two terms with separate roundings: x * inv + (beta - mean * inv).
        """
        alpha = invstd * w
        beta = _fma(-mean, alpha, b)
        return _fma(x, alpha.reshape(shape), beta.reshape(shape)), alpha

    def _update_running(self, mean, var_sum, n, factor):
        """The running statistics, in place, after each training call.

        torch 2.13 (this code; m = T(momentum))        Keras, for comparison
        ---------------------------------------------  ------------------------------------------
        running_mean = m * mean + T(1 - m) * running   moving * m_k + mean * (1 - m_k), m_k = 0.99
        unbiased     = double(T(var_sum / (n - 1)))    biased: var_sum / n
        running_var  = T(double(m) * unbiased          moving * m_k + var * (1 - m_k)
                         + double(T(1 - m) * running))
        The first line is all in the dtype; the second mixes float and double, as ATen's
        ``accscalar_t unbiased_var`` does (``m * unbiased`` in double, ``(1 - m) * running`` in T).
        """
        t = mean.dtype.type
        m = t(factor)
        self.running_mean[...] = m * mean + (t(1) - m) * self.running_mean
        unbiased = (var_sum / t(n - 1)).astype(mean.dtype).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.running_var[...] = (np.float64(m) * unbiased
                                     + ((t(1) - m) * self.running_var).astype(np.float64)).astype(mean.dtype)

    def _backward(self, dy):
        """``dx``, and ``grads["weight"]``, ``grads["bias"]`` (ATen's ``batch_norm_cpu_backward``).

        sum_dy = sum(dy)                 dotp = sum((x - mean) * dy)       per channel
        k      = dotp * invstd * invstd / n            grad_mean = sum_dy / n
        dx     = (fma(-(x - mean), k, dy - grad_mean)) * invstd * w   (training statistics)
                 (N, C): for channels in whole vectors of 8 float32 / 4 float64 (ATen's
                 AVX2 kernel); the last C % 8 (C % 4) channels have no FMA:
                 (dy - grad_mean - (x - mean) * k) * invstd * w
        dx     = dy * invstd * w                                       (running statistics)
        grad_weight = dotp * invstd      grad_bias = sum_dy

        (N, C) inputs: ``sum_dy`` and ``dotp`` are serial sums in the dtype (``dotp`` with an
        FMA per row); all of it exact. Larger inputs: ATen sums each (sample, channel) plane with a
        vector tree in the dtype and the planes in double; here the planes are summed in
        double too, so these are a bounded few ULP off.
        """
        last = self._last
        x, mean, invstd, w = last["x"], last["mean"], last["invstd"], last["w"]
        t = x.dtype.type
        rows, drows = _rows(x), _rows(dy)
        n = rows.shape[0]
        if x.ndim == 2 or x[0, 0].size == 1:
            sum_dy = np.zeros_like(mean)
            dotp = np.zeros_like(mean)
            for xr, dr in zip(rows, drows):
                sum_dy = sum_dy + dr
                dotp = _fma(xr - mean, dr, dotp)
        else:
            planes_x = x.reshape(x.shape[0], x.shape[1], -1)
            planes_dy = dy.reshape(x.shape[0], x.shape[1], -1)
            centered = planes_x - mean[None, :, None]
            sum_dy = np.zeros(mean.shape, np.float64)
            dotp = np.zeros(mean.shape, np.float64)
            for i in range(x.shape[0]):
                sum_dy += planes_dy[i].sum(axis=-1, dtype=x.dtype)
                dotp += (centered[i] * planes_dy[i]).sum(axis=-1, dtype=x.dtype)
            sum_dy, dotp = sum_dy.astype(x.dtype), dotp.astype(x.dtype)
        shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        invstd_b, w_b = invstd.reshape(shape), w.reshape(shape)
        if last["train"]:
            k = (dotp * invstd * invstd / t(n)).reshape(shape)
            grad_mean = (sum_dy / t(n)).reshape(shape)
            centered = x - mean.reshape(shape)
            dx = _fma(-centered, k, dy - grad_mean) * invstd_b * w_b
            if x.ndim == 2 or x[0, 0].size == 1:  # the channels past the last whole vector: no FMA
                tail = x.shape[1] - x.shape[1] % (8 if x.dtype == np.float32 else 4)
                dx[:, tail:] = ((dy - grad_mean - centered * k) * invstd_b * w_b)[:, tail:]
        else:
            dx = dy * invstd_b * w_b
        self.grads = {"weight": dotp * invstd, "bias": sum_dy} if self.affine else {}
        return dx


class BatchNorm1d(_BatchNorm):
    """``torch.nn.BatchNorm1d``: inputs ``(N, C)`` or ``(N, C, L)``; see the module docstring.

    Examples
    --------
    Two samples, two channels: channel 0 holds 1 and 3, channel 1 holds 2 and 6. Each
    becomes about -1 and +1; the running statistics take 10% of the batch's, and the
    running variance is the *unbiased* one (n - 1 = 1): 2 and 8.

    >>> import numpy as np
    >>> from scratchopt.torch.nn import BatchNorm1d
    >>> bn = BatchNorm1d(2)
    >>> x = np.array([[1.0, 2.0], [3.0, 6.0]], dtype=np.float32)
    >>> np.round(bn(x), 3)
    array([[-1., -1.],
           [ 1.,  1.]], dtype=float32)
    >>> bn.running_mean, bn.running_var
    (array([0.2, 0.4], dtype=float32), array([1.1, 1.7], dtype=float32))
    >>> dx = bn.backward(np.ones_like(x)); bn.grads["bias"]
    array([2., 2.], dtype=float32)
    >>> np.round(bn.eval()(x), 3)  # running statistics now
    array([[0.763, 1.227],
           [2.67 , 4.295]], dtype=float32)
    """

    ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """``torch.nn.BatchNorm2d``: inputs ``(N, C, H, W)``; see the module docstring.

    Examples
    --------
    >>> import numpy as np
    >>> from scratchopt.torch.nn import BatchNorm2d
    >>> bn = BatchNorm2d(3)
    >>> x = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2)
    >>> y = bn(x)
    >>> np.round(y.mean(axis=(0, 2, 3)), 6) + 0.0, np.round(y.std(axis=(0, 2, 3)), 3)
    (array([0., 0., 0.], dtype=float32), array([1., 1., 1.], dtype=float32))
    >>> bn.running_mean.tolist()  # 10% of the batch means 7.5, 11.5, 15.5, in float32
    [0.75, 1.149999976158142, 1.5500000715255737]
    """

    ranks = (4,)
