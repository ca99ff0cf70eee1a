"""RandomTranslation (``keras.layers.RandomTranslation``): shift each image by a random offset.

The shift's 3x3 matrix is built here in Keras's float32 arithmetic; ``transform.py`` moves
the pixels. Exact against Keras (bit for bit) given the same draws.
"""

import numpy as np

from ..backend import namespace
from .image_layer import ImageAugmentationLayer, on_host
from .options import check_fill_mode, check_fill_value, check_interpolation, pair_factor
from .transform import apply_transform

F32 = np.float32


def translation_matrix(width_shift, height_shift):
    """Keras's ``_get_translation_matrix``: shifts of ``(dx, dy)`` pixels (N,) each.

    ::

        [a0 a1 a2]   [1 0 -dx]     output pixel (x, y) reads the input at (x - dx, y - dy):
        [b0 b1 b2] = [0 1 -dy]     the content moves right by dx and down by dy
        [c0 c1  1]   [0 0  1 ]
    """
    dx = np.asarray(width_shift, F32).reshape(-1)
    dy = np.asarray(height_shift, F32).reshape(-1)
    one, zero = np.ones_like(dx), np.zeros_like(dx)
    return np.stack([one, zero, -dx, zero, one, -dy, zero, zero], axis=1)


class RandomTranslation(ImageAugmentationLayer):
    """Shift each image by a random fraction of its height and width.

    ::

        height_factor f      -> height_translate_i ~ U[-f, f)     (f in [-1, 1])
        height_factor (a, b) -> height_translate_i ~ U[a, b)      (sorted; (a, a): fixed)
        dy_i = height_translate_i * H,  dx_i = width_translate_i * W     (float32 pixels)
        out_i = apply_transform(img_i, translation_matrix(dx_i, dy_i), interpolation, fill_mode)

    A positive draw moves the content down (height) or right (width). Keras draws the
    height fraction first, then the width fraction. Keras's checks: every number in
    [-1, 1] (``ValueError``).

    Examples
    --------
    Shift a 1x4 row right by a quarter of its width (one pixel), with a constant fill:

    >>> import numpy as np
    >>> from scratchopt.augment import RandomTranslation
    >>> row = np.array([10.0, 20.0, 30.0, 40.0]).reshape(1, 1, 4, 1)
    >>> RandomTranslation(0.0, (0.25, 0.25), fill_mode="constant")(row).ravel().tolist()
    [0.0, 10.0, 20.0, 30.0]
    """

    DRAWS = (("height_translate", F32), ("width_translate", F32))

    def __init__(self, height_factor, width_factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0):
        self.height_factor, self.width_factor = height_factor, width_factor
        self.height_lower, self.height_upper = pair_factor("height_factor", height_factor, low_open=False)
        self.width_lower, self.width_upper = pair_factor("width_factor", width_factor, low_open=False)
        self.fill_mode = check_fill_mode(fill_mode)
        self.interpolation = check_interpolation(interpolation)
        self.fill_value = check_fill_value(fill_value)
        super().__init__(seed=seed)

    def draw(self, batch_size):
        """Our own draws: the fractions ``height_translate`` and ``width_translate``."""
        return {"height_translate": self.uniform(self.height_lower, self.height_upper, batch_size),
                "width_translate": self.uniform(self.width_lower, self.width_upper, batch_size)}

    def transform(self, images, draws):
        _, height, width, _ = images.shape
        dy = on_host(draws["height_translate"]) * F32(height)
        dx = on_host(draws["width_translate"]) * F32(width)
        return apply_transform(images, namespace(images).asarray(translation_matrix(dx, dy)),
                               self.interpolation, self.fill_mode, self.fill_value)

    def get_config(self):
        return {"height_factor": self.height_factor, "width_factor": self.width_factor,
                "fill_mode": self.fill_mode, "interpolation": self.interpolation, "seed": self.seed,
                "fill_value": self.fill_value}
