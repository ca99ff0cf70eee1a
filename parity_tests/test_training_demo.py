"""The lesson's complete training setup (``scratchopt demo training``): scratchopt's CNN
trained like Keras's, epoch by epoch.

A quick run (256 training and 64 validation images of ``load_digits``, 2 epochs, 16 steps
each): in float64, dropout included (both sides seed their dropout layers alike, and
scratchopt draws TF's masks), from Keras's initial weights and in the same batch order, the
per-epoch losses agree with eager Keras to ``training.BOUND`` (relative),
the bound measured on the full run (docs/training.md); the accuracies are the same numbers;
the figure is written; and the command line runs it.
"""

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from scratchopt.tools import cli
from scratchopt.tools.demos import training

PNG = b"\x89PNG\r\n\x1a\n"


def test_the_quick_demo_in_float64_with_dropout_follows_keras_epoch_by_epoch(tf, tmp_path, capsys, monkeypatch):
    """``scratchopt demo training --quick --dtype float64``, once (one Keras run:
    the test stays under a minute); the runs it compared are caught on their way out."""
    runs = []
    real = training.compare
    monkeypatch.setattr(training, "compare", lambda *args, **kwargs: runs.append(real(*args, **kwargs)) or runs[-1])
    path = tmp_path / "training.png"
    assert cli.main(["demo", "training", "--quick", "--dtype", "float64", "--out", str(path)]) == 0
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 20_000
    out = capsys.readouterr().out
    assert "float64, 2 epochs, 256 training / 64 validation images" in out
    assert "SpatialDropout2D(0.2), Dropout(0.5)" in out

    (ours, theirs), = runs
    settings = training.Settings.quick()
    assert ours.error is None and theirs.error is None, (ours.error, theirs.error)
    assert len(ours.seconds) == len(theirs.seconds) == settings.epochs
    gaps = training.relative_gaps(ours, theirs)
    assert max(max(g) for g in gaps.values()) <= training.BOUND, gaps
    printed = float(out.split("max relative difference per epoch (loss, val_loss): ")[1].split()[0])
    assert printed == pytest.approx(max(max(g) for g in gaps.values()), rel=1e-2)
    for key in ("accuracy", "val_accuracy"):  # a count of right answers: the same count
        assert ours.history[key] == pytest.approx(theirs.history[key], abs=1e-12), key
    # the lesson's callbacks wrote their files, on both sides
    for side in ("scratchopt", "keras"):
        assert (tmp_path / "training_runs" / side / "best_model.keras").is_file(), side
        assert any((tmp_path / "training_runs" / side / "logs").rglob("*tfevents*")), side


def test_reduce_lr_on_plateau_cannot_set_a_scheduled_rate_in_either(tf):
    """What the lesson's ReduceLROnPlateau meets at its first plateau: the optimizer's rate is
    a CosineDecay, and neither Keras's setter nor ours takes a number."""
    settings = training.Settings.quick()
    with pytest.raises(TypeError, match="not settable"):
        training.keras_optimizer(settings).learning_rate = 0.001
    with pytest.raises(TypeError, match="not settable"):
        training.scratchopt_optimizer(settings).learning_rate = 0.001


def test_at_the_first_plateau_both_fits_stop_with_the_same_type_error(tf, tmp_path):
    """The lesson's ReduceLROnPlateau on an AdamW(CosineDecay) fires: Keras's ``model.fit`` and
    ours stop at the same epoch with a TypeError. ``mode="max"`` on the val_loss makes the
    first fall a plateau, so the quick run reaches one at its second epoch. Three epochs
    planned, not two: at the end of the last epoch the cosine has reached 0, and a rate of 0
    is not above ``min_lr``, so Keras (and scratchopt) would not try to lower it."""
    settings = training.Settings.quick(dtype="float64", dropout=False, epochs=3, plateau_patience=1,
                                       plateau_mode="max")
    ours, theirs = training.compare(settings, tmp_path)
    assert ours.history["val_loss"][1] < ours.history["val_loss"][0]  # a fall: a "plateau" in max mode
    assert ours.stopped_epoch == theirs.stopped_epoch == 2, (ours, theirs)
    assert "not settable" in ours.error and "not settable" in theirs.error
    assert ours.error.startswith("TypeError") and theirs.error.startswith("TypeError")
    # the epoch that raised was recorded on both sides, and the best model so far was kept
    assert len(ours.history["loss"]) == len(theirs.history["loss"]) == 2
    assert (tmp_path / "scratchopt" / "best_model.keras").is_file() and (tmp_path / "keras" / "best_model.keras").is_file()
