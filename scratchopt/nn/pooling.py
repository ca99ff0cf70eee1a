"""Pooling: ``MaxPooling2D`` and ``GlobalAveragePooling2D``, forward and backward by hand.

Both are bit-exact against Keras (TF's CPU ``MaxPool``/``MaxPoolGrad`` and ``Mean``), in
float32 and float64, channels_last and channels_first (``parity_tests/test_pooling.py``).
Images are ``(N, H, W, C)`` (channels_last, Keras's default) or ``(N, C, H, W)``.
"""

import numbers

from .. import checks
from ..backend import namespace
from ..numerics import reduce_mean_over, tf_arithmetic
from .layer import Layer

DATA_FORMATS = ("channels_last", "channels_first")


def _data_format(value):
    """Keras's ``standardize_data_format``: None is Keras's default, channels_last."""
    if value is None:
        return "channels_last"
    fmt = str(value).lower() if isinstance(value, str) else value
    if fmt not in DATA_FORMATS:
        raise ValueError("The `data_format` argument must be one of {'channels_first', "
                         f"'channels_last'}}. {checks.received('data_format', value)}")
    return fmt


def _pair(name, value, allow_zero=False):
    """Keras's ``standardize_tuple(value, 2, name)``: an int or two ints, each > 0 (a
    ``ValueError`` otherwise, Keras's type for every refusal). Keras also lets through what
    ``int()`` accepts (``2.0``, ``"2"``, ``True``) and strides of 0; those are refused here."""
    pair = (value, value) if isinstance(value, numbers.Integral) else value
    try:
        pair = tuple(pair)
    except TypeError:
        pair = None
    if (pair is None or len(pair) != 2
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in pair)
            or not all(v > 0 for v in pair)):
        raise ValueError(f"The `{name}` argument must be a tuple of 2 integers > 0. "
                         f"{checks.received(name, value)}")
    return tuple(int(v) for v in pair)


def _images(layer, x):
    """``x`` as channels_last ``(N, H, W, C)`` (a transposed view for channels_first); a
    ``ValueError`` for another rank, before anything changes (Keras's InputSpec ndim=4)."""
    if x.ndim != 4:
        raise ValueError(f"Input 0 of layer {type(layer).__name__} is incompatible: expected "
                         f"ndim=4, found ndim={x.ndim}. Full shape received: {tuple(x.shape)}")
    return x.transpose(0, 2, 3, 1) if layer.data_format == "channels_first" else x


def _output_size(size, pool, stride, padding):
    """TF's ``GetWindowedOutputSize``: ``ceil(size / stride)`` for "same",
    ``(size - pool) // stride + 1`` for "valid"; and the padding before the first row."""
    if padding == "same":
        out = -(-size // stride)
        return out, max((out - 1) * stride + pool - size, 0) // 2
    return (size - pool) // stride + 1, 0


class MaxPooling2D(Layer):
    """The largest value in each ``pool_size`` window, moved by ``strides``.

    ::

        forward:   y[n, i, j, c] = max over (a, b) in the window of x[n, i*sh + a - top, j*sw + b - left, c]
                   (at least the dtype's lowest finite value: NaN is skipped, and a
                   window of -inf gives -finfo.max, as TF's kernel); padding "same"
                   counts as -inf
        backward:  dx[p] = sum of dy[n, i, j, c] over the windows whose FIRST maximum
                   (row-major) is the element p; 0 elsewhere

    Each window sends its whole gradient to one element, its argmax; on a tie the first
    maximum in row-major order wins (TF's ``MaxPoolGrad``). With ``strides < pool_size``
    windows overlap, and an element that is the argmax of several windows collects the sum
    of their gradients, added in the order of the outputs (row-major), as TF adds them.
    ``strides=None`` means ``strides = pool_size``. Padding "same" pads ``pad // 2`` rows
    before and the rest after (TF's rule), never taken as a maximum.

    Examples
    --------
    A tie in the first window: the first 5 (row-major) gets the gradient.

    >>> import numpy as np
    >>> from scratchopt.nn.pooling import MaxPooling2D
    >>> x = np.array([[1.0, 5.0, 0.0, 2.0],
    ...               [5.0, 3.0, 4.0, 1.0]]).reshape(1, 2, 4, 1)
    >>> pool = MaxPooling2D()
    >>> pool(x)[..., 0].tolist()
    [[[5.0, 4.0]]]
    >>> pool.backward(np.array([[[[10.0], [20.0]]]]))[..., 0].tolist()
    [[[0.0, 10.0, 0.0, 0.0], [0.0, 0.0, 20.0, 0.0]]]
    """

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None):
        super().__init__()
        self.pool_size = _pair("pool_size", pool_size)
        self.strides = self.pool_size if strides is None else _pair("strides", strides)
        if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
            raise ValueError("The `padding` argument must be one of {'valid', 'same'}. "
                             f"{checks.received('padding', padding)}")
        self.padding = padding.lower()
        self.data_format = _data_format(data_format)

    def get_config(self):
        return {"pool_size": self.pool_size, "strides": self.strides, "padding": self.padding,
                "data_format": self.data_format}

    def _plan(self, height, width):
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        oh, top = _output_size(height, ph, sh, self.padding)
        ow, left = _output_size(width, pw, sw, self.padding)
        if oh < 1 or ow < 1:
            raise ValueError(f"Computed output size would be negative: the pool {self.pool_size} is "
                             f"larger than the input ({height}, {width}) with padding 'valid'")
        return oh, ow, top, left

    @tf_arithmetic()
    def call(self, x, training=False):
        xp = namespace(x)
        images = _images(self, x)
        n, height, width, c = images.shape
        oh, ow, top, left = self._plan(height, width)
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        rows, cols = (oh - 1) * sh + ph, (ow - 1) * sw + pw
        if top or left or rows > height or cols > width:
            # The input padded with -inf to cover every window; `real` marks the real elements
            # (padding is never a window's maximum, even beside an input of -inf).
            padded = xp.full((n, rows, cols, c), -xp.inf, images.dtype)
            h_end, w_end = min(height, rows - top), min(width, cols - left)
            padded[:, top:top + h_end, left:left + w_end] = images[:, :h_end, :w_end]
            real = xp.zeros((rows, cols), bool)
            real[top:top + h_end, left:left + w_end] = True
        else:
            padded, real = images, None
        index = xp.int16 if ph * pw < 2**15 else xp.int32
        # TF's gradient kernel (MaxPoolGrad) finds each window's argmax: its first real
        # element, then any later element that is larger (so ties keep the first one).
        first = argmax = seen = None
        for k in range(ph * pw):  # row-major window offsets
            a, b = divmod(k, pw)
            window = padded[:, a:a + (oh - 1) * sh + 1:sh, b:b + (ow - 1) * sw + 1:sw]
            valid = None if real is None else real[a:a + (oh - 1) * sh + 1:sh, b:b + (ow - 1) * sw + 1:sw][:, :, None]
            if first is None:
                first, argmax, seen = window, xp.zeros(window.shape, index), valid
                continue
            take = window > first
            if valid is not None:
                take = valid & (~seen | take)
                seen = seen | valid
            first = xp.where(take, window, first)
            argmax = xp.where(take, index(k), argmax)
        # The forward kernel's max starts at the dtype's lowest finite value and takes an
        # element only if it is larger: NaN is skipped, a window of -inf gives -finfo.max.
        # Without NaN that is the argmax's value, raised to the lowest finite value.
        lowest = images.dtype.type(xp.finfo(images.dtype).min)
        if bool(xp.isnan(images).any()):
            best = xp.full(first.shape, lowest, images.dtype)
            for k in range(ph * pw):
                a, b = divmod(k, pw)
                window = padded[:, a:a + (oh - 1) * sh + 1:sh, b:b + (ow - 1) * sw + 1:sw]
                best = xp.where(window > best, window, best)
        else:
            best = xp.where(first > lowest, first, lowest)
        self._last = {"argmax": argmax, "shape": images.shape, "padded": (rows, cols, top, left)}
        return best.transpose(0, 3, 1, 2) if self.data_format == "channels_first" else best

    @tf_arithmetic()
    def _backward(self, dy):
        xp = namespace(dy)
        if self.data_format == "channels_first":
            dy = dy.transpose(0, 2, 3, 1)
        argmax = self._last["argmax"]
        n, height, width, c = self._last["shape"]
        rows, cols, top, left = self._last["padded"]
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        oh, ow = dy.shape[1:3]
        dx = xp.zeros((n, rows, cols, c), dy.dtype)
        zero = dy.dtype.type(0)
        # TF adds each output's gradient to its argmax, outputs in row-major order. For one
        # input element, a later output reaches it through an earlier window offset, so
        # going through the offsets backwards adds in TF's order.
        for k in reversed(range(ph * pw)):
            a, b = divmod(k, pw)
            dx[:, a:a + (oh - 1) * sh + 1:sh, b:b + (ow - 1) * sw + 1:sw] += xp.where(argmax == k, dy, zero)
        dx = dx[:, top:top + height, left:left + width]
        if dx.shape[1:3] != (height, width):  # "valid" rows and columns no window reads
            full = xp.zeros((n, height, width, c), dy.dtype)
            full[:, :dx.shape[1], :dx.shape[2]] = dx
            dx = full
        return xp.ascontiguousarray(dx.transpose(0, 3, 1, 2) if self.data_format == "channels_first" else dx)


class GlobalAveragePooling2D(Layer):
    """The mean of each channel over the whole image: ``(N, H, W, C) -> (N, C)``.

    ::

        forward:   y[n, c]       = (sum over i, j of x[n, i, j, c]) / (H * W)
                                   the sum in Eigen's order over the middle (H, W) axes
                                   (``numerics.reduce_mean_over``: TF's ``reduce_mean``)
        backward:  dx[n, i, j, c] = dy[n, c] / (H * W)     (TF's Mean gradient: broadcast, divide)

    ``keepdims=True`` keeps ``(N, 1, 1, C)`` (``(N, C, 1, 1)`` channels_first).

    Examples
    --------
    >>> import numpy as np
    >>> from scratchopt.nn.pooling import GlobalAveragePooling2D
    >>> x = np.arange(8.0).reshape(1, 2, 2, 2)  # channel 0: 0, 2, 4, 6; channel 1: 1, 3, 5, 7
    >>> gap = GlobalAveragePooling2D()
    >>> gap(x).tolist()
    [[3.0, 4.0]]
    >>> gap.backward(np.array([[4.0, 8.0]]))[0, :, :, 1].tolist()  # dy / (H * W)
    [[2.0, 2.0], [2.0, 2.0]]
    """

    def __init__(self, data_format=None, keepdims=False):
        super().__init__()
        self.data_format = _data_format(data_format)
        self.keepdims = checks.flag("keepdims", keepdims)

    def get_config(self):
        return {"data_format": self.data_format, "keepdims": self.keepdims}

    def _axes(self):
        return (2, 3) if self.data_format == "channels_first" else (1, 2)

    def call(self, x, training=False):
        _images(self, x)
        self._last = {"shape": x.shape}
        return reduce_mean_over(x, self._axes(), keepdims=self.keepdims)

    @tf_arithmetic()
    def _backward(self, dy):
        xp = namespace(dy)
        shape = self._last["shape"]
        h, w = (shape[i] for i in self._axes())
        if not self.keepdims:
            dy = xp.expand_dims(xp.expand_dims(dy, self._axes()[0]), self._axes()[0])
        return xp.broadcast_to(dy, shape) / dy.dtype.type(h * w)
