"""RMSprop: divide the step by a running RMS of the gradient."""

from .. import checks
from ..backend import sqrt
from ..numerics import as_dtype
from .base import Optimizer


def update(g, var, v, avg_g, buf, *, lr, rho, one_minus_rho, epsilon, momentum):
    """One RMSprop step, elementwise (``avg_g`` only if centered, ``buf`` only with momentum).

    Textbook (Hinton; PyTorch)                 Keras (this code)
    --------------------------------------     ------------------------------------------
    v = rho * v + (1 - rho) * g**2             v = rho * v + (1 - rho) * (g*g)
    centered: avg_g = rho * avg_g              centered: avg_g = rho * avg_g + (1 - rho) * g
                  + (1 - rho) * g                        d = (v - avg_g*avg_g) + epsilon
              d = sqrt(v - avg_g**2) + eps     else:     d = v + epsilon
    else:     d = sqrt(v) + eps                step = (lr * g) / sqrt(d)
    momentum: buf = mu * buf + g / d           momentum: buf = mu * buf + step;  w = w - buf
              w = w - lr * buf                 else:     w = w - step
    else:     w = w - lr * g / d

    What the difference does: Keras puts ``epsilon`` *inside* the square root, so with
    the default 1e-7 the denominator never drops below ``sqrt(1e-7)`` = 3.2e-4 (PyTorch's
    floor is 1e-8 with its own default): for gradients much smaller than that, Keras steps
    are far smaller than PyTorch's. With momentum the buffer holds ``lr``-scaled steps
    (the rate at the time of each step, as in Keras's SGD), PyTorch's does not. The
    centered variance ``v - avg_g**2`` is not clamped at 0; only ``epsilon`` guards it.
    Measured (``python docs/textbook_gap.py``: float64, lr 0.01, 200 steps): 2.9e-2 apart,
    0.31 centered with momentum 0.9.
    """
    v = rho * v + one_minus_rho * (g * g)
    if avg_g is not None:  # centered: subtract the squared mean gradient
        avg_g = rho * avg_g + one_minus_rho * g
        denominator = (v - avg_g * avg_g) + epsilon
    else:
        denominator = v + epsilon
    step = (lr * g) / sqrt(denominator)
    if buf is None:
        return var - step, v, avg_g, buf
    buf = momentum * buf + step
    return var - buf, v, avg_g, buf


class RMSprop(Optimizer):
    """``RMSprop(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-07, centered=False, ...)``.

    The rule is ``update`` above. As in Keras nothing is validated: ``rho=2.0`` and a
    negative ``momentum`` are accepted, and ``momentum <= 0`` silently means no momentum.

    Examples
    --------
    The first step is ``lr * g / sqrt(0.1 * g**2 + epsilon)``: about
    ``lr / sqrt(1 - rho)`` = 3.16 times the learning rate, for any gradient size.

    >>> import numpy as np
    >>> from scratchopt.optimizers import RMSprop
    >>> w = np.array([1.0, 1.0])
    >>> opt = RMSprop(learning_rate=0.01)
    >>> opt.apply([np.array([2.0, -0.5])], [w])
    >>> np.round(w, 4)  # 1 -/+ 0.01 * 3.1623
    array([0.9684, 1.0316])
    """

    update = staticmethod(update)
    slot_names = ("v", "avg_g", "buf")

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-07, centered=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name="RMSprop", **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
                         ema_momentum, ema_overwrite_frequency, loss_scale_factor,
                         gradient_accumulation_steps, name, **kwargs)
        self.rho = checks.number("rho", rho)
        self.momentum = checks.number("momentum", momentum)
        self.epsilon = checks.number("epsilon", epsilon)
        self.centered = centered

    def slots_in_use(self):
        return ("v",) + (("avg_g",) if self.centered else ()) + (("buf",) if self.momentum > 0 else ())

    def scalars(self, lr, step, dtype):
        return {
            "lr": lr,
            "rho": as_dtype(self.rho, dtype),
            "one_minus_rho": as_dtype(1 - self.rho, dtype),
            "epsilon": as_dtype(self.epsilon, dtype),
            "momentum": as_dtype(self.momentum, dtype),
        }
