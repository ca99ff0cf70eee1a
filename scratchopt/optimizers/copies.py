"""Copies of an optimizer (``copy.deepcopy``, ``pickle``): a copy steps its own arrays.

A built optimizer holds its params, slots and packed buffers. A copy holds copies of all
of them, and so it steps *its own* params: ``copy.apply([g])`` steps the copy's arrays
(``copy.params``), and ``copy.apply([g], [w])`` with the original's ``w`` is a ValueError
(the copy was built for other arrays), never a step that silently changes nothing. The
tables keyed by ``id()`` are made again for the copy's arrays, and views into packed
buffers are made again into the copy's buffers.
"""

import dataclasses


from . import validation
from .engine import packing


def getstate(self):
    """What a copy holds: everything, but the views into packed buffers as the buffers
    (``setstate`` makes the views again) and no id-keyed tables (ids are per object)."""
    state = dict(self.__dict__)
    state.pop("_index", None)
    state.pop("_owners", None)
    if self._packs:
        state["_params"] = [p.shape for p in self._params]
        state["_slots"] = [list(s) for s in self._slots]
        state["_packs"] = [dataclasses.replace(pack, grad_views=None, scratch=None) for pack in self._packs]
        state["_packed_grads"] = self._packed_grads is not None
    return state


def setstate(self, state):
    """A copy steps its own arrays: its params, slots and packed views are its own, and
    its id-keyed tables are made for them (the original's arrays are unknown to it)."""
    self.__dict__.update(state)
    if not self.built:
        return
    if self._packs:
        self._params, self._slots = packing.views(self._packs, self._params, self._slots)
        self._packed_grads = packing.gradient_views(self._packs, self._params) if self._packed_grads else None
    for key in ("_averages", "_accumulators"):
        if getattr(self, key) is not None:
            setattr(self, key, [_writeable(a) for a in getattr(self, key)])
    self._slots = [{k: _writeable(a) for k, a in s.items()} for s in self._slots]
    self._index = {id(p): i for i, p in enumerate(self._params)}
    self._owners = validation.memory_owners(self._params)


def _writeable(a):
    """``a``, or a writeable copy of it (an unpickled array may come back read-only)."""
    return a if getattr(a.flags, "writeable", True) else a.copy()
