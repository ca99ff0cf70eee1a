"""Training callbacks: change the learning rate, or stop training, from what each epoch reports.

A callback is a handful of hooks that a training loop calls at fixed points::

    callback.set_model(model)       # model.optimizer; model.get_weights()/set_weights()
    callback.on_train_begin()
    for epoch in range(epochs):     # epochs count from 0
        callback.on_epoch_begin(epoch)
        ...                         # one epoch of training
        callback.on_epoch_end(epoch, logs={"val_loss": 0.31})
        if model.stop_training:
            break
    callback.on_train_end()

Three callbacks, each Keras's (``keras/src/callbacks/`` in Keras 3.15) line for line:

* ``LearningRateScheduler(schedule)``: at the start of each epoch, ``lr = schedule(epoch, lr)``.
* ``ReduceLROnPlateau``: when the monitored value has not improved for ``patience`` epochs,
  ``lr = lr * factor``, then rest for ``cooldown`` epochs.
* ``EarlyStopping``: when it has not improved for ``patience`` epochs, stop; optionally put
  the best epoch's weights back.

"Improved" (both monitoring callbacks, ``_Monitor`` below) is Keras's test::

    best is None (the first value)  ->  improved
    mode "min":  improved = (current + |min_delta|) < best        strictly; NaN never improves
    mode "max":  improved = (current - |min_delta|) > best
    mode "auto": "min" for "loss"/"val_loss", else the metric's direction (see _set_monitor_op)

``min_delta`` is an absolute threshold, not a relative one. The subtraction happens in
Python/NumPy, then ``keras.ops.less`` turns both sides into tensors before comparing: a
Python float becomes float32, a Python int int32, a NumPy scalar keeps its dtype, and the
comparison runs in the wider float. So with Python floats the test is done in **float32**:
``0.3 - 1e-10 < 0.3`` is True in Python and False here, as in Keras (``less`` below). And TF's
CPU kernels read subnormal float32/float64 numbers as zero: ``-1e-45 < 0.0`` is False.

Everything reaches the optimizer through its ``learning_rate`` property, which holds a
float32: a rate set to 0.05 reads back as 0.05000000074505806.

Where we refuse what Keras accepts (Keras takes each of these at construction, then
misbehaves or fails later; we raise at construction, naming the argument and its value):

* an unknown ``mode`` (Keras warns and falls back to "auto", so a typo such as ``"mx"``
  silently picks a direction): ``ValueError``; a ``mode`` that is not a string: ``TypeError``;
* ``monitor`` not a string: ``TypeError``;
* ``patience``, ``cooldown``, ``start_from_epoch``, ``min_lr`` or ``baseline`` not a number,
  and a ``bool`` for any number (Keras reads ``True`` as 1): ``TypeError`` (a string
  ``factor`` or ``min_delta`` is a ``TypeError`` in Keras too; ``factor=True`` is Keras's
  ``ValueError``, as ``True >= 1.0``);
* ``patience``, ``cooldown``, ``start_from_epoch`` negative or NaN: ``ValueError``;
* ``min_delta`` or ``factor`` NaN or infinite, ``min_lr`` negative, NaN or infinite: ``ValueError``;
* ``verbose`` not an int: ``TypeError``; ``restore_best_weights`` not a bool: ``TypeError``;
* ``schedule`` not callable: ``TypeError`` (Keras fails at the first epoch);
* unknown keyword arguments to ``ReduceLROnPlateau``: ``TypeError`` (Keras swallows ``**kwargs``).

Other differences from Keras:

* ``EarlyStopping`` copies the weights it snapshots. Keras relies on ``get_weights()``
  returning copies; a loop that hands out its live arrays (scratchopt updates parameters in
  place) would otherwise "restore" the latest weights.
* Auto mode finds a metric's direction by duck typing (see ``_set_monitor_op``); Keras's
  multi-optimizer branch (an optimizer with ``.optimizers``) is not reproduced.
"""

import copy
import math
import numbers
import warnings

import numpy as np

MODES = ("auto", "min", "max")


# --- the comparison, as keras.ops.less / keras.ops.greater make it ---------------------------


def _as_tensor(x):
    """``x`` with the dtype Keras's TF backend gives it in ``convert_to_tensor``."""
    if isinstance(x, (np.generic, np.ndarray)):  # before float: np.float64 is a float subclass
        return np.asarray(x)
    if isinstance(x, bool):
        return np.asarray(x)
    if isinstance(x, int):  # int32 if it fits, else int64, else TF refuses
        if -(2**31) <= x < 2**31:
            return np.asarray(x, np.int32)
        if -(2**63) <= x < 2**63:
            return np.asarray(x, np.int64)
        raise ValueError("Can't convert Python sequence with out-of-range integer to Tensor.")
    if isinstance(x, float):
        with np.errstate(over="ignore"):
            x32 = np.asarray(x, np.float32)
        if np.isinf(x32) and not math.isinf(x):  # Quirk: a float beyond float32's range is an error
            raise ValueError("Can't convert Python sequence with a value out of range for a "
                             "double-precision float.")
        return x32
    raise TypeError(f"a monitored value must be a number, got {x!r} ({type(x).__name__})")


def _subnormal_as_zero(x):
    """TF's CPU kernels read a subnormal float32/float64 as 0 (the DAZ bit); float16 keeps its own."""
    if x.dtype in (np.float32, np.float64) and 0 < abs(x) < np.finfo(x.dtype).tiny:
        return np.zeros_like(x)
    return x


def _compare(op, x1, x2):
    x1, x2 = _subnormal_as_zero(_as_tensor(x1)), _subnormal_as_zero(_as_tensor(x2))
    floats = [x.dtype for x in (x1, x2) if x.dtype.kind == "f"]
    if floats:  # Keras's promotion: a float beats ints and bools, the wider float wins
        dtype = max(floats, key=lambda d: d.itemsize)
        with np.errstate(over="ignore"):  # an int beyond float16's range becomes inf, as in TF
            x1, x2 = x1.astype(dtype), x2.astype(dtype)
    return bool(op(x1, x2))


def less(x1, x2):
    """``x1 < x2`` as ``keras.ops.less`` decides it (Python floats compared in float32).

    Examples
    --------
    0.3 and 0.3 - 1e-10 are the same float32 number (float32's spacing near 0.3 is 3e-8):

    >>> from scratchopt.callbacks import less
    >>> 0.3 - 1e-10 < 0.3, less(0.3 - 1e-10, 0.3)
    (True, False)
    """
    return _compare(np.less, x1, x2)


def greater(x1, x2):
    """``x1 > x2`` as ``keras.ops.greater`` decides it.

    Examples
    --------
    1e-45 becomes float32's smallest subnormal, which TF's CPU kernels read as 0:

    >>> from scratchopt.callbacks import greater
    >>> greater(0.5, 0.25), greater(1e-45, 0.0)
    (True, False)
    """
    return _compare(np.greater, x1, x2)


# --- argument checks (our contract: fail at construction, name the argument) ----------------


def _number(name, value, *, at_least=None, finite=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a number, got {name}={value!r} ({type(value).__name__})")
    if finite and not math.isfinite(value):
        raise ValueError(f"`{name}` must be finite, got {name}={value!r}")
    if at_least is not None and not value >= at_least:  # NaN fails here too
        raise ValueError(f"`{name}` must be >= {at_least}, got {name}={value!r}")


def _of_type(name, value, kinds, what):
    if not isinstance(value, kinds):
        raise TypeError(f"`{name}` must be {what}, got {name}={value!r} ({type(value).__name__})")


def _monitor_arguments(monitor, mode, min_delta, verbose):
    _of_type("monitor", monitor, str, "a string (a key of the epoch's logs)")
    _of_type("mode", mode, str, "one of 'auto', 'min', 'max'")
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of 'auto', 'min', 'max', got mode={mode!r} "
                         "(Keras would warn and fall back to 'auto')")
    _number("min_delta", min_delta, finite=True)
    _of_type("verbose", verbose, int, "an int")


# --- the callbacks -----------------------------------------------------------------------------


class Callback:
    """The hooks a training loop calls; each does nothing here. ``model`` is set by ``set_model``.

    Examples
    --------
    A callback overrides the hooks it needs; ``Sequential.fit`` (or any loop) calls them:

    >>> from scratchopt.callbacks import Callback
    >>> class PrintLoss(Callback):
    ...     def on_epoch_end(self, epoch, logs=None):
    ...         print(f"epoch {epoch}: loss {logs['loss']}")
    >>> callback = PrintLoss()
    >>> for epoch, loss in enumerate([0.5, 0.25]):
    ...     callback.on_epoch_end(epoch, {"loss": loss})
    epoch 0: loss 0.5
    epoch 1: loss 0.25
    """

    def __init__(self):
        self.model = None

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass


class _Monitor(Callback):
    """What EarlyStopping and ReduceLROnPlateau share: the monitored key and "improved"."""

    def __init__(self, monitor, mode, min_delta):
        super().__init__()
        self.monitor = monitor
        self.mode = mode
        self.best = None
        self.min_delta = abs(min_delta)  # Quirk: the sign of min_delta is ignored
        self.monitor_op = None

    def _set_monitor_op(self):
        """Choose ``less`` or ``greater``; Keras does it at the first on_epoch_end, not before.

        Auto mode: a monitor named "loss" (after removing "val_") is minimised. Then, as in
        Keras, every metric inside the containers of ``model.metrics`` (Keras's CompileMetrics
        and MetricsList; here: any item with a ``.metrics`` list) whose ``name`` matches and
        that has ``_direction`` decides: "up" maximises, anything else minimises.
        Quirk: a later match wins, even over "loss"; a metric directly in ``model.metrics``
        (not in a container) is not looked at. No decision: ValueError, at every epoch end.
        """
        if self.mode == "min":
            op = less
        elif self.mode == "max":
            op = greater
        else:
            op = None
            name = self.monitor.removeprefix("val_")
            if name == "loss":
                op = less
            for container in getattr(self.model, "metrics", ()):
                for metric in getattr(container, "metrics", ()):
                    if metric.name == name and hasattr(metric, "_direction"):
                        op = greater if metric._direction == "up" else less
            if op is None:
                raise ValueError(
                    f"{self.__class__.__name__} callback received monitor={self.monitor}, but "
                    "Keras isn't able to automatically determine whether that metric should be "
                    "maximized or minimized. Pass `mode='max'` in order to monitor based on the "
                    "highest metric value, or pass `mode='min'` in order to use the lowest value.")
        self.monitor_op = op
        if op is less:
            self.min_delta *= -1  # so that "current - min_delta" is current + |min_delta|

    def _is_improvement(self, monitor_value, reference_value):
        if reference_value is None:
            return True
        # Quirk: the subtraction is Python/NumPy arithmetic; the comparison is Keras's (float32).
        return self.monitor_op(monitor_value - self.min_delta, reference_value)


class EarlyStopping(_Monitor):
    """Stop training when the monitored value has stopped improving.

    ``on_train_begin`` resets ``wait = 0, stopped_epoch = 0, best = None``, the snapshot and
    ``best_epoch``. Then each ``on_epoch_end(epoch, logs)``, in Keras's order::

        current = logs[monitor]         missing (warns) or epoch < start_from_epoch: return
        if restore_best_weights and no snapshot: snapshot = weights; best_epoch = epoch
        wait += 1
        if improved(current, best):
            best = current; best_epoch = epoch; snapshot = weights if restoring
            if baseline is None or improved(current, baseline): wait = 0
            return
        if wait >= patience and epoch > 0: stopped_epoch = epoch; model.stop_training = True

    and ``on_train_end`` puts the snapshot back if there is one.

    Quirks (Keras's, kept):
    * Quirk: ``baseline`` is not the initial ``best``; the first monitored value always improves.
    * Quirk: an improving epoch never stops training, so a run that improves every epoch but
      never beats ``baseline`` never stops (``wait`` grows, but is only checked on other epochs).
    * Quirk: epoch 0 never stops training, not even with ``patience=0``.
    * Quirk: the best weights are restored at the end whenever a snapshot exists, even when
      training was not stopped early.

    Examples
    --------
    With ``patience=2``, two epochs in a row without a new best stop training: the best
    loss, 0.5, is at epoch 1; epochs 2 and 3 do not beat it, so epoch 3 sets
    ``model.stop_training``.

    >>> from types import SimpleNamespace
    >>> from scratchopt.callbacks import EarlyStopping
    >>> model = SimpleNamespace(stop_training=False)  # what a loop's model needs here
    >>> stopper = EarlyStopping(monitor="loss", patience=2)
    >>> stopper.set_model(model)
    >>> stopper.on_train_begin()
    >>> for epoch, loss in enumerate([1.0, 0.5, 0.6, 0.55, 0.4]):
    ...     stopper.on_epoch_end(epoch, {"loss": loss})
    ...     if model.stop_training:
    ...         break
    >>> epoch, stopper.stopped_epoch, stopper.best, stopper.best_epoch
    (3, 3, 0.5, 1)
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        _monitor_arguments(monitor, mode, min_delta, verbose)
        _number("patience", patience, at_least=0)
        if baseline is not None:
            _number("baseline", baseline)
        _of_type("restore_best_weights", restore_best_weights, (bool, np.bool_), "a bool")
        _number("start_from_epoch", start_from_epoch, at_least=0)
        super().__init__(monitor, mode, min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.wait = 0
        self.stopped_epoch = 0
        self.restore_best_weights = restore_best_weights
        self.best_weights = None
        self.best_epoch = 0
        self.start_from_epoch = start_from_epoch

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            # A copy, unlike Keras (see "Other differences" at the top of this file).
            self.best_weights = copy.deepcopy(self.model.get_weights())
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = copy.deepcopy(self.model.get_weights())
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return  # Quirk: no stop check on an improving epoch
        if self.wait >= self.patience and epoch > 0:  # Quirk: never at epoch 0
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:  # Quirk: stopped or not
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    def get_monitor_value(self, logs):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(list(logs.keys()))}",
                          stacklevel=2)
        return value


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by ``factor`` when the monitored value stops improving.

    ``on_train_begin`` resets ``best = None, wait = 0, cooldown_counter = 0``. Then each
    ``on_epoch_end(epoch, logs)``, in Keras's order::

        logs["learning_rate"] = lr
        current = logs[monitor]                         missing: warn, return
        if cooldown_counter > 0: cooldown_counter -= 1; wait = 0
        if improved(current, best): best = current; wait = 0
        elif cooldown_counter == 0:                     checked after the decrement above
            wait += 1
            if wait >= patience:
                old = lr                                a Python float holding a float32
                if old > float32(min_lr):
                    lr = max(old * factor, min_lr)      in double, then stored as float32
                    cooldown_counter = cooldown; wait = 0

    Quirks (Keras's, kept):
    * Quirk: ``cooldown=1`` behaves exactly like ``cooldown=0``, and ``cooldown=c`` rests for
      ``c - 1`` epochs: the counter is decremented before it is checked.
    * Quirk: once the rate is at ``min_lr`` nothing is reset, so ``wait`` keeps growing.
    * Quirk: ``patience=0`` reduces at every epoch that does not improve.
    * Quirk: ``factor <= 0`` is accepted (Keras checks ``factor >= 1.0`` only); the rate then
      jumps to ``min_lr``.

    Examples
    --------
    With ``patience=1`` every epoch that does not improve by more than ``min_delta``
    (1e-4) halves the rate: epochs 1, 2 and 4.

    >>> from types import SimpleNamespace
    >>> from scratchopt.callbacks import ReduceLROnPlateau
    >>> from scratchopt.optimizers import SGD
    >>> model = SimpleNamespace(optimizer=SGD(learning_rate=0.5))
    >>> plateau = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1)
    >>> plateau.set_model(model)
    >>> plateau.on_train_begin()
    >>> rates = []
    >>> for epoch, loss in enumerate([1.0, 1.0, 1.0, 0.5, 0.5]):
    ...     plateau.on_epoch_end(epoch, {"loss": loss})
    ...     rates.append(model.optimizer.learning_rate)
    >>> rates
    [0.5, 0.25, 0.125, 0.125, 0.0625]
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        _monitor_arguments(monitor, mode, min_delta, verbose)
        _number("factor", factor, finite=True)
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        _number("patience", patience, at_least=0)
        _number("cooldown", cooldown, at_least=0)
        _number("min_lr", min_lr, at_least=0, finite=True)
        super().__init__(monitor, mode, min_delta)
        self.factor = factor
        self.min_lr = min_lr
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        logs = logs or {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` "
                          "which is not available. Available metrics are: "
                          f"{','.join(list(logs.keys()))}.", stacklevel=2)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():  # Quirk: after the decrement, so cooldown=1 rests 0 epochs
            self.wait += 1
            if self.wait >= self.patience and self._reduce_lr(epoch):
                self.cooldown_counter = self.cooldown
                self.wait = 0  # Quirk: not reached once lr is at min_lr

    def _reduce_lr(self, epoch):
        optimizer = self.model.optimizer
        old_lr = float(optimizer.learning_rate)
        if old_lr > np.float32(self.min_lr):
            new_lr = max(old_lr * self.factor, self.min_lr)
            optimizer.learning_rate = new_lr  # stored as float32
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
            return True
        return False

    def in_cooldown(self):
        return self.cooldown_counter > 0


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of every epoch from ``schedule(epoch, lr)``.

    Each epoch::

        on_epoch_begin:  lr = schedule(epoch, lr)    lr in: a Python float of the float32 rate
                                                     (schedule(epoch) if that raises TypeError)
                         the result must be a float, np.float32 or np.float64: else ValueError
                         stored as float32
        on_epoch_end:    logs["learning_rate"] = lr

    Quirks (Keras's, kept):
    * Quirk: a one-argument ``schedule(epoch)`` is found by calling it with two and catching
      the TypeError, so a TypeError raised *inside* a two-argument schedule calls it again
      with one argument (and then fails with the confusing "missing argument" error).
    * Quirk: a schedule returning a Python int (``lambda epoch: 1``) is a ValueError, at the
      first epoch.
    * Quirk: the rate handed to the schedule has been through float32, so ``lr * 0.5`` on
      0.05 halves 0.05000000074505806.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from scratchopt.callbacks import LearningRateScheduler
    >>> from scratchopt.optimizers import SGD
    >>> model = SimpleNamespace(optimizer=SGD(learning_rate=0.5))
    >>> scheduler = LearningRateScheduler(lambda epoch, lr: lr if epoch == 0 else lr * 0.5)
    >>> scheduler.set_model(model)
    >>> for epoch in range(3):
    ...     scheduler.on_epoch_begin(epoch)
    ...     print(epoch, model.optimizer.learning_rate)
    0 0.5
    1 0.25
    2 0.125
    """

    def __init__(self, schedule, verbose=0):
        if not callable(schedule):
            raise TypeError(f"`schedule` must be callable as schedule(epoch, lr) or schedule(epoch), "
                            f"got schedule={schedule!r} ({type(schedule).__name__})")
        _of_type("verbose", verbose, int, "an int")
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if not hasattr(optimizer, "learning_rate"):
            raise ValueError('Optimizer must have a "learning_rate" attribute.')
        try:
            learning_rate = self.schedule(epoch, float(optimizer.learning_rate))
        except TypeError:  # Quirk: any TypeError, also one from inside the schedule
            learning_rate = self.schedule(epoch)
        if not isinstance(learning_rate, (float, np.float32, np.float64)):
            raise ValueError(  # noqa: TRY004 (Keras's error type)
                f"The output of the `schedule` function should be a float. Got: {learning_rate}")
        optimizer.learning_rate = learning_rate  # stored as float32
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {learning_rate}.")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
