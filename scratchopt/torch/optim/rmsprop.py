"""RMSprop, torch's form: epsilon outside the square root, added after it.

How it differs from Keras's ``RMSprop`` (``scratchopt.optimizers.rmsprop``)::

    Keras:  v = rho * v + (1 - rho) * g**2           w = w - lr * g / sqrt(v + epsilon)
    torch:  v = alpha * v + (1 - alpha) * g**2 (FMA) w = w - lr * g / (sqrt(v) + eps)

(pytorch#23796). Keras's default ``epsilon=1e-7`` sits inside the root, torch's ``1e-8``
outside; ``rho`` is ``alpha`` (0.9 in Keras, 0.99 in torch). Centered: both subtract the
squared mean gradient; momentum: Keras keeps ``lr`` inside the buffer, torch outside.
"""

import numpy as np

from . import _ops
from .optimizer import Optimizer
from .sgd import _check_impl_flags


class RMSprop(Optimizer):
    """RMSprop with torch 2.13's arguments, defaults and op order.

    ``maximize`` is keyword-only here (``scratchopt``'s API; torch takes it positionally
    after ``foreach``). Bit-exact except for torch's MKL ``sqrt`` (see ``Adam``).

    >>> import numpy as np
    >>> from scratchopt.torch.optim import RMSprop
    >>> w = np.array([1.0, -2.0])
    >>> opt = RMSprop([w], lr=0.01, momentum=0.9, centered=True)
    >>> opt.step([2 * w]); sorted(opt.state_dict()["state"][0])
    ['grad_avg', 'momentum_buffer', 'square_avg', 'step']
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 capturable=False, foreach=None, *, maximize=False, differentiable=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        _check_impl_flags(None, capturable, differentiable)
        defaults = {"lr": lr, "momentum": momentum, "alpha": alpha, "eps": eps, "centered": centered,
                    "weight_decay": weight_decay, "capturable": capturable, "foreach": foreach,
                    "maximize": maximize, "differentiable": differentiable}
        super().__init__(params, defaults)

    def _init_state(self, p, group):
        state = {"step": np.array(0.0, np.float32), "square_avg": np.zeros_like(p)}
        if group["momentum"] > 0:
            state["momentum_buffer"] = np.zeros_like(p)
        if group["centered"]:
            state["grad_avg"] = np.zeros_like(p)
        return state

    def _update(self, p, g, state, group):
        alpha, lr, eps = group["alpha"], group["lr"], group["eps"]
        # ┌ torch 2.13 `_single_tensor_rmsprop`, op by op ──────────────────────────────────┐
        # │ g = -g if maximize;  t = t + 1;  g = fma(p, wd, g) if wd != 0                   │
        # │ v = fma((1 - alpha) * g, g, alpha * v)                     (addcmul)            │
        # │ centered: gbar = lerp(gbar, g, 1 - alpha); avg = sqrt(fma(-gbar, gbar, v))      │
        # │ else:     avg = sqrt(v)                                                         │
        # │ avg = avg + eps                                                                 │
        # │ momentum > 0: b = momentum * b + g / avg;  p = fma(b, -lr, p)                   │
        # │ else:         p = p + (-lr * g) / avg                      (addcdiv)            │
        # └─────────────────────────────────────────────────────────────────────────────────┘
        if group["maximize"]:
            g = -g
        new = {"step": state["step"] + np.float32(1)}
        if group["weight_decay"] != 0:
            g = _ops.add(g, p, group["weight_decay"])
        v = _ops.addcmul(state["square_avg"] * _ops.scalar(alpha, p), g, g, 1 - alpha)
        new["square_avg"] = v
        if group["centered"]:
            gbar = _ops.lerp(state["grad_avg"], g, 1 - alpha)
            new["grad_avg"] = gbar
            avg = _ops.sqrt(_ops.addcmul(v, gbar, gbar, -1))
        else:
            avg = _ops.sqrt(v)
        avg = avg + _ops.scalar(eps, p)
        if group["momentum"] > 0:
            b = _ops.addcdiv(state["momentum_buffer"] * _ops.scalar(group["momentum"], p), g, avg, 1)
            new["momentum_buffer"] = b
            return _ops.add(p, b, -lr), new
        if "momentum_buffer" in state:
            new["momentum_buffer"] = state["momentum_buffer"]
        return _ops.addcdiv(p, g, avg, -lr), new


__all__ = ["RMSprop"]
