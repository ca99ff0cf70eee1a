"""The suite's core: plan the cases, time each one, and derive every row's columns.

``run(Config(...))`` returns the results dictionary written to ``results.json`` (its
schema is in ``scratchopt/tools/bench/__init__.py``). It needs NumPy alone; each backend imports
what it needs when its first case runs, and one that cannot run says why.
"""

import dataclasses
import gc
import traceback
from dataclasses import dataclass, field

from . import floors, machine, ours, peers
from .components import COMPONENTS, inputs
from .timing import (
    FULL,
    Plan,
    cupy_event_timer,
    measure,
    perf_counter_timer,
    summary,
    torch_event_timer,
)

SCHEMA = "scratchopt.tools.bench/1"
DEFAULT_SIZES = (10**3, 10**4, 10**5, 10**6, 10**7, 10**8)
QUICK_SIZES = (10**3, 10**5, 10**7)
#: --quick leaves out the 1000-tensor Adam rows (Keras takes seconds per step there).
QUICK_COMPONENTS = tuple(c for c in COMPONENTS if c not in ("adam_1000", "adam_1000_global_clip"))
FLOORS = ("copy-floor", "reachable-floor")
BACKENDS = FLOORS + ours.OURS + peers.PEERS
#: Memory kept free besides a case's own estimate (bytes), and the estimate's margin.
RESERVE = 512 << 20
MARGIN = 1.25


@dataclass
class Config:
    sizes: tuple = DEFAULT_SIZES
    components: tuple = tuple(COMPONENTS)
    backends: tuple = BACKENDS  # which of BACKENDS to run (floors are needed for the % columns)
    plan: Plan = FULL
    devices: tuple = ("cpu", "gpu")  # "gpu" runs when CuPy sees a device
    quick: bool = False
    settings: dict = field(default_factory=dict)  # recorded as given (e.g. the command line)


def kind_of(backend):
    return "floor" if backend in FLOORS else "ours" if backend in ours.OURS else "peer"


def memory_needed(component, size):
    """Bytes a case may hold at its peak: its hungriest backend's arrays, or the copy floor's."""
    n = component.elements(size)
    biggest = max(component.peak_arrays * 4 * n, component.bytes(size))
    return int(biggest * MARGIN) + RESERVE


#: Our backends that run on each device.
DEVICE_BACKENDS = {"cpu": ("numpy", "cpu-fused"), "gpu": ("cupy", "cupy-fused")}


def availability(gpu_reason):
    """``{device: {backend: {"kind", "available", "reason"}}}`` for the backends of each device."""
    our = ours.status(gpu_reason)
    result = {}
    for device in ("cpu", "gpu"):
        entries = {b: (True, None) for b in FLOORS}
        entries.update({b: our[b] for b in DEVICE_BACKENDS[device]})
        if device == "gpu" and gpu_reason:
            entries = {b: (False, gpu_reason) for b in (*entries, *peers.PEERS)}
        else:
            entries.update(peers.status(device))
        result[device] = {b: {"kind": kind_of(b), "available": ok, "reason": why}
                          for b, (ok, why) in entries.items()}
    return result


class _Recorder:
    def __init__(self):
        self.rows, self.skipped, self.unavailable, self.errors = [], [], [], []
        self._seen = set()
        self.floors = {}  # measured floors, shared by components that move the same bytes

    def unavailable_once(self, device, component, backend, reason):
        key = (device, component, backend, reason)
        if key not in self._seen:
            self._seen.add(key)
            self.unavailable.append({"device": device, "component": component, "backend": backend,
                                     "reason": reason})


def run(config, report=None):
    """Time every case of ``config``; ``report(done, total, description)`` follows progress."""
    load_before = machine.load_average()
    gpu, gpu_reason = machine.gpu_info()
    devices = [d for d in ("cpu", "gpu") if d in config.devices and (d == "cpu" or gpu)]
    status = availability(gpu_reason)
    layers_ok, layers_why = ours.layers_status()
    components = [COMPONENTS[name] for name in config.components]
    cases = _plan(config, devices, components, status, layers_ok)
    total = sum(len(backends) for *_, backends in cases)
    record = _Recorder()
    done = 0
    if report:
        report(0, total, "starting")
    for device, component, size, skip, backends in cases:
        if skip:
            record.skipped.append({"device": device, "component": component.name, "size": size, "reason": skip})
            continue
        for backend in config.backends:
            entry = status[device].get(backend)
            if entry and not entry["available"] and _applies(backend, component):
                record.unavailable_once(device, component.name, backend, entry["reason"])
            elif entry and backend in ours.OURS and component.family == "layer" and not layers_ok:
                record.unavailable_once(device, component.name, backend, layers_why)
        xp = _array_module(device)
        try:
            data = inputs(component, size, xp)
        except MemoryError:
            record.skipped.append({"device": device, "component": component.name, "size": size,
                                   "reason": "out of memory making the inputs"})
            done += len(backends)
            continue
        label = f"{size:.0e}".replace("e+0", "e").replace("e+", "e")
        for backend in backends:
            if report:
                report(done, total, f"{device} {component.name} {label} {backend}")
            _case(record, config.plan, device, component, size, backend, data, xp)
            done += 1
        del data
        _free(device)
    if report:
        report(total, total, "done")
    rows = derive(record.rows, devices, gpu)
    return {
        "schema": SCHEMA,
        "created": machine.now(),
        "machine": machine.describe(gpu, load_before),
        "device_name": machine.device_name(gpu if "gpu" in devices else None),
        "versions": machine.versions(),
        "settings": {"quick": config.quick, "devices": list(config.devices), "sizes": list(config.sizes),
                     "components": list(config.components),
                     "backends": list(config.backends), "dtype": "float32",
                     "plan": dataclasses.asdict(config.plan),
                     "tf_intra_op_threads": peers.tf_threads(), "numba_threads": _numba_threads(),
                     "reachable_floor": {d: floors.reachable_method(d) for d in devices},
                     "cache_bytes": {d: _cache_bytes(d, gpu) for d in devices},
                     "cache_source": {d: _cache_source(d, gpu) for d in devices}, **config.settings},
        "devices": devices,
        "gpu_missing_reason": gpu_reason,
        "backends": status,
        "components": {c.name: c.to_json() for c in components},
        "rows": rows,
        "skipped": record.skipped,
        "unavailable": record.unavailable,
        "errors": record.errors,
    }


def _applies(backend, component):
    if backend in FLOORS:
        return True
    if backend in ours.OURS:
        return component.family == "optimizer" or backend in ("numpy", "cupy", "cpu-fused")
    return peers.applies(backend, component)


def _plan(config, devices, components, status, layers_ok):
    cases = []
    for device in devices:
        for component in components:
            layers_missing = component.family == "layer" and not layers_ok
            for size in config.sizes:
                backends = [b for b in config.backends if b in status[device] and status[device][b]["available"]
                            and _applies(b, component) and not (layers_missing and b in ours.OURS)]
                cases.append((device, component, size, _memory_skip(device, component, size), backends))
    return cases


def _memory_skip(device, component, size):
    need = memory_needed(component, size)
    if device == "gpu":
        import cupy

        free = cupy.cuda.runtime.memGetInfo()[0]
        where = "free GPU memory"
    else:
        free = machine.available_memory()
        where = "MemAvailable"
    if free is not None and need > free:
        return (f"needs about {need / machine.GIB:.1f} GiB (with margin), {where} is "
                f"{free / machine.GIB:.1f} GiB")
    return None


def _array_module(device):
    if device == "gpu":
        import cupy

        return cupy
    import numpy

    return numpy


def _free(device):
    gc.collect()
    if device == "gpu":
        import sys

        import cupy

        cupy.get_default_memory_pool().free_all_blocks()
        if "torch" in sys.modules:
            sys.modules["torch"].cuda.empty_cache()


def _numba_threads():
    try:
        import numba
    except ImportError:
        return None
    return numba.get_num_threads()


def _cache_bytes(device, gpu):
    """Bytes a working set may take and still be "cache-resident": the GPU's L2; on the CPU,
    measured (``machine.measured_cache_bytes``), not the cache size /sys reports."""
    if device == "gpu":
        return (gpu or {}).get("l2_bytes") or 50 << 20
    return machine.measured_cache_bytes()[0]


def _cache_source(device, gpu):
    if device == "gpu":
        return "the GPU's L2 size" if (gpu or {}).get("l2_bytes") else "assumed: 50 MiB"
    return machine.measured_cache_bytes()[1]


def _case(record, plan, device, component, size, backend, data, xp):
    """Time one (device, component, size, backend); append a row, a note or an error."""
    base = {"device": device, "component": component.name, "backend": backend, "kind": kind_of(backend),
            "size": size, "elements": component.elements(size), "dtype": "float32"}
    try:
        if backend in FLOORS:
            stats, method, note = _floor(record.floors, plan, device, component, size, backend, xp)
        else:
            if backend in ours.OURS:
                step, method = ours.build(backend, component, data)
                timer_kind = None
            else:
                step, method, timer_kind = peers.build(backend, component, data, device)
            stats, note = summary(measure(step, plan, _timer(device, timer_kind))), None
    except ours.Unavailable as why:
        record.unavailable_once(device, component.name, backend, str(why))
        return
    except Exception as error:  # noqa: BLE001 (one broken case must not end the run: it is reported)
        message = f"{type(error).__name__}: {error}"
        record.errors.append({**base, "error": message, "traceback": traceback.format_exc(limit=4)})
        return
    record.rows.append({**base, **stats, "method": method, "note": note})


def _timer(device, timer_kind):
    if device == "cpu":
        return perf_counter_timer
    if timer_kind == "torch":
        import torch

        return torch_event_timer(torch)
    import cupy

    return cupy_event_timer(cupy)


def _floor(cache, plan, device, component, size, backend, xp):
    """The fastest candidate of a floor; copy floors are shared by components moving the same bytes."""
    n = component.elements(size)
    if backend == "copy-floor":
        key = (device, "copy", component.bytes(size), plan)
    else:
        key = (device, "reachable", tuple(component.passes), n, plan)
    if key not in cache:
        if backend == "copy-floor":
            candidates = floors.copy_candidates(component.bytes(size), device, xp)
        else:
            candidates = floors.reachable_candidates(component, n, device, xp)
        timed = [(summary(measure(step, plan, _timer(device, None))), method) for method, step in candidates]
        del candidates
        timed.sort(key=lambda t: t[0]["median_s"])
        stats, method = timed[0]
        others = "; ".join(f"{m}: {s['median_s'] * 1e6:.4g} µs" for s, m in timed[1:]) or None
        cache[key] = (stats, method, f"slower: {others}" if others else None)
        _free(device)
    return cache[key]


def derive(rows, devices, gpu):
    """Add bytes, GB/s, regime, the floors' times and shares, and the ratio to the best peer."""
    groups = {}
    for row in rows:
        groups.setdefault((row["device"], row["component"], row["size"]), []).append(row)
    for (device, name, size), group in groups.items():
        component = COMPONENTS[name]
        by_backend = {r["backend"]: r for r in group}
        copy = by_backend.get("copy-floor", {}).get("median_s")
        reachable = by_backend.get("reachable-floor", {}).get("median_s")
        peer_rows = [r for r in group if r["kind"] == "peer"]
        best = min(peer_rows, key=lambda r: r["median_s"]) if peer_rows else None
        working_set = component.working_set * component.elements(size)
        regime = "cache-resident" if working_set <= _cache_bytes(device, gpu) else "memory"
        for row in group:
            t = max(row["median_s"], 1e-12)  # a GPU event pair can read 0 for the tiniest step
            row["bytes"] = component.bytes(size)
            row["gbps"] = row["bytes"] / t / 1e9
            row["working_set_bytes"] = working_set
            row["regime"] = regime
            row["copy_floor_s"] = copy
            row["reachable_floor_s"] = reachable
            row["pct_copy_floor"] = 100 * copy / t if copy else None
            row["pct_reachable_floor"] = 100 * reachable / t if reachable else None
            row["best_peer"] = best["backend"] if best else None
            row["ratio_to_best_peer"] = t / best["median_s"] if best else None
    order = {b: i for i, b in enumerate(BACKENDS)}
    names = list(COMPONENTS)
    return sorted(rows, key=lambda r: (devices.index(r["device"]), names.index(r["component"]), r["size"],
                                       order[r["backend"]]))
