"""One table entry per optimizer drives every generic test (PyTorch's OptimizerInfo, in spirit).

An entry says what the optimizer's own arguments may be (a Hypothesis strategy over the
range Keras accepts), which arguments Keras refuses at construction, and which odd ones
it lets through. Adding an optimizer to the suite is adding an entry here.
"""

import dataclasses

import numpy as np
from hypothesis import strategies as st

from scratchopt import optimizers
from scratchopt.tools.parity import MUON_BOUND, eps_gap, same_bits


def floats(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@dataclasses.dataclass
class OptimizerInfo:
    name: str
    # dicts of the optimizer's own arguments, each one optional: what is left out takes the
    # default, scratchopt's on one side and Keras's on the other (so a wrong default shows)
    hyperparameters: st.SearchStrategy
    rejections: list  # (kwargs, exception type) that Keras raises at construction
    acceptances: list  # kwargs that look wrong but that Keras accepts (and so do we)
    # the rule runs on the fused paths (False: whole-tensor array code, ``per_tensor`` rules)
    fused: bool = True
    # ``pack`` works (False: Adafactor, whose factored slots are not shaped like the params)
    packable: bool = True
    # None: every state bit-exact against Keras. Else {dtype: eps or None} (``parity.MUON_BOUND``):
    # the 2-D states are held to ``parity.eps_gap(ours, keras) <= eps`` (None: exact), the others exact
    bound: dict = None
    # None, or kwargs -> the dtypes a 2-D param can be stepped in (Muon: Keras raises on others)
    matrix_dtypes: object = None

    def agrees(self, ours, keras):
        """Whether our state is Keras's: the same bits, or for a 2-D state of a bounded
        optimizer within ``bound`` (``parity.eps_gap``)."""
        bound = None if self.bound is None else self.bound[np.asarray(keras).dtype.name]
        if bound is None or np.ndim(keras) != 2:
            return same_bits(ours, keras)
        return eps_gap(ours, keras) <= bound

    @property
    def cls(self):
        return getattr(optimizers, self.name)

    def __str__(self):
        return self.name


#: Rejected by every Keras optimizer: (kwargs, exception type).
COMMON_REJECTIONS = [
    ({"learning_rate": 1}, ValueError),  # an int
    ({"learning_rate": np.float32(0.1)}, ValueError),  # np.float32 is not a float subclass
    ({"learning_rate": "0.1"}, ValueError),
    ({"learning_rate": None}, ValueError),
    ({"clipnorm": 1.0, "clipvalue": 1.0}, ValueError),
    ({"clipnorm": 1.0, "global_clipnorm": 1.0}, ValueError),
    ({"gradient_accumulation_steps": 1}, ValueError),
    ({"gradient_accumulation_steps": 1.5}, ValueError),
    ({"use_ema": True, "ema_momentum": 1.5}, ValueError),
    ({"use_ema": True, "ema_momentum": -0.1}, ValueError),
    ({"use_ema": True, "ema_overwrite_frequency": 2.0}, ValueError),
    ({"use_ema": True, "ema_overwrite_frequency": -1}, ValueError),
    ({"not_an_argument": 1}, ValueError),
]

#: Accepted by every Keras optimizer although they look wrong.
COMMON_ACCEPTANCES = [
    {"learning_rate": -0.01},  # gradient ascent
    {"learning_rate": 0.0},
    {"learning_rate": np.float64(0.01)},  # a float subclass
    {"clipnorm": 0.0},  # 0 or negative silently disables clipping
    {"clipnorm": -1.0},
    {"clipvalue": -0.5},
    {"global_clipnorm": 0.0},
    {"gradient_accumulation_steps": 0},  # falsy: disabled
    {"use_ema": True, "ema_overwrite_frequency": 0},  # falsy: never overwrite
    {"use_ema": True, "ema_momentum": 0.0},
    {"use_ema": True, "ema_momentum": 1.0},
    {"ema_momentum": 5.0},  # only checked when use_ema=True
    {"weight_decay": -0.01},
    {"loss_scale_factor": 0.5},
]

INFOS = [
    OptimizerInfo(
        "SGD",
        st.fixed_dictionaries({}, optional={
            "momentum": st.one_of(st.just(0.0), st.just(1.0), floats(0.0, 1.0)),
            "nesterov": st.booleans(),
        }),
        rejections=[({"momentum": 0}, ValueError), ({"momentum": np.float32(0.9)}, ValueError),
                    ({"momentum": 1.5}, ValueError), ({"momentum": -0.1}, ValueError),
                    ({"momentum": "0.9"}, ValueError), ({"momentum": None}, ValueError)],
        acceptances=[{"momentum": 1.0}, {"momentum": 0.0, "nesterov": True},
                     {"momentum": np.float64(0.5)}],
    ),
    OptimizerInfo(
        "Adam",
        st.fixed_dictionaries({}, optional={
            "beta_1": st.one_of(st.just(0.0), floats(0.0, 0.999)),
            "beta_2": st.one_of(st.just(0.999), floats(0.5, 0.99999)),
            "epsilon": st.one_of(st.just(1e-7), floats(1e-10, 1e-2)),
            "amsgrad": st.booleans(),
        }),
        rejections=[],
        acceptances=[{"beta_1": 1.0}, {"beta_1": -0.5}, {"beta_2": 1.5}, {"epsilon": 0.0},
                     {"epsilon": -1e-7}, {"beta_1": 1}],
    ),
    OptimizerInfo(
        "AdamW",
        st.fixed_dictionaries({}, optional={
            "weight_decay": st.one_of(st.just(0.004), floats(0.0, 0.2)),
            "beta_1": floats(0.0, 0.999),
            "beta_2": floats(0.5, 0.99999),
            "epsilon": floats(1e-10, 1e-2),
            "amsgrad": st.booleans(),
        }),
        rejections=[({"weight_decay": None}, ValueError)],
        acceptances=[{"weight_decay": -0.01}, {"weight_decay": 0.0}, {"beta_1": 1.0}],
    ),
    OptimizerInfo(
        "RMSprop",
        st.fixed_dictionaries({}, optional={
            "rho": st.one_of(st.just(0.9), floats(0.0, 0.999)),
            "momentum": st.one_of(st.just(0.0), floats(0.0, 0.99)),
            "epsilon": st.one_of(st.just(1e-7), floats(1e-10, 1e-2)),
            "centered": st.booleans(),
        }),
        rejections=[],
        acceptances=[{"rho": 2.0}, {"momentum": -0.5}, {"momentum": 1}, {"epsilon": 0.0},
                     {"rho": 1.0, "centered": True}],
    ),
]

# --- issue 17: the rest of Keras's elementwise optimizers -----------------------------------

INFOS += [
    OptimizerInfo(
        "Nadam",
        st.fixed_dictionaries({}, optional={
            "beta_1": st.one_of(st.just(0.9), floats(0.0, 0.999)),
            "beta_2": st.one_of(st.just(0.999), floats(0.5, 0.99999)),
            "epsilon": st.one_of(st.just(1e-7), floats(1e-10, 1e-2)),
        }),
        rejections=[],
        acceptances=[{"beta_1": 1.0}, {"beta_1": -0.5}, {"beta_2": 1.5}, {"epsilon": 0.0}, {"beta_1": 1}],
    ),
    OptimizerInfo(
        "Adamax",
        st.fixed_dictionaries({}, optional={
            "beta_1": st.one_of(st.just(0.9), floats(0.0, 0.999)),
            "beta_2": st.one_of(st.just(0.999), floats(0.5, 0.99999)),
            "epsilon": st.one_of(st.just(1e-7), floats(1e-10, 1e-2)),
        }),
        rejections=[],
        acceptances=[{"beta_1": 1.0}, {"beta_1": -0.5}, {"beta_2": 1.5}, {"epsilon": 0.0}],
    ),
    OptimizerInfo(
        "Adagrad",
        st.fixed_dictionaries({}, optional={
            "initial_accumulator_value": st.one_of(st.just(0.1), st.just(0.0), floats(0.0, 2.0)),
            "epsilon": st.one_of(st.just(1e-7), floats(1e-10, 1e-2)),
        }),
        rejections=[],
        acceptances=[{"initial_accumulator_value": 0}, {"initial_accumulator_value": -1.0}, {"epsilon": 0.0}],
    ),
    OptimizerInfo(
        "Adadelta",
        st.fixed_dictionaries({}, optional={
            "rho": st.one_of(st.just(0.95), floats(0.0, 0.999)),
            "epsilon": st.one_of(st.just(1e-7), floats(1e-10, 1e-2)),
        }),
        rejections=[],
        acceptances=[{"rho": 1.5}, {"rho": -0.5}, {"epsilon": 0.0}],
    ),
    OptimizerInfo(
        "Lion",
        st.fixed_dictionaries({}, optional={
            "beta_1": st.one_of(st.just(0.9), st.just(1.0), floats(0.01, 1.0)),
            "beta_2": st.one_of(st.just(0.99), floats(0.0, 0.999)),
        }),
        rejections=[({"beta_1": 0.0}, ValueError), ({"beta_1": -0.1}, ValueError), ({"beta_1": 1.5}, ValueError)],
        acceptances=[{"beta_1": 1.0}, {"beta_2": 1.5}, {"beta_2": -0.5}],
    ),
    OptimizerInfo(
        "ScheduleFreeAdamW",
        st.fixed_dictionaries({}, optional={
            "beta_1": st.one_of(st.just(0.9), floats(0.05, 0.999)),
            "beta_2": st.one_of(st.just(0.999), floats(0.5, 0.99999)),
            "epsilon": st.one_of(st.just(1e-8), floats(1e-10, 1e-2)),
            "warmup_steps": st.one_of(st.just(0), st.integers(1, 20)),
        }),
        rejections=[],
        acceptances=[{"beta_1": 1.0}, {"beta_2": 1.5}, {"epsilon": 0.0}, {"warmup_steps": -3}],
    ),
]

INFOS += [
    OptimizerInfo(
        "Ftrl",
        st.fixed_dictionaries({}, optional={
            "learning_rate_power": st.one_of(st.just(-0.5), st.just(0.0), floats(-1.5, 0.0)),
            "initial_accumulator_value": st.one_of(st.just(0.1), floats(0.0, 2.0)),
            "l1_regularization_strength": st.one_of(st.just(0.0), floats(0.0, 0.1)),
            "l2_regularization_strength": st.one_of(st.just(0.0), floats(0.0, 0.1)),
            "l2_shrinkage_regularization_strength": st.one_of(st.just(0.0), floats(0.0, 0.1)),
            "beta": st.one_of(st.just(0.0), floats(0.0, 1.0)),
        }),
        rejections=[({"initial_accumulator_value": -0.1}, ValueError), ({"learning_rate_power": 0.5}, ValueError),
                    ({"l1_regularization_strength": -0.1}, ValueError),
                    ({"l2_regularization_strength": -0.1}, ValueError),
                    ({"l2_shrinkage_regularization_strength": -0.1}, ValueError)],
        acceptances=[{"beta": -1.0}, {"initial_accumulator_value": 0.0}, {"learning_rate_power": 0.0}],
        fused=False,  # its CPU kernel takes whole packets only, and it has no GPU path: test_pow_fast.py
    ),
    OptimizerInfo(
        "Lamb",
        st.fixed_dictionaries({}, optional={
            "beta_1": st.one_of(st.just(0.9), floats(0.0, 0.999)),
            "beta_2": st.one_of(st.just(0.999), floats(0.5, 0.99999)),
            "epsilon": st.one_of(st.just(1e-7), floats(1e-10, 1e-2)),
        }),
        rejections=[],
        acceptances=[{"beta_1": -0.5}, {"beta_2": 1.5}, {"epsilon": 0.0}],
        fused=False,
    ),
]

INFOS += [
    OptimizerInfo(
        "Adafactor",
        st.fixed_dictionaries({}, optional={
            "beta_2_decay": st.one_of(st.just(-0.8), floats(-1.0, -0.1)),
            "epsilon_1": st.one_of(st.just(1e-30), floats(1e-35, 1e-20)),
            "epsilon_2": st.one_of(st.just(1e-3), floats(1e-5, 1e-1)),
            "clip_threshold": st.one_of(st.just(1.0), floats(0.1, 2.0)),
            "relative_step": st.booleans(),
        }),
        rejections=[],
        acceptances=[{"beta_2_decay": 0.5}, {"clip_threshold": 0.0}, {"epsilon_2": 0.0}],
        fused=False, packable=False,
    ),
]

def muon_matrix_dtypes(kwargs):
    """The dtypes Keras's Muon can step a matrix in, with these arguments (``Muon._check_dtypes``):
    a schedule's own dtype, and float32 only while ``rms_rate`` is set."""
    rate = kwargs.get("learning_rate", 0.001)
    allowed = [np.dtype(np.float32), np.dtype(np.float64)]
    if callable(rate):
        allowed = [np.asarray(optimizers.Muon(learning_rate=rate)._current_learning_rate()).dtype]
    if kwargs.get("rms_rate", 0.2) is not None:
        allowed = [d for d in allowed if d == np.float32]
    return allowed


INFOS += [
    OptimizerInfo(
        "Muon",
        st.fixed_dictionaries({}, optional={
            "adam_beta_1": st.one_of(st.just(0.9), floats(0.0, 0.999)),
            "adam_beta_2": st.one_of(st.just(0.999), floats(0.5, 0.99999)),
            "adam_weight_decay": st.one_of(st.just(0.004), st.none(), floats(0.0, 0.1)),
            "epsilon": st.one_of(st.just(1e-7), floats(1e-10, 1e-2)),
            "exclude_embeddings": st.booleans(),
            "adam_lr_ratio": st.one_of(st.just(1), floats(0.1, 2.0)),
            "momentum": st.one_of(st.just(0.95), floats(0.0, 0.99)),
            "ns_steps": st.integers(0, 7),
            "nesterov": st.booleans(),
            # with rms_rate set (or a schedule), a float64 matrix makes Keras raise, and us
            "rms_rate": st.one_of(st.just(0.2), st.none(), floats(0.05, 1.0)),
        }),
        rejections=[],  # Keras checks none of Muon's own arguments
        acceptances=[{"momentum": 1.5}, {"adam_lr_ratio": 0.0}, {"rms_rate": 0.0}],
        fused=False, packable=False, bound=MUON_BOUND, matrix_dtypes=muon_matrix_dtypes,
    ),
]
