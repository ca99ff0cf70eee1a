"""Adamax: Adam with the infinity norm in place of the RMS."""

from numpy import absolute

from .. import checks
from ..backend import maximum
from ..numerics import as_dtype, power
from .base import Optimizer, cast


def update(g, var, m, u, *, lr, one_minus_beta_1, beta_2, one_minus_beta_1_power, epsilon):
    """One Adamax step, elementwise.

    Textbook (Kingma & Ba 2015, Alg. 2)         Keras (this code)
    ------------------------------------        -------------------------------------------------
    m = beta_1 * m + (1 - beta_1) * g           m = m + (g - m) * (1 - beta_1)
    u = max(beta_2 * u, |g|)                    u = max(beta_2 * u, |g|)
    w = w - (lr / (1 - beta_1**t)) * m / u      w = w - (lr * m) / ((1 - beta_1**t) * (u + epsilon))

    What the difference does: the paper has no ``epsilon`` (``u`` is 0 only where every
    gradient so far was 0, and then ``m`` is 0 too: 0/0). Keras adds ``epsilon`` to ``u``, so
    such a weight stays put instead of becoming NaN, and a weight whose gradients are all
    tiny (``|g|`` near 1e-7) takes steps up to 2x smaller. The bias correction multiplies the
    denominator instead of dividing the rate. Measured (``python docs/textbook_gap.py``: float64, lr
    0.01, defaults, 200 steps): 1.6e-5 apart.
    """
    m = m + (g - m) * one_minus_beta_1
    u = maximum(beta_2 * u, absolute(g))
    var = var - (lr * m) / (one_minus_beta_1_power * (u + epsilon))
    return var, m, u


class Adamax(Optimizer):
    """``Adamax(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07, ...)``.

    The rule is ``update`` above. As in Keras the values are not validated.

    Examples
    --------
    The first step is ``lr * g / |g|`` (less a hair for ``epsilon``): one learning rate per weight.

    >>> import numpy as np
    >>> from scratchopt.optimizers import Adamax
    >>> w = np.array([1.0, 2.0])
    >>> opt = Adamax(learning_rate=0.1)
    >>> opt.apply([np.array([0.5, -3.0])], [w])
    >>> np.round(w, 4)
    array([0.9, 2.1])
    """

    update = staticmethod(update)
    slot_names = ("m", "u")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None, gradient_accumulation_steps=None,
                 name="Adamax", **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
                         ema_momentum, ema_overwrite_frequency, loss_scale_factor,
                         gradient_accumulation_steps, name, **kwargs)
        self.beta_1 = checks.float32_range("beta_1", checks.number("beta_1", beta_1))
        self.beta_2 = checks.number("beta_2", beta_2)
        self.epsilon = checks.number("epsilon", epsilon)

    def scalars(self, lr, step, dtype):
        t = dtype.type(step + 1)
        return {
            "lr": lr,
            "one_minus_beta_1": as_dtype(1 - self.beta_1, dtype),  # Python's 1 - beta, then rounded
            "beta_2": as_dtype(self.beta_2, dtype),
            "one_minus_beta_1_power": 1 - power(cast(self.beta_1, dtype), t),
            "epsilon": as_dtype(self.epsilon, dtype),
        }
