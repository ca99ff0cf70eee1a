"""L1, L2 and L1L2 against Keras: the penalty's bits, and its gradient against tf.GradientTape.

Arrays are drawn over ordinary, tiny (squares go subnormal: flush-to-zero) and zero
magnitudes, -0.0 included, in shapes up to 9001 elements (above 1024 AVX packets, where
TF's sum splits into a tree). The factor is drawn too, 0 included (L1L2 then drops a term).
"""

import re

import numpy as np
import pytest
from conftest import scaled
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from optimizer_info import floats
from strategies import values

from scratchopt import regularizers
from scratchopt.tools.parity import same_bits

FACTORS = st.one_of(floats(1e-6, 10.0), st.sampled_from([0.0, 0.01, 1, 2]))

#: (class, drawn constructor arguments): one entry per regularizer.
INFOS = [
    (regularizers.L1, st.fixed_dictionaries({"l1": FACTORS})),
    (regularizers.L2, st.fixed_dictionaries({"l2": FACTORS})),
    (regularizers.L1L2, st.fixed_dictionaries({"l1": FACTORS, "l2": FACTORS})),
]
SHAPES = st.sampled_from([(), (1,), (7,), (4, 9), (33,), (9001,)])
DTYPES = st.sampled_from([np.float32, np.float64])


def keras_value_and_gradient(tf, cls, kwargs, w):
    import keras

    variable = tf.Variable(w)
    with tf.GradientTape() as tape:
        penalty = getattr(keras.regularizers, cls.__name__)(**kwargs)(variable)
    grad = tape.gradient(penalty, variable)
    # No term at all (L1L2 with both factors 0): the penalty is a constant, its gradient None.
    return np.asarray(penalty), np.zeros_like(w) if grad is None else grad.numpy()


@pytest.mark.parametrize("info", INFOS, ids=lambda i: i[0].__name__)
@settings(max_examples=scaled(80))
@given(data=st.data())
def test_value_and_gradient_match_keras(tf, info, data):
    cls, kwargs_strategy = info
    kwargs = data.draw(kwargs_strategy)
    dtype = data.draw(DTYPES)
    w = data.draw(arrays(dtype, data.draw(SHAPES), elements=values(dtype)))
    penalty, grad = keras_value_and_gradient(tf, cls, kwargs, w)
    ours = cls(**kwargs)
    value = ours(w)
    assert type(value) is float
    assert same_bits(np.asarray(value, dtype), penalty), (value, float(penalty))
    assert same_bits(ours.gradient(w), grad)


# Keras's validate_float_arg: a finite, non-negative Python int or float.
ACCEPTED = [0, 3, 0.5, np.float64(0.25), True, None]
REFUSED = [-0.1, float("inf"), float("nan"), np.float32(0.1), "0.1", np.int64(1)]


@pytest.mark.parametrize("cls", [r[0] for r in INFOS], ids=lambda c: c.__name__)
@pytest.mark.parametrize("value", ACCEPTED + REFUSED, ids=repr)
def test_validation_matches_keras(tf, cls, value):
    import keras

    name = "l2" if cls is regularizers.L2 else "l1"
    try:
        theirs = getattr(keras.regularizers, cls.__name__)(**{name: value})
    except ValueError:
        with pytest.raises(ValueError, match=re.escape(f"{name}={value!r}")):
            cls(**{name: value})
        return
    assert value in ACCEPTED, f"Keras accepts {value!r}; update the lists"
    assert cls(**{name: value}).get_config() == theirs.get_config()


def test_l2_has_no_half():
    """The penalty of w = [3] with l2 = 0.5 is 0.5 * 9, not 0.25 * 9; the gradient 2 * 0.5 * 3."""
    w = np.array([3.0])
    assert regularizers.L2(0.5)(w) == 4.5
    assert regularizers.L2(0.5).gradient(w).tolist() == [3.0]


def test_l1_gradient_at_zero_is_zero():
    w = np.array([-2.0, 0.0, 5.0])
    assert regularizers.L1(0.5).gradient(w).tolist() == [-0.5, 0.0, 0.5]


def test_float16_is_refused():
    with pytest.raises(TypeError, match="float16"):
        regularizers.L2()(np.ones(3, np.float16))
