"""MaxPooling2D, GlobalAveragePooling2D, Flatten and Activation against Keras 3.15.1 / TF 2.21.

All bit-exact, forward and backward (``tf.GradientTape`` with ``output_gradients=dy``), float32
and float64, channels_last and channels_first: max pooling with ties, overlapping windows,
"same" padding, -inf and NaN; global average pooling's Eigen-order sum; Flatten's reshape.
Bad arguments and inputs raise before anything changes.
"""

import numpy as np
import pytest
from conftest import scaled
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchopt.nn.activations import Activation
from scratchopt.nn.pooling import GlobalAveragePooling2D, MaxPooling2D
from scratchopt.nn.reshaping import Flatten
from scratchopt.tools.parity import same_bits


def keras_forward_backward(tf, layer, x, rng):
    """Keras's ``y`` and ``dx`` for a random ``dy`` (returned too)."""
    variable = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(variable)
        y = layer(variable)
    dy = rng.standard_normal(y.shape).astype(x.dtype)
    dx = tape.gradient(y, variable, output_gradients=tf.constant(dy))
    return y.numpy(), dy, dx.numpy()


def images(rng, shape, dtype, ties):
    """Random images; with ``ties`` small integers (many equal maxima), some -inf and NaN."""
    if not ties:
        return rng.standard_normal(shape).astype(dtype)
    x = rng.integers(-2, 3, shape).astype(dtype)
    x[rng.random(shape) < 0.05] = -np.inf
    x[rng.random(shape) < 0.05] = np.nan
    return x


@settings(max_examples=scaled(30))
@given(seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float32, np.float64]),
       pool=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       strides=st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))),
       padding=st.sampled_from(["valid", "same"]), channels_first=st.booleans(), ties=st.booleans(),
       channels=st.sampled_from([1, 3, 8, 9]))
def test_max_pooling_is_bit_exact(tf, seed, dtype, pool, strides, padding, channels_first, ties, channels):
    import keras

    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(pool[0], 9)), int(rng.integers(pool[1], 9))
    fmt = "channels_first" if channels_first else "channels_last"
    shape = (2, channels, h, w) if channels_first else (2, h, w, channels)
    x = images(rng, shape, dtype, ties)
    theirs = keras.layers.MaxPooling2D(pool, strides, padding, fmt, dtype=np.dtype(dtype).name)
    ky, dy, kdx = keras_forward_backward(tf, theirs, x, rng)
    ours = MaxPooling2D(pool, strides, padding, fmt)
    assert same_bits(ours(x), ky)
    assert same_bits(ours.backward(dy), kdx)


def test_max_pooling_ties_go_to_the_first_maximum(tf):
    """A window of equal values: the top-left one (row-major first) gets the gradient; with
    overlapping windows (stride 1 < pool 2) an element that is the maximum of several windows
    gets the sum of their gradients."""
    x = np.ones((1, 3, 3, 1))
    pool = MaxPooling2D((2, 2), strides=1)
    pool(x)
    dx = pool.backward(np.array([[[[1.0], [2.0]], [[4.0], [8.0]]]]))
    assert dx[0, :, :, 0].tolist() == [[1.0, 2.0, 0.0], [4.0, 8.0, 0.0], [0.0, 0.0, 0.0]]
    x = np.array([[0.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 0.0]]).reshape(1, 3, 3, 1)
    pool(x)
    dx = pool.backward(np.array([[[[1.0], [2.0]], [[4.0], [8.0]]]]))
    assert dx[0, :, :, 0].tolist() == [[0.0, 0.0, 0.0], [0.0, 15.0, 0.0], [0.0, 0.0, 0.0]]


def test_max_pooling_same_padding_is_never_the_maximum(tf):
    """'same' padding counts as -inf: a window of -inf values and padding takes its first real
    element's gradient, and its value is -finfo.max, as TF's kernel."""
    import keras

    x = np.full((1, 3, 3, 1), -np.inf)
    rng = np.random.default_rng(0)
    ky, dy, kdx = keras_forward_backward(tf, keras.layers.MaxPooling2D(2, padding="same", dtype="float64"), x, rng)
    ours = MaxPooling2D(2, padding="same")
    assert same_bits(ours(x), ky) and ky.min() == -np.finfo(np.float64).max
    assert same_bits(ours.backward(dy), kdx)


@settings(max_examples=scaled(15))
@given(seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float32, np.float64]),
       shape=st.tuples(st.integers(1, 4), st.integers(1, 12), st.integers(1, 12), st.integers(1, 20)),
       channels_first=st.booleans(), keepdims=st.booleans())
def test_global_average_pooling_is_bit_exact(tf, seed, dtype, shape, channels_first, keepdims):
    import keras

    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 10).astype(dtype)
    fmt = "channels_first" if channels_first else "channels_last"
    theirs = keras.layers.GlobalAveragePooling2D(fmt, keepdims, dtype=np.dtype(dtype).name)
    ky, dy, kdx = keras_forward_backward(tf, theirs, x, rng)
    ours = GlobalAveragePooling2D(fmt, keepdims)
    assert same_bits(ours(x), ky)
    assert same_bits(ours.backward(dy), kdx)


@settings(max_examples=scaled(10))
@given(seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float32, np.float64]),
       shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), channels_first=st.booleans())
def test_flatten_is_bit_exact(tf, seed, dtype, shape, channels_first):
    import keras

    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    fmt = "channels_first" if channels_first else "channels_last"
    ky, dy, kdx = keras_forward_backward(tf, keras.layers.Flatten(fmt, dtype=np.dtype(dtype).name), x, rng)
    ours = Flatten(fmt)
    y = ours(x)
    assert same_bits(y, ky)
    y[...] = 0  # the output is a copy: the input is untouched
    assert same_bits(ours.backward(dy), kdx)


@pytest.mark.parametrize("name", ["relu", "linear", None])
def test_activation_layer_is_bit_exact(tf, name):
    import keras

    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 7))
    ky, dy, kdx = keras_forward_backward(tf, keras.layers.Activation(name, dtype="float64"), x, rng)
    ours = Activation(name)
    assert same_bits(ours(x), ky)
    assert same_bits(ours.backward(dy), kdx)


# --- bad arguments: Keras's exception types, at construction -------------------------------


@pytest.mark.parametrize("kwargs", [{"pool_size": 0}, {"pool_size": (2,)}, {"pool_size": (2, 2, 2)},
                                    {"pool_size": "a"}, {"pool_size": (2, -1)}, {"pool_size": None}])
def test_max_pooling_refuses_what_keras_refuses(kwargs):
    import keras

    with pytest.raises(ValueError):
        keras.layers.MaxPooling2D(**kwargs)
    with pytest.raises(ValueError, match="pool_size"):
        MaxPooling2D(**kwargs)


@pytest.mark.parametrize("kwargs", [{"strides": (1,)}, {"strides": -1}, {"data_format": "nhwc"},
                                    {"strides": 0}, {"padding": "full"}, {"padding": 3}, {"pool_size": 2.0}])
def test_max_pooling_bad_arguments(kwargs):
    """ValueError (Keras's type for these; Keras lets strides=0, padding "full" and 2.0 through
    to fail or misbehave later: refused here at once)."""
    with pytest.raises(ValueError):
        MaxPooling2D(**kwargs)


def test_global_average_pooling_and_flatten_bad_arguments():
    import keras

    for make in (keras.layers.GlobalAveragePooling2D, GlobalAveragePooling2D, keras.layers.Flatten, Flatten):
        with pytest.raises(ValueError, match="data_format"):
            make(data_format="nchw")
    with pytest.raises(TypeError, match="keepdims"):
        GlobalAveragePooling2D(keepdims="yes")


def test_activation_bad_identifier():
    import keras

    for name in ("swish_typo", "tanhh"):
        with pytest.raises(ValueError):
            keras.layers.Activation(name)
        with pytest.raises(ValueError, match="Could not interpret activation function identifier"):
            Activation(name)
    with pytest.raises(TypeError):
        Activation(3)


# --- bad inputs: refused before anything changes ----------------------------------------------


@pytest.mark.parametrize("make", [lambda: MaxPooling2D(2), lambda: GlobalAveragePooling2D()])
@pytest.mark.parametrize("x", [np.ones((2, 4, 4)), np.ones((1, 2, 4, 4, 1)), np.ones(3)])
def test_wrong_rank_is_refused(make, x):
    layer = make()
    good = np.arange(32.0).reshape(2, 4, 4, 1)
    y = layer(good)
    dy = np.ones_like(y)
    before = layer.backward(dy)
    with pytest.raises(ValueError, match="ndim=4"):
        layer(x)
    assert same_bits(layer.backward(dy), before)  # still the last good call's


def test_pool_larger_than_the_input_is_refused(tf):
    """Keras's eager call fails inside TF (oneDNN's AbortedError in float32); here a ValueError,
    before anything changes."""
    import keras

    with pytest.raises(Exception, match="pooling|size|negative"):
        keras.layers.MaxPooling2D(3)(np.ones((1, 2, 5, 1), np.float32))
    layer = MaxPooling2D(3)
    with pytest.raises(ValueError, match="negative"):
        layer(np.ones((1, 2, 5, 1)))
    assert layer._last is None
    assert MaxPooling2D(3, padding="same")(np.ones((1, 2, 5, 1))).shape == (1, 1, 2, 1)


def test_integer_input_is_refused():
    with pytest.raises(TypeError, match="float32 or float64"):
        MaxPooling2D()(np.ones((1, 2, 2, 1), int))


def test_repr_and_config():
    layer = MaxPooling2D(3, strides=1, padding="same")
    assert repr(layer) == ("MaxPooling2D(pool_size=(3, 3), strides=(1, 1), padding='same', "
                           "data_format='channels_last')")
    assert MaxPooling2D.from_config(layer.get_config()).get_config() == layer.get_config()
    assert GlobalAveragePooling2D(keepdims=True).get_config() == {"data_format": "channels_last", "keepdims": True}
    assert Flatten().get_config() == {"data_format": "channels_last"}
    assert Activation("softmax").get_config() == {"activation": "softmax"}
