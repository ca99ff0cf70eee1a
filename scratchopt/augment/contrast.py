"""RandomContrast (``keras.layers.RandomContrast``): stretch or squeeze each image's pixels
about its mean.

Exact against Keras (bit for bit) given the same contrast factors: the means are summed in
Eigen's order (``numerics.reduce_mean_over``), as ``tf.reduce_mean`` sums them.
"""

import numpy as np

from ..backend import namespace
from ..numerics import reduce_mean_over, tf_arithmetic
from .image_layer import ImageAugmentationLayer
from .options import base_factor, check_value_range

F32 = np.float32


class RandomContrast(ImageAugmentationLayer):
    """Scale each image's deviations from its mean by a random factor, then clip.

    ::

        factor f        -> c_i ~ U[1, 1 + f)              f in [0, 1]: contrast only RISES
        factor (a, b)   -> c_i ~ U[1 - a, 1 + b)          sorted; a <= 1 and b >= 0
        mean_i[c] = mean over width of (mean over height of img_i[:, :, c])   (per channel)
        out_i     = clip((img_i - mean_i) * c_i + mean_i, value_range[0], value_range[1])

    **Keras's quirks, kept.** A single number ``f`` draws from ``[1, 1 + f]`` (Keras sets the
    pair to ``(max(-f, 0), f)``), so the lesson's ``RandomContrast(0.1)`` can only *raise*
    the contrast; ``(0.1, 0.1)`` draws from [0.9, 1.1]. The only fixed factors are ``c >= 1``,
    written ``(1 - c, c - 1)``. The factor is one per image, shared by all channels (Keras's
    docstring says per channel). The mean is per image and channel, taken over the height,
    then over the width (two rounded means, not one). The output is clipped to
    ``value_range``: pass ``(0, 1)`` for images scaled to [0, 1], or they are not clipped
    where they should be.

    **dtypes, as Keras.** Float images are cast to float32 first. Integer images (uint8)
    make Keras fail (TF cannot subtract a float mean from a uint8 tensor), so they raise a
    ``TypeError`` here, before anything is computed: cast them to float32 first (a
    ``RandomFlip`` or geometric layer in front does it). With ``training=False`` the images
    come back as they are (float64 as float32, uint8 untouched), as in Keras.

    Examples
    --------
    >>> import numpy as np
    >>> from scratchopt.augment import RandomContrast
    >>> image = np.array([100.0, 200.0]).reshape(1, 1, 2, 1)  # mean 150
    >>> RandomContrast(0.5)(image, draws={"contrast_factor": [1.5]}).ravel().tolist()
    [75.0, 225.0]
    >>> RandomContrast((0.5, 0.0))(image, draws={"contrast_factor": [0.5]}).ravel().tolist()
    [125.0, 175.0]
    """

    DRAWS = (("contrast_factor", F32),)

    def __init__(self, factor, value_range=(0, 255), seed=None):
        self.factor = factor
        self.lower, self.upper = base_factor("factor", factor, (0, 1))
        self.value_range = check_value_range(value_range)
        super().__init__(seed=seed)

    def draw(self, batch_size):
        """Our own draws: ``{"contrast_factor": ...}`` uniform in [1 - lower, 1 + upper)."""
        return {"contrast_factor": self.uniform(1.0 - self.lower, 1.0 + self.upper, batch_size)}

    def cast(self, images):
        if images.dtype.kind != "f":
            raise TypeError(f"RandomContrast needs float images (Keras fails on {images.dtype}: TF cannot "
                            f"subtract a float mean from them). Received: images of dtype {images.dtype}; "
                            "cast them with images.astype('float32') first")
        return images.astype(F32, copy=False)

    def inference(self, images):
        return images if images.dtype.kind != "f" else images.astype(F32, copy=False)

    @tf_arithmetic()
    def transform(self, images, draws):
        xp = namespace(images)
        factor = xp.asarray(draws["contrast_factor"]).reshape(-1, 1, 1, 1)
        mean = reduce_mean_over(images, (1,), keepdims=True)  # over the height
        mean = reduce_mean_over(mean, (2,), keepdims=True)  # then over the width
        out = (images - mean) * factor + mean
        low, high = (F32(v) for v in self.value_range)
        return xp.maximum(xp.minimum(out, high), low)  # tf.clip_by_value: min with high, then max

    def get_config(self):
        return {"factor": self.factor, "value_range": self.value_range, "seed": self.seed}
