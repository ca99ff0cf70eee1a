"""Issue 16's rows of a ``scratchopt bench`` results.json, as one Markdown table.

    python benchmarks/issue16_summary.py benchmarks/results/intel-xeon-2c/issue16_cpu/results.json

For each component and size: the NumPy reference (``numpy``: ``SCRATCHOPT_BACKEND=numpy``
for the layers and clipping), the compiled path (``cpu-fused``), the fastest peer, and
compiled / that peer. Then the issue's other CPU target: a clipped Adam step over an
unclipped one, on the compiled path, one tensor and 1000, from the same run.
"""

import json
import sys

NAMES = {"batchnorm": "BatchNormalization fwd+bwd", "layernorm": "LayerNormalization fwd+bwd",
         "dropout": "Dropout(0.5) fwd+bwd", "clip_norm": "clip_by_norm",
         "clip_global_norm": "clip_by_global_norm (4 tensors)", "adam": "Adam",
         "adam_global_clip": "Adam global_clipnorm=1", "adam_1000": "Adam, 1000 tensors",
         "adam_1000_global_clip": "Adam global_clipnorm=1, 1000 tensors"}


def ms(seconds):
    return f"{seconds * 1e3:.3g} ms"


def main(path):
    rows = json.load(open(path))["rows"]
    print("| component | n | NumPy reference | compiled | best peer | compiled / peer |")
    print("|---|---|---|---|---|---|")
    for name, label in NAMES.items():
        for size in sorted({r["size"] for r in rows if r["component"] == name}):
            here = [r for r in rows if r["component"] == name and r["size"] == size]
            ours = {r["backend"]: r for r in here if r["kind"] == "ours"}
            peers = [r for r in here if r["kind"] == "peer"]
            if "cpu-fused" not in ours or not peers:
                continue
            peer = min(peers, key=lambda r: r["median_s"])
            fused = ours["cpu-fused"]["median_s"]
            reference = ms(ours["numpy"]["median_s"]) if "numpy" in ours else "-"
            print(f"| {label} | {size:.0e} | {reference} | {ms(fused)} | {peer['backend']} {ms(peer['median_s'])} "
                  f"| {fused / peer['median_s']:.2f}x |")
    fused = {(r["component"], r["size"]): r["median_s"] for r in rows
             if r["kind"] == "ours" and r["backend"] == "cpu-fused"}
    pairs = [(plain, f"{plain}_global_clip") for plain in ("adam", "adam_1000")]
    if any(key[0] == clipped for key in fused for _, clipped in pairs):
        print()
        print("| Adam step | n | unclipped | global_clipnorm=1 | clipped / unclipped |")
        print("|---|---|---|---|---|")
        for plain, clipped in pairs:
            for size in sorted({n for c, n in fused if c == clipped}):
                if (plain, size) in fused:
                    a, b = fused[plain, size], fused[clipped, size]
                    print(f"| {NAMES[plain]} | {size:.0e} | {ms(a)} | {ms(b)} | {b / a:.2f}x |")


if __name__ == "__main__":
    main(sys.argv[1])
