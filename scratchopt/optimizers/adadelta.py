"""Adadelta: a step whose units come from a running RMS of past steps."""

from .. import checks
from ..backend import sqrt
from ..numerics import as_dtype
from .base import Optimizer


def update(g, var, accumulated_grad, accumulated_delta_var, *, lr, rho, one_minus_rho, epsilon):
    """One Adadelta step, elementwise.

    Textbook (Zeiler 2012, Alg. 1)                   Keras (this code)
    ---------------------------------------------    ------------------------------------------------
    E[g2] = rho * E[g2] + (1 - rho) * g**2           E[g2] = rho * E[g2] + (1 - rho) * (g*g)
    dx = -sqrt(E[dx2] + eps) / sqrt(E[g2] + eps) * g  dx = -((sqrt(E[dx2] + eps) * g) / sqrt(E[g2] + eps))
    E[dx2] = rho * E[dx2] + (1 - rho) * dx**2        E[dx2] = rho * E[dx2] + (1 - rho) * (dx*dx)
    w = w + dx                                       w = w + lr * dx

    (``E[g2]`` is Keras's ``accumulated_grad``, ``E[dx2]`` its ``accumulated_delta_var``.)

    What the difference does: the paper has no learning rate (its point was to need none);
    Keras, like PyTorch, multiplies the step by ``lr``, default 0.001, so at Keras's default
    Adadelta barely moves: the first step is about ``lr * sqrt(eps / (1 - rho))`` = 1.4e-6
    per weight. ``E[dx2]`` accumulates the *unscaled* ``dx``. Measured (``python
    docs/textbook_gap.py``: float64, 200 steps): 1.0e-1 apart at Keras's default rate, 8.9e-16 (rounding)
    with ``learning_rate=1.0``.
    """
    accumulated_grad = rho * accumulated_grad + one_minus_rho * (g * g)
    delta_var = -((sqrt(accumulated_delta_var + epsilon) * g) / sqrt(accumulated_grad + epsilon))
    accumulated_delta_var = rho * accumulated_delta_var + one_minus_rho * (delta_var * delta_var)
    var = var + lr * delta_var
    return var, accumulated_grad, accumulated_delta_var


class Adadelta(Optimizer):
    """``Adadelta(learning_rate=0.001, rho=0.95, epsilon=1e-07, ...)``.

    The rule is ``update`` above. As in Keras the values are not validated.

    Examples
    --------
    With ``learning_rate=1.0`` (the paper's setting) the first step is
    ``sqrt(eps) / sqrt((1 - rho) * g**2 + eps) * g``: about ``sqrt(eps / (1 - rho))`` = 1.4e-3.

    >>> import numpy as np
    >>> from scratchopt.optimizers import Adadelta
    >>> w = np.array([1.0, 2.0])
    >>> opt = Adadelta(learning_rate=1.0)
    >>> opt.apply([np.array([0.5, -3.0])], [w])
    >>> np.round(w, 5)
    array([0.99859, 2.00141])
    """

    update = staticmethod(update)
    slot_names = ("accumulated_grad", "accumulated_delta_var")

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-07, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None, gradient_accumulation_steps=None,
                 name="Adadelta", **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
                         ema_momentum, ema_overwrite_frequency, loss_scale_factor,
                         gradient_accumulation_steps, name, **kwargs)
        self.rho = checks.number("rho", rho)
        self.epsilon = checks.number("epsilon", epsilon)

    def scalars(self, lr, step, dtype):
        return {
            "lr": lr,
            "rho": as_dtype(self.rho, dtype),
            "one_minus_rho": as_dtype(1 - self.rho, dtype),  # Python's 1 - rho, then rounded
            "epsilon": as_dtype(self.epsilon, dtype),
        }
