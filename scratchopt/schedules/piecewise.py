"""Step decay: a constant rate between boundaries (PiecewiseConstantDecay).

::

    rate = values[0]   if step <= boundaries[0]
           values[i]   if boundaries[i-1] < step <= boundaries[i]
           values[-1]  if step > boundaries[-1]

Keras's quirk, kept: ``step == boundary`` keeps the *earlier* value.
"""

import numpy as np

from .. import checks
from ..numerics import keras_cast
from .base import LearningRateSchedule, _compute_dtype, _number


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
            raise ValueError(  # Keras's message
                "The length of boundaries should be 1 less than the length of values. "
                f"Received: boundaries={boundaries} of length {len(boundaries)}, and "
                f"values={values} of length {len(values)}.")
        if not boundaries:
            raise ValueError("`boundaries` must hold at least one boundary (Keras fails at the first "
                             f"call instead). {checks.received('boundaries', boundaries)}")
        for b in boundaries:
            _number("boundaries", b)
        dtypes = {_compute_dtype("values", v) for v in values}
        if len(dtypes) > 1:
            raise TypeError("`values` must be all float32 or all float64 numbers, not a mix (Keras "
                            f"fails at the first call). {checks.received('values', values)}")
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
