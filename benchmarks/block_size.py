"""How big a block should the NumPy path run the update rule on?

    python benchmarks/block_size.py [--size 10000000] [--repeats 7]

Times one optimizer step (median of repeats, after a warm-up) on a float32 parameter of
``--size`` elements, with the whole array in one call and with blocks of 2**14 .. 2**21
bytes per array (scratchopt.optimizers.engine.BLOCK_BYTES). Whole-array calls allocate
full-size temporaries (fresh pages for large arrays); blocks keep them in cache.
"""

import argparse

import numpy as np

from scratchopt.optimizers import SGD, Adam, RMSprop, engine
from timing import median_ms


def median_step_ms(make, size, repeats):
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(size).astype(np.float32)]
    grads = [rng.standard_normal(size).astype(np.float32)]
    opt = make()
    opt.apply(grads, params)  # builds the slots
    return median_ms(lambda: opt.apply(grads, params), repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    optimizers = {"SGD(momentum=0.9)": lambda: SGD(0.01, momentum=0.9), "Adam": lambda: Adam(0.01),
                  "RMSprop": lambda: RMSprop(0.01)}
    blocks = [None] + [1 << k for k in range(14, 22)]
    default = engine.BLOCK_BYTES
    print(f"float32, {args.size:,} elements, median of {args.repeats} steps (ms); "
          f"current BLOCK_BYTES = {default}")
    print(f"{'block bytes':>12} " + " ".join(f"{name:>18}" for name in optimizers))
    try:
        for block in blocks:
            engine.BLOCK_BYTES = block if block is not None else 1 << 62
            row = [median_step_ms(make, args.size, args.repeats) for make in optimizers.values()]
            print(f"{'whole array' if block is None else block:>12} " + " ".join(f"{t:18.2f}" for t in row))
    finally:
        engine.BLOCK_BYTES = default


if __name__ == "__main__":
    main()
