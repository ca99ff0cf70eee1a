"""LAMB: Adam's direction, rescaled per tensor by a trust ratio (You et al. 2020)."""

import numpy as np

from .. import checks
from ..backend import namespace, sqrt
from ..numerics import as_dtype, power, reduce_sum
from ..numerics.pow import power_array
from . import engine
from .base import Optimizer, cast


def update(g, var, m, v, *, lr, one_minus_beta_1, one_minus_beta_2, one_minus_beta_1_power,
           one_minus_beta_2_power, epsilon):
    """One LAMB step on one whole tensor: Adam's direction, then the trust ratio of two norms.

    Textbook (You et al. 2020, Alg. 2)              Keras (this code)
    --------------------------------------------    ---------------------------------------------------
    m = beta_1 * m + (1 - beta_1) * g               m = m + (g - m) * (1 - beta_1)
    v = beta_2 * v + (1 - beta_2) * g**2            v = v + (g*g - v) * (1 - beta_2)
    r = m_hat / (sqrt(v_hat) + eps)                 r = (m / (1 - b1**t)) / (sqrt(v / (1 - b2**t)) + epsilon)
    r = r + wd * w                                  (weight decay: the common one, before the step)
    ratio = phi(||w||) / ||r||                      ratio = ||w|| / ||r|| if both > 0, else 1
    w = w - lr * ratio * r                          w = w - (ratio * lr) * r

    The norms are ``sqrt(reduce_sum(pow(x, 2)))``: TF's array ``Pow`` with exponent 2 (Eigen's
    approximation on packets, not ``x * x``: ``numerics.pow``) summed in Eigen's order
    (``numerics.reduce_sum``).

    What the difference does: the paper adds the decay ``wd * w`` to ``r`` *before* the norm, so
    the trust ratio sees it; Keras decays the weights before the step, outside the ratio. The
    paper's scaling ``phi`` (a clip of ``||w||``) is the identity here. A tensor of zeros
    (``||w|| = 0``, a fresh bias) gets ratio 1: a plain Adam step. Measured (``python
    docs/textbook_gap.py``: float64, lr 0.01, weight_decay 0.01, 200 steps): 0.29 apart.
    """
    r, m, v = direction(g, None, m, v, one_minus_beta_1=one_minus_beta_1, one_minus_beta_2=one_minus_beta_2,
                        one_minus_beta_1_power=one_minus_beta_1_power,
                        one_minus_beta_2_power=one_minus_beta_2_power, epsilon=epsilon)
    (var,) = descend(r, var, step_size=trust_ratio(var, r) * lr)
    return var, m, v


def direction(g, r, m, v, *, one_minus_beta_1, one_minus_beta_2, one_minus_beta_1_power, one_minus_beta_2_power,
              epsilon):
    """Adam's direction ``r`` and the new moments, ``(r, m, v)``: elementwise, so the engine
    fuses it (``r`` comes in as the array it is written to, and is not read)."""
    m = m + (g - m) * one_minus_beta_1
    v = v + (g * g - v) * one_minus_beta_2
    r = (m / one_minus_beta_1_power) / (sqrt(v / one_minus_beta_2_power) + epsilon)
    return r, m, v


def trust_ratio(var, r):
    """``||w|| / ||r||``, or 1 if either norm is 0: the reduction, over the whole tensor."""
    two = var.dtype.type(2)
    w_norm = sqrt(reduce_sum(power_array(var, two)))
    r_norm = sqrt(reduce_sum(power_array(r, two)))
    return w_norm / r_norm if w_norm > 0 and r_norm > 0 else var.dtype.type(1.0)


def descend(r, var, *, step_size):
    """``w = w - (ratio * lr) * r``: elementwise again."""
    return (var - step_size * r,)


class Lamb(Optimizer):
    """``Lamb(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07, ...)``.

    The rule is ``update`` above: two elementwise passes (``direction``, ``descend``) around
    the reduction that needs each tensor whole (``trust_ratio``). A packed buffer is stepped
    param by param; NumPy only (TF's packet-wise ``pow``). On the fused path the engine runs
    the two elementwise passes as compiled kernels, with ``r`` in a scratch array that the
    optimizer keeps (``Optimizer._scratch``); ``opt.backend = "numpy"`` runs ``update`` as
    array code. The same functions on both paths, so the same bits. As in Keras the values
    are not validated.

    Examples
    --------
    The step's length is ``lr * ||w||`` whatever the gradient's scale: a relative step.

    >>> import numpy as np
    >>> from scratchopt.optimizers import Lamb
    >>> w = np.array([3.0, 4.0])                  # ||w|| = 5
    >>> opt = Lamb(learning_rate=0.1)
    >>> opt.apply([np.array([1e-3, 0.0])], [w])   # Adam's direction: (1, 0), about
    >>> np.round(w, 3)
    array([2.5, 4. ])
    """

    update = staticmethod(update)
    slot_names = ("m", "v")
    per_tensor = True

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None, gradient_accumulation_steps=None,
                 name="Lamb", **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
                         ema_momentum, ema_overwrite_frequency, loss_scale_factor,
                         gradient_accumulation_steps, name, **kwargs)
        self.beta_1 = checks.float32_range("beta_1", checks.number("beta_1", beta_1))
        self.beta_2 = checks.float32_range("beta_2", checks.number("beta_2", beta_2))
        self.epsilon = checks.number("epsilon", epsilon)

    def run_rule(self, g, var, slots, scalars, fused):
        if namespace(var) is not np:
            raise TypeError("Lamb runs on NumPy arrays only (TF's packet-wise pow is reproduced for NumPy)")
        if not fused:
            for state, new in zip([var, *slots], self.update(g, var, *slots, **scalars)):
                state[...] = new
            return
        r = self._scratch(var)
        moments = {name: value for name, value in scalars.items() if name != "lr"}
        engine.run(direction, g, r, slots, moments)  # r, m, v in one pass
        engine.run(descend, r, var, [], {"step_size": trust_ratio(var, r) * scalars["lr"]})

    def scalars(self, lr, step, dtype):
        t = dtype.type(step + 1)
        return {
            "lr": lr,
            "one_minus_beta_1": as_dtype(1 - self.beta_1, dtype),  # Python's 1 - beta, then rounded
            "one_minus_beta_2": as_dtype(1 - self.beta_2, dtype),
            "one_minus_beta_1_power": 1.0 - power(cast(self.beta_1, dtype), t),
            "one_minus_beta_2_power": 1.0 - power(cast(self.beta_2, dtype), t),
            "epsilon": as_dtype(self.epsilon, dtype),
        }
