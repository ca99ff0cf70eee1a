"""scratchopt's own backends: the NumPy reference, the fused CPU path, CuPy, fused CuPy.

Each ``build_*`` function takes a component, its shared inputs (``components.inputs``) and
returns ``(step, method)``: ``step()`` runs one step on private copies, in place, and
``method`` says in words what is timed. A backend that cannot run says why by raising
``Unavailable``; the runner turns that into a note instead of a row.

How the optimizers' paths are chosen: ``Optimizer.backend`` (``"numpy"`` forces the
reference path, ``"fused"`` the numba kernel; see ``scratchopt/optimizers/base.py``). The
fused row checks, on its warm-up step, that the fused kernel really ran.
"""

import importlib
import os

from .components import optimizer_tensors


class Unavailable(Exception):
    """This backend cannot run this component here; the message says why."""


OURS = ("numpy", "cpu-fused", "cupy", "cupy-fused")


def fused_cpu_status():
    """``(True, None)`` when the fused CPU path can run, else ``(False, why not)``."""
    from ...optimizers.engine import fused_cpu as fused

    if not fused.available():
        return False, "numba is not installed (pip install \"scratchopt[fast]\")"
    return True, None


def fused_gpu_status():
    """``(True, None)`` when the fused CuPy kernel can run, else ``(False, why not)``."""
    from ...optimizers.engine import fused_gpu

    if not fused_gpu.available():
        return False, "CuPy sees no CUDA device"
    return True, None


def status(gpu_reason):
    """``{backend: (available, reason)}`` for our four backends on this machine."""
    fused_ok, fused_why = fused_cpu_status()
    result = {"numpy": (True, None), "cpu-fused": (fused_ok, fused_why)}
    if gpu_reason:
        result["cupy"] = result["cupy-fused"] = (False, gpu_reason)
    else:
        result["cupy"] = (True, None)
        result["cupy-fused"] = fused_gpu_status()
    return result


def build(backend, component, data):
    """``(step, method)`` for our ``backend`` on ``data`` (already on the right device)."""
    if component.family == "optimizer":
        return _optimizer(backend, component, data)
    if backend == "cupy-fused":
        raise Unavailable(f"{backend} covers the optimizers only")
    if backend == "cpu-fused" and not fused_cpu_status()[0]:
        raise Unavailable(fused_cpu_status()[1])
    step, method = (_layer if component.family == "layer" else _clipping)(component, data)
    if backend != "numpy":
        return step, method + (" (compiled: numba)" if backend == "cpu-fused" else "")
    return _reference(step), method + " with SCRATCHOPT_BACKEND=numpy (the NumPy lines and sums)"


def _reference(step):
    """``step`` on the NumPy reference path: the layers' lines and TF's sums as NumPy code."""

    def reference():
        saved = os.environ.get("SCRATCHOPT_BACKEND")
        os.environ["SCRATCHOPT_BACKEND"] = "numpy"
        try:
            return step()
        finally:
            if saved is None:
                del os.environ["SCRATCHOPT_BACKEND"]
            else:
                os.environ["SCRATCHOPT_BACKEND"] = saved

    return reference


def _copy(a):
    return a.copy()


def _optimizer(backend, component, data):
    from ... import optimizers

    name, kwargs = component.optimizer
    kwargs = dict(kwargs)
    if "inner_optimizer" in kwargs:  # LossScaleOptimizer: (class, arguments) of the wrapped one
        inner, inner_kwargs = kwargs["inner_optimizer"]
        kwargs["inner_optimizer"] = getattr(optimizers, inner)(**inner_kwargs)
    opt = getattr(optimizers, name)(**kwargs)
    params = [a.copy() for a in optimizer_tensors(component, data["w"])]
    grads = optimizer_tensors(component, data["g"])
    path = {"numpy": "numpy", "cpu-fused": "fused", "cupy": "numpy", "cupy-fused": "fused"}[backend]
    opt.backend = path
    if hasattr(opt, "inner_optimizer"):  # LossScaleOptimizer: the wrapped optimizer runs the rule
        opt.inner_optimizer.backend = path
    where = {"numpy": "NumPy path", "cpu-fused": "fused path", "cupy": "CuPy path",
             "cupy-fused": "fused CuPy path"}[backend]
    if component.tensors > 1:
        where += f", {component.tensors} tensors"
        if backend in ("cpu-fused", "cupy-fused"):
            params = opt.pack(params)  # one buffer: one kernel per step
            packed = opt.packed_gradients()
            for dst, src in zip(packed, grads):
                dst[...] = src
            grads = packed
            where += " pack()ed, gradients in packed_gradients()"
        else:
            where += " one by one"
    ran = _fused_calls()
    with ran:
        opt.apply(grads, params)  # the first step builds the slots (and compiles the kernel)
    if path == "fused" and not ran.count:
        raise Unavailable("the step did not take the fused kernel (arrays not eligible?)")
    if path == "numpy" and ran.count:
        raise RuntimeError("opt.backend = 'numpy' still ran the fused kernel")
    return (lambda: opt.apply(grads, params)), f"{name}.apply, {where}"


class _fused_calls:
    """Counts the fused kernels (``fused.run``, ``fused_gpu.run``) run inside a ``with`` block."""

    def __init__(self):
        from ...optimizers.engine import fused_cpu as fused, fused_gpu

        self.count = 0
        self.modules = (fused, fused_gpu)

    def __enter__(self):
        self.originals = [m.run for m in self.modules]
        for module, original in zip(self.modules, self.originals):
            module.run = self._counted(original)
        return self

    def _counted(self, original):
        def counted(*args, **kwargs):
            ran = original(*args, **kwargs)
            self.count += bool(ran)
            return ran

        return counted

    def __exit__(self, *exc):
        for module, original in zip(self.modules, self.originals):
            module.run = original
        return False


def _layer(component, data):
    from ... import layers

    x, dy = data["x"], data["dy"]
    layer = {"batchnorm": lambda: layers.BatchNormalization(),
             "layernorm": lambda: layers.LayerNormalization(),
             "dropout": lambda: layers.Dropout(0.5, seed=0)}[component.name]()

    def step():
        layer(x, training=True)
        return layer.backward(dy)

    return step, f"{type(layer).__name__}(x, training=True) + backward(dy)"


def _clipping(component, data):
    from ...optimizers import clipping

    grads = data["grads"]
    if component.name == "clip_norm":
        return (lambda: clipping.clip_by_norm(grads, 1.0)), "clipping.clip_by_norm(grads, 1.0)"
    return (lambda: clipping.clip_by_global_norm(grads, 1.0)), "clipping.clip_by_global_norm(grads, 1.0)"


def layers_status():
    """``(True, None)`` when ``scratchopt.layers`` imports, else ``(False, why not)``."""
    try:
        importlib.import_module("scratchopt.layers")
    except Exception as error:  # noqa: BLE001 (being written, or broken: say so instead of failing)
        return False, f"scratchopt.layers does not import: {type(error).__name__}: {error}"
    return True, None

