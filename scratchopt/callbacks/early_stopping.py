"""EarlyStopping: stop when the monitored value has not improved for ``patience`` epochs.

::

    each epoch end:  wait += 1;  improved(current, best) -> best = current, wait = 0
                     wait >= patience and epoch > 0     -> model.stop_training = True
    train end:       put the best epoch's weights back  (restore_best_weights=True)

A difference from Keras: ``EarlyStopping`` copies the weights it snapshots. Keras relies on
``get_weights()`` returning copies; a loop that hands out its live arrays (scratchopt
updates parameters in place) would otherwise "restore" the latest weights.
"""

import copy
import warnings

from .. import checks
from .base import _Monitor, _monitor_arguments


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
        checks.number("patience", patience, at_least=0)
        if baseline is not None:
            checks.number("baseline", baseline)
        checks.flag("restore_best_weights", restore_best_weights)
        checks.number("start_from_epoch", start_from_epoch, at_least=0)
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
        self._check_monitored(logs)  # before anything changes
        if self.monitor_op is None:
            self._set_monitor_op()
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            # A copy, unlike Keras (see the top of this file).
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
        self._check_monitored(logs)
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(list(logs.keys()))}",
                          stacklevel=2)
        return value
