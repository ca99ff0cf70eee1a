"""Learning-rate schedules: ``step -> rate`` functions, equal bit for bit to Keras's.

A schedule is a plain function of the optimizer's step count. Give one to any optimizer as
its ``learning_rate``; the optimizer calls it with ``iterations`` before every step::

    >>> from scratchopt.schedules import ExponentialDecay
    >>> schedule = ExponentialDecay(0.1, decay_steps=100, decay_rate=0.96)
    >>> schedule(0), schedule(100)
    (0.10000000149011612, 0.09600000083446503)
    >>> schedule([0, 100, 200]).dtype
    dtype('float32')

One idea a module:

* ``base.py``: ``LearningRateSchedule`` (calling, the float32/float64 dtype rule, the
  config) and the argument checks, with what we refuse that Keras accepts;
* ``piecewise.py``: ``PiecewiseConstantDecay`` (step decay);
* ``decay.py``: ``ExponentialDecay``, ``InverseTimeDecay``, ``PolynomialDecay``;
* ``cosine.py``: ``CosineDecay``, ``WarmupCosineDecay`` (the lesson's), ``CosineDecayRestarts``.

Keras quirks kept, each named where it happens: ``step == boundary`` keeps the *earlier*
value; ``CosineDecay``'s ``1 - alpha`` is rounded from a double, ``CosineDecayRestarts``'s
is a float32 subtraction; ``PolynomialDecay(cycle=True)`` reaches ``end_learning_rate`` at
``step == k * decay_steps`` and restarts only one step later.
"""

from .base import LearningRateSchedule
from .cosine import CosineDecay, CosineDecayRestarts, WarmupCosineDecay
from .decay import ExponentialDecay, InverseTimeDecay, PolynomialDecay
from .piecewise import PiecewiseConstantDecay

__all__ = [
    "LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay",
    "InverseTimeDecay", "CosineDecay", "WarmupCosineDecay", "CosineDecayRestarts",
]
