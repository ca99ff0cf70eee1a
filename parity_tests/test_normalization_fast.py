"""The compiled BatchNormalization / LayerNormalization (``regularization/normalization_fast.py``)
give the NumPy reference's bits: y, dx, dgamma, dbeta and the moving statistics.

The reference (the layers' NumPy lines, ``SCRATCHOPT_BACKEND=numpy``) is pinned to Keras by
``test_layers.py``; here the compiled path is compared with it bit for bit on drawn shapes
(rows below and above the 16 where the column sums change order, columns in and out of
whole packets, rows longer than Eigen's leaf), dtypes, options, and values with -0.0,
subnormals, inf and NaN; serial and parallel kernels. Each test also checks that the
compiled path ran, so that a silent fallback to the reference cannot pass it.

A NaN is compared as NaN, not by its bits: IEEE leaves a NaN result's sign to the
implementation, and when both operands of an addition are NaN (or one is) the sign that
comes out depends on the operand order, which LLVM may swap (``a + b`` is ``b + a``) and
NumPy's SIMD loops choose otherwise. Keras's NaNs have the same freedom.
"""

import os
from unittest import mock

import numpy as np
import pytest
from conftest import scaled
from hypothesis import given, settings
from hypothesis import strategies as st
from test_sums_fast import DTYPES, KERNELS, TINY, values

from scratchopt import layers
from scratchopt.numerics import sums_fast
from scratchopt.regularization import normalization_fast

pytestmark = pytest.mark.skipif(not sums_fast.available(), reason="numba is not installed: no fast path")

ENTRY_POINTS = ("batch_moments", "batch_output", "batch_backward_sums", "batch_dx", "layer_forward",
                "layer_backward")


def assert_same_bits(a, b):
    """The same bits, except that any NaN equals any NaN (see the module's docstring)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    assert np.array_equal(nan_a, nan_b), f"NaN at different places: {np.flatnonzero(nan_a != nan_b)[:8]}"
    a, b = np.where(nan_a, 0, a), np.where(nan_b, 0, b)
    assert a.tobytes() == b.tobytes(), f"differ at {np.flatnonzero(a.view(np.uint8) != b.view(np.uint8))[:8]}"


def run(make, x, dy, calls=2, training=True, backend="auto", kernel="serial", trainable=True):
    """``calls`` forward/backward pairs of a fresh layer: every output, and which compiled
    entry points ran."""
    limit = 0 if kernel == "parallel" else 1 << 62
    spies = {name: mock.patch.object(normalization_fast, name, wraps=getattr(normalization_fast, name))
             for name in ENTRY_POINTS}
    with mock.patch.dict(os.environ, {"SCRATCHOPT_BACKEND": backend}), \
            mock.patch.object(sums_fast, "PARALLEL_MIN_ELEMENTS", limit), \
            mock.patch.object(normalization_fast, "PARALLEL_MIN_ELEMENTS", limit):
        started = {name: spy.start() for name, spy in spies.items()}
        try:
            layer = make()
            layer.trainable = trainable
            out = []
            for _ in range(calls):
                out.append(layer(x, training=training))
                out.append(layer.backward(dy))
                out.extend(layer.grads[k] for k in sorted(layer.grads))
                out.extend(getattr(layer, k).copy() for k in getattr(layer, "non_trainable_names", ()))
        finally:
            for spy in spies.values():
                spy.stop()
    return out, {name for name, mocked in started.items() if mocked.called}


def assert_same(make, x, dy, kernel="serial", expect=(), **options):
    want, _ = run(make, x, dy, backend="numpy", **options)
    got, ran = run(make, x, dy, kernel=kernel, **options)
    assert set(expect) <= ran, f"the compiled path did not run: {sorted(ran)}"
    assert len(want) == len(got)
    for a, b in zip(want, got):
        assert_same_bits(a, b)


@st.composite
def shapes(draw):
    """Shapes whose last axis is normalized: 2 to 4 dims, at least 2 rows and 2 columns."""
    cols = draw(st.one_of(st.integers(2, 40), st.sampled_from([64, 100, 129, 257])))
    lead = draw(st.lists(st.one_of(st.integers(1, 20), st.sampled_from([16, 17, 33])), min_size=1, max_size=3))
    if int(np.prod(lead)) < 2:
        lead[0] = 2
    return (*lead, cols)


BATCH_EXPECT = ("batch_moments", "batch_output", "batch_backward_sums", "batch_dx")
LAYER_EXPECT = ("layer_forward", "layer_backward")


@pytest.mark.parametrize("kernel", KERNELS)
@settings(max_examples=scaled(20), deadline=None)
@given(dtype=st.sampled_from(DTYPES), shape=shapes(), center=st.booleans(), scale=st.booleans(),
       momentum=st.sampled_from([0.99, 0.9, 0.0]), epsilon=st.sampled_from([1e-3, 1e-5, 0.0]), data=st.data())
def test_batch_normalization_is_the_reference(kernel, dtype, shape, center, scale, momentum, epsilon, data):
    x, dy = data.draw(values(shape, dtype)), data.draw(values(shape, dtype))

    def make():
        return layers.BatchNormalization(momentum=momentum, epsilon=epsilon, center=center, scale=scale)

    assert_same(make, x, dy, kernel=kernel, expect=BATCH_EXPECT)


@pytest.mark.parametrize("kernel", KERNELS)
@settings(max_examples=scaled(10), deadline=None)
@given(dtype=st.sampled_from(DTYPES), shape=shapes(), training=st.booleans(), data=st.data())
def test_batch_normalization_with_its_moving_statistics(kernel, dtype, shape, training, data):
    """Inference, and a frozen layer in a training call: ``y = x * inv + shift``, ``dx = dy * inv``."""
    x, dy = data.draw(values(shape, dtype)), data.draw(values(shape, dtype))
    assert_same(layers.BatchNormalization, x, dy, kernel=kernel, training=training, trainable=False,
                expect=("batch_output", "batch_dx"))


@pytest.mark.parametrize("kernel", KERNELS)
@settings(max_examples=scaled(20), deadline=None)
@given(dtype=st.sampled_from(DTYPES), shape=shapes(), epsilon=st.sampled_from([1e-3, 1e-6, 0.0]),
       data=st.data())
def test_layer_normalization_is_the_reference(kernel, dtype, shape, epsilon, data):
    x, dy = data.draw(values(shape, dtype)), data.draw(values(shape, dtype))
    assert_same(lambda: layers.LayerNormalization(epsilon=epsilon), x, dy, kernel=kernel, expect=LAYER_EXPECT)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [
    (3000, 100), (517, 40), (2, 3), (15, 9), (16, 9), (17, 8), (19, 7),  # the column sums' layouts
    (3, 20001), (2, 9000, 5), (40, 33, 16), (33, 4097),  # rows longer than a leaf; odd row starts
])
def test_layer_shaped_inputs(kernel, dtype, shape):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    x.reshape(-1)[::97] = -0.0
    assert_same(layers.BatchNormalization, x, dy, kernel=kernel, expect=BATCH_EXPECT)
    assert_same(layers.LayerNormalization, x, dy, kernel=kernel, expect=LAYER_EXPECT)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_subnormals_flush_in_every_thread(kernel, dtype):
    """Inputs near the smallest normal: differences and products that would be subnormal are
    flushed in the compiled loops (and numba's workers) as in the reference."""
    smallest = np.finfo(dtype).smallest_normal
    rng = np.random.default_rng(4)
    x = (rng.integers(-3, 4, (400, 24)) * smallest).astype(dtype)
    x[::3] = TINY[dtype]
    dy = (rng.standard_normal((400, 24)) * 1e-3).astype(dtype)
    assert_same(layers.BatchNormalization, x, dy, kernel=kernel, expect=BATCH_EXPECT)
    assert_same(layers.LayerNormalization, x, dy, kernel=kernel, expect=LAYER_EXPECT)


def test_what_takes_the_compiled_path():
    x = np.ones((4, 3), np.float32)
    dy = np.ones((4, 3), np.float32)
    _, ran = run(layers.BatchNormalization, x, dy, calls=1)
    assert ran == set(BATCH_EXPECT)
    for make, data in [
        (lambda: layers.BatchNormalization(axis=0), x),  # not the last axis
        (lambda: layers.LayerNormalization(axis=0), x),
        (lambda: layers.LayerNormalization(center=False), x),  # LayerNormalization: defaults only
        (layers.BatchNormalization, np.ones((1, 3), np.float32)),  # one row: TF copies, no sum
        (layers.LayerNormalization, np.ones((4, 1), np.float32)),  # one column
        (layers.BatchNormalization, np.asfortranarray(np.ones((4, 3), np.float32))),  # not C-contiguous
    ]:
        _, ran = run(make, data, np.ones_like(data), calls=1)
        assert not ran, (make, data.shape)
    _, ran = run(layers.BatchNormalization, x, dy, calls=1, backend="numpy")
    assert not ran


def test_backward_reads_the_forward_copy_of_x():
    """The compiled forward writes backward's copy of ``x`` in the same pass: changing the
    input in place between the calls does not change dx (as in the reference, and Keras)."""
    rng = np.random.default_rng(5)
    for make in (layers.BatchNormalization, layers.LayerNormalization):
        x = rng.standard_normal((64, 24)).astype(np.float32)
        dy = rng.standard_normal((64, 24)).astype(np.float32)
        layer = make()
        layer(x, training=True)
        x_before = x.copy()
        x *= 7
        dx = layer.backward(dy)
        fresh = make()
        fresh(x_before, training=True)
        assert_same_bits(dx, fresh.backward(dy))
