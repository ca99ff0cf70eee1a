"""LearningRateScheduler: at the start of each epoch, ``lr = schedule(epoch, lr)``.

::

    on_epoch_begin:  lr = schedule(epoch, lr)      (schedule(epoch) if that raises TypeError)
    on_epoch_end:    logs["learning_rate"] = lr

The rate is stored in float32 (0.05 reads back as 0.05000000074505806).
"""

import numpy as np

from .. import checks
from .base import Callback, _verbose


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
            raise TypeError("`schedule` must be callable as schedule(epoch, lr) or schedule(epoch). "
                            f"{checks.received('schedule', schedule)}")
        _verbose(verbose)
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
            raise ValueError(  # noqa: TRY004 (Keras's error type and message)
                f"The output of the `schedule` function should be a float. Got: {learning_rate}")
        optimizer.learning_rate = learning_rate  # stored as float32
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {learning_rate}.")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
