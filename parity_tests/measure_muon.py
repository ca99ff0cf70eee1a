"""Measure Muon's bound (``scratchopt.tools.parity.MUON_BOUND``): how far its matrices drift
from Keras's, in eps of each state's largest |value| (``parity.eps_gap``).

    python parity_tests/measure_muon.py 10        # seeds per config (default 5), 200 steps each
    python parity_tests/measure_muon.py 10 1000   # ... 1000 steps each

Each seed draws four 2-D shapes (1-80 rows and columns, so odd tiles of Eigen's blocking),
a vector and a scalar, runs every config of ``CONFIGS`` below from the same start on
scratchopt and on eager Keras, and tracks the largest gap of any 2-D param or slot, per
dtype; the 0-D and 1-D params take AdamW's path and must stay bit-exact (checked here
too). Prints the largest gap per dtype, with the seed and config that gave it, and the
bound the tests and parity rows hold Muon to.
"""

import sys

import numpy as np

from scratchopt import optimizers
from scratchopt.tools.keras_reference import KerasRun
from scratchopt.tools.parity import MUON_BOUND, eps_gap, same_bits, state_pairs

#: (constructor arguments, dtype): Keras raises on float64 matrices unless rms_rate is None.
CONFIGS = [({"learning_rate": 0.01}, "float32"),
           ({"learning_rate": 0.01, "nesterov": False, "weight_decay": None, "adam_lr_ratio": 0.5}, "float32"),
           ({"learning_rate": 0.02, "ns_steps": 3, "momentum": 0.9}, "float32"),
           ({"learning_rate": 0.01, "rms_rate": None}, "float64"),
           ({"learning_rate": 0.02, "rms_rate": None, "nesterov": False, "ns_steps": 7}, "float64")]


def gaps(kwargs, dtype, seed, steps):
    """The largest 2-D gap of one run, after checking the other params stayed exact."""
    rng = np.random.default_rng(seed)
    shapes = [tuple(int(n) for n in rng.integers(1, 81, 2)) for _ in range(4)] + [(int(rng.integers(1, 100)),), ()]
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    ours = optimizers.Muon(**kwargs)
    reference = KerasRun(ours, [p.copy() for p in params], literal=kwargs)
    worst = 0.0
    for step in range(steps):
        grads = [(rng.standard_normal(s) * 10.0 ** rng.uniform(-3, 1)).astype(dtype) for s in shapes]
        ours.apply(grads, params)
        reference.apply(grads)
        for label, a, b in state_pairs(ours, reference):
            if np.ndim(a) == 2:
                worst = max(worst, eps_gap(a, b))
            elif not same_bits(a, b):
                raise AssertionError(f"seed {seed} step {step}: {label} (AdamW's path) is not exact")
    return worst, shapes


def main(seeds=5, steps=200):
    worst = {}
    for seed in range(seeds):
        for kwargs, dtype in CONFIGS:
            gap, shapes = gaps(kwargs, dtype, seed, steps)
            if gap > worst.get(dtype, (-1.0,))[0]:
                worst[dtype] = (gap, seed, kwargs, shapes)
    for dtype, (gap, seed, kwargs, shapes) in sorted(worst.items()):
        print(f"{dtype}: max {gap:.3g} eps of the state's scale (seed {seed}, {kwargs}, shapes {shapes[:4]}); "
              f"bound {MUON_BOUND[dtype] or 'exact'}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
