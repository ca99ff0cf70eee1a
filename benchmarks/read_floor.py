"""How long an Adam step takes next to reading its bytes: the floor of "clipped within 1.2x".

    python benchmarks/read_floor.py [--sizes 1e7] [--repeats 30] [--rounds 5]

An unclipped Adam step reads four arrays of ``n`` float32 elements (g, var, m, v) and
writes three; one with ``global_clipnorm`` reads ``g`` once more first, for its norm. In one
process, each figure the median over ``--rounds`` rounds (taken in turn) of the median of
``--repeats`` calls:

* ``unclipped`` / ``clipped``: ``Adam.apply`` on the fused path (one tensor), without and
  with ``global_clipnorm=1``;
* ``read 4n`` / ``read 5n``: ``sums_fast.reduce_sum(x, "square")`` of an array of ``4n`` /
  ``5n`` elements: reading as many bytes as the step reads, with nothing written (each its
  own array, bigger than the cache, so neither warms the other).

Where ``unclipped`` is about ``read 4n``, the step's time is its reads (its writes cost
nothing more), and a clipped step cannot take less than ``read 5n``: the floor of the
ratio clipped / unclipped is then ``read 5n / read 4n``, not 8/7 of the bytes.
"""

import argparse

import numpy as np
from timing import medians_in_turn

from scratchopt import optimizers
from scratchopt.numerics import sums_fast, tf_arithmetic


def adam(n, clip, rng):
    """A fused Adam step on one float32 tensor of ``n``, after a first one."""
    opt = optimizers.Adam(0.001, global_clipnorm=clip)
    opt.backend = "fused"
    params, grads = [rng.standard_normal(n, dtype=np.float32)], [rng.standard_normal(n, dtype=np.float32)]
    opt.apply(grads, params)
    return lambda: opt.apply(grads, params)


def measure(n, repeats, rounds, rng):
    four, five = rng.standard_normal(4 * n, dtype=np.float32), rng.standard_normal(5 * n, dtype=np.float32)

    def read(x):
        with tf_arithmetic():  # as in a step
            sums_fast.reduce_sum(x, "square")

    calls = {"unclipped": adam(n, None, rng), "clipped": adam(n, 1.0, rng),
             "read 4n": lambda: read(four), "read 5n": lambda: read(five)}
    t = {name: 1e3 * ms for name, ms in medians_in_turn(calls, repeats, rounds).items()}
    return (f"n={n:.0e}: unclipped {t['unclipped']:.0f} us, clipped {t['clipped']:.0f} us "
            f"(clipped / unclipped {t['clipped'] / t['unclipped']:.2f}); read 4n {t['read 4n']:.0f} us, "
            f"read 5n {t['read 5n']:.0f} us (read 5n / read 4n {t['read 5n'] / t['read 4n']:.2f}); "
            f"unclipped / read 4n {t['unclipped'] / t['read 4n']:.2f}, clipped / read 5n "
            f"{t['clipped'] / t['read 5n']:.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1e7"])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for n in (int(float(s)) for s in args.sizes):
        print(measure(n, args.repeats, args.rounds, rng), flush=True)


if __name__ == "__main__":
    main()
