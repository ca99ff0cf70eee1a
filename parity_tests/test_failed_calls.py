"""A failed call changes nothing (issue 12): the unsafe cases, one test (or more) per item.

Each test name starts with the item it covers (``item1_`` ... ``item14_``, then
``misleading_`` for the messages): what happened before, and what must happen now, is in
the issue. "Changes nothing" is checked byte for byte: the params, every slot, EMA
average and accumulator, the step count, whether the optimizer is built, and the set of
its attributes (``frozen``).
"""

import copy
import pickle
import re
import threading
import warnings
from unittest import mock

import numpy as np
import pytest
from optimizer_info import INFOS

from scratchopt import clipping
from scratchopt.numerics import FTZ_SUPPORTED, flush_denormals
from scratchopt.optimizers import SGD, Adam, AdamW, RMSprop, adam, engine
from scratchopt.optimizers.engine import fused_cpu, fusion
from scratchopt.tools.parity import same_bits

pytestmark = pytest.mark.filterwarnings("ignore:Gradients do not exist")
needs_numba = pytest.mark.skipif(not fused_cpu.available(), reason="numba is not installed: no fused path")
OPTIONS = [{}, {"use_ema": True, "ema_overwrite_frequency": 2}, {"clipnorm": 1.0}, {"global_clipnorm": 1.0},
           {"gradient_accumulation_steps": 2}, {"loss_scale_factor": 4.0}, {"weight_decay": 0.1}]
KWARGS = {"SGD": {"learning_rate": 0.1, "momentum": 0.9}, "Adam": {"learning_rate": 0.01, "amsgrad": True},
          "AdamW": {"learning_rate": 0.01}, "RMSprop": {"learning_rate": 0.01, "centered": True, "momentum": 0.5}}
SHAPES = [(3,), (2, 2), (5,)]


def make(info, options=None, backend="numpy"):
    opt = info.cls(**KWARGS.get(info.name, {"learning_rate": 0.01}), **(options or {}))
    opt.backend = backend
    return opt


def fresh_params(dtype=np.float32, shapes=SHAPES):
    rng = np.random.default_rng(0)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def grads_for(params, value=0.25):
    return [np.full(p.shape, value, p.dtype) for p in params]


def frozen(opt, params):
    """Everything a call could change, as bytes."""
    def arrays(xs):
        return None if xs is None else [(a.dtype.str, a.shape, a.tobytes()) for a in xs]

    state = {"built": opt.built, "iterations": opt._iterations, "attributes": sorted(vars(opt)),
             "params": arrays(params), "lr": None if opt._rate.value is None else float(opt._rate.value)}
    if opt.built:
        state["slots"] = [sorted((k, arrays([a])) for k, a in s.items()) for s in opt._slots]
        state["ema"], state["acc"] = arrays(opt._averages), arrays(opt._accumulators)
        state["own"] = arrays(opt._params)
    return state


def fails_safely(opt, params, call, error, match):
    before = frozen(opt, params)
    with pytest.raises(error, match=match):
        call()
    assert frozen(opt, params) == before


def ready(info, options=None, backend="numpy", packed=False, steps=1, dtype=np.float32):
    opt = make(info, options, backend)
    params = fresh_params(dtype)
    if packed:
        params = opt.pack(params)
    for _ in range(steps):
        opt.apply(grads_for(params), params)
    return opt, params


# --- item 1: a read-only param at any position ---------------------------------------------


@pytest.mark.parametrize("info", INFOS, ids=str)
@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("position", [0, 1, 2])
@pytest.mark.parametrize("steps", [0, 1])
def test_item1_a_read_only_param_at_any_position_changes_nothing(info, options, position, steps):
    opt, params = ready(info, options, steps=steps)
    params[position].flags.writeable = False
    fails_safely(opt, params, lambda: opt.apply(grads_for(params), params), ValueError,
                 rf"params\[{position}\] is read-only")
    assert opt.built == bool(steps)
    params[position].flags.writeable = True
    opt.apply(grads_for(params), params)  # and then the step runs, once
    assert opt.iterations == (steps + 1) // (options.get("gradient_accumulation_steps") or 1)


@pytest.mark.parametrize("backend", ["numpy", pytest.param("auto", marks=needs_numba)])
@pytest.mark.parametrize("packed", [False, True])
def test_item1_read_only_is_refused_on_every_path(backend, packed):
    """NumPy and fused paths, plain and packed params, given gradients of their own."""
    info = next(i for i in INFOS if i.name == "Adam")
    opt, params = ready(info, backend=backend, packed=packed)
    params[2].flags.writeable = False
    fails_safely(opt, params, lambda: opt.apply(grads_for(params), params), ValueError, r"params\[2\] is read-only")
    fails_safely(opt, params, lambda: opt.apply_gradients(zip(grads_for(params), params)), ValueError,
                 r"params\[2\] is read-only")


@pytest.mark.parametrize("buffer", ["param", "slot"])
def test_item1_a_read_only_packed_buffer_is_refused_with_packed_gradients(buffer):
    """The packed_gradients() fast path skips the per-pair checks; it checks the buffers."""
    opt = Adam(0.1)
    params = opt.pack(fresh_params())
    grads = opt.packed_gradients()
    for g in grads:
        g[...] = 0.5
    target = opt._packs[0].param if buffer == "param" else opt._packs[0].slots["m"]
    target.flags.writeable = False
    fails_safely(opt, params, lambda: opt.apply(grads, params), ValueError, r"params\[0\] is packed into a read-only")
    fails_safely(opt, params, lambda: opt.apply(grads), ValueError, "read-only")
    target.flags.writeable = True
    opt.apply(grads)
    assert opt.iterations == 1


@pytest.mark.parametrize("failure", ["bad last grad", "read-only", "lr callable", "overlap", "inside the step"])
def test_item1_a_failed_first_call_leaves_the_optimizer_unbuilt(failure, monkeypatch):
    params = fresh_params()
    grads = grads_for(params)
    opt = Adam(lambda step: None if failure == "lr callable" else 0.1)
    if failure == "bad last grad":
        grads[-1] = np.ones(7, np.float32)
    elif failure == "read-only":
        params[-1].flags.writeable = False
    elif failure == "overlap":
        grads[-1] = params[-1][::-1]
    elif failure == "inside the step":  # a failure the checks cannot foresee
        monkeypatch.setattr(Adam, "_step", mock.Mock(side_effect=MemoryError("out of memory")))
    before = frozen(opt, params)
    with pytest.raises((TypeError, ValueError, MemoryError)):
        opt.apply(grads, params)
    assert not opt.built and frozen(opt, params) == before


def test_item1_the_issue_example_steps_nothing_then_steps_once():
    """Adam(.1).apply([g, g], [w0, w1]) with w1 read-only stepped w0 and its slots before."""
    w0, w1 = np.ones(3, np.float32), np.ones(3, np.float32)
    g = np.full(3, 0.5, np.float32)
    w1.flags.writeable = False
    opt = Adam(0.1)
    with pytest.raises(ValueError, match=r"params\[1\] is read-only"):
        opt.apply([g, g], [w0, w1])
    assert not opt.built and opt.iterations == 0 and (w0 == 1).all()
    w1.flags.writeable = True
    opt.apply([g, g], [w0, w1])
    reference = [np.ones(3, np.float32)]
    Adam(0.1).apply([g], reference)
    assert same_bits(w0, reference[0]) and same_bits(w1, reference[0])


# --- item 2: None or a str for a hyper-parameter ----------------------------------------------


@pytest.mark.parametrize("cls, argument", [
    (Adam, "beta_1"), (Adam, "beta_2"), (Adam, "epsilon"), (Adam, "ema_momentum"),
    (AdamW, "beta_1"), (AdamW, "beta_2"), (AdamW, "epsilon"), (AdamW, "ema_momentum"),
    (RMSprop, "rho"), (RMSprop, "momentum"), (RMSprop, "epsilon"), (RMSprop, "ema_momentum"),
    (SGD, "ema_momentum"),
])
@pytest.mark.parametrize("value", [None, "0.9"])
def test_item2_a_hyper_parameter_that_is_not_a_number_is_a_type_error_naming_it(cls, argument, value):
    with pytest.raises(TypeError, match=f"`{argument}` must be a number. Received: {argument}={value!r}"):
        cls(**{argument: value})


@pytest.mark.parametrize("value", [None, "0.9"])
def test_item2_sgd_momentum_keeps_keras_value_error_and_names_it(tf, value):
    import keras

    with pytest.raises(ValueError):
        keras.optimizers.SGD(momentum=value)
    with pytest.raises(ValueError, match=f"`momentum` must be a float between \\[0, 1\\]. Received: momentum={value!r}"):
        SGD(momentum=value)


# --- item 3: a learning-rate callable that returns something else than a number ------------------


@pytest.mark.parametrize("value", [None, "0.5", np.ones(2), np.array([0.5]), [0.1], 1j, True, np.array(1)])
@pytest.mark.parametrize("takes_step", [True, False])
@pytest.mark.parametrize("steps", [0, 1])
def test_item3_a_learning_rate_callable_returning_a_non_number_changes_nothing(value, takes_step, steps):
    state = {"value": 0.1}
    opt = Adam((lambda step: state["value"]) if takes_step else (lambda: state["value"]))
    params = fresh_params()
    for _ in range(steps):
        opt.apply(grads_for(params), params)
    state["value"] = value
    fails_safely(opt, params, lambda: opt.apply(grads_for(params), params), TypeError,
                 "`learning_rate` must give a real number")
    assert opt.built == bool(steps)


@pytest.mark.parametrize("info", INFOS, ids=str)
def test_item3_the_rate_is_evaluated_once_per_step_before_anything_changes(info):
    calls = []

    def rate(step):
        calls.append(step)
        return 0.01

    opt = info.cls(learning_rate=rate, weight_decay=0.1, use_ema=True)
    params = fresh_params()
    for _ in range(3):
        opt.apply(grads_for(params), params)
    assert calls == [0, 1, 2]


@pytest.mark.parametrize("value", [np.array(0.05), np.float32(0.05), np.float64(0.05), 0.05, np.array(0.05, np.float32)])
def test_item3_real_scalars_and_0d_float_arrays_are_rates(value):
    """A 0-d array is the scalar it holds: the same bits as that scalar."""
    a, b = fresh_params(np.float64), fresh_params(np.float64)
    Adam(lambda: value).apply(grads_for(a), a)
    Adam(lambda: value[()] if isinstance(value, np.ndarray) else value).apply(grads_for(b), b)
    assert all(same_bits(x, y) for x, y in zip(a, b))


def test_item3_nan_is_a_number_and_a_python_float_beyond_float32_is_out_of_range_as_in_keras(tf):
    import keras

    params = fresh_params()
    Adam(lambda: float("nan")).apply(grads_for(params), params)
    assert all(np.isnan(p).all() for p in params)
    variable = keras.Variable(np.ones(3, np.float32))
    with pytest.raises(ValueError):
        keras.optimizers.SGD(learning_rate=lambda: 1e308).apply([np.ones(3, np.float32)], [variable])
    opt, params = SGD(lambda: 1e308), fresh_params()
    fails_safely(opt, params, lambda: opt.apply(grads_for(params), params), ValueError, "`learning_rate` is out of range")
    SGD(lambda: np.float64(1e308)).apply(grads_for(params), params)  # cast without a check: -inf, as Keras
    assert np.isneginf(params[0]).all()


@needs_numba
def test_item3_an_array_rate_never_reaches_the_compiler():
    params = fresh_params()
    with mock.patch.object(fused_cpu, "run", wraps=fused_cpu.run) as spy, pytest.raises(TypeError, match="learning_rate"):
        Adam(lambda: np.ones(2)).apply(grads_for(params), params)
    assert not spy.called


# --- item 4: load_state_dict checks every field first -------------------------------------------


BAD_FIELDS = [
    ("learning_rate", "abc", TypeError), ("learning_rate", [0.1, 0.2], TypeError),
    ("learning_rate", np.ones(2), TypeError),
    ("iterations", -1, ValueError), ("iterations", "3", TypeError), ("iterations", 1.5, TypeError),
    ("iterations", None, TypeError), ("iterations", True, TypeError),
    ("slots", None, ValueError), ("slots", "x", TypeError), ("slots", [[]] * 3, TypeError),
    ("slots", [{}] * 3, ValueError), ("ema", "x", TypeError), ("ema", [None] * 3, TypeError),
    ("ema", None, ValueError), ("accumulators", [1, 2, 3], TypeError),
]


@pytest.mark.parametrize("key, value, error", BAD_FIELDS, ids=lambda x: repr(x)[:20])
def test_item4_a_bad_field_raises_naming_it_and_changes_nothing(key, value, error):
    opt = Adam(0.1, use_ema=True, gradient_accumulation_steps=2)
    params = fresh_params()
    for _ in range(3):
        opt.apply(grads_for(params), params)
    state = opt.state_dict()
    state["slots"][0]["m"][...] = 42  # a state that would change the optimizer if it were loaded
    state[key] = value
    fails_safely(opt, params, lambda: opt.load_state_dict(state), error, rf"state\[{key!r}\]")


@pytest.mark.parametrize("key", ["iterations", "learning_rate", "slots", "ema", "accumulators"])
def test_item4_a_missing_key_is_named(key):
    opt, params = ready(next(i for i in INFOS if i.name == "Adam"))
    state = opt.state_dict()
    del state[key]
    fails_safely(opt, params, lambda: opt.load_state_dict(state), ValueError, f"lacks {key!r}")


def test_item4_a_slot_given_as_a_list_names_its_key():
    opt, params = ready(next(i for i in INFOS if i.name == "Adam"))
    state = opt.state_dict()
    state["slots"][1]["v"] = state["slots"][1]["v"].tolist()
    fails_safely(opt, params, lambda: opt.load_state_dict(state), TypeError,
                 r"state\['slots'\]\[1\]\['v'\] must be an array")


@pytest.mark.parametrize("state", [None, "state", [1, 2], 3.0])
def test_item4_a_state_that_is_not_a_dict_is_a_type_error(state):
    opt, params = ready(next(i for i in INFOS if i.name == "Adam"))
    fails_safely(opt, params, lambda: opt.load_state_dict(state), TypeError, "`state` must be a dict")


def test_item4_a_good_state_still_loads_bit_for_bit():
    opt, params = ready(next(i for i in INFOS if i.name == "RMSprop"), {"use_ema": True}, steps=3)
    saved, checkpoint = opt.state_dict(), [p.copy() for p in params]
    opt.apply(grads_for(params), params)
    after = [p.copy() for p in params]
    opt.load_state_dict(saved)
    for p, c in zip(params, checkpoint):
        p[...] = c
    opt.apply(grads_for(params), params)
    assert all(same_bits(a, b) for a, b in zip(after, params))


# --- item 5: copy.deepcopy and pickle --------------------------------------------------------------


def _copies(opt):
    return [copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))]


@pytest.mark.parametrize("options", [{}, {"use_ema": True}, {"gradient_accumulation_steps": 2}], ids=str)
@pytest.mark.parametrize("packed", [False, True])
def test_item5_a_copy_steps_its_own_params_and_refuses_the_originals(options, packed):
    opt = Adam(0.1, **options)
    params = fresh_params()
    params = opt.pack(params) if packed else params
    opt.apply(grads_for(params), params)
    for other in _copies(opt):
        original = [p.copy() for p in params]
        assert not any(np.shares_memory(a, b) for a in other.params for b in params)
        with pytest.raises(ValueError, match=r"Unknown parameter at params\[0\]: this optimizer was built for other arrays"):
            other.apply(grads_for(params), params)
        assert all(same_bits(a, b) for a, b in zip(original, params)) and other.iterations == opt.iterations
        reference = copy.deepcopy(params)
        twin = Adam(0.1, **options)
        twin.build(reference)
        twin.load_state_dict(opt.state_dict())
        for _ in range(3):
            other.apply(grads_for(params, 0.5))
            twin.apply(grads_for(params, 0.5), reference)
        assert all(same_bits(a, b) for a, b in zip(other.params, reference))
        assert all(same_bits(a, b) for a, b in zip(original, params))  # the original's arrays: untouched
        assert other.iterations == twin.iterations


@needs_numba
def test_item5_a_packed_copy_keeps_its_views_into_its_own_buffers_and_its_fast_path():
    opt = Adam(0.1)
    opt.pack(fresh_params() + fresh_params(np.float64))
    grads = opt.packed_gradients()
    for g in grads:
        g[...] = 0.5
    opt.apply(grads)
    for other in _copies(opt):
        views = other.params
        assert all(v.base is other._packs[k // 3].param for k, v in enumerate(views))
        ours = other.packed_gradients()
        assert all(g.base is other._packs[k // 3].grad for k, g in enumerate(ours))
        assert all(same_bits(a, b) for a, b in zip(ours, grads))  # the written gradients came along
        with mock.patch.object(engine, "run", wraps=engine.run) as spy:
            other.apply(ours)
        assert [call.args[2] is pack.param for call, pack in zip(spy.call_args_list, other._packs)] == [True, True]
        expected = copy.deepcopy(opt)
        expected.apply(grads_for(expected.params, 0.5), expected.params)
        assert all(same_bits(a, b) for a, b in zip(views, expected.params))


def test_item5_an_unbuilt_copy_builds_on_its_own():
    opt = AdamW(0.1, weight_decay=0.5)
    params = fresh_params()
    opt.exclude_from_weight_decay(var_list=[params[0]], var_names=["bias"])
    other = copy.deepcopy(opt)
    other.apply(grads_for(params), params)
    opt.apply(grads_for(params), params)
    assert opt._decays == [False, True, True] and other._decays == [True, True, True]  # its own copy of params[0]


# --- item 6: user code runs outside flush-to-zero ----------------------------------------------------


@pytest.mark.skipif(not FTZ_SUPPORTED, reason="this machine does not flush subnormals (numerics.FTZ_SUPPORTED)")
@pytest.mark.parametrize("takes_step", [True, False])
def test_item6_a_learning_rate_callable_and_its_threads_do_not_flush(takes_step):
    tiny = np.float32(1e-30), np.float32(1e-10)  # their product, 1e-40, is subnormal
    seen = {}

    def in_thread():
        seen["thread"] = tiny[0] * tiny[1]

    def rate(*step):
        seen["callable"] = tiny[0] * tiny[1]
        thread = threading.Thread(target=in_thread)
        thread.start()
        thread.join()
        return 0.1

    opt = SGD(rate if takes_step else (lambda: rate()))
    w = np.ones(2, np.float32)
    opt.apply([np.ones(2, np.float32)], [w])
    assert seen["callable"] != 0 and seen["thread"] != 0
    with flush_denormals():  # the check can fail: here the same product is flushed
        assert tiny[0] * tiny[1] == 0
    # ... and the step itself still flushes as TF's kernels do: 2e-38 - 1.5e-38 is subnormal.
    w = np.full(2, 2e-38, np.float32)
    SGD(1.5e-38).apply([np.ones(2, np.float32)], [w])
    assert (w == 0).all()


# --- item 10: hyper-parameters beyond float32's range -------------------------------------------


@pytest.mark.parametrize("cls, kwargs", [
    (Adam, {"beta_1": 1e308}), (Adam, {"beta_2": 1e308}), (Adam, {"beta_1": -1e39}),
    (AdamW, {"beta_1": 1e308}), (Adam, {"weight_decay": 1e308}), (AdamW, {"weight_decay": 1e308}),
    (SGD, {"weight_decay": 1e39}), (RMSprop, {"weight_decay": 1e308}), (Adam, {"weight_decay": 10**40}),
    (Adam, {"weight_decay": 3.4028235677973366e+38}),  # the first float that rounds to inf
], ids=str)
def test_item10_out_of_range_hyper_parameters_are_value_errors_as_in_keras(tf, cls, kwargs):
    import keras

    variable = keras.Variable(np.ones(3, np.float32))
    with pytest.raises(ValueError):  # Keras: at the first step ("value out of range")
        getattr(keras.optimizers, cls.__name__)(**kwargs).apply([np.ones(3, np.float32)], [variable])
    (name, value), = kwargs.items()
    with pytest.raises(ValueError, match=rf"`{name}` must be within float32's range.*Received: {re.escape(f'{name}={value!r}')}"):
        cls(**kwargs)


@pytest.mark.parametrize("cls, kwargs", [
    (Adam, {"beta_1": float("inf")}), (Adam, {"weight_decay": np.float64(1e308)}),
    (Adam, {"weight_decay": 3.4028235677973362e+38}), (Adam, {"epsilon": 1e308}),
    (RMSprop, {"rho": 1e308}), (RMSprop, {"momentum": 1e308}), (Adam, {"learning_rate": 1e308}),
    (Adam, {"clipnorm": 1e308}), (Adam, {"ema_momentum": 1e308}), (Adam, {"loss_scale_factor": 1e308}),
    # What Keras casts keeps a NumPy float's precision (ops.cast makes a float64 tensor of it).
    (Adam, {"weight_decay": np.float64(0.1), "beta_1": np.float64(0.9), "beta_2": np.float64(0.99)}),
    (SGD, {"momentum": np.float64(0.9), "weight_decay": np.float64(0.3)}),
], ids=str)
def test_item10_what_keras_accepts_is_accepted_and_steps_as_keras(tf, cls, kwargs):
    from scratchopt.tools.keras_reference import KerasRun

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ours = cls(**kwargs)
        params = [np.linspace(-1, 1, 4).astype(np.float32), np.linspace(2, -2, 3)]
        reference = KerasRun(ours, params, literal=kwargs)
        grads = [np.full(4, 0.5, np.float32), np.full(3, -0.25)]
        ours.apply(grads, params)
        reference.apply(grads)
    assert all(same_bits(a, b) for a, b in zip(params, reference.params()))
    if "learning_rate" in kwargs:
        assert ours.learning_rate == float("inf")  # stored as inf, silently, as Keras's variable


# --- item 11: clipping takes lists -------------------------------------------------------------------


@pytest.mark.parametrize("function", [clipping.clip_by_value, clipping.clip_by_norm, clipping.clip_by_global_norm])
@pytest.mark.parametrize("bad", [np.ones((2, 3), np.float32), np.float32(1.0), "g", 3.0])
def test_item11_a_bare_array_or_non_list_is_a_type_error_saying_to_pass_a_list(function, bad):
    with pytest.raises(TypeError, match=r"`grads` must be a list of arrays .*pass \[g\] for one tensor"):
        function(bad, 1.0)


@pytest.mark.parametrize("function", [clipping.clip_by_value, clipping.clip_by_norm, clipping.clip_by_global_norm])
def test_item11_a_bad_entry_is_named(function):
    with pytest.raises(TypeError, match=r"grads\[1\] must be a float array"):
        function([np.ones(3, np.float32), [1.0, 2.0]], 1.0)
    with pytest.raises(TypeError, match=r"grads\[1\] has dtype int32"):
        function([np.ones(3, np.float32), np.ones(3, np.int32)], 1.0)
    assert function([np.array([3.0, 4.0])], 1.0)[0].shape == (2,)  # a list of one: that tensor


def test_item11_clipping_nothing_returns_what_keras_returns(tf):
    from keras.src.optimizers.base_optimizer import clip_by_global_norm, global_norm

    assert clip_by_global_norm([None, None], 1.0) == [None, None]
    assert clipping.clip_by_global_norm([None, None], 1.0) == [None, None]
    theirs, ours = np.asarray(global_norm([None, None])), clipping.global_norm([None, None])
    assert same_bits(np.asarray(ours), theirs) and ours.dtype == np.float32
    assert clipping.clip_by_norm([None], 1.0) == [None] and clipping.clip_by_value([], 1.0) == []


# --- item 12: arrays from pack() ---------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", pytest.param("auto", marks=needs_numba)])
def test_item12_a_packed_view_made_read_only_is_refused_when_the_params_are_passed(backend):
    opt, params = ready(next(i for i in INFOS if i.name == "SGD"), backend=backend, packed=True)
    params[1].flags.writeable = False
    fails_safely(opt, params, lambda: opt.apply(grads_for(params), params), ValueError, r"params\[1\] is read-only")


def test_item12_with_packed_gradients_the_buffer_flag_decides_as_documented():
    """pack()'s docstring: the packed_gradients() fast path checks each buffer's flag, not
    each view's (a Python call per tensor); freezing the buffer freezes every view."""
    assert "v.base.flags.writeable = False" in SGD.pack.__doc__
    opt = SGD(0.1)
    params = opt.pack(fresh_params())
    grads = opt.packed_gradients()
    for g in grads:
        g[...] = 1.0
    params[1].flags.writeable = False
    opt.apply(grads)  # the view's own flag is not read on this path: the buffer is written
    assert same_bits(params[1], (fresh_params()[1] - np.float32(0.1) * np.float32(1.0)).astype(np.float32))
    params[1].base.flags.writeable = False
    fails_safely(opt, params, lambda: opt.apply(grads), ValueError, "read-only buffer")


def test_item12_params_replaced_after_pack_are_unknown():
    opt = Adam(0.1)
    params = opt.pack(fresh_params())
    replaced = list(params)
    replaced[2] = params[2].copy()  # a new array in the caller's list: not what the optimizer steps
    fails_safely(opt, params, lambda: opt.apply(grads_for(params), replaced), ValueError,
                 r"Unknown parameter at params\[2\]")
    assert "refuses any array that replaces a view" in " ".join(Adam.pack.__doc__.split())


# --- item 13: one bad compile does not turn the fused path off -------------------------------------


@needs_numba
def test_item13_a_failed_compile_disables_that_kernel_only():
    fallbacks = fusion.Fallbacks("fused path")
    with mock.patch.object(fused_cpu, "_fallbacks", fallbacks):
        arrays = [np.full(8, 0.5, np.float32), np.ones(8, np.float32), np.zeros(8, np.float32),
                  np.zeros(8, np.float32), None]
        bad = {"alpha": np.ones(2, np.float32), "one_minus_beta_1": np.float32(0.1),
               "one_minus_beta_2": np.float32(0.001), "epsilon": np.float32(1e-7)}
        before = [None if a is None else a.copy() for a in arrays]
        with pytest.warns(RuntimeWarning, match="cannot compile .*adam.update"):
            assert fused_cpu.run(adam.update, arrays, bad) is False
        assert all(a is None or same_bits(a, b) for a, b in zip(arrays, before))  # nothing written
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # once per key: no second warning, no second compile
            assert fused_cpu.run(adam.update, arrays, bad) is False
        with mock.patch.object(fused_cpu, "_kernels", wraps=fused_cpu._kernels) as kernels:
            params = [np.ones(50, np.float32)]
            Adam(0.1).apply([np.full(50, 0.5, np.float32)], params)
        assert kernels.get.call_count == 1 and kernels.get.call_args.args[0] is adam.update
        reference = [np.ones(50, np.float32)]
        numpy_path = Adam(0.1)
        numpy_path.backend = "numpy"
        numpy_path.apply([np.full(50, 0.5, np.float32)], reference)
        assert same_bits(params[0], reference[0])


# --- item 14: overlapping memory --------------------------------------------------------------------


OVERLAPS = {  # grads[1] (shaped (2, 2), as params[1]) made from the params, and the param it overlaps
    "the param itself": (lambda ps: ps[1], 1),
    "a reversed view of it": (lambda ps: ps[1][::-1, ::-1], 1),
    "a view of another param": (lambda ps: ps[2][:4].reshape(2, 2), 2),
    "a view of the packed buffer": (lambda ps: ps[0].base[:4].reshape(2, 2), 0),  # params[0] and [1]
}


@pytest.mark.parametrize("steps", [0, 1])
@pytest.mark.parametrize("backend", ["numpy", pytest.param("auto", marks=needs_numba)])
@pytest.mark.parametrize("which, packed", [(w, p) for w in sorted(OVERLAPS) for p in (False, True)
                                           if p or w != "a view of the packed buffer"])  # only packed ones have one
def test_item14_a_gradient_that_shares_memory_with_a_param_changes_nothing(packed, steps, backend, which):
    opt, params = ready(next(i for i in INFOS if i.name == "Adam"), backend=backend, packed=packed, steps=steps)
    make_grad, overlapped = OVERLAPS[which]
    grads = grads_for(params)
    grads[1] = make_grad(params)
    fails_safely(opt, params, lambda: opt.apply(grads, params), ValueError,
                 rf"grads\[1\] shares memory with params\[{overlapped}\]")


def test_item14_params_that_overlap_each_other_are_refused_before_anything_changes():
    buffer = np.ones(10)
    for params, names in [([buffer[:6], buffer[4:]], r"params\[1\] shares memory with params\[0\]"),
                          ([buffer[::2], buffer[::3]], r"params\[1\] shares memory with params\[0\]"),
                          ([np.ones(3), buffer[2:5], buffer[:3]], r"params\[2\] shares memory with params\[1\]")]:
        grads = [np.ones(p.shape) for p in params]
        for call in ("apply", "build", "pack"):
            opt = SGD(0.1)
            method = getattr(opt, call)
            fails_safely(opt, params, lambda: method(grads, params) if call == "apply" else method(params),  # noqa: B023
                         ValueError, names)
            assert not opt.built
    SGD(0.1).apply([np.ones(5), np.ones(5)], [buffer[::2], buffer[1::2]])  # interleaved, disjoint: fine


def test_item14_views_that_do_not_overlap_are_fine_and_the_check_is_not_quadratic():
    import time

    rng = np.random.default_rng(0)
    n = 20_000
    weights = rng.standard_normal(3 * n)
    gradients = rng.standard_normal(3 * n)
    params = list(weights.reshape(n, 3))  # views of one buffer, and gradients views of another
    grads = list(gradients.reshape(n, 3))
    opt = SGD(0.1)
    opt.backend = "numpy"
    reference = weights.copy()
    start = time.perf_counter()
    opt.apply(grads, params)
    first = time.perf_counter() - start
    assert first < 30  # O(n log n) at build, with a Python step per tensor; O(n^2) would be minutes
    expected = (reference.reshape(n, 3) - gradients.reshape(n, 3) * np.float64(np.float32(0.1))).reshape(-1)
    assert same_bits(weights, expected)


# --- the misleading messages ------------------------------------------------------------------------


def test_misleading_apply_gradients_of_nothing_is_a_no_op_and_pairs_are_checked():
    opt = Adam(0.1)
    opt.apply_gradients([])
    opt.apply_gradients(iter(()))
    assert not opt.built and opt.iterations == 0
    params = fresh_params()
    pairs = list(zip(grads_for(params), params))
    pairs[1] = pairs[1] + (None,)
    fails_safely(opt, params, lambda: opt.apply_gradients(pairs), TypeError,
                 r"grads_and_params\[1\] must be a \(grad, param\) pair")


@pytest.mark.parametrize("order", [">"])
@pytest.mark.parametrize("backend", ["numpy", pytest.param("auto", marks=needs_numba)])
@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("options", [{}, {"clipnorm": 0.5}, {"global_clipnorm": 0.5}, {"clipvalue": 0.1},
                                     {"gradient_accumulation_steps": 2, "use_ema": True}], ids=str)
def test_misleading_non_native_byte_order_is_accepted_with_the_native_bits(order, backend, packed, options):
    """Keras accepts a big-endian array; the numbers are the same, and so are the bits."""
    def run(swap_params, swap_grads):
        opt = RMSprop(0.01, centered=True, momentum=0.5, weight_decay=0.1, **options)
        opt.backend = backend
        params = fresh_params(np.float32) + ([] if "global_clipnorm" in options else fresh_params(np.float64)[:1])
        if swap_params:
            params = [p.astype(p.dtype.newbyteorder(order)) for p in params]
        params = opt.pack(params) if packed else params
        rng = np.random.default_rng(1)
        for _ in range(4):
            grads = [rng.standard_normal(p.shape).astype(p.dtype.newbyteorder("=")) for p in params]
            if swap_grads:
                grads = [g.astype(g.dtype.newbyteorder(order)) for g in grads]
            opt.apply(grads, params)
        return [np.asarray(p, p.dtype.newbyteorder("=")) for p in params], opt.state_dict()

    native, native_state = run(False, False)
    for swap in [(True, False), (False, True), (True, True)]:
        ours, state = run(*swap)
        assert all(same_bits(a, b) for a, b in zip(native, ours)), swap
        for a, b in zip(native_state["slots"], state["slots"]):
            assert all(same_bits(a[k], np.asarray(b[k], b[k].dtype.newbyteorder("="))) for k in a)


def test_misleading_a_big_endian_state_loads():
    opt, params = ready(next(i for i in INFOS if i.name == "Adam"))
    state = opt.state_dict()
    state["slots"] = [{k: a.astype(a.dtype.newbyteorder(">")) for k, a in s.items()} for s in state["slots"]]
    state["slots"][0]["m"][...] = 7
    opt.load_state_dict(state)
    assert (opt.state_dict()["slots"][0]["m"] == 7).all() and opt.state_dict()["slots"][0]["m"].dtype == np.float32
    opt.apply(grads_for(params), params)


def test_misleading_a_list_as_a_gradient_names_it_and_says_what_it_must_be():
    opt, params = ready(next(i for i in INFOS if i.name == "SGD"))
    grads = grads_for(params)
    grads[2] = grads[2].tolist()
    fails_safely(opt, params, lambda: opt.apply(grads, params), TypeError,
                 r"grads\[2\] must be a NumPy or CuPy array of floats \(or None for no gradient\), got \[0.25")


@pytest.mark.parametrize("call", ["apply grads", "apply params", "build", "pack", "apply_gradients"])
def test_misleading_bare_arrays_without_a_list_say_to_pass_lists(call):
    opt, w, g = Adam(0.1), np.ones(3), np.ones(3)
    name = {"apply params": "params", "build": "params", "pack": "params", "apply_gradients": "grads_and_params"}.get(call, "grads")
    run = {"apply grads": lambda: opt.apply(g, [w]), "apply params": lambda: opt.apply([g], w),
           "build": lambda: opt.build(w), "pack": lambda: opt.pack(w),
           "apply_gradients": lambda: opt.apply_gradients(np.stack([g, w]))}[call]
    fails_safely(opt, [w], run, TypeError, rf"`{name}` must be a list of ")


def test_misleading_a_bad_weight_decay_regex_is_a_value_error_at_the_call():
    opt = AdamW(0.1)
    with pytest.raises(ValueError, match=r"`var_names` must be regexes.*Received: var_names=\['\('\]"):
        opt.exclude_from_weight_decay(var_names=["("])
    with pytest.raises(TypeError, match="`var_names` must be a list of str"):
        opt.exclude_from_weight_decay(var_names=["bias", 3])
    opt.build(fresh_params(), names=["dense/kernel", "dense/bias", "out/kernel"])  # nothing was set


def test_misleading_build_names_are_checked_before_anything_is_set():
    opt = SGD(0.1)
    params = fresh_params()
    fails_safely(opt, params, lambda: opt.build(params, names=["a"]), ValueError, "names")
    fails_safely(opt, params, lambda: opt.build(params, names=["a", 2, "c"]), TypeError, r"names\[1\] must be a str")
    assert not opt.built
