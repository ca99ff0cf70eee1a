"""``global_clipnorm``'s factor for one gradient buffer, in one compiled function.

``clipping.global_scale`` is the readable reference. For the gradients of one buffer (one
whole gradient, or a packed buffer's params back to back) this module does its steps in
one numba function, in the same order, with the same roundings::

    squared = the sum of squares of each segment      (sums_fast's segment kernel: each
                                                       param a tensor of its own)
    total   = squared[0] if one segment, else Eigen's tree sum of ``squared``  (reduce_sum)
    norm    = sqrt(total)
    scale   = c * min(1 / norm, 1 / c) + (norm - norm)

Why: at 1e5 float32 elements a clipped Adam step took 1.72x an unclipped one, and most
of the difference was Python between those lines (checks, wrappers, NumPy scalar
operations), not the read of the gradients.

In an optimizer step this function is not called from Python at all: the step hands the
rule's fused kernel a ``GlobalNorm`` (what the function needs besides the gradient), and
the kernel calls it first, then runs the rule with the factor, in one compiled call
(``optimizers/engine/fused_cpu.py``, ``scaling="global"``). Where the kernel runs in
parallel, so do the sums of squares, each thread over about the part of the gradient its
part of the rule then reads. ``_step_norm`` remembers a buffer's ``GlobalNorm`` between
steps. ``scratchopt bench --components adam,adam_global_clip`` and ``python
benchmarks/issue16_summary.py`` measure the ratio, ``python benchmarks/clip_overhead.py``
where the clipped step's extra time goes; ``benchmarks/results/intel-xeon-2c/README.md``
has the runs before and after.

The bits: every operation above is one IEEE operation of the gradients' dtype (``sqrt``
and ``/`` are correctly rounded, ``min`` is ``np.minimum``'s: NaN if either is NaN), run
in the calling thread inside the step's ``tf_arithmetic`` (flush-to-zero as TF; the
parallel sums set the caller's flush bits in each worker, as ``sums_fast`` does), and
``1 / c`` and ``c`` are rounded to the dtype in Python, as the reference does.
``parity_tests/test_sums_fast.py`` compares the bits with ``clipping.global_scale``.
"""

import functools
import typing

import numpy as np

from .. import checks
from ..numerics import as_dtype, sums, sums_fast, tf_arithmetic

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def wanted(flat):
    """Whether ``flat`` can take this path: a 1-d C-contiguous NumPy float32/float64 array,
    and numba installed. The caller is an optimizer step on its fused path (its ``backend``,
    or ``SCRATCHOPT_BACKEND``, chose it), so the variable is not read again here."""
    return (type(flat) is np.ndarray and flat.dtype in _DTYPES and flat.ndim == 1 and flat.flags.c_contiguous
            and sums_fast.available())


def global_scale(flat, starts, sizes, global_clipnorm):
    """``clipping.global_scale`` of the gradients ``flat[a:a + n]`` for ``a, n`` in
    ``zip(starts, sizes)``, in that order: a 0-d scalar of ``flat``'s dtype.

    ``flat`` must be ``wanted``, with at least one segment, every one inside it, and
    ``global_clipnorm`` a positive number: a TypeError or ValueError otherwise (an
    ImportError without numba), before anything is read. (An optimizer step skips these
    checks, its buffer's segments being inside by construction: ``_step_norm``.)

    >>> import numpy as np
    >>> float(global_scale(np.array([3.0, 4.0, 12.0]), [0, 2], (2, 1), 6.5))  # norm 13
    0.5
    """
    if not sums_fast.available():
        raise ImportError("clipping_fast needs numba: pip install 'scratchopt[fast]'")
    if not wanted(flat):
        raise TypeError(f"flat must be a 1-d C-contiguous NumPy float32 or float64 array, got "
                        f"{type(flat).__name__} {getattr(flat, 'dtype', '')} shape {getattr(flat, 'shape', None)}")
    checks.positive("global_clipnorm", global_clipnorm)
    starts, sizes = np.asarray(starts, np.int64), tuple(sizes)
    if not sizes:
        raise ValueError("sizes must name at least one segment, got none")
    sums._check_segments(flat, starts, sums._as_counts(sizes))
    with tf_arithmetic():
        return _global_norm(flat, starts, sizes, global_clipnorm).scale(flat)


class GlobalNorm(typing.NamedTuple):
    """What ``_kernel``'s function needs, after ``flat`` and ``chunks``, for the factor of
    one buffer's segments. An optimizer step hands it to the rule's fused kernel
    (``engine.run(..., prescale=GlobalNorm(...))``), which computes the factor first, in the
    same compiled call, and then scales each gradient element as it reads it; any other
    path calls ``scale``."""

    layout: np.ndarray  # _layout: the segments' starts and their trees' plans, in one int64 array
    c: np.generic  # global_clipnorm in the dtype
    inverse: np.generic  # 1 / global_clipnorm (in double), then in the dtype

    @property
    def starts(self):
        """Each segment's first element in ``flat``."""
        return _piece(self.layout, 0)

    @property
    def sizes(self):
        """Each segment's length."""
        return _piece(self.layout, 1)

    def scale(self, flat):
        """The factor of ``flat``'s segments: a scalar of its dtype (inside ``tf_arithmetic``)."""
        chunks = sums_fast._chunks(flat.size, max(1, _piece(self.layout, 3).size))  # at most a chunk a leaf
        return flat.dtype.type(_kernel(sums_fast._packet_size(flat.dtype), chunks > 1)(flat, chunks, *self))


_PIECES = 17  # starts, the 12 arrays of _segment_plans, the 4 of the total's _plan
_HEAD = _PIECES + 1 + 3  # where each piece lies, then width, the columns of lefts, root


def _layout(starts, plans, total_plan):
    """``starts``, the int64 arrays of ``plans`` (``sums_fast._segment_plans``; its 2-d
    ``lefts`` and ``rights`` flattened) and those of ``total_plan`` (``sums_fast._plan``), in
    one int64 array: first where piece k lies (``layout[k]:layout[k + 1]``), then the
    plans' ``width``, the columns of ``lefts`` and ``rights``, the total's ``root``, then
    the pieces. numba unboxes each array argument of a call, one by one: this is one
    argument instead of eighteen."""
    sizes, plan, leaf_segment, offsets, lengths, first, lefts, rights, inners, roots, width, leaf_out, rest = plans
    total_offsets, total_lengths, total_lefts, total_rights, root = total_plan
    pieces = [starts, sizes, plan, leaf_segment, offsets, lengths, first, lefts.ravel(), rights.ravel(), inners,
              roots, leaf_out, rest, total_offsets, total_lengths, total_lefts, total_rights]
    bounds = np.cumsum([_HEAD] + [len(piece) for piece in pieces])
    return np.concatenate([bounds, [width, lefts.shape[1], root], *pieces]).astype(np.int64)


def _piece(layout, k):
    return layout[layout[k]:layout[k + 1]]


def _global_norm(flat, starts, sizes, global_clipnorm):
    """The ``GlobalNorm`` of ``flat``'s segments, unchecked (``starts`` an int64 array,
    ``sizes`` a tuple)."""
    packet = sums_fast._packet_size(flat.dtype)
    try:
        c, inverse = _constants(global_clipnorm, flat.dtype)
    except TypeError:  # unhashable (a 0-d array assigned to ``opt.global_clipnorm``): not cached
        c, inverse = _constants.__wrapped__(global_clipnorm, flat.dtype)
    layout = _layout(starts, sums_fast._segment_plans(sizes, packet), sums_fast._plan(0, len(sizes), packet))
    return GlobalNorm(layout, c, inverse)


def _step_norm(flat, starts, sizes, global_clipnorm):
    """``_global_norm``, remembered for the next step with the same ``starts`` and
    ``sizes`` objects (a pack's ``segments``, or ``_FIRST`` and ``_whole(n)``), dtype and
    number ``global_clipnorm``. Plans and constants do not change between steps, and
    looking them up again (hashing a 1000-tuple of sizes, say) costs more than a step's
    norm of a small buffer. The entry holds ``starts`` and ``sizes``, so that their ids
    are not reused while it lives."""
    hit = _remembered.get(id(sizes))
    if (hit is not None and hit[0] is starts and hit[1] is sizes and hit[2] == flat.dtype
            and type(hit[3]) is type(global_clipnorm) and hit[3] == global_clipnorm):
        return hit[4]
    norm = _global_norm(flat, starts, sizes, global_clipnorm)
    if isinstance(global_clipnorm, (int, float, np.number)):  # immutable: a 0-d array is not
        if len(_remembered) >= 64:
            _remembered.clear()
        _remembered[id(sizes)] = (starts, sizes, flat.dtype, global_clipnorm, norm)
    return norm


_remembered = {}  # id(sizes) -> (starts, sizes, dtype, global_clipnorm, GlobalNorm)


@functools.lru_cache(maxsize=256)
def _whole(n):
    """``(n,)``, the same tuple for the same ``n``: the sizes of a gradient that is one
    segment of its own, which ``_step_norm`` then finds by identity."""
    return (n,)


@functools.lru_cache(maxsize=64)
def _constants(global_clipnorm, dtype):
    """``c`` and ``1 / c`` as ``clipping.global_scale`` rounds them (``1 / c`` in double)."""
    return as_dtype(global_clipnorm, dtype), as_dtype(1.0 / global_clipnorm, dtype)


@functools.cache
def _kernel(packet, parallel):
    import numba

    options = {"fastmath": False, "error_model": "numpy", "nogil": True}
    squares = sums_fast._kernels(packet, "square")["segments"][parallel]
    tree = sums_fast._kernels(packet, "none")["tree_serial"]

    piece = numba.njit(inline="always", **options)(_piece)

    @numba.njit(**options)
    def global_scale(flat, chunks, layout, c, inverse):
        """The factor of ``flat``'s segments (``GlobalNorm``'s fields after ``chunks``),
        their leaves in ``chunks`` parallel chunks when ``parallel``."""
        width, columns, root = layout[_PIECES + 1], layout[_PIECES + 2], layout[_PIECES + 3]
        starts, sizes = piece(layout, 0), piece(layout, 1)
        squared = np.empty(sizes.size, flat.dtype)
        squares(flat, starts, sizes, piece(layout, 2), piece(layout, 3), piece(layout, 4), piece(layout, 5),
                piece(layout, 6), piece(layout, 7).reshape((-1, columns)), piece(layout, 8).reshape((-1, columns)),
                piece(layout, 9), piece(layout, 10), width, piece(layout, 11), piece(layout, 12), squared, chunks)
        if squared.size == 1:  # nothing to add up: TF copies the element
            total = squared[0]
        else:
            offsets, lefts = piece(layout, 13), piece(layout, 15)
            partial = np.empty(offsets.size + lefts.size, flat.dtype)
            acc = np.empty(2 * packet, flat.dtype)
            total = tree(squared, 0, offsets, piece(layout, 14), lefts, piece(layout, 16), root, partial, acc)
        norm = np.sqrt(total)
        one_over = flat.dtype.type(1) / norm
        smaller = one_over if (one_over <= inverse or np.isnan(one_over)) else inverse  # np.minimum
        return c * smaller + (norm - norm)

    return global_scale
