"""MixUp and CutMix against Keras given the same draws; our own draws; EDA's text tricks.

Keras draws through TF's stateless RNG, which scratchopt does not reproduce, so parity is
tested *given the draws*, two ways, both through the whole ``layer(data)`` call:

* **recorded**: the real Keras layer runs with its own seeded draws; ``record_keras_draws``
  wraps ``random.uniform/beta/shuffle`` of Keras's TF backend and keeps what they returned
  (Keras's true distribution: weights of exactly 0.5 from TF's gamma clamp, 1.19e-7, ...);
* **injected**: the Keras layer's random functions return values Hypothesis chose (weights
  0, 1, subnormal, uniforms just below 1, any permutation), for the arithmetic's corners.

Either way the same draws go to ours (``draws=``) and images, labels, masks and label
weights must match bit for bit: float32 and float64 compute dtypes, float32/float64/uint8
inputs, one-hot or arbitrary soft labels, both data formats, single images, training off.
"""

import contextlib
import math
import re

import numpy as np
import pytest
from conftest import scaled
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from strategies import values

from scratchopt.augment import CutMix, MixUp, random_deletion, random_swap
from scratchopt.tools.parity import same_bits

LAYER_DTYPES = st.sampled_from([np.dtype(np.float32), np.dtype(np.float64)])
FORMATS = st.sampled_from(["channels_last", "channels_first"])


# --- driving Keras's draws ---------------------------------------------------------------


def _keras_random():
    from keras.src.backend.tensorflow import random

    return random


@contextlib.contextmanager
def record_keras_draws():
    """Keras's own draws, in call order: a list of (function name, shape, NumPy value)."""
    module, calls = _keras_random(), []
    saved = {name: getattr(module, name) for name in ("uniform", "beta", "shuffle")}

    def recorder(name):
        def fn(*args, **kwargs):
            out = saved[name](*args, **kwargs)
            calls.append((name, tuple(out.shape), out.numpy()))
            return out
        return fn

    try:
        for name in saved:
            setattr(module, name, recorder(name))
        yield calls
    finally:
        for name, fn in saved.items():
            setattr(module, name, fn)


@contextlib.contextmanager
def inject_keras_draws(tf, queues):
    """Keras's random functions return the queued values instead ({name: [value, ...]})."""
    module = _keras_random()
    saved = {name: getattr(module, name) for name in ("uniform", "beta", "shuffle")}

    def dtype_of(kwargs, default):
        return tf.as_dtype(kwargs.get("dtype") or default)

    fakes = {
        "uniform": lambda shape, **kw: tf.constant(queues["uniform"].pop(0), dtype_of(kw, "float32")),
        "beta": lambda shape, a, b, **kw: tf.constant(queues["beta"].pop(0), dtype_of(kw, "float32")),
        "shuffle": lambda x, **kw: tf.constant(queues["shuffle"].pop(0), x.dtype),
    }
    try:
        for name, fn in fakes.items():
            setattr(module, name, fn)
        yield
    finally:
        for name, fn in saved.items():
            setattr(module, name, fn)
    assert all(not q for q in queues.values()), f"Keras drew less than expected: {queues}"


# --- strategies ----------------------------------------------------------------------------


def unit_floats(dtype, exclude_max=False):
    """[0, 1] (or [0, 1)) in ``dtype``, with corners: 0, the smallest subnormal, 1 - eps/2, and
    dyadic values that put CutMix's box edges on whole pixels (w = 0.75: side ratio 0.5)."""
    dtype = np.dtype(dtype)
    corners = [0.0, float(np.finfo(dtype).smallest_subnormal), 0.25, 0.5, 0.75, 0.9375,
               1.0 - float(np.finfo(dtype).epsneg)]
    corners += [] if exclude_max else [1.0]
    width = 8 * dtype.itemsize
    return st.one_of(st.floats(0.0, 1.0, width=width, exclude_max=exclude_max), st.sampled_from(corners))


@st.composite
def batches(draw, data_format="channels_last", max_batch=6):
    """(images, labels): any input dtype (cast as Keras's Layer.__call__ does), soft labels."""
    b, h, w, c = (draw(st.integers(1, max_batch)), draw(st.integers(1, 9)),
                  draw(st.integers(1, 9)), draw(st.integers(1, 3)))
    shape = (b, h, w, c) if data_format == "channels_last" else (b, c, h, w)
    in_dtype = draw(st.sampled_from([np.float32, np.float64, np.uint8]))
    elements = st.integers(0, 255) if in_dtype == np.uint8 else values(in_dtype)
    images = draw(arrays(in_dtype, shape, elements=elements))
    label_dtype = draw(st.sampled_from([np.float32, np.float64]))
    classes = draw(st.integers(1, 5))
    if draw(st.booleans()):
        labels = np.eye(classes, dtype=label_dtype)[draw(arrays(np.int64, b, elements=st.integers(0, classes - 1)))]
    else:
        labels = draw(arrays(label_dtype, (b, classes), elements=values(label_dtype)))
    return images, labels


def mixup_draws(draw, batch_size):
    return {"mix_weight": draw(arrays(np.float32, batch_size, elements=unit_floats(np.float32))),
            "permutation_order": np.array(draw(st.permutations(range(batch_size))), np.int64)}


def cutmix_draws(draw, batch_size, dtype):
    return {"mix_weight": draw(arrays(dtype, batch_size, elements=unit_floats(dtype))),
            "x_uniform": draw(arrays(dtype, batch_size, elements=unit_floats(dtype, exclude_max=True))),
            "y_uniform": draw(arrays(dtype, batch_size, elements=unit_floats(dtype, exclude_max=True))),
            "permutation_order": np.array(draw(st.permutations(range(batch_size))), np.int32)}


def assert_same(ours, theirs):
    """Same structure, and every array the same dtype, shape and bits."""
    if isinstance(theirs, dict):
        assert set(ours) == set(theirs)
        for key in theirs:
            assert same_bits(ours[key], theirs[key].numpy()), (key, ours[key], theirs[key].numpy())
    else:
        assert same_bits(ours, theirs.numpy()), (ours, theirs.numpy())


def pack(images, labels, form):
    return {"images": images, "labels": labels} if form == "dict" else images


# --- MixUp: parity ---------------------------------------------------------------------------


@settings(max_examples=scaled(50))
@given(data=st.data())
def test_mixup_matches_keras_given_injected_draws(tf, data):
    import keras

    dtype = data.draw(LAYER_DTYPES)
    images, labels = data.draw(batches())
    single = data.draw(st.booleans())
    if single:
        images, labels = images[0], labels[0]
    # Keras's float64 MixUp cannot mix labels (float32 weight * float64 labels): images only.
    form = "dict" if dtype == np.float32 and data.draw(st.booleans()) else "images"
    draws = mixup_draws(data.draw, 1 if single else images.shape[0])
    theirs_layer = keras.layers.MixUp(alpha=0.2, dtype=dtype.name)
    queues = {"beta": [draws["mix_weight"]], "shuffle": [draws["permutation_order"]], "uniform": []}
    with inject_keras_draws(tf, queues):
        theirs = theirs_layer(pack(images, labels, form))
    ours = MixUp(alpha=0.2, dtype=dtype)(pack(images, labels, form), draws=draws)
    assert_same(ours, theirs)


@settings(max_examples=scaled(30))
@given(data=st.data())
def test_mixup_matches_keras_on_keras_own_draws(tf, data):
    import keras

    images, labels = data.draw(batches(max_batch=8))
    alpha = data.draw(st.sampled_from([0.001, 0.01, 0.2, 1.0, 4.0]))  # small: TF's 0.5 clamp
    theirs_layer = keras.layers.MixUp(alpha=alpha, seed=data.draw(st.integers(0, 2**31 - 1)))
    with record_keras_draws() as calls:
        theirs = theirs_layer({"images": images, "labels": labels})
    assert [c[0] for c in calls] == ["shuffle", "beta"]  # Keras's order of draws
    draws = {"permutation_order": calls[0][2], "mix_weight": calls[1][2]}
    ours = MixUp(alpha=alpha)({"images": images, "labels": labels}, draws=draws)
    assert_same(ours, theirs)


@settings(max_examples=scaled(20))
@given(data=st.data())
def test_mixup_transformation_api_matches_keras(tf, data):
    """Keras's own three-step API: get_random_transformation, transform_images, transform_labels."""
    import keras

    images, labels = data.draw(batches())
    images, labels = images.astype(np.float32), labels.astype(np.float32)
    theirs_layer = keras.layers.MixUp(seed=data.draw(st.integers(0, 1000)))
    t = theirs_layer.get_random_transformation({"images": images, "labels": labels}, training=True)
    ours_layer = MixUp()
    ours_t = ours_layer.get_random_transformation(images, draws={k: v.numpy() for k, v in t.items()})
    assert {k: v.dtype for k, v in ours_t.items()} == {k: v.dtype.as_numpy_dtype for k, v in t.items()}
    assert_same(ours_layer.transform_images(images, ours_t), theirs_layer.transform_images(tf.constant(images), t))
    assert_same(ours_layer.transform_labels(labels, ours_t), theirs_layer.transform_labels(tf.constant(labels), t))


def test_mixup_float64_labels_where_keras_fails(tf):
    """Keras's float64 MixUp fails on labels; ours mixes them with the widened float32 weight."""
    import keras

    images = np.arange(24, dtype=np.float64).reshape(2, 3, 2, 2)
    labels = np.array([[1.0, 0.0], [0.0, 1.0]])
    w = np.array([0.1, 0.7], np.float32)
    perm = np.array([1, 0])
    with pytest.raises(Exception, match="float tensor but is a double tensor"):
        keras.layers.MixUp(dtype="float64")({"images": images, "labels": labels})
    out = MixUp(dtype="float64")((images, labels), draws={"mix_weight": w, "permutation_order": perm})
    w64 = [float(np.float32(0.1)), float(np.float32(0.7))]  # the float32 draws, exactly
    expected = [[w64[0], 1 - w64[0]], [1 - w64[1], w64[1]]]
    assert out[1].dtype == np.float64
    assert out[1].tolist() == expected


def test_mixup_training_false_is_keras_identity(tf):
    import keras

    images = np.arange(2 * 3 * 3 * 1, dtype=np.uint8).reshape(2, 3, 3, 1)
    labels = np.eye(2, dtype=np.float64)
    theirs = keras.layers.MixUp()({"images": images, "labels": labels}, training=False)
    ours = MixUp()({"images": images, "labels": labels}, training=False)
    assert_same(ours, theirs)  # uint8 images stay uint8; float64 labels become float32
    assert ours["images"].dtype == np.uint8


# --- CutMix: parity --------------------------------------------------------------------------


@settings(max_examples=scaled(60))
@given(data=st.data())
def test_cutmix_matches_keras_given_injected_draws(tf, data):
    import keras

    dtype, data_format = data.draw(LAYER_DTYPES), data.draw(FORMATS)
    images, labels = data.draw(batches(data_format))
    form = data.draw(st.sampled_from(["dict", "images"]))
    draws = cutmix_draws(data.draw, images.shape[0], dtype)
    theirs_layer = keras.layers.CutMix(data_format=data_format, dtype=dtype.name)
    ours_layer = CutMix(data_format=data_format, dtype=dtype)

    def queues():
        return {"uniform": [np.float32(0.5), draws["x_uniform"], draws["y_uniform"]],
                "beta": [draws["mix_weight"]], "shuffle": [draws["permutation_order"]]}

    with inject_keras_draws(tf, queues()):  # the masks and label weights themselves
        t = theirs_layer.get_random_transformation(images, training=True)
    ours_t = ours_layer.get_random_transformation(images, draws=draws)
    for key in ("batch_masks", "mix_weight", "permutation_order"):
        assert same_bits(ours_t[key], t[key].numpy()), key
    with inject_keras_draws(tf, queues()):  # and the whole call
        theirs = theirs_layer(pack(images, labels, form))
    assert_same(ours_layer(pack(images, labels, form), draws=draws), theirs)


@settings(max_examples=scaled(30))
@given(data=st.data())
def test_cutmix_matches_keras_on_keras_own_draws(tf, data):
    import keras

    dtype, data_format = data.draw(LAYER_DTYPES), data.draw(FORMATS)
    images, labels = data.draw(batches(data_format, max_batch=8))
    factor = data.draw(st.sampled_from([1.0, 0.0, 0.01, (0.3, 0.8)]))
    theirs_layer = keras.layers.CutMix(factor=factor, seed=data.draw(st.integers(0, 2**31 - 1)),
                                       data_format=data_format, dtype=dtype.name)
    with record_keras_draws() as calls:
        theirs = theirs_layer({"images": images, "labels": labels})
    # Keras's order: alpha (a scalar), w, the x and y uniforms, the permutation
    assert [c[:2] for c in calls] == [("uniform", ()), ("beta", (len(images),)),
                                      ("uniform", (len(images),)), ("uniform", (len(images),)),
                                      ("shuffle", (len(images),))]
    draws = {"mix_weight": calls[1][2], "x_uniform": calls[2][2], "y_uniform": calls[3][2],
             "permutation_order": calls[4][2]}
    ours = CutMix(factor=factor, data_format=data_format, dtype=dtype)(
        {"images": images, "labels": labels}, draws=draws)
    assert_same(ours, theirs)


@pytest.mark.parametrize("training", [True, False])
def test_cutmix_single_image_and_training_false_match_keras(tf, training):
    """No batch axis, or training off: nothing is mixed, but images come out float32 (Keras)."""
    import keras

    images = np.arange(2 * 4 * 5 * 3, dtype=np.uint8).reshape(2, 4, 5, 3)
    labels = np.array([[1.0, 0.0], [0.0, 1.0]])
    with record_keras_draws() as calls:
        theirs = keras.layers.CutMix()({"images": images[0], "labels": labels[0]}, training=training)
        theirs_off = keras.layers.CutMix()({"images": images, "labels": labels}, training=False)
    assert calls == []  # Keras draws nothing in either case
    assert_same(CutMix()({"images": images[0], "labels": labels[0]}, training=training), theirs)
    assert_same(CutMix()({"images": images, "labels": labels}, training=False), theirs_off)
    assert theirs_off["images"].dtype == np.float32


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_cutmix_box_on_whole_pixels_matches_keras(tf, data_format):
    """Box edges exactly on pixel indices: ``x0 <= col < x1`` takes col x0, not col x1."""
    import keras

    # w = 0.75: side ratio 0.5, a 2 x 3 box in a 4 (high) x 6 (wide) image;
    # v = 0.5: y0 = 0.5 * (4 - 2) = 1, y1 = 3;  u = 1/3: x0 = (1/3) * (6 - 3) = 1, x1 = 4
    u = np.float32(1 / 3)
    assert u * np.float32(3.0) == 1.0  # the rounded third still lands on a whole pixel
    draws = {"mix_weight": np.float32([0.75, 0.75]), "x_uniform": np.float32([u, 0.0]),
             "y_uniform": np.float32([0.5, 0.0]), "permutation_order": np.int32([1, 0])}
    shape = (2, 4, 6, 1) if data_format == "channels_last" else (2, 1, 4, 6)
    images = np.zeros(shape, np.float32)
    images[1] = 1.0
    queues = {"uniform": [np.float32(0.5), draws["x_uniform"], draws["y_uniform"]],
              "beta": [draws["mix_weight"]], "shuffle": [draws["permutation_order"]]}
    with inject_keras_draws(tf, queues):
        theirs = keras.layers.CutMix(data_format=data_format)(images)
    ours = CutMix(data_format=data_format)(images, draws=draws)
    assert_same(ours, theirs)
    pasted = ours[0].reshape(4, 6)
    expected = np.zeros((4, 6), np.float32)
    expected[1:3, 1:4] = 1.0  # rows [1, 3), columns [1, 4)
    assert pasted.tolist() == expected.tolist()


def test_cutmix_label_weight_need_not_match_pasted_pixels(tf):
    """Keras's continuous box: a half-covered column counts in the label, not in the pixels."""
    images = np.zeros((2, 1, 4, 1), np.float32)
    images[1] = 1.0
    labels = np.eye(2, dtype=np.float32)
    # w = 0.75: r = 0.5, a box 2.0 wide (of 4) and 0.5 high (of 1); u = 0.25: x in [0.5, 2.5)
    draws = {"mix_weight": np.float32([0.75, 0.75]), "x_uniform": np.float32([0.25, 0.25]),
             "y_uniform": np.float32([0.0, 0.0]), "permutation_order": np.int32([1, 0])}
    out = CutMix()({"images": images, "labels": labels}, draws=draws)
    assert out["images"][0].ravel().tolist() == [0.0, 1.0, 1.0, 0.0]  # columns 1 and 2 pasted
    assert out["labels"][0].tolist() == [0.75, 0.25]  # box area 2 * 0.5 = 1 of 4 pixels
    # pixels say 2 of 4 columns are image 1's: half, while the label says a quarter


# --- our own draws: statistics ------------------------------------------------------------------


@settings(max_examples=scaled(10))
@given(seed=st.integers(0, 2**32 - 1), alpha=st.sampled_from([0.001, 0.2, 1.0, 5.0]))
def test_mixup_draws_are_beta_and_a_permutation(seed, alpha):
    n = 20_000
    d = MixUp(alpha=alpha, seed=seed).draw(n)
    w = d["mix_weight"].astype(np.float64)
    assert d["mix_weight"].dtype == np.float32 and d["permutation_order"].dtype == np.int64
    assert np.all((w >= 0) & (w <= 1))
    # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)); 6 standard errors: P(fail) < 2e-9
    var = 1 / (4 * (2 * alpha + 1))
    assert abs(w.mean() - 0.5) < 6 * math.sqrt(var / n)
    fourth = 3 / (16 * (2 * alpha + 1) * (2 * alpha + 3))  # E[(w - 1/2)^4], bounds var's error
    assert abs(w.var() - var) < 6 * math.sqrt(fourth / n) + 1e-4
    assert np.mean(w == 0.5) < 0.01  # unlike Keras's clamp at small alpha
    assert sorted(d["permutation_order"].tolist()) == list(range(n))


@settings(max_examples=scaled(20))
@given(seed=st.integers(0, 2**32 - 1), data=st.data())
def test_cutmix_draws_give_a_box_inside_the_image(seed, data):
    dtype, data_format = data.draw(LAYER_DTYPES), data.draw(FORMATS)
    factor = data.draw(st.sampled_from([1.0, 0.0, (0.2, 0.6)]))
    b, h, w, c = 64, data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12)), 2
    shape = (b, h, w, c) if data_format == "channels_last" else (b, c, h, w)
    layer = CutMix(factor=factor, seed=seed, data_format=data_format, dtype=dtype)
    d = layer.draw(b)
    t = layer.get_random_transformation(np.zeros(shape, dtype), draws=d)
    x0, x1, y0, y1 = (v.astype(np.float64) for v in t["box"])
    lam = t["mix_weight"].ravel().astype(np.float64)
    eps = 4 * np.finfo(dtype).eps
    assert sorted(d["permutation_order"].tolist()) == list(range(b))
    assert np.all((d["x_uniform"] >= 0) & (d["x_uniform"] < 1) & (d["y_uniform"] >= 0) & (d["y_uniform"] < 1))
    assert np.all((0 <= x0) & (x0 <= x1) & (x1 <= w * (1 + eps)))
    assert np.all((0 <= y0) & (y0 <= y1) & (y1 <= h * (1 + eps)))
    area = (x1 - x0) * (y1 - y0) / (w * h)
    assert np.allclose(lam, 1 - area, rtol=0, atol=eps)  # the label weight is the box's share
    assert np.allclose(area, 1 - d["mix_weight"], rtol=0, atol=8 * eps)  # box area = (1 - w) W H
    # the pasted pixels: whole columns col >= x0, col < x1 (and rows), in every channel
    cols = np.array([len([j for j in range(w) if a <= j < z]) for a, z in zip(x0, x1)])
    rows = np.array([len([i for i in range(h) if a <= i < z]) for a, z in zip(y0, y1)])
    assert t["batch_masks"].sum(axis=(1, 2, 3)).tolist() == (cols * rows * c).tolist()
    # so the pixel share is within a row and a column of the label's share
    assert np.all(np.abs(cols * rows / (w * h) - area) <= 1 / w + 1 / h + eps)


def test_keras_beta_clamps_to_one_half_for_small_alpha(tf):
    """The quirk named in the module docstring: Keras's Beta(0.001, 0.001) is mostly 0.5."""
    import keras

    w = keras.layers.MixUp(alpha=0.001, seed=1).get_random_transformation(
        np.zeros((4000, 1, 1, 1), np.float32))["mix_weight"].numpy()
    assert np.mean(w == 0.5) > 0.5
    assert np.mean(MixUp(alpha=0.001, seed=1).draw(4000)["mix_weight"] == 0.5) < 0.01


def test_seeded_layers_repeat_and_differ():
    assert same_bits(MixUp(seed=3).draw(9)["mix_weight"], MixUp(seed=3).draw(9)["mix_weight"])
    assert not same_bits(MixUp(seed=3).draw(9)["mix_weight"], MixUp(seed=4).draw(9)["mix_weight"])
    a, b = CutMix(seed=-1).draw(9), CutMix(seed=-1).draw(9)
    assert all(same_bits(a[k], b[k]) for k in a)


# --- forms of input and their errors ------------------------------------------------------------


def test_pair_and_dict_give_the_same_result():
    rng = np.random.default_rng(0)
    images, labels = rng.random((3, 4, 4, 2), np.float32), np.eye(3, dtype=np.float32)
    for layer in (MixUp(seed=1), CutMix(seed=1)):
        draws = layer.draw(3)
        out_dict = layer({"images": images, "labels": labels, "extra": "kept"}, draws=draws)
        out_pair = layer((images, labels), draws=draws)
        assert out_dict["extra"] == "kept"
        assert same_bits(out_dict["images"], out_pair[0]) and same_bits(out_dict["labels"], out_pair[1])
        assert not same_bits(out_pair[0], images)  # something was mixed


@pytest.mark.parametrize("cls", [MixUp, CutMix])
@pytest.mark.parametrize(("data", "error", "pattern"), [
    ((np.zeros((2, 3, 3, 1), np.float32), np.array([0.0, 1.0], np.float32)), ValueError, r"\(batch, classes\)"),
    ((np.zeros((2, 3, 3, 1), np.float32), np.eye(3, dtype=np.float32)), ValueError, "batch = 2"),
    ((np.zeros((2, 3, 3, 1), np.float32), np.eye(2, dtype=np.int64)), TypeError, "one-hot"),
    (np.zeros((2, 3, 3, 1, 1), np.float32), ValueError, "rank 3"),
    ({"labels": np.eye(2)}, ValueError, "'images'"),
    ({"images": np.zeros((2, 3, 3, 1)), "segmentation_masks": 0}, ValueError, "segmentation_masks"),
    ([[0.0]], TypeError, "NumPy or CuPy"),
], ids=["sparse-labels", "batch-mismatch", "int-labels", "rank5", "no-images", "masks", "list"])
def test_bad_data_is_refused(cls, data, error, pattern):
    with pytest.raises(error, match=pattern):
        cls()(data)


def test_keras_broadcasts_sparse_labels(tf):
    """Why 1-D labels are refused: Keras turns (B,) labels into a (B, B) result."""
    import keras

    out = keras.layers.MixUp()({"images": np.zeros((3, 2, 2, 1), np.float32),
                                "labels": np.arange(3, dtype=np.float32)})
    assert out["labels"].shape == (3, 3)


def test_injected_draws_are_checked():
    images = np.zeros((2, 3, 3, 1), np.float32)
    with pytest.raises(ValueError, match="x_uniform"):
        CutMix()(images, draws={"mix_weight": [0.5, 0.5], "permutation_order": [0, 1]})
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        MixUp()(images, draws={"mix_weight": [0.5], "permutation_order": [0, 1]})


# --- validation against Keras ------------------------------------------------------------------

FACTOR_ACCEPTED = [0.0, 0.5, 1, 1.0, True, np.float64(0.5), (0.8, 0.2), [0.2, 0.4], (0, 1),
                   (np.float32(0.1), 0.9)]
FACTOR_STRICTER = [(-5, 0.5), (0.5, 2), float("nan"), (0.2, float("nan"))]  # Keras takes these
FACTOR_REFUSED = [1.5, -0.1, float("inf"), (2, 0.5), (0.5, -3), (0.5,), (0.1, 0.2, 0.3),
                  np.float32(0.5), "0.5", None, np.array(0.5), ("a", 1), (None, 0.5)]


def _keras_outcome(make):
    try:
        return make(), None
    except Exception as e:  # noqa: BLE001 (the exception is the outcome)
        return None, e


@pytest.mark.parametrize("factor", FACTOR_ACCEPTED + FACTOR_STRICTER + FACTOR_REFUSED, ids=repr)
def test_cutmix_factor_validation_matches_keras(tf, factor):
    import keras

    theirs, error = _keras_outcome(lambda: keras.layers.CutMix(factor=factor))
    if error is not None:
        assert any(factor is f for f in FACTOR_REFUSED), f"Keras refuses {factor!r}; update the lists"
        with pytest.raises(type(error)) as ours:
            CutMix(factor=factor)
        if isinstance(error, ValueError):
            assert str(ours.value) == str(error)  # Keras's message, word for word
        else:
            assert "factor=" in str(ours.value)
        return
    if any(factor is f for f in FACTOR_STRICTER):
        with pytest.raises(ValueError, match=re.escape(f"factor={factor}")):
            CutMix(factor=factor)
        return
    assert any(factor is f for f in FACTOR_ACCEPTED), f"Keras accepts {factor!r}; update the lists"
    assert CutMix(factor=factor).factor == theirs.factor


@pytest.mark.parametrize("cls", ["MixUp", "CutMix"])
@pytest.mark.parametrize("value", [None, "channels_first", "Channels_Last", "bad", 5])
def test_data_format_validation_matches_keras(tf, cls, value):
    import keras

    theirs, error = _keras_outcome(lambda: getattr(keras.layers, cls)(data_format=value))
    ours_cls = {"MixUp": MixUp, "CutMix": CutMix}[cls]
    if error is not None:
        with pytest.raises(type(error), match=re.escape(str(error))):
            ours_cls(data_format=value)
    else:
        assert ours_cls(data_format=value).data_format == theirs.data_format


@pytest.mark.parametrize("cls", ["MixUp", "CutMix"])
@pytest.mark.parametrize("seed", [None, 0, 7, -1, 2**40, "a", 1.5, np.int64(3), True], ids=repr)
def test_seed_validation_matches_keras(tf, cls, seed):
    import keras

    theirs, error = _keras_outcome(lambda: getattr(keras.layers, cls)(seed=seed))
    ours_cls = {"MixUp": MixUp, "CutMix": CutMix}[cls]
    if error is not None:
        with pytest.raises(type(error), match="seed="):
            ours_cls(seed=seed)
    else:
        assert ours_cls(seed=seed).seed == theirs.seed


ALPHA_ACCEPTED = [0.2, 5, 1e-3, True, np.float32(0.3)]
ALPHA_REFUSED = [(-1.0, ValueError), (0.0, ValueError), (float("inf"), ValueError),
                 (float("nan"), ValueError), ("a", TypeError), (None, TypeError)]


@pytest.mark.parametrize("alpha", ALPHA_ACCEPTED, ids=repr)
def test_mixup_alpha_keras_accepts(tf, alpha):
    import keras

    assert MixUp(alpha=alpha).get_config()["alpha"] == keras.layers.MixUp(alpha=alpha).get_config()["alpha"]


@pytest.mark.parametrize(("alpha", "error"), ALPHA_REFUSED, ids=lambda v: repr(v))
def test_mixup_alpha_we_refuse_keras_misbehaves_on(tf, alpha, error):
    """Keras builds the layer, then fails at the call or returns no Beta sample (NaN or all 0.5)."""
    import keras

    with pytest.raises(error, match=re.escape(f"alpha={alpha!r}")):
        MixUp(alpha=alpha)
    layer = keras.layers.MixUp(alpha=alpha, seed=0)
    try:
        w = layer.get_random_transformation(np.zeros((64, 1, 1, 1), np.float32))["mix_weight"].numpy()
    except (TypeError, ValueError):
        return
    assert np.all(np.isnan(w)) or np.all(w == 0.5), w


@pytest.mark.parametrize(("dtype", "error"), [("float16", ValueError), ("int32", ValueError),
                                              ("no-such-type", TypeError)])
def test_dtype_validation(dtype, error):
    for cls in (MixUp, CutMix):
        with pytest.raises(error, match=re.escape(f"dtype={dtype!r}")):
            cls(dtype=dtype)


# --- text augmentation ----------------------------------------------------------------------------

WORDS = st.lists(st.text(alphabet="abcdefgh", min_size=1, max_size=3), max_size=30)


def is_subsequence(small, big):
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


@settings(max_examples=scaled(60))
@given(words=WORDS, p=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1))
def test_random_deletion_keeps_order_and_never_empties(words, p, seed):
    out = random_deletion(words, p, seed)
    assert is_subsequence(out, words)
    assert len(out) >= min(1, len(words))
    assert out == random_deletion(words, p, np.random.default_rng(seed))  # an int seed is a Generator's
    assert random_deletion(words, 0.0, seed) == words
    if words:
        last = random_deletion(words, 1.0, seed)
        assert len(last) == 1 and last[0] in words


@settings(max_examples=scaled(10))
@given(p=st.floats(0.05, 0.95), seed=st.integers(0, 2**32 - 1))
def test_random_deletion_drops_a_share_p(p, seed):
    n = 4000
    kept = len(random_deletion(list(range(n)), p, seed))
    assert abs(kept / n - (1 - p)) < 6 * math.sqrt(p * (1 - p) / n)


@settings(max_examples=scaled(60))
@given(words=WORDS, n=st.integers(0, 6), seed=st.integers(0, 2**32 - 1))
def test_random_swap_keeps_the_multiset(words, n, seed):
    before = list(words)
    out = random_swap(words, n, seed)
    assert words == before  # the input is not changed
    assert sorted(out) == sorted(words)
    assert out == random_swap(words, n, np.random.default_rng(seed))
    assert random_swap(words, 0, seed) == words


@settings(max_examples=scaled(30))
@given(size=st.integers(2, 20), seed=st.integers(0, 2**32 - 1))
def test_one_swap_moves_exactly_two_distinct_words(size, seed):
    words = [f"w{i}" for i in range(size)]
    out = random_swap(words, 1, seed)
    moved = [i for i in range(size) if out[i] != words[i]]
    assert len(moved) == 2 and out[moved[0]] == words[moved[1]]


@pytest.mark.parametrize(("call", "error", "pattern"), [
    (lambda: random_deletion("a b c", 0.1), TypeError, "list of tokens"),
    (lambda: random_swap("a b c", 1), TypeError, "list of tokens"),
    (lambda: random_deletion(["a"], 1.5), ValueError, "p=1.5"),
    (lambda: random_deletion(["a"], float("nan")), ValueError, "p=nan"),
    (lambda: random_deletion(["a"], "0.1"), TypeError, "p='0.1'"),
    (lambda: random_swap(["a"], -1), ValueError, "n=-1"),
    (lambda: random_swap(["a"], 1.0), TypeError, "n=1.0"),
    (lambda: random_swap(["a"], 1, rng="seed"), TypeError, "rng='seed'"),
], ids=["del-str", "swap-str", "p-range", "p-nan", "p-type", "n-range", "n-type", "rng-type"])
def test_text_arguments_are_checked(call, error, pattern):
    with pytest.raises(error, match=re.escape(pattern)):
        call()


def test_text_edge_cases():
    assert random_deletion([], 0.5, 0) == []
    assert random_swap(["only"], 5, 0) == ["only"]


# --- CuPy ---------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_cupy_matches_numpy(data_format):
    """The same lines on the GPU: masks and permutations equal; mixed values to an ulp."""
    import cupy as cp

    rng = np.random.default_rng(0)
    images = rng.random((8, 3, 16, 16) if data_format == "channels_first" else (8, 16, 16, 3), np.float32)
    labels = np.eye(8, dtype=np.float32)
    for layer in (MixUp(data_format=data_format, seed=2), CutMix(data_format=data_format, seed=2)):
        draws = layer.draw(8)
        cpu = layer((images, labels), draws=draws)
        gpu = layer((cp.asarray(images), cp.asarray(labels)), draws=draws)
        assert all(type(a).__module__.startswith("cupy") for a in gpu)
        for a, b in zip(cpu, gpu):
            np.testing.assert_allclose(cp.asnumpy(b), a, rtol=2e-7, atol=0)


# --- seeds: checks.generator's one rule ---------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 3, 2**40, 2**64 - 1])
def test_a_seed_draws_as_numpy_default_rng(seed):
    """Non-negative seeds below 2**64 draw exactly what ``default_rng(seed)`` draws."""
    rng = np.random.default_rng(seed)
    d = MixUp(alpha=0.5, seed=seed).draw(9)
    assert same_bits(d["mix_weight"], rng.beta(0.5, 0.5, 9).astype(np.float32))
    assert same_bits(d["permutation_order"], rng.permutation(9).astype(np.int64))


@pytest.mark.parametrize("seed", [-1, -7, -(2**63)])
@pytest.mark.parametrize("cls", [MixUp, CutMix])
def test_a_negative_seed_draws_as_its_int64_bit_pattern(cls, seed):
    a, b = cls(seed=seed).draw(9), cls(seed=seed + 2**64).draw(9)
    assert all(same_bits(a[k], b[k]) for k in a)
    assert cls(seed=seed).seed == seed  # the config keeps the seed given, as Keras's


def test_text_rng_follows_the_same_rule():
    words = [f"w{i}" for i in range(12)]
    assert random_swap(words, 3, -1) == random_swap(words, 3, 2**64 - 1)
    assert random_deletion(words, 0.5, -5) == random_deletion(words, 0.5, np.random.default_rng(2**64 - 5))
    assert random_swap(words, 3, 11) == random_swap(words, 3, np.random.default_rng(11))


def test_mixing_layers_are_layers_without_a_gradient():
    from scratchopt.nn import Layer

    for layer in (MixUp(seed=1), CutMix(seed=1)):
        assert isinstance(layer, Layer) and not layer.differentiable and layer.params == {}
        with pytest.raises(TypeError, match="not differentiable"):
            layer.backward(np.zeros((2, 3, 3, 1), np.float32))
        twin = type(layer).from_config(layer.get_config())
        assert all(same_bits(a, b) for a, b in zip(layer.draw(5).values(), twin.draw(5).values()))
