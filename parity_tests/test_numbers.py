"""docs/generated/numbers.json is what ``python docs/numbers.py`` measures, and the numbers are sane.

Every number on the documentation site comes from that file. The measurement is
deterministic float64 (fixed seeds), so the committed values are compared with a fresh
``measure()`` exactly, bit for bit, and so is the rendered file. Some numbers go through the
C library's ``pow`` and ``cos`` (Adam's bias corrections, the cosine schedule), as
scratchopt's Keras arithmetic does everywhere: the file is written on glibc, where those
functions are what the rest of the suite's exact comparisons already rely on.

The sanity checks below fail when a measurement stops measuring what its page says.
"""

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scratchopt import textbook

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location("docs_numbers", ROOT / "docs" / "numbers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


script = _script()


@pytest.fixture(scope="module")
def measured():
    return script.measure()


def value(measured, key):
    return measured[key]["value"]


def test_the_committed_file_is_a_fresh_measurement(measured):
    committed = json.loads(script.OUTPUT.read_text())
    assert script.differences(committed, measured) == []
    for key, item in measured.items():  # exactly: JSON keeps a float's every bit
        assert committed["numbers"][key]["value"] == item["value"], key
    assert script.OUTPUT.read_text() == script.render(measured)


def test_the_keys_the_pages_use_are_measured(measured):
    used = set()
    for page in (ROOT / "docs").rglob("*.md"):
        used.update(line.split("[[number ", 1)[1].split("]]", 1)[0]
                    for line in page.read_text().splitlines() if "[[number " in line)
    assert used <= set(measured)
    expected = {
        "sgd.plain", "sgd.momentum", "sgd.momentum_halving", "sgd.nesterov", "adam.default",
        "adam.amsgrad", "adamw.default", "rmsprop.default", "rmsprop.centered_momentum",
        "adam.epsilon_hat_t1", "adamw.decay_per_step", "rmsprop.denominator_floor_keras",
        "rmsprop.denominator_floor_torch", "schedules.warmup_vs_lesson", "schedules.lesson_after_total",
        "schedules.keras_after_total", "l2.gradient_ratio", "l2.weight_gap_sgd",
        "dropout.train_mean_ratio", "dropout.textbook_inference_scale",
        "batchnorm.moving_variance_ratio", "batchnorm.moving_mean_5_steps_default",
        "batchnorm.moving_mean_5_steps_swapped", "layernorm.epsilon_gap",
        "layernorm.epsilon_gap_small_inputs", "clipping.per_tensor_vs_global",
        "clipping.global_norm_of_per_tensor", "callbacks.plateau_first_reduction_keras",
        "callbacks.plateau_first_reduction_naive", "cutmix.lesson_pixels_changed",
        "cutmix.keras_pixels_changed",
    }
    assert expected <= set(measured)
    for key, item in measured.items():
        assert set(item) == {"value", "text", "what"}, key
        assert isinstance(item["value"], (int, float)) and math.isfinite(item["value"]), key
        assert item["text"] and item["what"].endswith("."), key


def test_check_names_the_key_that_differs(measured, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(script, "measure", lambda: measured)
    monkeypatch.setattr(script, "OUTPUT", tmp_path / "generated" / "numbers.json")
    monkeypatch.setattr(script, "HERE", tmp_path)
    assert script.main(["--check"]) == 1  # no file yet
    assert script.main([]) == 0
    assert script.main(["--check"]) == 0
    doc = json.loads(script.OUTPUT.read_text())
    doc["numbers"]["sgd.plain"]["value"] *= 1 + 2**-52
    script.OUTPUT.write_text(json.dumps(doc))
    capsys.readouterr()
    assert script.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "sgd.plain: value differ" in out
    assert "adam.default" not in out


def test_optimizer_gaps_are_textbook_gaps(measured):
    for key in script.OPTIMIZER_KEYS.values():
        assert 0 < value(measured, key) < 1, key
    # Plain SGD differs by the float32 rate only; the conventions that differ do far more.
    assert value(measured, "sgd.plain") < 1e-7
    assert value(measured, "sgd.momentum_halving") > 100 * value(measured, "sgd.momentum")
    assert value(measured, "adam.default") > 1e-5


def test_optimizer_constants(measured):
    def f32(x):
        return float(np.float32(x))

    # 1 / sqrt(1 - beta_2), with Keras's rounding: its bias corrections take beta_1 and beta_2
    # through float32 (the moments' 1 - beta do not): 6.7e-6 relative above the formula.
    keras = (1 - f32(0.9)) / (1 - 0.9) / math.sqrt(1 - f32(0.999))
    assert value(measured, "adam.epsilon_hat_t1") == pytest.approx(keras, rel=1e-9)
    assert value(measured, "adam.epsilon_hat_t1") == pytest.approx(1 / math.sqrt(1 - 0.999), rel=1e-5)
    assert value(measured, "adamw.decay_per_step") == pytest.approx(f32(1e-3) * f32(0.004), rel=1e-9)
    assert value(measured, "rmsprop.denominator_floor_keras") == pytest.approx(math.sqrt(1e-7), rel=1e-15)
    assert value(measured, "rmsprop.denominator_floor_torch") == pytest.approx(1e-8, rel=1e-15)


def test_schedules(measured):
    assert value(measured, "schedules.lesson_after_total") == 1.0
    assert value(measured, "schedules.keras_after_total") == 0.0
    assert 0 < value(measured, "schedules.warmup_vs_lesson") < 1e-14
    assert 1e-9 < value(measured, "schedules.warmup_vs_lesson_float32") < 1e-6


def test_regularization(measured):
    assert value(measured, "l2.gradient_ratio") == 2.0
    # At convergence Keras's weights are c / 1.02, the textbook's c / 1.01.
    assert value(measured, "l2.weight_gap_sgd") == pytest.approx(1 - 1.01 / 1.02, rel=1e-3)


def test_dropout(measured):
    sd = math.sqrt(0.5 * 0.5 / 1e6)  # of the kept share, on 1e6 units
    assert abs(value(measured, "dropout.train_mean_ratio") - 1) < 2 * 5 * sd
    assert abs(value(measured, "dropout.textbook_train_mean_ratio") - 0.5) < 5 * sd
    assert value(measured, "dropout.textbook_inference_scale") == 0.5


def test_batchnorm(measured):
    assert abs(value(measured, "batchnorm.moving_variance_ratio") - 32 / 31) < 1e-12
    assert value(measured, "batchnorm.moving_mean_5_steps_default") == pytest.approx(1 - 0.99**5, rel=1e-12)
    assert value(measured, "batchnorm.moving_mean_5_steps_swapped") == pytest.approx(1 - 0.1**5, rel=1e-12)
    assert value(measured, "batchnorm.moving_mean_5_steps_pytorch") == pytest.approx(1 - 0.9**5, rel=1e-12)


def test_layernorm(measured):
    # N(0,1) rows: the two epsilons move x_hat by about |x_hat| * (1e-3 - 1e-5) / 2.
    assert 1e-4 < value(measured, "layernorm.epsilon_gap") < 1e-2
    # Rows of variance 1e-4: epsilon 1e-3 dominates Keras's, and its output shrinks ~3.3x.
    assert value(measured, "layernorm.epsilon_gap_small_inputs") > 1


def test_clipping(measured):
    assert abs(value(measured, "clipping.global_norm_of_per_tensor") - 2) < 1e-12
    factor = value(measured, "clipping.per_tensor_over_global_factor")
    assert value(measured, "clipping.per_tensor_vs_global") == pytest.approx(factor - 1, rel=1e-12)
    assert 10 < factor < 100  # the global norm (~sqrt(11110)) over the smallest tensor's (~sqrt(10))


def test_callbacks(measured):
    keras = value(measured, "callbacks.plateau_first_reduction_keras")
    naive = value(measured, "callbacks.plateau_first_reduction_naive")
    assert isinstance(keras, int) and isinstance(naive, int)
    assert keras < naive < len(script.PLATEAU)
    # The naive rule waits for the loss to stop going down at all: the first repeated value + 1.
    assert naive == script.PLATEAU.index(script.PLATEAU[-1]) + 2


def test_cutmix(measured):
    assert value(measured, "cutmix.lesson_pixels_changed") == 0.0
    assert value(measured, "cutmix.lesson_label_mass_moved") > 0.1
    pixels = value(measured, "cutmix.keras_pixels_changed")
    assert 0.1 < pixels < 0.9
    # The label follows the pixels, up to the box's rounding to whole pixels.
    assert value(measured, "cutmix.keras_label_mass_moved") == pytest.approx(pixels, abs=0.05)


def test_textbook_forms_are_pytorchs():
    """The PyTorch forms the numbers compare with, against PyTorch itself where it is installed."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((32, 100))
    ours = textbook.layer_norm(x, epsilon=1e-5)
    theirs = torch.nn.functional.layer_norm(torch.from_numpy(x), (100,), eps=1e-5).numpy()
    assert np.max(np.abs(ours - theirs)) < 1e-12
    bn = torch.nn.BatchNorm1d(100, momentum=0.1, dtype=torch.float64)
    mean, var = np.zeros(100), np.ones(100)
    for _ in range(3):
        bn(torch.from_numpy(x))
        mean, var = textbook.batchnorm_running(mean, var, x, momentum=0.1)
    assert np.max(np.abs(mean - bn.running_mean.numpy())) < 1e-12
    assert np.max(np.abs(var - bn.running_var.detach().numpy())) < 1e-12


@pytest.mark.parametrize("script_args", [["docs/numbers.py", "--check"],
                                         ["docs/textbook_gap.py", "--steps", "2", "--size", "10"]])
def test_the_scripts_run_from_the_repository_root(script_args):
    """As the pages say to run them: docs/ is then first on sys.path, where docs/numbers.py would
    shadow the standard library's ``numbers`` if the scripts did not take docs/ out. On the
    array code (``SCRATCHOPT_BACKEND=numpy``; the same bits): what is tested is the start, and
    compiling numba's kernels took most of the 49 s the two runs took."""
    done = subprocess.run([sys.executable, *script_args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False, env=dict(os.environ, SCRATCHOPT_BACKEND="numpy"))
    assert done.returncode == 0, done.stdout + done.stderr
