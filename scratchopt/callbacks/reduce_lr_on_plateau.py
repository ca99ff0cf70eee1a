"""ReduceLROnPlateau: multiply the learning rate by ``factor`` when the monitored value stalls.

::

    each epoch end:  improved(current, best)   -> best = current, wait = 0
                     else, out of cooldown     -> wait += 1
                     wait >= patience          -> lr = max(lr * factor, min_lr),
                                                  rest for cooldown epochs

The rate is stored in float32 (0.05 reads back as 0.05000000074505806).
"""

import warnings

import numpy as np

from .. import checks
from .base import _Monitor, _monitor_arguments


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
        checks.number("factor", factor, finite=True)
        if factor >= 1.0:
            raise ValueError(  # Keras's message
                f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        checks.number("patience", patience, at_least=0)
        checks.number("cooldown", cooldown, at_least=0)
        checks.number("min_lr", min_lr, at_least=0, finite=True)
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
        self._check_monitored(logs)  # before anything changes (logs included)
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
