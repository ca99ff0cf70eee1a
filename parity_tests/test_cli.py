"""The ``scratchopt`` command line: the main job's exit codes and table, its usage errors
(before any work), its progress display, and where the other commands write."""

import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scratchopt.tools import cli

ROOT = Path(__file__).resolve().parent.parent


def test_parity_job_prints_every_row_and_exits_0(tf, capsys, monkeypatch):
    """The job whole: every row runs, is exact or within its bound, and is printed.

    On the array code (``SCRATCHOPT_BACKEND=numpy``): compiling numba's kernels for every
    row made this test take 144 s of a 2-core run (``pytest --durations``), 40 s without. The
    compiled path is tested where each component is: every optimizer row against Keras
    (``test_optimizer_parity.py::test_long_runs_are_exact``), and each compiled kernel
    against the array code (``test_fused.py``, ``test_normalization_fast.py``,
    ``test_sums_fast.py``, ...).
    """
    from scratchopt.tools.parity import entries

    monkeypatch.setenv("SCRATCHOPT_BACKEND", "numpy")
    assert cli.main(["parity", "--steps", "3"]) == 0
    out, err = capsys.readouterr()
    rows = entries()
    summary = next(line for line in out.splitlines() if f"of {len(rows)} rows exact" in line)
    exact = int(summary.split()[0])
    bounded = int(summary.split(", ")[1].split()[0]) if "within their measured bound" in summary else 0
    assert exact + bounded == len(rows) and "FAILED" not in summary, summary
    assert exact >= len(rows) - 12  # the bounded rows: float32 conv and LSTM, softmax and the cross-entropies
    # not a terminal: a line per row as it starts, on stderr (stdout is the table alone)
    first = f"[{1:>{len(str(len(rows)))}}/{len(rows)}]"  # the counter is as wide as the total
    assert f"{first} optimizers: {rows[0].label}" in err
    assert f"[{len(rows)}/{len(rows)}] training: {rows[-1].label}" in err
    assert first not in out
    for column in ("component", "dtype", "max ULP", "exact"):
        assert column in out
    for group in ("layers", "augmentation"):  # issue 13-15's rows
        assert sum(c.group == group for c in rows) >= 10, group
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
    from scratchopt.tools import parity

    every = parity.entries()  # the optimizer rows and one of every other group: the failure and the rest
    some = [c for c in every if c.group == "optimizers"][:6] + [next(c for c in every if c.group == g)
                                                               for g in dict.fromkeys(c.group for c in every)
                                                               if g != "optimizers"]
    monkeypatch.setattr(parity, "entries", lambda: some)
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
    out, err = capsys.readouterr()
    table = [line.split() for line in out.splitlines() if line.split()[:1] in (["SGD"], ["Adam"], ["AdamW"], ["RMSprop"])]
    assert len(table) == 5 and all(row[-1] == "0" for row in table), out  # max |diff| per epoch (SGD twice)
    # never silent: a line as each of the ten runs starts (stderr is not a terminal here)
    assert "[ 1/10] SGD: Keras model.fit, 2 epochs, float64" in err
    assert "[10/10] RMSprop: scratchopt Sequential.fit, 2 epochs, float64" in err


def test_demo_optimizers_all_writes_the_second_figure(tf, tmp_path, capsys, monkeypatch):
    """``--all``: the lesson's figure and a second one of every other optimizer (two of them
    here, for time: ``test_nn.py`` runs each against Keras), each row of the table exact."""
    from scratchopt.tools.demos import optimizers as lesson

    monkeypatch.setattr(lesson, "OPTIMIZERS", {"Adam": lesson.OPTIMIZERS["Adam"]})
    others = {k: lesson.OTHER_OPTIMIZERS[k] for k in ("Lion", "LossScaleOptimizer(Adam)")}
    monkeypatch.setattr(lesson, "OTHER_OPTIMIZERS", others)
    monkeypatch.setattr(lesson, "EVERY_OPTIMIZER", {**lesson.OPTIMIZERS, **others})
    path = tmp_path / "optimizers.png"
    assert cli.main(["demo", "optimizers", "--all", "--dtype", "float64", "--epochs", "1", "--out", str(path)]) == 0
    second = tmp_path / "optimizers_all.png"
    assert path.read_bytes()[:8] == second.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out, err = capsys.readouterr()
    table = [line.split() for line in out.splitlines() if line.split()[:1] in (["Adam"], ["Lion"],
                                                                                ["LossScaleOptimizer(Adam)"])]
    assert len(table) == 3 and all(row[-1] == "0" for row in table), out
    assert f"wrote {second}" in out and "[6/6] LossScaleOptimizer(Adam): scratchopt" in err
    assert cli.main(["demo", "training", "--all"]) == 2
    assert "--all draws the optimizers' second figure" in capsys.readouterr().err


# --- usage errors: exit 2, the subcommand's usage, before any work --------------------------------


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a command gets as far as running anything."""
    from scratchopt.tools import bench, demos, parity

    def refuse(*args, **kwargs):
        raise AssertionError("the command started working before rejecting its arguments")

    monkeypatch.setattr(parity, "entries", refuse)
    monkeypatch.setattr(bench, "main", refuse)
    import scratchopt.tools.demos.augmentation
    import scratchopt.tools.demos.lstm
    import scratchopt.tools.demos.optimizers
    import scratchopt.tools.demos.schedules
    import scratchopt.tools.demos.training

    for name in ("augmentation", "lstm", "optimizers", "schedules", "training"):
        monkeypatch.setattr(getattr(demos, name), "main", refuse)


def usage_error(argv, capsys):
    """Run the command, expect argparse's exit 2; return stderr."""
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


@pytest.mark.parametrize("value, says", [("-1", "must be at least 1, got -1"), ("0", "must be at least 1, got 0"),
                                         ("2.5", "expected a whole number, got '2.5'"),
                                         ("x", "expected a whole number, got 'x'")])
def test_steps_below_1_is_a_usage_error(no_work, capsys, value, says):
    """Issue 12, item 9: ``--steps -1`` compared nothing and said "65 of 65 rows exact";
    ``--steps 0`` was a ZeroDivisionError traceback."""
    err = usage_error(["parity", "--steps", value], capsys)
    assert err.startswith("usage: scratchopt parity") and f"argument --steps: {says}" in err


@pytest.mark.parametrize("argv", [["demo", "optimizers", "--epochs", "0"], ["demo", "lstm", "--epochs", "0"],
                                  ["demo", "training", "--epochs", "-1"], ["bench", "--repeats", "-3"],
                                  ["conventions", "--epochs", "0"]])
def test_other_counts_below_1_are_usage_errors(no_work, capsys, argv):
    err = usage_error(argv, capsys)
    assert err.startswith(f"usage: scratchopt {argv[0]}") and "must be at least 1" in err


def unwritable_paths(tmp_path):
    """Paths no user can write, root included: under a file, a folder given as a file."""
    a_file = tmp_path / "a-file.txt"
    a_file.write_text("keep me\n")
    return {"under a file": (a_file / "out.json", "is a file, not a folder"),
            "a folder": (tmp_path, "it is a folder; give a file path")}


@pytest.mark.parametrize("case", ["under a file", "a folder"])
@pytest.mark.parametrize("command", [["parity", "--json"], ["demo", "schedules", "--out"],
                                     ["demo", "optimizers", "--out"]])
def test_an_unwritable_output_is_a_usage_error_before_any_work(no_work, capsys, tmp_path, command, case):
    """Issue 12: ``--json`` to an unwritable path was a traceback after the whole run (55 s)."""
    path, why = unwritable_paths(tmp_path)[case]
    err = usage_error([*command, str(path)], capsys)
    assert err.startswith(f"usage: scratchopt {command[0]}")
    assert f"argument {command[-1]}: cannot write {path}: " in err and why in err
    assert (tmp_path / "a-file.txt").read_text() == "keep me\n" and not list(tmp_path.glob(".scratchopt-*"))


def test_bench_out_must_be_a_folder_it_can_write_in(no_work, capsys, tmp_path):
    a_file = tmp_path / "results"
    a_file.write_text("")
    err = usage_error(["bench", "--out", str(a_file)], capsys)
    assert f"argument --out: cannot write in {a_file}: it is a file, not a folder" in err
    err = usage_error(["bench", "--out", str(a_file / "cpu")], capsys)
    assert f"cannot write in {a_file / 'cpu'}: {a_file} is a file, not a folder" in err


def test_writable_outputs_are_accepted_and_nothing_is_left_behind(tmp_path):
    """The check tries the path (a file made and removed); it leaves no trace, and an
    existing file keeps its contents."""
    existing = tmp_path / "old.json"
    existing.write_text("{}")
    assert cli.writable_file(str(existing)) == str(existing) and existing.read_text() == "{}"
    assert cli.writable_file(str(tmp_path / "new" / "deeper" / "x.json"))
    assert cli.writable_folder(str(tmp_path / "results" / "cpu"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused(no_work, capsys, tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        err = usage_error(["parity", "--json", str(folder / "rows.json")], capsys)
    finally:
        folder.chmod(0o755)
    assert f"cannot write {folder / 'rows.json'}: cannot create files in {folder}" in err


@pytest.mark.parametrize("argv", [["parity", "--fast"], ["parity", "--quick", "extra"],
                                  ["demo", "schedules", "--steps", "3"], ["bench", "--fast"]])
def test_an_unknown_option_shows_the_subcommands_usage(no_work, capsys, argv):
    """Issue 12: ``scratchopt parity --fast`` showed the top-level usage."""
    err = usage_error(argv, capsys)
    assert err.startswith(f"usage: scratchopt {argv[0]} ") and "error: unrecognized arguments: " in err


# --- the progress display ------------------------------------------------------------------------


class Terminal(io.StringIO):
    """A stream that says it is a terminal, so rich draws its live bar into it."""

    def isatty(self):
        return True


class SlowCallback:
    """A callback that takes a while in every epoch and prints nothing."""

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        time.sleep(0.3)

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass


def slow_trace():
    """A callback row's capture (``run_callback`` redirects ``sys.stdout`` to compare what the
    callbacks print), over two slow epochs."""
    from scratchopt.optimizers import SGD
    from scratchopt.tools.parity_callbacks import StandInModel, run_callback

    return run_callback(SlowCallback(), StandInModel(SGD()), [1.0, 1.0])


def test_a_live_bar_on_stdout_is_not_what_a_row_captures(monkeypatch):
    """Issue 12: in a terminal, rich's bar (drawn from its own thread) wrote into whatever
    ``sys.stdout`` was at the moment, and once that was a callback row's capture: "printed:
    ours '', keras 'LearningRateSchedul… ━━━━ 80%'". The bar writes to its own stream."""
    from scratchopt.tools.progress import Stages

    # rich decides "a terminal?" and then resolves its stream, at every redraw: a capture can
    # begin in between (the 1-in-5 failure). TTY_COMPATIBLE=1 makes every redraw decide
    # "terminal", so a bar that follows sys.stdout would write into the capture every time.
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    with Stages(3, "parity", file=sys.stdout, refresh_per_second=50) as stages:
        assert stages.live
        stages.start("a slow callback row")
        trace = slow_trace()
    assert trace.printed == ""
    assert "a slow callback row" in terminal.getvalue() and "━" in terminal.getvalue()  # it was drawing


def test_scratchopt_parity_in_a_terminal_captures_only_what_the_callbacks_print(tf, monkeypatch):
    """The whole command with a terminal on stdout and stderr: a slow row that captures
    stdout, then Keras's LearningRateScheduler row (the one that failed 1 run in 5), exact."""
    from scratchopt.tools import parity

    captured = []

    def slow_row(steps):
        trace = slow_trace()
        captured.append(trace.printed)
        return parity.Row("slow callback", "float32", 2, 0.0, 0.0, trace.printed == "")

    real = parity.entries()
    scheduler = [c for c in real if c.label.startswith("LearningRateScheduler")]
    assert scheduler
    monkeypatch.setattr(parity, "entries", lambda: [parity.Check("callbacks", "slow", slow_row), *scheduler])
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # every redraw decides "terminal" (see above)
    out, err = Terminal(), Terminal()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    assert cli.main(["parity", "--steps", "1"]) == 0, out.getvalue()
    assert captured == [""]
    table = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())  # without the terminal's colours
    assert "2 of 2 rows exact." in table and "scratchopt parity: callbacks" not in table  # no bar
    assert "scratchopt parity: callbacks: slow" in err.getvalue() and "━" in err.getvalue()


def test_stages_print_a_line_each_when_not_on_a_terminal():
    from scratchopt.tools.progress import Stages

    stream = io.StringIO()
    with Stages(12, "job", file=stream) as stages:
        assert not stages.live
        for label in ("first", "second"):
            stages.start(label)
            assert stream.getvalue().splitlines()[-1] == f"[{stages.done:>2}/12] {label}"
    assert stream.getvalue().splitlines()[-1].startswith("job: 2 stages in ")


# --- TensorFlow's import notice ------------------------------------------------------------------


def test_tensorflows_import_notice_is_dropped_and_other_stderr_kept(capfd):
    from scratchopt.tools.keras_reference import IMPORT_NOISE, _stderr_without

    with _stderr_without(IMPORT_NOISE):
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
        os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on. You may see slightly different "
                    b"numerical results\n")
        os.write(2, b"a real error\n")
    assert capfd.readouterr().err == "a real error\n"


def test_the_demo_prints_no_tensorflow_notice(tmp_path):
    """Issue 12: the oneDNN notice ("You may see slightly different numerical results") was
    printed twice next to the claims of exact results. A fresh process: TF imported by the CLI."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("matplotlib")
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL",)}
    result = subprocess.run([sys.executable, "-m", "scratchopt.tools.cli", "demo", "schedules", "--out",
                             str(tmp_path / "s.png")], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    assert "Warmup + cosine: max |scratchopt - Keras| = 0 (same bits)" in result.stdout
    for text in ("oneDNN", "slightly different numerical results", "absl::InitializeLog"):
        assert text not in result.stdout + result.stderr, result.stderr


def test_quieting_tensorflow_leaves_its_arithmetic_alone(tf, monkeypatch):
    """Only logging: ``TF_ENABLE_ONEDNN_OPTS`` (which changes the numbers) is not set."""
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    cli._quiet_tensorflow()
    assert "TF_ENABLE_ONEDNN_OPTS" not in os.environ and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
    import logging

    assert tf.get_logger().level == logging.ERROR


# --- where the commands write ------------------------------------------------------------------


def test_the_demo_writes_to_the_ignored_output_folder_by_default(tf, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["demo", "schedules"]) == 0
    assert (tmp_path / "scratchopt-output" / "lesson_schedules.png").is_file()
    assert "wrote scratchopt-output/lesson_schedules.png" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["scratchopt-output"]


def test_the_default_outputs_are_ignored_by_git():
    """Run from the checkout, a demo or a bench without --out leaves nothing git would add."""
    from scratchopt.tools.bench import machine

    assert cli.OUTPUT_DIR == machine.OUTPUT_DIR == Path("scratchopt-output")
    assert machine.default_out().parts[:2] == ("scratchopt-output", "bench")
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for path in ("scratchopt-output/lesson_schedules.png", f"{machine.default_out()}/results.json"):
        result = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
        assert result.returncode == 0, f"git does not ignore {path}"
    assert subprocess.run(["git", "check-ignore", "-q", "benchmarks/results/amd-epyc-2c/results.json"],
                          cwd=ROOT, check=False).returncode == 1, "the committed results must stay tracked"


def test_the_screenshot_server_listens_on_loopback_only():
    script = (ROOT / "docs" / "screenshots.sh").read_text()
    server = [line for line in script.splitlines() if "http.server" in line and not line.lstrip().startswith("#")]
    assert len(server) == 1 and "--bind 127.0.0.1" in server[0], server
    assert "8765" not in script and "localhost" not in script
