"""Measure the bounds of ``test_softmax_losses.py``: softmax and the categorical
cross-entropies, ours against Keras's, errors in epsilons of each value's term scale.

    python parity_tests/measure_softmax.py 3000          # batches per case and dtype (default 500)
    python parity_tests/measure_softmax.py 3000 scce     # only some cases (test_softmax_losses.CASES)

For each quantity (``softmax y``, ``softmax dx``, ``cce loss``, ``cce grad``, ... : see
``test_softmax_losses.errors``) prints the largest error found, per dtype, with the seed that
gave it, next to the bound the test asserts (``test_softmax_losses.BOUNDS``). Batches are
``test_softmax_losses.draw(seed)``: 1-32 rows, 2-12 classes, logits at scale 0.1, 1, 5 or 30.
"""

import sys

import numpy as np
import test_softmax_losses as t

from scratchopt.tools.keras_reference import tensorflow


def main(count, cases=t.CASES):
    tf = tensorflow()
    worst = {}
    for dtype in (np.float32, np.float64):
        for case in cases:
            for seed in range(count):
                for quantity, error in t.errors(tf, case, dtype, seed).items():
                    key = (quantity, np.dtype(dtype).name)
                    if error > worst.get(key, (-1.0, None))[0]:
                        worst[key] = (error, seed)
    print(f"{count} batches per case and dtype; errors in epsilons of the term scale")
    for (quantity, dtype), (error, seed) in sorted(worst.items()):
        flag = "" if error <= t.BOUNDS[quantity] else "   OVER THE BOUND"
        print(f"{quantity:18s} {dtype:8s} largest {error:6.3f} (seed {seed})  bound {t.BOUNDS[quantity]}{flag}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500, tuple(sys.argv[2:]) or t.CASES)
