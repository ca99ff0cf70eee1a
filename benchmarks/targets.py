"""Issue 5's speed targets, read off committed benchmark results: ``python benchmarks/targets.py``.

    python benchmarks/targets.py [--cpu benchmarks/results/amd-epyc-2c] [--gpu benchmarks/results/nvidia-h200]

Prints a Markdown table: each target, the rows it compares (medians of the same run, so
the ratios are side by side on one machine), the measured ratio and whether it is met. The
documentation's benchmark page shows the same table (``[[targets]]`` in docs/hooks.py).
"""

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CPU = "benchmarks/results/amd-epyc-2c"
GPU = "benchmarks/results/nvidia-h200"


def _rows(folder):
    data = json.loads((ROOT / folder / "results.json").read_text())
    return {(r["device"], r["component"], r["size"], r["backend"]): r for r in data["rows"]}


def _t(rows, *key):
    row = rows.get(key)
    return None if row is None else row["median_s"]


def _us(t):
    return "—" if t is None else f"{t * 1e6:.4g} µs" if t < 1e-3 else f"{t * 1e3:.4g} ms"


def targets(cpu=CPU, gpu=GPU):
    """``[(target, compared, ratio or None, met or None)]`` from the two results folders."""
    out = []
    c = _rows(cpu)
    for size, limit in ((1e3, 1.2), (1e5, 1.0), (1e6, 1.0), (1e7, 1.0)):
        ours = [(b, _t(c, "cpu", "adam", size, b)) for b in ("numpy", "cpu-fused")]
        ours = [(b, t) for b, t in ours if t is not None]
        torch = _t(c, "cpu", "adam", size, "torch-fused")
        if not ours or torch is None:
            out.append((f"CPU Adam {size:.0e}: fastest ours ≤ {limit}× torch fused", "torch-fused not measured",
                        None, None))
            continue
        backend, best = min(ours, key=lambda bt: bt[1])
        out.append((f"CPU Adam {size:.0e}: fastest ours ≤ {limit}× torch fused",
                    f"{backend} {_us(best)} / torch-fused {_us(torch)}", best / torch, best / torch <= limit))
    for device, folder, backend in (("cpu", cpu, "cpu-fused"), ("gpu", gpu, "cupy-fused")):
        rows = c if folder == cpu else _rows(folder)
        many, one = _t(rows, device, "adam_1000", 1e6, backend), _t(rows, device, "adam", 1e6, backend)
        if many and one:
            out.append((f"{device.upper()} Adam, 1000 tensors of 1e6 in all ≤ 1.3× one 1e6 tensor",
                        f"{backend}: {_us(many)} / {_us(one)}", many / one, many / one <= 1.3))
    for family, names in (("optimizers", ("sgd", "sgd_momentum", "adam", "adamw", "adam_1000", "rmsprop",
                                          "rmsprop_centered")), ("layers", ("batchnorm", "layernorm", "dropout"))):
        ratios = [(row["median_s"] / _t(c, device, component, size, "keras-eager"), component, size)
                  for (device, component, size, backend), row in c.items()
                  if backend == "numpy" and component in names and _t(c, device, component, size, "keras-eager")]
        if ratios:
            worst = max(ratios)
            slower = [f"{n} {s:.0e}" for r, n, s in sorted(ratios, key=lambda x: (x[1], x[2])) if r > 1]
            out.append((f"NumPy reference never slower than Keras eager: {family} (worst of {len(ratios)})",
                        f"{worst[1]} at {worst[2]:.0e}; slower in: {', '.join(slower) or 'none'}",
                        worst[0], worst[0] <= 1.0))
    g = _rows(gpu)
    for size in (1e7, 1e8):
        row = g.get(("gpu", "adam", size, "cupy-fused"))
        if row:
            share = row["pct_copy_floor"] / 100
            out.append((f"GPU fused CuPy Adam {size:.0e}: ≥ 80% of copy bandwidth",
                        f"{row['gbps']:.0f} GB/s at {_us(row['median_s'])}", share, share >= 0.8))
    for size in (1e3, 1e5, 1e6, 1e7, 1e8):
        ours, torch = _t(g, "gpu", "adam", size, "cupy-fused"), _t(g, "gpu", "adam", size, "torch-fused")
        if ours and torch:
            out.append((f"GPU Adam {size:.0e}: fused CuPy ≤ 1.0× torch fused",
                        f"{_us(ours)} / {_us(torch)}", ours / torch, ours / torch <= 1.0))
    return out


def markdown(cpu=CPU, gpu=GPU):
    lines = ["| target | compared (medians, same run) | measured | met |", "|---|---|---|---|"]
    for target, compared, ratio, met in targets(cpu, gpu):
        value = "—" if ratio is None else f"{ratio:.0%}" if "bandwidth" in target else f"{ratio:.2f}×"
        lines.append(f"| {target} | {compared} | {value} | {'—' if met is None else 'yes' if met else '**no**'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", default=CPU)
    parser.add_argument("--gpu", default=GPU)
    args = parser.parse_args()
    print(markdown(args.cpu, args.gpu))
