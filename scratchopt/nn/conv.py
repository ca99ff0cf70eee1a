"""``Conv2D``: a 2-d convolution layer, forward and backward by hand, as an im2col matmul.

The whole layer is three matrix products and two reshuffles (the learner's page is
``docs/convolution.md``). With ``P`` the *patches matrix* of the (padded) input, one row per
output position and one column per kernel tap ``(i, j, c)``::

    P  (N*Ho*Wo, kh*kw*cin)      row (n, oh, ow) = x_pad[n, oh*sh + i, ow*sw + j, c]
    W  (kh*kw*cin, filters)      the kernel (kh, kw, cin, filters), reshaped

    forward:   Z = P @ W + b                      z[n, oh, ow, f] = sum_ijc x_pad[..] W[i, j, c, f]
               y = activation(Z)
    backward:  dZ = activation'(dy)
               dW = P^T @ dZ                      a correlation of the input with dZ
               db = sum of dZ over N, Ho, Wo
               dP = dZ @ W^T                      each patch's share of the gradient
               dx = col2im(dP)                    scatter-add every patch back where it came
                                                  from: the transposed convolution

Why ``dW = P^T @ dZ``: ``W[i, j, c, f]`` multiplies ``x_pad[n, oh*sh + i, ow*sw + j, c]`` in
output ``z[n, oh, ow, f]`` and nowhere else, so ``dL/dW[i, j, c, f] = sum over (n, oh, ow)
of x_pad[n, oh*sh + i, ow*sw + j, c] * dz[n, oh, ow, f]``: the input correlated with ``dZ``
(slid over the input like a kernel). Why ``dx = col2im(dZ @ W^T)``: ``x_pad[n, h, w, c]``
sits in every patch that covers it, so its gradient is the sum, over those patches, of
``sum_f dz[n, oh, ow, f] W[i, j, c, f]`` (row ``(n, oh, ow)`` of ``dZ @ W^T``, column
``(i, j, c)``); col2im adds each row back onto the pixels its patch was read from. The
padding's share is dropped at the end.

Keras's conventions: the kernel is ``(kh, kw, cin, filters)`` (TF's HWIO); "same" padding
pads ``total = max((ceil(H/s) - 1)*s + kh - H, 0)`` rows, ``total // 2`` before and the rest
after (the odd one at the bottom/right); the kernel starts Glorot-uniform with ``fan_in =
kh*kw*cin`` and ``fan_out = kh*kw*filters``; the bias at 0 and added by a broadcasting add
(so its gradient is ``tf.reduce_sum(dy, [0, 1, 2])``, Eigen's column sums).

**Exactness** (``parity_tests/test_conv.py``; NumPy, TF on one intra-op thread; measured
with ``python parity_tests/measure_conv.py 1000 SEED``, 1000 random layers a seed):

* float64: ``y``, ``dkernel`` and ``dbias`` are TF's bits (1000/1000 layers, seeds 10 and
  11), and ``dx`` in 995/1000. TF's float64 convolutions are Eigen tensor contractions of
  the patches (oneDNN has no float64), and ``eigen_contract`` repeats their order: the
  depth in blocks of ``kc`` (Eigen's heuristic, from the L1 cache size), in each block
  Eigen's micro-kernels (one term at a time for whole blocks of 8 filters, two interleaved
  accumulators for a block of 4 or 2, four for a last single filter; output rows past a
  multiple of 4 one term at a time); a single output position is a column-major GEMV
  (``_single_row``). ``dx`` is TF's per-image contraction (a row-major GEMV for one output
  position per image) then its col2im; in the few shapes where it is not TF's bits (small
  inputs with few channels and large strides, not characterized) it is within **4 float64
  epsilons of its term scale** (largest measured 1.29). The bias's gradient is the rows
  of ``dZ`` added one at a time. ``kc`` depends on the CPU's L1 cache (48 KiB measured).
* float32: TF runs oneDNN's kernels (FMA, their own blocking); ours is NumPy's BLAS. Every
  entry of ``y``, ``dx``, ``dkernel`` is within **8 float32 epsilons of its term scale**
  (the same quantity computed from ``|x|``, ``|W|``, ``|dy|`` in float64: the sum of the
  magnitudes of the terms it adds); the largest measured was 3.04 over 3000 random layers and
  3.35 on the capstone-sized parity row, so the bound is 2.4x the largest. ``dbias`` is
  TF's bits. Left out of the measurement: layers where TF's own
  float32 result is wrong (one input channel and an input narrower than the stride; off
  by up to 1e37 from TF's float64 on the same numbers): 3 in 3000.
* channels_first: computed as channels_last on the transposed input. TF's CPU Conv2D
  refuses NCHW in float64; in float32 it runs (oneDNN) but was seen to add the bias along
  the width when the output's width equals ``filters``: the parity reference is Keras's
  channels_last layer on the transposed input.
"""

import functools
import numbers

import numpy as np

from .. import checks
from ..backend import namespace
from ..numerics import tf_arithmetic
from ..numerics.matmul import _gemv, bias_add_grad
from .activations import activate, activation_gradient, resolve
from .layer import Layer

DATA_FORMATS = ("channels_last", "channels_first")
PADDINGS = ("valid", "same")


# --- arguments, as Keras standardizes them -------------------------------------------------


def _pair(name, value):
    """Keras's ``standardize_tuple(value, 2, name)``: an int or two ints, each > 0; a
    ``ValueError`` otherwise (Keras's type for every refusal; Keras also lets through what
    ``int()`` accepts, ``2.0`` or ``True``, which is refused here)."""
    pair = (value, value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value
    try:
        pair = tuple(pair)
    except TypeError:
        pair = None
    if (pair is None or len(pair) != 2
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) for v in pair)
            or not all(v > 0 for v in pair)):
        raise ValueError(f"The `{name}` argument must be a tuple of 2 integers > 0. {checks.received(name, value)}")
    return tuple(int(v) for v in pair)


def _choice(name, value, choices, default=None):
    """A Keras string argument, case-insensitive (Keras lowercases it); ``ValueError`` else."""
    if value is None and default is not None:
        return default
    if not isinstance(value, str) or value.lower() not in choices:
        raise ValueError(f"The `{name}` argument must be one of {set(choices)}. {checks.received(name, value)}")
    return value.lower()


def output_size(size, k, stride, padding):
    """``(out, before, after)``: TF's output length and the padding on each side.

    "valid": ``out = (size - k) // stride + 1``, no padding. "same": ``out = ceil(size /
    stride)`` and ``total = max((out - 1)*stride + k - size, 0)`` padded, ``total // 2``
    before and the rest after (the extra one at the end).

    >>> output_size(8, 3, 1, "same"), output_size(8, 3, 2, "same"), output_size(8, 3, 2, "valid")
    ((8, 1, 1), (4, 0, 1), (3, 0, 0))
    """
    if padding == "valid":
        return (size - k) // stride + 1, 0, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return out, total // 2, total - total // 2


# --- im2col and col2im -----------------------------------------------------------------------


def im2col(x_pad, kh, kw, sh, sw, ho, wo):
    """The patches matrix ``(N*Ho*Wo, kh*kw*C)`` of a padded NHWC image, columns in ``(i, j,
    c)`` order (the kernel's ``(kh, kw, cin)`` order). One strided copy per kernel tap, so the
    same code runs on NumPy and CuPy.

    >>> import numpy as np
    >>> x = np.arange(9.0).reshape(1, 3, 3, 1)
    >>> im2col(x, 2, 2, 1, 1, 2, 2)  # the four 2x2 windows, row by row
    array([[0., 1., 3., 4.],
           [1., 2., 4., 5.],
           [3., 4., 6., 7.],
           [4., 5., 7., 8.]])
    """
    xp = namespace(x_pad)
    n, c = x_pad.shape[0], x_pad.shape[3]
    cols = xp.empty((n, ho, wo, kh, kw, c), x_pad.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j, :] = x_pad[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw, :]
    return cols.reshape(n * ho * wo, kh * kw * c)


def col2im(cols, padded_shape, kh, kw, sh, sw, ho, wo):
    """The transposed im2col: each row of ``cols`` (a patch's gradient) added back onto the
    pixels its patch was read from; returns the padded image's gradient.

    TF's ``Col2im`` walks the output positions ``(oh, ow)`` in order and adds each patch's
    taps into a zeroed image. A pixel ``h`` is reached from ``oh = (h - i) / sh``: later
    positions through smaller taps. So adding the taps ``i`` from ``kh - 1`` down to 0 (and
    ``j`` likewise), each for every position at once, adds in TF's order, bit for bit.

    >>> import numpy as np
    >>> col2im(np.ones((4, 4)), (1, 3, 3, 1), 2, 2, 1, 1, 2, 2)[0, :, :, 0]  # windows per pixel
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    xp = namespace(cols)
    n, c = padded_shape[0], padded_shape[3]
    patches = cols.reshape(n, ho, wo, kh, kw, c)
    out = xp.zeros(padded_shape, cols.dtype)
    for i in reversed(range(kh)):
        for j in reversed(range(kw)):
            out[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw, :] += patches[:, :, :, i, j, :]
    return out


# --- Eigen's contraction order (float64) -----------------------------------------------------


@functools.lru_cache(maxsize=1)
def l1_cache_bytes():
    """The L1 data cache's size, which Eigen's blocking reads from the CPU (48 KiB where
    measured; Eigen's default, 32 KiB, where Linux does not say)."""
    try:
        with open("/sys/devices/system/cpu/cpu0/cache/index0/size") as f:
            text = f.read().strip()
        return int(text[:-1]) * 1024 if text.endswith("K") else int(text)
    except (OSError, ValueError):
        return 32 * 1024


def depth_block(depth, l1=None):
    """Eigen's ``kc``: the depth (summed dimension) is added in blocks of this many terms.

    Eigen's ``evaluateProductBlockingSizesHeuristic`` for doubles with AVX (micro-kernel of
    ``mr = 8`` by ``nr = 4``): ``max_kc = ((l1 - 8*4*8) / (8*8 + 4*8))`` rounded down to a
    multiple of 8 (504 for a 48 KiB L1), then shrunk so that the last block is as large as
    possible.

    >>> depth_block(144, 48 * 1024), depth_block(576, 48 * 1024), depth_block(2048, 48 * 1024)
    (144, 296, 416)
    """
    l1 = l1_cache_bytes() if l1 is None else l1
    max_kc = max(((l1 - 8 * 4 * 8) // (8 * 8 + 4 * 8)) & ~7, 1)
    if depth <= max_kc or depth % max_kc == 0:
        return min(depth, max_kc)
    return max_kc - 8 * ((max_kc - 1 - depth % max_kc) // (8 * (depth // max_kc + 1)))


def _sequential(a, b):
    """``0 + a[:, 0] b[0] + a[:, 1] b[1] + ...``: one term at a time, every output at once."""
    out = np.zeros((a.shape[0], b.shape[1]))
    term = np.empty_like(out)
    for k in range(a.shape[1]):
        np.multiply(a[:, k:k + 1], b[k:k + 1], out=term)
        out += term
    return out


def _two_accumulators(a, b):
    """Eigen's one-packet micro-kernel: in the depth peeled by 8, even terms into one
    accumulator and odd into another, added; then the rest one at a time."""
    depth = a.shape[1]
    peeled = depth // 8 * 8
    out = _sequential(a[:, 0:peeled:2], b[0:peeled:2]) + _sequential(a[:, 1:peeled:2], b[1:peeled:2])
    for k in range(peeled, depth):
        out = out + a[:, k:k + 1] * b[k:k + 1]
    return out


def _four_accumulators(a, b):
    """Eigen's last single row (the "swapped" dot-product path): four interleaved
    accumulators over the depth rounded down to 4, added ``(c0 + c1) + (c2 + c3)``, then
    the remaining terms one at a time."""
    depth = a.shape[1]
    whole = depth // 4 * 4
    c = [_sequential(a[:, r:whole:4], b[r:whole:4]) for r in range(4)]
    out = (c[0] + c[1]) + (c[2] + c[3])
    for k in range(whole, depth):
        out = out + a[:, k:k + 1] * b[k:k + 1]
    return out


def _micro_kernels(a, b):
    """One depth block of Eigen's ``gebp`` (float64, AVX): ``a`` (m, k) @ ``b`` (k, n).

    TF's row-major product is Eigen's column-major one transposed, so Eigen's "rows" are
    the output's columns ``n``: whole blocks of 8 are summed one term at a time; a block of
    4, then of 2, by two accumulators; a last single column by four accumulators. Rows of
    the output beyond a multiple of 4 (Eigen's ``nr``) are one term at a time everywhere.
    """
    m, n = a.shape[0], b.shape[1]
    m4, n8 = m // 4 * 4, n // 8 * 8
    n2 = n8 + (n - n8) // 4 * 4
    n2 += (n - n2) // 2 * 2
    out = np.empty((m, n))
    if n8:
        out[:, :n8] = _sequential(a, b[:, :n8])
    for (lo, hi), kernel in (((n8, n2), _two_accumulators), ((n2, n), _four_accumulators)):
        if hi > lo:
            out[:m4, lo:hi] = kernel(a[:m4], b[:, lo:hi])
            out[m4:, lo:hi] = _sequential(a[m4:], b[:, lo:hi])
    return out


@tf_arithmetic()
def eigen_contract(a, b):
    """``a @ b`` in the order of TF's float64 Eigen tensor contraction (its convolutions).

    The depth ``k`` goes in blocks of ``depth_block(k)``; each block is summed by the
    micro-kernels from zero and added to the result (``res += block``). Float32 and CuPy
    arrays get ``a @ b`` (TF's float32 is oneDNN, not reproduced).

    >>> import numpy as np
    >>> a = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> eigen_contract(a, a).tolist()
    [[7.0, 10.0], [15.0, 22.0]]
    """
    if namespace(a, b) is not np or a.dtype != np.float64:
        return a @ b
    depth = a.shape[1]
    if depth == 0 or a.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[1]))
    kc = depth_block(depth)
    out = None
    for start in range(0, depth, kc):
        block = _micro_kernels(a[:, start:start + kc], b[start:start + kc])
        out = block + 0.0 if out is None else out + block
    return out


def _single_row(p, w):
    """``p @ w`` for a single output position (``N*Ho*Wo == 1``): Eigen's column-major GEMV.

    Its terms go in blocks of columns (all of them below 128 terms, else 16 while ``8 *
    filters < 32000``, else 4), each block summed one term at a time from zero and then
    added to the result (measured: float64, exact)."""
    if namespace(p) is not np or p.dtype != np.float64:
        return p @ w
    depth = p.shape[1]
    block = depth if depth < 128 else (16 if 8 * w.shape[1] < 32000 else 4)
    out = np.zeros((1, w.shape[1]))
    with tf_arithmetic():
        for start in range(0, depth, block):
            out = out + _sequential(p[:, start:start + block], w[start:start + block])
    return out


def _bias_gradient(dz_rows):
    """The bias's gradient: the rows of ``dZ`` added one at a time, ``0 + r0 + r1 + ...``
    (TF's order, measured bit-exact in float32 and float64; ``numerics.matmul.bias_add_grad``
    with a vectorized running sum). A single filter is ``tf.reduce_sum``'s order; a single
    output position is copied (TF adds nothing: a -0.0 stays -0.0)."""
    if dz_rows.shape[0] == 1:
        return dz_rows[0].copy()
    if namespace(dz_rows) is not np or dz_rows.shape[1] == 1 or dz_rows.shape[0] == 0:
        return bias_add_grad(dz_rows)
    # accumulate starts from r0, not 0 + r0: the two differ only for an all -0.0 column,
    # which the final + 0 repairs (as numerics.sums does).
    return np.add.accumulate(dz_rows, axis=0)[-1] + dz_rows.dtype.type(0)


def _patch_gradients(dz_images, kernel, w_t):
    """``dZ @ W^T``, one image at a time as TF's backprop-input kernel does (each image's
    ``(Ho*Wo, filters)`` rows a contraction of its own; with a single output position per
    image and more than one image, Eigen's row-major GEMV, ``numerics.matmul``'s order)."""
    xp = namespace(dz_images)
    n, positions, filters = dz_images.shape
    if xp is not np or dz_images.dtype != np.float64:
        return (dz_images.reshape(-1, filters) @ w_t) if n else xp.zeros((0, w_t.shape[1]), dz_images.dtype)
    if positions == 1 and n > 1:
        w = np.ascontiguousarray(kernel.reshape(-1, filters))
        return np.concatenate([_gemv(w, rows.reshape(filters, 1)).T for rows in dz_images])
    if n == 0:
        return np.zeros((0, w_t.shape[1]))
    return np.concatenate([eigen_contract(rows, w_t) for rows in dz_images])


# --- the layer ---------------------------------------------------------------------------------


class Conv2D(Layer):
    """Keras's ``Conv2D``: ``y = activation(conv2d(x, kernel) + bias)``, im2col and a matmul.

    ::

        P  = im2col(pad(x))              (N*Ho*Wo, kh*kw*cin)
        Z  = P @ W + b                   W = kernel.reshape(kh*kw*cin, filters)
        y  = activation(Z)               reshaped to (N, Ho, Wo, filters)
        dZ = activation'(dy)
        dW = P^T @ dZ   (+ the kernel_regularizer's gradient)
        db = sum of dZ over every output position
        dx = col2im(dZ @ W^T), the padding cut off

    ``x`` is ``(N, H, W, C)`` (``data_format="channels_last"``, Keras's default) or ``(N, C,
    H, W)``. The module docstring derives the backward and says what is bit-exact.

    Examples
    --------
    A 2x2 kernel of ones sums each 2x2 window; backward, each pixel gets ``dy`` once for
    every window that covers it.

    >>> import numpy as np
    >>> from scratchopt.nn.conv import Conv2D
    >>> conv = Conv2D(1, 2)
    >>> conv.build((1, 3, 3, 1))  # kernel (2, 2, 1, 1), Glorot-uniform; bias (1,), zeros
    >>> conv.params["kernel"][...] = 1
    >>> x = np.arange(9.0, dtype=np.float32).reshape(1, 3, 3, 1)
    >>> conv(x)[0, :, :, 0]
    array([[ 8., 12.],
           [20., 24.]], dtype=float32)
    >>> conv.backward(np.ones((1, 2, 2, 1), np.float32))[0, :, :, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]], dtype=float32)
    >>> conv.grads["kernel"][:, :, 0, 0]  # each tap: the sum of the pixels it saw
    array([[ 8., 12.],
           [20., 24.]], dtype=float32)
    >>> conv(np.zeros((1, 3, 3, 2), np.float32))
    Traceback (most recent call last):
    ...
    ValueError: `x` must have 1 channel (axis -1), as the kernel was built for. Received: x of shape (1, 3, 3, 2)...
    """

    regularizable = (("kernel", "kernel_regularizer"),)  # Keras adds its penalty to the loss

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 activation=None, use_bias=True, kernel_regularizer=None, seed=None, dtype="float32"):
        super().__init__()
        if isinstance(filters, (bool, np.bool_)) or not isinstance(filters, numbers.Integral):
            # Keras compares ``filters <= 0``: a TypeError for a str or None
            raise TypeError(f"`filters` must be a positive integer. {checks.received('filters', filters)}")
        if filters <= 0:
            raise ValueError(f"`filters` must be a positive integer. {checks.received('filters', filters)}")
        self.filters = int(filters)
        self.kernel_size = _pair("kernel_size", kernel_size)
        self.strides = _pair("strides", strides)
        self.padding = _choice("padding", padding, PADDINGS)
        self.data_format = _choice("data_format", data_format, DATA_FORMATS, default="channels_last")
        self.activation = resolve(activation)
        self.use_bias = checks.flag("use_bias", use_bias)
        self.kernel_regularizer = kernel_regularizer
        self.seed = seed
        self.dtype = checks.float_dtype("dtype", dtype)
        self._rng = checks.generator(seed)

    def get_config(self):
        return {"filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides,
                "padding": self.padding, "data_format": self.data_format, "activation": self.activation,
                "use_bias": self.use_bias, "kernel_regularizer": self.kernel_regularizer, "seed": self.seed,
                "dtype": self.dtype.name}

    @property
    def _channel_axis(self):
        return 1 if self.data_format == "channels_first" else -1

    def build(self, input_shape, xp=np):
        """Make the kernel ``(kh, kw, cin, filters)`` (Glorot-uniform, ``fan_in = kh*kw*cin``,
        ``fan_out = kh*kw*filters``) and the bias ``(filters,)`` (zeros); ``input_shape`` is
        the input's 4-d shape, or its channel count alone."""
        if isinstance(input_shape, numbers.Integral):
            channels = int(input_shape)
        else:
            if len(input_shape) != 4:
                raise ValueError(f"`input_shape` must have 4 dimensions. "
                                 f"{checks.received('input_shape', input_shape)}")
            channels = int(input_shape[self._channel_axis])
        kh, kw = self.kernel_size
        fan_in, fan_out = kh * kw * channels, kh * kw * self.filters
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        kernel = self._rng.uniform(-limit, limit, (kh, kw, channels, self.filters)).astype(self.dtype)
        self.params["kernel"] = xp.asarray(kernel)
        if self.use_bias:
            self.params["bias"] = xp.zeros(self.filters, self.dtype)
        self.built = True

    def _geometry(self, x):
        """Check ``x`` (rank 4, channels, big enough) before anything changes; the output's
        ``(ho, (top, bottom), wo, (left, right))``."""
        if x.ndim != 4:
            raise ValueError(f"`x` must be a 4-d array (batch, height, width, channels) for "
                             f"data_format={self.data_format!r}. Received: x of shape {tuple(x.shape)}")
        channels = x.shape[self._channel_axis]
        if self.built and channels != self.params["kernel"].shape[2]:
            want = self.params["kernel"].shape[2]
            raise ValueError(f"`x` must have {want} channel{'s' * (want != 1)} (axis {self._channel_axis}), "
                             f"as the kernel was built for. Received: x of shape {tuple(x.shape)}")
        h, w = (x.shape[2], x.shape[3]) if self.data_format == "channels_first" else (x.shape[1], x.shape[2])
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        ho, top, bottom = output_size(h, kh, sh, self.padding)
        wo, left, right = output_size(w, kw, sw, self.padding)
        if ho <= 0 or wo <= 0:
            raise ValueError(f"`x` must be at least as large as the kernel {self.kernel_size} with "
                             f"padding={self.padding!r}. Received: x of shape {tuple(x.shape)} "
                             f"(spatial size {(h, w)})")
        return ho, (top, bottom), wo, (left, right)

    def call(self, x, training=False):
        ho, (top, bottom), wo, (left, right) = self._geometry(x)
        xp = namespace(x)
        if not self.built:
            self.build(x.shape, xp)
        nhwc = x.transpose(0, 2, 3, 1) if self.data_format == "channels_first" else x
        kernel = self.params["kernel"]
        kh, kw, cin, filters = kernel.shape
        with tf_arithmetic():
            x_pad = xp.pad(nhwc, ((0, 0), (top, bottom), (left, right), (0, 0)))
            patches = im2col(x_pad, kh, kw, *self.strides, ho, wo)
            w = kernel.reshape(kh * kw * cin, filters)
            z = _single_row(patches, w) if patches.shape[0] == 1 else eigen_contract(patches, w)
            z = z.reshape(x.shape[0], ho, wo, filters)
            if self.use_bias:
                z = z + self.params["bias"]
            y, saved = activate(self.activation, z)
        # Copies (the patches are a fresh array; the kernel is copied): backward uses this
        # call's values, as Keras's tape does, even if x or the kernel change in place.
        self._last = {"patches": patches, "kernel": kernel.copy(), "saved": saved,
                      "padded_shape": x_pad.shape, "crop": (top, left, nhwc.shape[1], nhwc.shape[2]),
                      "out": (ho, wo)}
        return y.transpose(0, 3, 1, 2) if self.data_format == "channels_first" else y

    def _backward(self, dy):
        last = self._last
        kernel, (ho, wo) = last["kernel"], last["out"]
        kh, kw, cin, filters = kernel.shape
        xp = namespace(dy)
        if self.data_format == "channels_first":
            dy = dy.transpose(0, 2, 3, 1)
        with tf_arithmetic():
            dz = activation_gradient(self.activation, dy, last["saved"])
            dz_rows = xp.ascontiguousarray(dz).reshape(-1, filters)
            dkernel = eigen_contract(xp.ascontiguousarray(last["patches"].T), dz_rows)
            self.grads["kernel"] = dkernel.reshape(kernel.shape)
            if self.kernel_regularizer is not None:
                self.grads["kernel"] = self.grads["kernel"] + self.kernel_regularizer.gradient(kernel)
            if self.use_bias:  # TF's gradient of the bias: the output positions one at a time
                self.grads["bias"] = _bias_gradient(dz_rows)
            w_t = xp.ascontiguousarray(kernel.reshape(kh * kw * cin, filters).T)
            cols = _patch_gradients(dz_rows.reshape(dy.shape[0], ho * wo, filters), kernel, w_t)
            dx_pad = col2im(cols, last["padded_shape"], kh, kw, *self.strides, ho, wo)
        top, left, h, w = last["crop"]
        dx = dx_pad[:, top:top + h, left:left + w, :]
        dx = dx.transpose(0, 3, 1, 2) if self.data_format == "channels_first" else dx
        return xp.ascontiguousarray(dx)
