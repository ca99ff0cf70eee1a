"""Where a clipped Adam step's extra time goes (issue 16's "clipped within 1.2x" target).

    python benchmarks/clip_overhead.py [--sizes 1e5 1e7] [--repeats 2000]

For one float32 tensor of each size, on the fused CPU path, medians of ``--repeats`` calls
(fewer at 1e7), in one process:

* ``unclipped`` / ``clipped``: ``Adam.apply`` without and with ``global_clipnorm=1``;
* ``factor in the step``: ``clipping_fast._global_scale`` (what a step calls) timed inside the clipped steps
  (a wrapper around it; the step's other work is untouched);
* ``factor alone``: the same call repeated on its own (the gradient hot in this core's
  cache), inside ``tf_arithmetic`` as in a step;
* ``norm after writes``: the sum of squares alone, right after writing 3 arrays of the
  same size (what the Adam pass leaves behind), against ``factor alone``;
* ``parallel norm``: the clipped step with the sums parallel from 40,000 elements (each
  core reading the half of the gradient its half of the Adam kernel read).
"""

import argparse
import time

import numpy as np

from scratchopt import optimizers
from scratchopt.numerics import sums_fast, tf_arithmetic
from scratchopt.optimizers import clipping_fast


def median_us(f, repeats, before=None):
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e6


def step(n, clip, rng):
    opt = optimizers.Adam(0.001, global_clipnorm=clip)
    opt.backend = "fused"
    params = [rng.standard_normal(n, dtype=np.float32)]
    grads = [rng.standard_normal(n, dtype=np.float32)]
    opt.apply(grads, params)
    return lambda: opt.apply(grads, params), grads[0]


def measure(n, repeats, rng):
    """One line of the report for ``n`` elements."""
    unclipped, _ = step(n, None, rng)
    clipped, g = step(n, 1.0, rng)
    inside, original = [], clipping_fast._global_scale

    def timed(*call):
        start = time.perf_counter()
        scale = original(*call)
        inside.append(time.perf_counter() - start)
        return scale

    plain, with_clip = median_us(unclipped, repeats), median_us(clipped, repeats)
    clipping_fast._global_scale = timed
    try:
        median_us(clipped, repeats)
    finally:
        clipping_fast._global_scale = original
    starts, sizes = np.zeros(1, np.int64), (n,)
    junk = [np.ones(n, np.float32) for _ in range(3)]

    def write_junk():
        for a in junk:
            a += 1

    def factor():
        return original(g, starts, sizes, 1.0)

    with tf_arithmetic():
        alone = median_us(factor, repeats)
        cold = median_us(factor, repeats, before=write_junk)
    saved = sums_fast.PARALLEL_MIN_ELEMENTS
    sums_fast.PARALLEL_MIN_ELEMENTS = 40_000
    try:
        parallel = median_us(clipped, repeats)
    finally:
        sums_fast.PARALLEL_MIN_ELEMENTS = saved
    return (f"n={n:.0e}: unclipped {plain:.1f} us, clipped {with_clip:.1f} us ({with_clip / plain:.2f}x); "
            f"factor in the step {np.median(inside) * 1e6:.1f} us, alone {alone:.1f} us, "
            f"after writes {cold:.1f} us; clipped with a parallel norm {parallel:.1f} us")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1e5", "1e7"])
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for n in (int(float(s)) for s in args.sizes):
        print(measure(n, max(20, min(args.repeats, int(2e8 // n))), rng))


if __name__ == "__main__":
    main()
