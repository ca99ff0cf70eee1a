"""MixUp (Zhang et al. 2018, ``keras.layers.MixUp``): blend each image with a partner.

Each image of the batch is blended with another image of the batch, and the two one-hot
labels with the same weight. ``augment.mixing`` has what MixUp shares with CutMix (the forms
of data, the draws, the pitfalls, the differences from Keras of both); MixUp's own:

* ``alpha`` must be a finite number > 0 (``TypeError`` for a non-number, ``ValueError``
  otherwise). Keras does not check it: a negative, infinite or NaN alpha gives NaN weights,
  ``alpha=0`` weights of exactly 0.5 (see ``augment.mixing``), a string fails at the call.
* ``MixUp(dtype="float64")`` mixes float64 labels with the float32 weight widened to float64
  (as it does the images); Keras fails there (a float32 * float64 multiply).
* ``MixUp(..., training=False)`` draws nothing (Keras still advances its seed).
"""

import math
import numbers

import numpy as np

from ..backend import namespace
from ..checks import received
from ..numerics import tf_arithmetic
from .mixing import MixingLayer


class MixUp(MixingLayer):
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
    uniform weights. Small ``alpha`` in Keras: see ``augment.mixing``'s docstring.

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
        if not isinstance(alpha, numbers.Real):  # True too: Keras takes it as 1
            raise TypeError(f"`alpha` must be a number. {received('alpha', alpha)}")
        if not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"`alpha` must be finite and > 0 (Beta(alpha, alpha) is undefined "
                             f"otherwise). {received('alpha', alpha)}")
        self.alpha = alpha
        super().__init__(seed=seed, data_format=data_format, dtype=dtype)

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
        images = self._images_of(data)
        batch_size = 1 if images.ndim == 3 else images.shape[0]
        xp = namespace(images)
        return {k: xp.asarray(v) for k, v in self._draws(batch_size, draws).items()}

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
        self._check_labels(labels, transformation["mix_weight"].shape[0])
        w = transformation["mix_weight"].astype(labels.dtype)  # float32 in Keras
        return self._mix_labels(labels, w, transformation["permutation_order"])

    def get_config(self):
        return {"alpha": self.alpha, "data_format": self.data_format, "seed": self.seed,
                "dtype": self.dtype.name}
