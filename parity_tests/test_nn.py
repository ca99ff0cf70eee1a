"""scratchopt.nn against Keras: one training step, and the lesson's whole comparison.

float64 is exact: the loss, every gradient and every weight after the step have Keras's
bits, and the lesson's 5 optimizers give the same per-epoch losses. That holds where
``numerics.matmul`` reproduces the order in which TF's float64 matmul sums: layers whose
output widths are multiples of 8, or a single column, with batches of 2 rows or more
(``test_matmul_float64_is_tf_to_the_bit`` sweeps the shapes; a batch of one row is not
reproduced). The drawn networks stay there. float32 goes through oneDNN's FMA matmul in
Keras, which we do not reproduce; the bounds below were measured and are stated with the
measurement.
"""

import re

import numpy as np
import pytest
from conftest import scaled
from hypothesis import example, given, settings
from hypothesis import strategies as st

from scratchopt import nn, optimizers, regularizers
from scratchopt.callbacks import EarlyStopping
from scratchopt.tools.demos import optimizers as lesson
from scratchopt.tools.keras_reference import keras_optimizer
from scratchopt.tools.parity import same_bits

WIDTHS = st.sampled_from([8, 16, 32, 64])
BATCHES = st.one_of(st.sampled_from([8, 16, 24, 32, 40, 64]), st.integers(2, 64))


@st.composite
def networks(draw):
    return {
        "batch": draw(BATCHES), "features": draw(st.integers(1, 16)), "hidden": draw(WIDTHS),
        "out": draw(st.sampled_from([1, 8, 16])), "relu": draw(st.booleans()),
        "l2": draw(st.sampled_from([None, 0.01, 0.5])),
        "optimizer": draw(st.sampled_from(["SGD", "Adam", "RMSprop"])),
    }


def build_both(keras, net, dtype):
    reg = (lambda: keras.regularizers.L2(net["l2"])) if net["l2"] else (lambda: None)
    km = keras.Sequential([keras.Input((net["features"],), dtype=dtype),
                           keras.layers.Dense(net["hidden"], activation="relu" if net["relu"] else None,
                                              kernel_regularizer=reg(), dtype=dtype),
                           keras.layers.Dense(net["out"], dtype=dtype)])
    ours = nn.Sequential([
        nn.Dense(net["hidden"], "relu" if net["relu"] else None, dtype=dtype,
                 kernel_regularizer=regularizers.L2(net["l2"]) if net["l2"] else None),
        nn.Dense(net["out"], dtype=dtype)])
    ours(np.zeros((1, net["features"]), dtype))
    ours.set_weights([w for w in km.get_weights()])
    return km, ours


def keras_step(tf, km, x, y):
    with tf.GradientTape() as tape:
        y_pred = km(x, training=True)
        loss = km.compute_loss(x=x, y=y, y_pred=y_pred)
    grads = tape.gradient(loss, km.trainable_weights)
    return loss.numpy(), [g.numpy() for g in grads]


def one_step(tf, net, dtype, seed, with_inputs=False):
    import keras

    previous = keras.config.floatx()
    keras.config.set_floatx(dtype)
    try:
        keras.utils.set_random_seed(seed)
        km, ours = build_both(keras, net, dtype)
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((net["batch"], net["features"])).astype(dtype)
        y = rng.standard_normal((net["batch"], net["out"])).astype(dtype)
        opt = getattr(optimizers, net["optimizer"])(learning_rate=0.01)
        km.compile(optimizer=keras_optimizer(opt), loss="mse")
        ours.compile(opt, nn.MeanSquaredError())
        start = km.get_weights()
        loss, grads = keras_step(tf, km, x, y)
        km.optimizer.apply(grads, km.trainable_weights)
        our_loss = ours.train_step(x, y)
        our_grads = [layer.grads[k] for layer in ours.layers for k in layer.params]
        steps = (our_loss, loss), list(zip(our_grads, grads)), list(zip(ours.get_weights(), km.get_weights()))
        return (*steps, (x, y, start)) if with_inputs else steps
    finally:
        keras.config.set_floatx(previous)


# Found by the thorough profile: a batch of 8 through a one-unit layer on 8 hidden units is a
# (8, 8) @ (8, 1) product, which Eigen computes coefficient by coefficient (8 + 8 + 1 < 20),
# one term at a time, not in GEMV's 4 lanes.
WIDTH_ONE = {"batch": 8, "features": 1, "hidden": 8, "out": 1, "relu": False, "l2": None, "optimizer": "SGD"}


@settings(max_examples=scaled(25))
@given(net=networks(), seed=st.integers(0, 2**16))
@example(net=WIDTH_ONE, seed=1)
@example(net=WIDTH_ONE, seed=7)
@example(net={**WIDTH_ONE, "batch": 9, "hidden": 16}, seed=0)  # GEMV with an odd last row
@example(net={**WIDTH_ONE, "batch": 2, "out": 8, "relu": True}, seed=1)  # a kernel gradient of -0
def test_training_step_float64_is_keras_to_the_bit(tf, net, seed):
    (loss, keras_loss), grads, weights = one_step(tf, net, "float64", seed)
    assert same_bits(loss, keras_loss), (loss, keras_loss)
    for i, (a, b) in enumerate(grads):
        assert same_bits(a, b), f"gradient {i}: max diff {np.max(np.abs(a - b))}"
    for i, (a, b) in enumerate(weights):
        assert same_bits(a, b), f"weight {i} after the step"



@pytest.mark.parametrize("transpose_a", [False, True], ids=["a", "a.T"])
@pytest.mark.parametrize("transpose_b", [False, True], ids=["b", "b.T"])
def test_matmul_float64_is_tf_to_the_bit(tf, transpose_a, transpose_b):
    """Every shape m x k times k x n, m and k up to 24, n of 1 to 9, 12, 13, 16 and 17:
    ``numerics.matmul`` has ``tf.matmul``'s bits, each of Eigen's paths included (the lazy
    product below m + k + n = 20, GEMV's row blocks and its odd last row, the contraction's
    8-, 4-, 2- and 1-wide column panels and its leftover rows), and the sign
    of a zero sum (a sum of -0s is -0 in the lazy product, +0 elsewhere). Not
    reproduced, and skipped: a single row times a transposed ``b`` with m + k + n >= 20
    (Eigen's row-vector kernels; documented in ``numerics/matmul.py``)."""
    from scratchopt.numerics.matmul import matmul

    rng = np.random.default_rng(0)
    for m in range(1, 25):
        for k in range(1, 25):
            for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 16, 17):
                if m == 1 and transpose_b and m + k + n >= 20:
                    continue
                a = rng.standard_normal((k, m) if transpose_a else (m, k)) * rng.uniform(0.1, 10)
                b = rng.standard_normal((n, k) if transpose_b else (k, n))
                op_a, op_b = (a.T if transpose_a else a), (b.T if transpose_b else b)
                op_a[0], op_b[:, 0] = 0.0, -abs(op_b[:, 0])  # output [0, 0] sums -0s: -0 or +0
                expected = tf.linalg.matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b).numpy()
                assert same_bits(matmul(a, b, transpose_a, transpose_b), expected), (m, k, n)

@pytest.mark.parametrize("shape", [(5, 600, 7), (9, 1100, 13), (6, 1008, 3), (12, 2016, 10), (3, 700, 1)], ids=str)
def test_matmul_float64_sums_a_long_depth_in_eigens_blocks(tf, shape):
    """Past Eigen's depth block ``kc`` (about 500 terms with a 48 KiB L1, 336 with 32 KiB)
    each block's sum is added to the output in turn (``matmul._depth_block``)."""
    from scratchopt.numerics.matmul import matmul

    m, k, n = shape
    rng = np.random.default_rng(1)
    a = rng.standard_normal((m, k)) * np.exp(rng.uniform(-8, 8, (m, k)))
    b = rng.standard_normal((k, n))
    assert same_bits(matmul(a, b), tf.linalg.matmul(a, b).numpy())


def term_scales(net, x, y, weights):
    """Each gradient entry's scale: the same step on absolute values, in float64.

    A float32 sum is off by a few epsilons of the sum of its terms' magnitudes, whatever
    its value: an entry that is a cancelling sum (a bias gradient over the batch) can be
    tiny while its terms are not, and oneDNN's rounding sits at the terms' scale. So each
    entry is compared with ``S`` = its value computed from |x|, |y| and |W| (every term
    counted positive, the ReLU mask kept), which bounds every partial sum on the way.
    """
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    w1, b1, w2, b2 = (w.astype(np.float64) for w in weights)
    mask = (x64 @ w1 + b1 > 0) if net["relu"] else np.ones((len(x), w1.shape[1]))
    h = (np.abs(x64) @ np.abs(w1) + np.abs(b1)) * mask
    p = h @ np.abs(w2) + np.abs(b2)
    d2 = 2 * (p + np.abs(y64)) / y.size
    dh = (d2 @ np.abs(w2).T) * mask
    decay = 2 * net["l2"] * np.abs(w1) if net["l2"] else 0.0
    return [np.abs(x64).T @ dh + decay, dh.sum(0), h.T @ d2, d2.sum(0)]


def f32_errors(tf, net, seed):
    """``(loss error / loss, [max over entries of |ours - keras| / S])`` for one network, in
    float32 epsilons: what the bounds below are measured on."""
    (loss, keras_loss), grads, _, (x, y, start) = one_step(tf, net, "float32", seed, with_inputs=True)
    eps = float(np.finfo(np.float32).eps)
    loss_error = abs(float(loss) - float(keras_loss)) / abs(float(keras_loss)) / eps
    ratios = []
    for (a, b), s in zip(grads, term_scales(net, x, y, start)):
        diff = np.abs(a.astype(np.float64) - b)
        # S = 0 (no term at all, as under a dead ReLU column): both must be exactly 0.
        ratio = np.divide(diff, eps * s, out=np.where(diff == 0, 0.0, np.inf), where=s > 0)
        ratios.append(float(np.max(ratio)))
    return loss_error, ratios


# Measured with ``python parity_tests/measure_nn_f32.py 300``, twice (300 networks each,
# drawn by this test's strategy with random seeds; 2-core AMD EPYC, oneDNN's kernels for that
# CPU): the largest loss difference was 1.87 and 1.96 float32 epsilons of the loss, the
# largest gradient difference 1.00 and 1.13 epsilons of its entry's term scale S
# (``term_scales``). Bounds: 4 epsilons for the loss (as before: the old strategy's batches of
# 8 or more measured 1.2), 4 epsilons of S for every gradient entry (3.5x the largest
# measured, for CPUs whose oneDNN kernels block the sums differently). Before, gradients were
# bounded by 4e-5 of the tensor's largest value, which a cancelling bias gradient broke once
# CI drew fresh examples on every commit (batch 40, 6 features, 32 hidden, 1 output, seed 6:
# 1.49e-8 against 1.22e-8 allowed).
F32_BOUND = 4 * float(np.finfo(np.float32).eps)
F32_GRADIENT_EPSILONS = 4


@settings(max_examples=scaled(15))
@given(net=networks(), seed=st.integers(0, 2**16))
@example(net={"batch": 40, "features": 6, "hidden": 32, "out": 1, "relu": False, "l2": None,
              "optimizer": "SGD"}, seed=6)  # the cancelling bias gradient CI found
def test_training_step_float32_within_the_measured_bound(tf, net, seed):
    loss_error, ratios = f32_errors(tf, net, seed)
    assert loss_error <= F32_BOUND / float(np.finfo(np.float32).eps)
    for i, ratio in enumerate(ratios):
        assert ratio <= F32_GRADIENT_EPSILONS, f"gradient {i}: {ratio:.3g} epsilons of its term scale"


def test_the_term_scale_bound_can_fail(tf):
    """A gradient off by one part in 1e4 (a wrong rounding somewhere) is far outside the bound."""
    net = {"batch": 16, "features": 4, "hidden": 8, "out": 1, "relu": True, "l2": None, "optimizer": "SGD"}
    (_, _), grads, _, (x, y, start) = one_step(tf, net, "float32", 3, with_inputs=True)
    (a, b), s = grads[0], term_scales(net, x, y, start)[0]
    wrong = a * np.float32(1 + 1e-4)
    assert np.max(np.abs(wrong.astype(np.float64) - b) / (float(np.finfo(np.float32).eps) * s)) > F32_GRADIENT_EPSILONS


# --- the lesson's experiment --------------------------------------------------------------

LESSON_EPOCHS = scaled(4)


@pytest.mark.parametrize("name", list(lesson.OPTIMIZERS))
def test_lesson_comparison_float64_matches_keras_every_epoch(tf, name):
    ours, theirs = lesson.compare(name, epochs=LESSON_EPOCHS, dtype="float64")
    assert ours["loss"] == theirs["loss"]
    assert ours["val_loss"] == theirs["val_loss"]


@pytest.mark.parametrize("name", list(lesson.OTHER_OPTIMIZERS))
def test_demo_all_s_optimizers_train_the_lesson_model_as_keras_fit_does(tf, name):
    """``scratchopt demo optimizers --all`` in float64, one epoch each: the same per-epoch
    losses as Keras's ``model.fit`` (LossScaleOptimizer: fit differentiates the scaled loss)."""
    ours, theirs = lesson.compare(name, epochs=1, dtype="float64")
    for key in ("loss", "val_loss"):  # Muon too: its float64 matrix products follow Eigen's order
        assert ours[key] == theirs[key], key


@pytest.mark.parametrize("factor", [128.0, 3.0])
def test_fit_scales_the_gradients_by_the_optimizers_loss_scale_factor(tf, monkeypatch, factor):
    """Keras's fit differentiates ``optimizer.scale_loss(loss)`` and ``apply`` divides by the
    factor: a power of two gives Keras's bits; 3.0 is multiplied in at another place of the
    backward pass (TF's first op, ours the last), so it is held to a rounding or two."""
    monkeypatch.setitem(lesson.OTHER_OPTIMIZERS, "scaled Adam", ("Adam", {"learning_rate": 1e-3,
                                                                          "loss_scale_factor": factor}))
    monkeypatch.setitem(lesson.EVERY_OPTIMIZER, "scaled Adam", lesson.OTHER_OPTIMIZERS["scaled Adam"])
    ours, theirs = lesson.compare("scaled Adam", epochs=1, dtype="float64")
    plain, _ = lesson.compare("Adam", epochs=1, dtype="float64")
    if factor == 128.0:
        assert ours == {k: theirs[k] for k in ours}
    for a, b in zip(ours["val_loss"], theirs["val_loss"]):
        assert abs(a - b) <= 1e-12 * abs(b)
    assert abs(ours["val_loss"][0] - plain["val_loss"][0]) < 1e-9  # not divided by the factor twice


# Measured on this project's 2-core AMD EPYC machine (oneDNN picks its kernels by CPU, so
# another CPU may round differently). Over 50 epochs the largest per-epoch loss difference,
# relative to the loss, was 1.0e-6 (SGD), 8.5e-7 (SGD + momentum), 3.4e-7 (Adam), 3.6e-7
# (AdamW) and 0.33 (RMSprop: its step divides by a small sqrt(v), which amplifies the
# last-bit matmul differences). Over the first 4 epochs: 8.9e-8 (SGD), 4.2e-7 (SGD +
# momentum), 1.3e-7 (Adam), 1.7e-7 (AdamW), 8.0e-8 (RMSprop). Bound: 8 float32 epsilons
# (9.5e-7), 2.3x the largest of those.
LESSON_F32_BOUND = 8 * float(np.finfo(np.float32).eps)


@pytest.mark.parametrize("name", list(lesson.OPTIMIZERS))
def test_lesson_comparison_float32_first_epochs_within_the_measured_bound(tf, name):
    ours, theirs = lesson.compare(name, epochs=4, dtype="float32")
    for key in ("loss", "val_loss"):
        for a, b in zip(ours[key], theirs[key]):
            assert abs(a - b) <= LESSON_F32_BOUND * abs(b), (key, a, b)


# --- the training loop itself -------------------------------------------------------------


def test_fit_shuffles_reproducibly_and_stops_early():
    x, y = lesson.lesson_data("float64")
    runs = []
    for _ in range(2):
        model = lesson.lesson_model("float64", seed=1)
        model.compile(optimizers.Adam(1e-3), nn.MeanSquaredError())
        stop = EarlyStopping(monitor="val_loss", patience=0, min_delta=10.0)  # nothing improves by 10
        runs.append(model.fit(x, y, epochs=20, batch_size=32, validation_split=0.2, shuffle=True,
                              callbacks=[stop], verbose=0, seed=7))
    assert runs[0].history == runs[1].history
    assert len(runs[0].epoch) == 2 and stop.stopped_epoch == 1  # epoch 0 never stops (Keras)


def test_fit_validates_its_arguments():
    model = lesson.lesson_model()
    x, y = lesson.lesson_data()
    with pytest.raises(ValueError, match="compile"):
        model.fit(x, y)
    model.compile(optimizers.SGD(), nn.MeanSquaredError())
    with pytest.raises(ValueError, match="validation_split=1.5"):
        model.fit(x, y, validation_split=1.5)
    with pytest.raises(ValueError, match="batch_size=0"):
        model.fit(x, y, batch_size=0)


def test_verbose_prints_a_keras_like_line(capsys):
    x, y = lesson.lesson_data()
    model = lesson.lesson_model(seed=0)
    model.compile(optimizers.SGD(0.01), nn.MeanSquaredError())
    model.fit(x[:100], y[:100], epochs=2, validation_split=0.2, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 2/2" in out and "3/3 - " in out and "loss: " in out and "val_loss: " in out


@settings(max_examples=scaled(10))
@given(batch=st.integers(1, 40), classes=st.integers(2, 9), seed=st.integers(0, 2**16))
def test_softmax_cross_entropy_matches_keras_within_float64_rounding(tf, batch, classes, seed):
    import keras

    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((batch, classes)) * 3
    labels = rng.integers(0, classes, batch)
    onehot = np.eye(classes)[labels]
    variable = tf.Variable(logits)
    with tf.GradientTape() as tape:
        loss = keras.losses.CategoricalCrossentropy(from_logits=True, dtype="float64")(onehot, variable)
    grad = tape.gradient(loss, variable).numpy()
    ours = nn.SoftmaxCrossEntropy()
    # Different exp/log kernels and summation order: a few float64 ULPs of the loss's scale.
    assert ours(labels, logits) == pytest.approx(float(loss), rel=1e-13, abs=1e-14)
    np.testing.assert_allclose(ours.gradient(labels, logits), grad, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ours.gradient(onehot, logits), grad, rtol=1e-12, atol=1e-15)


# --- the layer protocol: dy is checked before anything changes ------------------------------

BAD_DY = [
    (lambda dy: dy[:, :-1], ValueError, "shape"),  # wrong shape
    (lambda dy: dy.T, ValueError, "shape"),
    (lambda dy: dy.astype(np.float32), TypeError, "dtype"),  # the other float dtype
    (lambda dy: dy.astype(np.int64), TypeError, "float32 or float64"),
    (lambda dy: dy.tolist(), TypeError, "NumPy or CuPy"),  # wrong kind
    (lambda dy: 1.0, TypeError, "NumPy or CuPy"),
]


def _trained_once(layer, x):
    """One forward and one backward (so that grads exist): the dy given and the dx returned."""
    y = layer(x, training=True)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    dx = layer.backward(dy)
    return dy, dx


@pytest.mark.parametrize("make", [lambda: nn.Dense(3, "relu", seed=0, dtype="float64",
                                                   kernel_regularizer=regularizers.L2(0.1)),
                                  lambda: nn.Dense(1, seed=0, dtype="float64"), nn.ReLU],
                         ids=["dense-relu", "dense-1", "relu"])
@pytest.mark.parametrize(("bad", "error", "pattern"), BAD_DY, ids=["narrow", "transposed", "float32",
                                                                   "int", "list", "scalar"])
def test_backward_refuses_a_bad_dy_and_changes_nothing(make, bad, error, pattern):
    layer = make()
    x = np.random.default_rng(0).standard_normal((4, 2))
    dy, dx = _trained_once(layer, x)
    params, grads = dict(layer.params), dict(layer.grads)
    values = {k: v.copy() for k, v in params.items()}
    with pytest.raises(error, match=pattern) as caught:
        layer.backward(bad(dy))
    assert "`dy`" in str(caught.value)
    assert layer.grads.keys() == grads.keys() and all(layer.grads[k] is g for k, g in grads.items())
    assert all(layer.params[k] is p and np.array_equal(p, values[k]) for k, p in params.items())
    assert same_bits(layer.backward(dy), dx)  # what backward needs is still the last call's


@pytest.mark.parametrize("layer", [nn.Dense(2), nn.ReLU()], ids=["dense", "relu"])
def test_backward_before_a_call_and_a_bad_input(layer):
    with pytest.raises(RuntimeError, match="forward call first"):
        layer.backward(np.ones((1, 2), np.float32))
    with pytest.raises(TypeError, match="`x` must be a NumPy or CuPy array"):
        layer([[1.0, 2.0]])
    with pytest.raises(TypeError, match="`x` must be a float32 or float64 array"):
        layer(np.ones((1, 2), np.int64))


@pytest.mark.gpu
@pytest.mark.parametrize("make", [lambda: nn.Dense(3, "relu", seed=0), nn.ReLU], ids=["dense", "relu"])
def test_backward_refuses_the_other_array_kind(make):
    import cupy as cp

    for to_layer, to_dy in ((np.asarray, cp.asarray), (cp.asarray, cp.asnumpy)):
        layer = make()
        y = layer(to_layer(np.ones((4, 2), np.float32)), training=True)
        with pytest.raises(TypeError, match="`dy` must be a (NumPy|CuPy) array"):
            layer.backward(to_dy(np.ones(y.shape, np.float32)))
        assert layer.grads == {}


def test_dense_config_round_trips_and_validates():
    dense = nn.Dense(4, "relu", use_bias=False, seed=3, dtype="float64")
    twin = nn.Dense.from_config(dense.get_config())
    x = np.ones((2, 5))
    assert same_bits(dense(x), twin(x))
    assert repr(dense) == "Dense(units=4, activation='relu', use_bias=False, seed=3, dtype='float64')"
    for kwargs, error in [({"units": 0}, ValueError), ({"units": 2.0}, ValueError),
                          ({"units": True}, ValueError), ({"activation": "tanh"}, ValueError),
                          ({"use_bias": 1}, TypeError), ({"dtype": "int32"}, ValueError),
                          ({"seed": 1.5}, TypeError)]:
        name, value = next(iter(kwargs.items()))
        with pytest.raises(error, match=re.escape(f"{name}={value!r}")):
            nn.Dense(**{"units": 2, **kwargs})


def test_dense_seed_draws_the_kernel_as_numpy_does():
    """Non-negative seeds draw as ``default_rng(seed)``; a negative one as its int64 bit pattern."""
    limit = np.sqrt(6.0 / (5 + 3))
    for seed in (0, 7, 2**63 + 5):
        dense = nn.Dense(3, seed=seed)
        dense.build(5)
        expected = np.random.default_rng(seed).uniform(-limit, limit, (5, 3)).astype(np.float32)
        assert same_bits(dense.params["kernel"], expected)
    negative, pattern = nn.Dense(3, seed=-5), nn.Dense(3, seed=2**64 - 5)
    negative.build(5), pattern.build(5)
    assert same_bits(negative.params["kernel"], pattern.params["kernel"])


# --- Sequential with layers of every kind --------------------------------------------------


def test_sequential_trains_after_a_mixing_layer_and_stops_its_backward_there():
    from scratchopt.augment import CutMix, MixUp
    from scratchopt.layers import Dropout

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 2, 2, 1)).astype(np.float32), rng.standard_normal((16, 1)).astype(np.float32)
    for mixing in (MixUp(seed=0), CutMix(seed=0)):
        model = nn.Sequential([mixing, _Flatten(), nn.Dense(1, seed=0), Dropout(0.2, seed=0)])
        model.compile(optimizers.SGD(0.1), nn.MeanSquaredError())
        history = model.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=0)
        assert len(history.history["loss"]) == 2
        model(x, training=True)
        assert model.backward(np.ones((16, 1), np.float32)) is None  # no gradient past the mixing layer
        assert model.layers[2].grads["kernel"].shape == (4, 1)
        assert same_bits(model.predict(x), model.predict(x))  # inference: no mixing, no dropout


class _Scale(nn.Layer):
    """``y = w * x`` with one trained weight (a layer with parameters, written by a user)."""

    def __init__(self):
        super().__init__()
        self.params["w"] = np.ones(1, np.float32)

    def call(self, x, training=False):
        self._last = {"x": x}
        return self.params["w"] * x

    def _backward(self, dy):
        self.grads["w"] = (dy * self._last["x"]).sum(keepdims=True).reshape(1)
        return self.params["w"] * dy


class _Flatten(nn.Layer):
    def call(self, x, training=False):
        self._last = {"shape": x.shape}
        return x.reshape(x.shape[0], -1)

    def _backward(self, dy):
        return dy.reshape(self._last["shape"])


def test_sequential_refuses_a_mixing_layer_above_trained_layers():
    from scratchopt.augment import MixUp

    model = nn.Sequential([_Scale(), MixUp(seed=0), _Flatten(), nn.Dense(1, seed=0)])
    x = np.ones((4, 2, 2, 1), np.float32)
    y = model(x, training=True)
    with pytest.raises(TypeError, match="MixUp"):
        model.backward(np.ones_like(y))
    assert all(layer.grads == {} for layer in model.layers)  # refused before any backward ran
    with pytest.raises(TypeError, match="not differentiable"):
        MixUp().backward(np.ones_like(y))


def test_sequential_takes_only_layers():
    with pytest.raises(TypeError, match=re.escape("layers[1]=")):
        nn.Sequential([nn.ReLU(), lambda x: x])
