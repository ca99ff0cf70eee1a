"""Where a compiled BatchNormalization / LayerNormalization step spends its time: each pass.

    python benchmarks/normalization_passes.py [--rows 100000] [--cols 100] [--steps 9] [--row-block 128] [--groups 2]

Runs forward (``training=True``) + backward of each layer on a float32 ``(rows, cols)`` input,
as ``scratchopt bench`` does, and times every call into ``regularization/normalization_fast``
(the column sums by kind, the elementwise passes, LayerNormalization's row passes) inside
those steps, so that each pass finds memory as a real step leaves it. Prints the median per
pass and per whole step. Column-sum kinds: 0 ``sum(x)``, 1 ``sum((x - mean)**2)``, 2
``sum(dy)`` and ``sum(x * dy)``, 3 LayerNormalization's ``dbeta`` and ``dgamma``.
``--row-block`` sets ``normalization_fast.ROW_BLOCK`` before the kernels compile (numba
freezes it into them), to compare block sizes; ``--groups`` the parallel column sums' split
of the four accumulators (1: the threads split the columns only; 2: the default; 4: one
accumulator a task), to compare the splits.
"""

import argparse
import collections
import statistics
import time

import numpy as np

from scratchopt import layers
from scratchopt.regularization import normalization_fast as nf

PASSES = ("batch_output", "batch_dx", "layer_forward", "layer_backward")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100000)
    parser.add_argument("--cols", type=int, default=100)
    parser.add_argument("--steps", type=int, default=9)
    parser.add_argument("--row-block", type=int, default=nf.ROW_BLOCK)
    parser.add_argument("--groups", type=int)
    args = parser.parse_args(argv)
    if args.row_block % 4:
        parser.error(f"--row-block must be a multiple of 4, got {args.row_block}")
    nf.ROW_BLOCK = args.row_block
    if args.groups is not None:
        if args.groups not in (1, 2, 4):
            parser.error(f"--groups must be 1, 2 or 4, got {args.groups}")
        tasks = nf._tasks

        def forced(cols, packet, parallel):
            if not parallel or nf._threads() < 2:
                return tasks(cols, packet, parallel)
            return nf._column_bounds(cols, packet, max(1, nf._threads() // args.groups)), args.groups

        nf._tasks = forced
    times = collections.defaultdict(list)

    def timed(label, function):
        def call(*a, **k):
            start = time.perf_counter()
            out = function(*a, **k)
            times[label(*a, **k)].append(time.perf_counter() - start)
            return out
        return call

    column_sums = nf._column_sums
    nf._column_sums = timed(lambda x, dy, mean, kind, *rest: f"column sums, kind {kind}", column_sums)
    for name in PASSES:
        setattr(nf, name, timed(lambda *a, _n=name, **k: _n, getattr(nf, name)))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.rows, args.cols), dtype=np.float32)
    dy = rng.standard_normal(x.shape, dtype=np.float32)
    print(f"float32 ({args.rows}, {args.cols}), ROW_BLOCK {nf.ROW_BLOCK}, groups {args.groups or 'default'}, "
          f"{nf._threads()} threads, median of {args.steps} steps after 2 warm-up steps")
    for make in (layers.BatchNormalization, layers.LayerNormalization):
        layer = make()
        times.clear()
        steps = []
        for k in range(args.steps + 2):
            start = time.perf_counter()
            layer(x, training=True)
            layer.backward(dy)
            steps.append(time.perf_counter() - start)
            if k < 2:
                times.clear()
        print(f"{make.__name__}: step {statistics.median(steps[2:]) * 1e3:.2f} ms")
        for label, values in times.items():
            print(f"  {label:<24} {statistics.median(values) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
