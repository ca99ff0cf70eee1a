"""NumPy on the CPU, CuPy on the GPU: one code path for both.

Every function in scratchopt takes its array module from the arrays it is given
(``xp = namespace(param, grad)``), the way DeZero and the Array API standard do, so
the same lines of array code run on either device and nothing moves between host and
device behind your back.

CuPy is imported lazily: only when a CuPy array shows up, or when you ask
``gpu_available()``. ``import scratchopt`` on a machine without CUDA costs nothing.
"""

import sys

import numpy

#: A square root that works on NumPy arrays, CuPy arrays (CuPy answers NumPy's ufuncs
#: through ``__array_ufunc__``) and scalars alike. The update rules call it as ``sqrt``.
sqrt = numpy.sqrt
#: Elementwise maximum and minimum, NaN-propagating like TensorFlow's; dispatched like ``sqrt``.
maximum = numpy.maximum
minimum = numpy.minimum


def _is_cupy(x):
    # Look at the type's module instead of importing CuPy: no import, no CUDA start-up.
    return type(x).__module__.split(".")[0] == "cupy"


def _kind(x):
    """'numpy', 'cupy' or None for anything else."""
    if isinstance(x, (numpy.ndarray, numpy.generic)):
        return "numpy"
    if _is_cupy(x) and hasattr(x, "__cuda_array_interface__"):
        return "cupy"
    return None


def namespace(*arrays):
    """The array module (``numpy`` or ``cupy``) that owns ``arrays``.

    >>> import numpy as np
    >>> namespace(np.zeros(3), np.ones(2)).__name__
    'numpy'

    Raises ``TypeError`` for anything that is not a NumPy or CuPy array, and for a mix
    of the two (scratchopt never copies between host and device for you).
    """
    kinds = {}
    for i, x in enumerate(arrays):
        kind = _kind(x)
        if kind is None:
            raise TypeError(
                f"expected NumPy or CuPy arrays, got {type(x).__module__}.{type(x).__name__} "
                f"at position {i}"
            )
        kinds.setdefault(kind, i)
    if len(kinds) > 1:
        raise TypeError(
            "cannot mix NumPy and CuPy arrays in one call: a NumPy array at position "
            f"{kinds['numpy']} and a CuPy array at position {kinds['cupy']}; move one "
            "of them with cupy.asarray(...) or scratchopt.backend.to_numpy(...)"
        )
    if "cupy" in kinds:
        import cupy

        return cupy
    return numpy


def to_numpy(x):
    """A NumPy copy of a NumPy or CuPy array (from the GPU: a device-to-host copy)."""
    xp = namespace(x)
    if xp is numpy:
        return numpy.array(x, copy=True)
    return xp.asnumpy(x)


def gpu_available():
    """True when CuPy is installed and sees at least one usable CUDA device. Never raises."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no CuPy, no driver, no device: all mean "no GPU"
        return False


def cupy_imported():
    """Whether CuPy has been imported in this process (it is only imported on demand)."""
    return "cupy" in sys.modules
