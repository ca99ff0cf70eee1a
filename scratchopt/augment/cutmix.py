"""CutMix (Yun et al. 2019, ``keras.layers.CutMix``): paste a box of a partner image.

A rectangle of another image of the batch is pasted onto each image, and the labels are
weighted by how much of the image each one owns. ``augment.mixing`` has what CutMix shares
with MixUp (the forms of data, the draws, the pitfalls, the differences from Keras of both);
CutMix's own:

* ``factor``: both ends must lie in [0, 1] and not be NaN. Keras refuses only a first
  element above 1 or a second below 0, so it takes ``(-5, 0.5)`` (a negative Beta
  parameter: NaN weights), ``(0.5, 2)`` and ``nan``. What Keras refuses, we refuse with its
  exception and message (a non-number is its ``ValueError``, not a ``TypeError``).
"""

import numbers

import numpy as np

from ..backend import namespace
from ..numerics import as_dtype, tf_arithmetic
from .mixing import MixingLayer


def _factor(factor):
    """Keras's ``_set_factor`` with bounds [0, 1], plus what it lets through (module docstring)."""
    message = ("The `factor` argument should be a number (or a list of two numbers) in the "
               f"range [0, 1]. Received: factor={factor}")
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2:
            raise ValueError(message)
        if not all(isinstance(f, numbers.Real) for f in factor):
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


class CutMix(MixingLayer):
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
        self.factor = _factor(factor)
        super().__init__(seed=seed, data_format=data_format, dtype=dtype)
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
        images = self._images_of(data)
        if images.ndim == 3:
            return None
        xp = namespace(images)
        batch_size = images.shape[0]
        height, width = images.shape[self.height_axis], images.shape[self.width_axis]
        d = {k: xp.asarray(v) for k, v in self._draws(batch_size, draws).items()}

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
        self._check_labels(labels, transformation["mix_weight"].shape[0])
        return self._mix_labels(labels, transformation["mix_weight"], transformation["permutation_order"])

    def get_config(self):
        return {"factor": self.factor, "seed": self.seed, "data_format": self.data_format,
                "dtype": self.dtype.name}
