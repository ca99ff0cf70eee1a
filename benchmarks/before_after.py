"""Time the same optimizer steps in two source trees, side by side in one run.

    git archive <rev> | tar -x -C /tmp/before     # the tree to compare with
    python benchmarks/before_after.py --before /tmp/before [--rounds 7] [--json out.json]

Each measurement runs in a fresh subprocess that imports ``scratchopt`` from the given tree
(ahead of any installed copy), builds the optimizer, warms it up (numba compiles there),
then times ``--repeats`` steps with ``time.perf_counter`` and reports their median. The
two trees alternate, round after round, so that a busy machine slows both alike; the
table gives the median over rounds of each tree and their ratio (after / before).

Only the public API is used (``opt.apply``, ``opt.pack``, ``opt.packed_gradients``), so
any two revisions compare, whatever their internals. The cases are those the core's
restructuring (issue 11) must not slow down: Adam, AdamW and SGD at 1e3 and 1e7 elements,
and Adam over 1000 tensors (1e6 elements in all), packed with the gradients written into
``packed_gradients()`` and unpacked.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

CASES = {
    "Adam 1e3": ("Adam", {}, 1_000, 1, False),
    "Adam 1e7": ("Adam", {}, 10_000_000, 1, False),
    "AdamW 1e3": ("AdamW", {}, 1_000, 1, False),
    "AdamW 1e7": ("AdamW", {}, 10_000_000, 1, False),
    "SGD 1e3": ("SGD", {}, 1_000, 1, False),
    "SGD 1e7": ("SGD", {}, 10_000_000, 1, False),
    "SGD momentum 1e7": ("SGD", {"momentum": 0.9}, 10_000_000, 1, False),
    "Adam 1000 tensors, packed": ("Adam", {}, 1_000_000, 1000, True),
    "Adam 1000 tensors": ("Adam", {}, 1_000_000, 1000, False),
}

WORKER = r"""
import sys, time, statistics
tree, name, kwargs, n, tensors, packed, repeats = sys.argv[1:]
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, tree)
import numpy as np
import scratchopt
assert scratchopt.__file__.startswith(tree), scratchopt.__file__
from scratchopt import optimizers
n, tensors, repeats = int(n), int(tensors), int(repeats)
rng = np.random.default_rng(0)
w = rng.standard_normal(n).astype(np.float32)
g = rng.standard_normal(n).astype(np.float32) * np.float32(1e-3)
params = [w] if tensors == 1 else list(w.reshape(tensors, -1))
grads = [g] if tensors == 1 else list(g.reshape(tensors, -1))
opt = getattr(optimizers, name)(**eval(kwargs))
if packed == "True":
    params = opt.pack(params)
    views = opt.packed_gradients()
    for dst, src in zip(views, grads):
        dst[...] = src
    grads = views
for _ in range(3):
    opt.apply(grads, params)
times = []
for _ in range(repeats):
    start = time.perf_counter()
    opt.apply(grads, params)
    times.append(time.perf_counter() - start)
print(statistics.median(times))
"""


def measure(tree, case, repeats):
    name, kwargs, n, tensors, packed = CASES[case]
    out = subprocess.run([sys.executable, "-c", WORKER, os.path.abspath(tree), name, repr(kwargs),
                          str(n), str(tensors), str(packed), str(repeats)],
                         check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def repeats_for(case):
    return 30 if CASES[case][2] >= 10_000_000 else 300


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the source tree to compare with")
    parser.add_argument("--after", default=os.path.join(os.path.dirname(__file__), ".."),
                        help="the source tree under test (default: this checkout)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    times = {(tree, case): [] for tree in ("before", "after") for case in args.cases}
    for r in range(args.rounds):
        for case in args.cases:
            for label in ("before", "after") if r % 2 == 0 else ("after", "before"):
                tree = args.before if label == "before" else args.after
                times[label, case].append(measure(tree, case, repeats_for(case)))
        print(f"round {r + 1} of {args.rounds} done", file=sys.stderr, flush=True)
    rows = []
    print(f"{'case':<28} {'before':>12} {'after':>12} {'after/before':>13}")
    for case in args.cases:
        before = statistics.median(times["before", case])
        after = statistics.median(times["after", case])
        rows.append({"case": case, "before_s": before, "after_s": after, "ratio": after / before,
                     "rounds_before_s": times["before", case], "rounds_after_s": times["after", case]})
        print(f"{case:<28} {before * 1e6:>10.1f}us {after * 1e6:>10.1f}us {after / before:>12.3f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rounds": args.rounds, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
