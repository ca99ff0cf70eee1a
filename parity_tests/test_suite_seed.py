"""The Hypothesis seed of a test session (``conftest.py``): per commit for ``ci``, printed.

Issue 12: the ``ci`` profile was derandomized, so every CI run drew the same examples
forever. Now its seed comes from the commit (the date without git), so each commit draws
new examples and every run of one commit the same ones; pytest's header prints it with the
command that reproduces the run.
"""

import hypothesis.core
from conftest import pytest_report_header, session_seed
from hypothesis import given, settings
from hypothesis import strategies as st


def test_ci_seeds_follow_the_commit():
    a = session_seed("ci", environ={}, git_head=lambda: "1488e129ced4" + "0" * 28)
    b = session_seed("ci", environ={}, git_head=lambda: "3e71c53aaaaa" + "0" * 28)
    assert a == session_seed("ci", environ={}, git_head=lambda: "1488e129ced4" + "0" * 28)
    assert a[0] != b[0] and a[1] == "commit 1488e129ced4"


def test_without_git_the_date_gives_the_seed():
    seed, source = session_seed("ci", environ={}, git_head=lambda: None)
    assert source.startswith("date ") and "git unavailable" in source and 0 <= seed < 2**32


def test_hypothesis_seed_chooses_it_and_thorough_draws_a_new_one():
    assert session_seed("ci", environ={"HYPOTHESIS_SEED": "1234"}) == (1234, "HYPOTHESIS_SEED")
    assert session_seed("thorough", environ={"HYPOTHESIS_SEED": "77"}) == (77, "HYPOTHESIS_SEED")
    assert session_seed("thorough", environ={})[0] != session_seed("thorough", environ={})[0]


def test_this_session_is_seeded_and_says_so(pytestconfig):
    seed, source = pytestconfig._scratchopt_seed
    assert hypothesis.core.global_force_seed == seed or source == "--hypothesis-seed"
    header = "\n".join(pytest_report_header(pytestconfig))
    assert f"seed {seed} ({source})" in header and f"HYPOTHESIS_SEED={seed} pytest" in header
    assert f"--hypothesis-seed={seed}" in header


def test_the_ci_profile_is_not_derandomized_and_keeps_its_example_count():
    """A fixed count, chosen for the CI budget (conftest's docstring: 24 since CI took 1330 s
    with 30; 40 before the suite ran a worker per core)."""
    ci = settings.get_profile("ci")
    assert not ci.derandomize and ci.max_examples == 24 and ci.deadline is None


draws = []


@settings(max_examples=5, database=None)
@given(st.integers())
def _draw(x):
    draws.append(x)


def test_one_seed_draws_the_same_examples_and_another_seed_others(monkeypatch):
    runs = []
    for seed in (1, 1, 2):
        monkeypatch.setattr(hypothesis.core, "global_force_seed", seed)
        draws.clear()
        _draw()
        runs.append(list(draws))
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_xdist_workers_draw_from_the_seed_the_header_prints(tmp_path):
    """Under ``pytest -n 2`` each worker is its own process: it must take the controller's
    seed (the one printed), also in the ``thorough`` profile, where the seed is random."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import pytest

    pytest.importorskip("xdist")
    (tmp_path / "test_seeds.py").write_text(
        "import os\nfrom hypothesis import core\n\n"
        + "".join(f"def test_{i}():\n    open(os.path.join({str(tmp_path)!r}, os.environ['PYTEST_XDIST_WORKER']),"
                  f" 'w').write(str(core.global_force_seed))\n\n" for i in range(8)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k != "HYPOTHESIS_SEED"}
    env.update(HYPOTHESIS_PROFILE="thorough", PYTHONPATH=str(Path(__file__).parent))
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-n", "2", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), str(tmp_path / "test_seeds.py")],
                          capture_output=True, text=True, timeout=300, check=False, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    header = next(line for line in done.stdout.splitlines() if line.startswith("hypothesis: profile 'thorough'"))
    printed = header.split(", seed ")[1].split()[0]
    seeds = {(tmp_path / worker).read_text() for worker in ("gw0", "gw1")}
    assert seeds == {printed}, (header, seeds)
