"""Dropout's compiled lines (``regularization/dropout_fast.py``) give the NumPy lines' bits.

The same layer, seed and input run once with ``SCRATCHOPT_BACKEND=numpy`` and once compiled
(serial and parallel kernels): the same mask is drawn, and ``y`` and ``dx`` must have the
same bits, -0.0, subnormals (flushed), inf and NaN included (a NaN compared as NaN, see
``test_normalization_fast``). Each case also checks that the compiled path ran.
"""

import os
from unittest import mock

import numpy as np
import pytest
from conftest import scaled
from hypothesis import given, settings
from hypothesis import strategies as st
from test_normalization_fast import assert_same_bits, shapes
from test_sums_fast import DTYPES, KERNELS, values

from scratchopt import layers
from scratchopt.numerics import sums_fast
from scratchopt.regularization import dropout_fast

pytestmark = pytest.mark.skipif(not sums_fast.available(), reason="numba is not installed: no fast path")


def run(make, x, dy, backend, kernel="serial"):
    limit = 0 if kernel == "parallel" else 1 << 62
    with mock.patch.dict(os.environ, {"SCRATCHOPT_BACKEND": backend}), \
            mock.patch.object(sums_fast, "PARALLEL_MIN_ELEMENTS", limit), \
            mock.patch.object(dropout_fast, "_run", wraps=dropout_fast._run) as spy:
        layer = make()
        out = [layer(x, training=True), layer.backward(dy)]
    return out, spy.call_count


@pytest.mark.parametrize("kernel", KERNELS)
@settings(max_examples=scaled(20), deadline=None)
@given(dtype=st.sampled_from(DTYPES), shape=shapes(), rate=st.sampled_from([0.1, 0.5, 0.7, 0.999]),
       seed=st.integers(0, 2**31), data=st.data())
def test_dropout_is_the_reference(kernel, dtype, shape, rate, seed, data):
    x, dy = data.draw(values(shape, dtype)), data.draw(values(shape, dtype))

    def make():
        return layers.Dropout(rate, seed=seed)

    want, _ = run(make, x, dy, "numpy")
    got, calls = run(make, x, dy, "auto", kernel)
    assert calls == 2, "the compiled path did not run"
    for a, b in zip(want, got):
        assert_same_bits(a, b)


def test_what_takes_the_compiled_path():
    x = np.ones((8, 4), np.float32)
    _, calls = run(lambda: layers.Dropout(0.5, seed=1), x, x, "auto")
    assert calls == 2
    for make, data in [
        (lambda: layers.Dropout(0.5, noise_shape=(8, 1), seed=1), x),  # a broadcast mask
        (lambda: layers.SpatialDropout1D(0.5, seed=1), np.ones((2, 3, 4), np.float32)),
        (lambda: layers.Dropout(0.5, seed=1), np.asfortranarray(np.ones((8, 4)))),
    ]:
        _, calls = run(make, data, data, "auto")
        assert calls == 0, data.shape
    _, calls = run(lambda: layers.Dropout(0.5, seed=1), x, x, "numpy")
    assert calls == 0
