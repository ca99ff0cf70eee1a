"""Gradient clipping, exactly as Keras's optimizers do it.

Three ways to keep one bad batch from throwing the weights far away:

* ``clip_by_value(grads, v)`` caps every element to ``[-v, v]``, in TF's order
  ``max(min(g, v), -v)``. NaN stays NaN.
* ``clip_by_norm(grads, c)`` rescales **each tensor on its own** (Keras's ``clipnorm``
  is per variable, not global) so that its L2 norm is at most ``c``::

      norm = sqrt(sum(g * g))            (0 if the sum is 0, NaN if it is NaN)
      g    = (g * c) / max(norm, c)

  Note the ``(g * c) / c`` when the norm is already small: it is applied anyway, and is
  not always bit-identical to ``g``.
* ``clip_by_global_norm(grads, c)`` rescales all tensors by one factor, from the norm of
  everything together::

      norm  = sqrt(sum_i sum(g_i * g_i))
      scale = c * min(1 / norm, 1 / c)   (1/c in double precision, then rounded)
      scale = scale + (norm - norm)      (NaN when the norm is inf or NaN)
      g_i   = g_i * scale

The sums follow TensorFlow's order (``numerics.reduce_sum``), so the results are the same
bits as Keras's. The optimizers call these same functions (``by_value``, ``by_norm``,
``by_global_norm``: the same without the checks of ``grads``, which a step has made).

Each takes a *list* of gradients (None for a missing one) and returns a new list: a bare
array is a TypeError (``clip_by_norm([g], c)`` clips one tensor), as is anything in the
list that is not a float array or None.
"""

import numpy as np

from .. import checks, memory
from ..backend import _kind, maximum, minimum, namespace, sqrt
from ..numerics import as_dtype, reduce_sum, tf_arithmetic
from ..numerics.sums import sum_of_squares, sums_of_squares
from . import engine
from .validation import native, short_repr

_FLOATS = (np.dtype(np.float16),) + checks.FLOAT_DTYPES


def _gradients(grads):
    """``grads`` as a list, each a float array (NumPy or CuPy) or None; TypeError otherwise."""
    if _kind(grads) is not None or isinstance(grads, (str, bytes)) or not hasattr(grads, "__iter__"):
        raise TypeError("`grads` must be a list of arrays (None for a missing gradient), each clipped "
                        f"on its own: pass [g] for one tensor. Received: grads={short_repr(grads)} "
                        f"({type(grads).__name__})")
    grads = list(grads)
    for i, g in enumerate(grads):
        if g is None:
            continue
        if _kind(g) is None:
            raise TypeError(f"grads[{i}] must be a float array (NumPy or CuPy) or None, got {type(g).__name__}")
        if native(g.dtype) not in _FLOATS:
            raise TypeError(f"grads[{i}] has dtype {g.dtype}; gradients must be float16/32/64")
    return grads


def _no_half(grads, name):
    for i, g in enumerate(grads):
        if g is not None and native(g.dtype) == np.float16:
            raise TypeError(
                f"grads[{i}] is float16: {name} sums squares, and TF sums half precision in an "
                "order scratchopt does not reproduce bit for bit; cast the gradient to float32")


@tf_arithmetic()  # flush-to-zero, and inf/NaN as results, as in TF
def clip_by_value(grads, clipvalue):
    """Each element clipped to ``[-clipvalue, clipvalue]`` (``tf.clip_by_value``).

    Examples
    --------
    >>> import numpy as np
    >>> from scratchopt.clipping import clip_by_value
    >>> clip_by_value([np.array([-3.0, 0.5, 2.0]), None], 1.0)  # None passes through
    [array([-1. ,  0.5,  1. ]), None]
    """
    checks.positive("clipvalue", clipvalue)
    return by_value(_gradients(grads), clipvalue)


def by_value(grads, clipvalue):
    """``clip_by_value`` of checked gradients (the optimizers' step)."""

    def clip(g):
        v = as_dtype(clipvalue, g.dtype)
        return maximum(minimum(g, v), -v)

    return [None if g is None else clip(g) for g in grads]


@tf_arithmetic()
def clip_by_norm(grads, clipnorm):
    """Each tensor rescaled so its own L2 norm is at most ``clipnorm`` (``tf.clip_by_norm``).

    Examples
    --------
    The first tensor's norm is 5, so it is divided by 5; the second's is 0.5, under the
    limit, so it is kept (``(g * 1) / 1``): each tensor on its own.

    >>> import numpy as np
    >>> from scratchopt.clipping import clip_by_norm
    >>> clip_by_norm([np.array([3.0, 4.0]), np.array([0.3, 0.4])], 1.0)
    [array([0.6, 0.8]), array([0.3, 0.4])]
    """
    checks.positive("clipnorm", clipnorm)
    return by_norm(_gradients(grads), clipnorm)


def by_norm(grads, clipnorm, fused=None):
    """``clip_by_norm`` of checked gradients (the optimizers' step, which says whether its
    step is ``fused``; None: ``SCRATCHOPT_BACKEND`` decides)."""
    _no_half(grads, "clipnorm")

    stream = _streamed(grads)

    def clip(g):
        c, d = norm_factors(g, clipnorm)
        return _scaled_copy(g, (c, d), fused, stream)

    return [None if g is None else clip(g) for g in grads]


def _copy(g, out):
    """The identity rule, ``out = g``: run by the engine with ``prescale``, it writes the
    clipped copy, ``(g * c) / d`` or ``g * s``, in one pass (and in parallel for big ones)."""
    return (g,)


#: From this many elements on, the clipped copy goes through the engine's compiled pass; a
#: smaller one is cheaper as NumPy's line than as a kernel call (about 5 us). Measured here,
#: 4 copies ``g * s`` of 25,000 float32 elements: 10 us NumPy, 32 us compiled; of 250,000:
#: 311 us and 221 us; one ``(g * c) / d`` of 10,000: 3.2 us and 6.8 us; of 100,000: 31 us
#: and 22 us.
COMPILED_MIN_ELEMENTS = 1 << 15


def _streamed(grads):
    """Whether the copies of ``grads`` are written past the cache: when the optimizer that
    takes them would find them there no more anyway (``engine.stream_copy``)."""
    return engine.stream_copy.big(sum(g.nbytes for g in grads if g is not None))


def _scaled_copy(g, prescale, fused=None, stream=False):
    """``(g * c) / d`` for ``prescale = (c, d)``, ``g * s`` for ``(s,)``: the same operations,
    one compiled pass where the engine's fused path takes ``g`` (NumPy makes a temporary),
    with non-temporal stores when ``stream``."""
    if fused is None:
        fused = engine.wants_fused("auto", [g])
    if (fused and g.size >= COMPILED_MIN_ELEMENTS and engine.fused_cpu.available()
            and engine.fused_cpu.eligible([g, g])):
        out = memory.empty_like(g)  # a dropped copy's memory when there is one
        if stream:  # out's lines written unread
            engine.stream_copy.scaled_copy(g, out, prescale)
        else:
            engine.run(_copy, g, out, [], {}, fused=True, prescale=prescale)
        return out
    return (g * prescale[0]) / prescale[1] if len(prescale) == 2 else g * prescale[0]


def norm_factors(g, clipnorm):
    """``(c, d)`` of ``clip_by_norm``'s ``(g * c) / d``: ``c`` the limit, ``d = max(norm, c)``.

    The optimizers' fused step multiplies and divides inside the rule's own pass
    (``engine.run(..., prescale=(c, d))``), the same two operations per element, so the
    clipped copy of ``g`` is never written.
    """
    c = as_dtype(clipnorm, g.dtype)
    l2sum = sum_of_squares(g)  # reduce_sum(g * g), without the temporary when compiled
    l2norm = sqrt(l2sum) if l2sum > 0 else l2sum  # TF's "two-tap where": NaN stays NaN
    return c, maximum(l2norm, c)


def global_norm(grads):
    """``sqrt`` of the sum over tensors of each tensor's sum of squares (Keras's order).

    Examples
    --------
    >>> import numpy as np
    >>> from scratchopt.clipping import global_norm
    >>> float(global_norm([np.array([6.0]), np.array([8.0])]))  # sqrt(36 + 64)
    10.0
    >>> global_norm([None, None])  # no gradient at all: 0, in float32 (Keras's empty stack)
    np.float32(0.0)
    """
    return _global_norm(_gradients(grads))


def _global_norm(grads):
    _no_half(grads, "global_clipnorm")
    grads = [g for g in grads if g is not None]
    if not grads:
        return np.float32(0.0)
    dtypes = {native(g.dtype) for g in grads}
    if len(dtypes) > 1:
        # Keras multiplies each gradient by a scale of the promoted dtype, which TF refuses.
        raise TypeError(
            f"global_clipnorm needs gradients of one dtype, got {sorted(map(str, dtypes))} "
            "(Keras fails here too)"
        )
    try:
        xp = namespace(*grads)
    except TypeError as error:
        raise TypeError(f"grads: {error}") from None
    squared_norms = (sums_of_squares(grads) if xp is np  # each gradient's sum of squares, stacked
                     else xp.stack([xp.asarray(sum_of_squares(g)) for g in grads]))
    return sqrt(reduce_sum(squared_norms))


@tf_arithmetic()
def clip_by_global_norm(grads, global_clipnorm):
    """All tensors rescaled by one factor so their joint L2 norm is at most ``global_clipnorm``.

    Examples
    --------
    The joint norm is ``sqrt(6**2 + 8**2)`` = 10; to bring it to 5, every tensor is
    multiplied by ``5 * min(1 / 10, 1 / 5)`` = 0.5, so the direction is kept.

    >>> import numpy as np
    >>> from scratchopt.clipping import clip_by_global_norm
    >>> clip_by_global_norm([np.array([6.0]), np.array([8.0])], 5.0)
    [array([3.]), array([4.])]
    >>> clip_by_global_norm([None, None], 5.0)  # nothing to clip, as Keras
    [None, None]
    """
    checks.positive("global_clipnorm", global_clipnorm)
    return by_global_norm(_gradients(grads), global_clipnorm)


def by_global_norm(grads, global_clipnorm, fused=None):
    """``clip_by_global_norm`` of checked gradients (the optimizers' step; ``fused`` as in
    ``by_norm``)."""
    if all(g is None for g in grads):
        return list(grads)
    scale = global_scale(grads, global_clipnorm)
    stream = _streamed(grads)
    return [None if g is None else _scaled_copy(g, (scale,), fused, stream) for g in grads]


def global_scale(grads, global_clipnorm):
    """The one factor ``clip_by_global_norm`` multiplies every gradient by (the fused step
    multiplies inside the rule's pass: ``engine.run(..., prescale=(scale,))``; for one
    gradient buffer the rule's kernel computes it first, in the same compiled call:
    ``clipping_fast``)."""
    norm = _global_norm(grads)
    dtype = norm.dtype
    scale = as_dtype(global_clipnorm, dtype) * minimum(
        as_dtype(1.0, dtype) / norm, as_dtype(1.0 / global_clipnorm, dtype)
    )
    return scale + (norm - norm)
