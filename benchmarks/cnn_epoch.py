"""One epoch of the lesson's capstone CNN: scratchopt (NumPy, float32) against Keras.

    python benchmarks/cnn_epoch.py [--runs 5] [--out scratchopt-output/] [--profile]

The model, the data and the optimizer are the training demo's (``scratchopt/tools/demos/
training.py``: three Conv2D/BatchNormalization/ReLU/MaxPooling2D/SpatialDropout2D blocks
of 16, 32 and 64 filters, GlobalAveragePooling2D, Dense(64) with L2, BatchNormalization,
ReLU, Dropout(0.5), Dense(10, softmax); AdamW on CosineDecay; the 1,437 training images of
``load_digits``, standardized, batches of 16, so 90 steps an epoch). An epoch is one
``fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)`` call, training only (no
validation, no callbacks), after one warm-up epoch; each side runs ``--runs`` epochs and the
table gives the median and the spread (min - max).

Three rows:

* scratchopt: ``Sequential.fit``, NumPy on the CPU, float32;
* Keras eager: ``model.compile(..., run_eagerly=True)``, the mode the parity tests compare
  against (every TF op dispatched from Python, one at a time);
* Keras compiled: ``model.compile(...)`` with Keras's defaults (``jit_compile="auto"``: a
  ``tf.function``, XLA where TF allows it), for information.

TensorFlow runs with its default thread pools here (not the single intra-op thread the
parity checks pin), so that each side uses the machine as it would by default; NumPy uses
its BLAS's threads. The two frameworks alternate epoch by epoch (scratchopt, Keras eager,
Keras compiled, again), so a busy machine slows them alike.

``--profile``: one more scratchopt epoch, step by step, timing each layer's forward and
backward, the loss and the optimizer (``time.perf_counter`` around each call), and a
``cProfile`` of one epoch's ``fit``: the table says where the time goes.

Writes ``cnn_epoch.md`` and ``cnn_epoch.json`` (``--name`` another stem) into ``--out`` (default ``scratchopt-output/``;
the committed results are in ``benchmarks/results/<machine>/``).
"""

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def settings():
    from scratchopt.tools.demos.training import Settings

    return Settings(dtype="float32", dropout=True, epochs=1)


def scratchopt_side(s, data):
    from scratchopt.nn.losses import SparseCategoricalCrossentropy
    from scratchopt.tools.demos.training import scratchopt_model, scratchopt_optimizer

    x, y = data[0], data[1]
    model = scratchopt_model(s)
    model(x[:1])
    model.compile(scratchopt_optimizer(s), SparseCategoricalCrossentropy(), metrics=["accuracy"])

    def epoch():
        model.fit(x, y, epochs=1, batch_size=s.batch_size, shuffle=False, verbose=0)

    return model, epoch


def keras_side(s, data, eager):
    import keras

    from scratchopt.tools.demos.training import keras_model, keras_optimizer

    x, y = data[0], data[1]
    model = keras_model(s)
    model.compile(optimizer=keras_optimizer(s), loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  run_eagerly=eager)

    def epoch():
        model.fit(x, y, epochs=1, batch_size=s.batch_size, shuffle=False, verbose=0)

    del keras
    return model, epoch


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def profile_layers(model, s, data):
    """Seconds per epoch in each layer's forward and backward, the loss and the optimizer:
    Sequential.train_step's work, one call at a time (what ``fit`` adds is the rest)."""
    x, y = data[0], data[1]
    names = [f"{i:2d} {type(layer).__name__}" for i, layer in enumerate(model.layers)]
    forward, backward = [0.0] * len(names), [0.0] * len(names)
    loss_s = optimizer_s = 0.0
    pairs = model._pairs()
    for start in range(0, len(x), s.batch_size):
        out, yb = x[start:start + s.batch_size], y[start:start + s.batch_size]
        for i, layer in enumerate(model.layers):
            t = time.perf_counter()
            out = layer(out, training=True)
            forward[i] += time.perf_counter() - t
        t = time.perf_counter()
        model.total_loss(yb, out)
        dy = model.loss.gradient(yb, out)
        loss_s += time.perf_counter() - t
        for i in reversed(range(len(model.layers))):
            t = time.perf_counter()
            dy = model.layers[i].backward(dy)
            backward[i] += time.perf_counter() - t
        t = time.perf_counter()
        model.optimizer.apply([layer.grads[key] for layer, key in pairs], [layer.params[key] for layer, key in pairs])
        optimizer_s += time.perf_counter() - t
    rows = [{"part": name, "forward_s": f, "backward_s": b} for name, f, b in zip(names, forward, backward)]
    rows.append({"part": "loss + its gradient", "forward_s": loss_s, "backward_s": 0.0})
    rows.append({"part": "optimizer (AdamW)", "forward_s": optimizer_s, "backward_s": 0.0})
    return rows


def cprofile(epoch, top=25):
    profiler = cProfile.Profile()
    profiler.enable()
    epoch()
    profiler.disable()
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(top)
    text = stream.getvalue().replace(str(Path.cwd()) + os.sep, "")  # the checkout's paths, relative
    return text.replace(os.path.dirname(os.__file__) + os.sep, "<stdlib>/")


def machine():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} cores"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed epochs per side (default 5)")
    parser.add_argument("--out", default="scratchopt-output", help="folder for cnn_epoch.md/.json")
    parser.add_argument("--no-compiled", action="store_true", help="skip Keras's compiled fit")
    parser.add_argument("--profile", action="store_true", help="also time each layer and cProfile one epoch")
    parser.add_argument("--name", default="cnn_epoch", help="file stem of the results (default cnn_epoch)")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from scratchopt.tools import keras_reference
    from scratchopt.tools.demos.training import digits

    keras_reference._tf = tf  # TensorFlow as imported: its default thread pools, not the parity pin

    s = settings()
    data = digits(s)
    sides = {"scratchopt (NumPy, float32)": scratchopt_side(s, data),
             "Keras eager (run_eagerly=True)": keras_side(s, data, eager=True)}
    if not args.no_compiled:
        sides["Keras compiled (default fit)"] = keras_side(s, data, eager=False)
    for name, (_, epoch) in sides.items():  # warm-up: builds, traces, compiles
        print(f"warm-up: {name}", file=sys.stderr)
        epoch()
    times = {name: [] for name in sides}
    for r in range(args.runs):
        for name, (_, epoch) in sides.items():
            times[name].append(timed(epoch))
            print(f"run {r + 1}/{args.runs} {name}: {times[name][-1]:.2f} s", file=sys.stderr)
    ours_name, eager_name = list(sides)[:2]
    ratio = statistics.median(times[ours_name]) / statistics.median(times[eager_name])
    document = {
        "command": "python benchmarks/cnn_epoch.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(), "numpy": np.__version__, "tensorflow": tf.__version__,
        "keras": __import__("keras").__version__, "steps_per_epoch": s.steps_per_epoch,
        "environment": {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
                        if k in os.environ},
        "batch_size": s.batch_size, "images": len(data[0]),
        "rows": [{"side": name, "median_s": statistics.median(t), "min_s": min(t), "max_s": max(t), "runs_s": t}
                 for name, t in times.items()],
        "ratio_scratchopt_over_keras_eager": ratio,
    }
    lines = [f"# One epoch of the capstone CNN ({s.steps_per_epoch} steps of {s.batch_size}, float32)", "",
             f"{document['machine']}; NumPy {np.__version__}, TensorFlow {tf.__version__}, "
             f"Keras {document['keras']}. Median of {args.runs} epochs after a warm-up epoch"
             + "".join(f"; {k}={v}" for k, v in document["environment"].items()) + ".", "",
             "| side | median s/epoch | min - max | ms/step |", "|---|---|---|---|"]
    for row in document["rows"]:
        lines.append(f"| {row['side']} | {row['median_s']:.2f} | {row['min_s']:.2f} - {row['max_s']:.2f} | "
                     f"{1000 * row['median_s'] / s.steps_per_epoch:.1f} |")
    lines += ["", f"scratchopt / Keras eager = **{ratio:.2f}** (the issue asks for at most 2)."]
    if args.profile:
        model, epoch = sides[ours_name]
        rows = profile_layers(model, s, data)
        total = sum(r["forward_s"] + r["backward_s"] for r in rows)
        document["profile"] = rows
        lines += ["", "## Where scratchopt's epoch goes (one epoch, call by call)", "",
                  "| part | forward s | backward s | share |", "|---|---|---|---|"]
        for r in sorted(rows, key=lambda r: -(r["forward_s"] + r["backward_s"])):
            lines.append(f"| {r['part']} | {r['forward_s']:.3f} | {r['backward_s']:.3f} | "
                         f"{100 * (r['forward_s'] + r['backward_s']) / total:.0f}% |")
        lines.append(f"| total | | {total:.2f} | |")
        text = cprofile(epoch)
        document["cprofile"] = text
        lines += ["", "cProfile of one `fit` epoch (by own time):", "", "```text", text.strip(), "```"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    (out / f"{args.name}.json").write_text(json.dumps(document, indent=1) + "\n")
    print("\n".join(lines))
    print(f"wrote {out / (args.name + '.md')} and {out / (args.name + '.json')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
