"""Constructor validation: what Keras refuses, we refuse; what Keras lets through, so do we."""

import inspect
import warnings

import numpy as np
import pytest

from optimizer_info import COMMON_ACCEPTANCES, COMMON_REJECTIONS, INFOS
from scratchopt.tools.keras_reference import KerasRun
from scratchopt.tools.parity import same_bits

REJECTIONS = [(info, kwargs, error) for info in INFOS
              for kwargs, error in COMMON_REJECTIONS + info.rejections]
ACCEPTANCES = [(info, kwargs) for info in INFOS for kwargs in COMMON_ACCEPTANCES + info.acceptances]


def case_id(case):
    info, kwargs = case[0], case[1]
    return f"{info}-" + ",".join(f"{k}={v!r}" for k, v in kwargs.items())


@pytest.mark.parametrize("case", REJECTIONS, ids=case_id)
def test_rejected_like_keras(tf, case):
    import keras

    info, kwargs, error = case
    with pytest.raises(error):
        getattr(keras.optimizers, info.name)(**kwargs)
    with pytest.raises(error) as ours:
        info.cls(**kwargs)
    # Our message names the argument it is about, and the value it got.
    assert any(f"{k}={v!r}" in str(ours.value) or f"{k!r}: {v!r}" in str(ours.value)
               for k, v in kwargs.items()), str(ours.value)


@pytest.mark.parametrize("case", ACCEPTANCES, ids=case_id)
def test_accepted_like_keras_and_steps_the_same(tf, case):
    """Keras's surprising acceptances construct, and then behave the same for 4 steps."""
    info, kwargs = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # decay= and similar warn in both
        ours = info.cls(**kwargs)
    rng = np.random.default_rng(1)
    params = [rng.standard_normal((3, 2)).astype(np.float32), rng.standard_normal(5)]
    reference = KerasRun(ours, params)
    for _ in range(4):
        grads = [rng.standard_normal(p.shape).astype(p.dtype) for p in params]
        with np.errstate(all="ignore"):
            ours.apply(grads, params)
        reference.apply(grads)
    for a, b in zip(params, reference.params()):
        assert info.agrees(a, b)


@pytest.mark.parametrize("info", [i for i in INFOS if i.name in ("Adam", "AdamW")], ids=str)
def test_beta_1_of_one_gives_nan_as_in_keras(info):
    """Adam's beta_1=1.0 (accepted by Keras) turns the weights into NaN, as in Keras."""
    params = [np.ones(3, np.float32)]
    ours = info.cls(beta_1=1.0)
    ours.apply([np.ones(3, np.float32)], params)
    assert np.isnan(params[0]).all()


@pytest.mark.parametrize("info", INFOS, ids=str)
@pytest.mark.parametrize("argument", ["epsilon", "weight_decay", "clipnorm", "ema_momentum",
                                      "loss_scale_factor"])
def test_non_numbers_are_type_errors_naming_the_argument(info, argument):
    """Where Keras would only fail at the first step, we fail at construction."""
    if argument == "epsilon" and info.name == "SGD":
        argument = "momentum"
        with pytest.raises(ValueError, match="momentum"):  # Keras's own check, a ValueError
            info.cls(momentum="0.9")
        return
    if argument not in inspect.signature(info.cls).parameters:
        pytest.skip(f"{info.name} has no `{argument}` argument (as in Keras)")
    with pytest.raises(TypeError, match=argument):
        info.cls(**{argument: "0.1"})


def test_decay_is_ignored_with_a_warning():
    from scratchopt.optimizers import SGD

    with pytest.warns(UserWarning, match="decay"):
        SGD(decay=0.1)


def test_positional_arguments_bind_in_keras_order(tf):
    import keras

    from scratchopt.optimizers import RMSprop, SGD

    assert SGD(0.1, 0.9, True).get_config() == {**SGD(learning_rate=0.1, momentum=0.9, nesterov=True).get_config()}
    ours = RMSprop(0.01, 0.8, 0.5, 1e-6, True).get_config()
    theirs = keras.optimizers.RMSprop(0.01, 0.8, 0.5, 1e-6, True).get_config()
    for key in ("rho", "momentum", "epsilon", "centered"):
        assert ours[key] == theirs[key]


def test_fractional_accumulation_steps_construct_but_cannot_step(tf):
    """Keras accepts gradient_accumulation_steps=2.5, then fails at the first apply."""
    import keras

    from scratchopt.optimizers import Adam

    params = [np.ones(3, np.float32)]
    reference = KerasRun(Adam(gradient_accumulation_steps=2.5), params)
    with pytest.raises(TypeError):
        reference.apply([np.ones(3, np.float32)])
    ours = Adam(gradient_accumulation_steps=2.5)
    with pytest.raises(TypeError, match="gradient_accumulation_steps=2.5"):
        ours.apply([np.ones(3, np.float32)], params)
    assert ours.iterations == 0 and not ours.built and (params[0] == 1).all()
    assert keras.optimizers.Adam(gradient_accumulation_steps=2.5).gradient_accumulation_steps == 2.5


@pytest.mark.parametrize("info", INFOS, ids=str)
def test_signature_is_keras_signature(tf, info):
    """Same argument names, order and defaults as the Keras constructor (the API contract)."""
    import inspect

    import keras

    def arguments(cls):
        return [(p.name, p.default) for p in inspect.signature(cls.__init__).parameters.values()
                if p.name not in ("self", "kwargs", "name")]

    assert arguments(info.cls) == arguments(getattr(keras.optimizers, info.name))
