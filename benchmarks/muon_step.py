"""One Muon step on one matrix: scratchopt against torch.optim.Muon and Keras's Muon, side by side.

    python benchmarks/muon_step.py [--sides 32 100 316 1000] [--repeats 7] [--out DIR]

Muon is not a row of ``scratchopt bench``: its 2-D step is Newton-Schulz matrix products
(``ns_steps`` x 3 matmuls of the matrix's size), compute-bound, which the bench's bytes
model does not bound. So this script times it on its own, float32, one square ``side x
side`` matrix (1e3 to 1e6 elements), every implementation in this one process, each
warmed up by one step (numba, TF and torch compile or allocate there) and then timed
``--repeats`` times (``timing.median_ms``); the table gives the medians and the ratio to the
fastest peer. The implementations:

* ``scratchopt``: ``Muon(learning_rate=0.01)``, the default path (float32's products are
  NumPy's ``@``, the BLAS NumPy links; its AdamW/decay lines are the engine's);
* ``scratchopt float64 (exact order)``: ``rms_rate=None`` on a float64 matrix, whose
  products follow TF's Eigen order (``numerics.matmul``): the cost of exactness;
* ``keras-eager``: ``keras.optimizers.Muon(learning_rate=0.01)``, ``apply`` on a
  ``keras.Variable`` (TF backend, eager);
* ``torch``: ``torch.optim.Muon(lr=0.01)`` (torch's own Muon: the same quintic Newton-Schulz
  with Keras's coefficients, its own learning-rate adjustment, and its products in
  **bfloat16**: ``_zeropower_via_newtonschulz`` starts with ``grad.bfloat16()``, as Keller
  Jordan's reference does; on a CPU with AVX512-BF16/AMX that is several times float32's
  speed, and its result is not float32's).

The products are the same; the scalar conventions differ (the docs' Muon page), which
does not change the cost. So scratchopt against Keras is like against like (float32), and
against torch float32 against bfloat16.
"""

import argparse
import json
import os
import platform

import numpy as np
from timing import median_ms


def ours(side, dtype):
    from scratchopt.optimizers import Muon

    rng = np.random.default_rng(0)
    w = rng.standard_normal((side, side)).astype(dtype)
    g = rng.standard_normal((side, side)).astype(dtype)
    opt = Muon(learning_rate=0.01, rms_rate=0.2 if dtype == np.float32 else None)
    return lambda: opt.apply([g], [w])


def keras_eager(side):
    import keras

    rng = np.random.default_rng(0)
    w = keras.Variable(rng.standard_normal((side, side)).astype(np.float32), name="dense_kernel")
    g = keras.ops.convert_to_tensor(rng.standard_normal((side, side)).astype(np.float32))
    opt = keras.optimizers.Muon(learning_rate=0.01)
    opt.build([w])
    return lambda: opt.apply([g], [w])


def torch_muon(side):
    import torch

    rng = np.random.default_rng(0)
    w = torch.nn.Parameter(torch.from_numpy(rng.standard_normal((side, side)).astype(np.float32)))
    w.grad = torch.from_numpy(rng.standard_normal((side, side)).astype(np.float32))
    opt = torch.optim.Muon([w], lr=0.01)
    return opt.step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[32, 100, 316, 1000])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--float64-max-side", type=int, default=316,
                        help="the exact-order float64 step only up to this side (its products are "
                             "NumPy loops over the depth: seconds per step beyond)")
    parser.add_argument("--out", default=None, help="folder for muon_step.json and muon_step.md")
    args = parser.parse_args()
    import keras
    import tensorflow as tf
    import torch

    rows = []
    for side in args.sides:
        steps = {"scratchopt": ours(side, np.float32), "scratchopt float64 (exact order)": ours(side, np.float64),
                 "keras-eager": keras_eager(side), "torch": torch_muon(side)}
        if side > args.float64_max_side:
            del steps["scratchopt float64 (exact order)"]
        row = {"side": side, "elements": side * side, "scratchopt float64 (exact order)": None}
        for name, step in steps.items():
            row[name] = median_ms(step, args.repeats) / 1e3
        rows.append(row)
        print(json.dumps(row), flush=True)
    peers = ("keras-eager", "torch")
    lines = ["| matrix | elements | scratchopt | scratchopt float64 (exact order) | keras-eager | torch "
             "| best peer | scratchopt / best peer |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        best = min(peers, key=row.get)
        cells = [f"{row[k] * 1e3:.3g} ms" if row[k] is not None else "not run"
                 for k in ("scratchopt", "scratchopt float64 (exact order)", *peers)]
        lines.append(f"| {row['side']}x{row['side']} | {row['elements']:.0e} | " + " | ".join(cells)
                     + f" | {best} | {row['scratchopt'] / row[best]:.2f}x |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        meta = {"machine": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                "versions": {"numpy": np.__version__, "tensorflow": tf.__version__, "keras": keras.__version__,
                             "torch": torch.__version__},
                "command": f"python benchmarks/muon_step.py --sides {' '.join(map(str, args.sides))} "
                           f"--repeats {args.repeats} --float64-max-side {args.float64_max_side}",
                "float32 unless named; one step, medians of --repeats": True}
        with open(os.path.join(args.out, "muon_step.json"), "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)
        with open(os.path.join(args.out, "muon_step.md"), "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
