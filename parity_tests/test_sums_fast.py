"""The compiled sums (``numerics/sums_fast.py``) give the NumPy reference's bits (``sums.py``).

The reference is itself pinned to TF's bits by ``test_numerics.py``; here every kernel is
compared with it bit for bit, on drawn shapes, axes and dtypes: sizes around Eigen's leaf
(8192 float32 / 4096 float64 elements) and its packets, each row's tree start residue,
-0.0, subnormals (read and produced: flushed under ``tf_arithmetic`` in the calling
thread and in numba's worker threads alike), inf and NaN; the serial and the parallel
kernels. ``SCRATCHOPT_BACKEND=numpy`` forces the reference.
"""

import functools
import os
from unittest import mock

import numpy as np
import pytest
from conftest import scaled
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchopt.numerics import sums, sums_fast, tf_arithmetic
from scratchopt.numerics.matmul import bias_add_grad
from scratchopt.optimizers import clipping, clipping_fast

pytestmark = pytest.mark.skipif(not sums_fast.available(), reason="numba is not installed: no fast path")

DTYPES = [np.float32, np.float64]
KERNELS = ["serial", "parallel"]
TINY = {np.float32: np.float32(1e-40), np.float64: np.float64(1e-310)}  # subnormal


def reference(function, *args):
    with mock.patch.dict(os.environ, {"SCRATCHOPT_BACKEND": "numpy"}):
        return function(*args)


def fast(function, *args, kernel="serial"):
    limit = 0 if kernel == "parallel" else 1 << 62
    with mock.patch.dict(os.environ, {"SCRATCHOPT_BACKEND": "auto"}), \
            mock.patch.object(sums_fast, "PARALLEL_MIN_ELEMENTS", limit):
        return function(*args)


def assert_same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes(), f"differ at {np.flatnonzero(a.view(np.uint8) != b.view(np.uint8))[:8]}"


def sizes(dtype):
    """Sizes around the leaf (and two leaves, and the 4-packet block) boundaries."""
    leaf = 1024 * (8 if dtype == np.float32 else 4)
    near = st.sampled_from([leaf, 2 * leaf, 3 * leaf, 32, 16]).flatmap(
        lambda b: st.integers(max(0, b - 9), b + 9))
    return st.one_of(near, st.integers(0, 200), st.integers(0, 5 * leaf))


@st.composite
def values(draw, shape, dtype):
    """An array of ``shape``: N(0, s) with drawn special values at drawn places."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([1.0, 1e-3, 1e30 if dtype == np.float32 else 1e300]))
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    n = x.size
    if n:
        specials = draw(st.lists(st.sampled_from(["-0", "tiny", "-tiny", "nan", "inf", "-inf", "big"]),
                                 max_size=4))
        flat = x.reshape(-1)
        for kind in specials:
            i = draw(st.integers(0, n - 1))
            flat[i] = {"-0": -0.0, "tiny": TINY[dtype], "-tiny": -TINY[dtype], "nan": np.nan, "inf": np.inf,
                       "-inf": -np.inf, "big": np.finfo(dtype).max / 2}[kind]
        if draw(st.booleans()):  # whole stretches of -0.0 or subnormals
            lo = draw(st.integers(0, n - 1))
            flat[lo:lo + draw(st.integers(1, 64))] = draw(st.sampled_from([-0.0, TINY[dtype], -TINY[dtype]]))
    return x


@pytest.mark.parametrize("kernel", KERNELS)
@settings(max_examples=scaled(60), deadline=None)
@given(dtype=st.sampled_from(DTYPES), data=st.data())
def test_full_sum_and_the_norm_sums(kernel, dtype, data):
    n = data.draw(sizes(dtype))
    x = data.draw(values((n,), dtype))
    assert_same_bits(fast(sums.reduce_sum, x, kernel=kernel), reference(sums.reduce_sum, x))
    with tf_arithmetic():
        square, absolute = x * x, abs(x)
    assert_same_bits(fast(sums.sum_of_squares, x, kernel=kernel), reference(sums.reduce_sum, square))
    assert_same_bits(fast(sums.sum_of_abs, x, kernel=kernel), reference(sums.reduce_sum, absolute))
    assert_same_bits(reference(sums.sum_of_squares, x), reference(sums.reduce_sum, square))


@pytest.mark.parametrize("kernel", KERNELS)
@settings(max_examples=scaled(40), deadline=None)
@given(dtype=st.sampled_from(DTYPES), data=st.data())
def test_segment_sums_of_squares_are_each_segments_own_sum(kernel, dtype, data):
    """A packed buffer's squared norms in one call: each segment as a tensor of its own (a tree
    from its first element, a copy for one element, 0 for none), segments back to back or
    with gaps, and the same bits as ``sum_of_squares`` of each and as the reference."""
    lengths = data.draw(st.lists(st.one_of(st.integers(0, 3), sizes(dtype)), min_size=1, max_size=6))
    gaps = data.draw(st.lists(st.integers(0, 9), min_size=len(lengths), max_size=len(lengths)))
    starts = np.cumsum([0] + [n + gap for n, gap in zip(lengths, gaps)])[:-1] + gaps[0]
    flat = data.draw(values((int(starts[-1]) + lengths[-1] + 3,), dtype))
    ours = fast(sums.segment_sums_of_squares, flat, starts, tuple(lengths), kernel=kernel)
    each = [fast(sums.sum_of_squares, flat[a:a + n], kernel=kernel) for a, n in zip(starts, lengths)]
    assert_same_bits(ours, np.array(each, dtype))
    assert_same_bits(ours, reference(sums.segment_sums_of_squares, flat, starts, tuple(lengths)))


@pytest.mark.parametrize("kernel", KERNELS)
@settings(max_examples=scaled(30), deadline=None)
@given(dtype=st.sampled_from(DTYPES), data=st.data())
def test_sums_of_squares_of_a_list_are_each_ones_sum(kernel, dtype, data):
    """A global norm's per-tensor sums in one call: the bits of ``sum_of_squares`` of each
    (the fast path, and the reference), tensors of 0 and 1 elements and 2-d ones included."""
    shapes = data.draw(st.lists(st.one_of(st.tuples(sizes(dtype)), st.tuples(st.integers(0, 40), st.integers(0, 40))),
                                min_size=1, max_size=5))
    xs = [data.draw(values(shape, dtype)) for shape in shapes]
    ours = fast(sums.sums_of_squares, xs, kernel=kernel)
    assert_same_bits(ours, np.array([fast(sums.sum_of_squares, x, kernel=kernel) for x in xs], dtype))
    assert_same_bits(ours, reference(sums.sums_of_squares, xs))


def segment_scales(flat, starts, lengths, clip, kernel):
    """``(ours, reference)``: ``clipping_fast.global_scale`` of the segments, and
    ``clipping.global_scale`` of them as a list of gradients on the NumPy path, both inside
    ``tf_arithmetic`` (as in a step)."""
    grads = [flat[a:a + n] for a, n in zip(starts, lengths)]
    with tf_arithmetic():
        ours = fast(clipping_fast.global_scale, flat, np.asarray(starts, np.int64), tuple(lengths), clip,
                    kernel=kernel)
        return ours, reference(clipping.global_scale, grads, clip)


@pytest.mark.parametrize("kernel", KERNELS)
@settings(max_examples=scaled(60), deadline=None)
@given(dtype=st.sampled_from(DTYPES), data=st.data())
def test_a_buffers_global_scale_in_one_call_is_the_references(kernel, dtype, data):
    """``global_clipnorm``'s factor for one buffer in one compiled call: the bits of
    ``clipping.global_scale`` of its segments as a list (the NumPy lines), one segment or
    several (0, 1 and many elements), clip values on both sides of the norm, and the NaN
    of an infinite or NaN norm."""
    lengths = data.draw(st.lists(st.one_of(st.integers(0, 3), sizes(dtype)), min_size=1, max_size=6))
    gaps = data.draw(st.lists(st.integers(0, 9), min_size=len(lengths), max_size=len(lengths)))
    starts = np.cumsum([0] + [n + gap for n, gap in zip(lengths, gaps)])[:-1] + gaps[0]
    flat = data.draw(values((int(starts[-1]) + lengths[-1] + 3,), dtype))
    clip = data.draw(st.sampled_from([1.0, 0.7, 1e-3, 3.3e4, 1e30, 1e-30, 5]))
    ours, expected = segment_scales(flat, starts, lengths, clip, kernel)
    assert_same_bits(ours, expected)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_a_buffers_global_scale_over_many_segments(kernel, dtype):
    """More segments than one leaf of the sum over their squared norms holds (20,000 > 8192
    float32 values: that sum is a tree of leaves too), a thousand, and one: the
    reference's bits, on gradients that need clipping and gradients that do not."""
    rng = np.random.default_rng(9)
    for count, length in [(20_000, 3), (1000, 100), (1, 100_003)]:
        flat = rng.standard_normal(count * length).astype(dtype)
        starts = np.arange(count, dtype=np.int64) * length
        for clip in (0.5, 1e6):
            ours, expected = segment_scales(flat, starts, (length,) * count, clip, kernel)
            assert_same_bits(ours, expected)


@pytest.mark.parametrize(("flat", "starts", "lengths", "clip", "error", "says"), [
    (np.arange(10.0), [8], (5,), 1.0, ValueError, "inside flat"),
    (np.arange(10.0), [0, 2], (2,), 1.0, ValueError, "one entry per segment"),
    (np.arange(10.0), [], (), 1.0, ValueError, "at least one segment"),
    (np.arange(10.0), [0], (10,), 0.0, ValueError, "global_clipnorm"),
    (np.arange(10.0), [0], (10,), "1", TypeError, "global_clipnorm"),
    (np.arange(10.0).reshape(2, 5), [0], (2,), 1.0, TypeError, "flat must be"),
    (np.arange(20.0)[::2], [0], (2,), 1.0, TypeError, "flat must be"),
    (np.arange(10, dtype=np.int64), [0], (2,), 1.0, TypeError, "flat must be"),
    ([1.0, 2.0], [0], (2,), 1.0, TypeError, "flat must be"),
], ids=["past the end", "counts differ", "no segment", "zero clip", "str clip", "2-d", "strided", "int", "list"])
def test_a_buffers_global_scale_refuses_bad_input_before_any_read(flat, starts, lengths, clip, error, says):
    """``clipping_fast.global_scale`` called on its own: a clear error naming the argument,
    and ``flat`` unchanged."""
    before = np.array(flat).tobytes()
    with pytest.raises(error, match=says):
        clipping_fast.global_scale(flat, np.array(starts, np.int64), lengths, clip)
    assert np.array(flat).tobytes() == before


@pytest.mark.parametrize(("flat", "starts", "lengths", "says"), [
    (np.arange(10.0), [8], (5,), "inside flat"),
    (np.arange(10.0), [-3], (2,), "inside flat"),
    (np.arange(10.0), [3], (-2,), "inside flat"),
    (np.arange(10.0), [0, 2], (2,), "one entry per segment"),
    (np.arange(10.0).reshape(2, 5), [0], (2,), "1-d"),
], ids=["past the end", "negative start", "negative size", "counts differ", "2-d"])
@pytest.mark.parametrize("kernel", ["reference", *KERNELS])
def test_segments_outside_the_array_are_refused_before_any_read(flat, starts, lengths, says, kernel):
    """The compiled kernel reads where it is told: a segment outside ``flat`` is a ValueError
    on every path, and ``flat`` is unchanged."""
    before = flat.copy()
    call = functools.partial(sums.segment_sums_of_squares, flat, np.array(starts), lengths)
    with pytest.raises(ValueError, match=says):
        reference(call) if kernel == "reference" else fast(call, kernel=kernel)
    assert before.tobytes() == flat.tobytes()
    with pytest.raises(ValueError, match="at least one array"):
        sums.sums_of_squares([])


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_segment_sums_of_many_leaves(kernel, dtype):
    """Segments of several leaves each, at offsets off a packet: their trees split as a
    tensor's of their own (a tree from the buffer's index 0 would differ in about a quarter
    of such sums)."""
    rng = np.random.default_rng(5)
    lengths = (20_000, 1, 0, 9_001, 33_333, 17, 12_345, 8_193)
    starts = np.cumsum((3,) + tuple(n + 5 for n in lengths[:-1]))
    for _ in range(8):
        flat = rng.standard_normal(int(starts[-1]) + lengths[-1]).astype(dtype)
        ours = fast(sums.segment_sums_of_squares, flat, starts, lengths, kernel=kernel)
        assert_same_bits(ours, np.array([fast(sums.sum_of_squares, flat[a:a + n]) for a, n in zip(starts, lengths)],
                                        dtype))


#: The most elements a drawn array may have (4 MB of float64): a bigger shape, as
#: (257, 257, 257, 257) once was, is drawn again with its later dims small.
MAX_ELEMENTS = 500_000


@st.composite
def shapes_and_axes(draw):
    ndim = draw(st.integers(1, 4))
    dims = st.one_of(st.integers(1, 12), st.sampled_from([16, 17, 31, 100, 257]))
    shape = []
    for _ in range(ndim):
        room = MAX_ELEMENTS // max(1, int(np.prod(shape)))
        shape.append(draw(dims if room >= 257 else st.integers(1, room)))
    shape = tuple(shape)
    axes = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return shape, tuple(axes)


@pytest.mark.parametrize("kernel", KERNELS)
@settings(max_examples=scaled(80), deadline=None)
@given(dtype=st.sampled_from(DTYPES), shape_axes=shapes_and_axes(), keepdims=st.booleans(), data=st.data())
def test_reductions_over_axes(kernel, dtype, shape_axes, keepdims, data):
    shape, axes = shape_axes
    x = data.draw(values(shape, dtype))
    for function in (sums.reduce_sum_over, sums.reduce_mean_over):
        assert_same_bits(fast(function, x, axes, keepdims, kernel=kernel), reference(function, x, axes, keepdims))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axes", [
    ((3000, 100), (0,)), ((3000, 100), (1,)),  # BatchNormalization's and LayerNormalization's sums
    ((50, 20, 30, 16), (0, 1, 2)), ((8, 16, 30, 30), (0, 2, 3)),  # NHWC and NCHW statistics
    ((3, 20001), (1,)), ((7, 9000, 3), (1,)), ((20001, 3), (0,)), ((2, 40000), (0, 1)),
    ((5, 3, 16411), (2,)), ((16411, 5), (1,)),
])
def test_layer_shaped_reductions(kernel, dtype, shape, axes):
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    x.reshape(-1)[::97] = -0.0
    for function in (sums.reduce_sum_over, sums.reduce_mean_over):
        assert_same_bits(fast(function, x, axes, True, kernel=kernel), reference(function, x, axes, True))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_subnormals_flush_in_every_thread(kernel, dtype):
    """Sums of subnormals are 0, and cancellations that would be subnormal flush, in the
    workers too (their MXCSR gets the caller's FTZ/DAZ bits)."""
    tiny = TINY[dtype]
    x = np.full(200_000, tiny, dtype)
    assert fast(sums.reduce_sum, x, kernel=kernel) == 0
    smallest = np.finfo(dtype).smallest_normal
    y = np.zeros(200_000, dtype)
    y[::2], y[1::2] = smallest * dtype(1.5), -smallest  # each pair leaves a subnormal
    assert_same_bits(fast(sums.reduce_sum, y, kernel=kernel), reference(sums.reduce_sum, y))
    rows = y.reshape(2000, 100)
    assert_same_bits(fast(sums.reduce_sum_over, rows, 0, kernel=kernel), reference(sums.reduce_sum_over, rows, 0))
    assert_same_bits(fast(sums.reduce_sum_over, rows, 1, kernel=kernel), reference(sums.reduce_sum_over, rows, 1))


@pytest.mark.parametrize("kernel", KERNELS)
@settings(max_examples=scaled(40), deadline=None)
@given(dtype=st.sampled_from(DTYPES), rows=st.integers(0, 300), cols=st.integers(2, 70), data=st.data())
def test_bias_add_grad(kernel, dtype, rows, cols, data):
    dz = data.draw(values((rows, cols), dtype))
    assert_same_bits(fast(bias_add_grad, dz, kernel=kernel), reference(bias_add_grad, dz))


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_element_is_copied_as_tf_does(dtype):
    """``tf.reduce_sum`` of one element copies it: -0.0 and a subnormal stay (both paths)."""
    for value in (-0.0, TINY[dtype]):
        x = np.array([value], dtype)
        for run in (reference, fast):
            assert_same_bits(run(sums.reduce_sum, x), x[0])
            with tf_arithmetic():
                assert_same_bits(run(sums.sum_of_abs, x), reference(sums.reduce_sum, abs(x)))


def test_the_switch_and_what_takes_the_fast_path():
    x = np.ones(10, np.float32)
    assert sums_fast.wanted(x)
    with mock.patch.dict(os.environ, {"SCRATCHOPT_BACKEND": "numpy"}):
        assert not sums_fast.wanted(x)
    assert not sums_fast.wanted(x.astype(np.float16))
    assert not sums_fast.wanted(np.float32(1.0))  # a scalar: the reference
    assert not sums_fast.wanted([1.0, 2.0])
    assert sums.reduce_sum(x).dtype == np.float32 and sums.sum_of_squares(x.astype(np.float64)).dtype == np.float64


def test_the_slab_reference_computes_only_the_path_it_uses():
    """``_slab_sums``: when every output is summed in packets, the one-by-one sums are not
    computed (they were, for every output: 20 ms for a contrast layer's mean)."""
    x = np.random.default_rng(2).standard_normal((2, 64, 16)).astype(np.float32)
    with mock.patch.object(sums, "_sequential_sums", wraps=sums._sequential_sums) as spy:
        sums._slab_sums(x)
    assert [call.args[0].ndim for call in spy.call_args_list] == [4]  # the 4 accumulators only
    odd = np.random.default_rng(2).standard_normal((2, 64, 13)).astype(np.float32)
    mixed = sums._slab_sums(odd)  # some outputs in packets, some one by one: both paths
    assert_same_bits(mixed, fast(sums_fast.slab_sums, np.ascontiguousarray(odd)))
