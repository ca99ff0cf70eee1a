"""The lesson's five augmentation layers: scratchopt (NumPy, or CuPy) vs Keras's layers, eager.

    python benchmarks/augmentation.py [--batch 256] [--size 32] [--rounds 5] [--repeats 7]
                                      [--threads N] [--cupy] [--out DIR]

A batch of ``--batch`` float32 images of ``--size`` x ``--size`` x 3 through
``RandomFlip("horizontal")``, ``RandomRotation(0.1)``, ``RandomZoom(0.1)``,
``RandomContrast(0.1)``, ``RandomTranslation(0.1, 0.1)``, ``training=True``, each layer
drawing its own values. Each round times every layer and the whole pipeline on both sides
(median of ``--repeats`` calls after a warm-up), the two sides alternating so that a busy
machine slows both alike; the table gives the median over ``--rounds`` rounds and the ratio
scratchopt / Keras (below 1: scratchopt is faster). ``--threads`` sets TensorFlow's
intra-op threads (0: TF's default, all cores). ``--cupy`` times scratchopt on CuPy arrays
(synchronised) as well. ``--out DIR`` writes ``augmentation.json`` and ``augmentation.txt``.
"""

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import numpy as np
from timing import median_ms

LAYERS = [("RandomFlip", ("horizontal",)), ("RandomRotation", (0.1,)), ("RandomZoom", (0.1,)),
          ("RandomContrast", (0.1,)), ("RandomTranslation", (0.1, 0.1))]


def pipeline(layers, convert):
    def run(x):
        y = convert(x)
        for layer in layers:
            y = layer(y, training=True)
        return y
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--cupy", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    import keras

    from scratchopt import augment

    x = np.random.default_rng(0).uniform(0, 255, (args.batch, args.size, args.size, 3)).astype(np.float32)
    xt = tf.constant(x)
    sides = {"scratchopt": ([getattr(augment, n)(*a, seed=i) for i, (n, a) in enumerate(LAYERS)], lambda v: v, x),
             "keras": ([getattr(keras.layers, n)(*a, seed=i) for i, (n, a) in enumerate(LAYERS)], lambda v: v, xt)}
    if args.cupy:
        import cupy

        xc = cupy.asarray(x)
        sync = cupy.cuda.Device().synchronize
        mine = [getattr(augment, n)(*a, seed=i) for i, (n, a) in enumerate(LAYERS)]
        sides["scratchopt (CuPy)"] = (mine, lambda v: v, xc)
    names = [n for n, _ in LAYERS] + ["pipeline"]
    times = {side: {n: [] for n in names} for side in sides}
    for _ in range(args.rounds):
        for side, (layers, convert, data) in sides.items():
            done = sync if side.endswith("(CuPy)") else (lambda: None)
            for (name, _), layer in zip(LAYERS, layers, strict=True):
                step = lambda layer=layer, data=data, done=done: (layer(data, training=True), done())
                times[side][name].append(median_ms(step, args.repeats))
            run = pipeline(layers, convert)
            times[side]["pipeline"].append(median_ms(lambda run=run, data=data, done=done: (run(data), done()),
                                                     args.repeats))
    med = {side: {n: statistics.median(v) for n, v in t.items()} for side, t in times.items()}
    title = (f"{args.batch} images {args.size}x{args.size}x3 float32, training=True; median ms over "
             f"{args.rounds} rounds of {args.repeats}-call medians; TF intra-op threads = {args.threads or 'default'}")
    lines = [title, f"{'layer':18} " + " ".join(f"{s:>17}" for s in sides) + f" {'ratio ours/keras':>17}"]
    for n in names:
        lines.append(f"{n:18} " + " ".join(f"{med[s][n]:17.2f}" for s in sides)
                     + f" {med['scratchopt'][n] / med['keras'][n]:17.2f}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        meta = {"python": sys.version.split()[0], "numpy": np.__version__, "tensorflow": tf.__version__,
                "keras": keras.__version__, "machine": platform.processor() or platform.machine(),
                "cpus": os.cpu_count(), "argv": sys.argv[1:]}
        (args.out / "augmentation.json").write_text(json.dumps(
            {"meta": meta, "median_ms": med, "rounds_ms": times,
             "ratio_ours_over_keras": {n: med["scratchopt"][n] / med["keras"][n] for n in names}}, indent=1))
        (args.out / "augmentation.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
