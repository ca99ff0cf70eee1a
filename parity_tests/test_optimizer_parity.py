"""Every optimizer against eager Keras: the same bits after every step, for drawn runs.

A run draws the optimizer's own arguments, the common options (clipping, weight decay,
EMA, gradient accumulation, loss scaling), a float learning rate or a schedule, 1-3
params of shapes including () and (1,), float32/float64, gradients of either precision,
and a gradient sequence whose values span ordinary, tiny (subnormal products) and zero
magnitudes. Every param and every slot, EMA average and accumulator must have the same
bits as Keras's after each step.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import scaled
from optimizer_info import INFOS
from scratchopt.tools.keras_reference import KerasRun
from scratchopt.tools.parity import CONFIGS, run_row, same_bits, state_pairs
from strategies import runs

pytestmark = pytest.mark.filterwarnings("ignore:Gradients do not exist")


def run_both(info, run):
    ours = info.cls(**run.kwargs)
    params = [p.copy() for p in run.params]
    reference = KerasRun(ours, params)
    for step, grads in enumerate(run.grads):
        ours.apply(grads, params)
        reference.apply(grads)
        for label, a, b in state_pairs(ours, reference):
            assert same_bits(a, b), f"step {step}: {label} differs\nours  {a!r}\nkeras {b!r}"
    assert ours.iterations == reference.iterations
    assert same_bits(ours.learning_rate, float(np.asarray(reference.optimizer.learning_rate)))  # NaN too


@pytest.mark.parametrize("info", INFOS, ids=str)
@settings(max_examples=scaled(300))
@given(data=st.data())
def test_matches_keras_bit_for_bit(tf, info, data):
    run_both(info, data.draw(runs(info)))


@pytest.mark.parametrize("info", INFOS, ids=str)
@settings(max_examples=scaled(15))
@given(data=st.data())
def test_nan_and_inf_gradients_behave_as_in_keras(tf, info, data):
    """NaN and +-inf in gradients propagate exactly as in Keras (no error, no skipped step)."""
    run_both(info, data.draw(runs(info, max_steps=4, nonfinite=True)))


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=[f"{n}{i}" for i, (n, _) in enumerate(CONFIGS)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_long_runs_are_exact(tf, name, kwargs, dtype):
    """The ``scratchopt parity`` rows: 200 steps, four shapes up to 70001 elements, exact."""
    row = run_row(name, kwargs, dtype, steps=200)
    assert row.exact, f"{row.component} {dtype}: max ULP {row.max_ulp}, max abs {row.max_abs}"


@pytest.mark.parametrize("info", INFOS, ids=str)
def test_weight_decay_exclusions_match_keras(tf, info):
    """``exclude_from_weight_decay`` by identity and by name pattern, as Keras decides."""
    rng = np.random.default_rng(0)
    names = ["dense_kernel", "dense_bias", "norm_gamma"]
    params = [rng.standard_normal(4).astype(np.float32) for _ in names]
    ours = info.cls(learning_rate=0.1, weight_decay=0.5)
    ours.exclude_from_weight_decay(var_list=[params[2]], var_names=["bias"])
    ours.build(params, names=names)
    reference = KerasRun(ours, params, names=names, exclude_ids=[2],
                         exclude_names=["bias"])
    for _ in range(3):
        grads = [rng.standard_normal(4).astype(np.float32) for _ in names]
        ours.apply(grads, params)
        reference.apply(grads)
    for a, b in zip(params, reference.params()):
        assert same_bits(a, b)
    with pytest.raises(ValueError, match="before the optimizer is built"):
        ours.exclude_from_weight_decay(var_names=["kernel"])


def test_the_parity_check_can_fail(tf, monkeypatch):
    """A textbook Adam (epsilon outside the bias correction) is caught by the parity row."""
    from scratchopt.optimizers import Adam

    def textbook(g, var, m, v, v_max, *, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
        m = (1 - one_minus_beta_1) * m + one_minus_beta_1 * g
        v = (1 - one_minus_beta_2) * v + one_minus_beta_2 * g * g
        return var - alpha * m / (np.sqrt(v) + epsilon), m, v, v_max

    monkeypatch.setattr(Adam, "update", staticmethod(textbook))
    row = run_row("Adam", {"learning_rate": 0.01}, "float32", steps=5)
    assert not row.exact and row.max_ulp > 0 and row.max_abs > 0
