"""Issue 12, the layers' side: a failed call changes nothing, and the messages name the argument.

One test per item, named after it: item 7 (backward uses the forward's values), item 8
(``Sequential.fit`` with mismatched rows), item 10 (penalty factors beyond float32), the
misleading messages of the schedules, callbacks and penalties, and the two differences from
Keras's own unit tests (``fit`` with ``use_ema``, ``LayerNormalization`` on another rank).
Each compares with Keras where Keras has an answer.
"""

import copy
import re
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from scratchopt import layers, nn, optimizers, regularizers, schedules
from scratchopt.callbacks import EarlyStopping, ReduceLROnPlateau
from scratchopt.tools.keras_reference import keras_optimizer
from scratchopt.tools.parity import same_bits

RNG = np.random.default_rng(12)


# --- item 7: backward uses the forward's values ----------------------------------------------


def _forward_backward(make, x, dy, training, between=None):
    """dx and the grads of one forward and one backward; ``between(layer, x, y)`` runs in between."""
    layer = make()
    y = layer(x, training=training)
    if between is not None:
        between(layer, x, y)
    dx = layer.backward(dy)
    return dx, {k: g.copy() for k, g in layer.grads.items()}


LAYERS_7 = {
    "BatchNormalization": lambda: layers.BatchNormalization(),
    "BatchNormalization-axis1": lambda: layers.BatchNormalization(axis=1),
    "LayerNormalization": lambda: layers.LayerNormalization(),
    "LayerNormalization-axes": lambda: layers.LayerNormalization(axis=[1, 2]),
    "Dense-relu": lambda: nn.Dense(3, "relu", seed=0, dtype="float64",
                                   kernel_regularizer=regularizers.L2(0.1)),
    "ReLU": nn.ReLU,
}


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("name", list(LAYERS_7))
def test_item7_backward_uses_the_forwards_input(name, training):
    """Changing the input, the output or the layer's own gamma or kernel in place between the
    forward and the backward leaves dx and the gradients as they were: Keras's tape keeps
    the forward's tensors."""
    make = LAYERS_7[name]
    shape = (4, 3) if name.startswith(("Dense", "ReLU")) else (6, 5, 4)
    for dtype in (np.float32, np.float64):
        if name.startswith("Dense") and dtype is np.float32:
            continue
        x = RNG.standard_normal(shape).astype(dtype)
        y = make()(x.copy(), training=training)
        dy = RNG.standard_normal(y.shape).astype(dtype)
        expected_dx, expected_grads = _forward_backward(make, x.copy(), dy, training)

        def scribble(layer, x, y):
            x[...] = RNG.standard_normal(x.shape) * 100  # the caller reuses its buffer,
            if not np.shares_memory(x, y):
                y[...] = RNG.standard_normal(y.shape) * 100  # changes the output in place,
            for p in layer.params.values():  # and something updates the parameters
                p[...] = p * 3 + 1

        dx, grads = _forward_backward(make, x, dy, training, between=scribble)
        assert same_bits(dx, expected_dx), (name, dtype)
        assert grads.keys() == expected_grads.keys()
        for k in grads:
            assert same_bits(grads[k], expected_grads[k]), (name, dtype, k)


def test_item7_dropout_keeps_its_own_copy_of_a_given_mask():
    x, dy = np.ones((2, 4)), np.ones((2, 4))
    keep = np.array([[True, False, True, False], [False, True, True, True]])
    layer = layers.Dropout(0.5, seed=0)
    layer(x, training=True, keep=keep)
    keep[...] = True  # the caller's mask changes after the call
    assert same_bits(layer.backward(dy), np.array([[2.0, 0, 2, 0], [0, 2, 2, 2]]))


def test_item7_what_backward_keeps_costs_one_copy_of_the_input():
    """The copies are of x (one array the size of the input) and of gamma (C values): the
    forward's own temporaries are several such arrays, so the cost stays a fraction."""
    layer = layers.BatchNormalization()
    x = RNG.standard_normal((64, 32))
    layer(x, training=True)
    kept = [v for v in layer._last.values() if isinstance(v, np.ndarray)]
    assert sum(v.size for v in kept) <= x.size + 4 * 32
    assert not any(np.shares_memory(v, x) for v in kept)


# --- item 8: Sequential.fit with mismatched rows ------------------------------------------


def _model(seed=0):
    model = nn.Sequential([nn.Dense(4, "relu", seed=seed, dtype="float64"), nn.Dense(1, seed=seed, dtype="float64")])
    model(np.zeros((1, 3)))  # built: the weights exist, so that "unchanged" means something
    model.compile(optimizers.Adam(0.1), nn.MeanSquaredError())
    return model


FIT_8 = [
    # (x rows, y rows, fit kwargs, pattern)
    (10, 1, {}, r"Data cardinality is ambiguous.*'x' sizes: 10, 'y' sizes: 1"),
    (8, 10, {}, r"Data cardinality is ambiguous.*'x' sizes: 8, 'y' sizes: 10"),
    (1, 1, {"validation_split": 0.5}, r"Training data contains 1 samples.*validation_split=0.5"),
    (10, 10, {"validation_split": 1e-17}, r"Training data contains 10 samples"),
    (0, 0, {}, r"no samples"),
    (10, 10, {"validation_data": (np.ones((8, 3)), np.ones((10, 1)))},
     r"ambiguous in `validation_data`.*'x' sizes: 8, 'y' sizes: 10"),
    (10, 10, {"validation_data": (np.ones((0, 3)), np.ones((0, 1)))}, r"no samples"),
]


@pytest.mark.parametrize(("n_x", "n_y", "kwargs", "pattern"), FIT_8,
                         ids=["10-vs-1", "8-vs-10", "split-leaves-none", "split-leaves-no-validation",
                              "no-rows", "validation-8-vs-10", "validation-no-rows"])
def test_item8_fit_refuses_mismatched_rows_before_anything_changes(n_x, n_y, kwargs, pattern):
    model = _model()
    before = model.get_weights()
    x, y = RNG.standard_normal((n_x, 3)), RNG.standard_normal((n_y, 1))
    with pytest.raises(ValueError, match=pattern):
        model.fit(x, y, epochs=2, batch_size=4, verbose=0, **kwargs)
    assert all(same_bits(a, b) for a, b in zip(model.get_weights(), before))
    assert model.optimizer.iterations == 0 and not model.optimizer.built


def test_item8_evaluate_and_fit_name_what_is_not_an_array():
    model = _model()
    with pytest.raises(ValueError, match="'x' sizes: 3, 'y' sizes: 2"):
        model.evaluate(np.ones((3, 3)), np.ones((2, 1)))
    with pytest.raises(TypeError, match="`y` must be a NumPy or CuPy array"):
        model.fit(np.ones((3, 3)), 1.0, verbose=0)
    with pytest.raises(TypeError, match="`validation_data` must be a tuple"):
        model.fit(np.ones((3, 3)), np.ones((3, 1)), validation_data=np.ones((3, 3)), verbose=0)
    with pytest.raises(ValueError, match="pair"):
        model.fit(np.ones((3, 3)), np.ones((3, 1)), validation_data=(np.ones((3, 3)),), verbose=0)
    with pytest.raises(TypeError, match="`epochs`"):
        model.fit(np.ones((3, 3)), np.ones((3, 1)), epochs=1.5, verbose=0)
    assert model.optimizer.iterations == 0


def test_item8_keras_refuses_the_same_rows(tf):
    """Keras's own words for the same data: what our messages mirror."""
    import keras

    km = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    km.compile(optimizer="sgd", loss="mse")
    for n_x, n_y in ((10, 1), (8, 10)):
        with pytest.raises(ValueError, match="Data cardinality is ambiguous"):
            km.fit(np.ones((n_x, 3)), np.ones((n_y, 1)), verbose=0)
    with pytest.raises(ValueError, match="Training data contains 1 samples"):
        km.fit(np.ones((1, 3)), np.ones((1, 1)), validation_split=0.5, verbose=0)


def test_item8_validation_data_is_the_same_as_the_split_it_replaces():
    x, y = RNG.standard_normal((40, 3)), RNG.standard_normal((40, 1))
    split, given = _model(), _model()
    a = split.fit(x, y, epochs=2, batch_size=8, validation_split=0.25, shuffle=False, verbose=0)
    b = given.fit(x[:30], y[:30], epochs=2, batch_size=8, validation_data=(x[30:], y[30:]), shuffle=False,
                  verbose=0)
    assert a.history == b.history


# --- item 10: penalty factors beyond float32 ----------------------------------------------

PENALTIES_10 = [
    ("l1", lambda v: regularizers.L1(v), "L1"),
    ("l2", lambda v: regularizers.L2(v), "L2"),
    ("l2", lambda v: regularizers.L1L2(l2=v), "L1L2"),
    ("l1", lambda v: regularizers.L1L2(l1=v), "L1L2"),
]


@pytest.mark.parametrize(("name", "make", "keras_name"), PENALTIES_10, ids=["L1", "L2", "L1L2-l2", "L1L2-l1"])
def test_item10_penalty_factor_beyond_float32_is_a_value_error_as_in_keras(tf, name, make, keras_name):
    import keras

    for value in (1e40, np.float64(1e40), 10**40, 3.4028236e38):
        with pytest.raises(ValueError, match=re.escape(f"`{name}` must be within float32's range")):
            make(value)
        with pytest.raises(ValueError, match="out of range"):  # Keras: at construction or first call
            getattr(keras.regularizers, keras_name)(**{name: value})(tf.constant(np.ones(3, np.float32)))
    largest = 3.40282356e38  # rounds to float32's largest value: accepted by both
    make(largest)(np.ones(3, np.float32))
    getattr(keras.regularizers, keras_name)(**{name: largest})(tf.constant(np.ones(3, np.float32)))


# --- misleading messages --------------------------------------------------------------------

STEPS_OUT_OF_RANGE = [2**64, 2**63, -(2**63) - 1, 1e39, -3.5e38, [2**64], [1, 2**63], [1e39]]


@pytest.mark.parametrize("step", STEPS_OUT_OF_RANGE, ids=repr)
def test_misleading_schedule_step_out_of_range_says_so(tf, step):
    import keras

    ours = schedules.ExponentialDecay(0.1, 10, 0.9)
    kind = "int64" if isinstance(step, int) or (isinstance(step, list) and isinstance(step[-1], int)) else "float32"
    with pytest.raises(ValueError, match=rf"`step` must be within {kind}'s range"):
        ours(step)
    with pytest.raises(ValueError, match="out of range|out-of-range"):
        keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)(step)


def test_misleading_schedule_steps_at_the_edges_are_still_taken(tf):
    import keras

    ours, theirs = schedules.ExponentialDecay(0.1, 10, 0.9), keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)
    for step in (2**63 - 1, -(2**63), 3.4028235e38, float("inf"), np.uint64(2**64 - 1)):
        assert same_bits(np.float32(ours(step)), np.asarray(theirs(step))), step
    with pytest.raises(TypeError, match="`step` must be an int, a float"):
        ours("3")


BAD_METRICS = ["0.5", [0.5], np.array([0.5, 0.4]), {"loss": 0.5}, complex(0.5, 1)]


@pytest.mark.parametrize("make", [lambda: EarlyStopping(patience=0, restore_best_weights=True),
                                  lambda: ReduceLROnPlateau(patience=0)], ids=["EarlyStopping", "ReduceLROnPlateau"])
@pytest.mark.parametrize("value", BAD_METRICS, ids=["str", "list", "array", "dict", "complex"])
def test_misleading_callback_metric_that_is_not_a_number(make, value):
    callback = make()
    model = SimpleNamespace(stop_training=False, optimizer=optimizers.SGD(0.1),
                            get_weights=lambda: [np.ones(2)], set_weights=lambda w: None)
    callback.set_model(model)
    callback.on_train_begin()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        callback.on_epoch_end(0, {"val_loss": 1.0})  # one good epoch first: a best to compare with
    state = copy.deepcopy({k: v for k, v in vars(callback).items() if k != "model"})
    logs = {"val_loss": value}
    with pytest.raises(TypeError, match=re.escape("`logs['val_loss']` must be a number")):
        callback.on_epoch_end(1, logs)
    assert list(logs) == ["val_loss"]  # ReduceLROnPlateau adds "learning_rate" only when it works
    after = {k: v for k, v in vars(callback).items() if k != "model"}
    assert after.keys() == state.keys()
    for k in state:
        assert _same_value(after[k], state[k]), k
    assert not model.stop_training and model.optimizer.learning_rate == float(np.float32(0.1))


def _same_value(a, b):
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(_same_value, a, b))
    if isinstance(a, np.ndarray):
        return same_bits(a, b)
    return a == b or a is b


def test_misleading_callback_metric_numbers_keras_takes_are_taken():
    for value in (0.5, 1, np.float32(0.5), np.float64(0.25), np.array(0.5), np.array([0.5]), True):
        for callback in (EarlyStopping(monitor="loss"), ReduceLROnPlateau(monitor="loss")):
            callback.set_model(SimpleNamespace(stop_training=False, optimizer=optimizers.SGD(0.1)))
            callback.on_train_begin()
            callback.on_epoch_end(0, {"loss": value})
            assert callback.best is value


def test_misleading_l2_of_a_list_says_to_convert_it():
    for penalty in (regularizers.L2(), regularizers.L1(), regularizers.L1L2(0.1, 0.1)):
        for w in ([1.0, 2.0], 3.0, None):
            for call in (penalty, penalty.gradient):
                with pytest.raises(TypeError, match=re.escape("`w` must be a float32 or float64 NumPy or CuPy "
                                                              "array")) as caught:
                    call(w)
                assert "np.asarray" in str(caught.value) and f"w={w!r}" in str(caught.value)
    with pytest.raises(TypeError, match="float16"):
        regularizers.L2()(np.ones(2, np.float16))


# --- differences from Keras's own unit tests ------------------------------------------------


def test_keras_difference_fit_with_use_ema_ends_on_the_moving_averages(tf):
    """Keras's fit ends with ``optimizer.finalize_variable_values``: with ``use_ema`` the
    weights are the moving averages. Float64, both fits from the same weights: the history
    (validation on the raw weights, as Keras) and the final weights have Keras's bits."""
    import keras
    from test_nn import build_both

    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        net = {"features": 3, "hidden": 8, "out": 1, "relu": True, "l2": None}
        keras.utils.set_random_seed(0)
        km, ours = build_both(keras, net, "float64")
        x, y = RNG.standard_normal((40, 3)), RNG.standard_normal((40, 1))
        opt = optimizers.Adam(0.01, use_ema=True, ema_momentum=0.9)
        km.compile(optimizer=keras_optimizer(opt), loss="mse", run_eagerly=True)
        ours.compile(opt, nn.MeanSquaredError())
        theirs = km.fit(x, y, epochs=3, batch_size=8, validation_split=0.25, shuffle=False, verbose=0)
        history = ours.fit(x, y, epochs=3, batch_size=8, validation_split=0.25, shuffle=False, verbose=0)
    finally:
        keras.config.set_floatx(previous)
    assert history.history == theirs.history
    for a, b in zip(ours.get_weights(), km.get_weights()):
        assert same_bits(a, b)
    for w, avg in zip(ours.params, opt._averages):
        assert same_bits(w, avg)  # the weights are the averages


def test_keras_difference_fit_with_use_ema_and_zero_epochs_changes_nothing():
    model = _model()
    model.compile(optimizers.SGD(0.1, use_ema=True), nn.MeanSquaredError())
    before = model.get_weights()
    model.fit(np.ones((4, 3)), np.ones((4, 1)), epochs=0, verbose=0)
    assert all(same_bits(a, b) for a, b in zip(model.get_weights(), before))


@pytest.mark.parametrize(("axis", "built", "later"), [
    (-1, (2, 3, 4), (2, 5, 3, 4)), (-1, (2, 3, 4), (6, 4)), (1, (2, 3, 4), (2, 3, 5, 6)),
    (1, (2, 3, 4), (2, 3)), ([1, 2], (2, 3, 4), (2, 3, 4, 5)), ([-2, -1], (2, 3, 4), (5, 2, 3, 4)),
], ids=str)
def test_keras_difference_layer_normalization_takes_another_rank(tf, axis, built, later):
    """Built at one rank, called at another with the normalized sizes unchanged: Keras takes
    it (``axis`` indexes each input anew), and so do we, with Keras's bits (float64)."""
    import keras
    from test_layers import keras_call

    gamma = RNG.standard_normal(tuple(built[a] for a in sorted(np.atleast_1d(axis))))
    beta = RNG.standard_normal(gamma.shape)
    ours = layers.LayerNormalization(axis=axis)
    ours(RNG.standard_normal(built))
    ours.gamma[...], ours.beta[...] = gamma, beta
    theirs = keras.layers.LayerNormalization(axis=axis, dtype="float64")
    theirs.build(built)
    theirs.gamma.assign(gamma), theirs.beta.assign(beta)
    x, dy = RNG.standard_normal(later), RNG.standard_normal(later)
    y, dx, grads = keras_call(tf, theirs, x, dy, training=True)
    assert same_bits(ours(x), y)
    assert same_bits(ours.backward(dy), dx)
    for k in ("gamma", "beta"):
        assert same_bits(ours.grads[k], grads[k]), k


def test_keras_difference_layer_normalization_other_sizes_are_refused_before_anything_changes():
    layer = layers.LayerNormalization(axis=[1, 2])
    x, dy = RNG.standard_normal((2, 3, 4)), RNG.standard_normal((2, 3, 4))
    layer(x)
    gamma, dx = layer.gamma.copy(), layer.backward(dy)
    for shape in ((2, 4, 3), (2, 3, 5), (2, 3)):  # Keras: (2, 4, 3) scrambles gamma; the others fail
        with pytest.raises(ValueError, match="built for sizes|out of bounds"):
            layer(np.ones(shape))
    assert same_bits(layer.gamma, gamma)
    assert same_bits(layer.backward(dy), dx)  # the last call is still the good one
