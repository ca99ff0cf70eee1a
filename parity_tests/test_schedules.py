"""Every schedule against Keras's, bit for bit, over drawn arguments and steps.

The table in ``schedule_info.py`` drives each test. Steps include 0, every branch point
(boundaries and the steps either side, ``decay_steps`` and its multiples, the end of the
warmup), steps far past the decay (10**6, 2**24 + 1, 2**31 - 1) and random ones. Keras
gets the step as an int64 tensor, as an optimizer's ``iterations`` hands it over.
"""

import numpy as np
import pytest
from conftest import scaled
from hypothesis import given, settings
from hypothesis import strategies as st
from schedule_info import INFOS, schedules_and_steps

from scratchopt import schedules, textbook
from scratchopt.tools.keras_reference import keras_schedule_like
from scratchopt.tools.parity import same_bits


def keras_rates(tf, ours, steps):
    keras_schedule = keras_schedule_like(ours)
    return np.array([np.asarray(keras_schedule(tf.constant(s, tf.int64))) for s in steps])


@pytest.mark.parametrize("info", INFOS, ids=str)
@settings(max_examples=scaled(60))
@given(data=st.data())
def test_matches_keras(tf, info, data):
    ours, steps = data.draw(schedules_and_steps(info))
    expected = keras_rates(tf, ours, steps)
    each = np.array([ours(s) for s in steps], expected.dtype)  # Python floats, one per step
    together = ours(np.array(steps))  # one vectorised call
    assert together.dtype == expected.dtype
    for label, got in (("per step", each), ("as an array", together)):
        assert same_bits(got, expected), (
            f"{ours!r} {label}\nsteps {steps}\nours  {got.tolist()}\nkeras {expected.tolist()}")


@pytest.mark.parametrize("info", INFOS, ids=str)
@settings(max_examples=scaled(10))
@given(data=st.data())
def test_float_steps_match_keras(tf, info, data):
    """A Python float step (Keras makes it a float32 tensor) gives Keras's value too."""
    ours, steps = data.draw(schedules_and_steps(info))
    keras_schedule = keras_schedule_like(ours)
    for s in steps:
        step = s + 0.5
        assert same_bits(np.asarray(ours(step), np.asarray(keras_schedule(step)).dtype),
                         np.asarray(keras_schedule(step))), (ours, step)


@pytest.mark.parametrize("info", INFOS, ids=str)
@settings(max_examples=scaled(10))
@given(data=st.data())
def test_config_round_trip(info, data):
    ours, steps = data.draw(schedules_and_steps(info))
    again = type(ours).from_config(ours.get_config())
    assert again == ours
    assert same_bits(again(np.array(steps)), ours(np.array(steps)))


ERRORS = [(info, kwargs, error, text) for info in INFOS for kwargs, error, text in info.errors]


@pytest.mark.parametrize("case", ERRORS, ids=lambda c: f"{c[0]}-{c[1]}")
def test_bad_arguments_are_refused(case):
    info, kwargs, error, text = case
    with pytest.raises(error, match=text):
        info.cls(**kwargs)


# Keras refuses these at construction too (its only check: decay_steps <= 0).
KERAS_REFUSES = [(info, kwargs) for info in INFOS if info.cls is not schedules.WarmupCosineDecay
                 for kwargs, error, text in info.errors if "decay_steps=" in text and error is ValueError]


@pytest.mark.parametrize("case", KERAS_REFUSES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_keras_refuses_the_same_decay_steps(tf, case):
    import keras

    info, kwargs = case
    with pytest.raises(ValueError):
        getattr(keras.optimizers.schedules, info.cls.__name__)(**kwargs)


def test_why_int_rates_are_refused(tf):
    """Keras silently computes an int-rate schedule in integer arithmetic; the values are useless."""
    import keras

    S = keras.optimizers.schedules
    # 1 * 0.5**0.5 is 0.707; with an int rate the decay rate is truncated to 0.
    assert float(S.ExponentialDecay(1, 10, 0.5)(5)) == 0.0
    assert float(S.ExponentialDecay(1.0, 10, 0.5)(5)) == pytest.approx(0.5**0.5)
    # Half-way down the cosine is 0.5; with an int rate pi is 3.
    assert float(S.CosineDecay(1, 100)(50)) == pytest.approx(0.5 * (1 + np.cos(1.5)), rel=1e-6)
    with pytest.raises(Exception, match="int32"):  # the warmup mixes int32 and double tensors
        S.CosineDecay(0, 10, warmup_target=0.1, warmup_steps=5)(3)
    for make in (lambda r: schedules.ExponentialDecay(r, 10, 0.5), lambda r: schedules.CosineDecay(r, 100)):
        with pytest.raises(TypeError, match="1.0"):
            make(1)


def test_step_at_a_boundary_keeps_the_earlier_value():
    s = schedules.PiecewiseConstantDecay([300, 600], [0.1, 0.01, 0.001])
    assert [s(299), s(300), s(301), s(600), s(601)] == [float(np.float32(v)) for v in
                                                       (0.1, 0.1, 0.01, 0.01, 0.001)]


def test_an_int_step_gives_a_python_float_and_an_array_gives_an_array():
    s = schedules.CosineDecay(0.1, 100)
    assert type(s(3)) is float
    out = s(np.arange(5))
    assert isinstance(out, np.ndarray) and out.shape == (5,) and out.dtype == np.float32
    assert schedules.CosineDecay(np.float64(0.1), 100)(np.arange(3)).dtype == np.float64
    with pytest.raises(TypeError, match="step"):
        s("3")


# --- The lesson's warmup + cosine --------------------------------------------------------

LESSON = {"initial_learning_rate": 0.1, "warmup_steps": 100, "total_steps": 1000}


def lesson(step):
    return textbook.lesson_warmup_cosine(step, initial_lr=0.1, warmup_steps=100, total_steps=1000)


def test_warmup_cosine_holds_zero_after_total_steps_where_the_lesson_climbs_back():
    ours = schedules.WarmupCosineDecay(**LESSON)
    after = np.arange(1000, 3000, 7)
    assert np.all(ours(after) == 0.0)
    # The lesson's formula is back at the full rate at 2 * total - warmup = 1900 steps.
    assert lesson(1900) == pytest.approx(0.1)
    assert lesson(1500) > 0.04


@settings(max_examples=scaled(20))
@given(warmup=st.integers(0, 500), length=st.integers(1, 3000), lr=st.floats(1e-5, 1.0))
def test_warmup_cosine_is_the_lessons_curve_up_to_total_steps(warmup, length, lr):
    """Up to ``total_steps`` it is the lesson's formula, in float32: measured at most
    1.52e-7 * lr apart (300 random configurations, every step); the bound is 2 float32
    epsilons of the rate."""
    total = warmup + length
    ours = schedules.WarmupCosineDecay(lr, warmup, total)
    steps = np.unique(np.linspace(0, total, 60).astype(int))
    reference = np.array([textbook.lesson_warmup_cosine(int(s), initial_lr=lr, warmup_steps=warmup,
                                                        total_steps=total) for s in steps])
    gap = np.max(np.abs(ours(steps).astype(np.float64) - reference))
    assert gap <= 2 * np.finfo(np.float32).eps * lr


def test_warmup_cosine_starts_at_zero_and_peaks_at_the_rate():
    ours = schedules.WarmupCosineDecay(**LESSON)
    assert ours(0) == 0.0
    assert ours(100) == float(np.float32(0.1))
    assert ours(50) == float(np.float32(0.1) * np.float32(0.5))
