"""``BackupAndRestore``: survive a kill. Back up everything, then resume bit for bit.

Keras's callback (``keras/src/callbacks/backup_and_restore.py``) backs up the weights
(``latest.weights.h5``, with the optimizer's variables) and the epoch number
(``training_metadata.json``); a restarted ``fit`` reloads them and starts at that epoch.
That resumes *roughly*: the shuffling, the other callbacks' counters (EarlyStopping's
``wait``, ReduceLROnPlateau's ``best``...) and a half-finished epoch start over.

Here one file, ``<backup_dir>/latest.checkpoint`` (scratchopt's checked format,
``nn/saving.py``), holds everything a run's future depends on::

    weights (BatchNormalization's moving statistics too)       model.get_weights()
    the optimizer's state_dict()                               step, learning rate, m, v, ...
    where fit is: epoch, next batch                            model._training_state()
    the shuffling generator's state                            model._rng (at the epoch's start,
                                                                for a mid-epoch backup)
    the running loss sums and metric states (mid-epoch)
    every layer's random state: Dropout's and the LSTM's        layer._seeds.state
    place in Keras's seed sequence (a NumPy generator's state,   (generator.bit_generator.state)
    for a layer that keeps one)
    every other callback's attributes (not the model)          EarlyStopping.wait, best, ...
    model.stop_training                                        a run that had decided to stop

and it is written whole or not at all (a temporary file, fsync, ``os.replace``): a kill at
any moment leaves the previous backup or the new one. A restarted ``fit`` with the same
arguments and callbacks loads it at ``on_train_begin`` and continues from the next batch,
drawing the same permutations: the run ends bit-identical to one that was never killed.

When: ``save_freq="epoch"``: at each epoch end (after the other callbacks' ``on_epoch_end``:
``Sequential.fit`` calls this callback last, since ``_runs_last`` is set; with another
loop, put it last in the list). ``save_freq=N``: every N batches (a mid-epoch backup).
``double_checkpoint=True``: the previous backup is kept as ``latest.checkpoint.bkp`` and
used if the latest cannot be read. ``delete_checkpoint=True``: at ``on_train_end`` the whole
``backup_dir`` is removed (Keras's ``rmtree``: the directory, with anything else in it).

What is saved of a callback: each attribute but ``model`` that is ``None``, a bool, int,
float, str, a NumPy scalar or array, a list/tuple/dict of these, or a scratchopt function
(``less``/``greater``); others (open files, writers) are skipped. Restoring matches the
callbacks by position and class, at ``on_train_begin`` (after the others' own
``on_train_begin``, which would reset them).

A half epoch resumed calls ``on_epoch_begin`` of that epoch again: a callback that acts there
must give the same result twice (``LearningRateScheduler`` with a schedule of the epoch
alone does; one of the form ``lr * 0.9`` would apply twice). Backups at epoch ends
(the default) have no such case.

Differences from Keras: the file names and format (above); ``backup_dir`` must be a
non-empty path (Keras: "Empty `backup_dir` argument passed", a ValueError, here too);
``save_freq`` a bool or below 1: ValueError; the flags must be bools (TypeError).
"""

import importlib
import os
import shutil

import numpy as np

from ..nn import saving
from ..numerics import philox
from .base import Callback, _of_type, batches_due

NAME = "latest.checkpoint"


class BackupAndRestore(Callback):
    """Back up the training state to ``backup_dir``; a restarted ``fit`` resumes from it.

    Examples
    --------
    >>> import tempfile
    >>> from scratchopt.callbacks import BackupAndRestore
    >>> backup = BackupAndRestore(tempfile.mkdtemp(), save_freq=10)
    >>> backup.save_freq, backup.double_checkpoint, backup.delete_checkpoint
    (10, False, True)
    """

    #: ``Sequential.fit`` calls callbacks with this flag after the others.
    _runs_last = True

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True):
        super().__init__()
        if backup_dir is not None and not isinstance(backup_dir, (str, os.PathLike)):
            raise TypeError(f"`backup_dir` must be a path (str or os.PathLike). Received: backup_dir="
                            f"{backup_dir!r} ({type(backup_dir).__name__})")
        if not backup_dir:
            raise ValueError("Empty `backup_dir` argument passed")
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int)
                                     or save_freq < 1):
            raise ValueError(f"Invalid value for argument `save_freq`. Received: save_freq={save_freq}. "
                             "Expected either 'epoch' or an integer value (at least 1).")
        _of_type("double_checkpoint", double_checkpoint, bool, "a bool")
        _of_type("delete_checkpoint", delete_checkpoint, bool, "a bool")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq
        self.double_checkpoint = double_checkpoint
        self.delete_checkpoint = delete_checkpoint
        self._path = os.path.join(self.backup_dir, NAME)
        self._prev_path = self._path + ".bkp"
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = 0

    # --- restoring --------------------------------------------------------------------------

    def on_train_begin(self, logs=None):
        """Load the latest backup, if any (the previous one if it is unreadable and kept);
        remove the temporary files a killed run may have left."""
        saving.remove_temporaries(self._path)
        saving.remove_temporaries(self._prev_path)
        try:
            loaded = self._read(self._path)
        except (OSError, ValueError):
            if not os.path.exists(self._prev_path):
                raise
            loaded = self._read(self._prev_path)
        if loaded is not None:
            self._restore(*loaded)

    def _read(self, path):
        if not os.path.exists(path):
            return None
        meta, arrays = saving.read(path)
        if meta.get("kind") != "model" or "extra" not in meta:
            raise ValueError(f"{path!r} is not a BackupAndRestore backup")
        return path, meta, arrays

    def _restore(self, path, meta, arrays):
        model = self.model
        extra = meta["extra"]
        decode = _Decoder(arrays)
        weights = saving.weights_of(meta, arrays)
        callbacks = [c for c in getattr(model, "_callbacks", []) if c is not self]
        states = extra["callbacks"]
        if len(states) != len(callbacks) or any(s["class"] != type(c).__name__ for s, c in zip(states, callbacks)):
            raise ValueError(f"{path!r} was written with the callbacks {[s['class'] for s in states]}; this "
                             f"fit has {[type(c).__name__ for c in callbacks]}: pass the same callbacks")
        # everything decoded and checked first, then changed
        position = decode(extra["position"])
        layer_rngs = [(model.layers[i], name, state) for i, name, state in extra["layer_rngs"]]
        for layer, name, state in layer_rngs:
            if type(_random_state(getattr(layer, name, None))) is not type(state):
                raise ValueError(f"{path!r} holds a random state for {type(layer).__name__}.{name} that this "
                                 f"model's layer does not have: pass the same model")
        decoded = [decode(s["state"]) for s in states]
        optimizer = model.optimizer
        if "optimizer_state" in meta and not getattr(optimizer, "built", False):
            optimizer.build(model.params)
        model._set_weights_from(path, weights)
        if "optimizer_state" in meta:
            optimizer.load_state_dict(saving.optimizer_state(meta["optimizer_state"], arrays))
        for layer, name, state in layer_rngs:
            _set_random_state(getattr(layer, name), state)
        for c, state in zip(callbacks, decoded):
            for k, v in state.items():
                setattr(c, k, v)
        if model._rng is not None:
            model._rng.bit_generator.state = position["rng"]
        model._initial_epoch = position["epoch"]
        model._resume = position if position["batch"] > 0 else None
        model.stop_training = bool(extra["stop_training"])
        self._batches_seen_since_last_saving = extra["batches_seen"]
        self._last_batch_seen = extra["last_batch_seen"]

    # --- backing up -------------------------------------------------------------------------

    def on_epoch_end(self, epoch, logs=None):
        self._last_batch_seen = 0
        if self.save_freq == "epoch":
            self._save_model()

    def on_train_batch_end(self, batch, logs=None):
        if self._should_save_on_batch(batch):
            self._save_model()

    def _should_save_on_batch(self, batch):
        """Keras's count of batches since the last backup (it runs on across epochs)."""
        if self.save_freq == "epoch":
            return False
        return batches_due(self, batch, self.save_freq)

    def _save_model(self):
        model = self.model
        os.makedirs(self.backup_dir, exist_ok=True)
        encode = _Encoder()
        position = model._training_state()
        if position is None:
            raise RuntimeError("BackupAndRestore backs up a scratchopt Sequential during fit only")
        layer_rngs = [[i, name, state]
                      for i, layer in enumerate(model.layers)
                      for name, value in sorted(vars(layer).items()) if (state := _random_state(value)) is not None]
        callbacks = [{"class": type(c).__name__, "state": encode(_state_of(c))}
                     for c in getattr(model, "_callbacks", []) if c is not self]
        extra = {"position": encode(position), "layer_rngs": layer_rngs, "callbacks": callbacks,
                 "stop_training": bool(model.stop_training),
                 "batches_seen": self._batches_seen_since_last_saving, "last_batch_seen": self._last_batch_seen}
        if self.double_checkpoint and os.path.exists(self._path):
            with open(self._path, "rb") as f:
                saving.atomic_write(self._prev_path, f.read())
        model.save(self._path, extra_meta=extra, extra_arrays=encode.arrays)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and os.path.exists(self.backup_dir):
            shutil.rmtree(self.backup_dir)


def _random_state(value):
    """A layer attribute's random state, as JSON: a NumPy generator's, a ``SeedGenerator``'s; else None."""
    if isinstance(value, np.random.Generator):
        return value.bit_generator.state
    if isinstance(value, philox.SeedGenerator):
        return list(value.state)
    return None


def _set_random_state(target, state):
    if isinstance(target, philox.SeedGenerator):
        target.state = [int(s) for s in state]
    else:
        target.bit_generator.state = state


# --- a callback's state as JSON + arrays, exactly ---------------------------------------------------


def _state_of(callback):
    return {k: v for k, v in vars(callback).items() if k != "model"}


class _Skip(Exception):
    pass


class _Encoder:
    """Values to JSON, bit-exact: floats as hex, NumPy scalars as their bytes, arrays aside."""

    def __init__(self):
        self.arrays = {}

    def __call__(self, state):
        out = {}
        for k, v in state.items():
            try:
                out[k] = self.value(v)
            except _Skip:
                pass  # not saveable (an open file, a writer): left as the fresh callback has it
        return out

    def value(self, v):
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, int):
            return {"int": str(v)}
        if isinstance(v, float):
            return {"float": v.hex()}
        if isinstance(v, np.generic):
            return {"scalar": v.dtype.str, "hex": v.tobytes().hex()}
        if isinstance(v, np.ndarray) or (hasattr(v, "get") and hasattr(v, "shape") and hasattr(v, "dtype")):
            key = f"state/{len(self.arrays)}"
            self.arrays[key] = v
            return {"array": key}
        if isinstance(v, (list, tuple)):
            return {"list" if isinstance(v, list) else "tuple": [self.value(x) for x in v]}
        if isinstance(v, dict) and all(isinstance(k, str) for k in v):
            return {"dict": {k: self.value(x) for k, x in v.items()}}
        module = getattr(v, "__module__", None) or ""
        if callable(v) and module.startswith("scratchopt.") and hasattr(v, "__qualname__") \
                and "<" not in v.__qualname__:
            return {"function": f"{module}:{v.__qualname__}"}
        raise _Skip


class _Decoder:
    def __init__(self, arrays):
        self.arrays = {k[len("extra/"):]: a for k, a in arrays.items() if k.startswith("extra/")}

    def __call__(self, encoded):
        return {k: self.value(v) for k, v in encoded.items()}

    def value(self, v):
        if v is None or isinstance(v, (bool, str)):
            return v
        (kind, payload), = [(k, x) for k, x in v.items() if k != "hex"]
        if kind == "int":
            return int(payload)
        if kind == "float":
            return float.fromhex(payload)
        if kind == "scalar":
            return np.frombuffer(bytes.fromhex(v["hex"]), np.dtype(payload))[0]
        if kind == "array":
            return self.arrays[payload].copy()
        if kind in ("list", "tuple"):
            items = [self.value(x) for x in payload]
            return items if kind == "list" else tuple(items)
        if kind == "dict":
            return {k: self.value(x) for k, x in payload.items()}
        if kind == "function":
            module, qualname = payload.split(":")
            obj = importlib.import_module(module)
            for part in qualname.split("."):
                obj = getattr(obj, part)
            return obj
        raise ValueError(f"unknown saved value {v!r}")
