"""Recurrent dropout on real data: the digits images read row by row by an LSTM.

``scikit-learn``'s ``load_digits`` (1,797 images of 8 x 8 pixels, shipped with the package: no
download) becomes 1,797 sequences of 8 steps, each step one row of 8 pixels (scaled to
[0, 1]). A fixed split gives 1,437 training and 360 validation sequences. The model is
``LSTM(32) -> Dense(10)`` on the logits, ``SoftmaxCrossEntropy``, Adam, trained twice from the
same initial weights and the same batches: once without dropout, once with
``recurrent_dropout`` (Keras's variational masks: one per gate, drawn once per sequence, the
same at every step). The figure shows both runs' training and validation curves, loss and
accuracy.

    scratchopt demo lstm            (see ``main``; about 30 s on a 2-core machine)
"""

import importlib.util
import time

import numpy as np

from ... import nn, optimizers
from ...nn.lstm import LSTM

EPOCHS = 25
UNITS = 32
RECURRENT_DROPOUT = 0.3
BATCH_SIZE = 32
LEARNING_RATE = 0.01


def digits_sequences(dtype="float32"):
    """``(x_train, y_train, x_val, y_val)``: images as (N, 8 steps, 8 pixels), in [0, 1]."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype(dtype)  # (1797, 8, 8): row r is step r
    y = data.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    val, train = order[:360], order[360:]
    return x[train], y[train], x[val], y[val]


def model(recurrent_dropout, dtype="float32", seed=0):
    return nn.Sequential([LSTM(UNITS, recurrent_dropout=recurrent_dropout, seed=seed, dtype=dtype),
                          nn.Dense(10, seed=seed, dtype=dtype)])


def accuracy(net, x, y):
    return float(np.mean(np.argmax(net.predict(x, batch_size=256), axis=1) == y))


def run(recurrent_dropout, epochs=EPOCHS, dtype="float32", data=None):
    """Train one model; returns a dict of per-epoch lists: loss, val_loss, accuracy, val_accuracy
    (accuracies and both losses measured in inference mode after each epoch, and the
    training loss as ``fit`` reports it: the mean over the epoch's batches, with dropout)."""
    x_tr, y_tr, x_val, y_val = digits_sequences(dtype) if data is None else data
    net = model(recurrent_dropout, dtype)
    net.compile(optimizers.Adam(learning_rate=LEARNING_RATE), nn.SoftmaxCrossEntropy())
    curves = {k: [] for k in ("loss", "val_loss", "accuracy", "val_accuracy")}
    start = time.perf_counter()
    for epoch in range(epochs):
        history = net.fit(x_tr, y_tr, epochs=1, batch_size=BATCH_SIZE, validation_data=(x_val, y_val),
                          shuffle=True, verbose=0, seed=epoch)
        curves["loss"].append(float(history.history["loss"][-1]))
        curves["val_loss"].append(float(history.history["val_loss"][-1]))
        curves["accuracy"].append(accuracy(net, x_tr, y_tr))
        curves["val_accuracy"].append(accuracy(net, x_val, y_val))
    curves["seconds"] = time.perf_counter() - start
    return curves


def draw(path, runs, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {"no dropout": "tab:blue", f"recurrent_dropout={RECURRENT_DROPOUT}": "tab:orange"}
    for name, curves in runs.items():
        epochs = np.arange(1, len(curves["loss"]) + 1)
        color = colors.get(name)
        ax_loss.plot(epochs, curves["loss"], color=color, linestyle="--", label=f"{name}: training")
        ax_loss.plot(epochs, curves["val_loss"], color=color, label=f"{name}: validation")
        ax_acc.plot(epochs, curves["accuracy"], color=color, linestyle="--", label=f"{name}: training")
        ax_acc.plot(epochs, curves["val_accuracy"], color=color, label=f"{name}: validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="Loss (training: mean over the epoch, with dropout)")
    ax_loss.set_yscale("log")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy (inference mode)", ylim=(0.5, 1.005))
    for ax in (ax_loss, ax_acc):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(path, epochs=EPOCHS, dtype="float32"):
    """Train both models, print the final numbers, write the PNG to ``path``; returns the exit code."""
    if importlib.util.find_spec("matplotlib") is None or importlib.util.find_spec("sklearn") is None:
        print('scratchopt demo lstm needs matplotlib and scikit-learn. Install with:\n'
              '  pip install "scratchopt[demo]"')
        return 2
    data = digits_sequences(dtype)
    runs = {"no dropout": run(0.0, epochs, dtype, data),
            f"recurrent_dropout={RECURRENT_DROPOUT}": run(RECURRENT_DROPOUT, epochs, dtype, data)}
    print(f"digits as 8-step sequences of 8 pixels: {len(data[0])} training / {len(data[2])} validation; "
          f"LSTM({UNITS}) -> Dense(10), Adam({LEARNING_RATE}), batch {BATCH_SIZE}, {epochs} epochs, {dtype}")
    print(f"{'run':<26}{'loss':>9}{'val_loss':>10}{'accuracy':>10}{'val_accuracy':>14}{'best val_acc':>14}{'s':>7}")
    for name, c in runs.items():
        print(f"{name:<26}{c['loss'][-1]:>9.4f}{c['val_loss'][-1]:>10.4f}{c['accuracy'][-1]:>10.4f}"
              f"{c['val_accuracy'][-1]:>14.4f}{max(c['val_accuracy']):>14.4f}{c['seconds']:>7.1f}")
    draw(path, runs, f"LSTM({UNITS}) on load_digits read row by row ({dtype}, {epochs} epochs)")
    print(f"wrote {path}")
    return 0
