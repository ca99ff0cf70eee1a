"""``scratchopt conventions``: the Keras form against the PyTorch form, measured.

One short run (1 epoch) backs every check here; the 50-epoch table in
``docs/torch/conventions.md`` comes from ``python -m scratchopt.tools.conventions --markdown``.
"""

import re
from pathlib import Path

import numpy as np
import pytest

from scratchopt import optimizers, schedules
from scratchopt.tools import conventions
from scratchopt.torch import optim as torch_optim

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def results():
    return {r.technique: r for r in conventions.run(epochs=1)}


def test_every_technique_of_the_issue_has_a_row(results):
    names = " ".join(results)
    for word in ("Adam's epsilon", "RMSprop's epsilon", "momentum", "weight decay", "BatchNorm momentum",
                 "running variance", "per tensor vs global", "scheduler"):
        assert word in names, word


def test_translations_with_a_proof_are_the_same_bits(results):
    assert "lr per step: same bits" in results["scheduler step semantics"].translation  # 1 epoch
    assert "the update rules, fed the same batch means: running mean same bits" in \
        results["BatchNorm momentum"].outcome


def test_drift_is_measured_where_no_translation_exists(results):
    def param_diff(r):
        return float(re.search(r"max \|param diff\| ([0-9.e+-]+)", r.outcome)[1])

    assert param_diff(results["Adam's epsilon"]) > 0
    assert param_diff(results["weight decay: Adam(weight_decay=0.01)"]) > param_diff(
        results["weight decay: AdamW(weight_decay=0.01)"])
    # the global clip is a translation: only rounding apart; per-tensor vs global is not
    assert param_diff(results["clipping: global (0.1)"]) < 1e-5
    assert param_diff(results["clipping: per tensor vs global (0.1)"]) > 100 * param_diff(
        results["clipping: global (0.1)"])


def test_the_comparison_can_fail_and_can_pass():
    """``compare`` sees identical runs as the same bits, and a one-ULP lr change as not."""
    same = conventions.compare(conventions.keras_step(lambda: optimizers.SGD(learning_rate=0.01)),
                               conventions.keras_step(lambda: optimizers.SGD(learning_rate=0.01)), 1, "float32")
    assert same[3] and same[2] == 0
    nudged = float(np.nextafter(np.float32(0.01), np.float32(1)))
    other = conventions.compare(conventions.keras_step(lambda: optimizers.SGD(learning_rate=0.01)),
                                conventions.keras_step(lambda: optimizers.SGD(learning_rate=nudged)), 1, "float32")
    assert not other[3] and other[2] > 0


def test_torch_sgd_with_momentum_matches_keras_only_in_exact_arithmetic():
    """Keras: m = mu*m - lr*g; p += m.  torch: b = mu*b + g; p -= lr*b. The same to rounding
    in float32, not the same bits. (In float64 Keras would also round lr and momentum through
    float32 first, another difference.)"""
    rng = np.random.default_rng(0)
    p_k, p_t = np.ones(64, np.float32), np.ones(64, np.float32)
    keras_opt = optimizers.SGD(learning_rate=0.01, momentum=0.9)
    torch_opt = torch_optim.SGD([p_t], lr=0.01, momentum=0.9)
    for _ in range(50):
        g = rng.standard_normal(64).astype(np.float32)
        keras_opt.apply([g.copy()], [p_k])
        torch_opt.step([g.copy()])
    assert np.allclose(p_k, p_t, rtol=1e-5, atol=1e-6)
    assert not np.array_equal(p_k, p_t)


def test_cli_main_prints_the_table(capsys):
    assert conventions.main(["--epochs", "0", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| technique | Keras | PyTorch | translation | measured |")


def test_the_docs_page_has_every_row():
    page = (ROOT / "docs" / "torch" / "conventions.md").read_text()
    table = conventions.markdown(conventions.run(epochs=0))
    for line in table.splitlines()[2:]:
        technique = line.split(" | ")[0].lstrip("| ")
        assert f"| {technique} |" in page, technique


def test_keras_schedule_translation_lr_per_step():
    """The same bits for two epochs; then Keras's float32 0.9**k drifts from torch's double product."""
    steps_per_epoch = 25
    keras_schedule = schedules.ExponentialDecay(0.01, decay_steps=steps_per_epoch, decay_rate=0.9, staircase=True)
    opt = torch_optim.SGD([np.zeros(1, np.float32)], lr=0.01)
    sched = torch_optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)
    same = []
    for step in range(10 * steps_per_epoch):
        same.append(np.float32(keras_schedule(step)) == np.float32(opt.param_groups[0]["lr"]))
        if (step + 1) % steps_per_epoch == 0:
            sched.step()
    assert all(same[:2 * steps_per_epoch]) and not all(same)
