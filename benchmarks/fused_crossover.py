"""Where should the fused kernel switch from serial to parallel? NumPy vs fused serial vs parallel.

    python benchmarks/fused_crossover.py [--sizes 1e3 1e4 ...] [--repeats 7] [--dtype float32] [--rule]

Times one Adam step (``opt.apply``: the whole step a user pays for, median of many steps
after a warm-up) on one parameter of each size, three ways: the NumPy reference path
(``backend = "numpy"``), the fused kernel forced serial, and the fused kernel forced
parallel (``scratchopt.optimizers.engine.fused_cpu.PARALLEL_MIN_BYTES`` set to 0 or to infinity).
``--rule`` times only the update rule (``engine.run``, where the path is chosen),
without the step's fixed Python cost (checks, learning rate, scalars: tens of us).
The sizes are interleaved and the median taken, so a busy neighbour on a shared machine
blurs all three columns alike; the load average is printed with the table. The last line
names the smallest size from which parallel beats serial at every larger size measured:
the measurement behind ``PARALLEL_MIN_BYTES``.
"""

import argparse
import os
import statistics
import time

import numpy as np

from scratchopt.numerics import tf_arithmetic
from scratchopt.optimizers import Adam, engine
from scratchopt.optimizers.engine import fused_cpu as fused

DEFAULT_SIZES = [1e3, 3e3, 1e4, 2e4, 5e4, 1e5, 3e5, 1e6, 1e7]


def step_timer(size, dtype, backend, parallel, rule_only):
    """A function that runs one Adam step (or its rule) and returns its wall time in seconds."""
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(size).astype(dtype)]
    grads = [rng.standard_normal(size).astype(dtype)]
    opt = Adam(0.001)
    opt.backend = backend
    opt.apply(grads, params)  # builds the slots
    dtype = params[0].dtype
    scalars = opt.scalars(dtype.type(opt.learning_rate), opt.iterations, dtype)
    slots = [opt._slots[0].get(k) for k in opt._rule_slots]
    fused_ok = engine.wants_fused(backend, params)

    def step():
        saved = fused.PARALLEL_MIN_BYTES
        fused.PARALLEL_MIN_BYTES = 0 if parallel else 1 << 62
        try:
            if rule_only:
                with tf_arithmetic():
                    start = time.perf_counter()
                    engine.run(opt.update, grads[0], params[0], slots, scalars, fused_ok)
            else:
                start = time.perf_counter()
                opt.apply(grads, params)
            return time.perf_counter() - start
        finally:
            fused.PARALLEL_MIN_BYTES = saved

    step()  # builds the slots and compiles the kernel
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=DEFAULT_SIZES)
    parser.add_argument("--repeats", type=int, default=7, help="rounds of steps (each round: many steps)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--rule", action="store_true", help="time the update rule alone, not the step")
    args = parser.parse_args()
    if not fused.available():
        raise SystemExit("numba is not installed: pip install 'scratchopt[fast]'")
    import numba

    sizes = [int(s) for s in args.sizes]
    ways = {"numpy": ("numpy", False), "serial": ("fused", False), "parallel": ("fused", True)}
    timers = {(n, way): step_timer(n, args.dtype, *ways[way], args.rule) for n in sizes for way in ways}
    times = {key: [] for key in timers}
    for _ in range(args.repeats):
        for (n, way), step in timers.items():  # interleaved: drift and neighbours hit all alike
            steps = max(1, min(200, int(2e6 // n)))
            times[n, way] += [step() for _ in range(steps)]
    median = {key: statistics.median(t) * 1e6 for key, t in times.items()}

    what = "the update rule alone (engine.run)" if args.rule else "one step (opt.apply)"
    print(f"Adam, {args.dtype}, {what}, median us; numba {numba.__version__}, "
          f"{numba.get_num_threads()} threads, layer {numba.threading_layer()}, "
          f"load average {os.getloadavg()[0]:.2f}, PARALLEL_MIN_BYTES = {fused.PARALLEL_MIN_BYTES:,}"
          f" ({fused.PARALLEL_MIN_BYTES // np.dtype(args.dtype).itemsize:,} elements)")
    print(f"{'size':>12} {'numpy':>12} {'fused serial':>13} {'fused parallel':>15} "
          f"{'numpy/best':>11} {'serial/parallel':>16}")
    for n in sizes:
        t = [median[n, way] for way in ways]
        print(f"{n:>12,} {t[0]:>12.1f} {t[1]:>13.1f} {t[2]:>15.1f} {t[0] / min(t[1:]):>11.1f} "
              f"{t[1] / t[2]:>16.2f}")
    crossover = next((n for i, n in enumerate(sizes)
                      if all(median[m, "parallel"] < median[m, "serial"] for m in sizes[i:])), None)
    print(f"parallel beats serial from {crossover:,} elements on" if crossover is not None
          else "parallel never beats serial at the sizes measured")


if __name__ == "__main__":
    main()
