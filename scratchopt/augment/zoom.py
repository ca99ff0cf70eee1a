"""RandomZoom (``keras.layers.RandomZoom``): zoom each image in or out about its centre.

The zoom's 3x3 matrix is built here in Keras's float32 arithmetic; ``transform.py`` moves
the pixels. Exact against Keras (bit for bit) given the same zoom draws.
"""

import numpy as np

from ..backend import namespace
from .image_layer import ImageAugmentationLayer, on_host
from .options import check_fill_mode, check_fill_value, check_interpolation, pair_factor
from .transform import apply_transform

F32 = np.float32


def zoom_matrix(width_zoom, height_zoom, height, width):
    """Keras's ``_get_zoom_matrix``: (N, 8) transforms that scale about the image centre.

    ::

        [a0 a1 a2]   [zx 0  (W - 1) / 2 * (1 - zx)]     output pixel x reads the input at
        [b0 b1 b2] = [0  zy (H - 1) / 2 * (1 - zy)]     cx + zx * (x - cx): zx > 1 reads a
        [c0 c1  1]   [0  0  1                     ]     wider area (zoom out), zx < 1 zooms in

    each offset computed as ``((float32(W) - 1) / 2) * (1 - zx)``, in float32.
    """
    zx = np.asarray(width_zoom, F32).reshape(-1)
    zy = np.asarray(height_zoom, F32).reshape(-1)
    x_offset = ((F32(width) - F32(1)) / F32(2)) * (F32(1) - zx)
    y_offset = ((F32(height) - F32(1)) / F32(2)) * (F32(1) - zy)
    zero = np.zeros_like(zx)
    return np.stack([zx, zero, x_offset, zero, zy, y_offset, zero, zero], axis=1)


class RandomZoom(ImageAugmentationLayer):
    """Zoom each image by a random factor per axis; ``height_factor`` and ``width_factor``.

    ::

        height_factor f      -> height_zoom_i ~ U[1 - f, 1 + f)    (f in (-1, 1])
        height_factor (a, b) -> height_zoom_i ~ U[1 + a, 1 + b)    (sorted; (a, a): fixed)
        width_factor None    -> width_zoom_i = height_zoom_i (the same draw: aspect kept)
        out_i = apply_transform(img_i, zoom_matrix(width_zoom_i, height_zoom_i, H, W), ...)

    A zoom above 1 reads a larger area into the same pixels: **a positive factor zooms out**
    (the content shrinks, the border is filled by ``fill_mode``), a negative one zooms in.
    Keras's checks: every number in (-1, 1] (``ValueError``).

    Examples
    --------
    Zoom out by 2 (factor (1, 1): zoom 2) a 1x5 row, reflecting at the edges:

    >>> import numpy as np
    >>> from scratchopt.augment import RandomZoom
    >>> row = np.arange(5.0).reshape(1, 1, 5, 1)
    >>> RandomZoom(0.0, (1.0, 1.0))(row).ravel().tolist()
    [1.0, 0.0, 2.0, 4.0, 3.0]
    """

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect", interpolation="bilinear",
                 seed=None, fill_value=0.0):
        self.height_factor, self.width_factor = height_factor, width_factor
        self.height_lower, self.height_upper = pair_factor("height_factor", height_factor, low_open=True)
        if width_factor is not None:
            self.width_lower, self.width_upper = pair_factor("width_factor", width_factor, low_open=True)
        self.fill_mode = check_fill_mode(fill_mode)
        self.interpolation = check_interpolation(interpolation)
        self.fill_value = check_fill_value(fill_value)
        self.DRAWS = (("height_zoom", F32),) + ((("width_zoom", F32),) if width_factor is not None else ())
        super().__init__(seed=seed)

    def draw(self, batch_size):
        """Our own draws: ``height_zoom`` (and ``width_zoom`` when ``width_factor`` is given)."""
        draws = {"height_zoom": self.uniform(1.0 + self.height_lower, 1.0 + self.height_upper, batch_size)}
        if self.width_factor is not None:
            draws["width_zoom"] = self.uniform(1.0 + self.width_lower, 1.0 + self.width_upper, batch_size)
        return draws

    def transform(self, images, draws):
        _, height, width, _ = images.shape
        height_zoom = on_host(draws["height_zoom"])
        width_zoom = on_host(draws["width_zoom"]) if self.width_factor is not None else height_zoom
        matrix = zoom_matrix(width_zoom, height_zoom, height, width)
        return apply_transform(images, namespace(images).asarray(matrix), self.interpolation,
                               self.fill_mode, self.fill_value)

    def get_config(self):
        return {"height_factor": self.height_factor, "width_factor": self.width_factor,
                "fill_mode": self.fill_mode, "interpolation": self.interpolation, "seed": self.seed,
                "fill_value": self.fill_value}
