"""Softmax, Keras's categorical cross-entropies and accuracy metrics, against Keras 3.15.1 / TF 2.21.

Softmax and the cross-entropies use ``exp``/``log``, and ours are NumPy's, not Eigen's: they are
within a bound of Keras, measured by ``parity_tests/measure_softmax.py`` (errors in epsilons of
each value's term scale, ``errors()`` below), not bit-exact. The metrics are exact.

Also checked: Keras's softmax shortcut (a cross-entropy of a softmax's output is computed from
the softmax's logits, in eager and graph mode alike) and what our layers and losses do with it.
"""

import numpy as np
import pytest
from conftest import scaled
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchopt import nn
from scratchopt.nn import losses, metrics
from scratchopt.nn.activations import Activation, backward_from_logits, softmax_logits
from scratchopt.nn.dense import Dense
from scratchopt.numerics import reduce_sum_over
from scratchopt.tools.parity import same_bits

#: The bounds, in epsilons of the term scale (``errors``): the largest error
#: ``python parity_tests/measure_softmax.py 3000`` found for each quantity (float32, float64),
#: with about 30% headroom, rounded up. Measured 2026-11-30: softmax y 4.71, 3.13; softmax dx
#: 7.17, 3.94; cce loss 1.64, 1.71; cce grad 2.63, 0 (float64: exact); cce_logits loss 1.44,
#: 1.31; cce_logits grad 3.32, 2.67; scce loss 0.83, 0.96; scce grad 4.18, 3.82; scce_logits
#: loss 1.44, 1.17; scce_logits grad 3.32, 2.67 (the table is in docs/pooling.md).
BOUNDS = {
    "softmax y": 6, "softmax dx": 10,
    "cce loss": 3, "cce grad": 4,
    "cce_logits loss": 3, "cce_logits grad": 5,
    "scce loss": 3, "scce grad": 6,
    "scce_logits loss": 3, "scce_logits grad": 5,
}

CASES = ("softmax", "cce", "cce_logits", "scce", "scce_logits")


def draw(seed, dtype):
    """A random batch: logits (n, k) at one of three scales, labels, dy."""
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 33)), int(rng.integers(2, 13))
    z = (rng.standard_normal((n, k)) * rng.choice([0.1, 1.0, 5.0, 30.0])).astype(dtype)
    labels = rng.integers(0, k, n)
    return z, labels, rng.standard_normal((n, k)).astype(dtype)


def ratio(ours, theirs, scale, dtype):
    """The largest ``|ours - theirs| / (eps * scale)`` (0 where both agree exactly).

    The scale is at least ``tiny / eps``: an error no larger than the smallest normal number
    (a value flushed to zero on one side, not on the other) counts as at most 1 epsilon."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    diff = np.abs(ours - theirs)
    eps, tiny = np.finfo(dtype).eps, np.finfo(dtype).tiny
    return float(np.max(np.where(diff == 0, 0.0, diff / (eps * np.maximum(scale, tiny / eps)))))


def keras_pair(tf, fn, x):
    """Keras's value of ``fn(x)`` and the tape's gradient (of the scalar, or with ``dy``)."""
    variable = tf.Variable(x)
    with tf.GradientTape() as tape:
        value = fn(variable)
    return value.numpy(), tape.gradient(value, variable).numpy()


def errors(tf, case, dtype, seed):
    """``{quantity: error in epsilons of its term scale}`` for one drawn batch of ``case``.

    Term scales: softmax y: ``|y|``; softmax dx: ``(|dy| + sum |dy y|) y``; a loss: the loss
    (all its terms are positive) plus 1 (a log of a value near 1, ``log S`` or ``log p``,
    turns that value's rounding, eps, into an absolute error eps), plus, for sparse labels
    from probabilities, the mean of
    ``|log p_label| + |max log p| + log sum p`` (Keras feeds ``log p`` to the from-logits
    kernel, which subtracts ``max log p`` from it); a from-logits gradient: ``g (p + onehot)``;
    a gradient from probabilities: the same formula on absolute values (``losses.py``'s box).
    """
    import keras

    previous = keras.config.floatx()
    keras.config.set_floatx(np.dtype(dtype).name)
    try:
        return _errors(tf, keras, case, dtype, seed)
    finally:
        keras.config.set_floatx(previous)


def _errors(tf, keras, case, dtype, seed):
    z, labels, dy = draw(seed, dtype)
    n, k = z.shape
    onehot = np.eye(k, dtype=dtype)[labels]
    g = 1.0 / n
    if case == "softmax":
        layer = Activation("softmax")
        y = layer(z)
        dx = layer.backward(dy)
        zv = tf.Variable(z)
        with tf.GradientTape() as tape:
            ky = keras.layers.Activation("softmax", dtype=np.dtype(dtype).name)(zv)
        kdx = tape.gradient(ky, zv, output_gradients=tf.constant(dy)).numpy()
        ky = ky.numpy()
        y64 = np.abs(ky.astype(np.float64))
        term = (np.abs(dy) + np.sum(np.abs(dy * y64), -1, keepdims=True)) * y64
        return {"softmax y": ratio(y, ky, y64, dtype), "softmax dx": ratio(dx, kdx, term, dtype)}
    p = nn.activations.softmax(z)
    p64 = p.astype(np.float64)
    sparse = case.startswith("scce")
    from_logits = case.endswith("logits")
    y_true = labels if sparse else onehot
    ours = (losses.SparseCategoricalCrossentropy if sparse else losses.CategoricalCrossentropy)(from_logits)
    theirs = (keras.losses.SparseCategoricalCrossentropy if sparse
              else keras.losses.CategoricalCrossentropy)(from_logits=from_logits)
    x = z if from_logits else p
    kl, kg = keras_pair(tf, lambda v: theirs(y_true, v), x)
    loss, grad = ours(y_true, x), ours.gradient(y_true, x)
    assert loss.dtype == dtype and grad.dtype == dtype and grad.shape == x.shape
    if from_logits:
        term = g * (p64 + onehot)
    elif sparse:  # through log(clip(p)): g (softmax(log p) + onehot) / p, where exp(log p)
        q = np.clip(p64, 1e-7, 1 - 1e-7)  # carries log's error times |log p| (up to 16)
        s = np.log(q) - np.log(q).max(-1, keepdims=True)
        term = g * (q / q.sum(-1, keepdims=True) * (1 + np.abs(s)) + onehot) / q
    else:  # through clip(p / sum p) and the division: |dp| / r + sum |dp| q / r^2
        r = p64.sum(-1, keepdims=True)
        q = np.clip(p64 / r, 1e-7, 1 - 1e-7)
        dp = g * onehot / q
        term = dp / r + np.sum(dp * p64, -1, keepdims=True) / r / r
    loss_scale = abs(float(kl)) + 1.0  # log S, S >= 1: an error eps S / S in S is eps in log S
    if sparse and not from_logits:  # log S - (log p - max log p): log p's error is eps |log p|
        lp = np.log(np.clip(p64, 1e-7, 1 - 1e-7))
        picked = np.abs(lp[np.arange(n), labels])
        loss_scale += float(np.mean(picked + np.abs(lp.max(-1)) + np.log(np.exp(lp).sum(-1))))
    return {f"{case} loss": ratio(loss, kl, loss_scale, dtype), f"{case} grad": ratio(grad, kg, term, dtype)}


# --- the bounds ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_within_the_measured_bound(tf, case, dtype):
    @settings(max_examples=scaled(6))
    @given(seed=st.integers(0, 2**32 - 1))
    def check(seed):
        for quantity, error in errors(tf, case, dtype, seed).items():
            assert error <= BOUNDS[quantity], (quantity, error, seed)

    check()


def test_the_bound_check_can_fail(tf):
    """A softmax that is 16 epsilons off (or computed in float32 for float64) fails the check."""
    import keras

    z, _, _ = draw(7, np.float64)
    ky = keras.layers.Activation("softmax", dtype="float64")(tf.constant(z)).numpy()
    ours = nn.activations.softmax(z)
    assert ratio(ours, ky, np.abs(ky), np.float64) <= BOUNDS["softmax y"]
    assert ratio(ours * (1 + 16 * np.finfo(np.float64).eps), ky, np.abs(ky), np.float64) > BOUNDS["softmax y"]
    in_float32 = nn.activations.softmax(z.astype(np.float32)).astype(np.float64)
    assert ratio(in_float32, ky, np.abs(ky), np.float64) > BOUNDS["softmax y"]


def test_softmax_order_is_tfs(tf):
    """TF's float64 kernel multiplies by the reciprocal of the sum: given TF's own exp values,
    ``e * (1 / sum e)`` (the sum in Eigen's order) is ``tf.nn.softmax`` bit for bit, and
    ``e / sum e`` is not. Ours is that expression, on NumPy's exp."""
    rng = np.random.default_rng(5)
    z = rng.standard_normal((300, 10)) * 5
    e = tf.exp(z - z.max(-1, keepdims=True)).numpy()
    total = reduce_sum_over(e, -1, keepdims=True)
    expected = tf.nn.softmax(z).numpy()
    assert same_bits(e * (1.0 / total), expected)
    assert not same_bits(e / total, expected)
    e = np.exp(z - z.max(-1, keepdims=True))
    assert same_bits(nn.activations.softmax(z), e * (1.0 / reduce_sum_over(e, -1, keepdims=True)))


def test_float64_cce_gradient_from_probabilities_is_exact(tf):
    """No exp or log on this path (Log's gradient is 1/p): in float64 it is Keras's bits."""
    import keras

    keras.config.set_floatx("float64")
    try:
        for seed in range(5):
            z, labels, _ = draw(seed, np.float64)
            p, y = nn.activations.softmax(z), np.eye(z.shape[1])[labels]
            _, kg = keras_pair(tf, lambda v, y=y: keras.losses.CategoricalCrossentropy()(y, v), p)
            assert same_bits(losses.CategoricalCrossentropy().gradient(y, p), kg)
    finally:
        keras.config.set_floatx("float32")


# --- Keras's softmax shortcut ----------------------------------------------------------------


@pytest.mark.parametrize("run_eagerly", [True, False])
def test_keras_takes_the_logits_of_a_softmax_output(tf, run_eagerly):
    """Far-apart logits: the clipped road gives -log(1e-7) = 16.1, the logits road 100. Keras
    (floatx = the model's dtype) reports 100 in eager and graph mode: it used the logits."""
    import keras

    previous = keras.config.floatx()
    keras.config.set_floatx("float32")
    try:
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, activation="softmax")])
        model.layers[0].kernel.assign(np.eye(3, dtype=np.float32))
        model.layers[0].bias.assign(np.array([0.0, 50.0, -50.0], np.float32))
        model.compile(keras.optimizers.SGD(0.0), "categorical_crossentropy", run_eagerly=run_eagerly)
        target = np.array([[0.0, 0.0, 1.0]], np.float32)
        keras_loss = model.evaluate(np.zeros((1, 3), np.float32), target, verbose=0)
    finally:
        keras.config.set_floatx(previous)
    dense = Dense(3, activation="softmax")
    dense.build(3)
    dense.params["kernel"][...] = np.eye(3)
    dense.params["bias"][...] = [0.0, 50.0, -50.0]
    y = dense(np.zeros((1, 3), np.float32))
    cce = losses.CategoricalCrossentropy()
    assert keras_loss == pytest.approx(100.0)
    assert float(cce(target, y, logits=softmax_logits(dense))) == pytest.approx(keras_loss)
    assert float(cce(target, y)) == pytest.approx(-np.log(np.float32(1e-7)), rel=1e-6)  # the clipped road
    # the gradients: from the logits, softmax - y reaches the bias; through the clip, nothing
    backward_from_logits(dense, cce.gradient(target, y, logits=softmax_logits(dense)))
    assert dense.grads["bias"].tolist() == pytest.approx([0.0, 1.0, -1.0])
    dense.backward(cce.gradient(target, y))
    assert not np.any(dense.grads["bias"])


def test_keras_loses_the_logits_when_the_loss_casts(tf):
    """A float64 model under Keras's default floatx (float32): the loss casts the output to
    float32, the cached logits are lost, and Keras clips the probabilities (and its gradient
    is 0 there)."""
    import keras

    assert keras.config.floatx() == "float32"
    dense = keras.layers.Dense(3, activation="softmax", dtype="float64")
    dense.build((None, 3))
    dense.kernel.assign(np.eye(3))
    dense.bias.assign([0.0, 50.0, -50.0])
    with tf.GradientTape() as tape:
        loss = keras.losses.CategoricalCrossentropy()(np.array([[0.0, 0.0, 1.0]]), dense(np.zeros((1, 3))))
    assert float(loss) == pytest.approx(16.118095, rel=1e-6)
    assert not np.any(tape.gradient(loss, dense.bias).numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sparse", [False, True])
def test_dense_softmax_with_the_shortcut_matches_keras(tf, dtype, sparse):
    """Keras's Dense(softmax) + cross-entropy under GradientTape, against our Dense with
    ``logits=`` and ``backward_from_logits``: loss, kernel and bias gradients, input gradient."""
    import keras

    previous = keras.config.floatx()
    keras.config.set_floatx(np.dtype(dtype).name)
    try:
        rng = np.random.default_rng(3)
        x = rng.standard_normal((16, 5)).astype(dtype)
        labels = rng.integers(0, 4, 16)
        y_true = labels if sparse else np.eye(4, dtype=dtype)[labels]
        theirs = keras.layers.Dense(4, activation="softmax", dtype=np.dtype(dtype).name)
        xv = tf.Variable(x)
        loss_fn = (keras.losses.SparseCategoricalCrossentropy if sparse else keras.losses.CategoricalCrossentropy)()
        with tf.GradientTape() as tape:
            kl = loss_fn(y_true, theirs(xv))
        kgrads = [g.numpy() for g in tape.gradient(kl, [theirs.kernel, theirs.bias, xv])]
    finally:
        keras.config.set_floatx(previous)
    ours = Dense(4, activation="softmax", dtype=dtype)
    ours.build(5)
    ours.params["kernel"][...] = theirs.kernel.numpy()
    y = ours(x)
    loss_obj = (losses.SparseCategoricalCrossentropy if sparse else losses.CategoricalCrossentropy)()
    logits = softmax_logits(ours)
    loss = loss_obj(y_true, y, logits=logits)
    dx = backward_from_logits(ours, loss_obj.gradient(y_true, y, logits=logits))
    eps = np.finfo(dtype).eps
    assert abs(float(loss) - float(kl.numpy())) <= 4 * eps * abs(float(kl.numpy()))
    for a, b in zip((ours.grads["kernel"], ours.grads["bias"], dx), kgrads):
        # the logits' gradient is within BOUNDS of Keras's; the matmuls add their own roundings
        assert np.max(np.abs(a - b)) <= 16 * eps * np.max(np.abs(b)), np.max(np.abs(a - b))


def test_backward_from_logits_needs_a_softmax():
    layer = Activation("relu")
    layer(np.ones((1, 2)))
    with pytest.raises(ValueError, match="softmax"):
        backward_from_logits(layer, np.ones((1, 2)))
    assert softmax_logits(layer) is None


def test_softmax_keeps_copies():
    """Changing the input or the output in place after the call changes neither the logits
    nor the backward (as Keras's tape)."""
    layer = Activation("softmax")
    z = np.array([[1.0, 2.0, 0.5]])
    y = layer(z)
    dy = np.array([[1.0, -1.0, 0.5]])
    expected = Activation("softmax")
    expected(z.copy())
    want = expected.backward(dy)
    z[...] = 0
    y[...] = 0
    assert same_bits(layer.backward(dy), want)
    assert softmax_logits(layer).tolist() == [[1.0, 2.0, 0.5]]


# --- the losses' clip and arguments ----------------------------------------------------------


def test_the_clip_stops_the_gradient(tf):
    """Probabilities outside [1e-7, 1 - 1e-7] get no gradient, in Keras and here (float64:
    Keras's own bits, since the gradient never reaches a log there)."""
    import keras

    keras.config.set_floatx("float64")
    try:
        p = np.array([[1e-9, 1.0 - 1e-9 - 1e-12, 1e-12], [0.2, 0.3, 0.5]])
        y = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        _, kg = keras_pair(tf, lambda v: keras.losses.CategoricalCrossentropy()(y, v), p)
    finally:
        keras.config.set_floatx("float32")
    grad = losses.CategoricalCrossentropy().gradient(y, p)
    assert not np.any(kg[0]) and not np.any(grad[0])
    assert ratio(grad, kg, np.abs(kg), np.float64) <= BOUNDS["cce grad"]


def test_get_resolves_keras_names():
    assert isinstance(losses.get("categorical_crossentropy"), losses.CategoricalCrossentropy)
    assert isinstance(losses.get("sparse_categorical_crossentropy"), losses.SparseCategoricalCrossentropy)
    assert isinstance(losses.get("mse"), losses.MeanSquaredError)
    assert isinstance(losses.get("mean_squared_error"), losses.MeanSquaredError)
    cce = losses.CategoricalCrossentropy(from_logits=True)
    assert losses.get(cce) is cce
    with pytest.raises(ValueError, match="Could not interpret loss identifier"):
        losses.get("hinge")
    with pytest.raises(TypeError):
        losses.get(3)
    with pytest.raises(TypeError):
        losses.CategoricalCrossentropy(from_logits="yes")


def test_bad_loss_inputs_raise():
    cce, scce = losses.CategoricalCrossentropy(), losses.SparseCategoricalCrossentropy()
    p = np.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match="same shape"):
        cce(np.zeros((2, 4)), p)
    with pytest.raises(ValueError, match="one class index per sample"):
        scce(np.zeros((3,), int), p)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        scce(np.array([0, 3]), p)
    with pytest.raises(ValueError, match="logits"):
        cce(np.eye(3)[:2], p, logits=np.zeros((2, 4)))
    assert same_bits(scce(np.array([[0], [2]]), p), scce(np.array([0, 2]), p))  # (N, 1) labels


# --- metrics: exact ----------------------------------------------------------------------------


@settings(max_examples=scaled(10))
@given(seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from(["float32", "float64"]))
def test_accuracy_metrics_match_keras(tf, seed, dtype):
    import keras

    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 6))
    pairs = [(keras.metrics.CategoricalAccuracy(dtype=dtype), metrics.CategoricalAccuracy(dtype=dtype), "onehot"),
             (keras.metrics.SparseCategoricalAccuracy(dtype=dtype), metrics.SparseCategoricalAccuracy(dtype=dtype),
              "sparse"),
             (keras.metrics.SparseCategoricalAccuracy(dtype=dtype), metrics.SparseCategoricalAccuracy(dtype=dtype),
              "sparse_column")]
    for theirs, ours, kind in pairs:
        for _ in range(int(rng.integers(1, 4))):
            n = int(rng.integers(1, 40))
            y_pred = rng.integers(0, 3, (n, k)).astype(np.float32)  # many argmax ties
            labels = rng.integers(0, k, n)
            y_true = {"onehot": np.eye(k, dtype=np.float32)[labels], "sparse": labels,
                      "sparse_column": labels[:, None]}[kind]
            theirs.update_state(y_true, y_pred)
            ours.update_state(y_true, y_pred)
            assert ours.result() == float(theirs.result().numpy()), kind
        assert ours.name == theirs.name
        ours.reset_state()
        theirs.reset_state()
        assert ours.result() == float(theirs.result().numpy()) == 0.0


def test_accuracy_resolves_like_keras_compile(tf):
    """``metrics=["accuracy"]`` in Keras: categorical for one-hot targets, sparse for labels,
    binary for one output; the name stays "accuracy"."""
    import keras

    x = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
    cases = [(np.eye(4, dtype=np.float32)[np.arange(8) % 4], 4, "categorical_crossentropy",
              metrics.CategoricalAccuracy),
             (np.arange(8) % 4, 4, "sparse_categorical_crossentropy", metrics.SparseCategoricalAccuracy),
             ((np.arange(8) % 2).astype(np.float32)[:, None], 1, "mse", metrics.BinaryAccuracy)]
    for y, units, loss, kind in cases:
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(units, activation="softmax" if units > 1 else "sigmoid")])
        model.compile("sgd", loss, metrics=["accuracy"])
        logs = model.evaluate(x, y, verbose=0, return_dict=True)
        metric = metrics.get("accuracy", loss)
        metric.update_state(y, model.predict(x, verbose=0))
        assert metric.name == "accuracy" and metric.kind is kind
        assert metric.result() == logs["accuracy"]
    assert metrics.get("acc").name == "acc"


def test_bad_metric_arguments():
    with pytest.raises(ValueError, match="Could not interpret metric identifier"):
        metrics.get("auc")
    with pytest.raises(TypeError):
        metrics.get(3)
    m = metrics.CategoricalAccuracy()
    with pytest.raises(ValueError):
        m.update_state(np.eye(3), np.eye(4))
    assert m.result() == 0.0 and m.count == 0  # nothing changed
