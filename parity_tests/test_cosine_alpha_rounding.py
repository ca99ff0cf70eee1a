"""CosineDecay's rounding of ``1 - alpha``, against Keras, on the alphas where it matters.

Keras's ``CosineDecay`` computes ``1 - alpha`` in Python, in double precision, and only then
casts it to float32: ``T(1 - alpha)``. ``CosineDecayRestarts`` casts first and subtracts in
float32: ``T(1) - T(alpha)``. For most alphas the two agree, so a test that draws alphas at
random (or the lesson's ``alpha=0``) cannot tell them apart: with the other rounding, every
other schedule test still passed (issue 12). Here every alpha is one where the two roundings
give different float32 numbers (about 4 alphas in 10 of [0, 1); none below 1e-3, where both
round to 1) *and* the difference reaches the rate at some step of the decay (``visible``:
the formula evaluated both ways; at step 0, where the cosine is 1, both give the same rate),
the schedule runs at every step of its decay, and its rates must be Keras's bits. The last
test swaps in the other rounding and checks that every such run then fails.
"""

import numpy as np
from conftest import scaled
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from scratchopt.numerics import cos
from scratchopt.schedules import CosineDecay
from scratchopt.tools.keras_reference import keras_schedule_from


def roundings_differ(alpha):
    """Whether ``float32(1 - alpha)`` (Keras's CosineDecay) is not ``float32(1) - float32(alpha)``."""
    return bool(np.float32(1 - alpha) != np.float32(1) - np.float32(alpha))


alphas = st.floats(1e-3, 1.0, exclude_max=True).filter(roundings_differ)


def visible(kwargs):
    """Whether the two roundings give different float32 rates at some step of the decay:
    ``rate = decay_from * ((1 - alpha) * c + alpha)``, ``c = 0.5 * (1 + cos(pi * step / decay_steps))``
    evaluated in float32 as Keras does (TF's ``cosf``: ``scratchopt.numerics.cos``)."""
    T = np.float32
    alpha = kwargs["alpha"]
    decay_from = T(kwargs.get("warmup_target") or kwargs["initial_learning_rate"])
    fraction = np.arange(kwargs["decay_steps"] + 1, dtype=T) / T(kwargs["decay_steps"])
    c = T(0.5) * (T(1.0) + cos(T(np.pi) * fraction))
    keras = decay_from * (T(1 - alpha) * c + T(alpha))
    other = decay_from * ((T(1) - T(alpha)) * c + T(alpha))
    return bool(np.any(keras.view(np.uint32) != other.view(np.uint32)))


def rates_differ_from_keras(tf, kwargs, steps):
    """The steps where scratchopt's rate (float32) is not Keras's, bit for bit."""
    ours = CosineDecay(**kwargs)
    theirs = keras_schedule_from("CosineDecay", kwargs)
    mine = np.asarray(ours(np.array(steps)), np.float32)
    keras = np.array([np.asarray(theirs(tf.constant(s, tf.int64))) for s in steps], np.float32)
    return [(s, float(a), float(b)) for s, a, b in zip(steps, mine, keras)
            if a.view(np.uint32) != b.view(np.uint32)]


@st.composite
def cosine_runs(draw):
    """Arguments with an alpha where the roundings differ visibly, and every step of the decay."""
    decay_steps = draw(st.integers(8, 64))
    kwargs = {"initial_learning_rate": draw(st.one_of(st.just(1.0), st.floats(0.01, 1.0))),
              "decay_steps": decay_steps, "alpha": draw(alphas)}
    steps = list(range(decay_steps + 2))
    if draw(st.booleans()):  # with a warmup first: the cosine then runs from warmup_target
        warmup = draw(st.integers(1, 20))
        kwargs.update(warmup_target=draw(st.floats(0.01, 1.0)), warmup_steps=warmup)
        steps = list(range(decay_steps + warmup + 2))
    assume(visible(kwargs))
    return kwargs, steps


@settings(max_examples=scaled(25))
@given(run=cosine_runs())
def test_cosine_decay_rounds_one_minus_alpha_as_keras_does(tf, run):
    kwargs, steps = run
    assert roundings_differ(kwargs["alpha"]) and visible(kwargs)
    assert rates_differ_from_keras(tf, kwargs, steps) == [], kwargs


def test_the_alphas_drawn_are_those_where_the_roundings_differ():
    assert roundings_differ(0.9)  # float32(0.1) is 0.1 rounded; 1 - float32(0.9) is 0.100000024
    assert not roundings_differ(0.5) and not roundings_differ(0.7) and not roundings_differ(1e-9)
    assert visible({"initial_learning_rate": 1.0, "decay_steps": 10, "alpha": 0.9})
    assert not visible({"initial_learning_rate": 1.0, "decay_steps": 10, "alpha": 0.7})


def _other_rounding(self, step, decay_steps, decay_from):
    """CosineDecay's ``_decay`` with ``T(1) - T(alpha)`` (CosineDecayRestarts's) for ``T(1 - alpha)``."""
    T = self.dtype.type
    completed_fraction = step / decay_steps
    c = T(0.5) * (T(1.0) + cos(T(np.pi) * completed_fraction))
    return decay_from * ((T(1) - T(self.alpha)) * c + T(self.alpha))


def test_the_other_rounding_fails_the_comparison(tf, monkeypatch):
    """The check can fail: with ``T(1) - T(alpha)``, the alphas above give other rates.

    Every one of 20 drawn runs must catch it, without warmup and with, so each example of
    the test above is a real check of the rounding, not just some of them."""
    rng = np.random.default_rng(12)
    runs = []
    while len(runs) < 20:
        alpha = float(rng.uniform(1e-3, 1.0))
        kwargs = {"initial_learning_rate": float(rng.choice([1.0, rng.uniform(0.01, 1.0)])),
                  "decay_steps": int(rng.integers(8, 65)), "alpha": alpha}
        steps = list(range(kwargs["decay_steps"] + 2))
        if len(runs) % 2:
            kwargs.update(warmup_target=float(rng.uniform(0.01, 1.0)), warmup_steps=5)
            steps = list(range(kwargs["decay_steps"] + 7))
        if roundings_differ(alpha) and visible(kwargs):
            runs.append((kwargs, steps))
    for kwargs, steps in runs:  # the right rounding: exact
        assert rates_differ_from_keras(tf, kwargs, steps) == [], kwargs
    monkeypatch.setattr(CosineDecay, "_decay", _other_rounding)
    missed = [kwargs for kwargs, steps in runs if not rates_differ_from_keras(tf, kwargs, steps)]
    assert missed == [], f"the other rounding went unseen for {missed}"
