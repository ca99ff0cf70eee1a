"""Learning-rate schedules: ``step -> rate`` functions, equal bit for bit to Keras's.

A schedule is a plain function of the optimizer's step count. Give one to any optimizer as
its ``learning_rate``; the optimizer calls it with ``iterations`` before every step::

    >>> from scratchopt.schedules import ExponentialDecay
    >>> schedule = ExponentialDecay(0.1, decay_steps=100, decay_rate=0.96)
    >>> schedule(0), schedule(100)
    (0.10000000149011612, 0.09600000083446503)
    >>> schedule([0, 100, 200]).dtype
    dtype('float32')

An int step gives a Python float; an array of steps gives the array of rates. The value is
Keras's, to the last bit. Keras computes in the dtype of ``initial_learning_rate`` as a
tensor: **float32** for a Python float (hence 0.10000000149011612 above), float64 for an
``np.float64``. Every ``pow``, ``cos`` and ``log`` is the C library's, as in TF's kernels
(``scratchopt/numerics.py``).

Keras quirks kept, each named where it happens: ``step == boundary`` keeps the *earlier*
value; ``CosineDecay``'s ``1 - alpha`` is rounded from a double, ``CosineDecayRestarts``'s
is a float32 subtraction; ``PolynomialDecay(cycle=True)`` reaches ``end_learning_rate`` at
``step == k * decay_steps`` and restarts only one step later; arguments Keras does not check
(a negative ``decay_rate``, ``alpha > 1``) are not checked here either.

Where we refuse what Keras accepts:

* an **int** ``initial_learning_rate`` (or an int first value of
  ``PiecewiseConstantDecay``) is a ``TypeError``. Keras silently switches the whole schedule
  to int32 arithmetic: ``ExponentialDecay(1, ...)`` returns 0 or 1, ``CosineDecay(1, ...)``
  uses pi = 3, and ``CosineDecay(0, ..., warmup_target=0.1)`` fails at the first call.
  Write ``1.0``.
* ``PiecewiseConstantDecay`` with no boundaries, or with values of different float types,
  is refused at construction; Keras fails at the first call.
"""

import inspect
import math

import numpy as np

from ..numerics import cos, keras_cast, log, power, tf_arithmetic


def _compute_dtype(name, value):
    """The dtype Keras's ``convert_to_tensor(value)`` gives a schedule's arithmetic."""
    if isinstance(value, (bool, int, np.integer)):
        raise TypeError(
            f"`{name}` must be a float, got the int {value!r}: Keras would then compute the "
            f"whole schedule in int32 (cosine with pi = 3, decay to 0). Write {float(value)!r}.")
    if isinstance(value, np.float64):
        return np.dtype(np.float64)
    if isinstance(value, (float, np.float32)):
        return np.dtype(np.float32)
    raise TypeError(f"`{name}` must be a Python float, np.float32 or np.float64, "
                    f"got {value!r} ({type(value).__name__})")


def _number(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"`{name}` must be a number, got {value!r} ({type(value).__name__})")
    return value


def _positive(name, value):
    """Keras's only check: ``value <= 0`` is a ValueError (NaN passes, as in Keras)."""
    if _number(name, value) <= 0:
        raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={value}")
    return value


def _same(value, default):
    return type(value) is type(default) and value == default


class LearningRateSchedule:
    """The shared part: calling with a step (or steps), the dtype, and the config.

    A subclass sets ``self.dtype`` and writes ``rate(step)``: the formula on a NumPy array
    of steps already cast to ``dtype``, in Keras's operation order.

    Examples
    --------
    A schedule of your own: halve the rate every 10 steps. An int step gives a Python
    float; any optimizer takes the schedule as its ``learning_rate``.

    >>> import numpy as np
    >>> from scratchopt.schedules import LearningRateSchedule
    >>> class Halving(LearningRateSchedule):
    ...     def rate(self, step):
    ...         return 0.5 ** np.floor(step / 10)
    >>> schedule = Halving()
    >>> schedule(0), schedule(10), schedule(25)
    (1.0, 0.5, 0.25)
    >>> from scratchopt.optimizers import SGD
    >>> SGD(learning_rate=schedule).learning_rate  # at iterations = 0
    1.0
    """

    dtype = np.dtype(np.float32)

    def __call__(self, step):
        steps = np.asarray(step, np.float32 if type(step) is float else None)  # a float32 tensor
        if steps.dtype.kind not in "iuf":
            raise TypeError(f"`step` must be an int, a float or an array of them, got {step!r}")
        with tf_arithmetic():
            rates = np.asarray(self.rate(steps), self.dtype)
        if rates.ndim == 0:
            return float(rates)
        return rates

    def _steps(self, step):
        """``ops.cast(step, dtype)``."""
        return step.astype(self.dtype)

    def get_config(self):
        return dict(self._config)

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        defaults = {k: p.default for k, p in inspect.signature(type(self).__init__).parameters.items()}
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items()
                         if k != "name" and not (k in defaults and defaults[k] is not inspect.Parameter.empty
                                                 and _same(v, defaults[k])))
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    __hash__ = object.__hash__


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


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[i]`` between ``boundaries[i-1]`` and ``boundaries[i]``: the lesson's step decay.

    ::

        rate = values[0]   if step <= boundaries[0]
               values[i]   if boundaries[i-1] < step <= boundaries[i]
               values[-1]  if step > boundaries[-1]

    **At a boundary the earlier value still holds** (``step == 300`` in
    ``boundaries=[300]`` gives ``values[0]``): Keras's comparison is ``<=``.

    Keras computes it as a sum of indicator terms, in this order, and so do we:
    ``0 + [step <= b0]*v0 + [step > b_last]*v_last + sum_i [b_(i-1) < step <= b_i]*v_i``.
    With sorted boundaries exactly one term is non-zero; Keras does not check that they are
    sorted, and unsorted ones add several values (``[5, 2]`` gives ``v0 + v1`` at step 3).
    For an int step the boundaries are cast to int (a float boundary is truncated:
    ``3.7`` acts as 3); for a float step they are compared as floats.

    Examples
    --------
    >>> from scratchopt.schedules import PiecewiseConstantDecay
    >>> schedule = PiecewiseConstantDecay(boundaries=[100, 200], values=[0.5, 0.25, 0.125])
    >>> [schedule(step) for step in (0, 100, 101, 200, 201)]  # a boundary keeps the earlier value
    [0.5, 0.5, 0.25, 0.25, 0.125]
    """

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        boundaries, values = list(boundaries), list(values)
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of values. "
                f"Received: boundaries={boundaries} of length {len(boundaries)}, and "
                f"values={values} of length {len(values)}.")
        if not boundaries:
            raise ValueError("`boundaries` is empty: give at least one boundary "
                             "(Keras fails at the first call instead).")
        for b in boundaries:
            _number("boundaries", b)
        dtypes = {_compute_dtype("values", v) for v in values}
        if len(dtypes) > 1:
            raise TypeError(f"`values` mixes float32 and float64 numbers ({values!r}); "
                            "Keras fails at the first call. Use one kind.")
        self.dtype = dtypes.pop()
        self.boundaries = boundaries
        self.values = values
        self.name = name
        self._config = {"boundaries": boundaries, "values": values, "name": name}

    def rate(self, step):
        T = self.dtype.type
        # Each boundary becomes a tensor (float32 for a Python float), then takes the step's dtype.
        b = [keras_cast(x, np.float32 if type(x) is float else np.asarray(x).dtype).astype(step.dtype)
             for x in self.boundaries]
        v = [T(x) for x in self.values]
        rate = T(0)
        rate = rate + (step <= b[0]).astype(T) * v[0]
        rate = rate + (step > b[-1]).astype(T) * v[-1]
        for low, high, value in zip(b[:-1], b[1:], v[1:-1]):
            rate = rate + ((step > low) & (step <= high)).astype(T) * value
        return rate


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
        if _number("warmup_steps", warmup_steps) < 0:
            raise ValueError(f"Argument `warmup_steps` must be >= 0. Received: warmup_steps={warmup_steps}")
        if not _number("total_steps", total_steps) > warmup_steps:
            raise ValueError("Argument `total_steps` must be > `warmup_steps`. Received: "
                             f"total_steps={total_steps}, warmup_steps={warmup_steps}")
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
