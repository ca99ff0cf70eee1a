"""What the five image augmentation layers share: Keras's call, the draws, the dtypes.

``RandomFlip``, ``RandomRotation``, ``RandomZoom``, ``RandomContrast`` and
``RandomTranslation`` are called as Keras's are::

    layer(images)                      training=True by default, as in Keras: augment
    layer(images, training=False)      the identity (the images cast to float32)
    layer(images, draws={...})         the random draws given instead of drawn

``images`` is a batch ``(N, H, W, C)`` or one image ``(H, W, C)`` (channels last), a NumPy
or a CuPy array of any real dtype (uint8 pixels, float32, float64). As in Keras, the output
is float32 (the layers' compute dtype): integer and float64 images are cast first.
RandomContrast is the exception, as in Keras: see its docstring.

**The draws.** Each layer draws one or two numbers per image (``DRAWS`` names them, with
the names of Keras's transformation dict) and turns them into a transform. Keras draws
through TF's stateless RNG, which scratchopt does not reproduce: ``RandomZoom(0.1, seed=1)``
and ``keras.layers.RandomZoom(0.1, seed=1)`` zoom differently. ``layer.draw(batch_size)``
gives our own draws, and ``layer(images, draws=...)`` takes anybody's, Keras's included,
which is how the tests compare the two. A degenerate factor ``(a, a)`` draws the same
value for every image in both, so those layers compare with no injection at all.

**No gradient.** These are ``scratchopt.nn.Layer`` s with ``differentiable = False``: their
``backward`` raises, and in a ``Sequential`` they go before every layer with parameters
(the backward pass stops at them).
"""

import numpy as np

from .. import checks
from ..backend import namespace, to_numpy
from ..nn.layer import Layer
from .options import check_seed

F32 = np.float32


def _check_images(images):
    try:
        namespace(images)
    except TypeError:
        raise TypeError("`images` must be a NumPy or CuPy array. "
                        f"{checks.received('images', images)}") from None
    if images.ndim not in (3, 4):
        raise ValueError("`images` must have rank 3 (one image, (H, W, C)) or 4 (a batch, (N, H, W, C)). "
                         f"Received: images of shape {tuple(images.shape)}")
    if images.dtype.kind not in "uif":
        raise TypeError(f"`images` must hold real numbers (uint8, float32, ...). Received: images of dtype "
                        f"{images.dtype}")
    return images


def on_host(values):
    """Draws as a NumPy array (the 3x3 matrices are built on the host, then moved)."""
    return values if isinstance(values, np.ndarray) else to_numpy(values)


class ImageAugmentationLayer(Layer):
    """Keras's ``BaseImagePreprocessingLayer.call`` for images: draw, then transform.

    A subclass names its draws in ``DRAWS`` (``(name, dtype)`` pairs, one value per image)
    and writes ``draw(batch_size)`` (our own draws) and ``transform(images, draws)`` (the
    augmentation of a float32 batch given the draws).

    Examples
    --------
    >>> import numpy as np
    >>> from scratchopt.augment import RandomFlip
    >>> layer = RandomFlip("horizontal")
    >>> layer.differentiable, layer.params
    (False, {})
    >>> image = np.arange(3, dtype=np.uint8).reshape(1, 1, 3, 1)
    >>> layer(image, draws={"flips": [True]}).ravel().tolist()
    [2.0, 1.0, 0.0]
    >>> layer(image, training=False).dtype  # the identity, in the compute dtype
    dtype('float32')
    """

    #: (name, dtype) of each draw: one value per image
    DRAWS = ()
    differentiable = False

    def __init__(self, seed=None):
        super().__init__()
        self.seed = check_seed(seed)
        self.generator = checks.generator(seed)

    def __call__(self, images, training=True, draws=None):
        """``images`` augmented (``training=True``) or cast to float32 (``training=False``)."""
        images = _check_images(images)
        single = images.ndim == 3  # Keras adds the batch axis, transforms, and removes it
        batch = images[None] if single else images
        if not training:
            out = self.inference(batch)
        else:
            out = self.transform(self.cast(batch), self._draws(batch.shape[0], draws))
        return out[0] if single else out

    call = __call__

    # --- for the subclasses ----------------------------------------------------------------

    def cast(self, images):
        """Keras's ``transform_images``: the images in the compute dtype, float32."""
        return images.astype(F32, copy=False)

    def inference(self, images):
        """``training=False``: Keras casts to the compute dtype and changes nothing else."""
        return self.cast(images)

    def uniform(self, low, high, size):
        """Our uniform draws in ``[low, high)``, as TF forms them: ``u * (high - low) + low``
        in float32, with ``u`` uniform in [0, 1)."""
        low, high = F32(low), F32(high)
        return self.generator.random(size, dtype=F32) * (high - low) + low

    def _draws(self, batch_size, draws):
        """Our own draws, or the caller's, checked: one value per image, in ``DRAWS``' dtypes."""
        if draws is None:
            return self.draw(batch_size)
        names = [name for name, _ in self.DRAWS]
        if not isinstance(draws, dict):
            raise TypeError(f"`draws` must be a dict with keys {names}. {checks.received('draws', draws)}")
        missing = [name for name in names if name not in draws]
        if missing:
            raise ValueError(f"`draws` lacks {missing}: {type(self).__name__} needs {names}")
        out = {}
        for name, dtype in self.DRAWS:
            value = draws[name]
            if not hasattr(value, "__cuda_array_interface__"):
                value = np.asarray(value)
            value = value.reshape(-1) if value.size == batch_size else value
            if value.shape != (batch_size,):
                raise ValueError(f"`draws[{name!r}]` must hold one value per image, {batch_size}. "
                                 f"Received: shape {tuple(value.shape)}")
            if np.dtype(dtype) == np.bool_ and value.dtype != np.bool_:
                raise TypeError(f"`draws[{name!r}]` must be booleans (True: flip), not the uniform draws "
                                f"themselves (Keras flips where u <= 0.5). Received: dtype {value.dtype}")
            out[name] = value.astype(dtype, copy=False)
        return out

    def draw(self, batch_size):
        raise NotImplementedError

    def transform(self, images, draws):
        raise NotImplementedError
