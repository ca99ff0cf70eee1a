"""What Ftrl's fused CPU path costs once per process (numba compiling it) and per step.

    python benchmarks/ftrl_compile.py

For float32 and float64, each in a fresh subprocess (nothing compiled yet): the first
``Ftrl().apply`` on 16 elements (compiles the serial kernel), then on 100,000 (the parallel
one, which reuses the serial kernel's loop), then the median of 7 further steps on 100,000
elements with the default (fused) path and with ``opt.backend = "numpy"``.
"""

import json
import subprocess
import sys

WORKER = r"""
import json, sys, time, statistics
import numpy as np
from scratchopt.optimizers import Ftrl
dtype = np.dtype(sys.argv[1])
out = {}
for n, key in ((16, "first step, 16 elements (serial kernel compiles) s"),
               (100_000, "first step, 100000 elements (parallel kernel compiles) s")):
    w, g = np.ones(n, dtype), np.full(n, 0.5, dtype)
    start = time.perf_counter()
    Ftrl().apply([g], [w])
    out[key] = round(time.perf_counter() - start, 2)
for backend in ("auto", "numpy"):
    opt, w, g = Ftrl(), np.ones(100_000, dtype), np.full(100_000, 0.5, dtype)
    opt.backend = backend
    opt.apply([g], [w])
    times = []
    for _ in range(7):
        start = time.perf_counter()
        opt.apply([g], [w])
        times.append(time.perf_counter() - start)
    out[f"step on 100000 elements, backend={backend} ms"] = round(statistics.median(times) * 1e3, 3)
print(json.dumps(out))
"""


def main():
    for dtype in ("float32", "float64"):
        done = subprocess.run([sys.executable, "-c", WORKER, dtype], capture_output=True, text=True, check=True)
        print(dtype, json.dumps(json.loads(done.stdout.strip().splitlines()[-1]), indent=1))


if __name__ == "__main__":
    main()
