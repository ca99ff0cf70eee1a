"""The training checklist, run end to end: ``python docs/examples/checklist.py``.

Every line below is one item of the checklist on the site (docs/checklist.md), on the
lesson's regression task (1000 samples, y = x0 + x1 + x2 + noise) with scratchopt alone.
It prints what each item did, and ``parity_tests/test_docs.py`` runs it.
"""

import numpy as np

from scratchopt import callbacks, layers, nn, regularizers, schedules
from scratchopt.tools.demos.optimizers import lesson_data
from scratchopt.optimizers import AdamW


def main(epochs=40, verbose=True):
    say = print if verbose else (lambda *args: None)
    # --- before training ------------------------------------------------------------------
    x, y = lesson_data("float64")
    x = (x - x.mean(axis=0)) / x.std(axis=0)                       # 1. inputs standardized
    model = nn.Sequential([
        nn.Dense(64, "relu", kernel_regularizer=regularizers.L2(1e-4), seed=0, dtype="float64"),
        layers.BatchNormalization(),                                # 2. normalization
        layers.Dropout(0.1, seed=0),                                # 3. regularization
        nn.Dense(1, seed=1, dtype="float64"),
    ])
    steps_per_epoch = int(np.ceil(800 / 32))
    schedule = schedules.WarmupCosineDecay(1e-2, warmup_steps=steps_per_epoch,     # 4. warmup +
                                           total_steps=epochs * steps_per_epoch)   #    cosine
    optimizer = AdamW(schedule, weight_decay=1e-4, global_clipnorm=1.0)            # 5. AdamW, clipping
    model.compile(optimizer, nn.MeanSquaredError())
    # --- during training ------------------------------------------------------------------
    stop = callbacks.EarlyStopping(patience=5, restore_best_weights=True)          # 6. early stopping
    history = model.fit(x, y, epochs=epochs, batch_size=32, validation_split=0.2,  # 7. validation set
                        callbacks=[stop], verbose=0, seed=0)
    # --- after training -------------------------------------------------------------------
    val = history.history["val_loss"]
    best = int(np.argmin(val))
    final = model.evaluate(x[800:], y[800:])                                       # 8. evaluate the
    say(f"epochs run: {len(val)} of {epochs} (early stopping: {'yes' if stop.stopped_epoch else 'no'})")
    say(f"validation loss: first {val[0]:.4f}, best {val[best]:.4f} at epoch {best}")  # restored weights
    say(f"restored weights give {final:.4f} on the validation set")
    say(f"learning rate at the end: {float(optimizer.learning_rate):.3g}")
    return {"val_loss": val, "best": best, "final": final, "stopped_epoch": stop.stopped_epoch}


if __name__ == "__main__":
    main()
