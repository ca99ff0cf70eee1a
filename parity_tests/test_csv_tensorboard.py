"""CSVLogger, TensorBoard and TerminateOnNaN against Keras's own callbacks.

* CSVLogger: the same sequence of logs through ours and Keras's: the files are compared byte
  for byte (no validation logs: "NA" columns; append; another separator; odd values).
* TensorBoard: the same logs through both; the event files are read back with TensorBoard's
  ``EventAccumulator`` and every tag, step and (float32) value compared.
* TerminateOnNaN: a fit that meets a NaN batch stops after it, and History still records
  the epoch with NaN losses, as Keras's fit does (run here on the same data).
"""

import math
import types

import numpy as np
import pytest

from scratchopt import callbacks as cb
from scratchopt.nn import Dense, MeanSquaredError, Sequential
from scratchopt.optimizers import SGD

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture
def keras(tf):
    """Keras, with its default floatx (float32) whatever another test left, restored after."""
    import keras

    previous = keras.config.floatx()
    keras.config.set_floatx("float32")
    yield keras
    keras.config.set_floatx(previous)


# --- CSVLogger ----------------------------------------------------------------------------------------

LOG_SEQUENCES = {
    "no validation": [{"loss": 0.5}, {"loss": 0.25}, {"loss": 0.1 + 0.2}],
    "validation": [{"loss": 0.5, "val_loss": 0.75, "accuracy": 0.5, "val_accuracy": 0.25},
                   {"loss": 0.25, "val_loss": 0.625, "accuracy": 0.75, "val_accuracy": 0.5}],
    "odd values": [{"loss": np.float32(0.1), "acc": np.float64(1 / 3), "n": 3, "lr": float("nan"),
                    "v": [1.0, 2.5], "s": "text", "z": np.array(2.0)},
                   {"loss": float("inf"), "acc": 1e-300, "n": -1}],
    "keys change": [{"loss": 0.5}, {"loss": 0.25, "learning_rate": 0.001}, {}],
    "nothing": [{}, {}],
}


def write_csv(logger_class, path, sequence, **kwargs):
    logger = logger_class(str(path), **kwargs)
    logger.on_train_begin()
    for epoch, logs in enumerate(sequence):
        logger.on_epoch_end(epoch, dict(logs))
    logger.on_train_end()
    return path.read_bytes()


@pytest.mark.parametrize("name", sorted(LOG_SEQUENCES))
@pytest.mark.parametrize("separator", [",", ";", "\t"])
def test_csv_logger_bytes_are_keras(keras, tmp_path, name, separator):
    sequence = LOG_SEQUENCES[name]
    ours = write_csv(cb.CSVLogger, tmp_path / "ours.csv", sequence, separator=separator)
    theirs = write_csv(keras.callbacks.CSVLogger, tmp_path / "theirs.csv", sequence, separator=separator)
    assert ours == theirs


@pytest.mark.parametrize("existing", [None, b"", b"epoch,loss,val_loss\r\n0,1.0,NA\r\n"])
def test_csv_logger_append_is_keras(keras, tmp_path, existing):
    files = {}
    for who, logger_class in (("ours", cb.CSVLogger), ("theirs", keras.callbacks.CSVLogger)):
        path = tmp_path / f"{who}.csv"
        if existing is not None:
            path.write_bytes(existing)
        files[who] = write_csv(logger_class, path, [{"loss": 0.5}, {"loss": 0.25}], append=True)
    assert files["ours"] == files["theirs"]


def test_csv_logger_in_fit_has_na_columns(tmp_path):
    x = np.linspace(-1, 1, 16).reshape(8, 2)
    y = x.sum(axis=1, keepdims=True)
    model = Sequential([Dense(1, seed=0, dtype="float64")])
    model.compile(SGD(learning_rate=0.1), MeanSquaredError())
    model.fit(x, y, epochs=2, batch_size=4, verbose=0, callbacks=[cb.CSVLogger(str(tmp_path / "log.csv"))])
    lines = (tmp_path / "log.csv").read_bytes().split(b"\r\n")
    assert lines[0] == b"epoch,loss,val_loss" and lines[1].endswith(b",NA") and lines[3] == b""


@pytest.mark.parametrize("kwargs, error", [({"filename": 3}, TypeError), ({"filename": "f", "separator": ";;"}, ValueError),
                                           ({"filename": "f", "append": "yes"}, TypeError)])
def test_csv_logger_bad_arguments(kwargs, error):
    with pytest.raises(error, match=next(k for k in kwargs if k != "filename" or len(kwargs) == 1)):
        cb.CSVLogger(**kwargs)


# --- TensorBoard --------------------------------------------------------------------------------------


def read_events(directory):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    events = {}
    for sub in ("train", "validation"):
        path = directory / sub
        if not path.exists():
            continue
        accumulator = EventAccumulator(str(path))
        accumulator.Reload()
        for tag in accumulator.Tags()["tensors"]:
            events[(sub, tag)] = [(e.step, tensor_util.make_ndarray(e.tensor_proto).tobytes().hex(),
                                   str(tensor_util.make_ndarray(e.tensor_proto).dtype))
                                  for e in accumulator.Tensors(tag)]
    return events


def drive_board(board, model, epochs, batches, with_validation):
    board.set_model(model)
    board.on_train_begin()
    for epoch in range(epochs):
        board.on_epoch_begin(epoch)
        for batch in range(batches):
            board.on_train_batch_begin(batch)
            board.on_train_batch_end(batch, {"loss": 1.0 / (batch + 1 + epoch), "mae": 0.5 + batch})
        logs = {"loss": 0.5 / (epoch + 1), "mae": 0.25 + epoch}
        if with_validation:
            val = {"loss": 0.75 / (epoch + 1), "mae": 0.375}
            board.on_test_begin()  # Keras's fit runs evaluate with its callbacks: the test hooks
            for batch in range(epoch + 1):
                board.on_test_batch_begin(batch)
                board.on_test_batch_end(batch, dict(val))
            board.on_test_end(dict(val))
            logs.update({f"val_{k}": v for k, v in val.items()})
        board.on_epoch_end(epoch, logs)
    board.on_train_end()


@pytest.mark.parametrize("update_freq", ["epoch", 2, "batch"])
@pytest.mark.parametrize("with_validation", [True, False])
def test_tensorboard_events_are_keras(keras, tmp_path, update_freq, with_validation):
    ours_model = types.SimpleNamespace(optimizer=SGD(learning_rate=0.1), stop_training=False)
    ours_model.optimizer.build([np.zeros(2)])
    theirs_model = types.SimpleNamespace(optimizer=keras.optimizers.SGD(learning_rate=0.1), stop_training=False)
    drive_board(cb.TensorBoard(tmp_path / "ours", update_freq=update_freq), ours_model, 3, 3, with_validation)
    drive_board(keras.callbacks.TensorBoard(tmp_path / "theirs", update_freq=update_freq, write_graph=False),
                theirs_model, 3, 3, with_validation)
    ours, theirs = read_events(tmp_path / "ours"), read_events(tmp_path / "theirs")
    assert sorted(ours) == sorted(theirs)
    assert ("train", "epoch_learning_rate") in ours
    assert ours == theirs


def test_tensorboard_in_fit_writes_epoch_scalars(tmp_path):
    x = np.linspace(-1, 1, 16).reshape(8, 2)
    y = x.sum(axis=1, keepdims=True)
    model = Sequential([Dense(1, seed=0, dtype="float64")])
    model.compile(SGD(learning_rate=0.1), MeanSquaredError())
    history = model.fit(x, y, epochs=2, batch_size=2, validation_split=0.25, verbose=0,
                        callbacks=[cb.TensorBoard(tmp_path / "tb")])
    events = read_events(tmp_path / "tb")
    assert sorted(events) == [("train", "epoch_learning_rate"), ("train", "epoch_loss"),
                              ("validation", "epoch_loss"), ("validation", "evaluation_loss_vs_iterations")]
    values = [np.frombuffer(bytes.fromhex(v), np.float32)[0] for _, v, _ in events[("validation", "epoch_loss")]]
    assert values == [np.float32(v) for v in history.history["val_loss"]]
    assert [s for s, _, _ in events[("validation", "evaluation_loss_vs_iterations")]] == [3, 6]


def test_tensorboard_without_the_package_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tensorboard.compat.proto", None)
    with pytest.raises(ImportError, match=r"scratchopt\[tensorboard\]"):
        cb.TensorBoard("logs")


@pytest.mark.parametrize("kwargs", [{"histogram_freq": 1}, {"write_images": True}, {"profile_batch": 2},
                                    {"embeddings_freq": 1}])
def test_tensorboard_refuses_what_it_does_not_write(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        cb.TensorBoard("logs", **kwargs)


# --- TerminateOnNaN -----------------------------------------------------------------------------------


def nan_data():
    x = np.linspace(-1, 1, 40).reshape(20, 2)
    y = x.sum(axis=1, keepdims=True)
    x[5, 0] = np.nan  # in the second batch of 4 (shuffle=False)
    return x, y


def test_terminate_on_nan_stops_after_the_batch_and_history_keeps_the_epoch(capsys):
    x, y = nan_data()
    model = Sequential([Dense(1, seed=0, dtype="float64")])
    model.compile(SGD(learning_rate=0.1), MeanSquaredError())
    ends = []

    class End(cb.Callback):
        def on_train_end(self, logs=None):
            ends.append(True)

    history = model.fit(x, y, epochs=3, batch_size=4, validation_split=0.2, shuffle=False, verbose=0,
                        callbacks=[cb.TerminateOnNaN(), End()])
    assert capsys.readouterr().out == "Batch 1: Invalid loss, terminating training\n"
    assert history.epoch == [0] and model.optimizer.iterations == 2  # batches 0 and 1, then the stop
    assert math.isnan(history.history["loss"][0]) and math.isnan(history.history["val_loss"][0])
    assert ends == [True]


def test_terminate_on_nan_matches_keras_fit(keras):
    x, y = nan_data()
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        theirs = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        theirs.compile(keras.optimizers.SGD(learning_rate=0.1), "mse")
        expected = theirs.fit(x, y, epochs=3, batch_size=4, validation_split=0.2, shuffle=False, verbose=0,
                              callbacks=[keras.callbacks.TerminateOnNaN()])
    finally:
        keras.config.set_floatx(previous)
    model = Sequential([Dense(1, seed=0, dtype="float64")])
    model.compile(SGD(learning_rate=0.1), MeanSquaredError())
    ours = model.fit(x, y, epochs=3, batch_size=4, validation_split=0.2, shuffle=False, verbose=0,
                     callbacks=[cb.TerminateOnNaN()])
    assert ours.epoch == expected.epoch
    assert sorted(ours.history) == sorted(expected.history)
    for key in ours.history:
        assert [math.isnan(v) for v in ours.history[key]] == [math.isnan(v) for v in expected.history[key]]
    assert int(theirs.optimizer.iterations) == model.optimizer.iterations


def test_terminate_on_nan_raise_error_is_keras(keras):
    messages = []
    for callback in (cb.TerminateOnNaN(raise_error=True), keras.callbacks.TerminateOnNaN(raise_error=True)):
        callback.set_model(types.SimpleNamespace(stop_training=False))
        with pytest.raises(RuntimeError) as info:
            callback.on_train_batch_end(4, {"loss": float("inf")})
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_terminate_on_nan_bad_argument():
    with pytest.raises(TypeError, match="raise_error"):
        cb.TerminateOnNaN(raise_error="yes")
