"""One projective transform of a batch of images: inverse mapping, interpolation and fill.

Every geometric layer (``RandomRotation``, ``RandomZoom``, ``RandomTranslation``) builds its
own 3x3 matrix per image and hands it here; this module is the only place that moves pixels.
It follows TensorFlow's ``ImageProjectiveTransformV3`` kernel (``image_ops.h``), which is
what ``keras.ops.image.affine_transform`` runs, operation for operation in float32, so
given the same matrix the output has the same bits.

The picture: **inverse mapping**. For every *output* pixel ``(x, y)`` (column, row) the
matrix says where in the *input* to read::

    [x_in]   [a0 a1 a2] [x]                  Keras's 8-parameter form of one transform:
    [y_in] ~ [b0 b1 b2] [y]                  [a0, a1, a2, b0, b1, b2, c0, c1]
    [ k  ]   [c0 c1 1 ] [1]                  (the 3x3 matrix with its last entry 1)

    k    = (c0*x + c1*y) + 1                 (k == 0: the pixel is fill_value)
    x_in = ((a0*x + a1*y) + a2) / k
    y_in = ((b0*x + b1*y) + b2) / k

So a matrix that *shifts the content right* by 3 reads from ``x - 3`` (``a2 = -3``): the
matrix maps output to input, the inverse of how the image appears to move.

**Fill** (where ``(x_in, y_in)`` falls outside the image): each coordinate is first mapped
by ``fill_mode``, one axis at a time, with ``n`` the axis length and ``m = 2n``::

    "reflect"   [dcba|abcd|dcba], then clamped to [0, n - 1]:
                c < 0:     c' = m * trunc(-c / m) + c;  c' = c' + m  if c' < -n  else  -c' - 1
                c > n - 1: c' = c - m * trunc(c / m);   c' = m - c' - 1  if c' >= n
                (so c in (-1, 0) gives -c - 1 in (-1, 0), clamped to 0: it sticks to the edge)
    "wrap"      [abcd|abcd|abcd], TF's rule (which divides by n - 1), then clamped:
                c < 0:     c' = c + n * (trunc(-c / (n - 1)) + 1)
                c > n - 1: c' = c - n * trunc(c / (n - 1))
    "nearest"   [aaaa|abcd|dddd]: clamped to [0, n - 1]
    "constant"  unchanged: a neighbour outside the image reads fill_value
    (n == 1: every coordinate maps to 0, except in "constant")

**Interpolation** of the mapped ``(x, y)``; ``f(i, j)`` is the pixel at column ``i``, row
``j``, or ``fill_value`` when ``(i, j)`` lies outside the image::

    "nearest"   f(round(x), round(y))        round: half away from zero (C's std::round)
    "bilinear"  x0 = floor(x), x1 = x0 + 1, y0 = floor(y), y1 = y0 + 1
                top    = (x1 - x) * f(x0, y0) + (x - x0) * f(x1, y0)
                bottom = (x1 - x) * f(x0, y1) + (x - x0) * f(x1, y1)
                out    = (y1 - y) * top + (y - y0) * bottom

Every operation above is one float32 operation, in this order (TF's CPU kernel has no FMA;
integers such as ``m * trunc(...)`` are exact and rounded once to float32, as C converts
them). Images are ``(N, H, W, C)``: the coordinates are computed once per pixel (for zoom
and translation, once per column and once per row), and every channel plane is read with the
same indices. NumPy or CuPy, by the images' array module; TF's flush-to-zero is set around
the NumPy arithmetic (``numerics.tf_arithmetic``).
"""

import numpy as np

from ..backend import namespace
from ..numerics import tf_arithmetic
from .options import check_fill_mode, check_interpolation

F32 = np.float32


def _trunc_times(c, divisor, multiple, xp):
    """``multiple * trunc(c / divisor)`` as C computes it: a float32 division, a truncation to
    an integer, an exact integer product, converted (rounded once) to float32."""
    k = xp.trunc(c / F32(divisor))
    return (k.astype(np.float64) * multiple).astype(F32)


def _below(c, n, fill_mode, xp):
    """Coordinates c < 0, mapped (before the clamp)."""
    if fill_mode == "reflect":
        m = 2 * n
        c = _trunc_times(-c, m, m, xp) + c
        return xp.where(c < F32(-n), c + F32(m), -c - F32(1))
    return c + ((xp.trunc(-c / F32(n - 1)).astype(np.float64) + 1) * n).astype(F32)  # wrap


def _above(c, n, fill_mode, xp):
    """Coordinates c > n - 1, mapped (before the clamp)."""
    if fill_mode == "reflect":
        m = 2 * n
        c = c - _trunc_times(c, m, m, xp)
        return xp.where(c >= F32(n), (F32(m) - c) - F32(1), c)
    return c - _trunc_times(c, n - 1, n, xp)  # wrap


def map_coordinate(c, n, fill_mode):
    """A float32 coordinate array ``c`` on an axis of length ``n``, mapped by ``fill_mode``
    (the rules in the module's docstring; TF's ``MapCoordinate``)."""
    xp = namespace(c)
    if fill_mode == "constant":
        return c
    if n <= 1:
        return xp.zeros_like(c)
    top = F32(n - 1)
    if fill_mode in ("reflect", "wrap"):
        low, high = c < 0, c > top  # only these move: computed on them alone
        if bool(low.any()) or bool(high.any()):
            c = c.copy()
            c[low] = _below(c[low], n, fill_mode, xp)
            c[high] = _above(c[high], n, fill_mode, xp)
    return xp.minimum(xp.maximum(c, F32(0)), top)  # Eigen's clamp: min(max(c, 0), n - 1)


def _round_half_away(v, xp):
    """C's ``std::round``: halves away from zero (NumPy's ``round`` goes to even)."""
    t = xp.trunc(v)
    return t + xp.where(xp.abs(v - t) >= F32(0.5), xp.sign(v), F32(0))


class _Reader:
    """``f(i, j)`` for whole index arrays: the pixels of the batch, ``fill_value`` outside.

    The images are framed by one pixel of ``fill_value`` on every side, and the indices
    clipped to that frame, so an index outside the image reads the fill with no test. The
    framed batch is kept one channel plane after another, ``(C, N * (H + 2) * (W + 2))``, so
    that the blend's arithmetic runs over whole planes.
    """

    def __init__(self, images, fill_value, clip=True):
        xp = namespace(images)
        self.clip = clip  # False when every index is known to lie within the frame
        self.xp, (n, self.h, self.w, c) = xp, images.shape
        framed = xp.full((c, n, self.h + 2, self.w + 2), fill_value, dtype=images.dtype)
        framed[:, :, 1:-1, 1:-1] = xp.moveaxis(images, -1, 0)
        self.planes = framed.reshape(c, -1)
        self.base = (xp.arange(n, dtype=np.intp) * ((self.h + 2) * (self.w + 2))).reshape(-1, 1, 1)
        # with nothing to clip and fewer than 2**24 framed pixels, indices are exact in float32
        self.in_float32 = not clip and self.planes.shape[1] < 2**24

    def columns(self, i):
        """Integer-valued float32 columns as offsets into a framed row."""
        i = i.astype(np.intp)
        return (self.xp.clip(i, -1, self.w) if self.clip else i) + 1

    def rows(self, j):
        """Integer-valued float32 rows as offsets (image and row) into the framed batch."""
        j = j.astype(np.intp)
        return self.base + ((self.xp.clip(j, -1, self.h) if self.clip else j) + 1) * (self.w + 2)

    def index(self, j, i):
        """The flat index of the pixels at integer-valued float32 rows ``j`` and columns ``i``."""
        if self.in_float32:  # the same integers, with half the memory traffic of int64
            offset = self.base.astype(F32) + F32(self.w + 3)  # the frame: one row and one column
            return ((j * F32(self.w + 2) + i) + offset).astype(np.intp)
        return self.rows(j) + self.columns(i)

    def __call__(self, index):
        """The pixels at flat ``index``, channel planes first: (C, N, H, W)."""
        return self.xp.take(self.planes, index.reshape(-1), axis=1).reshape(-1, *index.shape)


@tf_arithmetic()
def apply_transform(images, transforms, interpolation="bilinear", fill_mode="reflect", fill_value=0.0):
    """Each image of ``images`` (N, H, W, C) transformed by its row of ``transforms`` (N, 8).

    ``transforms`` is Keras's 8-parameter form ``[a0, a1, a2, b0, b1, b2, c0, c1]`` of the
    3x3 matrix that maps an *output* pixel to the *input* point it reads (module docstring:
    the formula, the fill modes, the interpolation); one row of 8 (or shape (1, 8)) is used
    for every image. Computed in float32 and returned in float32, as TF's kernel does.

    Examples
    --------
    Shift a 1x4 image right by one pixel: output column ``x`` reads input column
    ``x - 1`` (``a2 = -1``). Column 0 then reads ``-1``, which each fill mode maps its own
    way:

    >>> import numpy as np
    >>> from scratchopt.augment.transform import apply_transform
    >>> image = np.array([10.0, 20.0, 30.0, 40.0], np.float32).reshape(1, 1, 4, 1)
    >>> shift = np.array([1, 0, -1, 0, 1, 0, 0, 0], np.float32)
    >>> for mode in ("reflect", "wrap", "nearest", "constant"):
    ...     print(mode, apply_transform(image, shift, fill_mode=mode).ravel().tolist())
    reflect [10.0, 10.0, 20.0, 30.0]
    wrap [40.0, 10.0, 20.0, 30.0]
    nearest [10.0, 10.0, 20.0, 30.0]
    constant [0.0, 10.0, 20.0, 30.0]

    A half-pixel shift blends neighbours (bilinear), or rounds half away from zero (nearest:
    column 0 reads -0.5, which rounds to -1, outside, so the constant fill):

    >>> half = np.array([1, 0, -0.5, 0, 1, 0, 0, 0], np.float32)
    >>> apply_transform(image, half, fill_mode="constant").ravel().tolist()
    [5.0, 15.0, 25.0, 35.0]
    >>> apply_transform(image, half, "nearest", "constant").ravel().tolist()
    [0.0, 20.0, 30.0, 40.0]
    """
    check_interpolation(interpolation)
    check_fill_mode(fill_mode)
    xp = namespace(images)
    if images.ndim != 4:
        raise ValueError(f"`images` must have rank 4 (N, H, W, C). Received: images of shape {images.shape}")
    images = images.astype(F32, copy=False)
    n, h, w, _ = images.shape
    t = xp.asarray(transforms, dtype=F32).reshape(-1, 8)
    if t.shape[0] not in (1, n):
        raise ValueError(f"`transforms` must have 1 or {n} rows of 8. Received: transforms of shape "
                         f"{tuple(transforms.shape)}")
    a0, a1, a2, b0, b1, b2, c0, c1 = (t[:, k].reshape(-1, 1, 1) for k in range(8))
    x = xp.arange(w, dtype=F32).reshape(1, 1, w)  # output column (int64 -> float in TF: exact)
    y = xp.arange(h, dtype=F32).reshape(1, h, 1)  # output row

    affine = not bool(xp.any(t[:, 6:] != 0))  # then k == 1 everywhere: dividing changes nothing
    if affine and not bool(xp.any(t[:, 1] != 0)) and not bool(xp.any(t[:, 3] != 0)):
        # zoom, translation: x_in depends on the column only, y_in on the row only. With
        # a1 == 0, a1 * y is a1 * 0 bit for bit (y >= 0), so this is the same arithmetic
        # on (N, 1, W) and (N, H, 1) instead of (N, H, W).
        x_in = (a0 * x + a1 * F32(0)) + a2
        y_in = (b0 * F32(0) + b1 * y) + b2
    else:
        x_in = (a0 * x + a1 * y) + a2
        y_in = (b0 * x + b1 * y) + b2
    if not affine:
        k = (c0 * x + c1 * y) + F32(1)
        x_in, y_in = x_in / k, y_in / k
    finite = bool(xp.isfinite(x_in).all()) and bool(xp.isfinite(y_in).all())
    x_in = map_coordinate(x_in, w, fill_mode)
    y_in = map_coordinate(y_in, h, fill_mode)
    f = _Reader(images, F32(fill_value), clip=fill_mode == "constant" or not finite)

    if interpolation == "nearest":
        out = f(f.index(_round_half_away(y_in, xp), _round_half_away(x_in, xp)))
    else:
        x0, y0 = xp.floor(x_in), xp.floor(y_in)
        x1, y1 = x0 + F32(1), y0 + F32(1)
        wx0, wx1 = x1 - x_in, x_in - x0  # broadcast over the channel planes
        wy0, wy1 = y1 - y_in, y_in - y0
        i00 = f.index(y0, x0)
        if f.clip:
            i01, i10, i11 = f.index(y0, x1), f.index(y1, x0), f.index(y1, x1)
        else:  # nothing to clip: the next column and row are one step on in the frame
            i01, i10 = i00 + 1, i00 + (w + 2)
            i11 = i10 + 1
        top = f(i00)
        top *= wx0
        top += wx1 * f(i01)  # top = (x1 - x) * f(x0, y0) + (x - x0) * f(x1, y0)
        out = f(i10)
        out *= wx0
        out += wx1 * f(i11)  # bottom, likewise
        out *= wy1
        top *= wy0
        out += top  # (y1 - y) * top + (y - y0) * bottom (addition is commutative, bit for bit)
    if not affine:
        zero_k = xp.broadcast_to(k == 0, (n, h, w))
        if bool(zero_k.any()):  # a point at infinity: the fill value
            out = xp.where(zero_k, F32(fill_value), out)
    return xp.ascontiguousarray(xp.moveaxis(out, 0, -1))  # (C, N, H, W) -> (N, H, W, C)
