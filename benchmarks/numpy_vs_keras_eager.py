"""One optimizer step: scratchopt's NumPy path vs eager Keras, side by side in one run.

    python benchmarks/numpy_vs_keras_eager.py [--threads N] [--repeats 21]

float32 parameter of 1e3, 1e5 and 1e7 elements; median of ``--repeats`` steps after a
warm-up, for SGD(momentum=0.9), Adam and RMSprop. ``--threads`` sets TensorFlow's intra-op
threads (0: TF's default, all cores; 1: the setting the parity suite uses). A quick check
only: the full benchmark suite (floors, peers, GPU) is a separate piece of work.
"""

import argparse
import os

import numpy as np

from timing import median_ms


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    import keras

    from scratchopt import optimizers

    configs = {"SGD(momentum=0.9)": ("SGD", {"momentum": 0.9}), "Adam": ("Adam", {}),
               "RMSprop": ("RMSprop", {})}
    print(f"median ms per step, float32, TF intra-op threads = {args.threads or 'default'}")
    print(f"{'optimizer':18} {'size':>10} {'scratchopt':>11} {'keras':>9} {'ratio':>6}")
    for size in (10**3, 10**5, 10**7):
        rng = np.random.default_rng(0)
        w, g = rng.standard_normal(size).astype(np.float32), rng.standard_normal(size).astype(np.float32)
        for label, (name, kwargs) in configs.items():
            ours, params = getattr(optimizers, name)(0.01, **kwargs), [w.copy()]
            theirs, variable = getattr(keras.optimizers, name)(0.01, **kwargs), keras.Variable(w)
            tensor = tf.constant(g)
            repeats = max(5, args.repeats // (10 if size >= 10**7 else 1))
            a = median_ms(lambda: ours.apply([g], params), repeats)
            b = median_ms(lambda: theirs.apply([tensor], [variable]), repeats)
            print(f"{label:18} {size:>10.0e} {a:11.3f} {b:9.3f} {a / b:6.2f}")


if __name__ == "__main__":
    main()
