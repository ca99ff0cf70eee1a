"""TF's CPU floating-point environment: flush-to-zero (FTZ) and denormals-are-zero (DAZ).

TF's CPU kernels run with two bits of the x86 MXCSR register set: FTZ (a subnormal result
becomes 0) and DAZ (a subnormal input reads as 0). ``flush_denormals`` sets the same bits
for a block of NumPy code and restores the thread's mode after it; ``tf_arithmetic`` adds
NumPy's silence on inf/NaN and is what the rest of scratchopt wraps its arithmetic in.
"""

import contextlib
import ctypes
import ctypes.util
import platform
import threading

import numpy as np

#: The C math library: TF's scalar kernels call its ``powf``/``cosf``/... (``libm.py``),
#: and glibc keeps ``fegetmode``/``fesetmode`` in it too. Opened here, once.
_libm = ctypes.CDLL(ctypes.util.find_library("m"))

#: The MXCSR bits TF's CPU kernels run with: bit 15 (flush to zero) | bit 6 (denormals are
#: zero). OR them into MXCSR to flush as TF does; ``mxcsr & FTZ_DAZ`` reads a thread's mode.
FTZ_DAZ = 0x8040


class _FEMode(ctypes.Structure):  # glibc's femode_t on x86-64
    _fields_ = [("control_word", ctypes.c_ushort), ("reserved", ctypes.c_ushort),
                ("mxcsr", ctypes.c_uint)]


#: Whether this machine can flush subnormals like TF (x86-64 with glibc's fegetmode).
FTZ_SUPPORTED = platform.machine() in ("x86_64", "AMD64") and hasattr(_libm, "fesetmode")


@contextlib.contextmanager
def flush_denormals():
    """Run the block with FTZ+DAZ set for this thread, as TF's CPU kernels run.

    >>> import numpy as np
    >>> with flush_denormals():
    ...     print(np.float32(1e-30) * np.float32(1e-10))
    0.0

    Outside the block the thread's floating-point mode is exactly what it was. Where
    the platform cannot (not x86-64/glibc: see ``FTZ_SUPPORTED``), this does nothing,
    and results may differ from TF's in the subnormal range only.
    """
    if not FTZ_SUPPORTED:
        yield
        return
    saved = _FEMode()
    _libm.fegetmode(ctypes.byref(saved))
    flushing = _FEMode(saved.control_word, saved.reserved, saved.mxcsr | FTZ_DAZ)
    _libm.fesetmode(ctypes.byref(flushing))
    try:
        yield
    finally:
        _libm.fesetmode(ctypes.byref(saved))


_inside = threading.local()


@contextlib.contextmanager
def tf_arithmetic():
    """TF's CPU float environment for a block (or, as ``@tf_arithmetic()``, a function).

    Flush-to-zero as above, and inf/NaN treated as results, not NumPy warnings. Inside
    an outer ``tf_arithmetic`` block of the same thread nothing is set again (an optimizer
    step runs its scalars' ``pow`` inside its own block: that saves microseconds a step).

    >>> import numpy as np
    >>> with tf_arithmetic():
    ...     print(np.float64(1e-300) * 1e-20, np.float32(1) / np.float32(0))
    0.0 inf
    """
    if getattr(_inside, "active", False):
        yield
        return
    _inside.active = True
    try:
        with np.errstate(all="ignore"), flush_denormals():
            yield
    finally:
        _inside.active = False
