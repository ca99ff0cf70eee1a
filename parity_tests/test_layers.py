"""scratchopt.layers against Keras: forward, moving statistics and hand-written backward.

BatchNormalization and LayerNormalization are compared with the real Keras layer (same
weights, built for the input's dtype) and ``tf.GradientTape``: the output, the moving
statistics after each call, ``dx``, ``dgamma`` and ``dbeta``, over drawn shapes, axes,
flags (center/scale off too), training/inference, frozen layers, and values over many
magnitudes (tiny ones that go subnormal and are flushed; inf and NaN now and then).

* float64: every bit.
* float32: every bit wherever TF's ``rsqrt`` is exact (the last ``size % 8`` lanes of the
  vector it is taken over), and within a measured bound on the packet lanes, where TF
  uses the CPU's approximate rsqrt instruction (KERAS_SEMANTICS §0.5). That this is the
  *only* difference is checked too: with TF's own ``rsqrt`` patched into scratchopt,
  float32 matches every bit.

Dropout cannot share TF's random numbers (Philox), so its arithmetic is checked given
Keras's mask (recovered from Keras's output on an input without zeros), and its own
random numbers by their statistics.

``python parity_tests/test_layers.py`` re-runs the float32 measurement behind the bound.
"""

import os
import re
import unittest.mock

import numpy as np
import pytest
from conftest import scaled
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from layer_info import DROPOUT_INFOS, INFOS, NORMALIZATION_INFOS
from strategies import values

from scratchopt import layers, numerics
from scratchopt.numerics import philox
from scratchopt.regularization import batch_normalization, layer_normalization
from scratchopt.optimizers import SGD

DTYPES = st.sampled_from([np.dtype(np.float32), np.dtype(np.float64)])
EPS32 = float(np.finfo(np.float32).eps)
TINY32 = float(np.finfo(np.float32).tiny)

#: float32, packet lanes of rsqrt: |ours - Keras| <= FLOAT32_BOUND * eps * scale (+ tiny),
#: ``scale`` being the sum of the magnitudes of the terms of each output (``scales`` below).
#: Measured with ``python parity_tests/test_layers.py`` (3000 random cases: N in 2..40,
#: C in 8..40, magnitudes 1e-3..1e3, training and inference; AMD EPYC, where TF's packet
#: rsqrt was up to 2 ULP from 1/sqrt, the most Eigen documents for it): the largest ratio
#: was 2.67 (y), 2.48 (dx), 1.63 (dgamma) for BatchNormalization and 3.02, 2.25, 1.21 for
#: LayerNormalization. The bound is twice the largest. ``+ tiny``: a value within an ULP of
#: float32's smallest normal may be flushed to 0 on one side and not on the other.
FLOAT32_BOUND = 6.0


# --- comparing arrays --------------------------------------------------------------------


def same(ours, theirs):
    """Elementwise: the same bits, or both NaN."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, (ours.dtype, ours.shape,
                                                                       theirs.dtype, theirs.shape)
    itype = np.int32 if ours.dtype == np.float32 else np.int64
    return (ours.view(itype) == theirs.view(itype)) | (np.isnan(ours) & np.isnan(theirs))


def assert_same(ours, theirs, what):
    ok = same(ours, theirs)
    assert ok.all(), f"{what}: {np.sum(~ok)} of {ok.size} differ; first at {np.argwhere(~ok)[0]}"


def assert_close(ours, theirs, exact, scale, what):
    """Bits equal where ``exact``; elsewhere within the float32 bound of ``scale``."""
    ok = same(ours, theirs)
    with np.errstate(all="ignore"):
        gap = np.abs(ours.astype(np.float64) - theirs.astype(np.float64))
        ok |= ~exact & (gap <= FLOAT32_BOUND * EPS32 * scale + TINY32)
    assert ok.all(), (f"{what}: {np.sum(~ok)} of {ok.size} outside the bound; e.g. ours "
                      f"{ours[~ok][:3]}, Keras {theirs[~ok][:3]}, scale {np.broadcast_to(scale, ours.shape)[~ok][:3]}")


# --- drawing cases ------------------------------------------------------------------------

SIDES = [1, 2, 3, 4, 5, 8, 9, 16, 17, 33]


@st.composite
def shapes(draw, min_dims=1, max_dims=4, budget=2500):
    """Shapes whose sides cross Eigen's boundaries (a packet of 8, 16 rows) within ``budget``."""
    dims = []
    for _ in range(draw(st.integers(min_dims, max_dims))):
        left = budget // max(1, int(np.prod(dims)))
        dims.append(draw(st.sampled_from([s for s in SIDES if s <= left] or [1])))
    if dims and draw(st.integers(0, 4)) == 0:  # now and then a long axis: 4 accumulators, tree splits
        i = draw(st.integers(0, len(dims) - 1))
        others = int(np.prod(dims[:i] + dims[i + 1:]))
        dims[i] = draw(st.integers(1, max(1, 6000 // others)))
    return tuple(dims)


@st.composite
def data_arrays(draw, dtype, shape, wide, nonfinite=False, positive=False):
    """Hypothesis's own values (0, -0, tiny, round numbers, inf/NaN now and then), or,
    when ``wide``, seeded random values over six decades around a random offset: sums
    that round at every step, so that any change of order or of a constant shows."""
    if wide:
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        out = rng.standard_normal(shape) * 10.0 ** rng.uniform(-3, 3, shape) + rng.standard_normal() * 10
    else:
        out = draw(arrays(dtype, shape, elements=values(dtype, nonfinite=nonfinite)))
    out = np.asarray(out, dtype)
    return np.abs(out) if positive else out


@st.composite
def normalization_cases(draw, info, dtype, training):
    """Constructor arguments, weights, one or two calls ``(x, dy, training)``, ``trainable``.

    The first call's ``training`` is given (so that each mode is covered whatever
    Hypothesis prefers); the second call's is drawn."""
    shape = draw(shapes(min_dims=2 if info.name == "BatchNormalization" else 1))
    ndim = len(shape)
    center, scale = draw(st.booleans()), draw(st.booleans())
    if info.name == "BatchNormalization":
        kwargs = {"axis": draw(st.integers(-ndim, ndim - 1)),
                  "momentum": draw(st.one_of(st.sampled_from([0.99, 0.9, 0.5]), st.floats(0, 1),
                                             st.sampled_from([0.0, 1.0]))),
                  "epsilon": draw(st.one_of(st.sampled_from([1e-3, 1e-5, 0.0]), st.floats(1e-6, 1.0)))}
        param_shape = (shape[kwargs["axis"]],)
    else:
        chosen = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
        axis = [a - ndim if draw(st.booleans()) else a for a in chosen]  # negatives too
        kwargs = {"axis": axis[0] if len(axis) == 1 and draw(st.booleans()) else axis,
                  "epsilon": draw(st.one_of(st.sampled_from([1e-3, 1e-5, 0.0, None]), st.floats(1e-6, 1.0)))}
        param_shape = tuple(shape[a] for a in sorted(axis))
    kwargs.update(center=center, scale=scale)
    wide = draw(st.booleans())
    nonfinite = draw(st.integers(0, 9)) == 0
    weights = {}
    if scale:
        weights["gamma"] = draw(data_arrays(dtype, param_shape, wide))
    if center:
        weights["beta"] = draw(data_arrays(dtype, param_shape, wide))
    if info.name == "BatchNormalization":
        weights["moving_mean"] = draw(data_arrays(dtype, param_shape, wide))
        weights["moving_variance"] = draw(data_arrays(dtype, param_shape, wide, positive=True))
    calls = []
    for i in range(draw(st.integers(1, 2))):
        x = draw(data_arrays(dtype, shape, wide, nonfinite))
        dy = draw(data_arrays(dtype, shape, wide, nonfinite))
        calls.append((x, dy, training if i == 0 else draw(st.booleans())))
    trainable = draw(st.sampled_from([True, True, True, False]))  # a frozen layer now and then
    return kwargs, weights, calls, trainable


# --- Keras and TF as the reference --------------------------------------------------------


def keras_layer(info, kwargs, shape, dtype, weights, trainable=True):
    layer = info.keras_cls()(**kwargs, dtype=str(dtype))
    layer.build(shape)
    for name, value in weights.items():
        getattr(layer, name).assign(value)
    layer.trainable = trainable
    return layer


def keras_call(tf, layer, x, dy, training):
    """Keras's output and, through tf.GradientTape, dx and the gradients of gamma and beta."""
    x = tf.constant(x)
    params = {k: getattr(layer, k).value for k in ("gamma", "beta") if getattr(layer, k, None) is not None}
    with tf.GradientTape() as tape:
        tape.watch(x)
        for v in params.values():
            tape.watch(v)
        y = layer(x, training=training)
    grads = tape.gradient(y, [x, *params.values()], output_gradients=tf.constant(dy))
    return y.numpy(), grads[0].numpy(), {k: g.numpy() for k, g in zip(params, grads[1:])}


def tf_rsqrt(tf):
    """TF's own rsqrt on a NumPy array: what scratchopt cannot reproduce, to patch in."""
    return lambda v: tf.math.rsqrt(tf.constant(v)).numpy()


# --- the float32 scale: magnitudes of the terms that carry r, in float64 -----------------


def scales(layer, x, dy, training):
    """Per-output scales for the float32 bound, and the rsqrt lane of every output.

    A scale is the sum of the magnitudes of the terms an output is made of, each product
    taken whole and no sum allowed to cancel (``|x*dy| + |mean*dy|`` for ``x*dy - mean*dy``,
    ``|x| + |mean|`` for ``x - mean``): a relative error of a few eps in ``r`` moves the
    output by a few eps of that, even where the terms cancel to almost nothing. It is
    recomputed in float64 from the inputs and the textbook formulas, not taken from
    scratchopt's intermediates.
    """
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    bn = isinstance(layer, layers.BatchNormalization)
    if bn:
        axis = layer.axis % x.ndim
        axes = tuple(i for i in range(x.ndim) if i != axis)
        shape = [1] * x.ndim
        shape[axis] = x.shape[axis]
    else:
        axes = tuple(sorted(a % x.ndim for a in np.atleast_1d(layer.axis)))
        shape = layer._param_shape(x)
    others = tuple(i for i in range(x.ndim) if i not in axes)
    gamma = 1.0 if layer.gamma is None else np.abs(layer.gamma.astype(np.float64).reshape(shape))
    beta = 0.0 if layer.beta is None else np.abs(layer.beta.astype(np.float64).reshape(shape))
    with np.errstate(all="ignore"):
        if bn and not (training and layer.trainable):
            mean = layer.moving_mean.astype(np.float64).reshape(shape)
            var = layer.moving_variance.astype(np.float64).reshape(shape)
            stats = False
        else:
            mean = x64.mean(axes, keepdims=True)
            var = ((x64 - mean) ** 2).mean(axes, keepdims=True)
            stats = True
        eps = layer_normalization.KERAS_BACKEND_EPSILON if layer.epsilon is None else layer.epsilon
        r = np.abs(1 / np.sqrt(var + eps))
        inv, ax, am, ady = r * gamma, np.abs(x64), np.abs(mean), np.abs(dy64)
        n = x.size // mean.size
        y_scale = ax * inv + am * inv + beta  # y = x*inv + (beta - mean*inv)
        if bn:
            dinv = (ax * ady).sum(axes, keepdims=True) + am * ady.sum(axes, keepdims=True)
            mean_term = ady.sum(axes, keepdims=True) * inv / n  # dmean = -sum(dy) * inv
            dr = dinv * gamma
            dgamma_scale = dinv * r
        else:
            dinv = ax * ady + am * ady  # x*dy + (-mean)*dy
            mean_term = (ady * inv).sum(axes, keepdims=True) / n  # dmean = -rowsum(dy*inv)
            dr = (dinv * gamma).sum(axes, keepdims=True)
            dgamma_scale = (r * dinv).sum(others, keepdims=True)
        dx_scale = ady * inv
        if stats:  # + dmean/N + 2 * (dvar/N) * (x - mean), dvar = -0.5 * dr * r**3
            dx_scale = dx_scale + mean_term + dr * r**3 / n * (ax + am)
    lane = np.broadcast_to(np.arange(r.size).reshape(r.shape), x.shape)
    # epsilon 0 and a zero variance (constant inputs): r is infinite in exact arithmetic, and
    # a term 0 * inf makes the scale NaN. Such an output has no finite scale (float32 rounds
    # the variance to something tiny, and the outputs to whatever that gives): inf, not NaN.
    # Found by the ci profile: x constant 22.320942 along the axis, epsilon 0, dy 0 there.
    y_scale, dx_scale, dgamma_scale = (np.where(np.isnan(a), np.inf, a) for a in (y_scale, dx_scale, dgamma_scale))
    return y_scale, dx_scale, dgamma_scale, lane, r.size


def exact_lanes(lane, size):
    """Where TF's float32 rsqrt is 1/sqrt: the tail after the whole packets of 8."""
    return lane >= size - size % 8


# --- BatchNormalization and LayerNormalization ----------------------------------------


def run_case(tf, info, case, patch_rsqrt=False):
    kwargs, weights, calls, trainable = case
    x0 = calls[0][0]
    dtype = x0.dtype
    theirs = keras_layer(info, kwargs, x0.shape, dtype, weights, trainable)
    ours = info.cls(**kwargs)
    ours.build(x0.shape, dtype)
    for name, value in weights.items():
        getattr(ours, name)[...] = value
    ours.trainable = trainable
    patches = []
    if patch_rsqrt:
        patches = [unittest.mock.patch.object(m, "rsqrt", tf_rsqrt(tf))
                   for m in (batch_normalization, layer_normalization)]
        # The compiled layers (normalization_fast) have their own rsqrt, the reference's, which
        # the patch cannot reach: the NumPy lines, whose bits they equal (test_normalization_fast.py).
        patches.append(unittest.mock.patch.dict(os.environ, {"SCRATCHOPT_BACKEND": "numpy"}))
    for x, dy, training in calls:
        try:
            ky, kdx, kgrads = keras_call(tf, theirs, x, dy, training)
            keras_fails = ky.shape != x.shape
        except (tf.errors.InvalidArgumentError, ValueError):
            keras_fails = True
        if keras_fails:  # LayerNormalization, axis=[-1, 0, ...]: parameters Keras cannot apply
            with pytest.raises(ValueError, match="Keras cannot apply"):
                ours(x, training=training)
            return
        bound = dtype == np.float32 and not patch_rsqrt
        if bound:
            y_scale, dx_scale, dgamma_scale, lane, size = scales(ours, x, dy, training)
        for p in patches:
            p.start()
        try:
            y = ours(x, training=training)
            dx = ours.backward(dy)
        finally:
            for p in patches:
                p.stop()
        if bound:
            exact = exact_lanes(lane, size)
            assert_close(y, ky, exact, y_scale, "y")
            assert_close(dx, kdx, exact, dx_scale, "dx")
            if "gamma" in kgrads:
                gamma_exact = exact_lanes(lane, size) if info.name == "BatchNormalization" else size < 8
                gamma_exact = np.broadcast_to(gamma_exact, x.shape)
                # reduce the lane mask and the scale to gamma's positions
                keep = [i for i in range(x.ndim) if dgamma_scale.shape[i] != 1]
                index = tuple(slice(None) if i in keep else 0 for i in range(x.ndim))
                assert_close(ours.grads["gamma"], kgrads["gamma"],
                             gamma_exact[index].reshape(ours.grads["gamma"].shape),
                             dgamma_scale[index].reshape(ours.grads["gamma"].shape), "dgamma")
        else:
            assert_same(y, ky, "y")
            assert_same(dx, kdx, "dx")
            if "gamma" in kgrads:
                assert_same(ours.grads["gamma"], kgrads["gamma"], "dgamma")
        if "beta" in kgrads:
            assert_same(ours.grads["beta"], kgrads["beta"], "dbeta")  # never touches r
        assert set(ours.grads) == set(kgrads)
        if info.name == "BatchNormalization":
            assert_same(ours.moving_mean, theirs.moving_mean.numpy(), "moving_mean")
            assert_same(ours.moving_variance, theirs.moving_variance.numpy(), "moving_variance")


#: (layer, dtype, training of the first call); LayerNormalization has no training mode.
MODES = [(info, np.dtype(dtype), training) for info in NORMALIZATION_INFOS
         for dtype in (np.float32, np.float64)
         for training in ((True, False) if info.name == "BatchNormalization" else (True,))]


def mode_id(value):
    if isinstance(value, bool):
        return "training" if value else "inference"
    return str(value)


@pytest.mark.parametrize("info, dtype, training", MODES, ids=mode_id)
@settings(max_examples=scaled(30))
@given(data=st.data())
def test_normalization_matches_keras(tf, info, dtype, training, data):
    run_case(tf, info, data.draw(normalization_cases(info, dtype, training)))


@pytest.mark.parametrize("info, training", [(i, t) for i, d, t in MODES if d == np.float32], ids=mode_id)
@settings(max_examples=scaled(20))
@given(data=st.data())
def test_float32_differs_only_by_tf_rsqrt(tf, info, training, data):
    """With TF's own rsqrt patched in, float32 matches every bit: rsqrt is the whole gap."""
    case = data.draw(normalization_cases(info, np.dtype(np.float32), training))
    run_case(tf, info, case, patch_rsqrt=True)


def test_float32_packet_lanes_do_differ(tf):
    """The bound is not idle: on this input TF's packet rsqrt is not 1/sqrt, and y shows it."""
    x = np.linspace(-3, 7, 61 * 16, dtype=np.float32).reshape(61, 16) ** 2
    theirs = keras_layer(NORMALIZATION_INFOS[1], {}, x.shape, x.dtype, {})
    ky, _, _ = keras_call(tf, theirs, x, np.ones_like(x), False)
    y = layers.LayerNormalization()(x)
    assert not same(y, ky)[:56].all()  # rows 0..55: whole packets of 8
    assert same(y, ky)[56:].all()  # rows 56..60: the scalar tail, 1 / sqrt


def test_frozen_batch_norm_uses_moving_statistics():
    """Keras: statistics only if ``training and self.trainable``."""
    layer = layers.BatchNormalization()
    x = np.arange(12, dtype=np.float64).reshape(4, 3)
    layer.trainable = False
    assert np.array_equal(layer(x, training=True), layer(x, training=False))
    assert np.array_equal(layer.moving_mean, np.zeros(3))
    layer.trainable = True
    layer(x, training=True)
    assert not np.array_equal(layer.moving_mean, np.zeros(3))


def test_momentum_is_keras_convention():
    """momentum=0.99 keeps 99% of the old average (PyTorch's 0.1 takes 10% of the new)."""
    layer = layers.BatchNormalization(momentum=0.75)
    x = np.array([[1.0], [3.0]])  # mean 2, biased variance 1 (unbiased would be 2)
    layer(x, training=True)
    assert layer.moving_mean.tolist() == [0.75 * 0 + 0.25 * 2]
    assert layer.moving_variance.tolist() == [0.75 * 1 + 0.25 * 1]


def test_params_are_live_arrays_an_optimizer_updates():
    layer = layers.BatchNormalization()
    x, dy = np.random.default_rng(0).standard_normal((2, 8, 3)).astype(np.float32)
    layer(x, training=True)
    layer.backward(dy)
    gamma, keys = layer.gamma, list(layer.params)
    before = gamma.copy()
    SGD(learning_rate=0.1).apply([layer.grads[k] for k in keys], [layer.params[k] for k in keys])
    assert layer.gamma is gamma and layer.params["gamma"] is gamma
    assert not np.array_equal(gamma, before)


def test_call_errors_leave_the_layer_unchanged():
    layer = layers.BatchNormalization()
    x = np.ones((4, 3))
    layer(x, training=True)
    state = [layer.moving_mean.copy(), layer.moving_variance.copy()]
    with pytest.raises(ValueError, match="3 channels"):
        layer(np.ones((4, 5)), training=True)
    with pytest.raises(TypeError, match="float64"):
        layer(np.ones((4, 3), np.float32), training=True)
    with pytest.raises(TypeError, match="float32 or float64"):
        layer(np.ones((4, 3), np.float16), training=True)
    with pytest.raises(TypeError, match="NumPy or CuPy"):
        layer([[1.0, 2.0, 3.0]], training=True)
    with pytest.raises(ValueError, match="dy"):
        layer.backward(np.ones((4, 5)))
    assert np.array_equal(layer.moving_mean, state[0]) and np.array_equal(layer.moving_variance, state[1])
    with pytest.raises(ValueError, match="out of bounds"):
        layers.BatchNormalization(axis=2)(np.ones((4, 3)))
    with pytest.raises(ValueError, match="rank 2 or more"):
        layers.BatchNormalization(axis=0)(np.ones(1))  # Keras: IndexError in training
    with pytest.raises(ValueError, match="twice"):
        layers.LayerNormalization(axis=[1, -1])(np.ones((4, 3)))
    with pytest.raises(RuntimeError, match="forward"):
        layers.LayerNormalization().backward(np.ones((4, 3)))


# --- the reductions and rsqrt BN/LN are built on -------------------------------------


@st.composite
def reductions(draw):
    dtype = draw(DTYPES)
    shape = draw(shapes(min_dims=0, max_dims=5, budget=4000))
    axes = draw(st.lists(st.integers(0, max(0, len(shape) - 1)), max_size=len(shape), unique=True)) if shape else []
    x = draw(arrays(dtype, shape, elements=values(dtype, nonfinite=draw(st.integers(0, 9)) == 0)))
    return x, [a - len(shape) if draw(st.booleans()) else a for a in axes], draw(st.booleans())


@settings(max_examples=scaled(150))
@given(case=reductions())
def test_reductions_over_axes_are_tf(tf, case):
    x, axes, keepdims = case
    assert_same(numerics.reduce_sum_over(x, axes, keepdims), tf.reduce_sum(x, axes, keepdims).numpy(), "sum")
    assert_same(numerics.reduce_mean_over(x, axes, keepdims), tf.reduce_mean(x, axes, keepdims).numpy(), "mean")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=str)
@pytest.mark.parametrize("shape, axes", [((40, 33), [0]), ((3, 9001), [1]), ((5, 7, 3), [0, 2]),
                                         ((5, 70, 19), [1]), ((2, 3, 4, 5, 6), [0, 2, 4]),
                                         ((1, 17), [0]), ((9, 1, 1), [1, 2])])
def test_reduction_kernels_on_wide_values(tf, dtype, shape, axes):
    """Each of Eigen's loops (column, row with tree, A*C, slab, transposed, copy) on sums that round a lot."""
    rng = np.random.default_rng(len(shape) * 100 + sum(axes))
    x = (rng.standard_normal(shape) * 10.0 ** rng.uniform(-3, 3, shape)).astype(dtype)
    assert_same(numerics.reduce_sum_over(x, axes), tf.reduce_sum(x, axes).numpy(), "sum")
    assert_same(numerics.reduce_mean_over(x, axes), tf.reduce_mean(x, axes).numpy(), "mean")


@settings(max_examples=scaled(60))
@given(dtype=DTYPES, data=st.data())
def test_rsqrt_and_its_gradient_are_tf(tf, dtype, data):
    n = data.draw(st.integers(0, 40))
    v = data.draw(arrays(dtype, n, elements=st.one_of(values(dtype, nonfinite=True), st.floats(0, float(np.float32(1e30)), width=dtype.itemsize * 8))))
    dr = data.draw(arrays(dtype, n, elements=values(dtype, nonfinite=True)))
    theirs = tf.math.rsqrt(v).numpy()
    ours = numerics.rsqrt(v)
    exact = np.arange(n) >= (n - n % 8 if dtype == np.float32 else 0)
    assert_same(ours[exact], theirs[exact], "rsqrt")
    # Packet lanes (float32): Eigen's rsqrt + one Newton step, within 2 ULP (measured 2 here).
    assert (same(ours, theirs) | (numerics.ulp_distance(ours, theirs) <= 2)).all()
    assert_same(numerics.rsqrt_grad(theirs, dr), tf.raw_ops.RsqrtGrad(y=theirs, dy=dr).numpy(), "RsqrtGrad")


# --- Dropout and SpatialDropout ---------------------------------------------------------

RATES = st.one_of(st.sampled_from([0.5, 0.1, 0.3, 1 / 3, 0.9, 0.999]), st.floats(0.01, 0.99),
                  st.floats(0.01, 0.99).map(np.float32))


def nonzero(dtype):
    """Values that stay nonzero once scaled (no zeros, no tiny ones), inf and NaN now and then."""
    t = np.dtype(dtype).type
    magnitudes = st.floats(float(t(1e-3)), float(t(1e3)), width=8 * np.dtype(dtype).itemsize)
    return st.one_of(magnitudes, magnitudes.map(lambda v: -v), st.sampled_from([np.inf, -np.inf, np.nan]))


def keras_dropout(tf, layer, x, dy):
    """Keras's training output and its gradient (zeros where TF's graph is cut, rate=1)."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
    dx = tape.gradient(y, x, output_gradients=tf.constant(dy))
    return y.numpy(), np.zeros_like(dy) if dx is None else dx.numpy()


def mask_of(y, mask_shape):
    """Keras's keep mask, recovered from its output on an input without zeros.

    Asserts that it is constant along the broadcast axes (whole channels, shared steps)."""
    keep = y != 0
    index = tuple(0 if m == 1 else slice(None) for m in mask_shape)
    small = keep[index].reshape(mask_shape)
    assert np.array_equal(np.broadcast_to(small, y.shape), keep), "mask not constant along broadcast axes"
    return small


@st.composite
def dropout_cases(draw, info):
    dtype = draw(DTYPES)
    rank = {"SpatialDropout1D": 3, "SpatialDropout2D": 4, "SpatialDropout3D": 5}.get(info.name)
    shape = draw(shapes(min_dims=rank or 1, max_dims=rank or 4, budget=3000))
    kwargs = {"rate": draw(RATES), "seed": draw(st.integers(0, 2**31))}
    if info.name == "Dropout":
        noise = draw(st.one_of(st.none(), st.lists(st.booleans(), min_size=len(shape), max_size=len(shape))))
        if noise is not None:  # True: share the draw along this axis; else the input's size or None
            kwargs["noise_shape"] = tuple(1 if share else draw(st.sampled_from([s, None]))
                                          for share, s in zip(noise, shape))
    elif rank > 3:
        kwargs["data_format"] = draw(st.sampled_from(["channels_last", "channels_first"]))
    x = draw(arrays(dtype, shape, elements=nonzero(dtype)))
    dy = draw(arrays(dtype, shape, elements=values(dtype, nonfinite=True)))
    return kwargs, x, dy


def mask_shape(ours, x):
    return ours._mask_shape(x)


@pytest.mark.parametrize("info", DROPOUT_INFOS, ids=str)
@settings(max_examples=scaled(40))
@given(data=st.data())
def test_dropout_matches_keras_given_its_mask(tf, info, data):
    kwargs, x, dy = data.draw(dropout_cases(info))
    theirs = info.keras_cls()(**kwargs, dtype=str(x.dtype))  # else Keras computes in float32
    ky, kdx = keras_dropout(tf, theirs, x, dy)
    ours = info.cls(**kwargs)
    keep = mask_of(ky, mask_shape(ours, x))
    y = ours(x, training=True, keep=keep)
    assert_same(y, ky, "y")
    assert_same(ours.backward(dy), kdx, "dx")
    # kept: x * T(1 / (1 - rate)), the rounded reciprocal, not x / (1 - rate)
    scale = x.dtype.type(1 / (1 - kwargs["rate"]))
    with numerics.tf_arithmetic():
        assert_same(y[ky != 0], x[ky != 0] * scale, "kept values")


@pytest.mark.parametrize("info", DROPOUT_INFOS, ids=str)
@pytest.mark.parametrize("rate", [0.0, 1.0, 0, 1])
def test_dropout_rate_edges_match_keras(tf, info, rate):
    """rate 0: the identity; rate 1: zeros (Keras's fast paths), and their gradients."""
    shape = {"SpatialDropout1D": (2, 3, 4), "SpatialDropout2D": (2, 3, 4, 2),
             "SpatialDropout3D": (2, 3, 2, 2, 2)}.get(info.name, (3, 5))
    x = np.arange(1, 1 + np.prod(shape), dtype=np.float32).reshape(shape)
    x.flat[0] = np.nan
    dy = np.full(shape, 2.0, np.float32)
    ky, kdx = keras_dropout(tf, info.keras_cls()(rate), x, dy)
    ours = info.cls(rate)
    assert_same(ours(x, training=True), ky, "y")
    assert_same(ours.backward(dy), kdx, "dx")


@pytest.mark.parametrize("info", DROPOUT_INFOS, ids=str)
def test_dropout_inference_is_the_identity(info):
    shape = (2, 3, 4, 5, 6)[: {"SpatialDropout1D": 3, "SpatialDropout2D": 4, "SpatialDropout3D": 5}.get(info.name, 2)]
    x = np.random.default_rng(0).standard_normal(shape)
    ours = info.cls(0.5, seed=1)
    assert ours(x) is x and ours(x, training=False) is x
    dy = np.ones(shape)
    assert ours.backward(dy) is dy
    assert ours.keep is None


@settings(max_examples=scaled(20))
@given(rate=st.floats(0.02, 0.98), dtype=DTYPES, seed=st.integers(0, 2**32))
def test_dropout_keep_rate_of_our_rng(rate, dtype, seed):
    """Our RNG keeps a fraction 1 - rate: the count of kept values within 6 binomial sigmas.

    (A false alarm has probability ~2e-9 per check.) Each training call draws anew; the
    same seed repeats the same sequence in another layer."""
    n, calls = 20_000, 3
    x = np.ones(n, dtype)
    ours, twin = layers.Dropout(rate, seed=seed), layers.Dropout(rate, seed=seed)
    masks = []
    for _ in range(calls):
        y = ours(x, training=True)
        assert np.array_equal(twin(x, training=True), y)
        masks.append(ours.keep)
        p = 1 - rate
        assert abs(int(ours.keep.sum()) - n * p) <= 6 * np.sqrt(n * p * (1 - p)) + 1
    assert not np.array_equal(masks[0], masks[1])


@pytest.mark.parametrize("info", DROPOUT_INFOS, ids=str)
@pytest.mark.parametrize("backend", ["compiled", "numpy"])
@settings(max_examples=scaled(20), deadline=None)
@given(data=st.data())
def test_dropout_draws_kerass_masks(tf, info, backend, data):
    """No mask handed over: the same seed gives Keras's masks, outputs and gradients, call after call.

    Seeds anywhere in int64 (Keras takes them modulo 2**31 - 2); each call spends one seed
    pair, in both. ``numpy``: the array code (``numerics.philox``); ``compiled``: the mask in
    one compiled pass (``philox_fast``), where numba is installed."""
    kwargs, x, dy = data.draw(dropout_cases(info))
    kwargs["seed"] = data.draw(st.one_of(st.integers(0, 2**31), st.integers(-(2**63), 2**63 - 1)))
    theirs = info.keras_cls()(**kwargs, dtype=str(x.dtype))
    with unittest.mock.patch.dict(os.environ, {"SCRATCHOPT_BACKEND": "numpy" if backend == "numpy" else ""}):
        ours = info.cls(**kwargs)
        for call in range(2):
            ky, kdx = keras_dropout(tf, theirs, x, dy)
            assert_same(ours(x, training=True), ky, f"y, call {call}")
            assert_same(ours.backward(dy), kdx, f"dx, call {call}")


def test_a_subnormal_rate_reads_as_zero_as_in_tf(tf):
    """TF compares ``u >= T(rate)`` with denormals read as zero: ``rate=1e-45`` (float32's
    smallest subnormal) keeps a ``u`` of exactly 0. Seed 3's first draw has one at index
    2123989 (``philox.stateless_uniform``, found by search), the first in its stream."""
    x = np.ones(2_123_990, np.float32)
    u = philox.stateless_uniform(x.shape, (3, 0), np.float32)
    assert np.flatnonzero(u == 0).tolist() == [2_123_989]
    ky, _ = keras_dropout(tf, DROPOUT_INFOS[0].keras_cls()(1e-45, seed=3), x, x)
    for backend in ["", "numpy"]:
        with unittest.mock.patch.dict(os.environ, {"SCRATCHOPT_BACKEND": backend}):
            ours = layers.Dropout(1e-45, seed=3)
            assert_same(ours(x, training=True), ky, f"y ({backend or 'compiled'})")
            assert ours.keep.all()  # without the flush, u = 0 >= 1e-45 would be dropped


def test_every_layer_derives_from_the_one_base():
    """Dense, ReLU, the regularization layers and the mixing layers: one ``Layer`` base."""
    import inspect

    from scratchopt import augment, nn
    from scratchopt.nn.layer import Layer

    not_layers = {"Sequential", "History", "MeanSquaredError", "SoftmaxCrossEntropy", "CategoricalCrossentropy",
                  "SparseCategoricalCrossentropy"}  # the model and the losses
    found = set()
    for module in (nn, layers, augment):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) and name not in not_layers:
                assert issubclass(obj, Layer), f"{module.__name__}.{name} is not a scratchopt.nn.layer.Layer"
                found.add(name)
    assert {"Dense", "ReLU", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
            "BatchNormalization", "LayerNormalization", "MixUp", "CutMix", "Layer", "Conv2D", "MaxPooling2D",
            "GlobalAveragePooling2D", "Flatten", "Activation", "LSTM", "RandomFlip", "RandomRotation",
            "RandomZoom", "RandomContrast", "RandomTranslation"} <= found
    assert not augment.MixUp.differentiable and not augment.CutMix.differentiable


@pytest.mark.parametrize("make", [lambda: layers.Dropout(0.5, seed=0), lambda: layers.SpatialDropout1D(0.5, seed=0),
                                  layers.BatchNormalization, layers.LayerNormalization],
                         ids=["Dropout", "SpatialDropout1D", "BatchNormalization", "LayerNormalization"])
@pytest.mark.parametrize(("bad", "error", "pattern"), [
    (lambda dy: dy[:, :-1], ValueError, "shape"), (lambda dy: dy.astype(np.float32), TypeError, "dtype"),
    (lambda dy: dy.astype(np.int32), TypeError, "float32 or float64"), (lambda dy: dy.tolist(), TypeError, "NumPy or CuPy"),
], ids=["shape", "float32", "int", "list"])
def test_regularization_backward_refuses_a_bad_dy_and_changes_nothing(make, bad, error, pattern):
    layer = make()
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 4, 3))
    layer(x, training=True)
    dx = layer.backward(dy)
    grads = dict(layer.grads)
    values = {k: v.copy() for k, v in layer.params.items()}
    with pytest.raises(error, match=pattern) as caught:
        layer.backward(bad(dy))
    assert "`dy`" in str(caught.value)
    assert layer.grads.keys() == grads.keys() and all(layer.grads[k] is g for k, g in grads.items())
    assert all(np.array_equal(layer.params[k], v) for k, v in values.items())
    assert_same(layer.backward(dy), dx, "dx after the refusal")


SPATIAL = [(info, fmt) for info in DROPOUT_INFOS[1:]
           for fmt in (["channels_last"] if info.name == "SpatialDropout1D" else ["channels_last", "channels_first"])]


@pytest.mark.parametrize("info, data_format", SPATIAL, ids=lambda v: str(v))
def test_spatial_dropout_drops_whole_channels(tf, info, data_format):
    """Ours (own RNG) and Keras's: every channel of every example kept or dropped whole."""
    rank = {"SpatialDropout1D": 3, "SpatialDropout2D": 4, "SpatialDropout3D": 5}[info.name]
    kwargs = {"rate": 0.5, "seed": 7} if rank == 3 else {"rate": 0.5, "seed": 7, "data_format": data_format}
    shape = (6, 5, 4, 3, 2)[:rank]
    x = np.arange(1, 1 + np.prod(shape), dtype=np.float32).reshape(shape)
    channel = 1 if data_format == "channels_first" else rank - 1
    expected = tuple(s if i in (0, channel) else 1 for i, s in enumerate(shape))
    ours = info.cls(**kwargs)
    y = ours(x, training=True)
    assert ours.keep.shape == expected
    assert 0 < ours.keep.sum() < ours.keep.size  # 12 to 30 channel draws at rate 0.5 (seed 7)
    mask_of(y, expected)
    ky, _ = keras_dropout(tf, info.keras_cls()(**kwargs), x, np.ones_like(x))
    mask_of(ky, expected)


@pytest.mark.parametrize("info", DROPOUT_INFOS[1:], ids=str)
def test_spatial_dropout_enforces_rank_as_keras(tf, info):
    rank = {"SpatialDropout1D": 3, "SpatialDropout2D": 4, "SpatialDropout3D": 5}[info.name]
    for wrong in (rank - 1, rank + 1):
        x = np.ones((2,) * wrong, np.float32)
        with pytest.raises(ValueError):
            info.keras_cls()(0.5)(x, training=True)
        with pytest.raises(ValueError, match=f"rank {rank}"):
            info.cls(0.5)(x, training=True)
        with pytest.raises(ValueError, match=f"rank {rank}"):
            info.cls(0.5)(x)  # Keras checks the rank in inference too


def test_dropout_bad_mask_fails_before_drawing():
    ours, twin = layers.Dropout(0.5, seed=3), layers.Dropout(0.5, seed=3)
    x = np.ones((4, 5))
    with pytest.raises(ValueError, match="does not broadcast"):
        ours(x, training=True, keep=np.ones((3, 5), bool))
    with pytest.raises(TypeError, match="boolean"):
        ours(x, training=True, keep=np.ones((4, 5)))
    with pytest.raises(ValueError, match="does not broadcast"):
        layers.Dropout(0.5, noise_shape=(4, 2))(x, training=True)
    assert np.array_equal(ours(x, training=True), twin(x, training=True))  # no draw was spent


def test_dropout_gradient_is_zero_where_dropped_even_for_nan():
    ours = layers.Dropout(0.5)
    x = np.ones(4)
    keep = np.array([True, False, True, False])
    ours(x, training=True, keep=keep)
    dx = ours.backward(np.array([1.0, np.nan, np.inf, -np.inf]))
    assert dx.tolist() == [2.0, 0.0, np.inf, 0.0]


# --- validation, from the table -----------------------------------------------------------


def _named(kwargs):
    """The one argument of a table entry: (name, value)."""
    (name, value), = kwargs.items()
    return name, value


@pytest.mark.parametrize("info, kwargs, error",
                         [(i, k, e) for i in INFOS for k, e in i.rejections],
                         ids=lambda v: repr(v) if isinstance(v, dict) else None)
def test_what_keras_refuses_we_refuse_the_same_way(tf, info, kwargs, error):
    args = {**info.required, **kwargs}
    with pytest.raises(error):
        info.keras_cls()(**args)
    name, value = _named(kwargs)
    with pytest.raises(error, match=re.escape(f"{name}={value!r}")):
        info.cls(**args)


@pytest.mark.parametrize("info, kwargs", [(i, k) for i in INFOS for k in i.acceptances],
                         ids=lambda v: repr(v) if isinstance(v, dict) else None)
def test_what_keras_accepts_we_accept(tf, info, kwargs):
    args = {**info.required, **kwargs}
    theirs = info.keras_cls()(**args).get_config()
    for key, value in info.cls(**args).get_config().items():  # stored as Keras stores them
        both_nan = isinstance(value, float) and np.isnan(value) and np.isnan(theirs[key])
        assert value == theirs[key] or both_nan, (key, value, theirs[key])


@pytest.mark.parametrize("info, kwargs, error", [(i, k, e) for i in INFOS for k, e in i.stricter],
                         ids=lambda v: repr(v) if isinstance(v, dict) else None)
def test_where_we_are_stricter_than_keras(tf, info, kwargs, error):
    """Keras converts (int("1"), float("0.9")) or accepts these; we refuse them at once."""
    args = {**info.required, **kwargs}
    info.keras_cls()(**args)  # accepted by Keras, or this entry is in the wrong list
    name, value = _named(kwargs)
    with pytest.raises(error, match=re.escape(f"{name}={value!r}")):
        info.cls(**args)


def test_defaults_are_keras_defaults(tf):
    for info in NORMALIZATION_INFOS:
        ours, theirs = info.cls(), info.keras_cls()()
        for key, value in ours.get_config().items():
            assert theirs.get_config()[key] == value, (info.name, key)
    assert layers.SpatialDropout2D(0.1).data_format == "channels_last"


# --- the measurement behind FLOAT32_BOUND ---------------------------------------------


def measure(trials=3000, seed=123):
    """Largest |ours - Keras| / (eps * scale) on float32 packet lanes over random cases."""
    from scratchopt.tools.keras_reference import tensorflow

    tf = tensorflow()
    rng = np.random.default_rng(seed)
    worst = {}
    for trial in range(trials):
        info = NORMALIZATION_INFOS[trial % 2]
        n, c = int(rng.integers(2, 41)), int(rng.integers(8, 41))
        mag = 10.0 ** rng.uniform(-3, 3)
        x = (rng.standard_normal((n, c)) * mag + rng.standard_normal() * mag * rng.uniform(0, 5)).astype(np.float32)
        dy = (rng.standard_normal((n, c)) * 10.0 ** rng.uniform(-3, 3)).astype(np.float32)
        weights = {k: (rng.standard_normal(c) * 10.0 ** rng.uniform(-2, 2)).astype(np.float32)
                   for k in ("gamma", "beta")}
        training = bool(rng.integers(0, 2))
        if info.name == "BatchNormalization":
            weights["moving_mean"] = (rng.standard_normal(c) * mag).astype(np.float32)
            weights["moving_variance"] = (rng.uniform(0.01, 4, c) * mag * mag).astype(np.float32)
        theirs = keras_layer(info, {}, x.shape, x.dtype, weights)
        ours = info.cls()
        ours.build(x.shape, x.dtype)
        for k, v in weights.items():
            getattr(ours, k)[...] = v
        y_scale, dx_scale, dgamma_scale, _, _ = scales(ours, x, dy, training)
        ky, kdx, kgrads = keras_call(tf, theirs, x, dy, training)
        y, dx = ours(x, training=training), ours.backward(dy)
        pairs = {"y": (y, ky, y_scale), "dx": (dx, kdx, dx_scale),
                 "dgamma": (ours.grads["gamma"], kgrads["gamma"], dgamma_scale.reshape(-1))}
        for what, (a, b, s) in pairs.items():
            with np.errstate(all="ignore"):
                ratio = np.abs(a.astype(np.float64) - b) / (EPS32 * s)
            key = f"{info.name} {what}"
            worst[key] = max(worst.get(key, 0.0), float(np.nanmax(ratio)))
    return worst


if __name__ == "__main__":
    for key, value in measure().items():
        print(f"{key:28s} {value:.2f}")
