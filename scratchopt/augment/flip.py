"""RandomFlip (``keras.layers.RandomFlip``): mirror images left-right and/or top-bottom.

A flip keeps the label true for most photos (a cat looking left is still a cat), not for
digits or text (a mirrored 2 is no 2): choose the mode for the data.
"""

import numpy as np

from ..backend import namespace
from .image_layer import ImageAugmentationLayer
from .options import check_flip_mode


class RandomFlip(ImageAugmentationLayer):
    """Flip each image with probability 1/2: ``mode`` "horizontal", "vertical" or both.

    ::

        draws (per image i):   flips_i = (u_i <= 0.5),   u_i ~ U[0, 1)      (Keras's form)
        "horizontal":          out_i[y, x] = img_i[y, W - 1 - x]   where flips_i, else img_i
        "vertical":            out_i[y, x] = img_i[H - 1 - y, x]   where flips_i, else img_i
        "horizontal_and_vertical": both, with the SAME coin flips_i

    As a 3x3 transform (output pixel -> input pixel, see ``transform.py``) a horizontal flip
    is ``[-1, 0, W - 1, 0, 1, 0, 0, 0]``; Keras, and we, reverse the array instead, which is
    the same thing with no arithmetic. Exact against Keras given the same ``flips``.

    **One coin per image** in "horizontal_and_vertical" (Keras draws one uniform per image
    and uses it for both axes): an image is untouched or turned by 180 degrees, never
    flipped one way only. To flip the two ways independently, stack ``RandomFlip("horizontal")``
    and ``RandomFlip("vertical")``.

    Differences from Keras: an unknown ``mode`` raises ``ValueError`` (Keras accepts any
    string and then never flips).

    Examples
    --------
    >>> import numpy as np
    >>> from scratchopt.augment import RandomFlip
    >>> images = np.arange(4.0).reshape(1, 2, 2, 1)   # [[0, 1], [2, 3]]
    >>> RandomFlip()(images, draws={"flips": [True]})[0, :, :, 0].tolist()
    [[3.0, 2.0], [1.0, 0.0]]
    >>> RandomFlip("vertical")(images, draws={"flips": [True]})[0, :, :, 0].tolist()
    [[2.0, 3.0], [0.0, 1.0]]
    """

    DRAWS = (("flips", np.bool_),)

    def __init__(self, mode="horizontal_and_vertical", seed=None):
        self.mode = check_flip_mode(mode)
        super().__init__(seed=seed)

    def draw(self, batch_size):
        """Our own draws: ``{"flips": u <= 0.5}`` for ``u`` uniform in [0, 1), one per image."""
        return {"flips": self.uniform(0.0, 1.0, batch_size) <= 0.5}

    def transform(self, images, draws):
        xp = namespace(images)
        flips = xp.asarray(draws["flips"]).reshape(-1, 1, 1, 1)
        out = images
        if self.mode in ("horizontal", "horizontal_and_vertical"):
            out = xp.where(flips, out[:, :, ::-1], out)
        if self.mode in ("vertical", "horizontal_and_vertical"):
            out = xp.where(flips, out[:, ::-1], out)
        return out

    def get_config(self):
        return {"mode": self.mode, "seed": self.seed}
