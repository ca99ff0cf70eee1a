"""Measure ``Conv2D`` against Keras on random layers: what is exact, and the largest error.

    python parity_tests/measure_conv.py [LAYERS] [SEED]

For LAYERS random layers (shape, kernel, strides, padding, data format, bias, activation
drawn by ``parity_conv.random_layer``) in float64 and in float32, one forward and backward each through
scratchopt and Keras; prints, per dtype and per result (y, dx, dkernel, dbias), how many
were bit-exact and the largest error in epsilons of the term scale
(``scratchopt.tools.parity_conv.term_errors``), with the layer where it occurred.
``parity_tests/test_conv.py`` asserts bounds chosen from this output (never widened to pass).
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scratchopt.tools.parity import same_bits
from scratchopt.tools.parity_conv import (
    NAMES,
    compare,
    keras_is_wrong,
    random_layer,
    term_errors,
)


def measure(layers, seed):
    """``{dtype: {name: (exact count, total, max ratio, worst layer)}}``."""
    rng = np.random.default_rng(seed)
    report, tf_wrong = {}, []
    for dtype in ("float64", "float32"):
        stats = {name: [0, 0, 0.0, None] for name in NAMES}
        for _ in range(layers):
            kwargs, shape = random_layer(rng)
            inputs, mine, theirs = compare(kwargs, shape, dtype, rng)
            errors = term_errors(kwargs, inputs, mine, theirs)
            if dtype == "float32" and keras_is_wrong(kwargs, inputs, theirs, errors):
                tf_wrong.append((kwargs, shape))
                continue
            for name, a, b in zip(NAMES, mine, theirs):
                if a is None:
                    continue
                entry = stats[name]
                entry[0] += same_bits(a, b)
                entry[1] += 1
                if errors[name] > entry[2]:
                    entry[2], entry[3] = errors[name], (kwargs, shape)
        report[dtype] = stats
    return report, tf_wrong


def main(argv):
    layers = int(argv[1]) if len(argv) > 1 else 200
    seed = int(argv[2]) if len(argv) > 2 else 0
    report, tf_wrong = measure(layers, seed)
    for dtype, stats in report.items():
        print(f"{dtype}: {layers} random layers (seed {seed})")
        for name, (exact, total, worst, where) in stats.items():
            print(f"  {name:8s} bit-exact {exact}/{total}; max error {worst:.3f} eps of the term scale"
                  + (f"  at {where[0]} on {where[1]}" if where else ""))
    print(f"float32 layers left out, where Keras's own float32 result is wrong: {len(tf_wrong)}")
    for kwargs, shape in tf_wrong:
        print(f"  {kwargs} on {shape}")


if __name__ == "__main__":
    main(sys.argv)
