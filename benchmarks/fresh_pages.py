"""What a fresh output array costs: writing into new memory against memory used before.

    python benchmarks/fresh_pages.py [--sizes 1e6,1e7] [--repeats 21]

For each float32 size, the median time of one pass ``out = x * 2`` (NumPy's multiply,
one thread) into:

* ``new``: a new ``np.empty`` array each time (fresh pages: the kernel zeroes each one the
  first time it is written);
* ``reused``: ``scratchopt.memory.empty``, whose memory is the dropped previous output's;

each with NumPy's transparent huge pages on (NumPy's default: it madvises arrays of 4 MiB
and more) and off (``numpy._core.multiarray._set_madvise_hugepage``), since the cost of a
fresh page depends on its size. The difference ``new - reused`` is what
``scratchopt.memory`` saves each output.
"""

import argparse

import numpy as np
from numpy._core import multiarray
from timing import median_ms

from scratchopt import memory


def fill(make, x):
    """One pass ``x * 2`` into an array from ``make`` (dropped when the call returns)."""
    return lambda: np.multiply(x, 2, out=make(x.shape, x.dtype))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e6,1e7")
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args(argv)
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    was = multiarray._get_madvise_hugepage()
    print(f"float32, out = x * 2, median of {args.repeats}; huge pages: NumPy's madvise (default {was})")
    print(f"{'n':>10} {'huge pages':>10} {'new':>10} {'reused':>10} {'new - reused':>13}")
    try:
        for n in sizes:
            x = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
            for huge in (True, False):
                multiarray._set_madvise_hugepage(huge)
                new = median_ms(fill(np.empty, x), args.repeats)
                reused = median_ms(fill(memory.empty, x), args.repeats)
                print(f"{n:>10.0e} {'on' if huge else 'off':>10} {new:>8.2f}ms {reused:>8.2f}ms {new - reused:>11.2f}ms")
            memory.release()
    finally:
        multiarray._set_madvise_hugepage(was)


if __name__ == "__main__":
    main()
