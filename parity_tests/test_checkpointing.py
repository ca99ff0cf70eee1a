"""Checkpoints: Sequential's weights API, the file formats, ModelCheckpoint, against Keras.

* Keras's ``.weights.h5``: a scratchopt model trained a few steps writes one, the
  equivalent Keras model's ``load_weights`` reads it (weights compared bit for bit), and
  the other way round;
* scratchopt's checkpoint format: ``load_weights`` / ``load_model`` give back every bit;
  a truncated or corrupt file is an error naming it, with nothing loaded;
* ``ModelCheckpoint``: the file names, best-only decisions and batch-level saves are
  Keras's (its callback run on the same logs, with a stand-in model that records saves);
  a directory that cannot be written is an OSError before the first epoch;
* ``Sequential``: ``compile(metrics=...)``, the logs' keys and order (Keras's History),
  batch hooks with running means, ``evaluate``, ``predict``, ``get_weights`` order with
  BatchNormalization, ``initial_epoch``.
"""

import os
import warnings

import numpy as np
import pytest

from scratchopt import callbacks as cb
from scratchopt.layers import BatchNormalization, Dropout
from scratchopt.nn import Dense, MeanSquaredError, ReLU, Sequential, saving
from scratchopt.nn.sequential import load_model
from scratchopt.optimizers import SGD, Adam

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def all_same(xs, ys):
    return len(xs) == len(ys) and all(same_bits(a, b) for a, b in zip(xs, ys))


def data(n=40, features=4, out=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, features)), rng.normal(size=(n, out))


def dense_model(dtype="float64"):
    model = Sequential([Dense(6, seed=1, dtype=dtype), BatchNormalization(momentum=0.9), Dropout(0.25, seed=2),
                        ReLU(), Dense(2, seed=3, dtype=dtype)])
    model.compile(Adam(learning_rate=0.01), MeanSquaredError())
    return model


def trained(model=None, epochs=2):
    model = model or dense_model()
    x, y = data()
    model.fit(x, y, epochs=epochs, batch_size=8, verbose=0, seed=0)
    return model


@pytest.fixture
def keras(tf):
    """Keras, with its default floatx (float32) whatever another test left, restored after."""
    import keras

    previous = keras.config.floatx()
    keras.config.set_floatx("float32")
    yield keras
    keras.config.set_floatx(previous)


# --- Keras's .weights.h5 --------------------------------------------------------------------------


def keras_dense_model(keras):
    return keras.Sequential([keras.Input((4,), dtype="float64"), keras.layers.Dense(6, dtype="float64"),
                             keras.layers.BatchNormalization(momentum=0.9, dtype="float64"),
                             keras.layers.Dropout(0.25, dtype="float64"), keras.layers.ReLU(dtype="float64"),
                             keras.layers.Dense(2, dtype="float64")])


def test_keras_reads_our_weights_h5(keras, tmp_path):
    model = trained()
    path = tmp_path / "model.weights.h5"
    model.save_weights(path)
    theirs = keras_dense_model(keras)
    theirs.load_weights(path)
    assert all_same(model.get_weights(), [np.asarray(w) for w in theirs.get_weights()])
    # and their predictions agree (inference: BN's moving statistics, no dropout)
    x, _ = data()
    # (called directly: Keras's predict would cast float64 data to floatx, float32)
    np.testing.assert_allclose(model.predict(x), np.asarray(theirs(x, training=False)), rtol=1e-12, atol=1e-12)


def test_we_read_keras_weights_h5(keras, tmp_path):
    theirs = keras_dense_model(keras)
    theirs.compile(keras.optimizers.Adam(), "mse")
    x, y = data()
    theirs.fit(x, y, epochs=1, verbose=0)  # the file then holds optimizer variables too
    path = tmp_path / "keras.weights.h5"
    theirs.save_weights(path)
    model = dense_model()
    model(x[:1])
    model.load_weights(path)
    assert all_same(model.get_weights(), [np.asarray(w) for w in theirs.get_weights()])


def test_keras_reads_our_cnn_weights_h5(keras, tmp_path):
    from scratchopt.nn.conv import Conv2D
    from scratchopt.nn.pooling import GlobalAveragePooling2D, MaxPooling2D
    from scratchopt.nn.reshaping import Flatten

    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 8, 8, 1)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[np.arange(6) % 3]
    model = Sequential([Conv2D(8, 3, seed=1), BatchNormalization(), MaxPooling2D(), Conv2D(8, 3, seed=2),
                        GlobalAveragePooling2D(), Flatten(), Dense(3, activation="softmax", seed=3)])
    model.compile(Adam(learning_rate=0.01), "categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=3, verbose=0, seed=0)
    path = tmp_path / "cnn.weights.h5"
    model.save_weights(path)
    L = keras.layers
    f32 = {"dtype": "float32"}  # whatever floatx another test left
    theirs = keras.Sequential([keras.Input((8, 8, 1), dtype="float32"), L.Conv2D(8, 3, **f32),
                               L.BatchNormalization(**f32), L.MaxPooling2D(**f32), L.Conv2D(8, 3, **f32),
                               L.GlobalAveragePooling2D(**f32), L.Flatten(**f32),
                               L.Dense(3, activation="softmax", **f32)])
    theirs.load_weights(path)
    assert all_same(model.get_weights(), [np.asarray(w) for w in theirs.get_weights()])


def test_keras_layout_names_groups_by_class(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "m.weights.h5"
    trained().save_weights(path)
    with h5py.File(path, "r") as f:
        groups = sorted(f["layers"])
        assert groups == ["batch_normalization", "dense", "dense_1", "dropout", "re_lu"]
        assert len(f["layers/batch_normalization/vars"]) == 4
        assert "vars" in f
    assert saving.to_snake_case("MaxPooling2D") == "max_pooling2d"
    assert saving.to_snake_case("Conv2D") == "conv2d"


def test_h5_damage_is_detected(tmp_path):
    pytest.importorskip("h5py")
    model = trained()
    path = tmp_path / "m.weights.h5"
    model.save_weights(path)
    data_ = path.read_bytes()
    before = model.get_weights()
    (tmp_path / "short.weights.h5").write_bytes(data_[: len(data_) // 2])
    with pytest.raises((OSError, ValueError), match="short.weights.h5"):
        model.load_weights(tmp_path / "short.weights.h5")
    assert all_same(model.get_weights(), before)


def test_without_h5py_the_error_names_the_extra(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "h5py", None)
    model = trained()
    with pytest.raises(ImportError, match=r"scratchopt\[h5\]"):
        model.save_weights(tmp_path / "m.weights.h5")
    assert not list(tmp_path.iterdir())


# --- scratchopt's checkpoint format ------------------------------------------------------------------


def test_weights_round_trip_bit_for_bit(tmp_path):
    model = trained()
    model.save_weights(tmp_path / "w.ckpt")
    fresh = dense_model()
    fresh(data()[0][:1])
    fresh.load_weights(tmp_path / "w.ckpt")
    assert all_same(fresh.get_weights(), model.get_weights())


def test_load_model_rebuilds_layers_optimizer_and_resumes(tmp_path):
    """A full checkpoint: load_model rebuilds everything; training on from it matches
    training on without it (shuffle=False, so no generator is involved)."""
    x, y = data()
    model = dense_model()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert [type(layer).__name__ for layer in loaded.layers] == [type(layer).__name__ for layer in model.layers]
    assert all_same(loaded.get_weights(), model.get_weights())
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == model.optimizer.iterations
    # Dropout's place in its seed sequence is not in a model file (BackupAndRestore saves it): copy it
    loaded.layers[2]._seeds.state = list(model.layers[2]._seeds.state)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    loaded.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    assert all_same(loaded.get_weights(), model.get_weights())


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "garbage"])
def test_damaged_checkpoint_raises_naming_the_file_and_loads_nothing(tmp_path, damage):
    model = trained()
    path = tmp_path / "m.keras"
    model.save(path)
    data_ = bytearray(path.read_bytes())
    if damage == "truncate":
        data_ = data_[: len(data_) - 100]
    elif damage == "flip":
        data_[len(data_) // 2] ^= 0x01
    elif damage == "empty":
        data_ = bytearray()
    else:
        data_ = bytearray(b"not a checkpoint" * 10)
    bad = tmp_path / f"bad-{damage}.keras"
    bad.write_bytes(bytes(data_))
    target = dense_model()
    target(data()[0][:1])
    before = target.get_weights()
    with pytest.raises(ValueError, match=f"bad-{damage}.keras"):
        target.load_weights(bad)
    with pytest.raises(ValueError, match=f"bad-{damage}.keras"):
        load_model(bad)
    assert all_same(target.get_weights(), before)


def test_a_checkpoint_of_another_model_loads_nothing(tmp_path):
    trained().save_weights(tmp_path / "w.ckpt")
    other = Sequential([Dense(3, seed=1, dtype="float64"), Dense(2, seed=2, dtype="float64")])
    other(np.zeros((1, 4)))
    before = other.get_weights()
    with pytest.raises(ValueError, match="w.ckpt"):
        other.load_weights(tmp_path / "w.ckpt")
    assert all_same(other.get_weights(), before)


def test_atomic_write_leaves_the_old_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    saving.atomic_write(path, b"old")

    def fail(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(KeyboardInterrupt):
        saving.atomic_write(path, b"new")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]  # the temporary file removed


# --- ModelCheckpoint ------------------------------------------------------------------------------


class Recorder:
    """A stand-in model for both callbacks: records every save."""

    def __init__(self):
        self.saved = []
        self.stop_training = False

    def save(self, filepath, overwrite=True):
        self.saved.append(("model", filepath))

    def save_weights(self, filepath, overwrite=True):
        self.saved.append(("weights", filepath))


def drive(callback, events):
    model = Recorder()
    callback.set_model(model)
    for event in events:
        if event[0] == "epoch_begin":
            callback.on_epoch_begin(event[1])
        elif event[0] == "batch_end":
            callback.on_train_batch_end(event[1], event[2])
        else:
            callback.on_epoch_end(event[1], event[2])
    return model.saved, callback.best


def epochs_of(values, key="val_loss"):
    events = []
    for epoch, value in enumerate(values):
        events += [("epoch_begin", epoch), ("epoch_end", epoch, {} if value is None else {key: value, "loss": 1.0})]
    return events


CASES = [
    ({"filepath": "ck/{epoch:02d}-{val_loss:.2f}.keras"}, [0.5, 0.25, 0.75]),
    ({"filepath": "ck/best.keras", "save_best_only": True}, [0.5, 0.25, 0.75, 0.25, 0.125, float("nan"), 0.1]),
    ({"filepath": "ck/best.keras", "save_best_only": True, "initial_value_threshold": 0.3}, [0.5, 0.25, 0.3, 0.2]),
    ({"filepath": "ck/best.keras", "save_best_only": True, "mode": "max"}, [0.5, 0.25, 0.75, 0.75, 0.8]),
    ({"filepath": "ck/b.weights.h5", "save_best_only": True, "save_weights_only": True}, [0.3, None, 0.2, 0.4]),
    ({"filepath": "ck/{epoch}.keras", "monitor": "loss", "save_best_only": True}, [0.3, 0.2]),
]


@pytest.mark.parametrize("kwargs, values", CASES)
def test_model_checkpoint_saves_what_keras_saves(keras, kwargs, values):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = drive(cb.ModelCheckpoint(**kwargs), epochs_of(values))
        theirs = drive(keras.callbacks.ModelCheckpoint(**kwargs), epochs_of(values))
    assert ours[0] == theirs[0]
    assert ours[1] == theirs[1] or (ours[1] != ours[1] and theirs[1] != theirs[1])


def test_model_checkpoint_batch_level_saves_as_keras(keras):
    events = []
    for epoch in range(3):
        events.append(("epoch_begin", epoch))
        events += [("batch_end", b, {"loss": 1.0 / (b + 1 + epoch)}) for b in range(5)]
        events.append(("epoch_end", epoch, {"loss": 0.5}))
    kwargs = {"filepath": "ck/e{epoch}-b{batch}.keras", "save_freq": 3, "monitor": "loss"}
    ours = drive(cb.ModelCheckpoint(**kwargs), events)
    theirs = drive(keras.callbacks.ModelCheckpoint(**kwargs), events)
    assert ours[0] == theirs[0] and len(ours[0]) == 5


def test_model_checkpoint_files_load_back(tmp_path):
    pytest.importorskip("h5py")
    x, y = data()
    model = dense_model()
    best = cb.ModelCheckpoint(str(tmp_path / "best.weights.h5"), monitor="loss", save_best_only=True,
                              save_weights_only=True)
    every = cb.ModelCheckpoint(str(tmp_path / "m-{epoch:02d}.keras"))
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, validation_split=0.25, seed=0, callbacks=[best, every])
    assert sorted(os.listdir(tmp_path)) == ["best.weights.h5", "m-01.keras", "m-02.keras", "m-03.keras"]
    assert all_same(load_model(tmp_path / "m-03.keras").get_weights(), model.get_weights())
    again = dense_model()
    again(x[:1])
    again.load_weights(tmp_path / "best.weights.h5")  # Keras's layout, read by load_weights


def test_unwritable_directory_fails_before_training(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    x, y = data()
    model = dense_model()
    model(x[:1])
    before = model.get_weights()
    checkpoint = cb.ModelCheckpoint(str(blocker / "sub" / "{epoch}.keras"))
    with pytest.raises(OSError, match="a-file"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[checkpoint])
    assert all_same(model.get_weights(), before)
    assert not model.optimizer.built or model.optimizer.iterations == 0


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_directory_fails_before_training(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OSError, match="locked"):
            trained(epochs=1).fit(*data(), verbose=0, callbacks=[cb.ModelCheckpoint(str(locked / "m.keras"))])
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"filepath": "m.h5", "save_weights_only": True}, ValueError, "weights.h5"),
    ({"filepath": "m.weights.h5"}, ValueError, r"\.keras"),
    ({"filepath": "m.h5"}, ValueError, r"\.keras"),
    ({"filepath": "m.keras", "save_freq": "batch"}, ValueError, "save_freq"),
    ({"filepath": "m.keras", "save_freq": 0}, ValueError, "save_freq"),
    ({"filepath": "m.keras", "mode": "mx"}, ValueError, "mode"),
    ({"filepath": "m.keras", "monitor": 3}, TypeError, "monitor"),
    ({"filepath": "m.keras", "save_best_only": "yes"}, TypeError, "save_best_only"),
    ({"filepath": 3}, TypeError, "filepath"),
    ({"filepath": "m.keras", "initial_value_threshold": "0.1"}, TypeError, "initial_value_threshold"),
])
def test_model_checkpoint_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        cb.ModelCheckpoint(**kwargs)


def test_missing_template_key_is_keras_key_error():
    checkpoint = cb.ModelCheckpoint("{epoch}-{val_acc}.keras")
    with pytest.raises(KeyError, match="Failed to format this callback filepath"):
        checkpoint._get_file_path(0, None, {"loss": 1.0})


# --- Sequential: weights, metrics, logs, hooks ------------------------------------------------------


def test_get_weights_order_is_keras_with_batch_normalization(keras):
    model = trained()
    theirs = keras_dense_model(keras)
    assert [w.shape for w in model.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    bn = model.layers[1]
    assert same_bits(model.get_weights()[2], bn.gamma) and same_bits(model.get_weights()[5], bn.moving_variance)
    assert len(model.params) == 6  # the optimizer sees gamma and beta, not the moving statistics


def test_set_weights_checks_everything_first():
    model = trained()
    before = model.get_weights()
    bad = [w.copy() for w in before]
    bad[-1] = np.zeros(5)
    with pytest.raises(ValueError, match=r"weights\[7\]"):
        model.set_weights(bad)
    with pytest.raises(ValueError, match="8 weights"):
        model.set_weights(before[:-1])
    assert all_same(model.get_weights(), before)
    model.set_weights([w + 1 for w in before])
    assert all_same(model.layers[1].moving_mean, before[4] + 1)


class Halves:
    """A stand-in metric (the interface of scratchopt.nn.metrics): the mean of y_pred > 0."""

    name = "positive"

    def __init__(self):
        self.reset_state()

    def reset_state(self):
        self.total, self.count = 0.0, 0

    def update_state(self, y_true, y_pred):
        self.total += float((y_pred > 0).sum())
        self.count += y_pred.size

    def result(self):
        return self.total / self.count


def test_logs_keys_order_and_batch_hooks():
    seen = []

    class Spy(cb.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(("begin", batch))

        def on_train_batch_end(self, batch, logs=None):
            seen.append(("end", batch, dict(logs)))

        def on_epoch_end(self, epoch, logs=None):
            seen.append(("epoch", epoch, dict(logs)))

    x, y = data()
    model = dense_model()
    model.compile(Adam(learning_rate=0.01), MeanSquaredError(), metrics=[Halves()])
    history = model.fit(x, y, epochs=2, batch_size=8, validation_split=0.25, verbose=0, seed=0, callbacks=[Spy()])
    assert list(history.history) == ["loss", "positive", "val_loss", "val_positive"]  # sorted, as Keras's
    ends = [e for e in seen if e[0] == "end"]
    assert [e[1] for e in ends] == [0, 1, 2, 3] * 2  # 30 samples, batches of 8: 4 a epoch
    assert [e[1] for e in seen if e[0] == "begin"] == [0, 1, 2, 3] * 2
    epoch_logs = [e[2] for e in seen if e[0] == "epoch"]
    # the epoch's loss and metric are the last batch's running means
    assert ends[3][2]["loss"] == epoch_logs[0]["loss"] and ends[3][2]["positive"] == epoch_logs[0]["positive"]
    assert list(ends[0][2]) == ["loss", "positive"]


def test_evaluate_shapes_and_predict_changes_nothing():
    x, y = data()
    model = trained()
    loss = model.evaluate(x, y, batch_size=16)
    assert isinstance(loss, float)
    model.compile(model.optimizer, model.loss, metrics=[Halves()])
    both = model.evaluate(x, y, batch_size=16)
    assert isinstance(both, list) and len(both) == 2 and both[0] == loss
    before = model.get_weights()
    batched = model.predict(x, batch_size=7)
    assert batched.shape == (40, 2)
    np.testing.assert_allclose(batched, model(x), rtol=1e-13, atol=1e-15)
    assert all_same(model.get_weights(), before)


def test_initial_epoch_as_keras():
    x, y = data()
    model = dense_model()
    history = model.fit(x, y, epochs=4, initial_epoch=2, batch_size=8, verbose=0, seed=0)
    assert history.epoch == [2, 3] and model.optimizer.iterations == 2 * 5


@pytest.mark.parametrize("call, error, match", [
    (lambda m: m.compile(Adam(), "hinge"), ValueError, "hinge"),
    (lambda m: m.compile(Adam(), 3), TypeError, "loss"),
    (lambda m: m.compile(None, "mse"), TypeError, "optimizer"),
    (lambda m: m.compile(Adam(), "mse", metrics="accuracy"), TypeError, "metrics"),
    (lambda m: m.compile(Adam(), "mse", metrics=["auc"]), ValueError, "auc"),
    (lambda m: m.fit(*data(), initial_epoch=-1, verbose=0), ValueError, "initial_epoch"),
    (lambda m: m.fit(*data(), callbacks=cb.EarlyStopping(), verbose=0), TypeError, "callbacks"),
    (lambda m: m.predict(np.zeros((3, 4)), batch_size=0), ValueError, "batch_size"),
])
def test_bad_arguments_change_nothing(call, error, match):
    model = dense_model()
    model(data()[0][:1])
    before, optimizer, loss = model.get_weights(), model.optimizer, model.loss
    with pytest.raises(error, match=match):
        call(model)
    assert all_same(model.get_weights(), before)
    assert model.optimizer is optimizer and model.loss is loss


def test_history_and_metrics_match_keras_training(keras):
    """A softmax classifier with ["accuracy"], float64, no shuffling: Keras's History."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 4))
    y = np.eye(3)[rng.integers(0, 3, 30)]
    model = Sequential([Dense(3, activation="softmax", seed=1, dtype="float64")])
    model.compile(SGD(learning_rate=0.1), "categorical_crossentropy", metrics=["accuracy"])
    model(x[:1])
    theirs = keras.Sequential([keras.Input((4,), dtype="float64"),
                               keras.layers.Dense(3, activation="softmax", dtype="float64")])
    theirs.set_weights(model.get_weights())
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        theirs.compile(keras.optimizers.SGD(learning_rate=0.1), "categorical_crossentropy", metrics=["accuracy"],
                       run_eagerly=True)
        expected = theirs.fit(x, y, epochs=3, batch_size=8, validation_split=0.2, shuffle=False, verbose=0).history
    finally:
        keras.config.set_floatx(previous)
    ours = model.fit(x, y, epochs=3, batch_size=8, validation_split=0.2, shuffle=False, verbose=0).history
    assert list(ours) == list(expected) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    for key in ("accuracy", "val_accuracy"):
        assert ours[key] == expected[key]
    for key in ("loss", "val_loss"):  # the loss itself is test_softmax_losses' business
        np.testing.assert_allclose(ours[key], expected[key], rtol=1e-7, err_msg=key)
