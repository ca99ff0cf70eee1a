"""Cosine decay: CosineDecay (with optional warmup), WarmupCosineDecay, CosineDecayRestarts.

::

    c    = 0.5 * (1 + cos(pi * step / decay_steps))       step clamped to decay_steps
    rate = initial_learning_rate * ((1 - alpha) * c + alpha)

Keras's quirks, kept: ``CosineDecay``'s ``1 - alpha`` is rounded from a double,
``CosineDecayRestarts``'s is a float32 subtraction; ``alpha`` is not checked (Keras does
not: ``alpha > 1`` makes the rate grow).
"""

import math

import numpy as np

from .. import checks
from ..numerics import cos, keras_cast, log, power
from .base import LearningRateSchedule, _compute_dtype, _number, _positive


class CosineDecay(LearningRateSchedule):
    """Half a cosine from the rate down to ``alpha`` times it, with an optional linear warmup.

    Without warmup (``warmup_target=None``)::

        step = min(step, decay_steps)
        c    = 0.5 * (1 + cos(pi * step / decay_steps))
        rate = initial_learning_rate * ((1 - alpha) * c + alpha)

    With ``warmup_target``, the rate first climbs linearly from ``initial_learning_rate``
    to ``warmup_target`` over ``warmup_steps`` steps, then the cosine above runs from
    ``warmup_target``::

        step = min(step, warmup_steps + decay_steps)
        rate = (warmup_target - initial_learning_rate) * step / warmup_steps
               + initial_learning_rate                       if step < warmup_steps
               cosine decay of (step - warmup_steps) from warmup_target   otherwise

    Keras's quirks, kept: ``1 - alpha`` is computed in double precision and then rounded
    (``CosineDecayRestarts`` rounds first); pi is ``float32(pi)``, a hair above pi, whose
    float32 cosine is still exactly -1, so the rate ends exactly at ``alpha`` times it;
    ``warmup_steps`` is ignored when ``warmup_target`` is None; ``alpha`` is not checked
    (``alpha=2`` makes the rate grow).

    Examples
    --------
    Over 100 steps: at step 25, ``0.5 * (1 + cos(pi / 4))`` = 0.853553; at step 50, half
    the rate; from step 100 on, ``alpha`` times it (here 0).

    >>> from scratchopt.schedules import CosineDecay
    >>> schedule = CosineDecay(1.0, decay_steps=100)
    >>> [round(schedule(step), 6) for step in (0, 25, 50, 100, 200)]
    [1.0, 0.853553, 0.5, 0.0, 0.0]
    >>> warm = CosineDecay(0.0, decay_steps=100, warmup_target=1.0, warmup_steps=10)
    >>> [round(warm(step), 6) for step in (0, 5, 10, 60)]  # linear warmup, then the cosine
    [0.0, 0.5, 1.0, 0.5]
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        self.dtype = _compute_dtype("initial_learning_rate", initial_learning_rate)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = _positive("decay_steps", decay_steps)
        self.alpha = _number("alpha", alpha)
        self.name = name
        self.warmup_target = None if warmup_target is None else _number("warmup_target", warmup_target)
        self.warmup_steps = _number("warmup_steps", warmup_steps)
        self._config = {"initial_learning_rate": initial_learning_rate, "decay_steps": decay_steps,
                        "alpha": alpha, "name": name, "warmup_target": warmup_target,
                        "warmup_steps": warmup_steps}

    def _decay(self, step, decay_steps, decay_from):
        T = self.dtype.type
        completed_fraction = step / decay_steps
        c = T(0.5) * (T(1.0) + cos(T(math.pi) * completed_fraction))
        return decay_from * (T(1 - self.alpha) * c + T(self.alpha))

    def rate(self, step):
        T = self.dtype.type
        initial = T(self.initial_learning_rate)
        decay_steps = keras_cast(self.decay_steps, T)
        step = self._steps(step)
        if self.warmup_target is None:
            return self._decay(np.minimum(step, decay_steps), decay_steps, initial)
        target = keras_cast(self.warmup_target, T)
        warmup_steps = keras_cast(self.warmup_steps, T)
        step = np.minimum(step, decay_steps + warmup_steps)
        warming = (target - initial) * (step / warmup_steps) + initial
        decaying = self._decay(step - warmup_steps, decay_steps, target)
        return np.where(step < warmup_steps, warming, decaying)


class WarmupCosineDecay(LearningRateSchedule):
    """The lesson's warmup + cosine: 0 up to the rate in ``warmup_steps``, cosine to 0 at ``total_steps``.

    ::

        rate = initial_learning_rate * step / warmup_steps                 step < warmup_steps
               0.5 * initial_learning_rate * (1 + cos(pi * progress))      until total_steps
               0                                                           after total_steps
        progress = (step - warmup_steps) / (total_steps - warmup_steps)

    **The pitfall this fixes.** The lesson writes the middle line for every step past the
    warmup. After ``total_steps`` the progress passes 1, the cosine turns and the rate
    *climbs back up*, to the full rate again at ``2 * total_steps - warmup_steps``:
    ``scratchopt.textbook.lesson_warmup_cosine`` keeps that formula to show it. Here the
    step is clamped at ``total_steps`` and the rate stays 0.

    It is exactly Keras's ``CosineDecay(0.0, total_steps - warmup_steps,
    warmup_target=initial_learning_rate, warmup_steps=warmup_steps)`` (same operations in
    the same order), which is what the parity tests compare it with.

    Examples
    --------
    Up to 1.0 in 10 steps, down to 0 at step 110, and 0 after it; the lesson's formula
    is back at the full rate at step ``2 * 110 - 10`` = 210 (progress 2, ``cos(2 pi) = 1``).

    >>> from scratchopt.schedules import WarmupCosineDecay
    >>> schedule = WarmupCosineDecay(1.0, warmup_steps=10, total_steps=110)
    >>> [round(schedule(step), 6) for step in (0, 5, 10, 60, 110, 210)]
    [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
    >>> from scratchopt.textbook import lesson_warmup_cosine
    >>> lesson_warmup_cosine(210, initial_lr=1.0, warmup_steps=10, total_steps=110)
    1.0
    """

    def __init__(self, initial_learning_rate, warmup_steps, total_steps, name="WarmupCosineDecay"):
        dtype = _compute_dtype("initial_learning_rate", initial_learning_rate)
        if _number("warmup_steps", warmup_steps) < 0:  # NaN passes here, and fails the next check
            raise ValueError(f"`warmup_steps` must be >= 0. {checks.received('warmup_steps', warmup_steps)}")
        if not _number("total_steps", total_steps) > warmup_steps:
            raise ValueError(f"`total_steps` must be > `warmup_steps` ({warmup_steps!r}). "
                             f"{checks.received('total_steps', total_steps)}")
        self.dtype = dtype
        self.initial_learning_rate = initial_learning_rate
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.name = name
        self._cosine = CosineDecay(**self.as_cosine_decay_config())
        self._config = {"initial_learning_rate": initial_learning_rate, "warmup_steps": warmup_steps,
                        "total_steps": total_steps, "name": name}

    def as_cosine_decay_config(self):
        """The ``CosineDecay`` arguments that give the same rates, bit for bit."""
        return {"initial_learning_rate": self.dtype.type(0.0),
                "decay_steps": self.total_steps - self.warmup_steps, "alpha": 0.0,
                "warmup_target": self.initial_learning_rate, "warmup_steps": self.warmup_steps}

    def rate(self, step):
        return self._cosine.rate(step)


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay that restarts (SGDR): each period ``t_mul`` times longer, ``m_mul`` times lower.

    ::

        f = step / first_decay_steps
        i = floor(f)                                       (restart index; t_mul == 1)
            floor(log(1 - f * (1 - t_mul)) / log(t_mul))   (t_mul != 1)
        f = f - i                                          (t_mul == 1)
            (f - (1 - t_mul**i) / (1 - t_mul)) / t_mul**i  (progress in period i)
        c = 0.5 * m_mul**i * (1 + cos(pi * f))
        rate = initial_learning_rate * ((1 - alpha) * c + alpha)

    Keras's quirks, kept: here ``1 - alpha`` is a float32 subtraction (``CosineDecay`` rounds
    a double); the floor ``alpha`` is not scaled by ``m_mul**i``; the default name is
    "SGDRDecay".

    Examples
    --------
    Periods of 10, then 20 steps (``t_mul=2``), the second starting at half the height
    (``m_mul=0.5``): step 9 is near the bottom, ``0.5 * (1 + cos(0.9 pi))`` = 0.024472;
    step 10 restarts at 0.5; step 20 is halfway down the second period.

    >>> from scratchopt.schedules import CosineDecayRestarts
    >>> schedule = CosineDecayRestarts(1.0, first_decay_steps=10, t_mul=2.0, m_mul=0.5)
    >>> [round(schedule(step), 6) for step in (0, 5, 9, 10, 20)]
    [1.0, 0.5, 0.024472, 0.5, 0.25]
    """

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0,
                 name="SGDRDecay"):
        self.dtype = _compute_dtype("initial_learning_rate", initial_learning_rate)
        self.initial_learning_rate = initial_learning_rate
        self.first_decay_steps = _positive("first_decay_steps", first_decay_steps)
        self.t_mul = _number("t_mul", t_mul)
        self.m_mul = _number("m_mul", m_mul)
        self.alpha = _number("alpha", alpha)
        self.name = name
        self._config = {"initial_learning_rate": initial_learning_rate,
                        "first_decay_steps": first_decay_steps, "t_mul": t_mul, "m_mul": m_mul,
                        "alpha": alpha, "name": name}

    def rate(self, step):
        T = self.dtype.type
        alpha = keras_cast(self.alpha, T)
        t_mul = keras_cast(self.t_mul, T)
        f = self._steps(step) / keras_cast(self.first_decay_steps, T)
        if t_mul == T(1.0):
            i = np.floor(f)
            f = f - i
        else:
            i = np.floor(log(T(1.0) - f * (T(1.0) - t_mul)) / log(t_mul))
            sum_r = (T(1.0) - power(t_mul, i)) / (T(1.0) - t_mul)
            f = (f - sum_r) / power(t_mul, i)
        m_fac = power(keras_cast(self.m_mul, T), i)
        c = T(0.5) * m_fac * (T(1.0) + cos(T(math.pi) * f))
        return T(self.initial_learning_rate) * ((T(1) - alpha) * c + alpha)
