"""What MixUp and CutMix share: Keras's call, the forms of data, the draws, the label mixing.

Given the same random draws, ``MixUp`` and ``CutMix`` return Keras 3.15's images, labels and
masks bit for bit, in float32 and float64, for both data formats (NumPy; CuPy runs the same
lines on the GPU, without TF's flush-to-zero). The draws themselves are **not** Keras's:
Keras uses TF's stateless random ops and scratchopt its own ``checks.generator(seed)``
(``np.random.default_rng``), so ``MixUp(seed=1)`` and ``keras.layers.MixUp(seed=1)`` mix
differently. Every layer has ``draw(batch_size)`` for its raw draws, and
``layer(data, draws=...)`` takes them from you, which is how the tests feed Keras's own
draws to ours.

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

The mixing layers are ``scratchopt.nn.Layer`` s with no gradient (``differentiable =
False``): their ``backward`` raises. Keras has no backward to compare with, and the
gradient with respect to the *data* is of no use; in a ``Sequential`` they go first.

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

Where both layers differ from Keras (everything else is Keras's, quirks included; each
layer's module lists its own differences):

* A negative ``seed`` (Keras accepts it) draws as its int64 bit pattern (``seed + 2**64``),
  as everywhere in scratchopt (``checks.generator``).
* ``data_format=None`` means ``"channels_last"``; Keras reads ``keras.config.image_data_format()``.
* ``dtype`` is float32 or float64 only (no float16/bfloat16 or mixed policies).
* An ``(images, labels)`` tuple is accepted; Keras would try to stack the two into one
  images tensor and fail.
* Labels that are not floating point, or not ``(batch, classes)``, are refused when mixing
  (Keras fails on integer labels and broadcasts 1-D ones, see above). Dict keys
  ``"bounding_boxes"`` and ``"segmentation_masks"`` are refused (not implemented; Keras's
  MixUp mixes segmentation masks wrongly anyway: its ``take`` has no axis, so it gathers
  from the flattened masks); other keys pass through untouched, as in Keras.
"""

import numpy as np

from .. import checks
from ..backend import namespace
from ..nn.layer import Layer
from ..numerics import tf_arithmetic

_NOT_IMPLEMENTED_KEYS = ("bounding_boxes", "segmentation_masks")


# --- Keras's checks of the arguments both layers take ------------------------------------------


def _seed(seed):
    """Keras's ``SeedGenerator`` check: None or a Python int (``ValueError`` otherwise)."""
    if seed is not None and (type(seed) is not int):
        raise ValueError(f"Argument `seed` must be an integer. Received: seed={seed!r}")
    return seed


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


# --- the forms of data ---------------------------------------------------------------------------


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


class MixingLayer(Layer):
    """What MixUp and CutMix share: Keras's ``call`` (base_image_preprocessing_layer.py).

    A subclass names its raw draws in ``DRAWS`` and writes ``draw(batch_size)``,
    ``get_random_transformation``, ``transform_images`` and ``transform_labels``, as Keras's
    image preprocessing layers do. It has no gradient: ``backward`` raises.

    Examples
    --------
    >>> import numpy as np
    >>> from scratchopt.augment import MixUp
    >>> from scratchopt.nn import Layer
    >>> layer = MixUp(seed=0)
    >>> isinstance(layer, Layer), layer.differentiable, layer.params
    (True, False, {})
    >>> layer.backward(np.zeros((2, 1, 1, 1), np.float32))
    Traceback (most recent call last):
    ...
    TypeError: MixUp is not differentiable: it has no backward (it transforms the data, as in Keras); ...
    """

    #: (name, dtype) of each raw draw; "compute" is the layer's dtype
    DRAWS = ()
    differentiable = False

    def __init__(self, seed, data_format, dtype):
        super().__init__()
        self.seed = _seed(seed)
        self.data_format = _data_format(data_format)
        self.dtype = checks.float_dtype("dtype", dtype)
        self.generator = checks.generator(seed)

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

    def get_config(self):
        return {"seed": self.seed, "data_format": self.data_format, "dtype": self.dtype.name}

    # --- for the subclasses ----------------------------------------------------------------

    @staticmethod
    def _images_of(data):
        images = _unpack(data)[0]
        namespace(images)
        _check_images(images)
        return images

    def _draw_dtype(self, dtype):
        return self.dtype if dtype == "compute" else np.dtype(dtype)

    def _draws(self, batch_size, draws):
        """Our own draws, or the caller's, checked and moved to the images' device and dtypes."""
        if draws is None:
            return self.draw(batch_size)
        names = [name for name, _ in self.DRAWS]
        missing = [name for name in names if name not in draws]
        if missing:
            raise ValueError(f"draws lacks {missing}; {type(self).__name__} needs {names}")
        out = {}
        for key, dtype in self.DRAWS:
            value = draws[key]
            if not hasattr(value, "__cuda_array_interface__"):  # CuPy stays on the GPU
                value = np.asarray(value)
            if value.shape != (batch_size,):
                raise ValueError(f"draws[{key!r}] must have shape ({batch_size},); got {value.shape}")
            out[key] = value.astype(self._draw_dtype(dtype), copy=False)
        return out

    @staticmethod
    def _check_labels(labels, batch_size):
        if labels.dtype.kind != "f":
            raise TypeError(f"labels must be floating point (one-hot or soft labels); got dtype "
                            f"{labels.dtype}. Turn class indices into one-hot rows first")
        if labels.ndim != 2 or labels.shape[0] != batch_size:
            raise ValueError(f"labels must have shape (batch, classes) with batch = {batch_size}; "
                             f"got shape {labels.shape} (class indices must be one-hot first)")

    @staticmethod
    def _mix_labels(labels, weight, order):
        """``y'_i = w_i * y_i + (1 - w_i) * y_order(i)``: each label mixed with its partner's."""
        xp = namespace(labels)
        w = xp.reshape(weight, (-1, 1))
        return w * labels + (1.0 - w) * xp.take(labels, order, axis=0)
