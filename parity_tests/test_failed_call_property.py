"""The guarantee as a property: a failed call changes nothing.

For every public entry point that changes state (an optimizer's ``apply``,
``apply_gradients``, ``build`` and ``load_state_dict``; a schedule's call; the callbacks'
hooks; a layer's call and backward; ``Sequential.fit``; the clipping functions),
Hypothesis draws one bad input — a wrong type, None, NaN/inf/huge values, a read-only or
overlapping array, a wrong shape, dtype, array kind or length — into an otherwise valid
call, and checks three things:

1. only ``ValueError`` or ``TypeError`` is raised;
2. the message names the argument that was bad;
3. every byte of every array the caller passed, and of all the object's state, is as it
   was before the call (``fingerprint`` walks the object's attributes recursively).

Each bad input is one entry of a table (what to break, and the name the message must
carry), so a new entry point or a new kind of bad input is one more line.
"""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchopt import callbacks, clipping, layers, nn, optimizers, schedules

# --- what "nothing changed" means ---------------------------------------------------------


def fingerprint(x, seen=None):
    """A comparable picture of ``x``: arrays by dtype, shape, flags and bytes; containers
    and objects recursively (their ``__dict__``); anything else by ``repr``."""
    seen = set() if seen is None else seen
    if isinstance(x, np.ndarray):
        return ("array", x.dtype.str, x.shape, x.flags.writeable, x.tobytes())
    if isinstance(x, (np.generic, int, float, str, bytes, bool, type(None))):
        return ("value", type(x).__name__, repr(x))
    if id(x) in seen:
        return ("seen",)
    seen.add(id(x))
    if isinstance(x, dict):
        return ("dict", tuple((repr(k), fingerprint(v, seen)) for k, v in x.items()))
    if isinstance(x, (list, tuple, set, frozenset)):
        items = sorted(x, key=repr) if isinstance(x, (set, frozenset)) else x
        return (type(x).__name__, tuple(fingerprint(v, seen) for v in items))
    if isinstance(x, np.random.Generator):
        return ("rng", repr(x.bit_generator.state))
    if hasattr(x, "__dict__") and not callable(x) or type(x).__module__.startswith("scratchopt"):
        return (type(x).__name__, fingerprint(vars(x), seen) if hasattr(x, "__dict__") else repr(x))
    return ("other", type(x).__name__)


def fails_safely(call, objects, names):
    """Run ``call``; it must raise ValueError/TypeError naming one of ``names``, with
    ``objects`` (everything the call could touch) byte for byte as before."""
    before = fingerprint(objects)
    with pytest.raises((ValueError, TypeError)) as error:
        call()
    message = str(error.value)
    assert any(name in message for name in names), f"{message!r} names none of {names}"
    assert fingerprint(objects) == before, f"state changed by a failed call ({message})"


# --- the optimizers -----------------------------------------------------------------------

OPTIMIZERS = [
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9}),
    ("Adam", {"learning_rate": 0.01, "amsgrad": True}),
    ("AdamW", {"learning_rate": 0.01, "weight_decay": 0.1}),
    ("RMSprop", {"learning_rate": 0.01, "centered": True, "momentum": 0.5}),
]
OPTIONS = [{}, {"use_ema": True}, {"clipnorm": 1.0}, {"global_clipnorm": 1.0}, {"clipvalue": 0.5},
           {"gradient_accumulation_steps": 2}, {"loss_scale_factor": 4.0}]
SHAPES = [(3,), (2, 2), (5,)]


def _params(dtype):
    rng = np.random.default_rng(0)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def _grads(params):
    return [np.full(p.shape, 0.25, p.dtype) for p in params]


#: (what to break, how, the names the message may use). ``k`` is the position broken.
def _bad_grad(kind, k, params):
    p = params[k]
    return {
        "str": "0.5",
        "list": [0.5] * p.size,
        "float": 0.5,
        "int array": np.ones(p.shape, np.int32),
        "complex array": np.ones(p.shape, np.complex64),
        "wrong shape": np.ones(p.shape + (2,), p.dtype),
        "object array": np.array([None] * p.size, dtype=object).reshape(p.shape),
        "the param itself": p,
        "a view of the param": p[...],
    }[kind]


GRAD_KINDS = ["str", "list", "float", "int array", "complex array", "wrong shape", "object array",
              "the param itself", "a view of the param"]
PARAM_KINDS = ["read-only", "unknown array", "int array", "twice", "str", "overlapping the previous"]


@st.composite
def optimizer_runs(draw):
    name, kwargs = draw(st.sampled_from(OPTIMIZERS))
    options = draw(st.sampled_from(OPTIONS))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    steps = draw(st.integers(0, 2))
    packed = draw(st.booleans())
    backend = draw(st.sampled_from(["numpy", "auto"]))
    return name, {**kwargs, **options}, dtype, steps, packed, backend


def _ready(run):
    name, kwargs, dtype, steps, packed, backend = run
    opt = getattr(optimizers, name)(**kwargs)
    opt.backend = backend
    params = _params(dtype)
    if packed:
        params = opt.pack(params)
    for _ in range(steps):
        opt.apply(_grads(params), params)
    return opt, params


def _built(run):
    opt, params = _ready(run)
    opt.build(params)  # no-op when a step or pack() already built it
    return opt, params


@settings(max_examples=60)
@given(run=optimizer_runs(), k=st.integers(0, len(SHAPES) - 1), kind=st.sampled_from(GRAD_KINDS),
       via_pairs=st.booleans())
def test_apply_with_a_bad_gradient_changes_nothing(run, k, kind, via_pairs):
    opt, params = _ready(run)
    grads = _grads(params)
    grads[k] = _bad_grad(kind, k, params)
    keep = list(grads)
    if via_pairs:
        call = lambda: opt.apply_gradients(list(zip(grads, params)))  # noqa: E731
    else:
        call = lambda: opt.apply(grads, params)  # noqa: E731
    fails_safely(call, [opt, params, keep], [f"grads[{k}]"])


@settings(max_examples=60)
@given(run=optimizer_runs(), k=st.integers(1, len(SHAPES) - 1), kind=st.sampled_from(PARAM_KINDS))
def test_apply_with_a_bad_param_changes_nothing(run, k, kind):
    opt, params = _ready(run)
    grads = _grads(params)
    bad = list(params)
    if kind == "read-only":
        bad[k] = params[k]
        bad[k].flags.writeable = False
    elif kind == "unknown array":  # unknown once built (an unbuilt optimizer takes any arrays)
        opt.build(params)
        bad[k] = params[k].copy()
    elif kind == "int array":
        bad[k] = np.ones(params[k].shape, np.int64)
    elif kind == "twice":
        bad[k] = params[k - 1]
        grads[k] = grads[k - 1]
    elif kind == "str":
        bad[k] = "w"
    elif kind == "overlapping the previous":
        if params[k - 1].base is not None or params[k - 1].size < params[k].size:
            bad[k] = params[k - 1]  # a packed view cannot be re-viewed meaningfully: reuse it
            grads[k] = grads[k - 1]
        else:
            bad[k] = params[k - 1].reshape(-1)[: params[k].size].reshape(params[k].shape)
    try:
        fails_safely(lambda: opt.apply(grads, bad), [opt, params, grads], [f"params[{k}]", f"params[{k - 1}]"])
    finally:
        params[k].flags.writeable = True


@settings(max_examples=40)
@given(run=optimizer_runs(), extra=st.booleans())
def test_apply_with_a_wrong_number_of_gradients_changes_nothing(run, extra):
    opt, params = _ready(run)
    grads = _grads(params) + ([np.ones(1)] if extra else [])
    grads = grads if extra else grads[:-1]
    fails_safely(lambda: opt.apply(grads, params), [opt, params], ["gradients", "grads"])


@settings(max_examples=40)
@given(run=optimizer_runs(), value=st.sampled_from([None, "0.5", np.ones(2), [0.1], 1j]))
def test_a_learning_rate_callable_returning_a_non_number_changes_nothing(run, value):
    name, kwargs, dtype, steps, packed, backend = run
    kwargs = {**kwargs, "learning_rate": lambda step: value}
    opt = getattr(optimizers, name)(**kwargs)
    params = _params(dtype)
    fails_safely(lambda: opt.apply(_grads(params), params), [opt, params], ["learning_rate", "learning rate"])
    assert not opt.built


STATE_BREAKS = {
    "iterations": [-1, "3", 1.5, None],
    "learning_rate": ["abc", [0.1, 0.2], np.ones(2)],
    "slots": [None, "x", [[]]],
    "ema": ["x", [None]],
}


@settings(max_examples=60)
@given(run=optimizer_runs(), key=st.sampled_from(sorted(STATE_BREAKS)), data=st.data())
def test_load_state_dict_with_a_bad_field_changes_nothing(run, key, data):
    opt, params = _built(run)
    state = opt.state_dict()
    value = data.draw(st.sampled_from(STATE_BREAKS[key]))
    if key == "learning_rate" and state["learning_rate"] is None:
        return  # a schedule's rate is not stored
    if key == "ema" and state["ema"] is None:
        key, value = "slots", "x"
    bad = dict(state, **{key: copy.deepcopy(value)})
    fails_safely(lambda: opt.load_state_dict(bad), [opt, params], [key])


@settings(max_examples=20)
@given(run=optimizer_runs(), shape_wrong=st.booleans())
def test_load_state_dict_with_a_wrong_slot_changes_nothing(run, shape_wrong):
    opt, params = _built(run)
    state = opt.state_dict()
    slot = next(iter(state["slots"][0]))
    wrong = state["slots"][0][slot]
    state["slots"][0][slot] = (np.ones(wrong.size + 1, wrong.dtype) if shape_wrong
                               else list(wrong.reshape(-1)))
    fails_safely(lambda: opt.load_state_dict(state), [opt, params], ["slots", slot])


@pytest.mark.parametrize("state", [None, "state", [1, 2]])
def test_load_state_dict_of_a_non_dict_changes_nothing(state):
    opt = optimizers.Adam(0.1)
    params = _params(np.float32)
    opt.build(params)
    fails_safely(lambda: opt.load_state_dict(state), [opt, params], ["state"])


@pytest.mark.parametrize("names, where", [(["a"], "names"), (None, "params[1]")])
def test_build_with_bad_arguments_leaves_the_optimizer_unbuilt(names, where):
    opt = optimizers.SGD(0.1)
    params = _params(np.float32)
    if names is None:
        params[1] = params[1].astype(np.int32)
    fails_safely(lambda: opt.build(params, names), [opt, params], [where, "names"])
    assert not opt.built


# --- schedules, clipping, callbacks -------------------------------------------------------

SCHEDULES = [
    schedules.ExponentialDecay(0.1, 10, 0.5),
    schedules.CosineDecay(0.1, 100, warmup_target=0.2, warmup_steps=10),
    schedules.PiecewiseConstantDecay([10, 20], [0.1, 0.01, 0.001]),
    schedules.PolynomialDecay(0.1, 50, cycle=True),
    schedules.WarmupCosineDecay(0.1, 10, 100),
]


@settings(max_examples=40)
@given(schedule=st.sampled_from(SCHEDULES),
       step=st.sampled_from(["3", None, 2**64, -(2**70), [1, "a"], 1j, np.array(["x"])]))
def test_a_schedule_called_with_a_bad_step_changes_nothing(schedule, step):
    fails_safely(lambda: schedule(step), [schedule], ["step"])


CLIPS = [(clipping.clip_by_value, "clipvalue"), (clipping.clip_by_norm, "clipnorm"),
         (clipping.clip_by_global_norm, "global_clipnorm")]


@settings(max_examples=40)
@given(clip=st.sampled_from(CLIPS), bad=st.sampled_from(["bare array", "str", "list of str", "int array"]))
def test_clipping_bad_gradients_changes_nothing(clip, bad):
    function, _ = clip
    grads = [np.ones(3, np.float32), np.full((2, 2), 2.0, np.float32)]
    if bad == "bare array":
        arg = grads[0]
    elif bad == "str":
        arg = "g"
    elif bad == "list of str":
        arg = [grads[0], "g"]
    else:
        arg = [grads[0], np.ones(4, np.int32)]
    fails_safely(lambda: function(arg, 1.0), [grads], ["grads"])


@settings(max_examples=40)
@given(clip=st.sampled_from(CLIPS), value=st.sampled_from([None, "1.0", [1.0], np.ones(2)]))
def test_clipping_with_a_bad_threshold_changes_nothing(clip, value):
    function, name = clip
    grads = [np.ones(3, np.float32)]
    fails_safely(lambda: function(grads, value), [grads], [name])


class _Model:
    """What the callbacks need: an optimizer and weights to snapshot and restore."""

    def __init__(self):
        self.optimizer = optimizers.SGD(0.1)
        self.weights = [np.ones(3)]
        self.stop_training = False

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        for w, new in zip(self.weights, weights):
            w[...] = new


def _callbacks():
    return [callbacks.EarlyStopping(patience=1, restore_best_weights=True),
            callbacks.ReduceLROnPlateau(patience=1),
            callbacks.EarlyStopping(monitor="val_accuracy", mode="max")]


@settings(max_examples=40)
@given(which=st.integers(0, 2), epochs=st.integers(0, 3),
       value=st.sampled_from(["0.5", [0.5], np.ones(2), {"x": 1}]))  # None: a missing metric (Keras warns)
def test_a_callback_given_a_bad_metric_changes_nothing(which, epochs, value):
    callback = _callbacks()[which]
    model = _Model()
    callback.set_model(model) if hasattr(callback, "set_model") else setattr(callback, "model", model)
    callback.on_train_begin({})
    for epoch in range(epochs):
        callback.on_epoch_end(epoch, {"val_loss": 1.0 - epoch * 0.1, "val_accuracy": epoch * 0.1})
    key = callback.monitor
    fails_safely(lambda: callback.on_epoch_end(epochs, {key: value}), [callback, model], [key])


# --- layers and fit -----------------------------------------------------------------------

def _layers():
    return [layers.Dropout(0.5, seed=1), layers.BatchNormalization(), layers.LayerNormalization(),
            nn.Dense(3, seed=1), nn.ReLU()]


X_BREAKS = ["list", "int array", "str", "None"]
DY_BREAKS = ["wrong shape", "float16", "list", "int array", "None"]


def _broken(kind, like):
    return {"list": like.tolist(), "int array": like.astype(np.int32), "str": "x", "None": None,
            "wrong shape": np.ones(like.shape[:-1] + (like.shape[-1] + 1,), like.dtype),
            "float16": like.astype(np.float16)}[kind]


@settings(max_examples=60)
@given(which=st.integers(0, 4), kind=st.sampled_from(X_BREAKS), training=st.booleans(), warm=st.booleans())
def test_a_layer_called_with_a_bad_input_changes_nothing(which, kind, training, warm):
    layer = _layers()[which]
    x = np.random.default_rng(0).standard_normal((4, 5))
    if warm:
        layer(x, training=True)
    fails_safely(lambda: layer(_broken(kind, x), training=training), [layer, x], ["x", "inputs"])


@settings(max_examples=60)
@given(which=st.integers(0, 4), kind=st.sampled_from(DY_BREAKS))
def test_a_layer_backward_with_a_bad_dy_changes_nothing(which, kind):
    layer = _layers()[which]
    x = np.random.default_rng(0).standard_normal((4, 5))
    y = layer(x, training=True)
    fails_safely(lambda: layer.backward(_broken(kind, y)), [layer, x, y], ["dy"])


FIT_BREAKS = {
    "y rows": lambda x, y: dict(x=x, y=y[:1]),
    "x rows": lambda x, y: dict(x=x[:8], y=y),
    "x list of str": lambda x, y: dict(x=[["a"] * x.shape[1]] * len(x), y=y),
    "validation_split leaves nothing": lambda x, y: dict(x=x, y=y, validation_split=1.0),
    "validation_data rows": lambda x, y: dict(x=x, y=y, validation_data=(x[:3], y[:2])),
}


@settings(max_examples=25)
@given(kind=st.sampled_from(sorted(FIT_BREAKS)), warm=st.booleans())
def test_fit_with_bad_data_changes_nothing(kind, warm):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((10, 4)), rng.standard_normal((10, 1))
    model = nn.Sequential([nn.Dense(3, seed=1), nn.ReLU(), nn.Dense(1, seed=2)])
    model.compile(optimizers.Adam(0.01), nn.MeanSquaredError())
    if warm:
        model.fit(x, y, epochs=1, verbose=0, shuffle=False)
    names = ["x", "y", "validation_split", "validation_data", "sample", "cardinality"]
    fails_safely(lambda: model.fit(**FIT_BREAKS[kind](x, y), epochs=1, verbose=0, shuffle=False),
                 [model, x, y], names)


# --- the property's own checks can fail ---------------------------------------------------

def test_a_call_that_changes_state_before_raising_is_caught():
    """The fingerprint sees one changed bit in a nested array, and a bare error message."""
    opt = optimizers.SGD(0.1, momentum=0.9)
    w = np.ones(3)
    opt.apply([np.ones(3)], [w])

    def writes_then_raises():
        opt._slots[0]["m"][1] = np.nextafter(opt._slots[0]["m"][1], 0)
        raise ValueError("grads[0] is bad")

    with pytest.raises(AssertionError, match="state changed"):
        fails_safely(writes_then_raises, [opt, w], ["grads[0]"])
    with pytest.raises(AssertionError, match="names none of"):
        fails_safely(lambda: (_ for _ in ()).throw(TypeError("bad")), [opt, w], ["grads[0]"])
    with pytest.raises(pytest.fail.Exception):
        fails_safely(lambda: None, [opt, w], ["grads[0]"])  # nothing raised
