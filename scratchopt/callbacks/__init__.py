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

Each callback is Keras's (``keras/src/callbacks/`` in Keras 3.15), each in its own module:

* ``LearningRateScheduler(schedule)`` (``learning_rate_scheduler.py``): at the start of each
  epoch, ``lr = schedule(epoch, lr)``.
* ``ReduceLROnPlateau`` (``reduce_lr_on_plateau.py``): when the monitored value has not
  improved for ``patience`` epochs, ``lr = lr * factor``, then rest for ``cooldown`` epochs.
* ``EarlyStopping`` (``early_stopping.py``): when it has not improved for ``patience``
  epochs, stop; optionally put the best epoch's weights back.
* ``ModelCheckpoint`` (``model_checkpoint.py``): save the model or its weights every epoch
  (or every N batches), optionally only when the monitored value improves.
* ``BackupAndRestore`` (``backup_and_restore.py``): back up the whole training state; a
  killed and restarted ``fit`` resumes from it, bit for bit.
* ``TerminateOnNaN`` (``terminate_on_nan.py``): stop after a batch whose loss is NaN or inf.
* ``CSVLogger`` (``csv_logger.py``): one CSV row per epoch, byte for byte Keras's file.
* ``TensorBoard`` (``tensorboard.py``): the logs as TensorBoard scalars (needs the
  ``[tensorboard]`` extra).

Checkpoint files are written whole or not at all (``scratchopt/nn/saving.py``); the batch
hooks ``on_train_batch_begin/end(batch, logs)`` get the epoch's running means so far.

``base.py`` holds the hooks (``Callback``), Keras's "improved" test that the last two share
(``_Monitor``) and the argument checks, with the list of what we refuse that Keras accepts;
``comparison.py`` holds ``less`` and ``greater``, Keras's comparison (in float32 for Python
floats).

Everything reaches the optimizer through its ``learning_rate`` property, which holds a
float32: a rate set to 0.05 reads back as 0.05000000074505806.
"""

from .backup_and_restore import BackupAndRestore
from .base import Callback
from .comparison import greater, less
from .csv_logger import CSVLogger
from .early_stopping import EarlyStopping
from .learning_rate_scheduler import LearningRateScheduler
from .model_checkpoint import ModelCheckpoint
from .reduce_lr_on_plateau import ReduceLROnPlateau
from .tensorboard import TensorBoard
from .terminate_on_nan import TerminateOnNaN

__all__ = ["BackupAndRestore", "CSVLogger", "Callback", "EarlyStopping", "LearningRateScheduler", "ModelCheckpoint",
           "ReduceLROnPlateau", "TensorBoard", "TerminateOnNaN", "greater", "less"]
