"""Where should TF's compiled sums switch from serial to parallel? ``sums_fast``, both ways.

    python benchmarks/sum_crossover.py [--sizes 5e4,1e5,...] [--repeats 41]

Times ``sum_of_squares(x)`` (clip_by_norm's and the global norm's sum) and ``reduce_sum(x)``
of one float32 and one float64 array of each size, with the kernels forced serial and
forced parallel (``sums_fast.PARALLEL_MIN_ELEMENTS`` set to infinity or to 1): medians
after a warm-up. The last lines name, per dtype, the smallest size from which parallel beats
serial at every larger size measured: the measurement behind ``PARALLEL_MIN_ELEMENTS``.
The load average is printed: on a busy machine a parallel launch waits for its slowest
thread, and the crossover moves up.
"""

import argparse
import os

import numpy as np
from timing import median_ms

from scratchopt.numerics import reduce_sum, sums_fast
from scratchopt.numerics.sums import sum_of_squares


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5e4,1e5,2e5,3e5,5e5,1e6,2.5e6")
    parser.add_argument("--repeats", type=int, default=41)
    args = parser.parse_args(argv)
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    saved = sums_fast.PARALLEL_MIN_ELEMENTS
    print(f"load average {os.getloadavg()[0]:.2f}; medians of {args.repeats} calls, in us")
    print(f"{'dtype':>8} {'n':>9} {'squares serial':>15} {'parallel':>9} {'reduce_sum serial':>18} {'parallel':>9}")
    wins = {}
    try:
        for dtype in (np.float32, np.float64):
            for n in sizes:
                x = np.random.default_rng(0).standard_normal(n).astype(dtype)
                row = []
                for f in (sum_of_squares, reduce_sum):
                    for limit in (1 << 62, 1):
                        sums_fast.PARALLEL_MIN_ELEMENTS = limit
                        row.append(median_ms(lambda: f(x), args.repeats) * 1e3)
                wins.setdefault(np.dtype(dtype).name, []).append((n, row[1] < row[0] and row[3] < row[2]))
                print(f"{np.dtype(dtype).name:>8} {n:>9} {row[0]:>15.1f} {row[1]:>9.1f} {row[2]:>18.1f} {row[3]:>9.1f}")
    finally:
        sums_fast.PARALLEL_MIN_ELEMENTS = saved
    for name, results in wins.items():
        from_here = [n for k, (n, _) in enumerate(results) if all(win for _, win in results[k:])]
        print(f"{name}: parallel wins both sums from {from_here[0] if from_here else 'no size measured'} on")


if __name__ == "__main__":
    main()
