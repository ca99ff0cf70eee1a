"""Measure how far scratchopt's LSTM is from Keras's where it is not bit-exact.

    python parity_tests/measure_lstm.py [draws]

Bit-exact (float64, NumPy) needs the shapes where ``numerics.matmul`` follows TF's float64
matmul: a batch of 2 or more, and ``units`` and the feature count multiples of 8 (or small
enough for Eigen's coefficient-based product). Elsewhere, and for every float32 run (oneDNN's
matmul, Eigen's float32 sigmoid/tanh), this prints the largest error seen, per result, as
``max |ours - Keras| / (eps * max |Keras|)``: eps of the term scale, normwise.
``parity_tests/test_lstm.py`` asserts bounds chosen from this output (``BOUNDS`` there).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scratchopt.tools.parity import same_bits
from scratchopt.tools.parity_lstm import KEYS, lstm_pair, scaled_error

CONFIGS = [({"units": 8}, False), ({"units": 8, "return_sequences": True}, False),
           ({"units": 8, "dropout": 0.3}, True),
           ({"units": 8, "dropout": 0.2, "recurrent_dropout": 0.2}, True),
           ({"units": 8, "recurrent_dropout": 0.3, "return_sequences": True}, True)]
#: shapes off the exact domain (odd units, 5 features, one sequence) and on it
SHAPES = [((4, 6, 8), 3), ((4, 6, 8), 5), ((4, 6, 5), 8), ((1, 6, 8), 8), ((6, 12, 7), 6), ((4, 6, 8), 8),
          ((16, 8, 8), 32)]


def measure(draws=3):
    worst = {}
    for dtype in ("float64", "float32"):
        for shape, units in SHAPES:
            for kwargs, training in CONFIGS:
                kwargs = {**kwargs, "units": units}
                for seed in range(draws):
                    ours, theirs, inputs = lstm_pair(kwargs, shape, dtype, training, seed=seed)
                    for key in KEYS:
                        if key not in theirs:
                            continue
                        err = 0.0 if same_bits(ours[key], theirs[key]) else scaled_error(ours, theirs, key, inputs)
                        worst[dtype] = max(worst.get(dtype, 0.0), err)
                        worst[(dtype, key)] = max(worst.get((dtype, key), 0.0), err)
    return worst


if __name__ == "__main__":
    worst = measure(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
    for dtype in ("float64", "float32"):
        detail = ", ".join(f"{k} {worst[(dtype, k)]:.2f}" for k in KEYS)
        print(f"{dtype}: max error {worst[dtype]:.2f} eps of the term scale ({detail})")
