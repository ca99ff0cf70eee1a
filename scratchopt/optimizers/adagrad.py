"""Adagrad: each weight's rate divided by the root of its summed squared gradients."""

from .. import checks
from ..backend import sqrt
from ..numerics import as_dtype
from .base import Optimizer, constant_slot


def update(g, var, accumulator, *, lr, epsilon):
    """One Adagrad step, elementwise.

    Textbook (Duchi et al. 2011; PyTorch)        Keras (this code)
    ------------------------------------         ------------------------------------------
    G = G + g**2            (G starts at 0)      G = G + g*g     (G starts at 0.1)
    w = w - lr * g / (sqrt(G) + eps)             w = w - (lr * g) / sqrt(G + epsilon)

    What the difference does: Keras's accumulator starts at ``initial_accumulator_value``
    (0.1), not 0, and ``epsilon`` sits inside the root. So the first step is
    ``lr * g / sqrt(0.1 + g**2)``: for ``|g| << 0.3`` it is about ``3.2 * lr * g`` (a step
    proportional to the gradient), where PyTorch's first step is ``lr * sign(g)``. The start
    value fades as gradients add up. Measured (``python docs/textbook_gap.py``: float64, lr 0.01,
    200 steps, against PyTorch's form): 2.0e-2 apart.
    """
    accumulator = accumulator + g * g
    var = var - (lr * g) / sqrt(accumulator + epsilon)
    return var, accumulator


class Adagrad(Optimizer):
    """``Adagrad(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-07, ...)``.

    The rule is ``update`` above. The accumulator starts at ``initial_accumulator_value``,
    filled as Keras's ``Constant`` initializer fills it (``base.constant_slot``: a Python
    float through float32, a float32 subnormal flushed to 0). As in Keras the values are not
    validated.

    Examples
    --------
    >>> import numpy as np
    >>> from scratchopt.optimizers import Adagrad
    >>> w = np.array([1.0, 2.0])
    >>> opt = Adagrad(learning_rate=0.1)
    >>> opt.apply([np.array([0.1, -3.0])], [w])  # 0.1 * g / sqrt(0.1 + g*g)
    >>> np.round(w, 4)
    array([0.9698, 2.0994])
    """

    update = staticmethod(update)
    slot_names = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-07, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None, gradient_accumulation_steps=None,
                 name="Adagrad", **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
                         ema_momentum, ema_overwrite_frequency, loss_scale_factor,
                         gradient_accumulation_steps, name, **kwargs)
        self.initial_accumulator_value = checks.float32_range(
            "initial_accumulator_value", checks.number("initial_accumulator_value", initial_accumulator_value))
        self.epsilon = checks.number("epsilon", epsilon)

    def initial_slot(self, name, param):
        return constant_slot(self.initial_accumulator_value, param)

    def scalars(self, lr, step, dtype):
        return {"lr": lr, "epsilon": as_dtype(self.epsilon, dtype)}
