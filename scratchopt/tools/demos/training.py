"""The lesson's "Complete Training Setup", rerun from scratch and, when TensorFlow is installed, in Keras.

The lesson's model is three blocks of ``Conv2D -> BatchNormalization -> ReLU -> MaxPooling2D
-> SpatialDropout2D`` with 64, 128 and 256 filters, ``GlobalAveragePooling2D``,
``Dense(256)`` with an ``L2(0.01)`` kernel penalty, ``BatchNormalization``, ``ReLU``,
``Dropout(0.5)`` and a ``Dense(10, activation="softmax")`` output, trained with AdamW on a
CosineDecay schedule with EarlyStopping, ModelCheckpoint (``best_model.keras``),
ReduceLROnPlateau and TensorBoard.

Here it trains on scikit-learn's ``load_digits`` (1,797 8x8 grey images of the digits 0-9,
shipped with scikit-learn: no download), so the widths are scaled down by four to fit 8x8
images: 16, 32 and 64 filters and ``Dense(64)``. The convolutions are 3x3 with ``padding="same"``,
so the three 2x2 poolings take the image from 8x8 to 4x4, 2x2 and 1x1.

What is the lesson's and what is ours (``Settings`` holds every number):

* the layers, their order, ``L2(0.01)``, ``Dropout(0.5)``, the softmax output, AdamW on
  CosineDecay and the four callbacks are the lesson's;
* ours: the widths (above), ``SpatialDropout2D(0.2)``, BatchNormalization's Keras default
  momentum 0.99 (with 90 steps per epoch the moving statistics catch up in two or three
  epochs; over a 3-epoch run they would not, and Keras itself stays at 0.10-0.35 validation
  accuracy), CosineDecay from 0.01 down to
  0 over the whole run (``decay_steps = epochs * steps_per_epoch``), AdamW's Keras default
  ``weight_decay=0.004``, batches of 16, ``EarlyStopping(patience=5,
  restore_best_weights=True)``, ``ReduceLROnPlateau(factor=0.5, patience=3)``, 15 epochs;
* the data: the 1,797 images in one fixed random order (``RandomState(0)``), the first 1,437
  for training and the last 360 for validation, standardized by the training images' mean
  and standard deviation (one number each: the border pixels are always 0, so a per-pixel
  standard deviation would divide by 0); labels are class indices, so the loss is
  ``sparse_categorical_crossentropy``.

Both sides start from the same weights (Keras's draw, copied into scratchopt layer by layer,
BatchNormalization's moving statistics included) and see the batches in the same order
(``shuffle=False`` on the fixed order above). Keras runs eagerly (``run_eagerly=True``): the
float64 comparison is against eager Keras, whose graph mode differs by about 1e-8.
Every dropout layer is seeded with ``Settings.seed`` on both sides (Keras's too), and
scratchopt's draw TF's Philox numbers from the same seed pairs (``numerics/philox.py``), so
both runs drop the same units at every step. In float64 the losses agree epoch by epoch,
with dropout or without (``--no-dropout``: every rate 0) (``BOUND``, ``FULL_RUN_BOUND``:
measured, see below).

**ReduceLROnPlateau meets a schedule.** Keras's ``ReduceLROnPlateau`` lowers the rate by
``optimizer.learning_rate = old_lr * factor``, and the setter of an optimizer built on a
``LearningRateSchedule`` refuses a number: ``TypeError: This optimizer was created with a
`LearningRateSchedule` object as its `learning_rate` constructor argument, hence its learning
rate is not settable.`` (``keras/src/callbacks/reduce_lr_on_plateau.py``,
``_reduce_optimizer_lr``; ``keras/src/optimizers/base_optimizer.py``, the
``learning_rate`` setter). Nothing happens until the first plateau (each epoch it only reads
the rate into ``logs["learning_rate"]``); at the first plateau ``model.fit`` stops with that
``TypeError``. scratchopt's optimizers refuse the same way, so both runs stop at the same
epoch (measured: ``parity_tests/test_training_demo.py``). The demo keeps the lesson's callbacks
as written and reports where that happened, if it did; ``best_model.keras`` then still holds
the best epoch so far. (A plateau found at the end of the last epoch passes quietly: the
cosine is 0 there, and the callback lowers only a rate above ``min_lr``.)
"""

import dataclasses
import importlib.util
import time
from pathlib import Path

import numpy as np

EPOCHS = 15
#: float64, the relative difference per epoch ``|ours - Keras| / |Keras|`` of the loss and the
#: val_loss, measured (Keras 3.15.1 / TF 2.21 eager, 2-core Xeon):
#:
#: * with dropout (the default; 2026-12-01, both sides drawing the same masks): the quick run
#:   (``Settings.quick``: 256 + 64 images, 2 epochs) at most 6.6e-16 (loss) and 2.7e-13
#:   (val_loss); the full run (15 epochs of 90 steps) at most 9.2e-14 and 8.5e-12;
#: * without dropout (``--no-dropout``, 2026-11-30): the quick run at most 2.3e-16 and
#:   2.1e-12; the full run 6e-15 / 1.2e-11 after the first epoch, then about ten times more
#:   every epoch from the fifth, to at most 7.4e-7 (loss) and 5.6e-5 (val_loss). The training
#:   itself amplifies that much: scratchopt against itself, with its initial weights moved by
#:   1e-13 (relative), differs by 2e-5 / 1.4e-4 after 15 epochs.
#:
#: ``BOUND`` = 1e-10 is what the test allows the quick run; ``FULL_RUN_BOUND`` covers both full
#: runs. The accuracies (counts of right answers) are the same in every epoch of all four.
BOUND = 1e-10
FULL_RUN_BOUND = 1e-4


@dataclasses.dataclass
class Settings:
    """Every number of the run; the defaults are the demo's (see the module docstring)."""

    epochs: int = EPOCHS
    dtype: str = "float32"
    dropout: bool = True
    filters: tuple = (16, 32, 64)
    dense_units: int = 64
    spatial_dropout: float = 0.2
    dense_dropout: float = 0.5
    l2: float = 0.01
    bn_momentum: float = 0.99
    batch_size: int = 16
    learning_rate: float = 0.01
    weight_decay: float = 0.004
    early_stopping_patience: int = 5
    plateau_factor: float = 0.5
    plateau_patience: int = 3
    plateau_mode: str = "auto"  # "max" on val_loss: a plateau at the first fall (tests only)
    n_train: int = 1437
    n_val: int = 360
    seed: int = 0

    @classmethod
    def quick(cls, **changes):
        """A run for tests and docs: 256 training and 64 validation images, 2 epochs."""
        return cls(**{"epochs": 2, "n_train": 256, "n_val": 64, **changes})

    @property
    def rates(self):
        """(SpatialDropout2D's rate, Dropout's rate): 0 and 0 with ``dropout=False``."""
        return (self.spatial_dropout, self.dense_dropout) if self.dropout else (0.0, 0.0)

    @property
    def steps_per_epoch(self):
        return -(-self.n_train // self.batch_size)

    @property
    def decay_steps(self):
        return self.epochs * self.steps_per_epoch


def digits(settings):
    """``(x_train, y_train, x_val, y_val)``: load_digits in a fixed order, standardized, NHWC."""
    from sklearn.datasets import load_digits

    data = load_digits()
    order = np.random.RandomState(0).permutation(len(data.target))
    images, labels = data.images[order].astype(np.float64), data.target[order].astype(np.int64)
    train, val = slice(0, 1437), slice(1437, 1797)
    mean, std = images[train].mean(), images[train].std()
    x = ((images - mean) / std)[..., None].astype(settings.dtype)
    return (x[train][:settings.n_train], labels[train][:settings.n_train],
            x[val][:settings.n_val], labels[val][:settings.n_val])


# --- scratchopt's side -------------------------------------------------------------------------


def scratchopt_model(settings):
    """The lesson's model in scratchopt (``settings`` gives the widths, rates and dtype)."""
    from ... import layers, nn, regularizers
    from ...nn import Conv2D, GlobalAveragePooling2D, MaxPooling2D

    dtype, (spatial, dense) = settings.dtype, settings.rates
    blocks = []
    for filters in settings.filters:
        blocks += [Conv2D(filters, 3, padding="same", dtype=dtype),
                   layers.BatchNormalization(momentum=settings.bn_momentum),
                   nn.ReLU(),
                   MaxPooling2D(2),
                   layers.SpatialDropout2D(spatial, seed=settings.seed)]
    return nn.Sequential([*blocks,
                          GlobalAveragePooling2D(),
                          nn.Dense(settings.dense_units, kernel_regularizer=regularizers.L2(settings.l2),
                                   dtype=dtype),
                          layers.BatchNormalization(momentum=settings.bn_momentum),
                          nn.ReLU(),
                          layers.Dropout(dense, seed=settings.seed),
                          nn.Dense(10, activation="softmax", dtype=dtype)])


def scratchopt_optimizer(settings):
    from ... import optimizers, schedules

    schedule = schedules.CosineDecay(settings.learning_rate, decay_steps=settings.decay_steps)
    return optimizers.AdamW(learning_rate=schedule, weight_decay=settings.weight_decay)


def scratchopt_callbacks(settings, folder):
    """The lesson's four callbacks, writing into ``folder``."""
    from ... import callbacks

    return [callbacks.EarlyStopping(monitor="val_loss", patience=settings.early_stopping_patience,
                                    restore_best_weights=True),
            callbacks.ModelCheckpoint(str(folder / "best_model.keras"), monitor="val_loss", save_best_only=True),
            callbacks.ReduceLROnPlateau(monitor="val_loss", factor=settings.plateau_factor,
                                        patience=settings.plateau_patience, mode=settings.plateau_mode),
            callbacks.TensorBoard(log_dir=str(folder / "logs"))]


def copy_weights(keras_model, model):
    """Keras's weights into scratchopt's model, layer by layer and by name (``kernel``,
    ``bias``, ``gamma``, ``beta``, ``moving_mean``, ``moving_variance``)."""
    ours = [layer for layer in model.layers]
    theirs = [layer for layer in keras_model.layers]
    if len(ours) != len(theirs):
        raise ValueError(f"{len(ours)} scratchopt layers, {len(theirs)} Keras layers")
    for mine, keras_layer in zip(ours, theirs):
        for variable in keras_layer.weights:
            name = variable.name.split("/")[-1].split(":")[0]
            target = mine.params[name] if name in mine.params else getattr(mine, name)
            value = np.asarray(variable.numpy())
            if target.shape != value.shape:
                raise ValueError(f"{type(mine).__name__}.{name}: shape {target.shape}, Keras's {value.shape}")
            target[...] = value


@dataclasses.dataclass
class Run:
    """One training run: per-epoch logs (``history``), seconds per epoch, and the error that
    stopped it (``None`` when it ran to the end or EarlyStopping stopped it)."""

    history: dict
    seconds: list
    error: str = None
    stopped_epoch: int = None  # the epoch (from 1) at which ``error`` was raised


class _Clock:
    """Records each epoch's logs and wall time; first in the list, so it records an epoch
    even when a later callback raises in ``on_epoch_end``."""

    def __init__(self):
        self.history, self.seconds, self._start = {}, [], None

    def begin(self):
        self._start = time.perf_counter()

    def end(self, logs):
        self.seconds.append(time.perf_counter() - self._start)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))


def _clock(base):
    """A callback (of ``base``: scratchopt's ``Callback`` or Keras's) that times each epoch
    and keeps its logs, the same for both frameworks."""

    class Clock(base):
        def __init__(self):
            super().__init__()
            self.clock = _Clock()

        def on_epoch_begin(self, epoch, logs=None):
            self.clock.begin()

        def on_epoch_end(self, epoch, logs=None):
            self.clock.end(logs)

    return Clock()


def run_scratchopt(settings, folder, weights_from=None, data=None):
    """Train scratchopt's model; ``weights_from`` a Keras model to start from its weights."""
    from ...callbacks import Callback
    from ...nn.losses import SparseCategoricalCrossentropy

    x_train, y_train, x_val, y_val = data or digits(settings)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = scratchopt_model(settings)
    model(x_train[:1])  # builds every layer
    if weights_from is not None:
        copy_weights(weights_from, model)
    model.compile(scratchopt_optimizer(settings), SparseCategoricalCrossentropy(), metrics=["accuracy"])
    clock = _clock(Callback)
    run = Run(clock.clock.history, clock.clock.seconds)
    try:
        model.fit(x_train, y_train, epochs=settings.epochs, batch_size=settings.batch_size,
                  validation_data=(x_val, y_val), shuffle=False, verbose=0,
                  callbacks=[clock, *scratchopt_callbacks(settings, folder)])
    except TypeError as error:  # ReduceLROnPlateau on a schedule (see the module docstring)
        run.error, run.stopped_epoch = f"TypeError: {error}", len(run.seconds)
    return run


# --- Keras's side -------------------------------------------------------------------------------


def keras_model(settings):
    """The same model in Keras, every layer in ``settings.dtype``; its weights drawn from
    ``keras.utils.set_random_seed(settings.seed)``."""
    from ..keras_reference import tensorflow

    tensorflow()
    import keras

    dtype, (spatial, dense) = settings.dtype, settings.rates
    L = keras.layers
    previous = keras.config.floatx()
    keras.config.set_floatx(dtype)
    try:
        keras.utils.set_random_seed(settings.seed)
        blocks = []
        for filters in settings.filters:
            # dtype on every layer: Keras's dtype policy does not follow set_floatx once a
            # layer has been built in this process.
            blocks += [L.Conv2D(filters, 3, padding="same", dtype=dtype),
                       L.BatchNormalization(momentum=settings.bn_momentum, dtype=dtype),
                       L.ReLU(dtype=dtype),
                       L.MaxPooling2D(2, dtype=dtype),
                       L.SpatialDropout2D(spatial, seed=settings.seed, dtype=dtype)]
        return keras.Sequential([keras.Input((8, 8, 1), dtype=dtype), *blocks,
                                 L.GlobalAveragePooling2D(dtype=dtype),
                                 L.Dense(settings.dense_units, kernel_regularizer=keras.regularizers.L2(settings.l2),
                                         dtype=dtype),
                                 L.BatchNormalization(momentum=settings.bn_momentum, dtype=dtype),
                                 L.ReLU(dtype=dtype),
                                 L.Dropout(dense, seed=settings.seed, dtype=dtype),
                                 L.Dense(10, activation="softmax", dtype=dtype)])
    finally:
        keras.config.set_floatx(previous)


def keras_optimizer(settings):
    """AdamW on CosineDecay, made under Keras's default floatx (float32), as scratchopt keeps
    its rate: see ``demos/optimizers.py``."""
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(settings.learning_rate, decay_steps=settings.decay_steps)
    return keras.optimizers.AdamW(learning_rate=schedule, weight_decay=settings.weight_decay)


def keras_callbacks(settings, folder):
    import keras

    return [keras.callbacks.EarlyStopping(monitor="val_loss", patience=settings.early_stopping_patience,
                                          restore_best_weights=True),
            keras.callbacks.ModelCheckpoint(str(folder / "best_model.keras"), monitor="val_loss",
                                            save_best_only=True),
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=settings.plateau_factor,
                                              patience=settings.plateau_patience, mode=settings.plateau_mode),
            keras.callbacks.TensorBoard(log_dir=str(folder / "logs"))]


def run_keras(settings, folder, model=None, data=None):
    """Train the Keras model (``keras_model(settings)`` unless given) eagerly."""
    x_train, y_train, x_val, y_val = data or digits(settings)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    import keras

    model = model if model is not None else keras_model(settings)
    optimizer = keras_optimizer(settings)  # under floatx float32, before the switch below
    clock = _clock(keras.callbacks.Callback)
    run = Run(clock.clock.history, clock.clock.seconds)
    previous = keras.config.floatx()
    # The loss and the metrics under the model's dtype: a float32 loss next to a float64 L2
    # penalty is a "Pack" dtype error in Keras's sum of the losses.
    keras.config.set_floatx(settings.dtype)
    try:
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                      run_eagerly=True)
        model.fit(x_train, y_train, epochs=settings.epochs, batch_size=settings.batch_size,
                  validation_data=(x_val, y_val), shuffle=False, verbose=0,
                  callbacks=[clock, *keras_callbacks(settings, folder)])
    except TypeError as error:
        run.error, run.stopped_epoch = f"TypeError: {error}", len(run.seconds)
    finally:
        keras.config.set_floatx(previous)
    return run


# --- both ---------------------------------------------------------------------------------------


def compare(settings, folder, stages=None, with_keras=True):
    """Both runs from the same initial weights: ``(ours, Keras's)`` Runs (Keras's None
    without ``with_keras``). Keras's model is built first (its weights are the common start);
    scratchopt trains first (Keras's training changes those weights). ``stages``: a
    ``progress.Stages`` to announce each run on."""
    folder = Path(folder)
    data = digits(settings)
    theirs_model = keras_model(settings) if with_keras else None
    if stages is not None:
        stages.start(f"scratchopt Sequential.fit, {settings.epochs} epochs, {settings.dtype}")
    ours = run_scratchopt(settings, folder / "scratchopt", weights_from=theirs_model, data=data)
    if not with_keras:
        return ours, None
    if stages is not None:
        stages.start(f"Keras model.fit (eager), {settings.epochs} epochs, {settings.dtype}")
    theirs = run_keras(settings, folder / "keras", model=theirs_model, data=data)
    return ours, theirs


def relative_gaps(ours, theirs, keys=("loss", "val_loss")):
    """``{key: [|ours - Keras| / |Keras| per epoch]}`` over the epochs both ran."""
    gaps = {}
    for key in keys:
        a, b = ours.history.get(key, []), theirs.history.get(key, [])
        gaps[key] = [abs(x - y) / abs(y) for x, y in zip(a, b)]
    return gaps


def max_gap(ours, theirs):
    return max((g for gaps in relative_gaps(ours, theirs).values() for g in gaps), default=0.0)


def table(ours, theirs=None):
    """The per-epoch table, scratchopt and Keras side by side, as text."""
    keys = ("loss", "accuracy", "val_loss", "val_accuracy")
    short = {"loss": "loss", "accuracy": "acc", "val_loss": "val_loss", "val_accuracy": "val_acc"}
    lines = []
    if theirs is None:
        lines.append(f"{'epoch':>5}" + "".join(f"{short[k]:>12}" for k in keys) + f"{'s/epoch':>10}")
        for i, seconds in enumerate(ours.seconds):
            lines.append(f"{i + 1:>5}" + "".join(f"{ours.history[k][i]:>12.6f}" for k in keys) + f"{seconds:>10.2f}")
        return "\n".join(lines)
    head = f"{'':>5}" + "".join(f"{short[k] + ' (ours | Keras)':>27}" for k in keys) + f"{'s/epoch (ours | Keras)':>25}"
    lines.append(head)
    gaps = relative_gaps(ours, theirs)
    for i in range(max(len(ours.seconds), len(theirs.seconds))):
        row = f"{i + 1:>5}"
        for k in keys:
            a = ours.history[k][i] if i < len(ours.history.get(k, [])) else float("nan")
            b = theirs.history[k][i] if i < len(theirs.history.get(k, [])) else float("nan")
            row += f"{a:>14.6f}{b:>13.6f}"
        a = ours.seconds[i] if i < len(ours.seconds) else float("nan")
        b = theirs.seconds[i] if i < len(theirs.seconds) else float("nan")
        row += f"{a:>13.2f}{b:>12.2f}"
        if i < len(gaps["loss"]):
            row += f"   rel. diff loss {gaps['loss'][i]:.1e}, val_loss {gaps['val_loss'][i]:.1e}"
        lines.append(row)
    return "\n".join(lines)


def draw(path, ours, theirs=None, title=""):
    """Training and validation loss (left) and accuracy (right): scratchopt solid, Keras dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for j, (key, label) in enumerate(((metric, "training"), (f"val_{metric}", "validation"))):
            # scratchopt wide and light, Keras dashed on top: where they agree, both show
            for run, style, who in ((ours, "-", "scratchopt"), (theirs, "--", "Keras")):
                if run is None or not run.history.get(key):
                    continue
                values = run.history[key]
                solid = style == "-"
                ax.plot(np.arange(1, len(values) + 1), values, style, color=f"C{j}", linewidth=4 if solid else 1.5,
                        alpha=0.45 if solid else 1.0, zorder=2 if solid else 3, label=f"{who} {label}")
        ax.set_xlabel("Epoch")
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
        ax.legend()
    axes[0].set_yscale("log")
    fig.suptitle(title or "The lesson's complete training setup (load_digits)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def describe(settings):
    spatial, dense = settings.rates
    widths = "/".join(str(f) for f in settings.filters)
    return (f"{settings.dtype}, {settings.epochs} epochs, {settings.n_train} training / {settings.n_val} "
            f"validation images, batch {settings.batch_size}; filters {widths}, Dense({settings.dense_units}); "
            f"SpatialDropout2D({spatial}), Dropout({dense}); BN momentum {settings.bn_momentum}; "
            f"AdamW(CosineDecay({settings.learning_rate}, {settings.decay_steps}), "
            f"weight_decay={settings.weight_decay})")


def main(path, dtype="float32", epochs=None, dropout=True, quick=False, runs=None):
    """Run the comparison, print the table, write the PNG, and the callbacks' files into
    ``runs`` (default: a ``<PNG name>_runs`` folder next to the PNG), one subfolder per
    framework; returns the exit code. ``epochs`` None: 15, or 2 with ``quick``."""
    from ..progress import Stages

    if importlib.util.find_spec("matplotlib") is None or importlib.util.find_spec("sklearn") is None:
        print('scratchopt demo training needs matplotlib and scikit-learn. Install with:\n'
              '  pip install "scratchopt[demo]"')
        return 2
    path = Path(path)
    settings = (Settings.quick if quick else Settings)(dtype=dtype, dropout=dropout,
                                                       **({} if epochs is None else {"epochs": epochs}))
    folder = Path(runs) if runs is not None else path.parent / f"{path.stem}_runs"
    with_keras = importlib.util.find_spec("tensorflow") is not None
    with Stages(2 if with_keras else 1, "scratchopt demo training") as stages:
        ours, theirs = compare(settings, folder, stages, with_keras)
    print(describe(settings) + (", from Keras's initial weights" if with_keras else ""))
    print(table(ours, theirs))
    for who, run in (("scratchopt", ours), ("Keras", theirs)):
        if run is not None and run.error:
            print(f"{who}: model.fit stopped at epoch {run.stopped_epoch}: {run.error}")
    if with_keras:
        print(f"median s/epoch: scratchopt {np.median(ours.seconds):.2f}, Keras (eager) {np.median(theirs.seconds):.2f}")
        gap = max_gap(ours, theirs)
        print(f"max relative difference per epoch (loss, val_loss): {gap:.3g}")
        print(f"best val_accuracy: scratchopt {max(ours.history['val_accuracy']):.4f}, "
              f"Keras {max(theirs.history['val_accuracy']):.4f}")
    else:
        print("TensorFlow is not installed: Keras's curves are not drawn.")
    draw(path, ours, theirs, title=f"The lesson's training setup on load_digits ({dtype}"
                                   f"{'' if dropout else ', no dropout'})")
    print(f"wrote {path} (callbacks' files in {folder})")
    return 0
