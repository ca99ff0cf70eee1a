"""Stochastic gradient descent, with momentum and Nesterov momentum."""

from .base import Optimizer, cast


def update(g, var, m, *, lr, momentum, nesterov):
    """One SGD step, elementwise.

    Textbook (and PyTorch)              Keras (this code)
    ------------------------------      -----------------------------------------
    no momentum:                        no momentum:
        w = w - lr * g                      w = w - g * lr
    momentum mu:                        momentum mu:
        b = mu * b + g                      m = m * mu - g * lr     (m = -lr * velocity)
        w = w - lr * b                      w = w + m
    Nesterov:                           Nesterov:
        w = w - lr * (g + mu * b)           w = w + (m * mu - g * lr)   (with the new m)

    What the difference does: Keras's buffer ``m`` holds the step itself, learning rate
    included, and is *added* to the weights (TF's sign convention). PyTorch's ``b`` holds
    gradients and is multiplied by today's rate. With a constant rate the two agree up to
    rounding. Under a schedule they part: Keras keeps applying past steps at the rates
    they were taken with, PyTorch rescales the whole history to the current rate.
    ``mu`` reaches float64 parameters through float32 (Keras casts it: 0.9 -> 0.8999999762;
    an ``np.float64`` keeps its precision, as ``ops.cast`` keeps it).
    Measured (``python docs/textbook_gap.py``: float64, lr 0.01, 200 steps): 1.2e-6 apart
    at a constant rate (Keras's float32 rate and momentum), 0.46 when the rate halves
    every 50 steps.
    """
    if m is None:  # momentum == 0: no velocity slot
        return var - g * lr, m
    m = m * momentum - g * lr
    if nesterov:
        return var + (m * momentum - g * lr), m
    return var + m, m


class SGD(Optimizer):
    """Gradient descent: ``SGD(learning_rate=0.01, momentum=0.0, nesterov=False, ...)``.

    The rule is ``update`` above. Keras's checks are kept: ``momentum`` must be a Python
    float in [0, 1] (``0`` as an int and ``np.float32(0.9)`` are rejected, ``1.0`` is
    accepted); with ``momentum=0.0``, ``nesterov=True`` is silently plain SGD.

    Examples
    --------
    With momentum the second step is longer than the first: the velocity carries the
    first step over (lr and momentum are float32 values, hence the rounding).

    >>> import numpy as np
    >>> from scratchopt.optimizers import SGD
    >>> w = np.array([1.0, 2.0])
    >>> opt = SGD(learning_rate=0.1, momentum=0.9)
    >>> g = np.array([1.0, -1.0])
    >>> opt.apply([g], [w])  # m = -0.1 * g;            w = w + m
    >>> np.round(w, 4)
    array([0.9, 2.1])
    >>> opt.apply([g], [w])  # m = 0.9 * m - 0.1 * g = -0.19 * g
    >>> np.round(w, 4)
    array([0.71, 2.29])
    """

    update = staticmethod(update)
    slot_names = ("m",)

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name="SGD", **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
                         ema_momentum, ema_overwrite_frequency, loss_scale_factor,
                         gradient_accumulation_steps, name, **kwargs)
        if not isinstance(momentum, float) or momentum < 0 or momentum > 1:  # Keras's check
            raise ValueError(f"`momentum` must be a float between [0, 1]. "
                             f"Received: momentum={momentum!r} ({type(momentum).__name__})")
        self.momentum = momentum
        self.nesterov = nesterov

    def slots_in_use(self):
        return ("m",) if self.momentum != 0 else ()

    def scalars(self, lr, step, dtype):
        return {"lr": lr, "momentum": cast(self.momentum, dtype), "nesterov": bool(self.nesterov)}
