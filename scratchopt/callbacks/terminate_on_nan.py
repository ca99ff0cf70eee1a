"""``TerminateOnNaN``: stop training after a batch whose loss is NaN or infinite (Keras's).

::

    on_batch_end(batch, logs):             (called by on_train_batch_end, as in Keras)
        loss = logs.get("loss")            the epoch's running mean so far
        if loss is NaN or +-inf:
            raise_error:  RuntimeError     at once: no on_epoch_end, no on_train_end
            otherwise:    print "Batch {batch}: Invalid loss, terminating training"
                          model.stop_training = True

Quirk (Keras's loop, and ``Sequential.fit``'s): the stop is checked after the batch, so the
rest of the epoch is skipped, but the epoch still ends normally: validation runs, every
callback's ``on_epoch_end`` sees the NaN ``loss`` (and whatever ``val_loss`` the NaN weights
give, NaN in general), and ``History`` records that epoch. Since the logged loss is the
running mean, one NaN batch makes every later batch's logged loss NaN too.
"""

import numpy as np

from .. import checks
from .base import Callback


class TerminateOnNaN(Callback):
    """Stop training at the first NaN or infinite loss (``raise_error=True``: raise instead).

    Examples
    --------
    >>> from scratchopt.callbacks import TerminateOnNaN
    >>> class Model:
    ...     stop_training = False
    >>> callback = TerminateOnNaN()
    >>> callback.set_model(Model())
    >>> callback.on_train_batch_end(0, {"loss": 0.5})
    >>> callback.model.stop_training
    False
    >>> callback.on_train_batch_end(1, {"loss": float("nan")})
    Batch 1: Invalid loss, terminating training
    >>> callback.model.stop_training
    True
    """

    def __init__(self, raise_error=False):
        super().__init__()
        self.raise_error = checks.flag("raise_error", raise_error)  # Keras takes anything

    def on_batch_end(self, batch, logs=None):
        logs = logs or {}
        loss = logs.get("loss")
        if loss is not None and (np.isnan(loss) or np.isinf(loss)):
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. "
                                   f"Loss value: {loss}. Terminating training immediately.")
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True
