"""The clipped-over-unclipped Adam ratio of several ``scratchopt bench`` runs, run by run.

    python benchmarks/clip_ratio_runs.py [--runs 8] [--sizes 1e5]

Issue 16 asks that an Adam step with ``global_clipnorm`` take at most 1.2x one without,
as measured in one run of ``scratchopt bench``. One run times each row with at most 200
calls, and on a shared machine a row's median moves by a few percent from run to run;
this script makes ``--runs`` such runs of the four Adam rows (``adam``,
``adam_global_clip``, ``adam_1000``, ``adam_1000_global_clip``; CPU, every backend and
peer, as the bench does by default), each in a fresh process, and prints every run's
ratios on the fused path, then their minimum, median and maximum.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

PAIRS = {"one tensor": ("adam", "adam_global_clip"), "1000 tensors": ("adam_1000", "adam_1000_global_clip")}


def one_run(sizes, out):
    """``{(label, size): clipped / unclipped}`` of one bench run (fused CPU rows)."""
    components = ",".join(name for pair in PAIRS.values() for name in pair)
    subprocess.run([sys.executable, "-m", "scratchopt", "bench", "--sizes", sizes, "--components", components,
                    "--devices", "cpu", "--no-plots", "--out", out], check=True, capture_output=True)
    rows = json.loads((Path(out) / "results.json").read_text())["rows"]
    fused = {(r["component"], r["size"]): r["median_s"] for r in rows
             if r["kind"] == "ours" and r["backend"] == "cpu-fused"}
    return {(label, size): fused[clipped, size] / fused[plain, size]
            for label, (plain, clipped) in PAIRS.items() for (name, size) in fused if name == plain}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--sizes", default="1e5", help="as scratchopt bench's --sizes")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as out:
        for k in range(args.runs):
            runs.append(one_run(args.sizes, out))
            print(f"run {k + 1}: " + ", ".join(f"{label} {size:.0e} {ratio:.2f}x"
                                               for (label, size), ratio in sorted(runs[-1].items())), flush=True)
    print()
    print("| Adam step | n | min | median | max | runs at or under 1.2x |")
    print("|---|---|---|---|---|---|")
    for key in sorted(runs[0]):
        ratios = np.array([run[key] for run in runs])
        print(f"| {key[0]} | {key[1]:.0e} | {ratios.min():.2f}x | {np.median(ratios):.2f}x | {ratios.max():.2f}x "
              f"| {int((ratios <= 1.2).sum())} of {len(ratios)} |")


if __name__ == "__main__":
    main()
