"""Hypothesis strategies: whole optimizer runs (arguments, shapes, dtypes, gradient sequences)."""

import dataclasses

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from optimizer_info import floats
from schedule_info import INFOS as SCHEDULE_INFOS

from scratchopt.tools.keras_reference import Literal, scratchopt_kwargs

SHAPES = [(), (1,), (3,), (2, 3), (4, 1, 2), (9,), (33,)]
DTYPES = [np.dtype(np.float32), np.dtype(np.float64)]
F16 = np.dtype(np.float16)


class LookupSchedule:
    """A learning-rate schedule given as a table: ``values[min(step, len - 1)]``."""

    def __init__(self, values):
        self.values = [float(np.float32(v)) for v in values]

    def __call__(self, step):
        return self.values[min(step, len(self.values) - 1)]

    def __repr__(self):
        return f"LookupSchedule({self.values})"


def values(dtype, nonfinite=False):
    """Array elements over many magnitudes: ordinary, tiny (products go subnormal), 0, -0."""
    width = {2: 16, 4: 32, 8: 64}[np.dtype(dtype).itemsize]
    # tiny * tiny is subnormal: exercises flush-to-zero
    tiny = {16: 2.0**-10, 32: float(np.float32(1e-19)), 64: 1e-155}[width]
    parts = [st.floats(-100, 100, width=width), st.floats(-tiny, tiny, width=width)]
    if nonfinite:
        parts.append(st.sampled_from([np.nan, np.inf, -np.inf]))
    return st.one_of(*parts)


def literal_schedules():
    """Any schedule as a literal call, ``Literal(name, drawn arguments)``: scratchopt's and
    Keras's are each built from the arguments drawn (each with its own defaults)."""
    return st.sampled_from(SCHEDULE_INFOS).flatmap(
        lambda info: info.kwargs.map(lambda kw, name=info.cls.__name__: Literal(name, kw)))


#: A learning rate as written in the call: a float, a Python callable, or a ``Literal`` schedule.
literal_learning_rates = st.one_of(
    floats(1e-4, 0.3),
    st.just(0.0),
    floats(-0.05, -1e-4),  # Keras accepts negative rates: gradient ascent
    st.lists(floats(0.0, 0.3), min_size=1, max_size=6).map(LookupSchedule),
    literal_schedules(),  # scratchopt.schedules, against Keras's own schedule classes
)

#: The same, as scratchopt takes it (a ``Literal`` made into scratchopt's schedule).
learning_rates = literal_learning_rates.map(lambda lr: lr.scratchopt() if isinstance(lr, Literal) else lr)

common_options = st.fixed_dictionaries({}, optional={
    "clip": st.tuples(st.sampled_from(["clipnorm", "clipvalue", "global_clipnorm"]),
                      st.one_of(floats(1e-3, 10.0), st.just(0.0), st.just(-1.0))),
    "weight_decay": floats(0.0, 0.2),
    "ema": st.tuples(floats(0.0, 1.0), st.one_of(st.none(), st.integers(1, 4))),
    "gradient_accumulation_steps": st.integers(2, 3),
    "loss_scale_factor": floats(0.25, 1024.0),
})


def to_kwargs(options):
    kwargs = dict(options)
    if "clip" in kwargs:
        key, value = kwargs.pop("clip")
        kwargs[key] = value
    if "ema" in kwargs:
        momentum, frequency = kwargs.pop("ema")
        kwargs.update(use_ema=True, ema_momentum=momentum, ema_overwrite_frequency=frequency)
    return kwargs


@dataclasses.dataclass
class Run:
    kwargs: dict  # the constructor arguments, as scratchopt takes them
    params: list  # initial values
    grads: list  # per step, a list with one gradient (or None) per param
    literal: dict = None  # the same arguments as drawn (schedules as Literal): Keras's are built from these


@st.composite
def runs(draw, info, max_steps=10, nonfinite=False, missing=True, refusable=False):
    """A whole run: constructor arguments, initial params and a gradient sequence.

    Any argument may be left out (the optimizer's own ones, the common options, and in one
    run of ten the learning rate), so each side's defaults are compared too: ``Run.literal``
    holds exactly what was drawn, for building Keras's optimizer from it. A 2-D param gets
    a dtype the optimizer can step (``info.matrix_dtypes``: Muon), unless ``refusable``."""
    kwargs = draw(info.hyperparameters)
    options = to_kwargs(draw(common_options))
    if "weight_decay" in kwargs:  # AdamW's own decay wins over the common option
        options.pop("weight_decay", None)
    kwargs.update(options)
    if draw(st.integers(0, 9)):
        kwargs["learning_rate"] = draw(literal_learning_rates)
    literal, kwargs = kwargs, scratchopt_kwargs(kwargs)
    shapes = draw(st.lists(st.sampled_from(SHAPES), min_size=1, max_size=3))
    dtypes = [draw(st.sampled_from(DTYPES)) for _ in shapes]
    # A gradient of another precision is cast by Keras, except where Keras cannot mix them:
    # accumulation needs grad dtype == param dtype, global_clipnorm one dtype for all grads.
    accumulate = bool(kwargs.get("gradient_accumulation_steps"))
    global_clip = (kwargs.get("global_clipnorm") or 0) > 0
    if accumulate and global_clip:
        dtypes = [dtypes[0]] * len(dtypes)
    if info.matrix_dtypes is not None and not refusable:
        allowed = info.matrix_dtypes(kwargs)
        shapes = [s if len(s) != 2 or allowed else (6,) for s in shapes]
        dtypes = [d if len(s) != 2 or d in allowed else allowed[0] for s, d in zip(shapes, dtypes)]
        if accumulate and global_clip and any(len(s) == 2 for s in shapes):
            dtypes = [allowed[0]] * len(dtypes)
    # float16 gradients too, except under norm clipping (scratchopt refuses those: see clipping.py)
    grad_choices = DTYPES if global_clip or (kwargs.get("clipnorm") or 0) > 0 else DTYPES + [F16]
    if accumulate:
        grad_dtypes = dtypes
    elif global_clip:
        grad_dtypes = [draw(st.sampled_from(grad_choices))] * len(dtypes)
    else:
        grad_dtypes = [draw(st.sampled_from(grad_choices)) for _ in dtypes]
    if info.matrix_dtypes is not None and not refusable:  # Muon: no gradient wider than its matrix
        if any(len(s) == 2 and g.itemsize > d.itemsize for s, d, g in zip(shapes, dtypes, grad_dtypes)):
            narrow = [d if len(s) == 2 and g.itemsize > d.itemsize else g
                      for s, d, g in zip(shapes, dtypes, grad_dtypes)]
            grad_dtypes = [min(narrow, key=lambda d: d.itemsize)] * len(dtypes) if global_clip else narrow
    params = [draw(arrays(d, s, elements=values(d))) for d, s in zip(dtypes, shapes)]
    steps = draw(st.integers(1, max_steps))
    grads = []
    for _ in range(steps):
        step = [draw(arrays(d, s, elements=values(d, nonfinite))) for d, s in zip(grad_dtypes, shapes)]
        if missing and len(step) > 1 and draw(st.integers(0, 9)) == 0:
            step[draw(st.integers(0, len(step) - 1))] = None  # a param without a gradient
        grads.append(step)
    return Run(kwargs, params, grads, literal)
