"""``ModelCheckpoint``: save the model (or its weights) every epoch or every few batches.

Keras's rules (``keras/src/callbacks/model_checkpoint.py``)::

    the file name:  filepath.format(epoch=epoch + 1, **logs)          epochs count from 1 here
                    (batch-level saves add batch=batch + 1, unless the logs hold "batch")
    save_freq="epoch":  at each on_epoch_end
    save_freq=N:        at the on_train_batch_end that makes N batches since the last save
                        (the count runs on across epochs)
    save_best_only:     save only if  monitor_op(current, best)  (strictly better; the first
                        value, or one better than initial_value_threshold, always is), then
                        best = current. A missing monitored value: warn and save anyway.

Where it writes:

* ``save_weights_only=True``: the path must end in ``.weights.h5``, and the file is Keras's
  own HDF5 weights layout (``Sequential.save_weights``, needs h5py): an equivalent Keras
  model's ``load_weights`` reads it, and so does ``Sequential.load_weights``.
* ``save_weights_only=False``: the path must end in ``.keras``. The file is **scratchopt's
  checkpoint format** (``nn/saving.py``: weights, the layers' configs, the optimizer's
  config and state), not Keras's ``.keras`` zip: ``scratchopt.nn.load_model`` reads it,
  Keras does not.

Every file is written whole or not at all (a temporary file, fsync, ``os.replace``).

Quirks reproduced: ``monitor_op`` is chosen at every epoch end even when nothing monitors
(an auto-mode monitor Keras cannot place raises even with ``save_best_only=False``);
the comparison has no ``min_delta``; ``best`` starts at ``initial_value_threshold``.

Differences (we refuse early what Keras accepts or fails on late):

* the directory of ``filepath`` (the part before any ``{...}`` field) is made if missing and
  must accept a new file at ``on_train_begin``: an ``OSError`` naming it, before the first
  epoch (Keras makes it and fails at the first save, after an epoch of training);
* a ``.h5`` path without ``save_weights_only`` (Keras's legacy whole-model HDF5): ValueError;
* ``save_freq`` a bool or an int below 1, ``verbose`` not an int, flags not bools,
  ``mode`` unknown (Keras warns, falls back to "auto"): TypeError / ValueError.
"""

import os
import warnings

import numpy as np

from .. import checks
from ..nn import saving
from .base import _Monitor, _monitor_arguments, _of_type, batches_due


class ModelCheckpoint(_Monitor):
    """Save the model or its weights during training (Keras's ``ModelCheckpoint``).

    Examples
    --------
    The file name is a template filled from the epoch (from 1) and the logs:

    >>> from scratchopt.callbacks import ModelCheckpoint
    >>> checkpoint = ModelCheckpoint("ckpt/{epoch:02d}-{val_loss:.2f}.keras")
    >>> checkpoint._get_file_path(epoch=2, batch=None, logs={"val_loss": 0.31415})
    'ckpt/03-0.31.keras'
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch", initial_value_threshold=None):
        if not isinstance(filepath, (str, os.PathLike)):
            raise TypeError(f"`filepath` must be a path (str or os.PathLike). "
                            f"{checks.received('filepath', filepath)}")
        filepath = os.fspath(filepath)
        _monitor_arguments(monitor, mode, 0, verbose)
        _of_type("save_best_only", save_best_only, bool, "a bool")
        _of_type("save_weights_only", save_weights_only, bool, "a bool")
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int)):
            raise ValueError(f"Unrecognized save_freq: {save_freq}. Expected save_freq are 'epoch' or "
                             "integer values")
        if save_freq != "epoch" and save_freq < 1:
            raise ValueError(f"`save_freq` must be 'epoch' or a positive int. Received: save_freq={save_freq}")
        if initial_value_threshold is not None:
            checks.number("initial_value_threshold", initial_value_threshold)
        if save_weights_only:
            if not filepath.endswith(".weights.h5"):
                raise ValueError("When using `save_weights_only=True` in `ModelCheckpoint`, the filepath "
                                 "provided must end in `.weights.h5` (Keras weights format). Received: "
                                 f"filepath={filepath}")
        elif not filepath.endswith(".keras"):
            raise ValueError("The filepath provided must end in `.keras` (Keras model format; here "
                             "scratchopt's checkpoint format: a legacy `.h5` whole model is not written). "
                             f"Received: filepath={filepath}")
        super().__init__(monitor, mode, 0)
        self.best = initial_value_threshold  # Keras's MonitorCallback(baseline=...)
        self.verbose = verbose
        self.filepath = filepath
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.save_freq = save_freq
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = None
        self._current_epoch = 0

    def on_train_begin(self, logs=None):
        """Check now that the directory accepts a file (an OSError naming it, before training)."""
        directory = os.path.dirname(self.filepath)
        while "{" in directory:
            directory = os.path.dirname(directory)
        saving.check_writable(os.path.join(directory, "probe"), "filepath")

    def on_train_batch_end(self, batch, logs=None):
        if self._should_save_on_batch(batch):
            self._save_model(epoch=self._current_epoch, batch=batch, logs=logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self._check_monitored(logs)
        if self.monitor_op is None:
            self._set_monitor_op()
        if self.save_freq == "epoch":
            self._save_model(epoch=epoch, batch=None, logs=logs)

    def _should_save_on_batch(self, batch):
        if self.save_freq == "epoch":
            return False
        return batches_due(self, batch, self.save_freq)

    def _should_save_model(self, epoch, batch, logs, filepath):
        logs = logs or {}
        if not self.save_best_only:
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=2)
            return True
        if isinstance(current, np.ndarray) and len(current.shape) > 0:
            warnings.warn(f"Can save best model only when `monitor` is a scalar value. Received: {current}. "
                          "Falling back to `save_best_only=False`.")
            return True
        if self.monitor_op is None:  # a batch-level save before the first epoch end
            self._set_monitor_op()
        best_str = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best_str} to {current:.5f}, "
                      f"saving model to {filepath}")
            self.best = current
            return True
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best_str}")
        return False

    def _save_model(self, epoch, batch, logs):
        filepath = self._get_file_path(epoch, batch, logs)
        if os.path.isdir(filepath):
            raise OSError("Please specify a non-directory filepath for ModelCheckpoint. Filepath used is "
                          f"an existing directory: {filepath}")
        if self._should_save_model(epoch, batch, logs, filepath):
            dirname = os.path.dirname(filepath)
            if dirname and not os.path.exists(dirname):
                os.makedirs(dirname)
            if self.save_weights_only:
                self.model.save_weights(filepath)
            else:
                self.model.save(filepath)
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: finished saving model to {filepath}")

    def _get_file_path(self, epoch, batch, logs):
        logs = logs or {}
        try:
            if batch is None or "batch" in logs:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as e:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". Reason: {e}') from None
