"""``scratchopt.torch.optim`` against torch 2.13 (CPU, foreach=False): bits, bounds, errors, state.

* SGD: bit-exact against stock torch, every option, float32 and float64, 500 steps.
* Adam, AdamW, RMSprop: bit-exact against torch whose ``Tensor.sqrt`` is replaced by a correctly
  rounded one; against stock torch (MKL's sqrt, 1 ULP off on ~0.7% of elements) within the
  bounds measured by ``parity_tests/measure_torch.py`` (``STOCK_*`` in ``parity_torch``).
"""

import numpy as np
import pytest
from conftest import scaled
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from scratchopt.numerics import ulp_distance
from scratchopt.tools import parity_torch as pt
from scratchopt.torch import optim
from scratchopt.torch.optim import _ops

torch.set_num_threads(1)
DTYPES = ["float32", "float64"]


# --- the ATen kernels, one op at a time -------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_ops_are_atens(dtype):
    rng = np.random.default_rng(3)
    x, y, z = (rng.standard_normal(1003).astype(dtype) for _ in range(3))
    z = np.abs(z) + 0.5
    T = torch.from_numpy
    for s in (0.1, -0.37, 0.5, 0.9, 1e-3):
        np.testing.assert_array_equal(_ops.add(x, y, s), T(x).add(T(y), alpha=s).numpy())
        np.testing.assert_array_equal(_ops.lerp(x, y, s), T(x).lerp(T(y), s).numpy())
        np.testing.assert_array_equal(_ops.addcmul(x, y, z, s), T(x).addcmul(T(y), T(z), value=s).numpy())
        np.testing.assert_array_equal(_ops.addcdiv(x, y, z, s), T(x).addcdiv(T(y), T(z), value=s).numpy())


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_sqrt_is_within_one_ulp(dtype):
    """Stock torch's sqrt (MKL) is not correctly rounded: 1 ULP off on a small share."""
    x = np.abs(np.random.default_rng(0).standard_normal(100_003)).astype(dtype)
    d = ulp_distance(torch.from_numpy(x).sqrt().numpy(), np.sqrt(x))
    assert d.max() <= 1
    assert np.mean(d > 0) < 0.02


# --- bit-exact runs ---------------------------------------------------------------------------

def _options(name):
    lr = st.sampled_from([1e-3, 1e-2, 0.05])
    wd = st.sampled_from([0, 0, 1e-3, 0.1])
    if name == "SGD":
        return st.fixed_dictionaries({"lr": lr, "momentum": st.sampled_from([0, 0.5, 0.9]),
                                      "dampening": st.sampled_from([0, 0.1]), "weight_decay": wd,
                                      "nesterov": st.booleans(), "maximize": st.booleans()}).map(_fix_nesterov)
    if name in ("Adam", "AdamW"):
        opts = {"lr": lr, "betas": st.tuples(st.sampled_from([0.0, 0.8, 0.9]), st.sampled_from([0.99, 0.999])),
                "eps": st.sampled_from([1e-8, 1e-6, 1e-3]), "weight_decay": wd, "amsgrad": st.booleans(),
                "maximize": st.booleans()}
        if name == "Adam":
            opts["decoupled_weight_decay"] = st.booleans()
        return st.fixed_dictionaries(opts)
    return st.fixed_dictionaries({"lr": lr, "alpha": st.sampled_from([0.9, 0.99]),
                                  "eps": st.sampled_from([1e-8, 1e-6]), "weight_decay": wd,
                                  "momentum": st.sampled_from([0, 0.9]), "centered": st.booleans(),
                                  "maximize": st.booleans()})


def _fix_nesterov(kw):
    if kw["nesterov"] and (kw["momentum"] == 0 or kw["dampening"] != 0):
        kw["nesterov"] = False
    return kw


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop"])
@settings(max_examples=scaled(3))
@given(data=st.data())
def test_bit_exact_500_steps(name, data):
    """Drawn options and dtype, 500 steps on four tensors: every parameter and state slot, every
    step, the same bits as torch (foreach=False; for all but SGD, with a correctly rounded sqrt)."""
    kwargs = data.draw(_options(name), label="kwargs")
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    row = pt.run_pair(name, kwargs, dtype, 500, seed=seed, sqrt="ieee")
    assert row.exact, (kwargs, dtype, row)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs", [k for n, k in pt.OPTIMIZER_CONFIGS if n == "SGD"])
def test_sgd_is_exact_against_stock_torch(kwargs, dtype):
    assert pt.run_pair("SGD", kwargs, dtype, 500, sqrt="stock").exact


def test_without_fma_the_check_fails(monkeypatch):
    """Two roundings for ``add(alpha=)`` (plain NumPy ``x + a*y``) are caught: the check has teeth."""
    monkeypatch.setattr(_ops, "fma", lambda a, b, c: np.asarray(a * b + c))
    row = pt.run_pair("SGD", {"lr": 0.01, "momentum": 0.9}, "float32", 50, sqrt="stock")
    assert not row.exact and row.max_ulp >= 1


# --- stock torch: the measured bound ----------------------------------------------------------

SQRT_CONFIGS = [(n, k) for n, k in pt.OPTIMIZER_CONFIGS if n != "SGD"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kwargs", SQRT_CONFIGS)
def test_stock_torch_one_step_bound(name, kwargs, dtype):
    """One step from the same state, against stock torch: within ``STOCK_ONE_STEP_SCALE_ULP``
    ULPs of each array's scale (measured: ``python parity_tests/measure_torch.py``)."""
    worst = _worst_scale_ulp(name, kwargs, dtype, steps=100, resync=True)
    assert worst <= pt.STOCK_ONE_STEP_SCALE_ULP, worst


def _worst_scale_ulp(name, kwargs, dtype, steps, resync, seed=0):
    pair = pt.TorchPair(name, kwargs, dtype, seed)
    rng_a, rng_b = np.random.default_rng(seed + 1), np.random.default_rng(seed + 1)
    worst = 0.0
    for _ in range(steps):
        if resync:
            pair.sync()
        pair.step(pt.quadratic_grads(pair.params, rng_a, np.dtype(dtype)),
                  pt.quadratic_grads([p.detach().numpy() for p in pair.tparams], rng_b, np.dtype(dtype)))
        worst = max([worst] + [pt.scale_ulp(a, b) for _, a, b in pair.slots()])
    return worst


def test_the_bound_check_can_fail():
    """Keras's RMSprop form (epsilon inside the root) is far outside the bound."""
    assert pt.scale_ulp(np.sqrt(np.float32(1e-4) + np.float32(1e-7)), np.sqrt(np.float32(1e-4))) \
        > pt.STOCK_ONE_STEP_SCALE_ULP
    pair = pt.TorchPair("RMSprop", {"lr": 1e-3, "eps": 1e-3}, "float32")
    pair.ours.param_groups[0]["eps"] = 1.1e-3  # a 10% epsilon error, one step
    grads = pt.quadratic_grads(pair.params, np.random.default_rng(1), np.float32)
    pair.step(grads, grads)
    assert max(pt.scale_ulp(a, b) for _, a, b in pair.slots()) > pt.STOCK_ONE_STEP_SCALE_ULP


def test_foreach_gives_the_for_loop_bits():
    """torch's own foreach=True path: the same bits as foreach=False (what scratchopt matches)."""
    for name, kwargs in pt.OPTIMIZER_CONFIGS[::2]:
        a = pt.TorchPair(name, kwargs, "float32", torch_kwargs={"foreach": True})
        b = pt.TorchPair(name, kwargs, "float32", torch_kwargs={"foreach": False})
        rng = np.random.default_rng(0)
        for _ in range(50):
            g = pt.quadratic_grads([p.detach().numpy() for p in a.tparams], rng, np.float32)
            a.step(g, g)
            b.step(g, g)
        for p, q in zip(a.tparams, b.tparams):
            np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())


# --- arguments, errors, state -----------------------------------------------------------------

BAD_ARGS = [
    ("SGD", {"lr": -1.0}), ("SGD", {"momentum": -0.1}), ("SGD", {"weight_decay": -1}),
    ("SGD", {"nesterov": True}), ("SGD", {"nesterov": True, "momentum": 0.9, "dampening": 0.1}),
    ("Adam", {"lr": -1e-3}), ("Adam", {"eps": -1.0}), ("Adam", {"betas": (1.0, 0.999)}),
    ("Adam", {"betas": (0.9, -0.1)}), ("Adam", {"weight_decay": -0.1}), ("Adam", {"betas": (0.9, 1)}),
    ("AdamW", {"lr": -1.0}), ("AdamW", {"betas": (-0.5, 0.9)}),
    ("RMSprop", {"lr": -1.0}), ("RMSprop", {"eps": -1.0}), ("RMSprop", {"momentum": -1.0}),
    ("RMSprop", {"weight_decay": -1.0}), ("RMSprop", {"alpha": -0.5}),
    ("SGD", {"lr": "0.1"}),
]


@pytest.mark.parametrize("name,kwargs", BAD_ARGS)
def test_bad_arguments_raise_torchs_errors(name, kwargs):
    with pytest.raises(Exception) as theirs:
        getattr(torch.optim, name)([torch.zeros(2, requires_grad=True)], **kwargs)
    with pytest.raises(Exception) as ours:
        getattr(optim, name)([np.zeros(2)], **kwargs)
    assert type(ours.value) is type(theirs.value)
    assert str(ours.value) == str(theirs.value)


def test_bad_params():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([])
    with pytest.raises(TypeError, match="iterable of Tensors or dicts"):
        optim.SGD(np.zeros(2))
    w = np.zeros(2)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [w]}, {"params": [w]}])
    with pytest.raises(TypeError, match="optimize float32 or float64"):
        optim.SGD([np.zeros(2, np.int32)])
    with pytest.raises(ValueError, match="fused"):
        optim.Adam([w], fused=True)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop"])
def test_a_failed_step_changes_nothing(name):
    kwargs = {"momentum": 0.9} if name in ("SGD", "RMSprop") else {}
    params = [np.ones(3, np.float32), np.ones((2, 2), np.float32)]
    opt = getattr(optim, name)(params, lr=0.1, **kwargs)
    opt.step([np.ones(3, np.float32), np.ones((2, 2), np.float32)])
    before = ([p.copy() for p in params], opt.state_dict())
    bad = [
        [np.ones(3, np.float32), np.ones(4, np.float32)],        # shape
        [np.ones(3, np.float32), np.ones((2, 2), np.int64)],     # dtype
        [np.ones(3, np.float32), [[1.0, 1.0], [1.0, 1.0]]],      # kind
        [np.ones(3, np.float32)],                                # count
    ]
    for grads in bad:
        with pytest.raises((ValueError, TypeError), match="grads"):
            opt.step(grads)
        for p, q in zip(params, before[0]):
            np.testing.assert_array_equal(p, q)
        after = opt.state_dict()
        assert after["param_groups"] == before[1]["param_groups"]
        for i, slots in before[1]["state"].items():
            for k, v in slots.items():
                np.testing.assert_array_equal(after["state"][i][k], v)


def test_none_skips_and_other_precision_is_cast():
    a, b = np.ones(2, np.float32), np.ones(2, np.float32)
    opt = optim.Adam([a, b], lr=0.1)
    opt.step([None, np.ones(2, np.float64)])
    assert a.tolist() == [1.0, 1.0] and b.dtype == np.float32 and b[0] < 1
    assert list(opt.state_dict()["state"]) == [1]


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop"])
def test_state_dict_has_torchs_layout_and_round_trips(name):
    kwargs = {"SGD": {"momentum": 0.9}, "Adam": {"amsgrad": True}, "AdamW": {},
              "RMSprop": {"momentum": 0.9, "centered": True}}[name]
    pair = pt.TorchPair(name, dict(kwargs, lr=0.01), "float64")
    rng = np.random.default_rng(0)
    for _ in range(5):
        g = pt.quadratic_grads(pair.params, rng, np.float64)
        pair.step(g, g)
    ours, theirs = pair.ours.state_dict(), pair.theirs.state_dict()
    assert ours["param_groups"] == [dict(g, foreach=None) for g in theirs["param_groups"]]
    assert {i: sorted(s) for i, s in ours["state"].items()} == {i: sorted(s) for i, s in theirs["state"].items()}
    # torch's state, loaded into a fresh scratchopt optimizer, continues with torch's bits.
    params = [p.detach().numpy().copy() for p in pair.tparams]
    fresh = getattr(optim, name)(params, lr=0.01, **kwargs)
    fresh.load_state_dict({"state": {i: {k: v.numpy() for k, v in s.items()} for i, s in theirs["state"].items()},
                           "param_groups": theirs["param_groups"]})
    with pt.ieee_sqrt():
        for _ in range(5):
            g = pt.quadratic_grads(params, rng, np.float64)
            fresh.step(g)
            for p, q in zip(pair.tparams, g):
                p.grad = torch.from_numpy(q.copy())
            pair.theirs.step()
    for p, q in zip(params, pair.tparams):
        np.testing.assert_array_equal(p, q.detach().numpy())


def test_param_groups_take_their_own_options():
    a, b = np.ones(2), np.ones(2)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    opt.step([np.ones(2), np.ones(2)])
    assert a.tolist() == [0.9, 0.9] and b.tolist() == [0.0, 0.0]
    assert opt.param_groups[1]["momentum"] == 0


def test_parity_rows():
    """``scratchopt parity --framework torch``'s rows (short): SGD and the schedulers exact, the
    sqrt optimizers exact with an IEEE sqrt and within the free-running bound against stock torch."""
    for check in pt.entries():
        row = check.run(60)
        if check.label.startswith(("Adam", "AdamW", "RMSprop")):
            assert "0 ULP (exact)" in row.note and row.passed, (check.label, row.note)
        else:
            assert row.exact, (check.label, row)


# --- the boxes: the code against a plain float64 rendering of each docstring box --------------

def _box_step(name, kw, p, g, st):
    """One step of each box, written as plain float64 formulas (no FMA, no torch)."""
    lr, wd = kw.get("lr", 1e-3), kw.get("weight_decay", 0)
    g = -g if kw.get("maximize") else g
    if name == "SGD":
        g = g + wd * p
        mu, d = kw.get("momentum", 0), kw.get("dampening", 0)
        if mu:
            st["b"] = g.copy() if "b" not in st else mu * st["b"] + (1 - d) * g
            g = g + mu * st["b"] if kw.get("nesterov") else st["b"]
        return p - lr * g
    if name in ("Adam", "AdamW"):
        b1, b2 = kw.get("betas", (0.9, 0.999))
        st["t"] = st.get("t", 0) + 1
        if name == "AdamW" or kw.get("decoupled_weight_decay"):
            p = p * (1 - lr * kw.get("weight_decay", 0.01 if name == "AdamW" else 0))
        else:
            g = g + wd * p
        st["m"] = b1 * st.get("m", 0) + (1 - b1) * g
        st["v"] = b2 * st.get("v", 0) + (1 - b2) * g * g
        v = st["v"]
        if kw.get("amsgrad"):
            st["vmax"] = v = np.maximum(st.get("vmax", 0), v)
        t = st["t"]
        return p - lr / (1 - b1**t) * st["m"] / (np.sqrt(v) / np.sqrt(1 - b2**t) + kw.get("eps", 1e-8))
    a, eps, mu = kw.get("alpha", 0.99), kw.get("eps", 1e-8), kw.get("momentum", 0)
    g = g + wd * p
    st["v"] = a * st.get("v", 0) + (1 - a) * g * g
    if kw.get("centered"):
        st["gbar"] = a * st.get("gbar", 0) + (1 - a) * g
        avg = np.sqrt(st["v"] - st["gbar"] ** 2) + eps
    else:
        avg = np.sqrt(st["v"]) + eps
    if mu > 0:
        st["b"] = mu * st.get("b", 0) + g / avg
        return p - lr * st["b"]
    return p - lr * g / avg


@pytest.mark.parametrize("name,kwargs", pt.OPTIMIZER_CONFIGS)
def test_code_follows_its_box(name, kwargs):
    """50 float64 steps of the code against the box's formulas: equal to rounding (1e-9)."""
    rng = np.random.default_rng(0)
    p = rng.standard_normal(64)
    ours = p.copy()
    opt = getattr(optim, name)([ours], **kwargs)
    st = {}
    for _ in range(50):
        g = 0.5 * ours + rng.standard_normal(64)
        p = _box_step(name, kwargs, p, g, st)
        opt.step([g])
        np.testing.assert_allclose(ours, p, rtol=1e-9, atol=1e-12)
