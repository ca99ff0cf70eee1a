"""One table drives every schedule test: how to draw each schedule's arguments, which
steps are interesting for it, and which arguments it must refuse.

A new schedule is one more ``ScheduleInfo`` entry.
"""

import dataclasses
import re

import numpy as np
from hypothesis import strategies as st
from optimizer_info import floats

from scratchopt import schedules


def rates():
    """An initial rate: mostly a Python float (float32 math), sometimes np.float64, 0, or negative."""
    return st.one_of(floats(1e-6, 1.0), floats(1e-6, 1.0).map(np.float64), st.just(0.0),
                     floats(-0.1, -1e-6))


def steps_count():
    return st.one_of(st.integers(1, 2000), floats(0.5, 500.0))


@dataclasses.dataclass
class ScheduleInfo:
    cls: type
    kwargs: st.SearchStrategy  # drawn constructor arguments
    landmarks: callable  # kwargs -> steps where the formula changes branch
    errors: list  # (kwargs, error type, text in the message)

    def __str__(self):
        return self.cls.__name__


def piecewise_kwargs():
    def build(boundaries, data):
        values = data.draw(st.lists(floats(1e-6, 1.0), min_size=len(boundaries) + 1,
                                    max_size=len(boundaries) + 1))
        return {"boundaries": boundaries, "values": values}

    boundaries = st.one_of(
        st.lists(st.integers(0, 1000), min_size=1, max_size=5, unique=True).map(sorted),
        st.lists(floats(0.0, 1000.0), min_size=1, max_size=4).map(sorted),  # float boundaries truncate
        st.lists(st.integers(0, 50), min_size=2, max_size=4),  # unsorted: Keras adds values
    )
    return st.builds(build, boundaries, st.data())


def decay_landmarks(kw):
    ds = kw.get("decay_steps") or kw.get("first_decay_steps")
    ws = kw.get("warmup_steps", 0)
    d = int(ds)
    return [0, 1, d - 1, d, d + 1, 2 * d, 3 * d + 1, 7 * d, int(ws), int(ws) + d, int(ws) + d + 1]


def piecewise_landmarks(kw):
    return [int(b) + k for b in kw["boundaries"] for k in (-1, 0, 1)]


def warmup_landmarks(kw):
    w, t = kw["warmup_steps"], kw["total_steps"]
    return [0, 1, w - 1, w, w + 1, t - 1, t, t + 1, 2 * t - w, 5 * t]


NOT_POSITIVE = [0, -1, -0.5]


def said(name, value):
    """The part of a message that names the argument and the value it got: ``name=value``."""
    return re.escape(f"{name}={value!r}")


INFOS = [
    ScheduleInfo(
        schedules.ExponentialDecay,
        st.fixed_dictionaries({"initial_learning_rate": rates(), "decay_steps": steps_count(),
                               "decay_rate": floats(0.01, 1.5), "staircase": st.booleans()}),
        decay_landmarks,
        [({"initial_learning_rate": 0.1, "decay_steps": d, "decay_rate": 0.9}, ValueError,
          said("decay_steps", d))
         for d in NOT_POSITIVE]
        + [({"initial_learning_rate": 1, "decay_steps": 10, "decay_rate": 0.9}, TypeError,
            said("initial_learning_rate", 1)),
           ({"initial_learning_rate": "0.1", "decay_steps": 10, "decay_rate": 0.9}, TypeError,
            said("initial_learning_rate", "0.1")),
           ({"initial_learning_rate": 0.1, "decay_steps": None, "decay_rate": 0.9}, TypeError,
            said("decay_steps", None))],
    ),
    ScheduleInfo(
        schedules.PiecewiseConstantDecay,
        piecewise_kwargs(),
        piecewise_landmarks,
        [({"boundaries": [10, 20], "values": [0.1, 0.2]}, ValueError, "length of boundaries"),
         ({"boundaries": [], "values": [0.1]}, ValueError, said("boundaries", [])),
         ({"boundaries": [10], "values": [1, 0.5]}, TypeError, said("values", 1)),
         ({"boundaries": [10], "values": [0.1, np.float64(0.5)]}, TypeError,
          said("values", [0.1, np.float64(0.5)])),
         ({"boundaries": ["10"], "values": [0.1, 0.5]}, TypeError, said("boundaries", "10"))],
    ),
    ScheduleInfo(
        schedules.PolynomialDecay,
        st.fixed_dictionaries({"initial_learning_rate": rates(), "decay_steps": steps_count(),
                               "end_learning_rate": st.one_of(floats(0.0, 0.01), st.just(0)),
                               "power": st.one_of(floats(0.1, 3.0), st.just(1)),
                               "cycle": st.booleans()}),
        decay_landmarks,
        [({"initial_learning_rate": 0.1, "decay_steps": d}, ValueError,
          said("decay_steps", d)) for d in NOT_POSITIVE]
        + [({"initial_learning_rate": 1, "decay_steps": 10}, TypeError, said("initial_learning_rate", 1))],
    ),
    ScheduleInfo(
        schedules.InverseTimeDecay,
        st.fixed_dictionaries({"initial_learning_rate": rates(), "decay_steps": steps_count(),
                               "decay_rate": floats(0.0, 5.0), "staircase": st.booleans()}),
        decay_landmarks,
        [({"initial_learning_rate": 0.1, "decay_steps": d, "decay_rate": 0.5}, ValueError,
          said("decay_steps", d))
         for d in NOT_POSITIVE]
        + [({"initial_learning_rate": 1, "decay_steps": 10, "decay_rate": 0.5}, TypeError,
            said("initial_learning_rate", 1))],
    ),
    ScheduleInfo(
        schedules.CosineDecay,
        st.fixed_dictionaries(
            {"initial_learning_rate": rates(), "decay_steps": steps_count()},
            optional={"alpha": st.one_of(floats(0.0, 1.0), st.just(0)),
                      "warmup_target": st.one_of(st.none(), floats(1e-5, 1.0)),
                      "warmup_steps": st.one_of(st.integers(0, 500), floats(0.5, 100.0))}),
        decay_landmarks,
        [({"initial_learning_rate": 0.1, "decay_steps": d}, ValueError,
          said("decay_steps", d)) for d in NOT_POSITIVE]
        + [({"initial_learning_rate": 0, "decay_steps": 10, "warmup_target": 0.1}, TypeError,
            said("initial_learning_rate", 0)),
           ({"initial_learning_rate": 0.1, "decay_steps": 10, "alpha": "0"}, TypeError, said("alpha", "0"))],
    ),
    ScheduleInfo(
        schedules.CosineDecayRestarts,
        st.fixed_dictionaries(
            {"initial_learning_rate": rates(), "first_decay_steps": steps_count()},
            optional={"t_mul": st.one_of(st.just(1.0), st.just(2.0), floats(0.5, 3.0)),
                      "m_mul": floats(0.1, 1.5), "alpha": floats(0.0, 1.0)}),
        decay_landmarks,
        [({"initial_learning_rate": 0.1, "first_decay_steps": d}, ValueError, said("first_decay_steps", d))
         for d in NOT_POSITIVE]
        + [({"initial_learning_rate": 1, "first_decay_steps": 10}, TypeError,
            said("initial_learning_rate", 1))],
    ),
    ScheduleInfo(
        schedules.WarmupCosineDecay,
        st.integers(0, 500).flatmap(lambda w: st.fixed_dictionaries({
            "initial_learning_rate": rates(), "warmup_steps": st.just(w),
            "total_steps": st.integers(w + 1, w + 3000)})),
        warmup_landmarks,
        [({"initial_learning_rate": 0.1, "warmup_steps": 10, "total_steps": 10}, ValueError,
          said("total_steps", 10)),
         ({"initial_learning_rate": 0.1, "warmup_steps": -1, "total_steps": 10}, ValueError,
          said("warmup_steps", -1)),
         ({"initial_learning_rate": 1, "warmup_steps": 1, "total_steps": 10}, TypeError,
          said("initial_learning_rate", 1))],
    ),
]


@st.composite
def schedules_and_steps(draw, info):
    """A schedule of ``info``'s class and the steps to ask it about (landmarks + random)."""
    kwargs = draw(info.kwargs)
    landmarks = [s for s in info.landmarks(kwargs) if s >= 0]
    steps = draw(st.lists(st.one_of(st.sampled_from(landmarks), st.integers(0, 5000),
                                    st.sampled_from([10**6, 2**24 + 1, 2**31 - 1])),
                          min_size=1, max_size=12))
    return info.cls(**kwargs), steps


def any_schedule():
    """Any scratchopt schedule, for the optimizer runs' learning rates."""
    return st.sampled_from(INFOS).flatmap(lambda info: info.kwargs.map(lambda kw: info.cls(**kw)))
