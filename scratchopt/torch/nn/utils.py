"""``nn.utils.clip_grad_norm_`` and ``clip_grad_value_``: torch 2.13's gradient clipping.

How it differs from Keras's clipping (``scratchopt/clipping.py``)::

    Keras (optimizer arguments)                   PyTorch (these functions, called by hand)
    --------------------------------------------  ------------------------------------------------
    clipnorm=c: each tensor on its own,           clip_grad_norm_(grads, c): one global norm over
      g * c / max(||g||, c)                         all tensors, g * min(c / (total + 1e-6), 1)
    global_clipnorm=c: g * c / max(total, c)      (the same idea, another formula: the 1e-6, and
                                                    a multiply by 1.0 when no clipping is needed)
    clipvalue=v: clip(g, -v, v)                   clip_grad_value_(grads, v): the same
    no p-norms                                    norm_type: any p, inf; error_if_nonfinite

So Keras's per-tensor ``clipnorm`` is ``clip_grad_norm_([g], c)`` called once per tensor,
and ``global_clipnorm`` is ``clip_grad_norm_`` up to rounding (``scratchopt conventions``).

Bits: exact against torch 2.13.0+cpu in float32 and float64 for norm_type 1, 2 and inf
(``parity_tests/test_torch_nn.py``). Each tensor's norm is ``torch.linalg.vector_norm`` of
the flattened tensor, then the total is the same norm of the vector of norms; the orders
ATen's CPU kernel uses (measured; ``_norm2`` has the box) are reproduced here.
"""

import math

import numpy as np

from ... import checks
from ...backend import namespace
from ...numerics.fma import fma


def _norm2(x):
    """ATen's ``norm_two`` on the last dimension (vectorised path), for a flat array.

    float64: 4 lanes         acc[j] += x[i]*x[i] for i = j (mod 4), in whole blocks of 4
    float32: 8 lanes         (each a multiply then an add: no FMA in the body)
             total = ((acc[0] + acc[1]) + acc[2]) + ...      a left fold of the lanes
             tail  : total = fma(x[i], x[i], total)  float64 (the compiler fuses it)
                     total = total + x[i] * x[i]     float32
             norm  = sqrt(total)
    """
    lanes = 4 if x.dtype == np.float64 else 8
    body = x.size - x.size % lanes
    acc = np.zeros(lanes, x.dtype)
    for block in x[:body].reshape(-1, lanes):
        acc = acc + block * block
    total = acc[:1].copy()
    for j in range(1, lanes):
        total = total + acc[j:j + 1]
    for v in x[body:]:
        v = np.array([v], x.dtype)
        total = fma(v, v, total) if x.dtype == np.float64 else total + v * v
    return np.sqrt(total)[0]


def _norm(x, norm_type):
    """``torch.linalg.vector_norm(x, norm_type)`` of a flat array, in its dtype."""
    t = x.dtype.type
    if x.size == 0:
        return t(0)
    if norm_type == 2.0:
        return _norm2(x)
    a = np.abs(x)
    if norm_type == math.inf:
        return a.max()
    if norm_type == -math.inf:
        return a.min()
    if norm_type == 1.0:  # a serial sum in the dtype (np.sum's pairwise order is off)
        return np.add.accumulate(a)[-1]
    if norm_type == 0.0:
        return t(np.count_nonzero(x))
    return t(np.sum(a.astype(np.float64) ** norm_type) ** (1.0 / norm_type))  # other p: not bit-checked


def _grads(grads):
    if hasattr(grads, "dtype"):
        grads = [grads]
    grads = [g for g in grads if g is not None]
    for g in grads:
        namespace(g)
        if g.dtype not in checks.FLOAT_DTYPES:
            raise TypeError(f"`grads` must hold float32 or float64 arrays. Received: an array of dtype {g.dtype}")
    if len({g.dtype for g in grads}) > 1:
        raise TypeError("`grads` must all have one dtype (torch stacks the per-tensor norms). "
                        f"Received: {sorted(str(g.dtype) for g in grads)}")
    return grads


def get_total_norm(grads, norm_type=2.0, error_if_nonfinite=False):
    """The norm of the per-tensor norms: ``torch.nn.utils.get_total_norm``, as a 0-d array."""
    grads = _grads(grads)
    norm_type = float(norm_type)
    if not grads:
        return np.float32(0.0)
    norms = np.array([_norm(np.ravel(g), norm_type) for g in grads], grads[0].dtype)
    total = _norm(norms, norm_type)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is "
                           "non-finite, so it cannot be clipped. To disable this error and scale the "
                           "gradients by the non-finite norm anyway, set `error_if_nonfinite=False`")
    return total


def clip_grad_norm_(grads, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale ``grads`` in place so that their global ``norm_type``-norm is at most ``max_norm``.

    Returns the total norm (before clipping), as torch returns a 0-d tensor::

        total = norm([norm(g) for g in grads])
        coef  = min((1 / (total + T(1e-6))) * T(max_norm), 1)   in the dtype: torch's
                                                               max_norm / tensor is a
                                                               reciprocal, then a product
        g    *= coef                                       every tensor, even when coef == 1

    Examples
    --------
    >>> import numpy as np
    >>> from scratchopt.torch.nn.utils import clip_grad_norm_
    >>> grads = [np.array([3.0, 0.0]), np.array([4.0])]
    >>> float(clip_grad_norm_(grads, max_norm=1.0))   # sqrt(9 + 16)
    5.0
    >>> np.round(grads[0], 6), np.round(grads[1], 6)
    (array([0.6, 0. ]), array([0.8]))
    """
    grads = _grads(grads)
    checks.number("max_norm", max_norm)
    if not grads:
        return np.float32(0.0)
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    t = grads[0].dtype.type
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        coef = (t(1) / (total + t(1e-6))) * t(max_norm)  # Tensor.__rtruediv__: reciprocal, then *
    coef = coef if np.isnan(coef) else min(coef, t(1.0))
    for g in grads:
        g *= coef
    return total


def clip_grad_value_(grads, clip_value):
    """Clip every element of ``grads`` to ``[-clip_value, clip_value]``, in place.

    Examples
    --------
    >>> import numpy as np
    >>> from scratchopt.torch.nn.utils import clip_grad_value_
    >>> g = np.array([-3.0, 0.5, 2.0])
    >>> clip_grad_value_([g], 1.0); g
    array([-1. ,  0.5,  1. ])
    """
    grads = _grads(grads)
    clip_value = float(checks.number("clip_value", clip_value))
    for g in grads:
        t = g.dtype.type
        np.maximum(g, t(-clip_value), out=g)  # clamp_min then clamp_max, as torch
        np.minimum(g, t(clip_value), out=g)
