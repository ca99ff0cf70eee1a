"""RandomRotation (``keras.layers.RandomRotation``): turn each image about its centre.

The rotation's 3x3 matrix is built here, in Keras's float32 arithmetic; ``transform.py``
moves the pixels. Exact against Keras given the same angles, for every batch size.

The one subtle step is ``cos`` and ``sin``. Keras takes them of the whole vector of angles
at once, and TF's CPU kernel computes whole packets of 8 floats with Eigen's vectorised
polynomial (``psincos_float``) and only the last ``N % 8`` with the C library
(``cosf``/``sinf``). The two differ by 1-4 ULP for some angles, which moves pixels by up to
~5e-4 (on a 0-255 scale). ``tf_cos_sin`` follows TF: Eigen's algorithm for whole packets
(below, operation for operation, without FMA as TF's x86 wheels are built), libm for the
tail. ``rotation_matrix(..., trig="libm")`` uses libm for all, to measure what the
emulation buys (``parity_tests/measure_augment.py``).
"""

import ctypes
import math

import numpy as np

from ..backend import namespace
from ..numerics import tf_arithmetic
from ..numerics.fpenv import _libm
from .image_layer import ImageAugmentationLayer, on_host
from .options import base_factor, check_fill_mode, check_fill_value, check_interpolation
from .transform import apply_transform

F32 = np.float32
_PACKET = 8  # float32 lanes in one of Eigen's AVX packets


def _c_float_function(name):
    f = getattr(_libm, name)
    f.restype, f.argtypes = ctypes.c_float, [ctypes.c_float]
    return f


_COSF, _SINF = _c_float_function("cosf"), _c_float_function("sinf")


def libm_cos_sin(x):
    """``(cosf(x), sinf(x))`` elementwise: the C library, as TF's scalar path computes them."""
    values = x.reshape(-1).tolist()
    return (np.array([_COSF(v) for v in values], F32).reshape(x.shape),
            np.array([_SINF(v) for v in values], F32).reshape(x.shape))


def eigen_cos_sin(x):
    """``(cos(x), sin(x))`` as Eigen's ``psincos_float`` computes a packet, without FMA (|x| < 18838).

    ::

        n  = round(|x| * 2/pi)                    (the 1.5 * 2**23 rounding trick; its bits)
        r  = |x| - n * pi/2                       (pi/2 in 4 float32 pieces, 4 mul-adds)
        cos-poly(r) = (((c4 r2 + c3) r2 + c2) r2 - 0.5) r2 + 1          r2 = r * r
        sin-poly(r) = ((s3 r2 + s2) r2 + s1) * r2 * r + r
        cos(x) = +-(n even ? cos-poly : sin-poly),  sign from bit 1 of n + 1
        sin(x) = +-(n even ? sin-poly : cos-poly),  sign from bit 1 of n, xor x's sign
    """
    x = np.asarray(x, F32)
    ax = np.abs(x)
    y_round = ax * F32(0.636619746685028076171875) + F32(12582912)
    n_bits = y_round.view(np.int32)  # the low bits hold n
    n = y_round - F32(12582912)
    r = ax
    for piece in (-1.5703125, -0.000483989715576171875, 1.62865035235881805419921875e-07,
                  5.5644315544167710640977020375430583953857421875e-11):
        r = n * F32(piece) + r
    r2 = r * r
    cos_poly = F32(2.4372266125283204019069671630859375e-05)
    for c in (-0.00138865201734006404876708984375, 0.041666619479656219482421875, -0.5, 1.0):
        cos_poly = cos_poly * r2 + F32(c)
    sin_poly = F32(-0.0001959234114083702898469196984621021329076029360294342041015625)
    for c in (0.0083326873655616851693794799871284340042620897293090820312500000,
              -0.1666666203982298255503735617821803316473960876464843750000000000):
        sin_poly = sin_poly * r2 + F32(c)
    sin_poly = (sin_poly * r2) * r + r
    even = (n_bits & 1) == 0
    sign = np.int32(-2**31)
    cos_sign = ((n_bits + 1) << 30) & sign
    sin_sign = (x.view(np.int32) ^ (n_bits << 30)) & sign
    cos = (np.where(even, cos_poly, sin_poly).view(np.int32) ^ cos_sign).view(F32)
    sin = (np.where(even, sin_poly, cos_poly).view(np.int32) ^ sin_sign).view(F32)
    return cos, sin


@tf_arithmetic()
def tf_cos_sin(x):
    """``(tf.math.cos(x), tf.math.sin(x))`` for a float32 vector on TF's CPU: Eigen's packet
    algorithm for the first ``8 * (N // 8)`` elements, the C library for the rest."""
    x = np.asarray(x, F32).reshape(-1)
    whole = _PACKET * (x.size // _PACKET)
    head, tail = eigen_cos_sin(x[:whole]), libm_cos_sin(x[whole:])
    return np.concatenate([head[0], tail[0]]), np.concatenate([head[1], tail[1]])


def rotation_matrix(angle, height, width, trig="tf"):
    """Keras's ``_compute_affine_matrix`` for a pure rotation by ``angle`` degrees (N,) about
    the image centre: the (N, 8) transforms, every step one float32 operation.

    ::

        theta = angle * (pi / 180)                 cx = 0.5 * (W - 1),  cy = 0.5 * (H - 1)
        [a0 a1 a2]   [cos -sin  cx - cx*cos + cy*sin]    output pixel (x, y) reads the input
        [b0 b1 b2] = [sin  cos  cy - cx*sin - cy*cos]    at (x, y) rotated by theta about the
        [c0 c1  1]   [ 0    0   1                  ]    centre: the content turns by -theta

    Keras's exact form (scale 1, shear 0, translation 0 all enter the arithmetic):
    ``a0 = 1 * (cos + 0 * sin)``, ``a1 = 1 * (-sin + 0 * cos)``,
    ``a2 = ((0 + cx) - cx * a0) - cy * a1``, ``b0 = 1 * (0 * cos + sin)``,
    ``b1 = 1 * (0 * -sin + cos)``, ``b2 = ((0 + cy) - cx * b0) - cy * b1``.
    A positive angle turns the content counter-clockwise as displayed (rows grow downwards).
    ``trig="tf"``: cos and sin as TF computes them (``tf_cos_sin``); ``"libm"``: the C library.
    """
    angle = np.asarray(angle, F32).reshape(-1)
    theta = angle * F32(math.pi / 180.0)
    one, zero = np.ones_like(theta), np.zeros_like(theta)
    cx = F32(0.5) * (F32(width) - F32(1))
    cy = F32(0.5) * (F32(height) - F32(1))
    c, s = tf_cos_sin(theta) if trig == "tf" else libm_cos_sin(theta)
    a0 = one * (c + zero * s)
    a1 = one * (-s + zero * c)
    a2 = ((zero + cx) - cx * a0) - cy * a1
    b0 = one * (zero * c + s)
    b1 = one * (zero * -s + c)
    b2 = ((zero + cy) - cx * b0) - cy * b1
    return np.stack([a0, a1, a2, b0, b1, b2, zero, zero], axis=1)


class RandomRotation(ImageAugmentationLayer):
    """Rotate each image by a random angle, ``factor`` being a fraction of a full turn.

    ::

        factor f       -> angle_i ~ U[-f * 360, f * 360) degrees    (|f| <= 1)
        factor (a, b)  -> angle_i ~ U[a * 360, b * 360)              (sorted; (a, a): fixed)
        out_i = apply_transform(img_i, rotation_matrix(angle_i, H, W), interpolation, fill_mode)

    The lesson's ``RandomRotation(0.1)`` turns by up to 36 degrees either way. Keras's
    checks: a number in [-1, 1]; a pair is refused only when ``low > 1`` or ``high < -1``
    (``ValueError``). Corners the rotation uncovers are filled by ``fill_mode``
    ("reflect", "wrap", "constant" with ``fill_value``, "nearest").

    Examples
    --------
    A quarter turn of a 3x3 image, fixed by the degenerate factor (0.25, 0.25):

    >>> import numpy as np
    >>> from scratchopt.augment import RandomRotation
    >>> image = np.arange(9.0).reshape(1, 3, 3, 1)
    >>> RandomRotation((0.25, 0.25))(image)[0, :, :, 0].round(4).tolist()
    [[2.0, 5.0, 8.0], [1.0, 4.0, 7.0], [0.0, 3.0, 6.0]]
    """

    DRAWS = (("angle", F32),)

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0):
        self.factor = factor
        self.lower, self.upper = base_factor("factor", factor, (-1, 1))
        self.fill_mode = check_fill_mode(fill_mode)
        self.interpolation = check_interpolation(interpolation)
        self.fill_value = check_fill_value(fill_value)
        super().__init__(seed=seed)

    def draw(self, batch_size):
        """Our own draws: ``{"angle": ...}`` in degrees, uniform in [lower * 360, upper * 360)."""
        return {"angle": self.uniform(self.lower * 360.0, self.upper * 360.0, batch_size)}

    def transform(self, images, draws):
        _, height, width, _ = images.shape
        matrix = rotation_matrix(on_host(draws["angle"]), height, width)
        return apply_transform(images, namespace(images).asarray(matrix), self.interpolation,
                               self.fill_mode, self.fill_value)

    def get_config(self):
        return {"factor": self.factor, "fill_mode": self.fill_mode, "interpolation": self.interpolation,
                "seed": self.seed, "fill_value": self.fill_value}
