"""The two floors every row is compared with, measured in the same run, size and device.

* **copy floor**: the time to stream-copy as many bytes as the component's model moves
  (half read, half written), with the fastest copy at hand: ``np.copyto`` and a parallel
  numba copy on the CPU, ``cupy.copyto`` and a device-to-device ``cudaMemcpy`` on a GPU.
  A copy also pays the write-allocate read of its destination, which an in-place update
  does not, so in-place kernels can beat it (about 2x here).
* **reachable floor**: a minimal kernel with the component's own memory pattern (its
  ``passes``): for Adam one loop that reads 4 float32 arrays and writes 3 of them back in
  place, doing one add per element. On the CPU it is numba (``fastmath`` so reductions
  vectorise; serial and parallel, the faster counts); without numba it falls back to NumPy
  ufuncs, which make one pass per written array and so sit *above* the true floor (rows say
  which). On a GPU it is a generated ``cupy.ElementwiseKernel`` / ``ReductionKernel``.

Each ``*_candidates`` function returns ``[(method, step), ...]``; the runner times them all
and keeps the fastest.
"""

import functools

import numpy as np

from .components import F32


def _numba():
    try:
        import numba
    except ImportError:
        return None
    return numba


def reachable_method(device):
    """How the reachable floor is measured on ``device`` (said in the results)."""
    if device == "gpu":
        return "generated CuPy ElementwiseKernel/ReductionKernel"
    numba = _numba()
    if numba is None:
        return "NumPy ufuncs (numba not installed: one pass per written array, above the true floor)"
    return f"numba loop (serial or {numba.get_num_threads()}-thread parallel, the faster)"


# --- copy -----------------------------------------------------------------------------------


def copy_candidates(nbytes, device, xp=np):
    """Copies of ``nbytes / 2`` bytes of float32 (so ``nbytes`` move: half read, half written)."""
    n = max(1, nbytes // (2 * F32))
    src = xp.ones(n, np.float32)
    dst = xp.empty_like(src)
    if device == "gpu":
        return [("cupy.copyto", lambda: xp.copyto(dst, src)),
                ("cudaMemcpy device to device",
                 lambda: dst.data.copy_from_device_async(src.data, src.nbytes))]
    candidates = [("np.copyto (1 thread)", lambda: np.copyto(dst, src))]
    numba = _numba()
    if numba is not None:
        kernel = _numba_copy()
        candidates.append((f"numba parallel copy ({numba.get_num_threads()} threads)",
                           lambda: kernel(dst, src)))
    return candidates


@functools.cache
def _numba_copy():
    import numba

    @numba.njit(parallel=True, nogil=True)
    def copy(dst, src):
        for i in numba.prange(src.size):
            dst[i] = src[i]

    return copy


# --- reachable ------------------------------------------------------------------------------


def _arrays(component, n, xp):
    """Per pass, its read and out-of-place write arrays, shared between passes as far as they can be."""
    pools = {}

    def take(itemsize, index):
        pool = pools.setdefault(itemsize, [])
        while len(pool) <= index:
            dtype = np.float32 if itemsize == F32 else np.uint8
            pool.append(xp.ones(n, dtype) if itemsize == F32 else xp.zeros(n, dtype))
        return pool[index]

    plan = []
    for p in component.passes:
        used = {}  # per element size, how many of the pool this pass has taken
        arrays = []
        for itemsize in (*p.reads, *p.writes[p.in_place:]):
            arrays.append(take(itemsize, used.get(itemsize, 0)))
            used[itemsize] = used.get(itemsize, 0) + 1
        plan.append((p, arrays[:len(p.reads)], arrays[len(p.reads):]))
    return plan


def reachable_candidates(component, n, device, xp=np):
    """The component's memory pattern over ``n`` elements, as the fastest minimal kernels."""
    plan = _arrays(component, n, xp)
    if device == "gpu":
        kernels = [(_cupy_kernel(p), reads, outs) for p, reads, outs in plan]
        return [(reachable_method("gpu"), _sequence(kernels))]
    numba = _numba()
    if numba is None:
        return [(reachable_method("cpu"), lambda: [_numpy_pass(p, r, o) for p, r, o in plan])]
    candidates = []
    for parallel in (False, True):
        kernels = [(_numba_kernel(_signature(p), parallel), reads, outs) for p, reads, outs in plan]
        label = f"numba {'parallel' if parallel else 'serial'} loop"
        if parallel:
            label += f" ({numba.get_num_threads()} threads)"
        candidates.append((label, _sequence(kernels)))
    return candidates


def _sequence(kernels):
    def step():
        for kernel, reads, outs in kernels:
            kernel(*reads, *outs)

    return step


def _signature(p):
    return (p.reads, p.writes, p.in_place, p.reduce)


def _names(p):
    reads = [f"a{k}" for k in range(len(p.reads))]
    outs = [f"o{k}" for k in range(len(p.writes) - p.in_place)]
    # the first in_place writes go to the last in_place reads; the rest to the outs
    targets = reads[len(reads) - p.in_place:] + outs
    return reads, outs, targets


def kernel_source(p, language="python"):
    """The minimal loop body of pass ``p``: sum what is read, write it (scaled) everywhere."""
    reads, outs, targets = _names(p)
    if language == "python":
        value = [f"a{k}[i]" if size == F32 else f"np.float32(a{k}[i])" for k, size in enumerate(p.reads)]
        if p.reduce:
            product = " * ".join(value) if len(value) > 1 else f"{value[0]} * {value[0]}"
            return (f"def kernel({', '.join(reads)}):\n"
                    "    acc = np.float32(0)\n"
                    "    for i in prange(a0.size):\n"
                    f"        acc += {product}\n"
                    "    return acc\n")
        lines = [f"def kernel({', '.join(reads + outs)}):",
                 f"    scale = np.float32({1 / len(reads)!r})",
                 "    for i in prange(a0.size):",
                 f"        s = ({' + '.join(value)}) * scale"]
        for name, size in zip(targets, p.writes):
            lines.append(f"        {name}[i] = s" if size == F32 else f"        {name}[i] = np.uint8(s > 0)")
        return "\n".join(lines) + "\n"
    # CUDA C for cupy.ElementwiseKernel: (in_params, out_params, body)
    value = [f"(float){r}" for r in reads]
    written = set(targets)
    ins = ", ".join(f"{'float32' if s == F32 else 'uint8'} {r}" for r, s in zip(reads, p.reads)
                    if r not in written)
    out_params = ", ".join(f"{'float32' if s == F32 else 'uint8'} {t}" for t, s in zip(targets, p.writes))
    body = [f"float s = ({' + '.join(value)}) * {1 / len(reads)!r}f;"]
    body += [f"{t} = s;" if s == F32 else f"{t} = s > 0.0f;" for t, s in zip(targets, p.writes)]
    return ins, out_params, "\n".join(body)


@functools.cache
def _numba_kernel(signature, parallel):
    import numba

    from .components import Pass

    p = Pass(*signature)
    namespace = {"np": np, "prange": numba.prange}
    exec(compile(kernel_source(p), f"<reachable floor {signature}>", "exec"), namespace)  # noqa: S102
    return numba.njit(parallel=parallel, fastmath=True, error_model="numpy", nogil=True)(namespace["kernel"])


def _numpy_pass(p, reads, outs):
    """Without numba: one ufunc per written array (more traffic than the true floor)."""
    floats = [a for a, s in zip(reads, p.reads) if s == F32]
    first, last = floats[0], floats[-1]
    if p.reduce:
        return np.vdot(first, last)
    targets = reads[len(reads) - p.in_place:] + outs
    for target, size in zip(targets, p.writes):
        if size == F32:
            np.add(first if target is not first else last, target, out=target)
        else:
            np.greater(first, 0, out=target.view(np.bool_))
    return None


_cupy_kernels = {}


def _cupy_kernel(p):
    import cupy

    key = _signature(p)
    if key not in _cupy_kernels:
        name = f"scratchopt_floor_{len(_cupy_kernels)}"
        reads = _names(p)[0]
        if p.reduce:
            params = ", ".join(f"float32 {r}" for r in reads)
            product = " * ".join(reads) if len(reads) > 1 else f"{reads[0]} * {reads[0]}"
            _cupy_kernels[key] = cupy.ReductionKernel(params, "float32 y", product, "a + b", "y = a",
                                                       "0", name)
        else:
            ins, outs, body = kernel_source(p, "cuda")
            _cupy_kernels[key] = cupy.ElementwiseKernel(ins, outs, body, name)
    return _cupy_kernels[key]
