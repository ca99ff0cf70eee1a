"""L1 and L2 penalties: a cost on the size of the weights, added to the loss.

::

    L1(l1):      penalty = l1 * sum(|w|)        gradient = l1 * sign(w)
    L2(l2):      penalty = l2 * sum(w**2)       gradient = l2 * (2 * w)
    L1L2(l1, l2): penalty = l1 * sum(|w|) + l2 * sum(w**2)

**No 1/2 in L2.** Many textbooks write ``(lambda/2) * ||w||^2`` so the gradient is
``lambda * w``; Keras (and so scratchopt) writes ``l2 * sum(w**2)``, whose gradient is
``2 * l2 * w``. ``L2(0.01)`` therefore pulls as hard as a textbook lambda of 0.02.

**L2 is not weight decay.** The penalty goes through the loss, so its gradient is mixed
into the optimizer's moments; Adam then divides it by ``sqrt(v)`` like any gradient.
AdamW's ``weight_decay`` shrinks the weights directly (``w -= lr * wd * w``), outside the
moments. With plain SGD the two coincide (``wd = 2 * l2``); with Adam they do not.

At ``w == 0`` the L1 gradient is 0 (``sign(0) = 0``), as TF's gradient of ``abs`` is.

Exactly as Keras computes them: the factor is rounded to float32 first (then widened for a
float64 ``w``), and the sum runs in TF's order (``numerics.reduce_sum``), so the penalty
has Keras's bits; ``np.sum`` would be up to 4 ULP off in about 40% of cases.

Validation is Keras's ``validate_float_arg``: a factor must be a Python ``int`` or
``float``, finite and >= 0, else ``ValueError``. So ``np.float32(0.1)`` is refused (it is
not a Python float), while ``np.float64(0.1)`` (a float subclass) and ints are accepted;
``None`` means the default. A finite factor too large for float32 (``L2(1e40)``) is a
ValueError, as Keras's float32 tensor of it is (Keras raises at construction for ``L1``,
at the first call for ``L2`` and ``L1L2``; we raise at construction for all three).
"""

import reprlib

import numpy as np

from .. import checks
from ..backend import namespace
from ..numerics import tf_arithmetic, through_float32
from ..numerics.sums import sum_of_abs, sum_of_squares

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _factor(name, value):
    """Keras's ``validate_float_arg`` (``checks.factor``), which lets a bool through as
    Keras's does (``isinstance(True, int)``): ``L2(True)`` is ``L2(1.0)`` there and here.
    Then Keras's float32 tensor: a factor beyond float32's range (``L2(1e40)``, an
    ``np.float64`` too) is Keras's ValueError, here at construction."""
    if isinstance(value, bool):
        return float(value)
    factor = checks.factor(name, value)
    with np.errstate(over="ignore"):
        if np.isinf(np.float32(factor)):
            raise ValueError(f"`{name}` must be within float32's range, at most {_FLOAT32_MAX:.8g} "
                             f"(Keras makes a float32 tensor of it). {checks.received(name, value)}")
    return factor


def _weights(w):
    dtype = getattr(w, "dtype", None)
    # isinstance first: ``None in FLOAT_DTYPES`` is True (np.dtype(None) is float64), so is "float32".
    if isinstance(dtype, np.dtype) and dtype in checks.FLOAT_DTYPES:
        return w
    if not isinstance(dtype, np.dtype):  # a list, a number: no array at all
        raise TypeError("`w` must be a float32 or float64 NumPy or CuPy array; convert a list or a "
                        "number first, e.g. with np.asarray(w, np.float32). "
                        f"Received: w={reprlib.repr(w)} ({type(w).__name__})")
    raise TypeError("`w` must be a float32 or float64 array (TF sums float16 in its own way, which "
                    f"scratchopt does not emulate). Received: w of dtype {dtype} ({type(w).__name__})")


class Regularizer(checks.Configurable):
    """The shared part: ``reg(w)`` is the penalty (a Python float), ``reg.gradient(w)`` its gradient.

    A subclass writes ``penalty(w)`` and ``penalty_gradient(w)`` (and ``get_config()``, the
    constructor's arguments); the base class checks ``w`` and runs them in TF's float
    environment (flush-to-zero). ``from_config`` and ``repr`` (the call, with the arguments
    that differ from the defaults) come from ``checks.Configurable``.

    Examples
    --------
    >>> import numpy as np
    >>> from scratchopt.regularizers import Regularizer
    >>> class Quartic(Regularizer):
    ...     def penalty(self, w):
    ...         return (w ** 4).sum()
    ...     def penalty_gradient(self, w):
    ...         return 4 * w ** 3
    >>> w = np.array([1.0, -2.0])
    >>> Quartic()(w)  # 1 + 16
    17.0
    >>> Quartic().gradient(w)  # 4 * [1, -8]
    array([  4., -32.])
    """

    def __call__(self, w):
        w = _weights(w)
        with tf_arithmetic():
            return float(self.penalty(w))

    def gradient(self, w):
        w = _weights(w)
        with tf_arithmetic():
            return self.penalty_gradient(w)


def _l1_term(l1, w):
    return through_float32(l1, w.dtype) * sum_of_abs(w)


def _l1_gradient(l1, w):
    return through_float32(l1, w.dtype) * namespace(w).sign(w)  # TF: grad * sign(w)


def _l2_term(l2, w):
    return through_float32(l2, w.dtype) * sum_of_squares(w)


def _l2_gradient(l2, w):
    return through_float32(l2, w.dtype) * (w * w.dtype.type(2.0))  # TF: grad * (w * 2)


class L1(Regularizer):
    """``l1 * sum(|w|)``: pushes weights to exactly 0 (a sparse model).

    Keras stores ``l1`` as a float32 tensor, so ``get_config()`` gives the float32 value
    (``L1(0.01).get_config() == {"l1": 0.009999999776482582}``); so does ours.

    Examples
    --------
    >>> import numpy as np
    >>> from scratchopt.regularizers import L1
    >>> w = np.array([1.0, -2.0, 0.0])
    >>> L1(0.5)(w)  # 0.5 * (1 + 2 + 0)
    1.5
    >>> L1(0.5).gradient(w)  # 0.5 * sign(w): the same pull on every non-zero weight
    array([ 0.5, -0.5,  0. ])
    """

    def __init__(self, l1=0.01):
        self.l1 = float(np.float32(_factor("l1", 0.01 if l1 is None else l1)))

    def penalty(self, w):
        return _l1_term(self.l1, w)

    def penalty_gradient(self, w):
        return _l1_gradient(self.l1, w)

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    """``l2 * sum(w**2)`` (no 1/2): pulls every weight toward 0 in proportion to its size.

    Examples
    --------
    >>> import numpy as np
    >>> from scratchopt.regularizers import L2
    >>> w = np.array([1.0, -2.0])
    >>> L2(0.5)(w)  # 0.5 * (1 + 4)
    2.5
    >>> L2(0.5).gradient(w)  # 2 * 0.5 * w: no 1/2 in the penalty, so a 2 here
    array([ 1., -2.])
    """

    def __init__(self, l2=0.01):
        self.l2 = _factor("l2", 0.01 if l2 is None else l2)

    def penalty(self, w):
        return _l2_term(self.l2, w)

    def penalty_gradient(self, w):
        return _l2_gradient(self.l2, w)

    def get_config(self):
        return {"l2": self.l2}


class L1L2(Regularizer):
    """``l1 * sum(|w|) + l2 * sum(w**2)``; a term whose factor is 0 is left out entirely.

    Keras's order: ``(0 + l1_term) + l2_term``. The defaults are 0, so ``L1L2(l2=0.1)`` has
    no L1 part (unlike ``keras.regularizers.l1_l2``'s documented 0.01 defaults).

    Examples
    --------
    >>> import numpy as np
    >>> from scratchopt.regularizers import L1L2
    >>> w = np.array([1.0, -2.0])
    >>> L1L2(l1=0.5, l2=0.25)(w)  # 0.5 * (1 + 2) + 0.25 * (1 + 4)
    2.75
    >>> L1L2(l1=0.5, l2=0.25).gradient(w)  # 0.5 * sign(w) + 0.25 * 2 * w
    array([ 1. , -1.5])
    """

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor("l1", 0.0 if l1 is None else l1)
        self.l2 = _factor("l2", 0.0 if l2 is None else l2)

    def penalty(self, w):
        total = w.dtype.type(0.0)
        if self.l1 != 0.0:
            total = total + _l1_term(self.l1, w)
        if self.l2 != 0.0:
            total = total + _l2_term(self.l2, w)
        return total

    def penalty_gradient(self, w):
        parts = []
        if self.l1 != 0.0:
            parts.append(_l1_gradient(self.l1, w))
        if self.l2 != 0.0:
            parts.append(_l2_gradient(self.l2, w))
        if not parts:  # no term: TF's gradient is None, i.e. zero
            return namespace(w).zeros_like(w)
        return parts[0] if len(parts) == 1 else parts[0] + parts[1]

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}
