"""Every optimizer against eager Keras: the same bits after every step, for drawn runs.

A run draws the optimizer's own arguments, the common options (clipping, weight decay,
EMA, gradient accumulation, loss scaling), a float learning rate or a schedule, 1-3
params of shapes including () and (1,), float32/float64, gradients of either precision,
and a gradient sequence whose values span ordinary, tiny (subnormal products) and zero
magnitudes. Every param and every slot, EMA average and accumulator must have the same
bits as Keras's after each step.

Keras's optimizer (and schedule) is built from the arguments as drawn, passing only those:
any argument may be left out, and then scratchopt's default meets Keras's own
(``keras_reference.Literal``, ``KerasRun(..., literal=...)``). Built from our
``get_config()`` instead, a wrong default of ours would be copied to Keras and never seen.
"""

import inspect

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import scaled
from optimizer_info import INFOS
from scratchopt.optimizers.base import COMMON_ARGUMENTS
from scratchopt.tools.keras_reference import KerasRun, Literal
from scratchopt.tools.parity import CONFIGS, run_row, same_bits, state_pairs
from strategies import Run, runs

pytestmark = pytest.mark.filterwarnings("ignore:Gradients do not exist")


def run_both(info, run):
    """Both optimizers through the run; every state compared after every step
    (``info.agrees``: the same bits, or Muon's matrices within their bound)."""
    ours = info.cls(**run.kwargs)
    params = [p.copy() for p in run.params]
    reference = KerasRun(ours, params, literal=run.literal)
    for step, grads in enumerate(run.grads):
        try:
            ours.apply(grads, params)
        except TypeError as refusal:  # Muon: a float64 matrix with rms_rate, a schedule of another dtype
            if "Keras's Muon multiplies" not in str(refusal):
                raise
            with pytest.raises(Exception, match="(?i)float|double"):  # Keras's InvalidArgumentError
                reference.apply(grads)
            return
        reference.apply(grads)
        for label, a, b in state_pairs(ours, reference):
            assert info.agrees(a, b), f"step {step}: {label} differs\nours  {a!r}\nkeras {b!r}"
    assert ours.iterations == reference.iterations
    assert same_bits(ours.learning_rate, float(np.asarray(reference.optimizer.learning_rate)))  # NaN too


@pytest.mark.parametrize("info", INFOS, ids=str)
@settings(max_examples=scaled(150))
@given(data=st.data())
def test_matches_keras_bit_for_bit(tf, info, data):
    """Drawn runs (arguments, shapes, dtypes, schedules, steps) against Keras, every state
    after every step. 90 runs an optimizer under ``ci``, new ones each commit (3,000 under
    ``thorough``): at 225 the 14 optimizers took 356 s of a 2-core run's 2,047, the largest
    share of the suite, and CI went over its 20 minutes."""
    run_both(info, data.draw(runs(info, refusable=True)))


@pytest.mark.parametrize("info", INFOS, ids=str)
@settings(max_examples=scaled(15))
@given(data=st.data())
def test_nan_and_inf_gradients_behave_as_in_keras(tf, info, data):
    """NaN and +-inf in gradients propagate exactly as in Keras (no error, no skipped step)."""
    run_both(info, data.draw(runs(info, max_steps=4, nonfinite=True)))


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=[f"{n}{i}" for i, (n, _) in enumerate(CONFIGS)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_long_runs_are_exact(tf, name, kwargs, dtype):
    """The ``scratchopt parity`` rows, four shapes up to 70001 elements, exact: 25 steps
    under the ``ci`` profile (past ScheduleFreeAdamW's 20 warmup steps and three EMA overwrites
    every 7; the rows at 200 steps took 5.4 minutes of a 2-core CI run, at 50
    steps 196 s of a run of the suite's 2,047), 200 under ``thorough``, as ``scratchopt
    parity`` runs them (docs/generated/parity.json)."""
    row = run_row(name, kwargs, dtype, steps=200 if settings().max_examples > 40 else 25)
    assert row.exact, f"{row.component} {dtype}: max ULP {row.max_ulp}, max abs {row.max_abs}"


@pytest.mark.parametrize("info", INFOS, ids=str)
def test_weight_decay_exclusions_match_keras(tf, info):
    """``exclude_from_weight_decay`` by identity and by name pattern, as Keras decides."""
    rng = np.random.default_rng(0)
    names = ["dense_kernel", "dense_bias", "norm_gamma"]
    params = [rng.standard_normal(4).astype(np.float32) for _ in names]
    literal = {"learning_rate": 0.1, "weight_decay": 0.5}
    ours = info.cls(**literal)
    ours.exclude_from_weight_decay(var_list=[params[2]], var_names=["bias"])
    ours.build(params, names=names)
    reference = KerasRun(ours, params, names=names, exclude_ids=[2],
                         exclude_names=["bias"], literal=literal)
    for _ in range(3):
        grads = [rng.standard_normal(4).astype(np.float32) for _ in names]
        ours.apply(grads, params)
        reference.apply(grads)
    for a, b in zip(params, reference.params()):
        assert info.agrees(a, b)
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


# --- the references are built from the literal arguments: a wrong default is caught ---------------


def small_run(kwargs, steps=3, dtype=np.float32):
    rng = np.random.default_rng(0)
    shapes = [(), (5,), (2, 3)]
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(steps)]
    from scratchopt.tools.keras_reference import scratchopt_kwargs

    return Run(scratchopt_kwargs(kwargs), params, grads, dict(kwargs))


def with_default(monkeypatch, function, argument, value):
    """Patch the default of ``argument`` in ``function``'s signature (its ``__defaults__``)."""
    import inspect

    names = [p.name for p in inspect.signature(function).parameters.values() if p.default is not p.empty]
    defaults = list(function.__defaults__)
    assert len(names) == len(defaults) and argument in names
    defaults[names.index(argument)] = value
    monkeypatch.setattr(function, "__defaults__", tuple(defaults))


INFO = {info.name: info for info in INFOS}


@pytest.mark.parametrize("name, argument, wrong", [
    ("Adam", "epsilon", 1e-6), ("Adam", "beta_2", 0.99), ("Adam", "learning_rate", 0.01),
    ("AdamW", "weight_decay", 0.04), ("SGD", "learning_rate", 0.001), ("RMSprop", "rho", 0.95),
])
def test_a_wrong_default_fails_the_parity_check(tf, monkeypatch, name, argument, wrong):
    """Issue 12: built from our ``get_config()``, Keras copied a wrong default (Adam's epsilon
    1e-6) and all 41 parity tests passed. Built from the literal arguments, they fail."""
    kwargs = {} if argument == "learning_rate" else {"learning_rate": 0.01}
    run_both(INFO[name], small_run(kwargs))  # right default: the same bits
    with_default(monkeypatch, INFO[name].cls.__init__, argument, wrong)
    with pytest.raises(AssertionError):
        run_both(INFO[name], small_run(kwargs))
    if argument != "learning_rate":  # the `scratchopt parity` row too
        assert not run_row(name, kwargs, "float32", steps=3).exact


def test_a_wrong_schedule_default_fails_the_parity_check(tf, monkeypatch):
    from scratchopt.schedules import CosineDecay

    kwargs = {"learning_rate": Literal("CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 4})}
    run_both(INFO["SGD"], small_run(kwargs, steps=5))
    with_default(monkeypatch, CosineDecay.__init__, "alpha", 0.1)
    with pytest.raises(AssertionError):
        run_both(INFO["SGD"], small_run(kwargs, steps=5))


def test_the_warmup_cosine_reference_is_not_scratchopts_own_conversion(tf, monkeypatch):
    """Issue 12: Keras's ``CosineDecay`` for ``WarmupCosineDecay`` came from our own
    ``as_cosine_decay_config()``, so a wrong conversion changed both sides alike. It is now
    written from the lesson's definition: a wrong conversion is a failing row."""
    from scratchopt.schedules import WarmupCosineDecay
    from scratchopt.tools.parity import SCHEDULES, run_schedule_row

    literal = next(s for s in SCHEDULES if s.name == "WarmupCosineDecay")
    assert run_schedule_row(literal, 20).exact
    right = WarmupCosineDecay.as_cosine_decay_config

    def wrong(self):  # decays over total_steps instead of total_steps - warmup_steps
        return {**right(self), "decay_steps": self.total_steps}

    monkeypatch.setattr(WarmupCosineDecay, "as_cosine_decay_config", wrong)
    assert not run_schedule_row(literal, 20).exact


@pytest.mark.parametrize("info", INFOS, ids=str)
def test_the_drawn_runs_leave_out_each_argument_sometimes(info):
    """So that the Hypothesis tests above compare every default, not only the tables' rows."""
    from hypothesis import find

    arguments = {"SGD": ["momentum", "nesterov"], "Adam": ["beta_1", "beta_2", "epsilon", "amsgrad"],
                 "AdamW": ["weight_decay", "beta_1", "beta_2", "epsilon", "amsgrad"],
                 "RMSprop": ["rho", "momentum", "epsilon", "centered"]}.get(info.name)
    if arguments is None:  # the optimizer's own arguments: after learning_rate, before the common ones
        names = list(inspect.signature(info.cls).parameters)
        start = names.index("learning_rate") + 1 if "learning_rate" in names else 0
        end = min((names.index(a) for a in COMMON_ARGUMENTS if a in names), default=len(names))
        arguments = names[start:end]
    for argument in arguments:
        find(info.hyperparameters, lambda kw, a=argument: a not in kw)
    find(runs(info, max_steps=1), lambda run: "learning_rate" not in run.literal)
    find(runs(info, max_steps=1), lambda run: isinstance(run.literal.get("learning_rate"), Literal))
