"""``scratchopt parity``: the main job's exit codes and table."""

import importlib.util

import pytest

from scratchopt.tools import cli


def test_parity_job_prints_every_row_and_exits_0(tf, capsys):
    from scratchopt.tools.parity import entries

    assert cli.main(["parity", "--steps", "3"]) == 0
    out = capsys.readouterr().out
    rows = entries()
    assert f"{len(rows)} of {len(rows)} rows exact." in out
    for column in ("component", "dtype", "max ULP", "exact"):
        assert column in out
    # every group is in the table: optimizers, schedules, regularizers, callbacks
    for group in ("optimizers", "schedules", "regularizers", "callbacks", "training"):
        assert sum(c.group == group for c in rows) >= 3, group
    for label in ("WarmupCosineDecay", "L1L2", "ReduceLROnPlateau: cooldown=1", "EarlyStopping"):
        assert label in out, label


def test_demo_schedules_writes_the_figure_and_matches_keras(tf, tmp_path, capsys):
    path = tmp_path / "schedules.png"
    assert cli.main(["demo", "schedules", "--out", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000
    out = capsys.readouterr().out
    for name in ("Step decay", "Exponential decay", "Cosine decay", "Warmup + cosine"):
        assert f"{name}: max |scratchopt - Keras| = 0 (same bits)" in out
    # the table: step decay keeps 0.1 at step 300 (boundary) and drops at 301
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line[:4].strip().isdigit()}
    assert float(rows["300"][0]) == pytest.approx(0.1) and float(rows["301"][0]) == pytest.approx(0.01)
    assert float(rows["1000"][3]) == 0.0  # warmup + cosine ends at 0


def test_parity_job_exits_1_when_a_row_is_not_exact(tf, monkeypatch, capsys):
    from scratchopt.optimizers import SGD

    def update(g, var, m, *, lr, momentum, nesterov):  # the textbook sign: lr outside the buffer
        if m is None:
            return var - lr * g, m
        m = momentum * m + g
        return var - lr * m, m

    monkeypatch.setattr(SGD, "update", staticmethod(update))
    assert cli.main(["parity", "--steps", "3"]) == 1
    assert "✗" in capsys.readouterr().out


def test_parity_job_without_tensorflow_says_how_to_install_and_exits_2(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorflow" else real(name, *a))
    assert cli.main(["parity"]) == 2
    err = capsys.readouterr().err
    assert "tensorflow is not installed" in err and 'pip install "scratchopt[parity]"' in err


def test_demo_optimizers_float64_writes_the_figure_and_matches_keras(tf, tmp_path, capsys):
    path = tmp_path / "optimizers.png"
    assert cli.main(["demo", "optimizers", "--dtype", "float64", "--epochs", "2", "--out", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    table = [line.split() for line in out.splitlines() if line.split()[:1] in (["SGD"], ["Adam"], ["AdamW"], ["RMSprop"])]
    assert len(table) == 5 and all(row[-1] == "0" for row in table), out  # max |diff| per epoch (SGD twice)
