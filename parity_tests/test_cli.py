"""``scratchopt parity``: the main job's exit codes and table."""

import importlib.util

from scratchopt import cli


def test_parity_job_prints_every_row_and_exits_0(tf, capsys):
    assert cli.main(["parity", "--steps", "3"]) == 0
    out = capsys.readouterr().out
    assert "28 of 28 rows exact." in out
    for column in ("component", "dtype", "max ULP", "exact"):
        assert column in out


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
