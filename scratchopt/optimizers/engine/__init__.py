"""The engine: run one update rule over (gradient, variable, slots), in place.

Every optimizer step ends here, once per parameter, or once per packed buffer
(``packing.py``), which is just a bigger (gradient, variable, slots) triple::

    var, *slots = rule(g, var, *slots, **scalars)        (written back into the arrays)

The rule is one elementwise function (``adam.update``, ``sgd.update``, ``base.decay``)
and it runs one of three ways, none of them a second copy of the math:

* **array code**, the reference: the rule called on NumPy or CuPy arrays. A large NumPy
  array goes through in blocks of ``BLOCK_BYTES``, so the rule's temporaries stay in the
  CPU cache (the rule is elementwise, so blocks give the bits of one whole-array call);
* **fused on the CPU** (``fused_cpu.py``): the rule compiled by numba into one loop, when
  numba is installed (the ``fast`` extra) and the arrays are C-contiguous float32/float64;
* **fused on the GPU** (``fused_gpu.py``): the rule traced into one CUDA kernel, for CuPy
  float32/float64 arrays of one shape.

Each fused path gives its array path's bits. Which one runs is an argument, ``fused``,
decided once per step by ``wants_fused(backend, params)`` from the optimizer's ``backend``
(``"auto"``, ``"numpy"`` or ``"fused"``) and the environment variable
``SCRATCHOPT_BACKEND``; nothing here keeps per-step state.

**To watch a rule run as written** (a ``print`` or a breakpoint inside ``adam.update``),
take the array-code path: with numba installed the default compiles the rule, and code
inside a compiled rule never runs in Python. Either of::

    opt.backend = "numpy"              # this optimizer
    SCRATCHOPT_BACKEND=numpy python …  # every optimizer in the process

Examples
--------
>>> import numpy as np
>>> from scratchopt.optimizers import engine, sgd
>>> w, m = np.array([1.0, 2.0]), np.zeros(2)
>>> engine.run(sgd.update, np.array([0.5, -1.0]), w, [m],
...            {"lr": 0.1, "momentum": 0.9, "nesterov": False}, fused=False)
>>> w, m  # m = 0.9 * m - 0.1 * g;  w = w + m
(array([0.95, 2.1 ]), array([-0.05,  0.1 ]))
"""

import os

import numpy as np

from ...backend import namespace
from ..clipping_fast import GlobalNorm
from . import fused_cpu, fused_gpu, stream_copy

#: The values of ``Optimizer.backend`` and of the environment variable ``SCRATCHOPT_BACKEND``.
BACKENDS = ("auto", "numpy", "fused")
#: Bytes per array in one block of the NumPy path. Under glibc's default mmap threshold
#: (128 KiB), so the rule's temporaries are recycled by malloc instead of being mapped (and
#: page-faulted) afresh: larger blocks measured 3-6x slower at 1e7 elements in
#: ``benchmarks/block_size.py``.
BLOCK_BYTES = 1 << 16


def wants_fused(backend, params):
    """Whether a step over ``params`` may use the fused kernels, from ``backend`` (an
    optimizer's) and, when that is ``"auto"``, the environment variable SCRATCHOPT_BACKEND.

    ``"fused"`` on NumPy params without numba is an ImportError, raised before the step.
    """
    where = "opt.backend"
    if backend == "auto":
        backend = os.environ.get("SCRATCHOPT_BACKEND") or "auto"
        where = "the environment variable SCRATCHOPT_BACKEND"
    if backend not in BACKENDS:
        raise ValueError(f"{where} is {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend == "numpy":
        return False
    if backend == "fused" and not fused_cpu.available() and any(isinstance(p, np.ndarray) for p in params):
        raise ImportError(f"{where} is 'fused', which needs numba: pip install 'scratchopt[fast]'")
    return True


def run(rule, g, var, slots, scalars, fused=True, prescale=None):
    """``var, *slots = rule(g, var, *slots, **scalars)``, written back in place.

    ``slots`` are in the order of the rule's parameters (None for an unused one). With
    ``fused``, a fused kernel runs the rule where the arrays suit it (a custom rule that
    cannot compile for these inputs falls back, with one warning per kernel, and other
    inputs still try: ``fusion.Fallbacks``); otherwise, and for other arrays (a byte order
    not the machine's, say), the rule runs as array code.

    ``prescale``: the gradient's norm clipping, ``(c, d)`` for ``(g * c) / d`` or ``(s,)``
    for ``g * s`` (``clipping.norm_factors``, ``clipping.global_scale``), or a
    ``clipping_fast.GlobalNorm`` of ``g``'s segments (``s`` not computed yet). The fused
    CPU kernel does it in the rule's own call; array code first makes the clipped copy.
    """
    arrays = [g, var, *slots]
    if fused:
        path = fused_cpu if isinstance(var, np.ndarray) else fused_gpu
        if path is fused_cpu:
            if path.available() and path.eligible(arrays) and path.run(rule, arrays, scalars, prescale):
                return
        else:
            if prescale:
                g = arrays[0] = _prescaled(g, prescale)
                prescale = None
            if path.available() and path.eligible(arrays) and path.run(rule, arrays, scalars):
                return
    if prescale:
        g = arrays[0] = _prescaled(g, prescale)
    block = BLOCK_BYTES // var.itemsize
    if (var.size <= block or namespace(var) is not np
            or not all(a is None or a.flags.c_contiguous for a in arrays)):
        _write_back([var, *slots], rule(g, var, *slots, **scalars))
        return
    flat = [None if a is None else a.reshape(-1) for a in arrays]
    for start in range(0, var.size, block):
        part = [None if a is None else a[start:start + block] for a in flat]
        _write_back(part[1:], rule(*part, **scalars))


def _prescaled(g, prescale):
    """The clipped gradient, as the clipping functions compute it."""
    if isinstance(prescale, GlobalNorm):  # the factor not computed yet
        return g * prescale.scale(g.reshape(-1))
    return (g * prescale[0]) / prescale[1] if len(prescale) == 2 else g * prescale[0]


def _write_back(states, results):
    for state, new in zip(states, results):
        if state is not None:
            state[...] = new
