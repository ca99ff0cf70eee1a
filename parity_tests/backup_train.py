"""A small training run for the kill-and-resume test (``test_backup_and_restore.py``).

    python backup_train.py WORKDIR [SAVE_FREQ]

trains a float64 model (Dense, BatchNormalization, Dropout, Dense) with Adam, shuffling,
ReduceLROnPlateau, EarlyStopping (restore_best_weights) and BackupAndRestore(WORKDIR/backup),
then writes everything the run ended with to WORKDIR/result.npz: the weights, the
optimizer's state, the callbacks' counters and bests, ``stopped_epoch``.

It may be killed (SIGKILL) at any point and started again with the same arguments until it
exits with 0. For kills at exact points it kills itself, when the environment asks:

* ``KILL_EPOCH=k``: in on_epoch_end of epoch k (before that epoch's backup);
* ``KILL_BATCH=b``: in on_train_batch_end of the b-th batch of the run (counted from 1);
* ``KILL_REPLACE=n``: just before the n-th ``os.replace`` (a backup fully written to its
  temporary file, not yet renamed);
* ``KILL_FSYNC=n``: in the n-th ``os.fsync`` (a temporary file written, not yet synced).

``MARK=path``: create that file at on_train_begin (the test then kills after a random delay).
"""

import os
import signal
import sys
import types

import numpy as np

from scratchopt import callbacks as cb
from scratchopt.layers import BatchNormalization, Dropout
from scratchopt.nn import Dense, MeanSquaredError, ReLU, Sequential, saving
from scratchopt.optimizers import Adam

EPOCHS = 20


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def kill_on_nth(module, name, n):
    original, count = getattr(module, name), [0]

    def wrapper(*args, **kwargs):
        count[0] += 1
        if count[0] == n:
            die()
        return original(*args, **kwargs)

    setattr(module, name, wrapper)


class Killer(cb.Callback):
    """Kills the process at a given epoch end or batch. Its settings live in a namespace,
    which BackupAndRestore does not save (so a restarted run does not inherit them)."""

    def __init__(self, epoch=None, batch=None):
        super().__init__()
        self.config = types.SimpleNamespace(epoch=epoch, batch=batch, batches=0)

    def on_train_begin(self, logs=None):
        if os.environ.get("MARK"):  # tell the test that training has started
            open(os.environ["MARK"], "w").close()

    def on_train_batch_end(self, batch, logs=None):
        self.config.batches += 1
        if self.config.batches == self.config.batch:
            die()

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.config.epoch:
            die()


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    y = np.tanh(x @ rng.normal(size=(4, 2))) + 0.3 * rng.normal(size=(60, 2))
    return x, y


def make_model():
    model = Sequential([Dense(8, seed=1, dtype="float64"), BatchNormalization(momentum=0.9),
                        Dropout(0.2, seed=2), ReLU(), Dense(2, seed=3, dtype="float64")])
    model.compile(Adam(learning_rate=0.01), MeanSquaredError(), metrics=["binary_accuracy"])
    return model


def train(workdir, save_freq="epoch", extra_callbacks=()):
    """The run; returns (model, reduce, stop, history) after fit."""
    x, y = data()
    model = make_model()
    reduce = cb.ReduceLROnPlateau(factor=0.5, patience=1, min_delta=0.0)
    stop = cb.EarlyStopping(patience=5, restore_best_weights=True)
    backup = cb.BackupAndRestore(os.path.join(workdir, "backup"), save_freq=save_freq, double_checkpoint=True)
    history = model.fit(x, y, epochs=EPOCHS, batch_size=8, validation_split=0.25, shuffle=True, seed=7,
                        verbose=0, callbacks=[backup, reduce, stop, *extra_callbacks])
    return model, reduce, stop, history


def result(model, reduce, stop, history):
    """Everything the run ended with, as arrays (compared bit for bit), and the last epoch's
    logs (the running loss and metric of a half epoch resumed are in them)."""
    out = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    out.update({f"last_{k}": np.array(v[-1]) for k, v in history.history.items()})
    out["last_epoch"] = np.array(history.epoch[-1])
    state = model.optimizer.state_dict()
    out["opt_iterations"] = np.array(state["iterations"])
    out["opt_lr"] = np.array(state["learning_rate"])
    for i, slots in enumerate(state["slots"]):
        for k, a in slots.items():
            out[f"opt_{i}_{k}"] = a
    for name, c, keys in (("reduce", reduce, ("wait", "best", "cooldown_counter")),
                          ("stop", stop, ("wait", "best", "stopped_epoch", "best_epoch"))):
        for k in keys:
            if hasattr(c, k):
                out[f"{name}_{k}"] = np.array(getattr(c, k), dtype=object if getattr(c, k) is None else None)
    for i, w in enumerate(stop.best_weights or []):
        out[f"stop_best_{i}"] = w
    out["stop_training"] = np.array(model.stop_training)
    return {k: np.asarray(v, dtype=float) if v.dtype == object else v for k, v in out.items()}


def main():
    workdir = sys.argv[1]
    save_freq = int(sys.argv[2]) if len(sys.argv) > 2 else "epoch"
    env = os.environ
    if "KILL_REPLACE" in env:
        kill_on_nth(os, "replace", int(env["KILL_REPLACE"]))
    if "KILL_FSYNC" in env:
        kill_on_nth(os, "fsync", int(env["KILL_FSYNC"]))
    killer = Killer(int(env["KILL_EPOCH"]) if "KILL_EPOCH" in env else None,
                    int(env["KILL_BATCH"]) if "KILL_BATCH" in env else None)
    arrays = result(*train(workdir, save_freq, [killer]))
    import io
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    saving.atomic_write(os.path.join(workdir, "result.npz"), buffer.getvalue())


if __name__ == "__main__":
    main()
