"""An optimizer's learning rate, as Keras holds it: a float32 variable, or a schedule.

* A float rate is stored in **float32** (Keras keeps it in a float32 variable), so
  ``learning_rate=0.001`` is 0.0010000000474974513 from then on; a rate beyond float32's
  range becomes inf, silently, as Keras stores it. At construction Keras refuses an int
  and ``np.float32`` (neither is a ``float``); ``np.float64`` (a ``float`` subclass) passes.
* A **schedule** is any callable: a ``LearningRateSchedule`` (or any callable taking the
  step) is called with the raw step counter; a plain callable with no parameter is called
  with nothing, as Keras does. Its value keeps the schedule's dtype (float64 for one built
  on an ``np.float64`` rate, as in Keras); a plain callable's Python float becomes a
  float32 tensor, its ``np.float64`` stays float64. A callable is user code: the optimizer
  calls it once per step, before anything changes and outside flush-to-zero, and a value
  that is not a real number is refused.

Examples
--------
>>> from scratchopt.optimizers.learning_rate import LearningRate
>>> rate = LearningRate(0.001)
>>> rate.at(0), float(rate.at(0))
(np.float32(0.001), 0.0010000000474974513)
>>> LearningRate(lambda step: 0.1 / (1 + step)).at(4)
np.float32(0.02)
"""

import numpy as np

from .. import checks
from . import validation


class LearningRate:
    """``value`` (a float32 scalar) or ``schedule`` (a callable; ``value`` is then None)."""

    def __init__(self, learning_rate):
        if not callable(learning_rate) and not isinstance(learning_rate, float):
            raise ValueError(
                "Argument `learning_rate` should be float, or a schedule (a callable "
                f"step -> rate). Received instead: learning_rate={learning_rate!r} "
                f"({type(learning_rate).__name__})")
        self.schedule = None
        self.set(learning_rate)

    def set(self, learning_rate):
        """``opt.learning_rate = ...``: a new schedule, or a new float rate for a float-built one."""
        if callable(learning_rate):
            self.schedule, self.value = learning_rate, None
            # Keras calls a plain callable with no argument; a schedule gets the step.
            self.takes_step = validation.takes_step(learning_rate)
            return
        if self.schedule is not None:
            raise TypeError(
                "This optimizer was created with a schedule as its `learning_rate`, hence its "
                "learning rate is not settable. Build it with a float `learning_rate` to set it.")
        checks.number("learning_rate", learning_rate)
        with np.errstate(over="ignore"):  # beyond float32: inf, silently, as Keras stores it
            self.value = np.float32(learning_rate)

    def at(self, step):
        """The rate of the step after ``step`` raw calls, as the NumPy scalar Keras would hold."""
        if self.schedule is None:
            return self.value
        if self.takes_step:
            lr, where = self.schedule(step), f"the schedule at step {step}"
        else:
            lr, where = self.schedule(), "the learning-rate callable"
        dtype = getattr(self.schedule, "dtype", None)
        lr = validation.check_rate(lr, where, python_float_to_float32=dtype is None)
        if dtype is None:
            dtype = np.float64 if isinstance(lr, np.float64) else np.float32
        with np.errstate(over="ignore"):  # a NumPy float beyond float32: inf, as Keras's cast
            return np.dtype(dtype).type(lr)

    def config(self):
        """What ``get_config`` reports: the schedule itself, or the stored rate as a float."""
        return self.schedule if self.schedule is not None else float(self.value)
