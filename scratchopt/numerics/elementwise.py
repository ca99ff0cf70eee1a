"""``tf.math.rsqrt`` and its gradient ``RsqrtGrad`` (what BatchNorm and LayerNorm need), and
``tf.clip_by_value`` with its ties (what Ftrl needs).

Eigen evaluates an elementwise op in whole packets (P = 8 float32 / 4 float64) and then the
last ``size % P`` elements one at a time, and the two parts need not compute alike: TF's
float32 ``rsqrt`` uses the CPU's approximate instruction on packets, and ``RsqrtGrad``
groups its products differently on packets and on the tail.
"""

import numpy as np

from ..backend import namespace
from .fpenv import tf_arithmetic
from .sums import _packet_size


@tf_arithmetic()
def rsqrt(x):
    """``tf.math.rsqrt``: ``1 / sqrt(x)``, elementwise.

    Exact for float64, and for float32 on the last ``size % 8`` elements. TF computes the
    float32 elements in whole 8-lane packets with the CPU's approximate ``rsqrt``
    instruction and one Newton step, a few ULP from ``1 / sqrt`` and different between
    CPU vendors: those cannot be reproduced from NumPy (KERAS_SEMANTICS §0.5).

    >>> import numpy as np
    >>> rsqrt(np.array([4.0, 0.25, 0.0])).tolist()
    [0.5, 2.0, inf]
    """
    one = x.dtype.type(1)
    return one / namespace(x).sqrt(x)


@tf_arithmetic()
def rsqrt_grad(r, dr):
    """TF's ``RsqrtGrad(r, dr)``, the gradient of ``r = rsqrt(v)``: ``-0.5 * dr * r**3``.

    Eigen computes it in two forms: whole packets (the first ``size - size % P`` elements,
    P = 8 float32 / 4 float64) as ``(-0.5 * (r*r)) * (r*dr)``, with each product taken as 0
    when its right factor is 0; the tail as ``(-0.5 * (dr*r)) * (r*r)``, 0 where ``dr == 0``.
    They differ only in how 0, inf and flushed values come out.

    >>> import numpy as np
    >>> rsqrt_grad(np.array([0.5, 2.0]), np.array([1.0, 0.0])).tolist()
    [-0.0625, 0.0]
    """
    xp = namespace(r)
    t = r.dtype.type
    zero = xp.zeros_like(r)
    packed_rr = (r * r) * t(-0.5)
    r_dr = xp.where(dr == 0, zero, r * dr)
    packed = xp.where(r_dr == 0, zero, packed_rr * r_dr)
    tail = xp.where(dr == 0, zero, (t(-0.5) * (dr * r)) * (r * r))
    packet = _packet_size(r.dtype)
    flat = xp.arange(r.size).reshape(r.shape)
    return xp.where(flat < r.size - r.size % packet, packed, tail)


@tf_arithmetic()
def clip_by_value(x, lo, hi):
    """``tf.clip_by_value(x, lo, hi)`` on the CPU, ties included: ``tf.minimum(x, hi)``, then
    ``tf.maximum(., lo)``, each Eigen's NaN-propagating min/max.

    ::

        whole packets (the first n - n % P elements of the flat array, P = 8 float32 / 4 float64):
            min: x if x < hi else hi        max: m if m > lo else lo       (a tie gives the bound)
        the last n % P elements (Eigen's scalar loop):
            min: hi if hi < x else x        max: lo if lo > m else m       (a tie gives x)
        NaN x stays NaN

    The two differ only on a tie: the sign of a zero, or a subnormal, which the min/max
    instructions read and return as a zero of its sign (DAZ, as in TF's kernels): clipping
    0 to a subnormal ``[-l1, l1]`` gives -0 on whole packets and +0 on the tail (Keras's
    ``Ftrl``).

    >>> import numpy as np
    >>> x = np.zeros(6)
    >>> tiny = np.finfo(np.float64).tiny / 2  # a subnormal bound
    >>> np.signbit(clip_by_value(x, -tiny, tiny)).tolist()  # one packet of 4, then 2 one by one
    [True, True, True, True, False, False]
    """
    flat = np.ascontiguousarray(x).reshape(-1)
    # DAZ: the min/max instructions read a subnormal operand, and return it, as a zero of its sign
    zero = flat.dtype.type(0)
    flat = np.where(np.abs(flat) < np.finfo(flat.dtype).tiny, np.copysign(zero, flat), flat)
    lo, hi = (np.copysign(zero, b) if abs(b) < np.finfo(flat.dtype).tiny else b for b in map(flat.dtype.type, (lo, hi)))
    packet = np.arange(flat.size) < flat.size - flat.size % _packet_size(flat.dtype)
    nan = np.isnan(flat)
    m = np.where(packet, np.where(flat < hi, flat, hi), np.where(hi < flat, hi, flat))
    out = np.where(packet, np.where(m > lo, m, lo), np.where(lo > m, lo, m))
    return np.where(nan, flat, out).reshape(np.shape(x))
