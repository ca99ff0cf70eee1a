"""How long drawing a dropout mask takes: TF's Philox numbers, as array code and compiled, beside the peers.

    python benchmarks/dropout_mask.py [--sizes 1e5,1e7] [--dtypes float32,float64] [--repeats 10] [--rounds 5]

Each row draws ``keep = u >= 0.5`` for ``n`` values, in one process; each figure is the
median over ``--rounds`` rounds (taken in turn) of the median of ``--repeats`` calls:

* ``philox array code``: ``numerics.philox.stateless_uniform`` (NumPy), then the compare:
  the readable reference, and what a CuPy input runs;
* ``philox compiled``: ``numerics.philox_fast.keep_mask``, the one compiled pass that
  ``Dropout`` uses on NumPy arrays with numba (the same bits);
* ``numpy default_rng``: ``Generator.random`` then the compare, the draw ``Dropout`` made
  before it drew TF's numbers (not TF's bits);
* ``tf stateless_uniform``: ``tf.random.stateless_uniform`` then ``>=``, eager, what Keras's
  ``Dropout`` runs (needs TensorFlow; its own thread pool);
* ``torch bernoulli_``: ``torch.empty(n).bernoulli_(0.5)``, what ``torch.nn.functional.dropout``
  draws on the CPU (needs torch).
"""

import argparse

import numpy as np
from timing import medians_in_turn

from scratchopt.numerics import philox, philox_fast

SEED = (7, 0)


def steps(n, dtype):
    dtype = np.dtype(dtype)
    threshold = dtype.type(0.5)
    rng = np.random.default_rng(0)
    found = {
        "philox array code": lambda: philox.stateless_uniform((n,), SEED, dtype) >= threshold,
        "philox compiled": lambda: philox_fast.keep_mask((n,), SEED, threshold, dtype),
        "numpy default_rng": lambda: rng.random(n, dtype=dtype) >= threshold,
    }
    try:
        import tensorflow as tf

        seed, tf_dtype = tf.constant(SEED, tf.int32), tf.as_dtype(dtype)
        found["tf stateless_uniform"] = lambda: (tf.random.stateless_uniform((n,), seed, dtype=tf_dtype) >= 0.5).numpy()
    except ImportError:
        pass
    try:
        import torch

        torch_dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[dtype]
        found["torch bernoulli_"] = lambda: torch.empty(n, dtype=torch_dtype).bernoulli_(0.5)
    except ImportError:
        pass
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e5,1e7")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"median ms of --repeats {args.repeats} calls, median over --rounds {args.rounds} rounds")
    for dtype in args.dtypes.split(","):
        for n in (int(float(s)) for s in args.sizes.split(",")):
            times = medians_in_turn(steps(n, dtype), args.repeats, args.rounds)
            compiled = times["philox compiled"]
            cells = ", ".join(f"{name} {ms:.3f} ({ms / compiled:.2f}x)" for name, ms in times.items())
            print(f"{dtype} n={n:.0e}: {cells}")


if __name__ == "__main__":
    main()
