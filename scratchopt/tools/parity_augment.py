"""The image augmentation layers against Keras's, given the same draws.

Keras draws through TF's stateless RNG, which scratchopt does not reproduce, so each
comparison runs the real Keras layer, **records** what its ``random.uniform`` calls returned
(``keras_call``), turns those values into our layer's ``draws`` (``draws_from_keras``), and
compares the two outputs. The other direction, **injecting** chosen draws into Keras
(``keras_call(..., uniforms=...)`` with ``keras_uniforms``), reaches corners Keras's own
draws rarely do (a flip coin of exactly 0.5, an angle of exactly 90 degrees).

For the ``scratchopt parity`` table: ``AUGMENT_ROWS`` (name, constructor arguments, image
shape, input dtype) and ``run_augment_row(...)``, a ``parity.Row``. Keras (and TensorFlow)
are imported on first use only.
"""

import contextlib

import numpy as np

from .. import augment
from .parity import Row

#: The rows of the table: the lesson's five layers, each fill mode and interpolation, and
#: uint8 / float64 inputs. RandomRotation has batches of 7 (cos/sin from libm alone, as TF
#: computes a tail) and of 32 (Eigen's vectorised cos/sin, as TF computes packets of 8).
AUGMENT_ROWS = [
    ("RandomFlip", {"mode": "horizontal"}, (16, 8, 8, 3), "float32"),
    ("RandomFlip", {}, (16, 8, 8, 3), "uint8"),
    ("RandomRotation", {"factor": 0.1}, (7, 16, 12, 3), "float32"),
    ("RandomRotation", {"factor": 0.5, "fill_mode": "constant", "interpolation": "nearest"},
     (7, 9, 9, 1), "uint8"),
    ("RandomRotation", {"factor": 0.1}, (32, 16, 16, 3), "float32"),
    ("RandomZoom", {"height_factor": 0.1}, (16, 16, 12, 3), "float32"),
    ("RandomZoom", {"height_factor": (-0.5, 0.8), "width_factor": 0.9, "fill_mode": "wrap"},
     (16, 9, 11, 2), "float32"),
    ("RandomZoom", {"height_factor": 0.7, "fill_mode": "nearest", "interpolation": "nearest"},
     (16, 10, 10, 1), "float64"),
    ("RandomContrast", {"factor": 0.1}, (16, 8, 8, 3), "float32"),
    ("RandomContrast", {"factor": (0.5, 0.5), "value_range": (0, 1)}, (16, 13, 7, 3), "float64"),
    ("RandomTranslation", {"height_factor": 0.1, "width_factor": 0.1}, (16, 16, 16, 3), "float32"),
    ("RandomTranslation", {"height_factor": 0.9, "width_factor": (-1.0, 1.0), "fill_mode": "constant",
                           "fill_value": 7.0}, (16, 9, 10, 3), "uint8"),
    ("RandomTranslation", {"height_factor": 1.0, "width_factor": 1.0, "fill_mode": "reflect",
                           "interpolation": "nearest"}, (16, 6, 5, 1), "float32"),
]


def keras_layer(name, kwargs):
    """Keras's layer of the same name and arguments (TensorFlow imported once, quietly)."""
    from .keras_reference import tensorflow

    tensorflow()
    import keras

    return getattr(keras.layers, name)(**kwargs)


@contextlib.contextmanager
def _patched_uniform(uniforms=None):
    """Record Keras's ``random.uniform`` results (a list of NumPy arrays), or return the
    queued ``uniforms`` instead, in call order."""
    import tensorflow as tf
    from keras.src.backend.tensorflow import random

    saved, calls = random.uniform, []
    queue = None if uniforms is None else list(uniforms)

    def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
        if queue is None:
            out = saved(shape, minval=minval, maxval=maxval, dtype=dtype, seed=seed)
        else:
            out = tf.constant(np.asarray(queue.pop(0), np.float32).reshape(shape))
        calls.append(out.numpy())
        return out

    random.uniform = uniform
    try:
        yield calls
    finally:
        random.uniform = saved


def keras_call(name, kwargs, images, uniforms=None, layer=None):
    """``(output, uniforms)``: Keras's layer on ``images`` (training), with its own draws
    recorded, or with ``uniforms`` (a list, in Keras's call order) injected."""
    layer = layer or keras_layer(name, kwargs)
    with _patched_uniform(uniforms) as calls:
        out = layer(images, training=True)
    return np.asarray(out), calls


def draws_from_keras(name, kwargs, uniforms, batch_size):
    """Keras's recorded uniforms as our layer's ``draws``."""
    u = [np.asarray(v, np.float32).reshape(batch_size) for v in uniforms]
    if name == "RandomFlip":
        return {"flips": u[0] <= 0.5}
    if name == "RandomRotation":
        return {"angle": u[0]}
    if name == "RandomZoom":
        draws = {"height_zoom": u[0]}
        if kwargs.get("width_factor") is not None:
            draws["width_zoom"] = u[1]
        return draws
    if name == "RandomContrast":
        return {"contrast_factor": u[0]}
    if name == "RandomTranslation":
        return {"height_translate": u[0], "width_translate": u[1]}
    raise ValueError(f"unknown layer {name!r}")


def keras_uniforms(name, draws):
    """Our ``draws`` as the values Keras's ``random.uniform`` calls must return."""
    if name == "RandomFlip":
        return [np.where(np.asarray(draws["flips"]), 0.25, 0.75).astype(np.float32)]
    order = {"RandomRotation": ["angle"], "RandomZoom": ["height_zoom", "width_zoom"],
             "RandomContrast": ["contrast_factor"],
             "RandomTranslation": ["height_translate", "width_translate"]}[name]
    return [np.asarray(draws[key], np.float32) for key in order if key in draws]


def ours(name, kwargs):
    return getattr(augment, name)(**kwargs)


def compare_given_keras_draws(name, kwargs, images, layer=None):
    """``(ours, Keras's, draws)`` for one batch, Keras drawing and ours given its draws."""
    theirs, calls = keras_call(name, kwargs, images, layer=layer)
    batch = images.shape[0] if images.ndim == 4 else 1
    draws = draws_from_keras(name, kwargs, calls, batch)
    return ours(name, kwargs)(images, draws=draws), theirs, draws


def sample_images(rng, shape, dtype):
    """Test images: uint8 pixels, or floats in [0, 255) with a few exact integers."""
    if np.dtype(dtype) == np.uint8:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    x = rng.uniform(0, 255, shape)
    x[..., 0] = np.round(x[..., 0])
    return x.astype(dtype)


def run_augment_row(name, kwargs, shape, dtype, steps, seed=0):
    """``min(steps, 10)`` training calls on random images (Keras's draws given to ours),
    then one inference call; returns a ``parity.Row``."""
    rng = np.random.default_rng(seed)
    theirs_layer, mine = keras_layer(name, kwargs), ours(name, kwargs)
    calls = max(1, min(steps, 10))
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    row = Row(f"{name}({args}) on {shape} {dtype}", "float32", calls, 0.0, 0.0, True)
    for _ in range(calls):
        images = sample_images(rng, shape, dtype)
        theirs, uniforms = keras_call(name, kwargs, images, layer=theirs_layer)
        draws = draws_from_keras(name, kwargs, uniforms, shape[0])
        row.compare(mine(images, draws=draws), theirs)
    images = sample_images(rng, shape, dtype)
    row.compare(mine(images, training=False), np.asarray(theirs_layer(images, training=False)))
    return row
