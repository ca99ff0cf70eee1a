"""``scratchopt.torch.optim.lr_scheduler`` against torch 2.13: every rate, bit for bit (Python floats)."""

import math

import numpy as np
import pytest
from conftest import scaled
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from scratchopt.tools import parity_torch as pt
from scratchopt.torch import optim
from scratchopt.torch.optim import lr_scheduler as ours


@pytest.mark.parametrize("config", pt.SCHEDULER_CONFIGS, ids=[c[0][:40] for c in pt.SCHEDULER_CONFIGS])
def test_fixed_configs_are_exact(config):
    _label, opt_name, opt_kwargs, builder = config
    a, b = pt.scheduler_pair(opt_name, opt_kwargs, builder, 300)
    assert a == b


def _builders():
    """Hypothesis strategies for ``(optimizer name, builder)`` with drawn arguments."""
    f = st.floats
    return st.one_of(
        st.builds(lambda s, g: ("SGD", lambda m, o: m.StepLR(o, step_size=s, gamma=g)),
                  st.integers(1, 40), f(0.05, 0.99)),
        st.builds(lambda ms, g: ("SGD", lambda m, o: m.MultiStepLR(o, milestones=ms, gamma=g)),
                  st.lists(st.integers(1, 300), max_size=5), f(0.05, 0.99)),
        st.builds(lambda g: ("Adam", lambda m, o: m.ExponentialLR(o, gamma=g)), f(0.9, 1.0)),
        st.builds(lambda t, e: ("SGD", lambda m, o: m.CosineAnnealingLR(o, T_max=t, eta_min=e)),
                  st.integers(1, 200), st.sampled_from([0.0, 1e-5, 1e-3])),
        st.builds(lambda t, k, e: ("SGD", lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=t, T_mult=k, eta_min=e)),
                  st.integers(1, 50), st.integers(1, 3), st.sampled_from([0.0, 1e-4])),
        st.builds(lambda s, e, n: ("AdamW", lambda m, o: m.LinearLR(o, start_factor=s, end_factor=e, total_iters=n)),
                  f(0.01, 1.0), f(0.0, 1.0), st.integers(1, 100)),
        st.builds(lambda mx, pct, strat, three, nm: (
            nm, lambda m, o: m.OneCycleLR(o, max_lr=mx, total_steps=300, pct_start=pct,
                                          anneal_strategy=strat, three_phase=three)),
            f(1e-3, 1.0), f(0.05, 0.45), st.sampled_from(["cos", "linear"]), st.booleans(),
            st.sampled_from(["SGD", "Adam", "RMSprop"])),
        st.builds(lambda k: ("RMSprop", lambda m, o: m.LambdaLR(o, lambda e: 1.0 / (1.0 + k * e))), f(0.0, 0.5)),
        st.builds(lambda t, g, ms: ("SGD", lambda m, o: m.SequentialLR(
            o, [m.CosineAnnealingLR(o, T_max=t), m.ExponentialLR(o, gamma=g), m.StepLR(o, step_size=7)],
            milestones=sorted(ms))),
            st.integers(1, 100), f(0.9, 1.0), st.lists(st.integers(1, 299), min_size=2, max_size=2)),
        st.builds(lambda p, fa, c, mode, tm: ("SGD", lambda m, o: m.ReduceLROnPlateau(
            o, patience=p, factor=fa, cooldown=c, threshold_mode=tm, min_lr=1e-4)),
            st.integers(0, 10), f(0.1, 0.9), st.integers(0, 5), st.sampled_from(["min"]),
            st.sampled_from(["rel", "abs"])),
    )


@settings(max_examples=scaled(60))
@given(spec=_builders(), lr=st.sampled_from([0.1, 1e-3, 0.37]), seed=st.integers(0, 100))
def test_drawn_schedulers_are_exact(spec, lr, seed):
    """Drawn arguments, 300 steps, two param groups: every rate, momentum and beta equal."""
    opt_name, builder = spec
    a, b = pt.scheduler_pair(opt_name, {"lr": lr}, builder, 300, seed=seed)
    assert a == b


def test_cosine_recursive_form_differs_from_closed_form():
    """The lesson: torch's recursive cosine is not its closed form, on most steps."""
    opt = optim.SGD([np.zeros(1)], lr=0.1)
    sched = ours.CosineAnnealingLR(opt, T_max=100, eta_min=1e-4)
    differ = 0
    for t in range(1, 101):
        sched.step()
        closed = 1e-4 + (0.1 - 1e-4) * (1 + math.cos(math.pi * t / 100)) / 2
        differ += sched.get_last_lr()[0] != closed
    assert differ > 50


def test_sequential_restarts_through_the_closed_form():
    """At a milestone the next scheduler starts from its closed form at epoch 0: the rate jumps
    back to base_lr (not the previous scheduler's last rate)."""
    opt = optim.SGD([np.zeros(1)], lr=1.0)
    s = ours.SequentialLR(opt, [ours.ExponentialLR(opt, gamma=0.5), ours.CosineAnnealingLR(opt, T_max=4)],
                          milestones=[3])
    rates = [s.step() or s.get_last_lr()[0] for _ in range(4)]
    assert rates[:2] == [0.5, 0.25] and rates[2] == 1.0


def test_one_cycle_cycles_momentum_and_betas():
    for name, key in (("SGD", "momentum"), ("Adam", "betas")):
        opt = getattr(optim, name)([np.zeros(1)], lr=0.1, **({"momentum": 0.9} if name == "SGD" else {}))
        s = ours.OneCycleLR(opt, max_lr=0.1, total_steps=20)
        first = opt.param_groups[0][key]
        for _ in range(5):
            s.step()
        assert opt.param_groups[0][key] != first


def test_one_cycle_without_momentum_is_refused_before_changing_anything():
    from scratchopt.torch.optim.optimizer import Optimizer

    class Plain(Optimizer):
        pass

    opt = Plain([np.zeros(1)], {"lr": 0.1})
    with pytest.raises(ValueError, match="momentum or beta1"):
        ours.OneCycleLR(opt, max_lr=0.1, total_steps=10)
    assert opt.param_groups[0].keys() == {"params", "lr"}


BAD = [
    ("LinearLR", {"start_factor": 0.0}), ("LinearLR", {"end_factor": 1.5}),
    ("CosineAnnealingWarmRestarts", {"T_0": 0}), ("CosineAnnealingWarmRestarts", {"T_0": 5, "T_mult": 0}),
    ("OneCycleLR", {"max_lr": 0.1}), ("OneCycleLR", {"max_lr": 0.1, "total_steps": 0}),
    ("OneCycleLR", {"max_lr": 0.1, "total_steps": 10, "pct_start": 1.5}),
    ("OneCycleLR", {"max_lr": 0.1, "total_steps": 10, "anneal_strategy": "step"}),
    ("OneCycleLR", {"max_lr": [0.1, 0.2], "total_steps": 10}),
    ("ReduceLROnPlateau", {"factor": 1.0}), ("ReduceLROnPlateau", {"mode": "up"}),
    ("ReduceLROnPlateau", {"threshold_mode": "x"}), ("ReduceLROnPlateau", {"min_lr": [0.1, 0.2]}),
    ("LambdaLR", {"lr_lambda": [lambda e: 1.0, lambda e: 1.0]}),
]


@pytest.mark.parametrize("name,kwargs", BAD)
def test_bad_arguments_raise_torchs_errors(name, kwargs):
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
    oopt = optim.SGD([np.zeros(1)], lr=0.1, momentum=0.9)
    with pytest.raises(Exception) as theirs:
        getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
    with pytest.raises(Exception) as mine:
        getattr(ours, name)(oopt, **kwargs)
    assert type(mine.value) is type(theirs.value)
    assert str(mine.value) == str(theirs.value)


def test_not_an_optimizer():
    with pytest.raises(TypeError, match="is not an Optimizer"):
        ours.StepLR(object(), step_size=1)


def test_state_dict_round_trip():
    opt = optim.SGD([np.zeros(1)], lr=0.1)
    s = ours.CosineAnnealingLR(opt, T_max=10)
    for _ in range(3):
        s.step()
    saved = s.state_dict()
    opt2 = optim.SGD([np.zeros(1)], lr=0.1)
    s2 = ours.CosineAnnealingLR(opt2, T_max=10)
    s2.load_state_dict(saved)
    opt2.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
    s.step()
    s2.step()
    assert s.get_last_lr() == s2.get_last_lr()
