"""Schedule-free AdamW: no learning-rate schedule, an average of the iterates instead."""

import numpy as np

from .. import checks
from ..backend import sqrt
from ..numerics import power
from .base import Optimizer, cast


def update(g, var, z, v, *, lr, beta_1, one_minus_beta_1, one_minus_beta_2, bias_correction_2, epsilon,
           weight, one_minus_weight):
    """One schedule-free AdamW step, elementwise. ``var`` holds ``y``, the point where the
    gradient is taken; ``z`` (Keras's ``momentum`` slot) is the SGD-like sequence; the
    average ``x`` is not stored but recovered from the two.

    Textbook (Defazio et al. 2024, Alg. 1)             Keras (this code)
    ------------------------------------------------   ---------------------------------------------
    v = beta_2 * v + (1 - beta_2) * g**2               v = v + (g*g - v) * (1 - beta_2)
    z_new = z - lr * g / (sqrt(v / (1 - beta_2**t)) + eps)        (the same, ``(lr * g) / (...)``)
    x_old = (y - (1 - beta_1) * z_old) / beta_1        x_old = (y - (1 - beta_1) * z_NEW) / beta_1
    c = 1 / t  (with warmup: lr_t**2 / sum lr_i**2)    c = 1 / t
    x = (1 - c) * x_old + c * z_new                    x = (1 - c) * x_old + c * z_new
    y = (1 - beta_1) * z_new + beta_1 * x              y = (1 - beta_1) * z_new + beta_1 * x

    What the difference does: Keras recovers ``x_old`` from the momentum *after* its update
    (``momentum_old = momentum.value`` is a live read of the variable, not a copy), so
    ``x_old`` is off by ``(1 - beta_1) / beta_1 * (z_new - z_old)``: about 11% of this step
    added to the average with the defaults. Since ``x`` is never stored, the error does not
    accumulate as such, but ``y`` drifts from the paper's sequence (this file copies the quirk:
    without it the weights are 1e4-1e6 ULP from Keras's). The paper's ``c`` with warmup
    weights steps by ``lr**2``; Keras's is ``1/t``, with the warmup only scaling ``lr``.
    Keras's ``weight_decay`` is the common one, applied to ``y`` before the step (the paper
    decays at ``y`` inside the gradient step). Measured (``python docs/textbook_gap.py``: float64,
    defaults, 200 steps, the paper's ``x_old`` against Keras's): 8.5e-3 apart.
    """
    v = v + (g * g - v) * one_minus_beta_2
    z = z - (lr * g) / (sqrt(v / bias_correction_2) + epsilon)
    x_old = (var - one_minus_beta_1 * z) / beta_1  # Keras's quirk: the new z
    x = one_minus_weight * x_old + weight * z
    var = one_minus_beta_1 * z + beta_1 * x
    return var, z, v


class ScheduleFreeAdamW(Optimizer):
    """``ScheduleFreeAdamW(learning_rate=0.0025, beta_1=0.9, beta_2=0.999, epsilon=1e-08,
    warmup_steps=0, ...)``.

    The rule is ``update`` above; ``z`` starts as a copy of each param (Keras's ``momentum``
    slot). With ``warmup_steps > 0`` the rate is multiplied by ``min(t / warmup_steps, 1)``.
    The hyper-parameters reach the rule through Keras's ``ops.cast`` (a Python float through
    float32). As in Keras the values are not validated.

    Examples
    --------
    The first step: ``z`` moves by ``lr * sign(g)`` (Adam's first step), the average ``x``
    is ``z`` itself (``c = 1``), and ``y`` lands on the new ``z``.

    >>> import numpy as np
    >>> from scratchopt.optimizers import ScheduleFreeAdamW
    >>> w = np.array([1.0, 2.0])
    >>> opt = ScheduleFreeAdamW(learning_rate=0.1)
    >>> opt.apply([np.array([0.5, -3.0])], [w])
    >>> np.round(w, 4)
    array([0.9, 2.1])
    """

    update = staticmethod(update)
    slot_names = ("z", "v")

    def __init__(self, learning_rate=0.0025, beta_1=0.9, beta_2=0.999, epsilon=1e-08, warmup_steps=0,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False,
                 ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name="ScheduleFreeAdamW", **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
                         ema_momentum, ema_overwrite_frequency, loss_scale_factor,
                         gradient_accumulation_steps, name, **kwargs)
        self.beta_1 = checks.float32_range("beta_1", checks.number("beta_1", beta_1))
        self.beta_2 = checks.float32_range("beta_2", checks.number("beta_2", beta_2))
        self.epsilon = checks.float32_range("epsilon", checks.number("epsilon", epsilon))
        self.warmup_steps = checks.float32_range("warmup_steps", checks.number("warmup_steps", warmup_steps))

    def initial_slot(self, name, param):
        return param.copy() if name == "z" else super().initial_slot(name, param)

    def scalars(self, lr, step, dtype):
        t = dtype.type(step + 1)
        beta_1, beta_2 = cast(self.beta_1, dtype), cast(self.beta_2, dtype)
        if self.warmup_steps > 0:
            lr = lr * np.minimum(t / cast(self.warmup_steps, dtype), dtype.type(1.0))
        weight = 1.0 / t
        return {
            "lr": lr,
            "beta_1": beta_1,
            "one_minus_beta_1": 1 - beta_1,
            "one_minus_beta_2": 1 - beta_2,
            "bias_correction_2": 1 - power(beta_2, t),
            "epsilon": cast(self.epsilon, dtype),
            "weight": weight,
            "one_minus_weight": 1 - weight,
        }
