"""A Lamb step, fused against array code, and how much of it TF's ``pow(x, 2)`` takes.

    python benchmarks/lamb_step.py [--sizes 1e3 1e5 1e7] [--repeats 7]

float32, one tensor, ``Lamb(learning_rate=0.01)``: the median step with ``opt.backend =
"numpy"`` (``lamb.update`` as NumPy's lines; the numerics compiled where numba is) and
with the default, fused, path (``direction`` and ``descend`` as kernels), and the median
of one ``power_array(w, 2)`` (compiled: ``numerics.pow_fast``), which the step calls twice.
Checks that both paths end on the same bits. Keras and torch are rows of ``scratchopt
bench --components lamb``.
"""

import argparse

import numpy as np
from timing import median_ms

from scratchopt.numerics import tf_arithmetic
from scratchopt.numerics.pow import power_array
from scratchopt.optimizers import Lamb


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", type=float, default=[1e3, 1e5, 1e7])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    print("| n | array code | fused | fused / array code | one pow(w, 2) |")
    print("|---|---|---|---|---|")
    for n in (int(s) for s in args.sizes):
        rng = np.random.default_rng(0)
        g, w0 = rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)
        ends, ms = [], []
        for backend in ("numpy", "auto"):
            opt, w = Lamb(learning_rate=0.01), [w0.copy()]
            opt.backend = backend
            ms.append(median_ms(lambda: opt.apply([g], w), args.repeats))
            ends.append(w[0])
        assert ends[0].tobytes() == ends[1].tobytes(), "the two paths differ"
        two = np.asarray(2, np.float32)

        def pow2():
            with tf_arithmetic():
                power_array(w0, two)

        print(f"| {n:.0e} | {ms[0]:.3g} ms | {ms[1]:.3g} ms | {ms[1] / ms[0]:.2f}x | {median_ms(pow2, args.repeats):.3g} ms |")


if __name__ == "__main__":
    main()
