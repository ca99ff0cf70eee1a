"""The TF-matching numerics (sums, pow, flush-to-zero) and the clipping functions, vs TF."""

import ctypes

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from conftest import scaled
from scratchopt import clipping
from scratchopt.numerics import (FTZ_DAZ, flush_denormals, FTZ_SUPPORTED, power, reduce_sum,
                                 reduce_sum_over, through_float32, ulp_distance)
from scratchopt.tools.parity import same_bits
from strategies import DTYPES, values

# Sizes around every boundary of Eigen's order: packets, 4-packet blocks, the 1024-packet leaf.
EDGE_SIZES = [0, 1, 7, 8, 9, 31, 32, 33, 63, 64, 65, 4095, 4096, 4097, 8191, 8192, 8193, 8200,
              16384, 16385, 24577, 65537, 100003, 1_000_001]


def wide(rng, n, dtype):
    """Values over six decades with both signs: sums that cancel and round a lot."""
    return (rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3, n)).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n", EDGE_SIZES)
def test_reduce_sum_is_tf_reduce_sum(tf, dtype, n):
    x = wide(np.random.default_rng(n), n, dtype)
    assert same_bits(reduce_sum(x), tf.reduce_sum(tf.constant(x)).numpy())


@settings(max_examples=scaled(200))
@given(dtype=st.sampled_from(DTYPES), data=st.data())
def test_reduce_sum_matches_on_drawn_arrays(tf, dtype, data):
    x = data.draw(arrays(dtype, st.integers(0, 300), elements=values(dtype, nonfinite=True)))
    ours = reduce_sum(x)
    assert same_bits(ours, tf.reduce_sum(tf.constant(x)).numpy())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(3, 8193), (5, 10001), (7, 20003), (3, 16385), (2, 4097)])
def test_long_rows_are_tf_row_sums_and_the_mse_is_keras(tf, dtype, shape):
    """Rows longer than a leaf, starting off a packet boundary: each row's tree is aligned to
    its offset in the flat array, not to 0 (the MSE's per-sample sums, float32 (5, 10001):
    summing each row as a separate array gave another bit)."""
    import keras

    from scratchopt.nn import MeanSquaredError

    rng = np.random.default_rng(sum(shape))
    x = wide(rng, int(np.prod(shape)), dtype).reshape(shape)
    assert same_bits(reduce_sum_over(x, 1), tf.reduce_sum(tf.constant(x), axis=-1).numpy())
    y_pred = wide(rng, x.size, dtype).reshape(shape)
    theirs = keras.losses.MeanSquaredError(dtype=dtype.name)(tf.constant(x), tf.constant(y_pred))
    assert same_bits(MeanSquaredError()(x, y_pred), theirs.numpy())


def test_np_sum_is_not_tf_order(tf):
    """Why reduce_sum exists: NumPy's pairwise sum rounds differently."""
    rng = np.random.default_rng(0)
    mismatches = sum(
        np.sum(x) != tf.reduce_sum(tf.constant(x)).numpy()
        for x in (wide(rng, 1000, np.float32) for _ in range(50)))
    assert mismatches > 0


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_power_is_tf_pow_including_underflow(tf, dtype):
    bases = [0.9, 0.99, 0.999, 0.9999, 0.5, 0.0, 1.0, 0.123456789]
    steps = list(range(1, 200)) + list(range(200, 100_000, 997))
    for b in bases:
        base = through_float32(b, dtype)
        for t in steps:
            ours = power(base, dtype.type(t))  # a subnormal power is flushed to 0, as by TF
            theirs = tf.pow(tf.constant(base, dtype), tf.constant(t, dtype)).numpy()
            assert same_bits(ours, theirs), (b, t, ours, theirs)


@pytest.mark.skipif(not FTZ_SUPPORTED, reason="flush-to-zero emulation needs x86-64 with glibc")
def test_flush_denormals_matches_tf_and_restores_the_mode(tf):
    tiny32, tiny64 = np.float32(1e-30), 1e-300
    with flush_denormals():
        assert np.float32(tiny32 * np.float32(1e-10)) == tf.multiply(tiny32, np.float32(1e-10)).numpy() == 0
        assert np.array([1e-40], np.float32) * np.float32(1) == 0  # subnormal inputs read as 0
        assert np.float64(tiny64) * 1e-20 == tf.multiply(np.float64(tiny64), 1e-20).numpy() == 0
    assert np.float32(tiny32 * np.float32(1e-10)) > 0  # the thread's mode is back
    assert np.float64(tiny64) * 1e-20 > 0


@pytest.mark.skipif(not FTZ_SUPPORTED, reason="flush-to-zero emulation needs x86-64 with glibc")
def test_ftz_daz_are_the_mxcsr_bits_flush_denormals_sets():
    from scratchopt.numerics import fpenv

    def mxcsr():
        mode = fpenv._FEMode()
        fpenv._libm.fegetmode(ctypes.byref(mode))
        return mode.mxcsr

    assert FTZ_DAZ == (1 << 15) | (1 << 6)  # flush to zero | denormals are zero
    before = mxcsr()
    with flush_denormals():
        assert mxcsr() & FTZ_DAZ == FTZ_DAZ
        assert mxcsr() & ~FTZ_DAZ == before & ~FTZ_DAZ  # nothing else changes
    assert mxcsr() == before


def test_ulp_distance():
    x = np.array([1.0, 0.0, -0.0, np.nan, 3.0], np.float32)
    y = np.array([np.nextafter(np.float32(1), np.float32(2)), -0.0, np.float32(-1e-45), np.nan, np.nan],
                 np.float32)
    assert list(ulp_distance(x, y)) == [1, 0, 1, 0, np.inf]


# --- clipping, the public functions ---------------------------------------------------


def grad_lists(nonfinite=False, one_dtype=False):
    @st.composite
    def draw(d):
        dtype = d(st.sampled_from(DTYPES))
        shapes = d(st.lists(st.sampled_from([(), (1,), (5,), (3, 4), (40,)]), min_size=1, max_size=3))
        return [d(arrays(dtype if one_dtype else d(st.sampled_from(DTYPES)), s,
                         elements=values(dtype, nonfinite))) for s in shapes]
    return draw()


@settings(max_examples=scaled(100))
@given(grads=grad_lists(nonfinite=True), c=st.floats(1e-3, 100))
def test_clip_by_norm_is_tf_clip_by_norm(tf, grads, c):
    ours = clipping.clip_by_norm(grads, c)
    for a, g in zip(ours, grads):
        assert same_bits(a, tf.clip_by_norm(tf.constant(g), c).numpy())


@settings(max_examples=scaled(100))
@given(grads=grad_lists(nonfinite=True), c=st.floats(1e-3, 100))
def test_clip_by_value_is_tf_clip_by_value(tf, grads, c):
    ours = clipping.clip_by_value(grads, c)
    for a, g in zip(ours, grads):
        assert same_bits(a, tf.clip_by_value(tf.constant(g), -c, c).numpy())


@settings(max_examples=scaled(100))
@given(grads=grad_lists(nonfinite=True, one_dtype=True), c=st.floats(1e-3, 100))
def test_clip_by_global_norm_is_keras(tf, grads, c):
    from keras.src.optimizers.base_optimizer import clip_by_global_norm

    ours = clipping.clip_by_global_norm(grads, c)
    theirs = clip_by_global_norm([tf.constant(g) for g in grads], c)
    for a, b in zip(ours, theirs):
        assert same_bits(a, b.numpy())


@pytest.mark.parametrize("fn", [clipping.clip_by_value, clipping.clip_by_norm, clipping.clip_by_global_norm])
def test_clipping_arguments_are_checked(fn):
    name = fn.__name__.replace("clip_by_", "clip").replace("clipglobal_norm", "global_clipnorm")
    name = {"clipvalue": "clipvalue", "clipnorm": "clipnorm"}.get(name, name)
    with pytest.raises(ValueError, match=name):
        fn([np.ones(2)], 0.0)
    with pytest.raises(TypeError, match=name):
        fn([np.ones(2)], "1")
    assert fn([None, np.ones(2)], 1.0)[0] is None


@pytest.mark.parametrize("fn", [clipping.clip_by_norm, clipping.clip_by_global_norm])
def test_norm_clipping_refuses_float16_and_the_optimizer_step_changes_nothing(fn):
    from scratchopt.optimizers import SGD

    with pytest.raises(TypeError, match="float16"):
        fn([np.ones(2, np.float16)], 1.0)
    params = [np.ones(2, np.float32)]
    opt = SGD(clipnorm=1.0) if fn is clipping.clip_by_norm else SGD(global_clipnorm=1.0)
    with pytest.raises(TypeError, match="grads\\[0\\] is float16"):
        opt.apply([np.ones(2, np.float16)], params)
    assert opt.iterations == 0 and (params[0] == 1).all()


def test_a_python_float_becomes_float16_through_float32_as_in_tf(tf):
    """TF makes a float16 tensor of a Python float via float32 (two roundings): as_dtype
    does the same, so a float16 gradient divided by a loss_scale_factor matches (found by
    the ci profile: 980.2500072678538 is 980.0 to TF, 980.5 rounded once)."""
    from scratchopt.numerics import as_dtype

    rng = np.random.default_rng(0)
    values = [980.2500072678538] + list(rng.uniform(-7e4, 7e4, 300)) + list(10.0 ** rng.uniform(-8, 4, 300))
    for v in map(float, values):
        assert as_dtype(v, "float16").tobytes() == tf.constant(v, tf.float16).numpy().tobytes(), v
