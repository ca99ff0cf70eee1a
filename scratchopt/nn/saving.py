"""Checkpoint files: written whole or not at all, checked when read.

Two formats:

* **scratchopt's own** (any path not ending in ``.weights.h5``; ``ModelCheckpoint`` uses it
  for ``.keras`` paths, which are *not* Keras's ``.keras`` zip): a NumPy ``.npz`` archive
  (a zip file) holding

      meta.json                 {"format": "scratchopt-checkpoint", "version": 1, "kind": ...,
                                 "layers": [{"module", "class", "config", "weights"}], ...}
      weights/0, weights/1, ... ``model.get_weights()``, in Keras's order (non-trainable
                                state such as BatchNormalization's moving statistics included)
      optimizer/...             the optimizer's ``state_dict()`` (unless weights only)
      extra/...                 arrays of the training state (``BackupAndRestore``)

  Every member of a zip carries a CRC-32 of its bytes, and the directory of members is
  at the end of the file: a truncated file has no directory, a changed byte fails its CRC.
  ``read`` reads and checks *every* member before returning anything, so a bad file raises
  (``ValueError`` naming the file) and nothing is loaded.

* **Keras's HDF5 weights** (a path ending in ``.weights.h5``): the layout Keras 3.15's
  ``model.save_weights`` writes (``keras/src/saving/saving_lib.py``, ``H5IOStore``)::

      /vars                          (empty; attrs name="sequential")
      /layers/dense/vars/0, /1       kernel, bias
      /layers/batch_normalization/vars/0..3   gamma, beta, moving_mean, moving_variance
      /layers/dropout/vars           (empty)
      /layers/dense_1/vars/...       a second Dense: class names in snake case, numbered

  Keras names each layer's group after its *class* (``to_snake_case``), numbering repeats
  ``_1``, ``_2``, ... in order, never after ``layer.name``. Each dataset carries HDF5's
  Fletcher-32 checksum, so a changed byte fails on reading. The optimizer's variables are
  not written (Keras's ``optimizer/vars`` holds them in Keras's own variable order), so an
  equivalent Keras model's ``load_weights`` reads the weights only. h5py is imported only
  here, with a clear ImportError naming the ``[h5]`` extra.

Writing whole or nothing (``atomic_write``): the bytes go to a temporary file in the same
directory, which is flushed and ``os.fsync``-ed, then ``os.replace``-d over the target (an
atomic rename on POSIX and Windows), and the directory is fsync-ed. A process killed at any
moment leaves either the old file or the new one, never half of one.
"""

import contextlib
import importlib
import io
import json
import os
import re
import tempfile
import zipfile

import numpy as np

FORMAT = "scratchopt-checkpoint"
VERSION = 1


# --- writing whole or not at all ------------------------------------------------------------


@contextlib.contextmanager
def _replacing(path):
    """``with _replacing(path) as tmp:`` write the new file at ``tmp`` (beside ``path``); on
    leaving, it is fsynced and renamed over ``path`` (then the directory fsynced), or, if
    anything failed, removed: ``path`` ends up whole, old or new, never partly written."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = _temporary(path, directory)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def atomic_write(path, data):
    """Write the bytes ``data`` to ``path``: all of them, or (if anything fails) none."""
    with _replacing(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()


def _temporary(path, directory):
    """A new file beside ``path`` (``.tmp-<name>.<random>``), made with mode 0o666 less the
    umask, as ``open`` makes files (``tempfile.mkstemp`` would make it 0o600)."""
    for _ in range(100):
        tmp = os.path.join(directory, f".tmp-{os.path.basename(path)}.{os.urandom(6).hex()}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path!r}")


def remove_temporaries(path):
    """Remove what a killed ``atomic_write`` of ``path`` left behind (``.tmp-<name>.*``)."""
    directory = os.path.dirname(os.path.abspath(os.fspath(path)))
    prefix = f".tmp-{os.path.basename(os.fspath(path))}."
    for name in os.listdir(directory) if os.path.isdir(directory) else ():
        if name.startswith(prefix):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass


def _fsync_directory(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_writable(path, argument="filepath"):
    """An OSError now if the file ``path`` could not be written later (its directory, made if
    missing, must accept a new file): the check ``ModelCheckpoint`` runs before training."""
    directory = os.path.dirname(os.path.abspath(os.fspath(path)))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-writable.", dir=directory)
        os.close(fd)
        os.unlink(tmp)
    except OSError as error:
        raise OSError(f"`{argument}`: cannot write a file in {directory!r} ({error.strerror or error}). "
                      f"Received: {argument}={os.fspath(path)!r}") from None


# --- scratchopt's format ----------------------------------------------------------------------


def write(path, meta, arrays):
    """``meta`` (JSON-able) and ``arrays`` (name -> array) to ``path``, atomically."""
    meta = dict(meta, format=FORMAT, version=VERSION)
    buffer = io.BytesIO()
    members = {"meta.json": np.frombuffer(json.dumps(meta).encode(), np.uint8)}
    for name, a in arrays.items():
        members[name] = _to_numpy(a)
    np.savez(buffer, **members)
    atomic_write(path, buffer.getvalue())


def read(path):
    """``(meta, arrays)`` from a file ``write`` made; every member is read and its CRC checked
    first, so a truncated or corrupt file raises a ValueError naming it (nothing returned)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        raise OSError(f"cannot read the checkpoint {path!r}: {error.strerror or error}") from None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            bad = archive.testzip()  # reads every member, checking its CRC-32
            if bad is not None:
                raise ValueError(f"member {bad!r} fails its CRC-32 check")
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        meta = json.loads(arrays.pop("meta.json").tobytes().decode())
    except Exception as error:  # noqa: BLE001 (BadZipFile, zlib.error, ValueError, KeyError...: all "unreadable")
        raise ValueError(f"{path!r} is not a readable scratchopt checkpoint (truncated or corrupt?): "
                         f"{type(error).__name__}: {error}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not a scratchopt checkpoint (no {FORMAT!r} header)")
    if meta.get("version") != VERSION:
        raise ValueError(f"{path!r} is a checkpoint of version {meta.get('version')!r}; this scratchopt "
                         f"reads version {VERSION}")
    return meta, arrays


def _to_numpy(a):
    get = getattr(a, "get", None)  # CuPy -> NumPy
    return np.asarray(get() if callable(get) and not isinstance(a, np.ndarray) else a)


# --- what a model and an optimizer are, as data ------------------------------------------------


def describe(obj):
    """``{"module", "class", "config"}`` of a Configurable object (a layer, an optimizer)."""
    config = obj.get_config() if hasattr(obj, "get_config") else {}
    try:
        json.dumps(config)
    except (TypeError, ValueError):
        config = None  # not JSON-able (e.g. a regularizer object): the class alone
    return {"module": type(obj).__module__, "class": type(obj).__qualname__, "config": config}


def rebuild(description, what):
    """The object ``describe`` described, from its class's ``from_config`` (scratchopt classes only)."""
    module = description["module"]
    if not module.startswith("scratchopt."):
        raise ValueError(f"cannot rebuild {what} of class {module}.{description['class']}: only "
                         "scratchopt classes are rebuilt from a checkpoint")
    cls = importlib.import_module(module)
    for part in description["class"].split("."):
        cls = getattr(cls, part)
    config = description["config"]
    if config is None:
        raise ValueError(f"cannot rebuild {what} {description['class']}: its config was not JSON-able")
    return cls.from_config(config) if hasattr(cls, "from_config") else cls(**config)


def optimizer_arrays(state):
    """An optimizer's ``state_dict()`` as ``(json part, arrays)``."""
    arrays = {}
    for i, slots in enumerate(state["slots"]):
        for k, a in slots.items():
            arrays[f"optimizer/slots/{i}/{k}"] = a
    for field in ("ema", "accumulators"):
        for i, a in enumerate(state[field] or []):
            arrays[f"optimizer/{field}/{i}"] = a
    info = {"iterations": state["iterations"], "learning_rate": state["learning_rate"],
            "slots": [list(s) for s in state["slots"]],
            "ema": None if state["ema"] is None else len(state["ema"]),
            "accumulators": None if state["accumulators"] is None else len(state["accumulators"])}
    return info, arrays


def optimizer_state(info, arrays):
    """The ``state_dict()`` that ``optimizer_arrays`` took apart."""
    def listed(field):
        n = info[field]
        return None if n is None else [arrays[f"optimizer/{field}/{i}"] for i in range(n)]

    return {"iterations": info["iterations"], "learning_rate": info["learning_rate"],
            "slots": [{k: arrays[f"optimizer/slots/{i}/{k}"] for k in keys} for i, keys in enumerate(info["slots"])],
            "ema": listed("ema"), "accumulators": listed("accumulators")}


def weights_of(meta, arrays):
    return [arrays[f"weights/{i}"] for i in range(meta["n_weights"])]


# --- Keras's .weights.h5 --------------------------------------------------------------------------


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("writing or reading a Keras `.weights.h5` file needs h5py: "
                          "pip install 'scratchopt[h5]'") from None
    return h5py


def to_snake_case(name):
    """Keras's ``naming.to_snake_case`` (``Conv2D`` -> ``conv2d``, ``MaxPooling2D`` ->
    ``max_pooling2d``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def keras_layer_paths(layers):
    """Each layer's group in a Keras weights file: its class in snake case, numbered on repeats."""
    used, paths = {}, []
    for layer in layers:
        name = to_snake_case(type(layer).__name__)
        if name in used:
            used[name] += 1
            name = f"{name}_{used[name]}"
        else:
            used[name] = 0
        paths.append(f"layers/{name}")
    return paths


def write_keras_h5(path, layers, per_layer):
    """Keras 3.15's ``.weights.h5`` layout for a Sequential of ``layers`` (``per_layer``: each
    layer's weights in Keras's order), to a temporary file, then ``os.replace``."""
    h5py = _h5py()
    with _replacing(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_group("vars").attrs["name"] = "sequential"
            for group, layer, weights in zip(keras_layer_paths(layers), layers, per_layer):
                g = f.create_group(group).create_group("vars")
                g.attrs["name"] = getattr(layer, "name", None) or group.split("/")[-1]
                for i, w in enumerate(weights):
                    w = _to_numpy(w)  # Fletcher-32 checksums (read by any HDF5 reader, Keras's too)
                    g.create_dataset(str(i), data=w, fletcher32=w.ndim > 0)
            f.flush()


def read_keras_h5(path, layers):
    """Each layer's weights from a Keras ``.weights.h5`` file, checked to be there."""
    h5py = _h5py()
    path = os.fspath(path)
    out = []
    try:
        with h5py.File(path, "r") as f:
            for group in keras_layer_paths(layers):
                vars_ = f[group]["vars"] if group in f else None
                if vars_ is None:
                    out.append(None)
                    continue
                out.append([np.array(vars_[str(i)]) for i in range(len(vars_))])
    except OSError as error:
        raise OSError(f"cannot read the Keras weights file {path!r}: {error}") from None
    except Exception as error:  # noqa: BLE001 (a missing dataset, a failed checksum...: all "unreadable")
        raise ValueError(f"{path!r} is not a readable Keras weights file: {type(error).__name__}: {error}") from None
    return out
