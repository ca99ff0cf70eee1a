"""Big output arrays that reuse the memory of earlier ones nobody holds any more.

Why: a new NumPy array of more than a few MiB is fresh memory from the operating system
(glibc maps every allocation over 32 MiB afresh, and most over 128 KiB at first), and the
kernel zeroes each page the first time it is written. On the 2-core development VM that
costs 2-4 ms per 40 MB with NumPy's transparent huge pages, and 10-13 ms without them,
against about 3 ms for a pass ``out = x * 2`` that fills reused memory (two runs of
``python benchmarks/fresh_pages.py``). A training loop makes the same outputs every step
(BatchNormalization's ``y`` and ``dx``, a clipped gradient) and drops last step's, so the
compiled layers and clipping ask here for their outputs, and get the memory of a dropped
one when there is one. TensorFlow and PyTorch keep freed memory for reuse the same way
(their caching allocators), and PyTorch clips in place.

When is an array dropped? The pool keeps each buffer it hands out, and gives the caller a
*view* of it. Every view, and every view of a view, holds a reference to the buffer
(NumPy's ``base``), as does anything that exports its memory (``memoryview``,
``torch.from_numpy``, ``__dlpack__``, ``.ctypes``). So when the buffer's only reference is
the pool's own (``sys.getrefcount``), nothing can reach its memory any more: it is reused.
While anything can, it is not, and a new buffer is made.

What it costs: up to ``MAX_BUFFERS`` buffers and ``MAX_BYTES`` bytes stay allocated after
their arrays are dropped (the peak of a step, not more). ``release()`` frees the free ones
now; the environment variable ``SCRATCHOPT_REUSE_OUTPUTS=0`` turns reuse off (every output
is then a new ``np.empty``). Arrays under ``MIN_BYTES`` are always new: malloc recycles
those itself. A returned array is an ordinary writable, C-contiguous ndarray, but a view
(``a.base`` is the pool's buffer), so ``a.resize(...)`` is refused, as for any view.

>>> import numpy as np
>>> from scratchopt import memory
>>> _ = memory.release()                          # start from an empty pool
>>> a = memory.empty((1000, 2000), np.float32)   # 8 MB: pooled
>>> address = a.ctypes.data
>>> b = memory.empty((1000, 2000), np.float32)   # a is still held: other memory
>>> b.ctypes.data == address
False
>>> del a
>>> memory.empty((2000, 1000), np.float32).ctypes.data == address   # a's memory again
True
"""

import math
import operator
import os
import sys
import threading

import numpy as np

#: Outputs smaller than this are always new arrays (malloc reuses small blocks itself;
#: NumPy madvises huge pages from 4 MiB on).
MIN_BYTES = 4 << 20
#: At most this many buffers, and this many bytes, are kept; beyond, an output is a new array.
MAX_BUFFERS = 8
MAX_BYTES = 4 << 30

_buffers = []  # the pool: 1-D uint8 arrays, each held only here when free
_lock = threading.Lock()


def _references_when_free():
    """What ``sys.getrefcount(_buffers[k])`` says when the list holds the only reference
    (measured, not assumed: CPython versions count the call's own reference differently)."""
    probe = [np.empty(0)]
    return sys.getrefcount(probe[0])


_FREE = _references_when_free()


def enabled():
    """Whether outputs reuse memory: unless ``SCRATCHOPT_REUSE_OUTPUTS`` is ``0``."""
    return os.environ.get("SCRATCHOPT_REUSE_OUTPUTS", "1") != "0"


def empty(shape, dtype):
    """An uninitialised C-contiguous array of ``shape`` and ``dtype``, as ``np.empty``; big
    ones in the memory of a dropped output when there is one of the same byte size."""
    try:
        shape = tuple(map(operator.index, shape if isinstance(shape, (tuple, list)) else (shape,)))
    except TypeError:
        raise TypeError(f"shape must be an int or a tuple of ints, got {shape!r}") from None
    if any(n < 0 for n in shape):
        raise ValueError(f"shape must not have a negative dimension, got {shape}")
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be a NumPy dtype, got {dtype!r}") from None
    return _empty(shape, dtype, math.prod(shape) * dtype.itemsize)


def empty_like(x):
    """``empty(x.shape, x.dtype)`` of a NumPy array ``x``."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a NumPy array, got {type(x).__name__}")
    return _empty(x.shape, x.dtype, x.nbytes)


def _empty(shape, dtype, nbytes):
    if nbytes < MIN_BYTES or not enabled():  # small: as cheap as np.empty (a size check)
        return np.empty(shape, dtype)
    with _lock:
        buffer = _take(nbytes)
    if buffer is None:
        return np.empty(shape, dtype)
    return buffer.view(dtype).reshape(shape)


def _take(nbytes):
    """A free buffer of ``nbytes`` (or a new one, kept if the pool has room), or None."""
    for k in range(len(_buffers)):
        if _buffers[k].nbytes == nbytes and _free(k):
            return _buffers[k]
    kept = sum(b.nbytes for b in _buffers)
    while len(_buffers) >= MAX_BUFFERS or kept + nbytes > MAX_BYTES:  # make room: drop a free one
        k = next((k for k in range(len(_buffers)) if _free(k)), None)
        if k is None:
            return None
        kept -= _buffers.pop(k).nbytes
    _buffers.append(np.empty(nbytes, np.uint8))
    return _buffers[-1]


def _free(k):
    return sys.getrefcount(_buffers[k]) <= _FREE


def release():
    """Drop the free buffers now (their memory goes back to the system); returns how many
    bytes. Buffers still in use stay in the pool until a later call."""
    with _lock:
        free = [k for k in range(len(_buffers)) if _free(k)]
        released = sum(_buffers[k].nbytes for k in free)
        for k in reversed(free):
            del _buffers[k]
    return released


def held():
    """``(buffers, bytes)`` the pool keeps now, in use or not."""
    with _lock:
        return len(_buffers), sum(b.nbytes for b in _buffers)
