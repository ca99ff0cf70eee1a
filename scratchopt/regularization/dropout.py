"""Dropout and SpatialDropout1D/2D/3D: while training, zero random inputs and scale up the rest.

Inverted dropout: each element is kept with probability ``1 - rate`` and scaled by
``1 / (1 - rate)``, so that ``E[y] = x`` and nothing needs rescaling at inference time,
where the layer is the identity. The formulas, textbook against Keras, are in the
docstrings of ``Dropout._apply`` (forward) and ``Dropout._backward``; what the two
differences do: TF multiplies by the *rounded reciprocal* ``T(1/(1-rate))``, and
``x * T(1/0.7)`` is not always ``x / T(0.7)`` (about one element in three differs in the
last bit); and ``where`` instead of ``keep * ...`` makes a dropped element exactly 0 even
when ``x`` (or ``dy``) is inf or NaN, where ``0 * inf`` would be NaN.

``noise_shape`` lets one draw be shared: a mask of shape ``(batch, 1, features)`` drops the
same features at every time step. ``None`` entries are filled from the input's shape.
SpatialDropout is that with a fixed noise shape: it drops whole channels (feature maps),
``(N, 1, C)`` for 1D, ``(N, 1, 1, C)`` / ``(N, C, 1, 1)`` for 2D channels_last/first,
``(N, 1, 1, 1, C)`` / ``(N, C, 1, 1, 1)`` for 3D; the input's rank is checked (ValueError).

``rate == 1`` is allowed (Keras too) and gives zeros; ``rate == 0`` is the identity.

The random numbers are TensorFlow's, so a layer draws Keras's masks bit for bit. Keras draws
``u = tf.random.stateless_uniform(noise_shape, seed=pair, dtype=x.dtype)`` with its Philox
generator, and ``numerics.philox`` computes the same numbers (the algorithm is written out
there). The seed pairs come as in Keras (``philox.SeedGenerator``): a layer made with
``seed`` uses ``(seed, 0)``, ``(seed, 1)``, ... modulo ``2**31 - 2``, one pair per training
call that draws. The same seed gives the same sequence of masks as ``keras.layers.Dropout``
with that seed. With no seed, the layer picks one at random (Keras's
``random.randint(1, 10**9)``). A layer's place in that sequence (``layer._seeds.state``) is
saved by ``BackupAndRestore``. The same code draws the mask for a CuPy input on the GPU, with
the same bits. To use a mask of your own: ``layer(x, training=True, keep=mask)`` uses
``mask`` (booleans, broadcastable to ``x``) instead of a draw, and spends no seed pair.

One more TF detail: the compare ``u >= T(rate)`` runs with denormals read as zero, so a
subnormal ``T(rate)`` (``rate=1e-45`` in float32) acts as 0 and keeps a ``u`` of exactly 0.
"""

import numpy as np

from .. import checks
from ..backend import namespace
from ..checks import received
from ..numerics import philox, tf_arithmetic
from ..nn.layer import Layer
from . import dropout_fast

DATA_FORMATS = ("channels_first", "channels_last")


def _rate(rate):
    """Keras: ``0 <= rate <= 1`` else ValueError (NaN included); not a number: TypeError."""
    if not checks.is_real(rate):
        raise TypeError(f"`rate` must be a float between 0 and 1. {received('rate', rate)}")
    if not 0 <= rate <= 1:
        raise ValueError(f"Invalid value for argument `rate`: expected a float between 0 and 1. "
                         f"{received('rate', rate)}")
    return rate  # kept as given: TF computes 1 / (1 - rate) in the rate's own type


def _noise_shape(noise_shape):
    """Keras's ``_validate_noise_shape``: None, or a sequence of positive ints and Nones."""
    if noise_shape is None:
        return None
    if isinstance(noise_shape, str):
        raise ValueError(f"`noise_shape` must be a tuple or list of integers. "  # noqa: TRY004 (Keras's type)
                         f"{received('noise_shape', noise_shape)}")
    try:
        dims = tuple(noise_shape)
    except TypeError:
        raise ValueError(f"`noise_shape` must be an iterable of integers. "
                         f"{received('noise_shape', noise_shape)}") from None
    for i, dim in enumerate(dims):
        if dim is not None and (not isinstance(dim, int) or dim <= 0):
            raise ValueError(f"`noise_shape` entries must be positive integers or None; entry {i} is "
                             f"{dim!r}. {received('noise_shape', noise_shape)}")
    return dims


def _seed(seed, rate):
    """Keras checks the seed only when a generator is made (rate > 0): an int64 or None."""
    if rate > 0 and seed is not None and (not isinstance(seed, int) or not -(2**63) <= seed < 2**63):
        raise ValueError(f"Argument `seed` must be an integer (int64). {received('seed', seed)}")
    return seed


class Dropout(Layer):
    """``Dropout(rate, noise_shape=None, seed=None)``: see the module docstring for the math.

    ``layer(x, training=False, keep=None)``: the identity unless ``training``; ``keep``
    replaces the random draw. ``layer.keep`` is the mask used by the last training call
    (None when nothing was drawn).

    Examples
    --------
    With ``rate=0.5`` a kept element is doubled (``1 / (1 - 0.5)``), a dropped one is 0;
    the gradient flows through the kept elements only, doubled too.

    >>> import numpy as np
    >>> from scratchopt.layers import Dropout
    >>> layer = Dropout(0.5, seed=0)
    >>> x = np.array([1.0, 2.0, 3.0, 4.0])
    >>> layer(x)  # inference (training=False): the identity
    array([1., 2., 3., 4.])
    >>> layer(x, training=True, keep=np.array([True, False, True, False]))
    array([2., 0., 6., 0.])
    >>> layer.backward(np.ones(4))
    array([2., 0., 2., 0.])
    >>> np.unique(layer(np.ones(1000), training=True))  # a random mask: 0 or 2 everywhere
    array([0., 2.])
    """

    def __init__(self, rate, noise_shape=None, seed=None):
        super().__init__()
        self.rate = _rate(rate)
        self.noise_shape = _noise_shape(noise_shape)
        self.seed = _seed(seed, self.rate)
        # Keras makes its SeedGenerator only when rate > 0; seed=True passes its int check and is 1
        self._seeds = philox.SeedGenerator(seed) if self.rate > 0 else None
        self.keep = None

    def get_config(self):
        return {"rate": self.rate, "noise_shape": self.noise_shape, "seed": self.seed}

    def _check_rank(self, x):
        pass  # any rank

    def _mask_shape(self, x):
        if self.noise_shape is None:
            return x.shape
        return tuple(x.shape[i] if d is None else d for i, d in enumerate(self.noise_shape))

    def call(self, x, training=False, keep=None):
        """``y = layer(x, training=False, keep=None)``: the identity unless ``training``.

        ``keep`` (booleans, broadcastable to ``x``) replaces the random draw; it is ignored
        where nothing would be drawn (inference, rate 0 or 1).
        """
        self._check_rank(x)
        xp = namespace(x)
        dropping = bool(training) and self.rate > 0
        if not dropping or self.rate == 1:  # Keras's fast paths: the input itself, or zeros
            self._last, self.keep = {"x": x, "mode": "drop all" if dropping else "identity"}, None
            return xp.zeros_like(x) if dropping else x
        shape = self._mask_shape(x)
        if keep is not None:
            if not hasattr(keep, "dtype") or keep.dtype != np.bool_:
                raise TypeError(f"`keep` must be a boolean array, got {type(keep).__name__} "
                                f"of dtype {getattr(keep, 'dtype', None)}")
            shape = keep.shape
        if not _broadcasts_to(shape, x.shape):
            raise ValueError(f"the dropout mask's shape {tuple(shape)} does not broadcast to the "
                             f"input's shape {x.shape}")
        if keep is None:  # Keras's draw, with this call's seed pair
            keep = keep_mask(shape, self._seeds.next(), self.rate, x.dtype, xp)
        else:  # a copy: backward uses this call's mask even if the caller's changes in place
            keep = xp.asarray(keep).copy()
        y, scale = self._apply(x, keep)
        self._last, self.keep = {"x": x, "mode": "drop", "scale": scale}, keep
        return y

    def _apply(self, x, keep):
        """Dropout with the mask ``keep``.

        Textbook ("inverted" dropout)           Keras / TF (this code)
        ------------------------------------    ----------------------------------------------
        keep ~ Bernoulli(1 - rate)              u ~ U[0, 1) shaped like noise_shape
                                                keep  = u >= T(rate)
        y = keep * x / (1 - rate)               scale = T(1 / (1 - rate))   (the reciprocal in
                                                                              the rate's type,
                                                                              rounded once)
                                                y     = where(keep, x * scale, 0)
        """
        xp = namespace(x)
        scale = x.dtype.type(1 / (1 - self.rate))
        with tf_arithmetic():
            if dropout_fast.wanted(x, keep):  # the same line, compiled: one pass
                return dropout_fast.forward(x, keep, scale), scale
            return xp.where(keep, x * scale, x.dtype.type(0)), scale

    def _backward(self, dy):
        """The gradient of the last call.

        Textbook                                Keras / TF (this code: TF's SelectV2, then Mul grads)
        ------------------------------------    ----------------------------------------------
        dx = keep * dy / (1 - rate)             dx = where(keep, dy, 0) * scale
                                                (the identity, or zeros for rate 1, when nothing
                                                 was dropped by a draw)
        """
        last = self._last
        xp = namespace(dy)
        if last["mode"] == "identity":
            return dy
        if last["mode"] == "drop all":
            return xp.zeros_like(dy)
        with tf_arithmetic():
            if dropout_fast.wanted(dy, self.keep):  # the same line, compiled: one pass
                return dropout_fast.backward(dy, self.keep, last["scale"])
            return xp.where(self.keep, dy, dy.dtype.type(0)) * last["scale"]


def keep_mask(shape, seed, rate, dtype, xp=np):
    """Keras's mask: ``u = stateless_uniform(shape, seed, dtype)``, ``keep = u >= T(rate)``.

    TF compares with denormals read as zero, so a subnormal ``T(rate)`` counts as 0. On NumPy
    with numba, the draw and the compare run as one compiled pass (``dropout_fast.keep_mask``,
    the same bits); otherwise as the two lines of array code below.
    """
    threshold = dtype.type(rate)
    if abs(threshold) < np.finfo(dtype).tiny:  # DAZ: a subnormal reads as 0
        threshold = dtype.type(0)
    if dropout_fast.mask_wanted(xp, dtype):
        return dropout_fast.keep_mask(shape, seed, threshold, dtype)
    u = philox.stateless_uniform(shape, seed, dtype, xp)
    return u >= threshold


def _broadcasts_to(shape, target):
    """Whether a mask of ``shape`` broadcasts to exactly ``target`` (TF's where would grow it)."""
    try:
        return np.broadcast_shapes(tuple(shape), target) == tuple(target)
    except ValueError:
        return False


class _SpatialDropout(Dropout):
    """Dropout whose mask covers whole channels; the input's rank is fixed (Keras's InputSpec)."""

    rank = None

    def __init__(self, rate, data_format="channels_last", seed=None):
        super().__init__(rate, noise_shape=None, seed=seed)
        self.data_format = _data_format(data_format)

    def get_config(self):
        return {"rate": self.rate, "seed": self.seed}

    def _check_rank(self, x):
        if x.ndim != self.rank:
            raise ValueError(f"{type(self).__name__} expects an input of rank {self.rank}, "
                             f"got shape {x.shape}")

    def _mask_shape(self, x):
        if self.data_format == "channels_first":
            return (x.shape[0], x.shape[1]) + (1,) * (x.ndim - 2)
        return (x.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],)


def _data_format(data_format):
    """Keras's ``standardize_data_format``; None is Keras's default, "channels_last"."""
    if data_format is None:
        return "channels_last"
    value = str(data_format).lower()
    if value not in DATA_FORMATS:
        raise ValueError(f"`data_format` must be one of {DATA_FORMATS}. "
                         f"{received('data_format', data_format)}")
    return value


class SpatialDropout1D(_SpatialDropout):
    """``SpatialDropout1D(rate, seed=None)``: inputs ``(N, steps, C)``, mask ``(N, 1, C)``.

    Examples
    --------
    One draw per (sample, channel), shared by every step: a channel is kept or dropped
    whole.

    >>> import numpy as np
    >>> from scratchopt.layers import SpatialDropout1D
    >>> layer = SpatialDropout1D(0.5, seed=0)
    >>> y = layer(np.ones((2, 5, 3)), training=True)
    >>> layer.keep.shape
    (2, 1, 3)
    >>> bool((y == y[:, :1, :]).all())  # each channel the same at all 5 steps
    True
    """

    rank = 3

    def __init__(self, rate, seed=None):
        super().__init__(rate, data_format="channels_last", seed=seed)


class SpatialDropout2D(_SpatialDropout):
    """``SpatialDropout2D(rate, data_format=None, seed=None)``: mask ``(N, 1, 1, C)`` / ``(N, C, 1, 1)``.

    Examples
    --------
    Drop the middle one of three feature maps (given mask): its 2 x 2 pixels are all 0,
    the others' are all 2.

    >>> import numpy as np
    >>> from scratchopt.layers import SpatialDropout2D
    >>> layer = SpatialDropout2D(0.5)
    >>> keep = np.array([True, False, True]).reshape(1, 1, 1, 3)
    >>> y = layer(np.ones((1, 2, 2, 3)), training=True, keep=keep)
    >>> y.sum(axis=(0, 1, 2))  # per channel: 4 pixels * 2
    array([8., 0., 8.])
    >>> first = SpatialDropout2D(0.5, data_format="channels_first", seed=0)
    >>> _ = first(np.ones((1, 3, 2, 2)), training=True)
    >>> first.keep.shape
    (1, 3, 1, 1)
    """

    rank = 4

    def __init__(self, rate, data_format=None, seed=None):
        super().__init__(rate, data_format=data_format, seed=seed)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class SpatialDropout3D(_SpatialDropout):
    """``SpatialDropout3D(rate, data_format=None, seed=None)``: mask ``(N, 1, 1, 1, C)`` / ``(N, C, 1, 1, 1)``.

    Examples
    --------
    Volumes ``(N, depth, height, width, C)``; drop the second of two channels (given
    mask): its 8 voxels are 0, the first channel's are 2.

    >>> import numpy as np
    >>> from scratchopt.layers import SpatialDropout3D
    >>> layer = SpatialDropout3D(0.5)
    >>> keep = np.array([True, False]).reshape(1, 1, 1, 1, 2)
    >>> y = layer(np.ones((1, 2, 2, 2, 2)), training=True, keep=keep)
    >>> y.sum(axis=(0, 1, 2, 3))  # per channel: 8 voxels * 2
    array([16.,  0.])
    """

    rank = 5

    def __init__(self, rate, data_format=None, seed=None):
        super().__init__(rate, data_format=data_format, seed=seed)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}
