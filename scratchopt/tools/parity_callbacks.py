"""Callbacks against Keras: the same monitored values through both, the same decisions.

``run_callback_pair`` runs a scratchopt callback and its real Keras namesake through the same
training loop, each against a stand-in model (an SGD optimizer, one small weight that takes
a new value every epoch, a ``stop_training`` flag)::

    on_train_begin()
    for epoch in range(epochs):
        on_epoch_begin(epoch)
        weights = [full(3, epoch)]             # what "training this epoch" produced
        on_epoch_end(epoch, {monitor: values[epoch]})
        if stop_training: break
    on_train_end()

and records a ``Trace`` of each: per epoch the learning rate (its float32 bits) before and
after the epoch, the logged rate, the callback's counters (``wait``, ``best``, ...), then where
training stopped, ``stopped_epoch``, the weights after ``on_train_end``, the warnings, the
printed messages and any error. Two traces must be equal, field for field
(``first_difference`` names the first field that is not).

For the ``scratchopt parity`` table: ``CALLBACK_CONFIGS`` are the named rows, and
``run_config(config)`` gives a ``CallbackRow`` (name, epochs, exact, difference, summary).
Keras (and TensorFlow) are imported on first use only.
"""

import contextlib
import dataclasses
import io
import warnings

import numpy as np

from .. import callbacks, optimizers

KINDS = ("EarlyStopping", "ReduceLROnPlateau", "LearningRateScheduler")

#: The callback attributes recorded after every epoch, where the callback has them.
COUNTERS = ("wait", "best", "best_epoch", "cooldown_counter", "stopped_epoch", "min_delta")

#: What an epoch's logs hold when its monitored value is missing (``None`` in ``values``).
MISSING = {"unrelated_metric": 0.0}


class StandInModel:
    """The least a callback needs: ``optimizer``, ``get/set_weights``, ``stop_training``."""

    def __init__(self, optimizer, metrics=None):
        self.optimizer = optimizer
        self.stop_training = False
        self.weights = [np.full(3, -1.0, np.float32)]
        if metrics is not None:
            self.metrics = metrics

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [np.array(w, np.float32) for w in weights]


@dataclasses.dataclass
class Trace:
    epochs: list = dataclasses.field(default_factory=list)  # one dict per epoch that ended
    stopped_at: int | None = None  # the epoch after which the loop stopped
    stopped_epoch: int | None = None  # EarlyStopping's attribute after on_train_end
    final_weights: list | None = None
    error: tuple | None = None  # (hook, epoch, exception type, message)
    warnings: list = dataclasses.field(default_factory=list)
    printed: str = ""


def lr_bits(optimizer):
    """The optimizer's learning rate as the bits of a float32 (an int)."""
    return int(np.float32(np.asarray(optimizer.learning_rate)).view(np.uint32))


def _bits(value):
    """A logged float as the bits of its double (NaN payloads included)."""
    return None if value is None else int(np.float64(value).view(np.uint64))


def run_callback(callback, model, values, monitor="val_loss", epochs=None):
    """Drive ``callback`` over ``values`` (``None``: the value is missing that epoch)."""
    epochs = len(values) if epochs is None else epochs
    trace = Trace()
    hook, epoch = "set_model", None
    printed = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(printed):
        warnings.simplefilter("always")
        try:
            callback.set_model(model)
            hook = "on_train_begin"
            callback.on_train_begin()
            for epoch in range(epochs):
                hook = "on_epoch_begin"
                callback.on_epoch_begin(epoch)
                lr_begin = lr_bits(model.optimizer)
                model.weights = [np.full(3, epoch, np.float32)]
                value = values[epoch] if epoch < len(values) else None
                logs = dict(MISSING) if value is None else {monitor: value}
                hook = "on_epoch_end"
                callback.on_epoch_end(epoch, logs)
                record = {"lr_begin": lr_begin, "lr_end": lr_bits(model.optimizer),
                          "logged_lr": _bits(logs.get("learning_rate"))}
                for name in COUNTERS:
                    if hasattr(callback, name):
                        record[name] = repr(getattr(callback, name))
                trace.epochs.append(record)
                if model.stop_training:
                    trace.stopped_at = epoch
                    break
            hook, epoch = "on_train_end", None
            callback.on_train_end()
        except Exception as error:  # noqa: BLE001 (the error itself is part of what must match)
            trace.error = (hook, epoch, type(error).__name__, str(error))
    trace.stopped_epoch = getattr(callback, "stopped_epoch", None)
    trace.final_weights = [w.tolist() for w in model.weights]
    # The callbacks' own warnings (UserWarning). Not NumPy's and TF's: TF's NumPy-2
    # DeprecationWarnings when a variable is read, NumPy's overflow RuntimeWarning when a rate
    # beyond float32 is stored (TF stores the same inf, silently).
    trace.warnings = [f"{w.category.__name__}: {w.message}" for w in caught
                      if w.category is UserWarning]
    trace.printed = printed.getvalue()
    return trace


def _keras_optimizer(lr):
    from .keras_reference import keras_schedule, tensorflow

    tensorflow()
    import keras

    return keras.optimizers.SGD(learning_rate=keras_schedule(lr) if callable(lr) else lr)


def run_callback_pair(kind, kwargs, values, lr=0.01, epochs=None, schedule=None, metrics=None):
    """``(ours, keras)``: the traces of scratchopt's and Keras's ``kind`` over ``values``.

    ``lr`` is the SGD learning rate: a float, or a callable ``step -> rate`` (the optimizers
    are then built with a schedule, whose rate cannot be set). ``schedule`` is the
    LearningRateScheduler's function. ``metrics``, when given, becomes ``model.metrics`` on
    both stand-ins (the same objects). Constructor errors are raised, not traced.
    """
    from .keras_reference import tensorflow

    tensorflow()
    import keras

    kwargs = dict(kwargs) if schedule is None else {"schedule": schedule, **kwargs}
    monitor = kwargs.get("monitor", "val_loss")
    ours_callback = getattr(callbacks, kind)(**kwargs)
    keras_callback = getattr(keras.callbacks, kind)(**kwargs)
    ours = run_callback(ours_callback, StandInModel(optimizers.SGD(learning_rate=lr), metrics),
                        values, monitor, epochs)
    theirs = run_callback(keras_callback, StandInModel(_keras_optimizer(lr), metrics),
                          values, monitor, epochs)
    return ours, theirs


def _show_lr(bits):
    return f"{np.uint32(bits).view(np.float32)!s} (0x{bits:08x})"


def first_difference(ours, keras):
    """A readable description of the first place two traces differ, or None if they are equal."""
    for epoch, (a, b) in enumerate(zip(ours.epochs, keras.epochs)):
        for key in sorted(a.keys() | b.keys()):
            if a.get(key) != b.get(key):
                show = _show_lr if key.startswith("lr_") else repr
                x, y = (None if r.get(key) is None else show(r[key]) for r in (a, b))
                return f"epoch {epoch}: {key}: ours {x}, keras {y}"
    if len(ours.epochs) != len(keras.epochs):
        return f"epochs completed: ours {len(ours.epochs)}, keras {len(keras.epochs)}"
    for field in ("error", "stopped_at", "stopped_epoch", "final_weights", "warnings", "printed"):
        a, b = getattr(ours, field), getattr(keras, field)
        if a != b:
            return f"{field}: ours {a!r}, keras {b!r}"
    return None


# --- the named configurations the `scratchopt parity` table shows -------------------------------


def halve_every_3(epoch, lr):
    """A LearningRateScheduler schedule: the rate halves at epochs 3, 6, 9, ..."""
    return lr * 0.5 if epoch > 0 and epoch % 3 == 0 else lr


@dataclasses.dataclass
class CallbackConfig:
    name: str
    kind: str
    kwargs: dict
    values: list
    lr: float = 0.01
    schedule: object = None


CALLBACK_CONFIGS = [
    CallbackConfig("EarlyStopping: a plateau with exact ties", "EarlyStopping",
                   {"patience": 2}, [1.0, 0.8, 0.8, 0.8, 0.7, 0.6]),
    CallbackConfig("EarlyStopping: sub-ULP improvement is no improvement (float32)",
                   "EarlyStopping", {"patience": 0}, [0.3, 0.3 - 1e-10, 0.2]),
    CallbackConfig("EarlyStopping: improves every epoch, never beats baseline", "EarlyStopping",
                   {"patience": 1, "baseline": 0.5}, [1.0, 0.9, 0.8, 0.7, 0.6, 0.55]),
    CallbackConfig("EarlyStopping: restore_best_weights without a stop", "EarlyStopping",
                   {"patience": 10, "restore_best_weights": True}, [1.0, 0.5, 0.7, 0.8]),
    CallbackConfig("EarlyStopping: max mode, min_delta, start_from_epoch", "EarlyStopping",
                   {"monitor": "val_acc", "mode": "max", "min_delta": 0.01, "patience": 1,
                    "start_from_epoch": 2}, [0.1, 0.0, 0.5, 0.505, 0.509, 0.52, 0.52]),
    CallbackConfig("ReduceLROnPlateau: cooldown=1 (acts as cooldown=0)", "ReduceLROnPlateau",
                   {"factor": 0.5, "patience": 1, "cooldown": 1}, [1.0] * 8),
    CallbackConfig("ReduceLROnPlateau: cooldown=3", "ReduceLROnPlateau",
                   {"factor": 0.5, "patience": 1, "cooldown": 3}, [1.0] * 10),
    CallbackConfig("ReduceLROnPlateau: down to min_lr, then wait grows", "ReduceLROnPlateau",
                   {"factor": 0.1, "patience": 1, "min_lr": 1e-4}, [1.0, 0.9] + [0.9] * 8),
    CallbackConfig("LearningRateScheduler: halve every 3 epochs", "LearningRateScheduler",
                   {}, [1.0] * 10, lr=0.05, schedule=halve_every_3),
]


@dataclasses.dataclass
class CallbackRow:
    name: str
    epochs: int
    exact: bool
    difference: str | None
    summary: str


def summarize(trace):
    """One line: the rate from first to last epoch, where training stopped, the weights kept."""
    parts = []
    if trace.epochs:
        first, last = (np.uint32(trace.epochs[i]["lr_begin"]).view(np.float32) for i in (0, -1))
        end = np.uint32(trace.epochs[-1]["lr_end"]).view(np.float32)
        parts.append(f"lr {first:.6g} -> {last:.6g} -> {end:.6g}" if last != end
                     else f"lr {first:.6g} -> {end:.6g}")
    parts.append("ran to the end" if trace.stopped_at is None else f"stopped after epoch {trace.stopped_at}")
    if trace.final_weights:
        parts.append(f"weights of epoch {trace.final_weights[0][0]:g}")
    if trace.error:
        parts.append(f"{trace.error[2]} in {trace.error[0]}")
    return ", ".join(parts)


def run_config(config):
    """One table row: the config through both callbacks, compared."""
    ours, theirs = run_callback_pair(config.kind, config.kwargs, config.values, lr=config.lr,
                                     schedule=config.schedule)
    difference = first_difference(ours, theirs)
    return CallbackRow(config.name, len(ours.epochs), difference is None, difference, summarize(ours))
