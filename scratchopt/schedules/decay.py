"""Decay by a rate or a power: ExponentialDecay, InverseTimeDecay, PolynomialDecay.

::

    p = step / decay_steps                       (floor(p) with staircase=True)
    ExponentialDecay:  rate = initial_learning_rate * decay_rate ** p
    InverseTimeDecay:  rate = initial_learning_rate / (1 + decay_rate * p)
    PolynomialDecay:   rate = (initial_learning_rate - end_learning_rate) * (1 - p) ** power
                              + end_learning_rate            (p clamped to 1, or cycling)

Keras's quirk, kept: ``PolynomialDecay(cycle=True)`` reaches ``end_learning_rate`` at
``step == k * decay_steps`` and restarts only one step later. ``decay_rate`` is not checked
(Keras does not: a negative one gives NaN).
"""

import numpy as np

from ..numerics import keras_cast, power
from .base import LearningRateSchedule, _compute_dtype, _number, _positive


class _DecayByRate(LearningRateSchedule):
    """What ExponentialDecay and InverseTimeDecay share: Keras's four arguments, checked once."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase, name):
        self.dtype = _compute_dtype("initial_learning_rate", initial_learning_rate)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = _positive("decay_steps", decay_steps)
        self.decay_rate = _number("decay_rate", decay_rate)
        self.staircase = staircase
        self.name = name
        self._config = {"initial_learning_rate": initial_learning_rate, "decay_steps": decay_steps,
                        "decay_rate": decay_rate, "staircase": staircase, "name": name}

    def _progress(self, step):
        """``p = step / decay_steps`` in the compute dtype, floored with ``staircase=True``."""
        p = self._steps(step) / keras_cast(self.decay_steps, self.dtype.type)
        return np.floor(p) if self.staircase else p


class ExponentialDecay(_DecayByRate):
    """The rate multiplied by ``decay_rate`` every ``decay_steps`` steps, smoothly.

    ::

        p    = step / decay_steps            (floor(p) with staircase=True)
        rate = initial_learning_rate * decay_rate ** p

    ``staircase=True`` gives the lesson's "step decay": a constant rate within each block
    of ``decay_steps`` steps. Keras does not check ``decay_rate``: a negative one gives NaN.

    Examples
    --------
    Halve the rate every 100 steps: at step 50 it is ``0.1 * 0.5**0.5`` = 0.0707107.
    The values are float32 (``schedule(100)`` is 0.05000000074505806), hence ``round``.

    >>> from scratchopt.schedules import ExponentialDecay
    >>> schedule = ExponentialDecay(0.1, decay_steps=100, decay_rate=0.5)
    >>> [round(schedule(step), 6) for step in (0, 50, 100, 200)]
    [0.1, 0.070711, 0.05, 0.025]
    >>> stairs = ExponentialDecay(0.1, decay_steps=100, decay_rate=0.5, staircase=True)
    >>> round(stairs(150), 6)  # floor(150 / 100) = 1
    0.05
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def rate(self, step):
        T, p = self.dtype.type, self._progress(step)
        return T(self.initial_learning_rate) * power(keras_cast(self.decay_rate, T), p)


class InverseTimeDecay(_DecayByRate):
    """The rate divided by ``1 + decay_rate * p``: it falls like 1/t.

    ::

        p    = step / decay_steps            (floor(p) with staircase=True)
        rate = initial_learning_rate / (1 + decay_rate * p)

    Examples
    --------
    >>> from scratchopt.schedules import InverseTimeDecay
    >>> schedule = InverseTimeDecay(1.0, decay_steps=10, decay_rate=1.0)
    >>> [schedule(step) for step in (0, 10, 30)]  # 1 / (1 + step / 10)
    [1.0, 0.5, 0.25]
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="InverseTimeDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def rate(self, step):
        T, p = self.dtype.type, self._progress(step)
        return T(self.initial_learning_rate) / (T(1) + keras_cast(self.decay_rate, T) * p)


class PolynomialDecay(LearningRateSchedule):
    """From ``initial_learning_rate`` to ``end_learning_rate`` along ``(1 - p) ** power``.

    ::

        step  = min(step, decay_steps)                      (cycle=False)
        decay_steps *= 1 if step == 0 else ceil(step / decay_steps)   (cycle=True)
        p     = step / decay_steps
        rate  = (initial_learning_rate - end_learning_rate) * (1 - p) ** power
                + end_learning_rate

    ``power=1`` is a straight line. With ``cycle=True`` the rate reaches
    ``end_learning_rate`` at ``step == k * decay_steps`` and jumps back up one step later.

    Examples
    --------
    From 1.0 to 0.5 over 10 steps along a parabola: at step 5,
    ``(1.0 - 0.5) * (1 - 0.5)**2 + 0.5`` = 0.625; after step 10 the rate stays at 0.5.

    >>> from scratchopt.schedules import PolynomialDecay
    >>> schedule = PolynomialDecay(1.0, decay_steps=10, end_learning_rate=0.5, power=2.0)
    >>> [schedule(step) for step in (0, 5, 10, 20)]
    [1.0, 0.625, 0.5, 0.5]
    """

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0,
                 cycle=False, name="PolynomialDecay"):
        self.dtype = _compute_dtype("initial_learning_rate", initial_learning_rate)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = _positive("decay_steps", decay_steps)
        self.end_learning_rate = _number("end_learning_rate", end_learning_rate)
        self.power = _number("power", power)
        self.cycle = cycle
        self.name = name
        self._config = {"initial_learning_rate": initial_learning_rate, "decay_steps": decay_steps,
                        "end_learning_rate": end_learning_rate, "power": power, "cycle": cycle,
                        "name": name}

    def rate(self, step):
        T = self.dtype.type
        initial = T(self.initial_learning_rate)
        end = keras_cast(self.end_learning_rate, T)
        step = self._steps(step)
        decay_steps = keras_cast(self.decay_steps, T)
        if self.cycle:
            multiplier = np.where(step == 0, T(1.0), np.ceil(step / T(self.decay_steps)))
            decay_steps = decay_steps * multiplier
        else:
            step = np.minimum(step, decay_steps)
        p = step / decay_steps
        return (initial - end) * power(T(1) - p, keras_cast(self.power, T)) + end
