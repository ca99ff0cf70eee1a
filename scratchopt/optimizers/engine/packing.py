"""Packing: every parameter of one dtype (and device) in one flat buffer, stepped as one.

A model has many small tensors; a step that runs the rule once per tensor pays the
per-call cost (a kernel launch, a Python call) once per tensor. After
``params = opt.pack(params)`` the params are views into one buffer per dtype, with slot
buffers laid out alike, so that the engine can run the rule once over the whole buffer:
the buffer is just one more (gradient, variable, slots) triple. The rule is elementwise,
so the bits are those of the per-tensor steps.

What is per tensor stays per tensor: ``clipnorm`` and ``global_clipnorm`` act on each
gradient before the gradients are gathered into one buffer, weight decay skips excluded
params (a buffer holding one decays param by param), and a step where some param of a
dtype has no gradient steps that dtype's params one by one. With the arrays of
``opt.packed_gradients()`` (views into one gradient buffer per dtype) nothing is gathered:
the caller has written the buffer already. NumPy and CuPy params are packed alike, one
buffer per dtype and device.
"""

import dataclasses
import functools
import itertools
import operator

import numpy as np

from ...backend import namespace


@dataclasses.dataclass(eq=False)
class Pack:
    """The params of one dtype in one flat buffer, and their slots."""

    indices: list  # the params in the buffer, by index, in buffer order
    bounds: list  # (start, stop) of each in the buffer
    decays: bool  # whether weight decay applies to every param in it (else it decays param by param)
    param: np.ndarray = None
    slots: dict = dataclasses.field(default_factory=dict)  # slot name -> flat buffer (absent: unused)
    grad: np.ndarray = None  # gradient_views(): the caller writes gradients here
    grad_views: list = None
    scratch: np.ndarray = None  # where other gradients are gathered

    @property
    def size(self):
        return self.bounds[-1][1] if self.bounds else 0

    @functools.cached_property
    def segments(self):
        """``(starts, sizes)`` of the params in the buffer: an int64 array and a tuple."""
        return np.array([lo for lo, _ in self.bounds], np.int64), tuple(hi - lo for lo, hi in self.bounds)

    def copy_in(self, arrays):
        """One flat buffer holding ``arrays`` (in C order), and views of it shaped like them."""
        flat = namespace(arrays[0]).empty(self.size, arrays[0].dtype)
        views = []
        for a, (lo, hi) in zip(arrays, self.bounds):
            flat[lo:hi] = a.reshape(-1)
            views.append(flat[lo:hi].reshape(a.shape))
        return flat, views

    def gather(self, grads):
        """The gradients of this buffer's params as one flat array in its dtype."""
        if self.grad_views is not None and all(map(operator.is_, grads, self.grad_views)):
            return self.grad  # written in place by the caller: nothing to copy
        xp = namespace(self.param)
        if self.scratch is None:
            self.scratch = xp.empty(self.size, self.param.dtype)
        # Cast to the param dtype on the way, by the same conversion as ``astype``.
        return xp.concatenate([g.reshape(-1) for g in grads], out=self.scratch, casting="same_kind")


def pack(params, slots, decays):
    """``(packs, views, slots)``: ``params`` copied into one buffer per dtype and device.

    ``slots`` is each param's ``{name: array}``, ``decays`` whether weight decay applies to
    each. Returns the buffers, the views that replace the params, and each param's slots as
    views into the slot buffers (their values kept).
    """
    views = list(params)
    slots = [dict(s) for s in slots]
    packs = []
    for key in dict.fromkeys(_pack_key(p) for p in params):
        indices = [i for i, p in enumerate(params) if _pack_key(p) == key]
        ends = itertools.accumulate((params[i].size for i in indices), initial=0)
        group = Pack(indices, list(itertools.pairwise(ends)), all(decays[i] for i in indices))
        group.param, new = group.copy_in([params[i] for i in indices])
        for i, view in zip(indices, new):
            views[i] = view
        for name in slots[indices[0]]:
            group.slots[name], new = group.copy_in([slots[i][name] for i in indices])
            for i, view in zip(indices, new):
                slots[i][name] = view
        packs.append(group)
    return packs, views, slots


def gradient_views(packs, params):
    """Zeroed gradient arrays laid out like the packed ``params``, one per param (the same
    arrays on every call)."""
    views = [None] * len(params)
    for group in packs:
        if group.grad is None:
            zeros = [namespace(params[i]).zeros_like(params[i]) for i in group.indices]
            group.grad, group.grad_views = group.copy_in(zeros)
        for i, view in zip(group.indices, group.grad_views):
            views[i] = view
    return views


def views(packs, shapes, slot_names):
    """``(params, slots)`` made again from the buffers of ``packs``, for a copy of a packed
    optimizer (``Optimizer.__setstate__``): a copied view is an array of its own, so a copy
    keeps the buffers and the views' shapes (and each param's slot names) instead. The
    buffers are made writeable (an unpickled array may come back read-only)."""
    params = [None] * len(shapes)
    slots = [dict.fromkeys(names) for names in slot_names]
    for group in packs:
        group.param = _writeable(group.param)
        group.slots = {name: _writeable(a) for name, a in group.slots.items()}
        for i, (lo, hi) in zip(group.indices, group.bounds):
            params[i] = group.param[lo:hi].reshape(shapes[i])
            for name in slots[i]:
                slots[i][name] = group.slots[name][lo:hi].reshape(shapes[i])
        if group.grad is not None:
            group.grad = _writeable(group.grad)
            group.grad_views = [group.grad[lo:hi].reshape(shapes[i]) for i, (lo, hi) in zip(group.indices, group.bounds)]
    return params, slots


def _writeable(a):
    return a if getattr(a.flags, "writeable", True) else a.copy()


def _pack_key(p):
    """Params share a buffer when they share a dtype and an array module (device)."""
    return p.dtype, namespace(p).__name__
