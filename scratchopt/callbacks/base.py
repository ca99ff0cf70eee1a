"""What the callbacks share: the hooks (``Callback``), "improved" (``_Monitor``), the checks.

"Improved" (both monitoring callbacks, ``_Monitor`` below) is Keras's test::

    best is None (the first value)  ->  improved
    mode "min":  improved = (current + |min_delta|) < best        strictly; NaN never improves
    mode "max":  improved = (current - |min_delta|) > best
    mode "auto": "min" for "loss"/"val_loss", else the metric's direction (see _set_monitor_op)

``min_delta`` is an absolute threshold, not a relative one. The comparison is Keras's, in
float32 for Python floats (``comparison.py``: ``less``, ``greater``).

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
* unknown keyword arguments to ``ReduceLROnPlateau``: ``TypeError`` (Keras swallows ``**kwargs``);
* a monitored value in the logs that is not a number (a str, a list, an array of several
  values): ``TypeError`` naming ``logs['val_loss']`` (say), before the hook changes anything
  (Keras fails later, on its arithmetic: "unsupported operand", "truth value ... ambiguous").

Another difference from Keras: auto mode finds a metric's direction by duck typing (see
``_set_monitor_op``); Keras's multi-optimizer branch (an optimizer with ``.optimizers``) is
not reproduced.
"""

import reprlib

import numpy as np

from .. import checks
from .comparison import greater, less

MODES = ("auto", "min", "max")


# --- argument checks (our contract: fail at construction, name the argument) ----------------


def _of_type(name, value, kinds, what):
    """A ``TypeError`` unless ``value`` is one of ``kinds``, in ``checks``' message style: for
    what ``checks`` has no rule for (a string; ``verbose``, where Keras takes ``True`` too)."""
    if not isinstance(value, kinds):
        raise TypeError(f"`{name}` must be {what}. {checks.received(name, value)}")
    return value


def _verbose(verbose):
    """A Python int, ``True``/``False`` included (``checks.integer`` refuses a bool, Keras does not)."""
    return _of_type("verbose", verbose, int, "an int")


def _monitor_arguments(monitor, mode, min_delta, verbose):
    _of_type("monitor", monitor, str, "a string (a key of the epoch's logs)")
    _of_type("mode", mode, str, "a string")  # a TypeError, before one_of's ValueError
    checks.one_of("mode", mode, MODES)  # Keras would warn and fall back to 'auto'
    checks.number("min_delta", min_delta, finite=True)
    _verbose(verbose)


# --- the hooks, and what the two monitoring callbacks share ---------------------------------


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

    # Batch hooks: ``batch`` counts from 0 within the epoch; ``logs`` holds the running means
    # so far this epoch (``loss``, then each metric). As in Keras, the train-batch hooks call
    # the older ``on_batch_begin`` / ``on_batch_end`` (TerminateOnNaN overrides the latter).

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_batch_begin(self, batch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    # Validation inside fit (Keras's evaluate, given fit's callbacks): on_test_begin, then per
    # batch on_test_batch_begin / on_test_batch_end (running means), on_test_end(logs).

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
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

    def _check_monitored(self, logs):
        """The monitored value of ``logs``, if there is one, must be a number: a TypeError
        naming the key otherwise, before anything changes (Keras fails later, on the
        arithmetic, with "unsupported operand" or "truth value ... is ambiguous")."""
        value = (logs or {}).get(self.monitor)
        if value is not None and not _is_number(value):
            key = f"logs[{self.monitor!r}]"
            raise TypeError(f"`{key}` must be a number (a Python or NumPy scalar, or a one-element "
                            f"array): the monitored metric. Received: {key}={reprlib.repr(value)} "
                            f"({type(value).__name__})")

    def _is_improvement(self, monitor_value, reference_value):
        if reference_value is None:
            return True
        # Quirk: the subtraction is Python/NumPy arithmetic; the comparison is Keras's (float32).
        return self.monitor_op(monitor_value - self.min_delta, reference_value)


def _is_number(value):
    """A real number as Keras's comparison takes it: a Python or NumPy number (a bool too, as
    in Keras), or a NumPy array holding one."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.size == 1 and value.dtype.kind in "biuf"
    return isinstance(value, (int, float))  # what the comparison converts (not a Fraction)


def batches_due(callback, batch, save_freq):
    """Keras's ``save_freq=N`` counter (ModelCheckpoint, BackupAndRestore): count the batches
    since the last save, across epochs (a batch number at or below the last one seen starts a
    new epoch: ``batch + 1`` more), and say whether ``N`` have gone by (then restart the count).
    Kept on ``callback`` as ``_last_batch_seen`` and ``_batches_seen_since_last_saving``."""
    last = callback._last_batch_seen
    callback._batches_seen_since_last_saving += batch + 1 if last is None or batch <= last else batch - last
    callback._last_batch_seen = batch
    if callback._batches_seen_since_last_saving >= save_freq:
        callback._batches_seen_since_last_saving = 0
        return True
    return False
