"""LossScaleOptimizer against Keras's: the scale, the skipped steps, and every bit of state."""

import copy

import numpy as np
import pytest
from conftest import scaled
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchopt import optimizers
from scratchopt.tools.keras_reference import KerasRun
from scratchopt.tools.parity import same_bits, state_pairs

INNER = [("SGD", {"learning_rate": 0.1, "momentum": 0.9}), ("Adam", {"learning_rate": 0.01}),
         ("Nadam", {"learning_rate": 0.01}), ("Lion", {"learning_rate": 0.01})]


class KerasLossScaleRun(KerasRun):
    """KerasRun around Keras's LossScaleOptimizer: ``self.optimizer`` is the inner optimizer
    (its slots are compared), ``self.outer`` the wrapper that steps."""

    def __init__(self, ours, params, inner_literal, scale_literal):
        super().__init__(ours.inner_optimizer, params, literal=inner_literal)
        import keras

        self.outer = keras.optimizers.LossScaleOptimizer(self.optimizer, **scale_literal)

    def apply(self, grads):
        self.outer.apply([None if g is None else self._tf.constant(g) for g in grads], self.variables)


def gradients(draw, shapes, dtypes, steps):
    out = []
    for _ in range(steps):
        step = []
        for s, d in zip(shapes, dtypes):
            g = np.asarray(draw(st.lists(st.floats(-1e4, 1e4, width=32), min_size=int(np.prod(s)),
                                         max_size=int(np.prod(s)))), dtype=d).reshape(s)
            if draw(st.integers(0, 4)) == 0:  # an overflow now and then: inf or NaN
                g.flat[draw(st.integers(0, g.size - 1))] = draw(st.sampled_from([np.inf, -np.inf, np.nan]))
            step.append(g)
        out.append(step)
    return out


@settings(max_examples=scaled(40), deadline=None)
@given(data=st.data())
def test_matches_keras_bit_for_bit(tf, data):
    name, inner_kwargs = data.draw(st.sampled_from(INNER))
    scale_kwargs = data.draw(st.fixed_dictionaries({}, optional={
        "initial_scale": st.sampled_from([1.0, 8.0, 1024.0, 32768.0, 3.0]),
        "dynamic_growth_steps": st.integers(1, 4)}))
    shapes = data.draw(st.lists(st.sampled_from([(), (3,), (2, 3)]), min_size=1, max_size=3))
    dtypes = [data.draw(st.sampled_from(["float16", "float32", "float64"])) for _ in shapes]
    params = [np.linspace(-1, 1, int(np.prod(s))).reshape(s).astype("float32" if d == "float16" else d)
              for s, d in zip(shapes, dtypes)]
    steps = gradients(data.draw, shapes, dtypes, data.draw(st.integers(1, 8)))
    ours = optimizers.LossScaleOptimizer(getattr(optimizers, name)(**inner_kwargs), **scale_kwargs)
    reference = KerasLossScaleRun(ours, [p.copy() for p in params], inner_kwargs, scale_kwargs)
    for step, grads in enumerate(steps):
        ours.apply(grads, params)
        reference.apply(grads)
        assert same_bits(ours.dynamic_scale, reference.outer.dynamic_scale.numpy()), step
        assert ours.step_counter == int(reference.outer.step_counter.numpy()), step
        assert ours.iterations == int(reference.outer.iterations.numpy()), step
        for label, a, b in state_pairs(ours.inner_optimizer, reference):
            assert same_bits(a, b), f"step {step}: {label}\nours  {a!r}\nkeras {b!r}"


def test_defaults_and_scale_loss_match_keras(tf):
    import keras

    ours = optimizers.LossScaleOptimizer(optimizers.SGD())
    theirs = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD())
    assert ours.initial_scale == theirs.initial_scale and ours.dynamic_growth_steps == theirs.dynamic_growth_steps
    for loss in [np.float32(1.5), np.float64(1.5), np.array([0.5, 2.0], np.float16)]:
        a, b = ours.scale_loss(loss), np.asarray(theirs.scale_loss(tf.constant(loss)))
        assert same_bits(np.asarray(a), b), (loss.dtype, a, b)
    params = [np.ones(3, np.float32)]
    variables = [keras.Variable(params[0].copy())]
    ours.apply([np.full(3, 2.0, np.float32)], params)
    theirs.apply([tf.constant(np.full(3, 2.0, np.float32))], variables)
    for loss in [np.float32(1.5), np.float64(1.5), 1.5]:
        a = ours.scale_loss(loss)
        b = np.asarray(theirs.scale_loss(loss if not isinstance(loss, np.generic) else tf.constant(loss)))
        assert same_bits(np.asarray(a), b), (type(loss), a, b)


@pytest.mark.parametrize("kwargs", [{"dynamic": False}, {"clipnorm": 1.0}, {"weight_decay": 0.1},
                                    {"use_ema": True}, {"not_an_argument": 1}])
def test_refused_like_keras(tf, kwargs):
    import keras

    with pytest.raises(ValueError):
        keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(), **kwargs)
    with pytest.raises(ValueError):
        optimizers.LossScaleOptimizer(optimizers.SGD(), **kwargs)


def test_common_defaults_given_explicitly_are_accepted_like_keras():
    opt = optimizers.LossScaleOptimizer(optimizers.SGD(), clipnorm=None, use_ema=False, ema_momentum=0.99)
    assert opt.dynamic_scale == np.float32(32768.0)


def test_inner_loss_scale_factor_is_cleared_and_the_inner_is_a_scratchopt_optimizer():
    inner = optimizers.Adam(loss_scale_factor=128.0)
    optimizers.LossScaleOptimizer(inner)
    assert inner.loss_scale_factor is None
    with pytest.raises(TypeError, match="inner_optimizer"):
        optimizers.LossScaleOptimizer("adam")


def test_state_dict_resumes_bit_for_bit():
    rng = np.random.default_rng(0)
    steps = [[rng.standard_normal(4).astype(np.float32) * 1e3] for _ in range(12)]
    steps[3][0][1] = np.inf
    steps[8][0][2] = np.nan
    straight_params = [np.ones(4, np.float32)]
    straight = optimizers.LossScaleOptimizer(optimizers.Adam(), initial_scale=64.0, dynamic_growth_steps=2)
    for g in steps:
        straight.apply(g, straight_params)
    params = [np.ones(4, np.float32)]
    first = optimizers.LossScaleOptimizer(optimizers.Adam(), initial_scale=64.0, dynamic_growth_steps=2)
    for g in steps[:6]:
        first.apply(g, params)
    state = first.state_dict()
    resumed_params = [params[0].copy()]
    resumed = optimizers.LossScaleOptimizer(optimizers.Adam(), initial_scale=64.0, dynamic_growth_steps=2)
    resumed.build(resumed_params)
    resumed.load_state_dict(copy.deepcopy(state))
    for g in steps[6:]:
        resumed.apply(g, resumed_params)
    assert same_bits(resumed_params[0], straight_params[0])
    assert resumed.dynamic_scale == straight.dynamic_scale and resumed.step_counter == straight.step_counter


def test_a_skipped_step_with_a_bad_pair_changes_nothing():
    params = [np.ones(3, np.float32)]
    opt = optimizers.LossScaleOptimizer(optimizers.SGD())
    with pytest.raises(ValueError, match="shape"):
        opt.apply([np.full(4, np.inf, np.float32)], params)
    assert opt.dynamic_scale == np.float32(32768.0) and not opt.built


def test_a_copy_steps_its_own_params():
    import pickle

    opt, w = optimizers.LossScaleOptimizer(optimizers.Adam(), dynamic_growth_steps=1), [np.ones(3, np.float32)]
    opt.apply([np.ones(3, np.float32)], w)
    for twin in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        twin.apply([np.ones(3, np.float32)])
        assert twin.iterations == 2 and twin.dynamic_scale == np.float32(32768.0 * 4)
    assert opt.iterations == 1 and same_bits(w[0], opt.params[0])


def test_every_optimizer_scales_a_loss_as_keras_and_refuses_a_non_float_one():
    """The base optimizer's ``scale_loss`` (what ``Sequential.fit`` differentiates): Keras's
    ``loss * loss_scale_factor``, the loss itself without one."""
    from scratchopt.optimizers import Adam

    opt = Adam(loss_scale_factor=128.0)
    assert opt.scale_loss(np.float64(0.5)) == 64.0 and opt.scale_loss(0.5).dtype == np.float32
    assert Adam().scale_loss(0.5) == 0.5
    with pytest.raises(TypeError, match="`loss` must be a float"):
        opt.scale_loss("0.5")
