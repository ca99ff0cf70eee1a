"""What a run leaves behind: ``results.json``, the rich table (also as ``table.txt``), PNG plots."""

import json
import math
from pathlib import Path

from .components import COMPONENTS

#: One colour per backend, the same in every plot.
COLORS = {
    "numpy": "tab:blue", "cpu-fused": "tab:orange", "cupy": "tab:blue", "cupy-fused": "tab:orange",
    "keras-eager": "tab:red", "tf-raw-op": "tab:purple", "tf-eager": "tab:pink",
    "torch-foreach": "tab:green", "torch-fused": "tab:olive", "torch-eager": "tab:cyan",
    "copy-floor": "0.55", "reachable-floor": "black",
}


def write_json(results, path):
    path = Path(path)
    path.write_text(json.dumps(results, indent=1, allow_nan=False) + "\n")
    return path


def _three_digits(value, units):
    """``value`` (in the smallest unit's scale 1) in the largest unit where it is at least 1
    *after* rounding to 3 significant digits: 0.9996 s is "1 s", never "1e+03 ms"."""
    for unit, scale in units:
        v = value / scale
        if float(f"{v:.3g}") >= 1 or scale == units[-1][1]:
            return (f"{v:.0f}" if abs(v) >= 1000 else f"{v:.3g}") + f" {unit}"
    raise AssertionError("unreachable")


def seconds(t):
    if t is None:
        return "-"
    return _three_digits(t, (("s", 1), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)))


def nbytes(b):
    if b < 1000:
        return f"{b} B"
    return _three_digits(b, (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)))


def size_label(n):
    exponent = round(math.log10(n)) if n > 0 else 0
    return f"1e{exponent}" if 10**exponent == n else f"{n:.2g}"


def tables(results):
    """One rich Table per device."""
    from rich.table import Table

    out = []
    for device in results["devices"]:
        rows = [r for r in results["rows"] if r["device"] == device]
        if not rows:
            continue
        name = results["machine"]["gpu"]["name"] if device == "gpu" else (
            f"{results['machine']['cpu_model']}, {results['machine']['usable_cores']} cores")
        table = Table(title=f"scratchopt bench: {device.upper()} ({name}), float32, one step, medians",
                      caption="±: half the interquartile range, in % of the median. % floor: the floor's "
                              "time / this time (100% = at the floor). vs best peer: this time / the fastest "
                              "peer's. cache-resident: the arrays fit in the cache as measured (copies that size run "
                              "faster than from memory: settings.cache_source), not as /sys reports it.")
        columns = ("component", "size", "backend", "median", "±", "bytes", "GB/s", "% reach. floor",
                   "% copy floor", "vs best peer", "regime")
        for column in columns:
            table.add_column(column, justify="left" if column in ("component", "backend", "regime") else "right",
                             no_wrap=True)
        group = None
        for r in rows:
            key = (r["component"], r["size"])
            if key != group and group is not None:
                table.add_section()
            first = key != group
            group = key
            iqr = (r["q3_s"] - r["q1_s"]) / r["median_s"] * 100
            ratio = r["ratio_to_best_peer"]
            style = "dim" if r["kind"] == "floor" else "bold" if r["kind"] == "ours" else None
            table.add_row(
                COMPONENTS[r["component"]].label if first else "",
                size_label(r["size"]) if first else "",
                r["backend"], seconds(r["median_s"]), f"±{iqr / 2:.0f}%", nbytes(r["bytes"]), f"{r['gbps']:.3g}",
                _pct(r["pct_reachable_floor"]), _pct(r["pct_copy_floor"]),
                "-" if ratio is None else f"{ratio:.2f}x" + (" (best)" if r["backend"] == r["best_peer"] else ""),
                r["regime"] if first else "", style=style)
        out.append(table)
    return out


def _pct(value):
    return "-" if value is None else f"{value:.0f}%"


def notes(results):
    """Plain lines about what is missing (GPU, backends, sizes), errors, and a busy machine."""
    from . import machine

    lines = []
    busy = machine.busy_warning(results["machine"]["load_average"]["before"])
    if busy:
        lines.append("warning: " + busy)
    if results["gpu_missing_reason"]:
        lines.append(f"No GPU rows: {results['gpu_missing_reason']}.")
    grouped = {}
    for u in results["unavailable"]:
        grouped.setdefault((u["device"], u["backend"], u["reason"]), []).append(u["component"])
    for (device, backend, reason), names in grouped.items():
        which = "all components" if len(names) == len(results["settings"]["components"]) else ", ".join(names)
        lines.append(f"{device} {backend}: not measured ({which}): {reason}")
    for s in results["skipped"]:
        lines.append(f"skipped {s['device']} {s['component']} at {size_label(s['size'])}: {s['reason']}")
    for e in results["errors"]:
        lines.append(f"error: {e['device']} {e['component']} {size_label(e['size'])} {e['backend']}: "
                     f"{e['error']}")
    reach = results["settings"].get("reachable_floor", {})
    for device, method in reach.items():
        lines.append(f"{device} reachable floor: {method}")
    return lines


def plots(results, folder):
    """``time_vs_size_<device>.png`` and ``pct_floor_<device>.png``; [] when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    for device in results["devices"]:
        rows = [r for r in results["rows"] if r["device"] == device]
        names = [n for n in results["settings"]["components"] if any(r["component"] == n for r in rows)]
        if not names:
            continue
        for kind in ("time", "pct"):
            cols = min(4, len(names))
            nrows = math.ceil(len(names) / cols)
            fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False)
            handles = {}
            for ax, name in zip(axes.flat, names):
                _panel(ax, [r for r in rows if r["component"] == name], kind, handles)
                ax.set_title(COMPONENTS[name].label, fontsize=9)
            for ax in list(axes.flat)[len(names):]:
                ax.axis("off")
            what = "time per step" if kind == "time" else "% of the reachable floor (100% = at the floor)"
            fig.suptitle(f"scratchopt bench, {device.upper()}: {what}; float32; grey band: cache-resident",
                         fontsize=11)
            fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=min(6, len(handles)),
                       fontsize=8, frameon=False)
            fig.tight_layout(rect=(0, 0.06, 1, 0.96))
            path = Path(folder) / f"{'time_vs_size' if kind == 'time' else 'pct_floor'}_{device}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(path)
    return written


#: The "% of floor" plot's y axis ends here at most (values above are drawn at the edge);
#: the copy floor is left out of it: at 300-960% of the reachable floor it squashed the rest.
PCT_TOP = 150


def _panel(ax, rows, kind, handles):
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    top = 0
    for backend in backends:
        if kind == "pct" and backend in ("reachable-floor", "copy-floor"):
            continue
        points = sorted((r["elements"], r["median_s"] if kind == "time" else r["pct_reachable_floor"])
                        for r in rows if r["backend"] == backend)
        points = [(x, y) for x, y in points if y is not None]
        if not points:
            continue
        xs, ys = zip(*points)
        if kind == "pct":
            top = max(top, *ys)
            ys = [min(y, PCT_TOP) for y in ys]
        floor = backend.endswith("floor")
        (line,) = ax.plot(xs, ys, "--" if floor else "-", marker="" if floor else "o", markersize=3,
                          color=COLORS.get(backend), linewidth=1.6 if backend in ("numpy", "cupy", "cpu-fused",
                                                                                  "cupy-fused") else 1.1,
                          label=backend)
        handles.setdefault(backend, line)
    cached = [r["elements"] for r in rows if r["regime"] == "cache-resident"]
    if cached:
        ax.axvspan(min(cached) / 1.5, max(cached) * 1.5, color="0.92", zorder=0)
    ax.set_xscale("log")
    if kind == "time":
        ax.set_yscale("log")
        ax.set_ylabel("seconds", fontsize=8)
    else:
        ax.axhline(100, color="black", linewidth=0.8, linestyle=":")
        ax.set_ylabel("% of floor", fontsize=8)
        ax.set_ylim(0, min(PCT_TOP, max(110, top * 1.1)))
    ax.set_xlabel("elements", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, which="major", linewidth=0.3)
