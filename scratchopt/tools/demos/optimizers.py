"""The lesson's "Optimizer Comparison", rerun from scratch and, when TensorFlow is installed, in Keras.

The lesson's experiment: 1000 x 10 standard-normal inputs (seed 42), the target is the sum
of the first three features plus 0.1 noise; Dense(64, relu) -> Dense(32, relu) -> Dense(1),
MSE, 50 epochs, validation_split 0.2, batch 32; five optimizers. Both sides start from the
same weights (Keras's Glorot draw, copied into scratchopt) and see the batches in the
same order (``shuffle=False``). Keras runs eagerly (``run_eagerly=True``), so no graph
rewrite changes its arithmetic (KERAS_SEMANTICS §0.6).

In float64 the two agree to the last bit, every epoch, for all five optimizers. In float32
Keras's matmul runs oneDNN's FMA kernels, which scratchopt does not reproduce, so the
losses differ in the last bits, and the difference grows with training (most for RMSprop,
whose step divides by a small ``sqrt(v)``): ``parity_tests/test_nn.py`` measures it.
"""

import importlib.util
from pathlib import Path

import numpy as np

from ... import nn, optimizers

EPOCHS = 50
#: The lesson's five optimizers, as literal calls (class name, arguments): scratchopt's and
#: Keras's are each built from these arguments, with their own defaults for the rest.
OPTIMIZERS = {
    "SGD": ("SGD", {"learning_rate": 0.01}),
    "SGD + momentum": ("SGD", {"learning_rate": 0.01, "momentum": 0.9}),
    "Adam": ("Adam", {"learning_rate": 1e-3}),
    "AdamW": ("AdamW", {"learning_rate": 1e-3, "weight_decay": 0.01}),
    "RMSprop": ("RMSprop", {"learning_rate": 1e-3}),
}


#: ``scratchopt demo optimizers --all``: the second figure, every other optimizer Keras ships,
#: at a rate in each one's usual range (Keras's default where it trains this task in 50
#: epochs; Adagrad, Adadelta, Ftrl and Lion move too slowly, or too fast, at 0.001). Muon
#: takes ``rms_rate=None``, so that float64 runs too (Keras raises on float64 matrices with
#: it set); LossScaleOptimizer wraps the lesson's Adam.
OTHER_OPTIMIZERS = {
    "Nadam": ("Nadam", {"learning_rate": 1e-3}),
    "Adamax": ("Adamax", {"learning_rate": 1e-3}),
    "Adagrad": ("Adagrad", {"learning_rate": 0.01}),
    "Adadelta": ("Adadelta", {"learning_rate": 1.0}),
    "Ftrl": ("Ftrl", {"learning_rate": 0.05}),
    "Lion": ("Lion", {"learning_rate": 1e-4}),
    "Lamb": ("Lamb", {"learning_rate": 1e-3}),
    "Adafactor": ("Adafactor", {}),
    "Muon": ("Muon", {"learning_rate": 0.01, "rms_rate": None}),
    "ScheduleFreeAdamW": ("ScheduleFreeAdamW", {"learning_rate": 1e-3}),
    "LossScaleOptimizer(Adam)": ("LossScaleOptimizer", {"inner_optimizer": ("Adam", {"learning_rate": 1e-3})}),
}
EVERY_OPTIMIZER = {**OPTIMIZERS, **OTHER_OPTIMIZERS}


def make_optimizer(name):
    """scratchopt's optimizer for the lesson's ``name`` (or one of ``OTHER_OPTIMIZERS``)."""
    return _build(optimizers, *EVERY_OPTIMIZER[name])


def _build(module, cls, kwargs):
    """``module.<cls>(**kwargs)``, an ``inner_optimizer`` given as (class, arguments) built first."""
    kwargs = dict(kwargs)
    if "inner_optimizer" in kwargs:
        kwargs["inner_optimizer"] = _build(module, *kwargs["inner_optimizer"])
    return getattr(module, cls)(**kwargs)


def lesson_data(dtype="float32"):
    """The lesson's data: ``np.random.seed(42)``, X ~ N(0, 1), y = x0 + x1 + x2 + 0.1 noise."""
    rng = np.random.RandomState(42)
    x = rng.randn(1000, 10)
    y = (x[:, 0] + x[:, 1] + x[:, 2] + 0.1 * rng.randn(1000)).reshape(-1, 1)
    return x.astype(dtype), y.astype(dtype)


def lesson_model(dtype="float32", seed=None):
    return nn.Sequential([nn.Dense(64, "relu", seed=seed, dtype=dtype),
                          nn.Dense(32, "relu", seed=seed, dtype=dtype),
                          nn.Dense(1, seed=seed, dtype=dtype)])


def run_scratchopt(name, epochs=EPOCHS, dtype="float32", weights=None):
    """History of one optimizer on the lesson's task; ``weights`` to start from given weights."""
    x, y = lesson_data(dtype)
    model = lesson_model(dtype, seed=0)
    model(x[:1])
    if weights is not None:
        model.set_weights(weights)
    model.compile(make_optimizer(name), nn.MeanSquaredError())
    return model.fit(x, y, epochs=epochs, batch_size=32, validation_split=0.2, shuffle=False, verbose=0)


def run_keras(name, epochs=EPOCHS, dtype="float32", seed=0):
    """Keras on the same task: (its History.history, its initial weights)."""
    from ..keras_reference import keras_optimizer_from, tensorflow

    tensorflow()
    import keras

    # The optimizer under Keras's default floatx, float32: Keras keeps the learning rate in a
    # variable of floatx, and scratchopt keeps it in float32 (Keras's default), at every
    # precision of the weights. Made under floatx float64, Keras's rate 0.01 would be the
    # double 0.01, and scratchopt's float32(0.01) would not be what this compares.
    cls, kwargs = EVERY_OPTIMIZER[name]
    if "inner_optimizer" in kwargs:
        kwargs = {**kwargs, "inner_optimizer": keras_optimizer_from(*kwargs["inner_optimizer"])}
    optimizer = keras_optimizer_from(cls, kwargs)
    previous = keras.config.floatx()
    keras.config.set_floatx(dtype)
    try:
        keras.utils.set_random_seed(seed)
        # dtype on every layer: Keras's global dtype policy does not follow set_floatx once
        # any layer has been built in this process.
        model = keras.Sequential([keras.Input((10,), dtype=dtype),
                                  keras.layers.Dense(64, activation="relu", dtype=dtype),
                                  keras.layers.Dense(32, activation="relu", dtype=dtype),
                                  keras.layers.Dense(1, dtype=dtype)])
        weights = model.get_weights()
        model.compile(optimizer=optimizer, loss="mse", run_eagerly=True)
        x, y = lesson_data(dtype)
        history = model.fit(x, y, epochs=epochs, batch_size=32, validation_split=0.2, shuffle=False,
                            verbose=0)
        return history.history, weights
    finally:
        keras.config.set_floatx(previous)


def compare(name, epochs=EPOCHS, dtype="float32"):
    """Both runs from Keras's initial weights: (ours, Keras's) histories as dicts of lists."""
    theirs, weights = run_keras(name, epochs, dtype)
    ours = run_scratchopt(name, epochs, dtype, weights=weights).history
    return ours, theirs


def draw(path, ours, theirs=None, title="Optimizer Comparison", reference=None):
    """The validation-loss curves; ``reference``: (name, history) drawn in gray for comparison."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6))
    if reference is not None:
        label, history = reference
        ax.plot(np.arange(1, len(history["val_loss"]) + 1), history["val_loss"], color="0.6", linewidth=4,
                alpha=0.6, label=f"{label} (the lesson's)")
    colors = plt.get_cmap("tab20").colors if len(ours) > 10 else [f"C{i}" for i in range(10)]
    for i, (name, history) in enumerate(ours.items()):
        epochs = np.arange(1, len(history["val_loss"]) + 1)
        ax.plot(epochs, history["val_loss"], color=colors[i % len(colors)], linewidth=2, label=name)
        if theirs is not None:
            ax.plot(epochs, theirs[name]["val_loss"], "--", color="black", linewidth=1,
                    label="Keras" if i == 0 else None)
    ax.set_yscale("log")
    ax.set_xlabel("Epoch")
    ax.set_ylabel("Validation loss")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", ncol=2 if len(ours) > 6 else 1)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def all_path(path):
    """Where ``--all`` writes its second figure: ``lesson_optimizers.png`` -> ``lesson_optimizers_all.png``."""
    path = Path(path)
    return path.with_name(f"{path.stem}_all{path.suffix or '.png'}")


def main(path, dtype="float32", epochs=EPOCHS, every=False):
    """Run the comparison, print the final-loss table, write the PNG; returns the exit code.

    ``every`` (``--all``): also every other optimizer Keras ships (``OTHER_OPTIMIZERS``), in
    a second figure (``all_path(path)``), with the lesson's Adam drawn in gray beside them.

    Progress goes to stderr (``tools/progress.py``): a bar on a terminal, else a line as each
    run starts (Keras's eager ``model.fit`` is most of the time: about a minute per optimizer
    for the 50 epochs on the 2-core machine)."""
    from ..progress import Stages

    if importlib.util.find_spec("matplotlib") is None:
        print('scratchopt demo draws with matplotlib, which is not installed. Install with:\n'
              '  pip install "scratchopt[demo]"')
        return 2
    names = list(EVERY_OPTIMIZER if every else OPTIMIZERS)
    with_keras = importlib.util.find_spec("tensorflow") is not None
    ours, theirs = {}, {} if with_keras else None
    with Stages(len(names) * (2 if with_keras else 1), "scratchopt demo optimizers") as stages:
        for name in names:
            weights = None
            if with_keras:
                stages.start(f"{name}: Keras model.fit, {epochs} epochs, {dtype}")
                theirs[name], weights = run_keras(name, epochs, dtype)
            stages.start(f"{name}: scratchopt Sequential.fit, {epochs} epochs, {dtype}")
            ours[name] = run_scratchopt(name, epochs, dtype, weights=weights).history
    width = max(16, max(map(len, names)) + 2)
    print(f"{dtype}, {epochs} epochs" + (", from Keras's initial weights" if with_keras else ""))
    header = f"{'optimizer':<{width}}{'loss':>12}{'val_loss':>12}"
    if with_keras:
        header += f"{'Keras val_loss':>16}{'max |diff| per epoch':>24}"
    print(header)
    for name, history in ours.items():
        line = f"{name:<{width}}{history['loss'][-1]:>12.6f}{history['val_loss'][-1]:>12.6f}"
        if with_keras:
            gap = max(max(abs(a - b) for a, b in zip(history[k], theirs[name][k])) for k in ("loss", "val_loss"))
            line += f"{theirs[name]['val_loss'][-1]:>16.6f}{gap:>24.3g}"
        print(line)
    if not with_keras:
        print("TensorFlow is not installed: Keras's curves are not drawn.")
    lesson = {k: v for k, v in ours.items() if k in OPTIMIZERS}
    draw(path, lesson, theirs)
    print(f"wrote {path}")
    if every:
        others = {k: v for k, v in ours.items() if k in OTHER_OPTIMIZERS}
        draw(all_path(path), others, theirs, title="Optimizer Comparison: every other optimizer Keras ships",
             reference=("Adam", ours["Adam"]))
        print(f"wrote {all_path(path)}")
    return 0
