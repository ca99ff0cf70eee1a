"""State: failed steps change nothing, resumes are bit-identical, configs round-trip."""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import scaled
from optimizer_info import INFOS
from scratchopt.tools.parity import same_bits
from strategies import runs

pytestmark = pytest.mark.filterwarnings("ignore:Gradients do not exist")


class CuPyLookalike:
    """Carries CuPy's array protocol (module and ``__cuda_array_interface__``), no device.

    Enough for scratchopt's dispatch to see "a CuPy array" on a machine without a GPU;
    the real mix is tested in test_gpu.py when a device is present.
    """

    __module__ = "cupy._core.core"
    __cuda_array_interface__ = {}

    def __init__(self, like):
        self.shape, self.dtype = like.shape, like.dtype


def snapshot(opt, params):
    state = opt.state_dict() if opt.built else None
    return [p.copy() for p in params], copy.deepcopy(state), opt._iterations, opt.built


def assert_unchanged(before, after):
    (p0, s0, i0, b0), (p1, s1, i1, b1) = before, after
    assert (i0, b0) == (i1, b1)
    assert all(same_bits(a, b) for a, b in zip(p0, p1))
    if s0 is not None:
        for key in ("ema", "accumulators"):
            assert (s0[key] is None) == (s1[key] is None)
            for a, b in zip(s0[key] or [], s1[key] or []):
                assert same_bits(a, b)
        for a, b in zip(s0["slots"], s1["slots"]):
            assert a.keys() == b.keys() and all(same_bits(a[k], b[k]) for k in a)


def make_bad(kind, grad, param):
    if kind == "shape":
        return np.zeros(param.shape + (2,), param.dtype)
    if kind == "int dtype":
        return np.zeros(param.shape, np.int32)
    if kind == "bool dtype":
        return np.zeros(param.shape, bool)
    if kind == "complex dtype":
        return np.zeros(param.shape, np.complex64)
    if kind == "a list":
        return np.zeros(param.shape).tolist()
    if kind == "another array kind":
        return CuPyLookalike(param)
    raise AssertionError(kind)


BAD = ["shape", "int dtype", "bool dtype", "complex dtype", "a list", "another array kind"]


@pytest.mark.parametrize("info", INFOS, ids=str)
@settings(max_examples=scaled(40))
@given(data=st.data())
def test_a_failed_apply_changes_nothing(info, data):
    """A bad gradient at any position raises before params, slots or iterations change."""
    run = data.draw(runs(info, max_steps=4))
    opt = info.cls(**run.kwargs)
    params = [p.copy() for p in run.params]
    done = data.draw(st.integers(0, len(run.grads) - 1))  # steps taken before the bad one
    for grads in run.grads[:done]:
        opt.apply(grads, params)
    grads = list(run.grads[done])
    position = data.draw(st.integers(0, len(grads) - 1))
    kind = data.draw(st.sampled_from(BAD))
    grads[position] = make_bad(kind, grads[position], params[position])
    before = snapshot(opt, params)
    with pytest.raises((TypeError, ValueError)) as error:
        opt.apply(grads, params)
    assert f"[{position}]" in str(error.value) or "position" in str(error.value)
    assert_unchanged(before, snapshot(opt, params))


@pytest.mark.parametrize("info", INFOS, ids=str)
def test_a_mismatched_param_list_changes_nothing(info):
    params = [np.ones(3, np.float32), np.ones(2)]
    opt = info.cls()
    opt.apply([np.ones(3, np.float32), np.ones(2)], params)
    before = snapshot(opt, params)
    with pytest.raises(ValueError, match="Unknown parameter at params\\[1\\]"):
        opt.apply([np.ones(3, np.float32), np.ones(2)], [params[0], np.ones(2)])
    with pytest.raises(ValueError, match="2 gradients for 1 params"):
        opt.apply([np.ones(3, np.float32), np.ones(2)], params[:1])
    with pytest.raises(TypeError, match="params\\[0\\] has dtype int64"):
        info.cls().apply([np.ones(3)], [np.ones(3, np.int64)])
    assert_unchanged(before, snapshot(opt, params))


@pytest.mark.parametrize("info", INFOS, ids=str)
@settings(max_examples=scaled(40))
@given(data=st.data())
def test_resuming_from_state_dict_is_bit_identical(info, data):
    """Stop after k steps, rebuild from config + state_dict, continue: same bits as no stop."""
    run = data.draw(runs(info, max_steps=8))
    k = data.draw(st.integers(0, len(run.grads)))
    straight = info.cls(**run.kwargs)
    a = [p.copy() for p in run.params]
    for grads in run.grads:
        straight.apply(grads, a)

    first = info.cls(**run.kwargs)
    b = [p.copy() for p in run.params]
    first.build(b)
    for grads in run.grads[:k]:
        first.apply(grads, b)
    saved = first.state_dict()
    checkpoint = [p.copy() for p in b]
    del first, b

    resumed = type(straight).from_config(straight.get_config())
    b = checkpoint
    resumed.build(b)
    resumed.load_state_dict(saved)
    for grads in run.grads[k:]:
        resumed.apply(grads, b)
    assert all(same_bits(x, y) for x, y in zip(a, b))
    assert resumed.iterations == straight.iterations
    assert_unchanged(snapshot(straight, a), snapshot(resumed, b))


def test_state_dict_is_a_copy_and_load_checks_before_copying():
    from scratchopt.optimizers import Adam

    params = [np.ones(3, np.float32)]
    opt = Adam(0.1, use_ema=True)
    opt.apply([np.ones(3, np.float32)], params)
    state = opt.state_dict()
    state["slots"][0]["m"][...] = 42
    assert opt.state_dict()["slots"][0]["m"][0] != 42
    before = snapshot(opt, params)
    bad = opt.state_dict()
    bad["slots"][0]["m"] = np.zeros(3, np.float32)
    bad["slots"][0]["v"] = np.zeros(4, np.float32)  # a wrong shape after a good one
    with pytest.raises(ValueError, match=r"state\['slots'\]\[0\]\['v'\]"):
        opt.load_state_dict(bad)
    bad = opt.state_dict()
    bad["ema"] = None
    with pytest.raises(ValueError, match="does not match"):
        opt.load_state_dict(bad)
    assert_unchanged(before, snapshot(opt, params))
    with pytest.raises(ValueError, match="build"):
        Adam().load_state_dict(state)


@pytest.mark.parametrize("info", INFOS, ids=str)
def test_config_round_trips_and_has_keras_keys(tf, info):
    import keras

    opt = info.cls(learning_rate=0.05, clipvalue=0.5, use_ema=True, name="mine")
    config = opt.get_config()
    assert type(opt).from_config(config).get_config() == config
    theirs = getattr(keras.optimizers, info.name)(learning_rate=0.05, clipvalue=0.5, use_ema=True).get_config()
    assert set(config) == set(theirs)
    assert config["learning_rate"] == theirs["learning_rate"]  # both the float32 value


@pytest.mark.parametrize("info", INFOS, ids=str)
def test_learning_rate_is_float32_and_settable_like_keras(tf, info):
    import keras

    opt, theirs = info.cls(learning_rate=0.1), getattr(keras.optimizers, info.name)(learning_rate=0.1)
    assert opt.learning_rate == float(theirs.learning_rate.numpy()) == float(np.float32(0.1))
    opt.learning_rate = 0.05
    theirs.learning_rate = 0.05
    assert opt.learning_rate == float(theirs.learning_rate.numpy())
    opt.learning_rate = 1  # Keras's setter takes an int too
    assert opt.learning_rate == 1.0
    scheduled = info.cls(learning_rate=lambda step: 0.1 / (step + 1))
    with pytest.raises(TypeError, match="not settable"):
        scheduled.learning_rate = 0.01
    assert scheduled.learning_rate == float(np.float32(0.1))
    scheduled.apply([np.ones(2, np.float32)], [np.ones(2, np.float32)])
    assert scheduled.learning_rate == float(np.float32(0.05))


@pytest.mark.parametrize("info", INFOS, ids=str)
def test_apply_gradients_and_apply_without_params_are_the_same_step(info):
    rng = np.random.default_rng(3)
    start = [rng.standard_normal(4).astype(np.float32), rng.standard_normal(3),
             rng.standard_normal((2, 2)).astype(np.float32)]  # float32: Muon's default refuses float64 matrices
    grads = [rng.standard_normal(4).astype(np.float32), rng.standard_normal(3),
             rng.standard_normal((2, 2)).astype(np.float32)]
    a, b, c = ([p.copy() for p in start] for _ in range(3))
    one, two, three = info.cls(), info.cls(), info.cls()
    one.apply(grads, a)
    two.apply_gradients(zip(grads, b))
    three.build(c)
    three.apply(grads)
    for x, y, z in zip(a, b, c):
        assert same_bits(x, y) and same_bits(x, z)
    assert one.iterations == two.iterations == three.iterations == 1
    one.apply([], a)  # an empty list is a no-op, as in Keras
    assert one.iterations == 1
    with pytest.raises(ValueError, match="No gradients"):
        one.apply([None] * len(a), a)
    with pytest.raises(ValueError, match="build"):
        info.cls().apply(grads)


@pytest.mark.parametrize("info", INFOS, ids=str)
def test_a_learning_rate_callable_without_arguments_is_called_bare_as_in_keras(tf, info):
    from scratchopt.tools.keras_reference import KerasRun

    current = {"rate": 0.1}  # a bare callable reads state the training loop sets
    ours = info.cls(learning_rate=lambda: current["rate"])
    params = [np.linspace(-1, 1, 5).astype(np.float32)]
    reference = KerasRun(ours, params)
    for rate in (0.1, 0.05, 0.025):
        current["rate"] = rate
        grads = [np.linspace(2, -1, 5).astype(np.float32)]
        ours.apply(grads, params)
        reference.apply(grads)
        assert ours.learning_rate == float(np.float32(rate))
    assert same_bits(params[0], reference.params()[0])


@pytest.mark.parametrize("info", INFOS, ids=str)
@settings(max_examples=scaled(20))
@given(data=st.data())
def test_blocks_and_memory_layouts_give_the_same_bits(info, data):
    """The NumPy path's blocks (here 2 elements) and non-contiguous params change no bit."""
    from scratchopt.optimizers import engine

    run = data.draw(runs(info, max_steps=4))
    results = []
    for block_bytes, layout in [(1 << 62, "C"), (16, "C"), (16, "F")]:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(engine, "BLOCK_BYTES", block_bytes)
            opt = info.cls(**run.kwargs)
            params = [np.array(p, order=layout) for p in run.params]
            for grads in run.grads:
                opt.apply([None if g is None else np.array(g, order=layout) for g in grads], params)
        results.append(params)
    for params in results[1:]:
        assert all(same_bits(a, b) for a, b in zip(results[0], params))
