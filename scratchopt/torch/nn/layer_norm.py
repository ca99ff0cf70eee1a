"""LayerNorm: torch 2.13's layer normalization over the last ``len(normalized_shape)`` axes.

``LayerNorm(normalized_shape, eps=1e-05, elementwise_affine=True)``: every row (all leading
indices) is normalized over the trailing ``M = prod(normalized_shape)`` values with its own
mean and biased variance; ``weight`` (ones) and ``bias`` (zeros) have ``normalized_shape``.

How it differs from Keras's ``LayerNormalization`` (``scratchopt/regularization/layer_normalization.py``)::

    Keras                                        PyTorch (this file)
    -------------------------------------------  ----------------------------------------------
    axis=-1 (any list of axes)                   the trailing normalized_shape axes only
    epsilon = 1e-3                               eps = 1e-5
    y = x * inv + (beta - mean * inv),           y = fma(fma(x, rstd, -rstd * mean), w, b):
        inv = gamma * rsqrt(var + eps)               normalize first, then scale and shift
    the sums in Eigen's tree order               ATen's RowwiseMoments: a vectorized Welford
                                                 cascade per row

Bits: ATen computes each row's mean and variance with ``RowwiseMoments``, a Welford
combination over vector lanes and chunks that is not reproduced here (the moments are
computed in float64 and rounded once, which is closer to the exact value than either
framework); ``y``, ``dx`` and the parameter gradients are therefore within a measured bound
of torch's, relative to the output's scale (``parity_tests/measure_torch_nn.py``).
"""

import math
import numbers

import numpy as np

from ... import checks
from ...backend import namespace
from .batch_norm import _fma
from .module import Module, real, size


def _shape(normalized_shape):
    """torch: an int becomes ``(int,)``; anything else goes through ``tuple()`` (TypeError if not iterable)."""
    if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, bool):
        normalized_shape = (normalized_shape,)
    try:
        dims = tuple(normalized_shape)
    except TypeError:
        raise TypeError(f"`normalized_shape` must be an int or a tuple of ints. "
                        f"{checks.received('normalized_shape', normalized_shape)}") from None
    return tuple(size("normalized_shape", d) for d in dims)


class LayerNorm(Module):
    """``torch.nn.LayerNorm``; see the module docstring.

    Examples
    --------
    Each row becomes mean 0 and (biased) standard deviation 1, in training and eval alike:

    >>> import numpy as np
    >>> from scratchopt.torch.nn import LayerNorm
    >>> ln = LayerNorm(4)
    >>> x = np.array([[1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 6.0, 6.0]], dtype=np.float32)
    >>> np.round(ln(x), 3)
    array([[-1.342, -0.447,  0.447,  1.342],
           [-1.   , -1.   ,  1.   ,  1.   ]], dtype=float32)
    >>> dx = ln.backward(np.ones_like(x)); ln.grads["bias"]
    array([2., 2., 2., 2.], dtype=float32)
    """

    def __init__(self, normalized_shape, eps=1e-05, elementwise_affine=True):
        super().__init__()
        self.normalized_shape = _shape(normalized_shape)
        self.eps = real("eps", eps)
        if not isinstance(elementwise_affine, bool):
            raise TypeError(f"`elementwise_affine` must be a bool. "
                            f"{checks.received('elementwise_affine', elementwise_affine)}")
        self.elementwise_affine = elementwise_affine
        self.weight = self.bias = None
        self.to(np.float32)

    def get_config(self):
        return {"normalized_shape": self.normalized_shape, "eps": self.eps,
                "elementwise_affine": self.elementwise_affine}

    def to(self, dtype=np.float32, xp=np):
        """Fresh ``weight`` / ``bias`` in ``dtype`` (made float32; a float64 first call remakes them)."""
        if self.elementwise_affine:
            self.weight = xp.ones(self.normalized_shape, dtype)
            self.bias = xp.zeros(self.normalized_shape, dtype)
            self.params = {"weight": self.weight, "bias": self.bias}
        return self

    def _check(self, x):
        k = len(self.normalized_shape)
        if x.ndim < k or tuple(x.shape[x.ndim - k:]) != self.normalized_shape:
            raise RuntimeError(f"Given normalized_shape={list(self.normalized_shape)}, expected input with "
                               f"shape [*, {', '.join(map(str, self.normalized_shape))}], but got input of "
                               f"size{list(x.shape)}")
        if self.elementwise_affine and (self.weight.dtype != x.dtype or namespace(self.weight) is not namespace(x)):
            if self.built:
                raise TypeError(f"LayerNorm holds {self.weight.dtype} parameters; got a {x.dtype} input")
            self.to(x.dtype, namespace(x))
        self.built = True

    def call(self, x, training=True):
        """The forward pass, per row of M values.

        Textbook                                   torch 2.13 CPU (this code)
        -----------------------------------------  ------------------------------------------
        y = (x - mean) / sqrt(var + eps) * w + b   mean, var = moments of the row (var biased)
                                                   rstd = 1 / sqrt(max(var, 0) + T(eps))
                                                   y    = fma(fma(x, rstd, -rstd * mean), w, b)
        """
        self._check(x)
        t = x.dtype.type
        m = math.prod(self.normalized_shape)
        rows = x.reshape(-1, m)
        wide = rows.astype(np.float64)
        mean = wide.mean(axis=1).astype(x.dtype)[:, None]
        var = ((wide - wide.mean(axis=1, keepdims=True)) ** 2).mean(axis=1).astype(x.dtype)[:, None]
        rstd = t(1) / np.sqrt(np.maximum(var, t(0)) + t(self.eps))
        w = self.weight.reshape(1, m) if self.elementwise_affine else np.ones((1, m), x.dtype)
        b = self.bias.reshape(1, m) if self.elementwise_affine else np.zeros((1, m), x.dtype)
        y = _fma(_fma(rows, rstd, -rstd * mean), w, b)
        self._last = {"rows": rows.copy(), "mean": mean, "rstd": rstd, "w": w.copy()}
        return y.reshape(x.shape)

    def _backward(self, dy):
        """``dx``, ``grads["weight"]``, ``grads["bias"]`` (ATen's ``LayerNormBackwardKernel``).

        per row (sums over its M values, scale = 1 / M):
            ds = sum(dy * w * x)        db = sum(dy * w)
            b  = (db * mean - ds) * rstd**3 * scale
            c  = -b * mean - db * rstd * scale
            dx = rstd * dy * w + b * x + c
        over the rows:
            grad_weight = sum(dy * (x - mean) * rstd)     grad_bias = sum(dy)
        The sums are taken in float64 here and rounded once (bounded, not ATen's order).
        """
        last = self._last
        rows, mean, rstd, w = last["rows"], last["mean"], last["rstd"], last["w"]
        m = rows.shape[1]
        d = dy.reshape(-1, m).astype(np.float64)
        x, w64 = rows.astype(np.float64), w.astype(np.float64)
        mean64, rstd64 = mean.astype(np.float64), rstd.astype(np.float64)
        ds = (d * w64 * x).sum(axis=1, keepdims=True)
        db = (d * w64).sum(axis=1, keepdims=True)
        b = (db * mean64 - ds) * rstd64 ** 3 / m
        c = -b * mean64 - db * rstd64 / m
        dx = (rstd64 * d * w64 + b * x + c).astype(rows.dtype)
        if self.elementwise_affine:
            self.grads = {"weight": (d * (x - mean64) * rstd64).sum(axis=0).astype(rows.dtype).reshape(self.normalized_shape),
                          "bias": d.sum(axis=0).astype(rows.dtype).reshape(self.normalized_shape)}
        else:
            self.grads = {}
        return dx.reshape(dy.shape)
