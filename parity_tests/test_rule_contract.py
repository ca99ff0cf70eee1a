"""The optimizer's rule contract, and what a reader of an optimizer file can rely on.

* Slots reach the rule by name: ``slot_names`` and the parameters of ``update`` after
  ``g, var`` must name the same arrays, and a mismatch is a TypeError when the class is
  *defined*, naming both lists.
* Each optimizer's constructor is written in its own file (go-to-definition lands there),
  with its own arguments first and Keras's common ones after.
"""

import inspect

import numpy as np
import pytest

from scratchopt.optimizers import SGD, Adam, AdamW, Optimizer, RMSprop


def test_mismatched_slot_names_are_a_type_error_at_class_creation():
    with pytest.raises(TypeError) as error:
        class Bad(Optimizer):  # noqa: F841 (the class statement itself must fail)
            slot_names = ("m", "velocity")

            @staticmethod
            def update(g, var, m, v, *, lr):
                return var - lr * m, m, v
    message = str(error.value)
    assert "Bad" in message and "['m', 'v']" in message and "['m', 'velocity']" in message


def test_a_rule_must_take_g_and_var_first():
    with pytest.raises(TypeError, match=r"\(g, var, \*slots.*\['var', 'g', 'm'\]"):
        class Swapped(Optimizer):  # noqa: F841
            slot_names = ("m",)

            @staticmethod
            def update(var, g, m, *, lr):
                return var, m


def test_a_subclass_that_changes_only_slot_names_is_checked_too():
    with pytest.raises(TypeError, match=r"\['m'\].*\['momentum'\]"):
        class Renamed(SGD):  # noqa: F841
            slot_names = ("momentum",)


class Sums(Optimizer):
    """Two slots, listed in the other order than ``update`` takes them (on purpose)."""

    slot_names = ("v", "m")

    @staticmethod
    def update(g, var, m, v, *, lr):
        m = m + g  # the sum of the gradients
        v = v + g * g  # the sum of their squares
        return var - lr * m, m, v

    def scalars(self, lr, step, dtype):
        return {"lr": lr}


@pytest.mark.parametrize("backend", ["numpy", "auto"])
def test_slots_are_matched_by_name_not_by_order(backend):
    """Each array reaches the parameter of its name, and ``state_dict`` stores it under
    that name (the old dict-order matching stored m's values under "v")."""
    w = np.zeros(3)
    opt = Sums(learning_rate=0.5)
    opt.backend = backend
    for g in ([1.0, 2.0, 3.0], [1.0, -1.0, 0.5]):
        opt.apply([np.array(g)], [w])
    slots = opt.state_dict()["slots"][0]
    np.testing.assert_array_equal(slots["m"], [2.0, 1.0, 3.5])
    np.testing.assert_array_equal(slots["v"], [2.0, 5.0, 9.25])
    np.testing.assert_array_equal(w, -0.5 * np.array([1.0, 2.0, 3.0]) - 0.5 * np.array([2.0, 1.0, 3.5]))
    assert Sums._rule_slots == ("m", "v") and list(slots) == ["v", "m"]


@pytest.mark.parametrize("cls, own", [
    (SGD, ["learning_rate", "momentum", "nesterov"]),
    (Adam, ["learning_rate", "beta_1", "beta_2", "epsilon", "amsgrad"]),
    (AdamW, ["learning_rate", "weight_decay", "beta_1", "beta_2", "epsilon", "amsgrad"]),
    (RMSprop, ["learning_rate", "rho", "momentum", "epsilon", "centered"]),
])
def test_each_constructor_is_written_in_its_own_file(cls, own):
    """Go-to-definition on ``Adam(...)`` lands on Adam's arguments in adam.py, as in Keras."""
    init = cls.__dict__["__init__"]
    assert inspect.getsourcefile(init).endswith(f"/optimizers/{cls.__module__.rsplit('.', 1)[1]}.py")
    names = list(inspect.signature(init).parameters)
    assert names[1:len(own) + 1] == own
    assert names[-2:] == ["name", "kwargs"]
    assert "weight_decay" in names and "gradient_accumulation_steps" in names


@pytest.mark.parametrize("cls, argument", [
    (Adam, "beta_1"), (Adam, "beta_2"), (Adam, "epsilon"), (AdamW, "epsilon"),
    (RMSprop, "rho"), (RMSprop, "momentum"), (RMSprop, "epsilon"), (Adam, "ema_momentum"),
])
@pytest.mark.parametrize("value", [None, "0.9"])
def test_a_hyper_parameter_that_is_not_a_number_is_a_type_error_naming_it(cls, argument, value):
    with pytest.raises(TypeError, match=f"`{argument}` must be a number. Received: {argument}={value!r}"):
        cls(**{argument: value})


def test_the_same_param_twice_is_refused_before_anything_changes():
    w = np.ones(3)
    opt = Adam(0.1)
    with pytest.raises(ValueError, match=r"params\[1\] is params\[0\]"):
        opt.apply([np.ones(3), np.ones(3)], [w, w])
    assert not opt.built and opt.iterations == 0
    np.testing.assert_array_equal(w, np.ones(3))
