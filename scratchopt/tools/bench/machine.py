"""The machine a run describes: CPU, caches, memory, GPU, package versions, where results go."""

import datetime
import functools
import importlib.metadata
import os
import platform
import re
import sys
from pathlib import Path

GIB = 1 << 30
#: Fallback last-level cache when /sys does not say (bytes).
DEFAULT_LLC = 32 << 20


def cpu_model():
    """The ``model name`` line of /proc/cpuinfo (the platform's processor string elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def meminfo():
    """``{"MemTotal": bytes, "MemAvailable": bytes, ...}`` from /proc/meminfo ({} elsewhere)."""
    values = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                values[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    except OSError:
        pass
    return values


def available_memory():
    """Bytes the kernel says can be allocated without swapping (MemAvailable), or None."""
    return meminfo().get("MemAvailable")


def cpu_caches():
    """``{"L1d": bytes, "L2": bytes, "L3": bytes}`` for CPU 0, from /sys (empty when unknown)."""
    caches = {}
    root = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in sorted(root.glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        if kind == "Instruction":
            continue
        match = re.fullmatch(r"(\d+)([KMG]?)", size)
        if match:
            scale = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[match.group(2)]
            caches[f"L{level}{'d' if kind == 'Data' else ''}"] = int(match.group(1)) * scale
    return caches


def last_level_cache():
    caches = cpu_caches()
    return max(caches.values()) if caches else DEFAULT_LLC


#: A working set is "cache-resident" when it copies at least this many times faster than
#: the largest one measured (which is in memory): ``measured_cache_bytes``.
CACHE_SPEEDUP = 1.3


def copy_bandwidths(sizes, min_bytes=8 << 20):
    """``{working set bytes: copy bandwidth, bytes/s}``: the best of a few ``np.copyto`` runs of
    a float32 array into another (the working set is both). Best, not median: other
    processes only ever slow a run down."""
    import time

    import numpy as np

    out = {}
    for size in sizes:
        src = np.ones(max(1, size // 8), np.float32)
        dst = np.empty_like(src)
        np.copyto(dst, src)  # pages touched, caches warm
        best = float("inf")
        for _ in range(max(3, min(200, min_bytes // max(size, 1)))):
            start = time.perf_counter()
            np.copyto(dst, src)
            best = min(best, time.perf_counter() - start)
        out[size] = 2 * src.nbytes / max(best, 1e-9)
        del src, dst
    return out


def cache_boundary(bandwidths, speedup=CACHE_SPEEDUP):
    """The largest working set of the run of sizes, from the smallest up, that copies at
    least ``speedup`` times faster than memory; 0 when none does. Memory's bandwidth is the
    median of the four largest sizes (one of them alone can be off: huge pages, a
    neighbour's burst)."""
    sizes = sorted(bandwidths)
    largest = sorted(bandwidths[s] for s in sizes[-4:])
    memory = (largest[(len(largest) - 1) // 2] + largest[len(largest) // 2]) / 2
    boundary = 0
    for size in sizes[:-1]:
        if bandwidths[size] < speedup * memory:
            break
        boundary = size
    return boundary


@functools.cache
def measured_cache_bytes():
    """The working set that still runs at cache speed on this machine, measured: ``(bytes, how)``.

    /sys (``lscpu``) is not to be trusted for this: a VM can report a 480 MiB L3 of
    which a process sees a few MiB, or a cache shared with busy neighbours. So copies of
    256 KiB to 512 MiB (at most an eighth of MemAvailable) are timed, and the boundary
    is the largest that is still ``CACHE_SPEEDUP`` times as fast as
    from memory (``cache_boundary``). A few seconds, once per process.
    """
    available = available_memory() or (4 * GIB)
    top = 18
    while top < 29 and (1 << (top + 1)) <= available // 8:
        top += 1
    sizes = [1 << k for k in range(18, top + 1)]
    if len(sizes) < 3:
        return last_level_cache(), "the reported last-level cache (too little memory to measure)"
    bandwidths = copy_bandwidths(sizes)
    boundary = cache_boundary(bandwidths)
    reported = cpu_caches().get("L3") or last_level_cache()
    summary = ", ".join(f"{nbytes_label(k)}: {v / 1e9:.0f} GB/s" for k, v in sorted(bandwidths.items()))
    return boundary, (f"measured: copies of up to {nbytes_label(boundary)} ran at least {CACHE_SPEEDUP}x as "
                      f"fast as the largest, from memory ({summary}); the reported last-level cache is "
                      f"{nbytes_label(reported)}")


def nbytes_label(b):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if b >= 1 << shift:
            return f"{b / (1 << shift):.4g} {unit}"
    return f"{b} B"


def version(*distributions):
    """The installed version of the first of ``distributions`` found, else None (no import)."""
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def cupy_version():
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name == "cupy" or name.startswith("cupy-cuda"):
            return dist.version
    return None


def versions():
    return {
        "python": platform.python_version(),
        "scratchopt": version("scratchopt"),
        "numpy": version("numpy"),
        "numba": version("numba"),
        "tensorflow": version("tensorflow", "tensorflow-cpu"),
        "keras": version("keras"),
        "torch": version("torch"),
        "cupy": cupy_version(),
    }


def gpu_info():
    """``(info, None)`` for the first CUDA device CuPy sees, or ``(None, why not)``."""
    from ...backend import gpu_available

    if cupy_version() is None:
        return None, "CuPy is not installed (pip install \"scratchopt[gpu]\")"
    if not gpu_available():
        return None, "CuPy is installed but sees no usable CUDA device"
    import cupy

    device = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(device.id)
    name = props["name"]
    free, total = cupy.cuda.runtime.memGetInfo()
    return {"name": name.decode() if isinstance(name, bytes) else str(name),
            "memory_bytes": int(total), "free_bytes": int(free),
            "l2_bytes": int(props.get("l2CacheSize", 0)) or None,
            "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
            "cuda_driver": cupy.cuda.runtime.driverGetVersion()}, None


def load_average():
    """The 1, 5 and 15-minute load averages (None where the platform has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def busy_warning(load=None):
    """A warning when other processes already keep the CPU busy, else None."""
    load = load if load is not None else load_average()
    if load is None or load[0] < 0.5:
        return None
    return (f"The 1-minute load average is {load[0]:.2f} on {usable_cores()} cores: other processes are "
            "using the CPU, so timings (the multi-threaded ones most) will be slower and noisier than "
            "on an idle machine.")


def describe(gpu=None, load_before=None):
    """The ``machine`` block of the results file."""
    memory = meminfo()
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "caches": cpu_caches(),
        "mem_total_bytes": memory.get("MemTotal"),
        "mem_available_bytes": memory.get("MemAvailable"),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "gpu": gpu,
        "load_average": {"before": load_before, "after": load_average()},
    }


def now():
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def device_name(gpu=None):
    """The results folder's name: the GPU's (``nvidia-h200``), else the CPU's and its cores."""
    if gpu:
        return slug(gpu["name"])
    return f"{slug(cpu_model())}-{usable_cores()}c"


#: Where the commands write when no ``--out`` is given: a folder of the working directory
#: that the checkout's ``.gitignore`` lists, so a run never leaves untracked results in the
#: source tree. The committed results are written with an explicit ``--out
#: benchmarks/results/<device>/`` (``benchmarks/README.md``).
OUTPUT_DIR = Path("scratchopt-output")


def default_out(gpu=None):
    """``scratchopt-output/bench/<device>/`` in the working directory."""
    return OUTPUT_DIR / "bench" / device_name(gpu)
