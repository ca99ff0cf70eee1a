"""The lesson's image augmentation layers against Keras's, bit for bit.

* ``apply_transform`` against TF's ``ImageProjectiveTransformV3`` itself, on projective
  matrices Hypothesis chooses (every fill mode and interpolation, axes of length 1,
  coordinates on the (-1, 0) edge and on exact halves);
* each layer given Keras's own recorded draws (``parity_augment.AUGMENT_ROWS``), and given
  draws Hypothesis chooses, injected into Keras;
* degenerate factors ``(a, a)``: a fixed transform in both, compared with no draws at all;
* RandomRotation's cos/sin: TF's (Eigen's packets + libm tail) reproduced exactly; with
  libm alone the matrices are off, within the bound ``measure_augment.py`` measured, and a
  tighter bound fails;
* ``training=False``, single images, uint8/float64 inputs, Keras's argument checks;
* both of the lesson's uses: inside ``Sequential`` before a model, and over batches.
"""

import numpy as np
import pytest
from conftest import scaled
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchopt import augment
from scratchopt.augment import (
    RandomContrast,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
    apply_transform,
)
from scratchopt.augment.rotation import rotation_matrix, tf_cos_sin
from scratchopt.nn import Dense, Layer, Sequential, SoftmaxCrossEntropy
from scratchopt.numerics import ulp_distance
from scratchopt.optimizers import SGD
from scratchopt.tools.parity import same_bits
from scratchopt.tools.parity_augment import (
    AUGMENT_ROWS,
    keras_call,
    keras_layer,
    keras_uniforms,
    run_augment_row,
    sample_images,
)

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("bilinear", "nearest")

#: RandomRotation with cos/sin from libm alone (``rotation_matrix(..., trig="libm")``) against
#: Keras's matrices, measured by ``parity_tests/measure_augment.py``: cos/sin entries at most
#: 1 ULP off (200,000 angles), the offsets of a 32x32 image at most 2.9e-6 = 1.5 ULP of the
#: centre 15.5 (20,000 matrices). The bounds: 1 ULP, and 2 ULP of the centre.
LIBM_ENTRY_ULP_BOUND = 1
LIBM_OFFSET_CENTRE_ULPS = 2


def _tf_transform(tf, images, transforms, interpolation, fill_mode, fill_value):
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.constant(images), transforms=tf.constant(transforms, tf.float32),
        output_shape=tf.constant(images.shape[1:3], tf.int32), fill_value=np.float32(fill_value),
        interpolation=interpolation.upper(), fill_mode=fill_mode.upper()).numpy()


# --- the shared transform against TF's kernel -------------------------------------------------

_ENTRY = st.one_of(st.floats(-3, 3, width=32), st.sampled_from([0.0, 1.0, -1.0, 0.5, -0.5, 2.0]))
_SHIFT = st.one_of(st.floats(-40, 40, width=32), st.sampled_from([0.0, -0.5, 0.5, -1.0, -0.25, 3.5]))


@st.composite
def transforms(draw, n):
    rows = []
    for _ in range(n):
        a0, a1, b0, b1 = (draw(_ENTRY) for _ in range(4))
        a2, b2 = draw(_SHIFT), draw(_SHIFT)
        c0, c1 = draw(st.sampled_from([(0.0, 0.0), (0.0, 0.0), (0.01, -0.02), (-0.05, 0.03), (0.1, 0.0)]))
        rows.append([a0, a1, a2, b0, b1, b2, c0, c1])
    return np.array(rows, np.float32)


@settings(max_examples=scaled(40))
@given(data=st.data(), n=st.integers(1, 3), h=st.sampled_from([1, 2, 5, 8]), w=st.sampled_from([1, 3, 7]),
       c=st.sampled_from([1, 3]), fill_mode=st.sampled_from(FILL_MODES),
       interpolation=st.sampled_from(INTERPOLATIONS), fill_value=st.sampled_from([0.0, 7.5, -1.0]))
def test_apply_transform_is_tfs_kernel_bit_for_bit(tf, data, n, h, w, c, fill_mode, interpolation, fill_value):
    images = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).uniform(-5, 260, (n, h, w, c))
    images = images.astype(np.float32)
    t = data.draw(transforms(n))
    ours = apply_transform(images, t, interpolation, fill_mode, fill_value)
    theirs = _tf_transform(tf, images, t, interpolation, fill_mode, fill_value)
    assert same_bits(ours, theirs), (t, np.nanmax(np.abs(ours - theirs)))


def test_reflect_sticks_to_the_edge_in_minus_one_to_zero(tf):
    """Coordinates in (-1, 0) map to -c - 1, also in (-1, 0), and are clamped to 0."""
    image = np.array([10.0, 20.0, 30.0, 40.0], np.float32).reshape(1, 1, 4, 1)
    shift = np.array([[1, 0, -0.25, 0, 1, 0, 0, 0]], np.float32)
    ours = apply_transform(image, shift, fill_mode="reflect")
    assert ours.ravel()[0] == 10.0  # not a blend of 10 and 20
    assert same_bits(ours, _tf_transform(tf, image, shift, "bilinear", "reflect", 0.0))


def test_a_point_at_infinity_reads_the_fill_value_in_every_mode(tf):
    images = np.arange(12, dtype=np.float32).reshape(1, 3, 4, 1)
    t = np.array([[1, 0, 0, 0, 1, 0, -0.5, 0]], np.float32)  # k = 1 - 0.5 x: 0 at column 2
    for mode in FILL_MODES:
        ours = apply_transform(images, t, fill_mode=mode, fill_value=9.0)
        assert (ours[0, :, 2, 0] == 9.0).all()
        assert same_bits(ours, _tf_transform(tf, images, t, "bilinear", mode, 9.0))


def test_one_transform_serves_the_whole_batch():
    images = np.random.default_rng(0).uniform(0, 1, (3, 4, 5, 2)).astype(np.float32)
    t = np.array([1, 0, -1.5, 0, 1, 0.5, 0, 0], np.float32)
    assert same_bits(apply_transform(images, t), apply_transform(images, np.tile(t, (3, 1))))


# --- every layer given Keras's own draws ------------------------------------------------------


@pytest.mark.parametrize("name, kwargs, shape, dtype", AUGMENT_ROWS,
                         ids=[f"{r[0]}-{i}" for i, r in enumerate(AUGMENT_ROWS)])
def test_layer_equals_keras_given_kerass_draws(tf, name, kwargs, shape, dtype):
    row = run_augment_row(name, kwargs, shape, dtype, steps=3, seed=len(name))
    assert row.exact, row


def test_the_lessons_pipeline_equals_keras_layer_by_layer(tf):
    """The lesson's five layers, in order, on 10 images (rotation's cos/sin through a packet)."""
    lesson = [("RandomFlip", {"mode": "horizontal"}), ("RandomRotation", {"factor": 0.1}),
              ("RandomZoom", {"height_factor": 0.1}), ("RandomContrast", {"factor": 0.1}),
              ("RandomTranslation", {"height_factor": 0.1, "width_factor": 0.1})]
    x = sample_images(np.random.default_rng(3), (10, 12, 12, 3), "uint8")
    ours = theirs = x
    for name, kwargs in lesson:
        theirs, uniforms = keras_call(name, kwargs, theirs)
        from scratchopt.tools.parity_augment import draws_from_keras
        ours = getattr(augment, name)(**kwargs)(ours, draws=draws_from_keras(name, kwargs, uniforms, 10))
        assert same_bits(ours, theirs), name


# --- draws Hypothesis chooses, injected into Keras --------------------------------------------


def _draws(name, kwargs, n, data):
    if name == "RandomFlip":
        return {"flips": np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))}
    value = {"RandomRotation": st.one_of(st.floats(-360, 360, width=32), st.sampled_from([90.0, -180.0, 45.0])),
             "RandomZoom": st.one_of(st.floats(0.0625, 2.0, width=32), st.sampled_from([0.5, 1.0, 2.0])),
             "RandomContrast": st.one_of(st.floats(0.0, 2.0, width=32), st.sampled_from([0.0, 1.0])),
             "RandomTranslation": st.one_of(st.floats(-1, 1, width=32), st.sampled_from([-1.0, 0.5, 1.0]))}[name]
    keys = {"RandomRotation": ["angle"], "RandomContrast": ["contrast_factor"],
            "RandomZoom": ["height_zoom"] + (["width_zoom"] if kwargs.get("width_factor") is not None else []),
            "RandomTranslation": ["height_translate", "width_translate"]}[name]
    return {k: np.array(data.draw(st.lists(value, min_size=n, max_size=n)), np.float32) for k in keys}


LAYER_CASES = st.sampled_from([
    ("RandomFlip", {}), ("RandomFlip", {"mode": "vertical"}),
    ("RandomRotation", {"factor": 1.0}), ("RandomRotation", {"factor": 1.0, "interpolation": "nearest"}),
    ("RandomRotation", {"factor": 1.0, "fill_mode": "wrap"}),
    ("RandomZoom", {"height_factor": 1.0}), ("RandomZoom", {"height_factor": 1.0, "width_factor": 1.0,
                                                            "fill_mode": "constant", "fill_value": 3.0}),
    ("RandomContrast", {"factor": 1.0}), ("RandomContrast", {"factor": 1.0, "value_range": (10, 100)}),
    ("RandomTranslation", {"height_factor": 1.0, "width_factor": 1.0, "fill_mode": "nearest"}),
    ("RandomTranslation", {"height_factor": 1.0, "width_factor": 1.0, "fill_mode": "wrap",
                           "interpolation": "nearest"}),
])


@settings(max_examples=scaled(30))
@given(data=st.data(), case=LAYER_CASES, n=st.sampled_from([1, 3, 9]), h=st.sampled_from([1, 4, 7]),
       w=st.sampled_from([2, 5]))
def test_layer_equals_keras_given_chosen_draws(tf, data, case, n, h, w):
    name, kwargs = case
    images = sample_images(np.random.default_rng(data.draw(st.integers(0, 99))), (n, h, w, 3), "float32")
    draws = _draws(name, kwargs, n, data)
    theirs, _ = keras_call(name, kwargs, images, uniforms=keras_uniforms(name, draws))
    assert same_bits(getattr(augment, name)(**kwargs)(images, draws=draws), theirs)


@pytest.mark.parametrize("name, kwargs", [
    ("RandomRotation", {"factor": (0.25, 0.25)}),
    ("RandomRotation", {"factor": (-0.1, -0.1), "fill_mode": "constant", "interpolation": "nearest"}),
    ("RandomZoom", {"height_factor": (0.3, 0.3), "width_factor": (-0.2, -0.2), "fill_mode": "wrap"}),
    ("RandomTranslation", {"height_factor": (0.2, 0.2), "width_factor": (-0.3, -0.3)}),
    ("RandomContrast", {"factor": (-0.5, 0.5)}),  # 1 - a == 1 + b: the only fixed contrasts are c >= 1
])
def test_a_degenerate_factor_is_a_fixed_transform_in_both(tf, name, kwargs):
    x = sample_images(np.random.default_rng(1), (9, 10, 8, 3), "float32")
    theirs = np.asarray(keras_layer(name, kwargs)(x, training=True))
    assert same_bits(getattr(augment, name)(**kwargs)(x), theirs)


# --- RandomRotation's cos and sin --------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 7, 8, 9, 17, 256, 1003])
def test_cos_sin_are_tfs_for_every_vector_length(tf, n):
    theta = (np.random.default_rng(n).uniform(-360, 360, n).astype(np.float32) * np.float32(np.pi / 180))
    c, s = tf_cos_sin(theta)
    assert same_bits(c, tf.math.cos(theta).numpy()) and same_bits(s, tf.math.sin(theta).numpy())


def _keras_rotation_matrix(angles, h, w):
    layer = keras_layer("RandomRotation", {"factor": 0.1})
    from scratchopt.tools.parity_augment import _patched_uniform

    with _patched_uniform([angles]):
        return np.asarray(layer.get_random_transformation(np.zeros((len(angles), h, w, 1), np.float32))
                          ["rotation_matrix"])


CENTRE = np.float32(15.5)  # (32 - 1) / 2: the offsets' scale in a 32x32 image


def within_bound(ours, theirs, entry_ulps, offset_centre_ulps, centre=CENTRE):
    """The bound check on (N, 8) matrices: the cos/sin entries within ``entry_ulps`` ULP, the
    offsets within ``offset_centre_ulps`` ULP of the image centre (their scale)."""
    entries = float(np.max(ulp_distance(ours[:, [0, 1, 3, 4]], theirs[:, [0, 1, 3, 4]])))
    offsets = float(np.max(np.abs(ours[:, [2, 5]] - theirs[:, [2, 5]])))
    return entries <= entry_ulps and offsets <= offset_centre_ulps * float(np.spacing(centre))


def test_rotation_matrix_is_kerass_and_libms_is_within_the_measured_bound(tf):
    angles = np.random.default_rng(7).uniform(-36, 36, 4000).astype(np.float32)
    keras_matrix = _keras_rotation_matrix(angles, 32, 32)
    assert same_bits(rotation_matrix(angles, 32, 32), keras_matrix)
    libm = rotation_matrix(angles, 32, 32, trig="libm")
    assert not same_bits(libm, keras_matrix)  # the emulation is needed
    assert within_bound(libm, keras_matrix, LIBM_ENTRY_ULP_BOUND, LIBM_OFFSET_CENTRE_ULPS)
    assert not within_bound(libm, keras_matrix, 0, LIBM_OFFSET_CENTRE_ULPS)  # the check can fail
    assert not within_bound(libm, keras_matrix, LIBM_ENTRY_ULP_BOUND, 0)


# --- the call: training=False, single images, dtypes, as Keras --------------------------------


LESSON = [RandomFlip("horizontal"), RandomRotation(0.1), RandomZoom(0.1), RandomContrast(0.1),
          RandomTranslation(0.1, 0.1)]


@pytest.mark.parametrize("dtype", ["uint8", "float32", "float64"])
@pytest.mark.parametrize("index", range(5))
def test_training_false_is_kerass_identity(tf, index, dtype):
    layer = LESSON[index]
    x = sample_images(np.random.default_rng(0), (2, 5, 6, 3), dtype)
    theirs = np.asarray(keras_layer(type(layer).__name__, layer.get_config() | {"seed": 0})(x, training=False))
    out = layer(x, training=False)
    assert out.dtype == theirs.dtype and np.array_equal(out, theirs)


@pytest.mark.parametrize("index", range(5))
def test_one_image_and_a_batch_of_one(tf, index):
    layer = LESSON[index]
    name = type(layer).__name__
    image = sample_images(np.random.default_rng(1), (6, 7, 3), "float32")
    from scratchopt.tools.parity_augment import draws_from_keras

    theirs, uniforms = keras_call(name, layer.get_config(), image)
    draws = draws_from_keras(name, layer.get_config(), uniforms, 1)
    assert same_bits(layer(image, draws=draws), theirs)
    assert same_bits(layer(image[None], draws=draws)[0], theirs)


def test_uint8_into_random_contrast_fails_as_in_keras(tf):
    x = np.zeros((2, 4, 4, 3), np.uint8)
    with pytest.raises(tf.errors.InvalidArgumentError):
        keras_layer("RandomContrast", {"factor": 0.1})(x, training=True)
    with pytest.raises(TypeError, match="float images"):
        RandomContrast(0.1)(x)
    assert RandomContrast(0.1)(x.astype(np.float32)).dtype == np.float32


def test_our_own_draws_have_kerass_ranges():
    n = 4000
    assert 1.0 <= RandomContrast(0.1, seed=0).draw(n)["contrast_factor"].min()  # only raises contrast
    assert RandomContrast(0.1, seed=0).draw(n)["contrast_factor"].max() <= 1.1
    factor = RandomContrast((0.1, 0.1), seed=0).draw(n)["contrast_factor"]
    assert factor.min() < 1.0 < factor.max()
    angle = RandomRotation(0.1, seed=0).draw(n)["angle"]
    assert -36.0 <= angle.min() < -30 and 30 < angle.max() <= 36.0
    assert 0.45 < RandomFlip(seed=0).draw(n)["flips"].mean() < 0.55
    zoom = RandomZoom((-0.2, 0.3), seed=0).draw(n)
    assert set(zoom) == {"height_zoom"} and 0.8 <= zoom["height_zoom"].min() and zoom["height_zoom"].max() <= 1.3
    a, b = RandomZoom(0.1, seed=5)(np.ones((2, 4, 4, 1))), RandomZoom(0.1, seed=5)(np.ones((2, 4, 4, 1)))
    assert same_bits(a, b)  # a seed fixes our draws


def test_horizontal_and_vertical_tosses_one_coin_per_image():
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4, 1)
    out = RandomFlip()(x, draws={"flips": [True, False]})
    assert same_bits(out[0], x[0, ::-1, ::-1]) and same_bits(out[1], x[1])


# --- bad input: Keras's checks, Keras's exception types ---------------------------------------


@pytest.mark.parametrize("name, kwargs", [
    ("RandomRotation", {"factor": 1.5}), ("RandomRotation", {"factor": (0.5, -2)}),
    ("RandomRotation", {"factor": (0.1, 0.2, 0.3)}), ("RandomRotation", {"factor": "0.1"}),
    ("RandomZoom", {"height_factor": -1.0}), ("RandomZoom", {"height_factor": 0.1, "width_factor": 1.5}),
    ("RandomContrast", {"factor": 1.5}), ("RandomContrast", {"factor": -0.1}),
    ("RandomContrast", {"factor": (2.0, 0.5)}),
    ("RandomTranslation", {"height_factor": 1.01, "width_factor": 0.1}),
    ("RandomTranslation", {"height_factor": 0.1, "width_factor": (-2, 0)}),
])
def test_a_factor_out_of_range_is_a_valueerror_as_in_keras(tf, name, kwargs):
    with pytest.raises(ValueError):
        keras_layer(name, kwargs)
    with pytest.raises(ValueError, match="factor"):
        getattr(augment, name)(**kwargs)


@pytest.mark.parametrize("kwargs", [{"factor": (-5, 0.5)}, {"factor": -1}])
def test_what_keras_accepts_we_accept(tf, kwargs):
    keras_layer("RandomRotation", kwargs)
    RandomRotation(**kwargs)


@pytest.mark.parametrize("argument", ["fill_mode", "interpolation"])
@pytest.mark.parametrize("cls", [RandomRotation, RandomZoom])
def test_an_unknown_option_names_itself_and_is_kerass_type_too(tf, cls, argument):
    with pytest.raises(NotImplementedError):
        keras_layer(cls.__name__, {"height_factor" if cls is RandomZoom else "factor": 0.1, argument: "mirror"})
    with pytest.raises(ValueError, match=rf"`{argument}` must be one of .*Received: {argument}='mirror'"):
        cls(0.1, **{argument: "mirror"})
    with pytest.raises(NotImplementedError):
        RandomTranslation(0.1, 0.1, **{argument: "mirror"})


def test_an_unknown_flip_mode_is_refused():
    with pytest.raises(ValueError, match="`mode` must be one of"):
        RandomFlip("diagonal")


@pytest.mark.parametrize("shape", [(4, 4), (2, 3, 4, 5, 1)])
def test_a_wrong_rank_is_refused_before_anything_is_drawn(shape):
    layer, fresh = RandomZoom(0.2, seed=3), RandomZoom(0.2, seed=3)
    with pytest.raises(ValueError, match="rank 3"):
        layer(np.zeros(shape, np.float32))
    assert same_bits(layer.draw(4)["height_zoom"], fresh.draw(4)["height_zoom"])


def test_bad_draws_and_bad_images_are_refused():
    with pytest.raises(ValueError, match="lacks"):
        RandomTranslation(0.1, 0.1)(np.zeros((2, 3, 3, 1)), draws={"height_translate": [0, 0]})
    with pytest.raises(ValueError, match="one value per image"):
        RandomRotation(0.1)(np.zeros((2, 3, 3, 1)), draws={"angle": [1.0, 2.0, 3.0]})
    with pytest.raises(TypeError, match="must be booleans"):
        RandomFlip()(np.zeros((2, 3, 3, 1)), draws={"flips": [0.3, 0.7]})
    with pytest.raises(TypeError, match="`images` must be a NumPy or CuPy array"):
        RandomFlip()([[[0.0]]])
    with pytest.raises(TypeError, match="real numbers"):
        RandomFlip()(np.zeros((1, 2, 2, 1), complex))


# --- both of the lesson's uses ---------------------------------------------------------------


class Flatten(Layer):
    def call(self, x, training=False):
        self._last = x.shape
        return x.reshape(x.shape[0], -1)

    def _backward(self, dy):
        return dy.reshape(self._last)


def test_inside_sequential_before_the_model():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (32, 8, 8, 1)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 32)]
    model = Sequential([RandomFlip("horizontal", seed=0), RandomRotation(0.1, seed=1), RandomZoom(0.1, seed=2),
                        RandomContrast(0.1, value_range=(0, 1), seed=3), RandomTranslation(0.1, 0.1, seed=4),
                        Flatten(), Dense(2)])
    model.compile(SGD(learning_rate=0.1), SoftmaxCrossEntropy())
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    assert same_bits(model.predict(x), model.predict(x))  # inference: no augmentation


def test_as_a_function_over_batches():
    """The dataset-pipeline form: a Sequential of the layers, called with training=True."""
    def layers():
        return [RandomFlip("horizontal", seed=0), RandomRotation(0.1, seed=1), RandomZoom(0.1, seed=2),
                RandomContrast(0.1, seed=3), RandomTranslation(0.1, 0.1, seed=4)]

    pipeline, by_hand = Sequential(layers()), layers()
    batches = sample_images(np.random.default_rng(2), (3, 4, 10, 10, 3), "uint8")
    for batch in batches:
        out = pipeline(batch, training=True)
        expected = batch
        for layer in by_hand:
            expected = layer(expected)
        assert same_bits(out, expected) and out.shape == batch.shape and out.dtype == np.float32
        assert not same_bits(out, batch.astype(np.float32))


# --- CuPy --------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("index", range(5))
def test_cupy_runs_the_same_lines(index):
    import cupy

    layer = LESSON[index]
    x = sample_images(np.random.default_rng(0), (16, 12, 12, 3), "float32")
    draws = type(layer)(**layer.get_config() | {"seed": 0}).draw(16)
    out = layer(cupy.asarray(x), draws=draws)
    assert isinstance(out, cupy.ndarray)
    reference = layer(x, draws=draws)
    # same float32 operations; the GPU may contract a * b + c into one FMA (a rounding less)
    assert float(np.max(np.abs(cupy.asnumpy(out) - reference))) <= 1e-3
