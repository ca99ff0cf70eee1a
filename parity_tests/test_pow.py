"""``numerics.pow.power_array`` against ``tf.pow``, element for element."""

import numpy as np
import pytest
from conftest import scaled
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from scratchopt.numerics import power
from scratchopt.numerics.pow import power_array

UINT = {np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}
SPECIAL = [0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0, np.inf, -np.inf, np.nan, 1e-30, 1e30, 7.25]


def same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    nan = np.isnan(a) & np.isnan(b)
    return a.dtype == b.dtype and a.shape == b.shape and bool(np.all(nan | (a.view(UINT[a.dtype]) ==
                                                                             b.view(UINT[b.dtype]))))


def tf_pow(tf, x, y):
    return tf.pow(tf.constant(x), tf.constant(y)).numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("exponent", [-0.5, 0.5, -1.5, 2.0, 0.9, -1.0 / 3.0])
def test_positive_bases_to_an_optimizers_exponents(tf, dtype, exponent):
    rng = np.random.default_rng(0)
    x = np.exp(rng.uniform(-30, 30, 100_003)).astype(dtype)
    y = dtype(exponent)
    assert same(power_array(x, y), tf_pow(tf, x, y))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values_every_pair_on_packets_and_tail(tf, dtype):
    values = np.array(SPECIAL, dtype)
    x, y = (a.reshape(-1) for a in np.meshgrid(values, values))
    for n in (x.size, x.size - 3):  # all in packets, then with a tail
        assert same(power_array(x[:n], y[:n]), tf_pow(tf, x[:n], y[:n]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=scaled(60), deadline=None)
@given(data=st.data())
def test_drawn_arrays(tf, dtype, data):
    n = data.draw(st.integers(1, 40))
    bits = np.finfo(dtype).bits
    finite = st.floats(float(dtype(1e-20)), float(dtype(1e20)), width=bits)
    x = data.draw(arrays(dtype, n, elements=finite))
    y = data.draw(arrays(dtype, n, elements=st.floats(-8, 8, width=bits)))
    assert same(power_array(x, y), tf_pow(tf, x, y))


def test_libm_everywhere_would_not_do():
    """The reason this module exists: on packets TF is not libm (a quarter of elements differ)."""
    rng = np.random.default_rng(1)
    x = np.exp(rng.uniform(-10, 10, 10_000)).astype(np.float32)
    differ = power_array(x, np.float32(-0.5)) != power(x, np.float32(-0.5))
    assert differ.mean() > 0.05


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_power_array_in_blocks_gives_the_whole_calls_bits(dtype):
    """power_array runs generic_pow block by block (cache-sized): the same bits as one call
    over every whole packet, and libm's on the tail, across block boundaries."""
    from scratchopt.numerics import pow as pow_module
    from scratchopt.numerics import tf_arithmetic
    from scratchopt.numerics.libm import power

    rng = np.random.default_rng(0)
    n = 2 * pow_module._BLOCK + 13
    x = (rng.random(n) * 10).astype(dtype)
    y = (rng.standard_normal(n)).astype(dtype)
    whole = n - n % pow_module.LANES[np.dtype(dtype)]
    with tf_arithmetic():
        expected = np.concatenate([pow_module.generic_pow(x[:whole], y[:whole]), power(x[whole:], y[whole:])])
        assert pow_module.power_array(x, y).tobytes() == expected.astype(dtype).tobytes()
