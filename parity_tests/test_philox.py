"""TF's stateless Philox draws (``numerics/philox.py``) and the compiled mask (``philox_fast.py``).

The chain a dropout mask goes through, each link checked against the real thing:
``stateless_uniform`` against ``tf.random.stateless_uniform`` (bits, float32 and float64,
any int32 seed pair, negative ones included), ``SeedGenerator`` against Keras's seed
sequence, and the compiled mask against the reference's ``u >= threshold`` (serial and
parallel kernels, every tail length). ``test_layers.py`` checks the end of the chain:
the layers' masks and outputs against Keras layers with the same seed.
"""

import os
import random
from unittest import mock

import numpy as np
import pytest
from conftest import scaled
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchopt.numerics import philox, sums_fast

DTYPES = [np.float32, np.float64]
INT32 = st.integers(-(2**31), 2**31 - 1)


def shapes():
    """0 to 3 dims; sizes that end anywhere in a group of four, zero included."""
    return st.lists(st.integers(0, 37), min_size=0, max_size=3).map(tuple)


def bits(a):
    return a.view(f"u{a.itemsize}")


@settings(max_examples=scaled(40), deadline=None)
@given(dtype=st.sampled_from(DTYPES), shape=shapes(), seed=st.tuples(INT32, INT32))
def test_stateless_uniform_is_tfs(tf, dtype, shape, seed):
    theirs = tf.random.stateless_uniform(shape, seed=tf.constant(seed, tf.int32), dtype=dtype).numpy()
    ours = philox.stateless_uniform(shape, seed, dtype)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    assert np.array_equal(bits(ours), bits(theirs)), f"seed {seed}"


def test_an_int64_seed_pair_is_tfs_too(tf):
    """Keras hands TF int32 seeds, but TF also takes int64 ones: all 64 bits of each word count."""
    for seed in [(2**40 + 3, -(2**40)), (-1, 2**62 + 5)]:
        theirs = tf.random.stateless_uniform((9,), seed=tf.constant(seed, tf.int64), dtype=tf.float64).numpy()
        assert np.array_equal(bits(philox.stateless_uniform((9,), seed, np.float64)), bits(theirs))


@pytest.mark.parametrize("seed", [0, 1, 7, -3, 2**31 - 2, 2**31 + 5, 2**63 - 1, -(2**63)])
def test_seed_generator_gives_kerass_seed_pairs(seed):
    """``keras.random.SeedGenerator`` and the TF backend's ``_cast_seed``: state mod 2**31 - 2."""
    import keras
    from keras.src.backend.tensorflow.random import _cast_seed

    theirs, ours = keras.random.SeedGenerator(seed), philox.SeedGenerator(seed)
    for _ in range(3):
        expected = tuple(int(v) for v in _cast_seed(theirs.next()).numpy())
        assert ours.next() == expected
    assert ours.state == [int(v) for v in theirs.state.numpy()]


def test_seed_generator_without_a_seed_picks_as_keras():
    """No seed: ``random.randint(1, 10**9)``, Python's generator (``random.seed`` repeats it)."""
    from keras.src.random.seed_generator import make_default_seed

    random.seed(12)
    expected = make_default_seed()
    random.seed(12)
    assert philox.SeedGenerator().state == [expected, 0]


fast = pytest.mark.skipif(not sums_fast.available(), reason="numba is not installed: no compiled mask")


@fast
@pytest.mark.parametrize("kernel", ["serial", "parallel"])
@settings(max_examples=scaled(30), deadline=None)
@given(dtype=st.sampled_from(DTYPES), size=st.one_of(st.integers(0, 70), st.integers(70, 5000)),
       seed=st.tuples(INT32, INT32), data=st.data())
def test_the_compiled_mask_is_the_references_compare(kernel, dtype, size, seed, data):
    from scratchopt.numerics import philox_fast

    t = np.dtype(dtype).type
    tiny = np.finfo(dtype).tiny
    threshold = data.draw(st.one_of(
        st.sampled_from([t(0), t(tiny / 4), t(tiny), t(2.0 ** -23), t(0.5), np.nextafter(t(1), t(0)), t(1)]),
        st.floats(0, 1, width=8 * np.dtype(dtype).itemsize).map(t)))
    shape = data.draw(st.sampled_from([(size,), (1, size), (size, 1)]))
    limit = 0 if kernel == "parallel" else 1 << 62
    with mock.patch.object(sums_fast, "PARALLEL_MIN_ELEMENTS", limit):
        ours = philox_fast.keep_mask(shape, seed, threshold, dtype)
    reference = philox.stateless_uniform(shape, seed, dtype) >= threshold
    assert ours.dtype == np.bool_ and ours.shape == reference.shape
    assert np.array_equal(ours, reference), f"threshold {threshold!r}"


@fast
def test_dropout_takes_the_compiled_mask_unless_told_not_to():
    from scratchopt import layers
    from scratchopt.regularization import dropout_fast

    x = np.ones((50, 30), np.float32)
    drawn = {}
    for backend in ["", "numpy"]:
        with mock.patch.dict(os.environ, {"SCRATCHOPT_BACKEND": backend}), \
                mock.patch.object(dropout_fast, "keep_mask", wraps=dropout_fast.keep_mask) as spy:
            layer = layers.Dropout(0.4, seed=9)
            layer(x, training=True)
        assert spy.call_count == (0 if backend == "numpy" else 1)
        drawn[backend] = layer.keep
    assert np.array_equal(drawn[""], drawn["numpy"])


@pytest.mark.parametrize(("kwargs", "error", "pattern"), [
    ({"seed": (1, 2, 3)}, TypeError, "`seed`"), ({"seed": (1.5, 2)}, TypeError, "`seed`"),
    ({"seed": (True, 2)}, TypeError, "`seed`"), ({"shape": (3, -1)}, ValueError, "`shape`"),
    ({"shape": (2.0,)}, ValueError, "`shape`"), ({"dtype": np.float16}, TypeError, "float32 or float64"),
    ({"seed": None}, TypeError, "`seed`"), ({"shape": 5}, ValueError, "`shape`"),
], ids=["three words", "a float", "a bool", "negative", "float size", "float16", "no seed", "a bare size"])
def test_stateless_uniform_refuses_bad_arguments_by_name(kwargs, error, pattern):
    call = {"shape": (3,), "seed": (1, 2), "dtype": np.float32, **kwargs}
    with pytest.raises(error, match=pattern):
        philox.stateless_uniform(**call)


@pytest.mark.parametrize("seed", [1.5, "3", np.int64(3)], ids=["float", "str", "numpy int"])
def test_seed_generator_refuses_what_keras_refuses(seed):
    import keras

    with pytest.raises(ValueError, match="seed"):
        keras.random.SeedGenerator(seed)
    with pytest.raises(ValueError, match="`seed`"):
        philox.SeedGenerator(seed)
