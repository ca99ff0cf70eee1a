"""Data augmentation: MixUp and CutMix (equal to Keras given the same draws), and text tricks.

Augmentation trains on altered copies of the data, so the model sees more variety than the
data set holds and overfits less. An augmentation must keep the label *true*: a flipped cat
is still a cat. MixUp and CutMix go further and change the label along with the image.

* ``MixUp`` (Zhang et al. 2018, ``keras.layers.MixUp``): blend each image with another image
  of the batch, and blend the two one-hot labels with the same weight.
* ``CutMix`` (Yun et al. 2019, ``keras.layers.CutMix``): paste a rectangle of another image of
  the batch, and weight the labels by how much of the image each one owns.
* ``random_deletion`` / ``random_swap`` (EDA, Wei & Zou 2019): drop or shuffle words of a
  sentence; the lesson's text augmentation.

Given the same random draws, ``MixUp`` and ``CutMix`` return Keras 3.15's images, labels and
masks bit for bit, in float32 and float64, for both data formats (NumPy; CuPy runs the same
lines on the GPU, without TF's flush-to-zero). The draws themselves are **not** Keras's:
Keras uses TF's stateless random ops and scratchopt its own ``np.random.default_rng(seed)``,
so ``MixUp(seed=1)`` and ``keras.layers.MixUp(seed=1)`` mix differently. Every layer has
``draw(batch_size)`` for its raw draws, and ``layer(data, draws=...)`` takes them from you,
which is how the tests feed Keras's own draws to ours.

Calling a layer (Keras's forms)::

    layer(images)                                  -> images
    layer({"images": x, "labels": y})              -> {"images": ..., "labels": ...}
    layer((x, y))                                  -> (images, labels)    (scratchopt only)
    layer(data, training=False)                    -> no mixing

``training`` defaults to **True**, as in Keras: called outside a model (in a data pipeline),
the layer always mixes. Images are ``(batch, height, width, channels)``
(``(batch, channels, height, width)`` for ``data_format="channels_first"``) or one image
without the batch axis; labels are one-hot or soft, ``(batch, classes)``. As Keras's
``Layer.__call__`` does, floating inputs are first cast to the layer's ``dtype`` (float32
unless you say ``dtype="float64"``), and images of any type come out in that dtype (except
from ``MixUp(..., training=False)``, which hands integer images back untouched, as Keras's).

Pitfalls
--------
* **Labels must be one-hot** (or soft). Mixing class *indices* is meaningless, and Keras
  even broadcasts sparse labels of shape ``(B,)`` to a ``(B, B)`` result. We refuse them.
* **Mixing is within the batch.** The partner of sample ``i`` is ``x[perm[i]]``; the
  permutation may pair a sample with itself (no change), and a batch of one never mixes.
* **Augment training data only.** Inside a Keras model the training flag is set for you;
  in a pipeline, map the layer over the training set and not the validation set.
* **The label must follow the pixels.** The lesson's CutMix mixes the labels and never
  masks the image: see ``CutMix``.
* **Keras's Beta is wrong for small alpha.** TF's ``stateless_gamma`` never returns less
  than the smallest normal float32 (1.18e-38), so when both gammas land there the weight is
  exactly ``g / (g + g) = 0.5``. For ``alpha = 0.001`` that is 84% of Keras's MixUp weights
  (at 0.01: 18%, at 0.05: 0.03%), where the true Beta(0.001, 0.001) puts nearly all its mass
  at 0 and 1: the layer mixes *most* where you asked for least. CutMix draws its own alpha
  in ``[factor_lo, factor_hi] + 1e-6``, so ``CutMix(factor=0.0)`` always cuts half the image.
  Our draws use NumPy's Beta sampler, which is right there.

Where scratchopt differs from Keras (everything else is Keras's, quirks included):

* ``MixUp(alpha)``: ``alpha`` must be a finite number > 0 (``TypeError`` for a non-number,
  ``ValueError`` otherwise). Keras does not check it: a negative, infinite or NaN alpha gives
  NaN weights, ``alpha=0`` weights of exactly 0.5 (see above), a string fails at the call.
* ``CutMix(factor)``: both ends must lie in [0, 1] and not be NaN. Keras refuses only a
  first element above 1 or a second below 0, so it takes ``(-5, 0.5)`` (a negative Beta
  parameter: NaN weights), ``(0.5, 2)`` and ``nan``. What Keras refuses, we refuse with its
  exception and message (a non-number is its ``ValueError``, not a ``TypeError``).
* A negative ``seed`` (Keras accepts it) seeds our generator with ``seed % 2**128``.
* ``data_format=None`` means ``"channels_last"``; Keras reads ``keras.config.image_data_format()``.
* ``dtype`` is float32 or float64 only (no float16/bfloat16 or mixed policies).
* An ``(images, labels)`` tuple is accepted; Keras would try to stack the two into one
  images tensor and fail.
* ``MixUp(dtype="float64")`` mixes float64 labels with the float32 weight widened to float64
  (as it does the images); Keras fails there (a float32 * float64 multiply).
* Labels that are not floating point, or not ``(batch, classes)``, are refused when mixing
  (Keras fails on integer labels and broadcasts 1-D ones, see above). Dict keys
  ``"bounding_boxes"`` and ``"segmentation_masks"`` are refused (not implemented; Keras's
  MixUp mixes segmentation masks wrongly anyway: its ``take`` has no axis, so it gathers
  from the flattened masks); other keys pass through untouched, as in Keras.
* ``MixUp(..., training=False)`` draws nothing (Keras still advances its seed).
"""

import math
import numbers

import numpy as np

from ..backend import namespace
from ..numerics import as_dtype, tf_arithmetic

__all__ = ["CutMix", "MixUp", "random_deletion", "random_swap"]

_NOT_IMPLEMENTED_KEYS = ("bounding_boxes", "segmentation_masks")


# --- validation -------------------------------------------------------------------------


def _seed(seed):
    """Keras's ``SeedGenerator`` check: None or a Python int (``ValueError`` otherwise)."""
    if seed is not None and (type(seed) is not int):
        raise ValueError(f"Argument `seed` must be an integer. Received: seed={seed!r}")
    return seed


def _rng(seed):
    return np.random.default_rng(None if seed is None else seed % 2**128)


def _data_format(data_format):
    """Keras's ``standardize_data_format``, with None meaning ``"channels_last"``."""
    if data_format is None:
        return "channels_last"
    value = str(data_format).lower()
    if value not in {"channels_first", "channels_last"}:
        raise ValueError("The `data_format` argument must be one of "
                         "{'channels_first', 'channels_last'}. "
                         f"Received: data_format={data_format}")
    return value


def _dtype(dtype):
    if dtype is None:
        return np.dtype(np.float32)
    try:
        value = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"`dtype` must name a float dtype. Received: dtype={dtype!r}") from None
    if value not in (np.float32, np.float64):
        raise ValueError(f"`dtype` must be float32 or float64. Received: dtype={dtype!r}")
    return value


def _is_number(x):
    return isinstance(x, numbers.Real) and not isinstance(x, (str, bytes))


# --- the data plumbing shared by both layers ---------------------------------------------


def _unpack(data):
    """(images, labels or None, a function that packs results in the same form as ``data``)."""
    if isinstance(data, dict):
        if "images" not in data:
            raise ValueError(f"a dict input needs an 'images' key; got keys {sorted(data)}")
        for key in _NOT_IMPLEMENTED_KEYS:
            if key in data:
                raise ValueError(f"the {key!r} key is not supported by scratchopt's mixing layers")

        def pack(images, labels):
            out = dict(data, images=images)
            if labels is not None:
                out["labels"] = labels
            return out

        return data["images"], data.get("labels"), pack
    if isinstance(data, tuple):
        if len(data) != 2:
            raise ValueError(f"a tuple input must be (images, labels); got {len(data)} items")
        return data[0], data[1], lambda images, labels: (images, labels)
    return data, None, lambda images, labels: images


def _autocast(x, dtype):
    """Keras's ``Layer.__call__``: floating inputs become the compute dtype, others stay."""
    return x.astype(dtype, copy=False) if x.dtype.kind == "f" else x


def _check_images(images):
    if images.ndim not in (3, 4):
        raise ValueError("Expected image tensor to have rank 3 (single image) "
                         f"or 4 (batch of images). Received: data.shape={images.shape}")


def _check_labels(labels, batch_size):
    if labels.dtype.kind != "f":
        raise TypeError(f"labels must be floating point (one-hot or soft labels); got dtype "
                        f"{labels.dtype}. Turn class indices into one-hot rows first")
    if labels.ndim != 2 or labels.shape[0] != batch_size:
        raise ValueError(f"labels must have shape (batch, classes) with batch = {batch_size}; "
                         f"got shape {labels.shape} (class indices must be one-hot first)")


def _images_of(data):
    images = _unpack(data)[0]
    namespace(images)
    _check_images(images)
    return images


def _draws_for(layer, batch_size, draws):
    """Our own draws, or the caller's, checked and moved to the images' device and dtypes."""
    if draws is None:
        return layer.draw(batch_size)
    names = [name for name, _ in layer.DRAWS]
    missing = [name for name in names if name not in draws]
    if missing:
        raise ValueError(f"draws lacks {missing}; {type(layer).__name__} needs {names}")
    out = {}
    for key, dtype in layer.DRAWS:
        value = draws[key]
        if not hasattr(value, "__cuda_array_interface__"):  # CuPy stays on the GPU
            value = np.asarray(value)
        if value.shape != (batch_size,):
            raise ValueError(f"draws[{key!r}] must have shape ({batch_size},); got {value.shape}")
        out[key] = value.astype(layer._draw_dtype(dtype), copy=False)
    return out


def _mix_labels(labels, weight, order):
    """``y'_i = w_i * y_i + (1 - w_i) * y_order(i)``: each label mixed with its partner's."""
    xp = namespace(labels)
    w = xp.reshape(weight, (-1, 1))
    return w * labels + (1.0 - w) * xp.take(labels, order, axis=0)


class _MixingLayer:
    """What MixUp and CutMix share: Keras's ``call`` (base_image_preprocessing_layer.py)."""

    #: (name, dtype) of each raw draw; "compute" is the layer's dtype
    DRAWS = ()

    @tf_arithmetic()  # TF's casts flush subnormals too
    def __call__(self, data, training=True, draws=None):
        """Mix a batch: ``images``, ``{"images", "labels"}`` or ``(images, labels)``.

        ``draws`` (optional): a dict of the raw random draws, ``DRAWS`` names them; by default
        they come from the layer's own generator (``draw``).
        """
        images, labels, pack = _unpack(data)
        namespace(images, *([] if labels is None else [labels]))  # NumPy or CuPy, never a mix
        images = _autocast(images, self.dtype)
        _check_images(images)
        if labels is not None:
            labels = _autocast(labels, self.dtype)
        transformation = self.get_random_transformation(images, training=training, draws=draws)
        single = images.ndim == 3  # Keras adds the batch axis, transforms, and removes it
        if single:
            images = images[None]
            labels = None if labels is None else labels[None]
        images = self.transform_images(images, transformation, training=training)
        if labels is not None:
            labels = self.transform_labels(labels, transformation, training=training)
        if single:
            images = images[0]
            labels = None if labels is None else labels[0]
        return pack(images, labels)

    call = __call__

    def _draw_dtype(self, dtype):
        return self.dtype if dtype == "compute" else np.dtype(dtype)

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


# --- MixUp ----------------------------------------------------------------------------------


class MixUp(_MixingLayer):
    """MixUp: blend every sample with a partner from the same batch, labels alike.

    ::

        draws (per batch of B):   w_i ~ Beta(alpha, alpha)          i = 0 .. B-1  (float32)
                                  perm = a random permutation of 0 .. B-1
        images:   x'_i = w_i * x_i + (1 - w_i) * x_perm(i)
        labels:   y'_i = w_i * y_i + (1 - w_i) * y_perm(i)

    Keras's exact form (``mix_up.py``): ``w`` is drawn in float32 whatever the layer's dtype
    (``random.beta`` with no dtype), as ``g_a / (g_a + g_b)`` of two Gamma(alpha) draws. For
    the images ``w`` is cast to the compute dtype and shaped ``(B, 1, 1, 1)``; for the labels
    it stays float32, shaped ``(B, 1)``. Each line is ``(w * x) + ((1.0 - w) * x[perm])``,
    in that order, four rounded operations.

    With ``alpha = 0.2`` most weights are near 0 or 1 (a light blend); ``alpha = 1`` gives
    uniform weights. Small ``alpha`` in Keras: see the module docstring.

    Examples
    --------
    Two one-pixel images (0 and 10), one-hot labels, and the draws given: weight 0.75,
    and each sample partnered with the other. Image 0 becomes ``0.75 * 0 + 0.25 * 10``,
    and its label keeps the same 75/25 split.

    >>> import numpy as np
    >>> from scratchopt.augment import MixUp
    >>> images = np.array([0.0, 10.0]).reshape(2, 1, 1, 1)  # (batch, height, width, channels)
    >>> labels = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> draws = {"mix_weight": np.array([0.75, 0.75]), "permutation_order": np.array([1, 0])}
    >>> out = MixUp()({"images": images, "labels": labels}, draws=draws)
    >>> out["images"].ravel().tolist()
    [2.5, 7.5]
    >>> out["labels"].tolist()
    [[0.75, 0.25], [0.25, 0.75]]
    """

    DRAWS = (("mix_weight", np.float32), ("permutation_order", np.int64))

    def __init__(self, alpha=0.2, data_format=None, seed=None, *, dtype=None):
        if not _is_number(alpha):
            raise TypeError(f"`alpha` must be a number. Received: alpha={alpha!r}")
        if not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"`alpha` must be finite and > 0 (Beta(alpha, alpha) is undefined "
                             f"otherwise). Received: alpha={alpha!r}")
        self.alpha = alpha
        self.data_format = _data_format(data_format)
        self.seed = _seed(seed)
        self.dtype = _dtype(dtype)
        self.generator = _rng(seed)

    def draw(self, batch_size):
        """Our own draws for a batch: ``{"mix_weight", "permutation_order"}`` (NumPy arrays)."""
        return {
            "mix_weight": self.generator.beta(self.alpha, self.alpha, batch_size).astype(np.float32),
            "permutation_order": self.generator.permutation(batch_size).astype(np.int64),
        }

    def get_random_transformation(self, data, training=True, draws=None):
        """Keras's transformation dict: the draws, on the images' device. None when not training."""
        if not training:
            return None
        images = _images_of(data)
        batch_size = 1 if images.ndim == 3 else images.shape[0]
        xp = namespace(images)
        return {k: xp.asarray(v) for k, v in _draws_for(self, batch_size, draws).items()}

    @tf_arithmetic()
    def transform_images(self, images, transformation, training=True):
        if not training:
            return images
        xp = namespace(images)
        x = images.astype(self.dtype, copy=False)
        w = xp.reshape(transformation["mix_weight"], (-1, 1, 1, 1)).astype(self.dtype)
        x_perm = xp.take(x, transformation["permutation_order"], axis=0)
        return w * x + (1.0 - w) * x_perm

    @tf_arithmetic()
    def transform_labels(self, labels, transformation, training=True):
        if not training:
            return labels
        _check_labels(labels, transformation["mix_weight"].shape[0])
        w = transformation["mix_weight"].astype(labels.dtype)  # float32 in Keras
        return _mix_labels(labels, w, transformation["permutation_order"])

    def get_config(self):
        return {"alpha": self.alpha, "data_format": self.data_format, "seed": self.seed,
                "dtype": self.dtype.name}


# --- CutMix ---------------------------------------------------------------------------------


def _cutmix_factor(factor):
    """Keras's ``_set_factor`` with bounds [0, 1], plus what it lets through (see module doc)."""
    message = ("The `factor` argument should be a number (or a list of two numbers) in the "
               f"range [0, 1]. Received: factor={factor}")
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2:
            raise ValueError(message)
        if not all(_is_number(f) for f in factor):
            raise TypeError(f"both ends of `factor` must be numbers. Received: factor={factor!r}")
        if factor[0] > 1 or factor[1] < 0:  # Keras's own check
            raise ValueError(message)
        if not all(0 <= f <= 1 for f in factor):  # ours: Keras takes (-5, 0.5), (0.5, 2), NaN
            raise ValueError(message)
        lower, upper = sorted(factor)
    elif isinstance(factor, (int, float)):
        if not 0 <= factor <= 1:  # Keras: factor < 0 or factor > 1 (so NaN passes there)
            raise ValueError(message)
        factor = abs(factor)
        lower, upper = max(-factor, 0), factor
    else:
        raise ValueError(message)  # noqa: TRY004 (Keras's exception for a non-number)
    return lower, upper


class CutMix(_MixingLayer):
    """CutMix: paste a rectangle from a partner image; the labels share by area.

    ::

        draws (per batch):  a ~ U(factor_lo, factor_hi) + 1e-6        one a for the batch
                            w_i ~ Beta(a, a)                           i = 0 .. B-1
                            u_i, v_i ~ U[0, 1)   perm = a random permutation of 0 .. B-1
        box:   r   = sqrt(1 - w)                   side ratio, so the box has area (1 - w) W H
               len = r * W                         not rounded: the box is continuous
               x0  = u * (W - len),  x1 = x0 + len       (y0, y1 alike with v, H)
        mask:  pixel (row, col) of image i is pasted   iff   x0 <= col < x1  and  y0 <= row < y1
        images: x'_i = where(mask_i, x_perm(i), x_i)
        labels: lam  = 1 - (x1 - x0) * (y1 - y0) / (W * H)       from the continuous box
                y'_i = lam_i * y_i + (1 - lam_i) * y_perm(i)

    Keras's exact form (``cut_mix.py``): all of it in the compute dtype; ``x1 - x0`` is
    recomputed from the rounded ``x0 + len`` (not ``len`` itself), the grid is
    ``arange(W)``/``arange(H)`` in the compute dtype, and ``W * H`` is an int made a float.
    Since ``lam`` comes from the continuous box, it need not equal the fraction of pixels
    actually pasted (a 0.5-pixel-wide box can cover 0 or 1 column): the label is off by up
    to a row and a column's worth. A single image (no batch axis) is never mixed.

    **The lesson's CutMix is wrong.** It draws ``lam`` and mixes the labels as
    ``lam * y + (1 - lam) * y[perm]``, but never touches the pixels. The model is then shown
    an untouched cat labelled "70% cat, 30% dog": there is no dog in the picture, so the
    soft label is simply noise, and the network is trained to hedge on clean images (it is
    label smoothing towards a random class, not CutMix). The point of CutMix is that the
    30% of the label is *earned* by 30% of the pixels: the mask above does that.

    Examples
    --------
    A black and a white 4 x 4 image swap a box, with the draws given: ``w = 0.75`` gives
    a box of side ``sqrt(1 - 0.75) * 4`` = 2 pixels, ``u = 0.5`` puts it at columns
    ``0.5 * (4 - 2)`` = 1 to 3, ``v = 0`` at rows 0 to 2. The box is 4 of 16 pixels, so
    each label keeps 75% of its own class.

    >>> import numpy as np
    >>> from scratchopt.augment import CutMix
    >>> images = np.stack([np.zeros((4, 4, 1)), np.ones((4, 4, 1))])
    >>> labels = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> draws = {"mix_weight": np.array([0.75, 0.75]), "x_uniform": np.array([0.5, 0.5]),
    ...          "y_uniform": np.array([0.0, 0.0]), "permutation_order": np.array([1, 0])}
    >>> out = CutMix()({"images": images, "labels": labels}, draws=draws)
    >>> out["images"][0, :, :, 0].astype(int)  # the white image's box, pasted
    array([[0, 1, 1, 0],
           [0, 1, 1, 0],
           [0, 0, 0, 0],
           [0, 0, 0, 0]])
    >>> out["labels"].tolist()
    [[0.75, 0.25], [0.25, 0.75]]
    """

    DRAWS = (("mix_weight", "compute"), ("x_uniform", "compute"), ("y_uniform", "compute"),
             ("permutation_order", np.int32))

    def __init__(self, factor=1.0, seed=None, data_format=None, *, dtype=None):
        self.factor = _cutmix_factor(factor)
        self.seed = _seed(seed)
        self.data_format = _data_format(data_format)
        self.dtype = _dtype(dtype)
        self.generator = _rng(seed)
        if self.data_format == "channels_first":
            self.height_axis, self.width_axis, self.channel_axis = -2, -1, -3
        else:
            self.height_axis, self.width_axis, self.channel_axis = -3, -2, -1

    def draw(self, batch_size):
        """Our own draws for a batch: the Beta weights, the box's two uniforms, the permutation.

        Keras also draws ``a`` first and ``w`` from it; only ``w`` enters the box, so ``a``
        is not part of the returned draws.
        """
        g, dtype = self.generator, self.dtype
        a = as_dtype(g.uniform(*self.factor), dtype) + as_dtype(1e-6, dtype)
        return {
            "mix_weight": g.beta(a, a, batch_size).astype(dtype),
            "x_uniform": g.random(batch_size, dtype=dtype),  # [0, 1) in the dtype itself
            "y_uniform": g.random(batch_size, dtype=dtype),
            "permutation_order": g.permutation(batch_size).astype(np.int32),
        }

    @tf_arithmetic()
    def get_random_transformation(self, data, training=True, draws=None):
        """Keras's transformation: ``{"permutation_order", "batch_masks", "mix_weight"}``.

        ``mix_weight`` here is the *label* weight ``lam`` (Keras's naming), shaped
        ``(B, 1, 1, 1)``; ``box`` (ours) holds ``(x0, x1, y0, y1)``, each of shape ``(B,)``.
        None when not training or for a single image, as in Keras.
        """
        if not training:
            return None
        images = _images_of(data)
        if images.ndim == 3:
            return None
        xp = namespace(images)
        batch_size = images.shape[0]
        height, width = images.shape[self.height_axis], images.shape[self.width_axis]
        d = {k: xp.asarray(v) for k, v in _draws_for(self, batch_size, draws).items()}

        ratio = xp.sqrt(1.0 - d["mix_weight"])
        x0, x1 = self._crop_bounds(width, ratio, d["x_uniform"])
        y0, y1 = self._crop_bounds(height, ratio, d["y_uniform"])
        masks, label_weight = self._batch_masks(xp, images.shape, (x0, x1, y0, y1))
        return {"permutation_order": d["permutation_order"], "batch_masks": masks,
                "mix_weight": label_weight, "box": (x0, x1, y0, y1)}

    def _crop_bounds(self, length, ratio, uniform):
        """``len = r * L``, ``start = u * (L - len)``, ``end = start + len`` (L an int)."""
        length = as_dtype(length, self.dtype)
        crop = ratio * length
        start = uniform * (length - crop)
        return start, start + crop

    def _batch_masks(self, xp, shape, box):
        """The pasted pixels, and the label weight from the continuous box."""
        height, width = shape[self.height_axis], shape[self.width_axis]
        grid_y, grid_x = xp.meshgrid(xp.arange(height, dtype=self.dtype),
                                     xp.arange(width, dtype=self.dtype), indexing="ij")
        where = (None, slice(None), slice(None), None)  # (1, H, W, 1)
        if self.data_format == "channels_first":
            where = (None, None, slice(None), slice(None))  # (1, 1, H, W)
        grid_x, grid_y = grid_x[where], grid_y[where]
        x0, x1, y0, y1 = (c[:, None, None, None] for c in box)

        masks = (grid_x >= x0) & (grid_x < x1) & (grid_y >= y0) & (grid_y < y1)
        masks = xp.repeat(masks, shape[self.channel_axis], axis=self.channel_axis)
        label_weight = 1.0 - (x1 - x0) * (y1 - y0) / as_dtype(width * height, self.dtype)
        return masks, label_weight

    @tf_arithmetic()
    def transform_images(self, images, transformation, training=True):
        images = images.astype(self.dtype, copy=False)  # Keras casts even when not mixing
        if not training or transformation is None:
            return images
        xp = namespace(images)
        x_perm = xp.take(images, transformation["permutation_order"], axis=0)
        return xp.where(transformation["batch_masks"], x_perm, images)

    @tf_arithmetic()
    def transform_labels(self, labels, transformation, training=True):
        if not training or transformation is None:
            return labels
        _check_labels(labels, transformation["mix_weight"].shape[0])
        return _mix_labels(labels, transformation["mix_weight"], transformation["permutation_order"])

    def get_config(self):
        return {"factor": self.factor, "seed": self.seed, "data_format": self.data_format,
                "dtype": self.dtype.name}


# --- text: EDA's random deletion and random swap --------------------------------------------


def _generator(rng):
    """None (fresh entropy), an int seed, or a ``np.random.Generator`` used as is."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return np.random.default_rng(rng)
    raise TypeError(f"`rng` must be None, an int seed or a numpy Generator. Received: rng={rng!r}")


def _tokens(words):
    if isinstance(words, (str, bytes)):
        raise TypeError("`words` must be a list of tokens (e.g. sentence.split()), not a string: "
                        f"a string would be augmented letter by letter. Received: words={words!r}")
    return list(words)


def random_deletion(words, p, rng=None):
    """Drop each word with probability ``p``; never return an empty list.

    ::

        keep word k   iff   u_k >= p,    u_k ~ U[0, 1)     (so P(drop) = p; p = 0 keeps all)
        nothing kept  ->  [one word chosen uniformly]

    Order is preserved. An empty input gives ``[]`` (there is nothing to keep). EDA's
    version keeps when ``u > p``; ``>=`` makes ``p = 0`` exactly the identity.
    Deleting from short sentences can delete the meaning with it (EDA uses ``p = 0.1``).

    Examples
    --------
    With ``rng=0`` the draws are ``np.random.default_rng(0).random(6)`` = 0.64, 0.27,
    0.04, 0.02, 0.81, 0.91: with ``p = 0.3`` the words at 0, 4 and 5 stay.

    >>> from scratchopt.augment import random_deletion
    >>> words = "the quick brown fox jumps over".split()
    >>> random_deletion(words, 0.3, rng=0)
    ['the', 'jumps', 'over']
    >>> random_deletion(words, 0.0, rng=0) == words  # p = 0 keeps every word
    True
    >>> len(random_deletion(words, 1.0, rng=0))  # p = 1: one word, never none
    1
    """
    words = _tokens(words)
    if not _is_number(p) or isinstance(p, bool):
        raise TypeError(f"`p` must be a number. Received: p={p!r}")
    if not 0 <= p <= 1:
        raise ValueError(f"`p` must be in [0, 1]. Received: p={p!r}")
    rng = _generator(rng)
    if not words:
        return []
    u = rng.random(len(words))
    kept = [word for word, u_k in zip(words, u) if u_k >= p]
    if not kept:
        kept = [words[rng.integers(len(words))]]
    return kept


def random_swap(words, n, rng=None):
    """Exchange two distinct random positions, ``n`` times; the multiset of words is kept.

    ::

        repeat n times:   (i, j) ~ two distinct positions, uniformly;   swap words i and j

    Fewer than two words: returned unchanged. EDA redraws ``j`` up to three times when it
    equals ``i`` and then gives up on that swap; we draw a distinct pair directly, so every
    one of the ``n`` swaps happens (and ``n = 2`` can swap a pair back).

    Examples
    --------
    >>> from scratchopt.augment import random_swap
    >>> random_swap(["hello", "world"], 1, rng=0)  # two words: the one pair there is
    ['world', 'hello']
    >>> words = "the quick brown fox jumps over".split()
    >>> sorted(random_swap(words, 3, rng=0)) == sorted(words)  # the same words, moved
    True
    """
    words = _tokens(words)
    if not isinstance(n, numbers.Integral) or isinstance(n, bool):
        raise TypeError(f"`n` must be an int. Received: n={n!r}")
    if n < 0:
        raise ValueError(f"`n` must be >= 0. Received: n={n!r}")
    rng = _generator(rng)
    if len(words) < 2:
        return words
    for _ in range(n):
        i, j = rng.choice(len(words), size=2, replace=False)
        words[i], words[j] = words[j], words[i]
    return words
