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

Three callbacks, each Keras's (``keras/src/callbacks/`` in Keras 3.15) line for line, each in
its own module:

* ``LearningRateScheduler(schedule)`` (``learning_rate_scheduler.py``): at the start of each
  epoch, ``lr = schedule(epoch, lr)``.
* ``ReduceLROnPlateau`` (``reduce_lr_on_plateau.py``): when the monitored value has not
  improved for ``patience`` epochs, ``lr = lr * factor``, then rest for ``cooldown`` epochs.
* ``EarlyStopping`` (``early_stopping.py``): when it has not improved for ``patience``
  epochs, stop; optionally put the best epoch's weights back.

``base.py`` holds the hooks (``Callback``), Keras's "improved" test that the last two share
(``_Monitor``) and the argument checks, with the list of what we refuse that Keras accepts;
``comparison.py`` holds ``less`` and ``greater``, Keras's comparison (in float32 for Python
floats).

Everything reaches the optimizer through its ``learning_rate`` property, which holds a
float32: a rate set to 0.05 reads back as 0.05000000074505806.
"""

from .base import Callback
from .comparison import greater, less
from .early_stopping import EarlyStopping
from .learning_rate_scheduler import LearningRateScheduler
from .reduce_lr_on_plateau import ReduceLROnPlateau

__all__ = ["Callback", "LearningRateScheduler", "ReduceLROnPlateau", "EarlyStopping", "less", "greater"]
