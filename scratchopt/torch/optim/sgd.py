"""SGD, torch's form: momentum without the learning rate in the buffer, and FMA updates.

How it differs from Keras's ``SGD`` (``scratchopt.optimizers.sgd``)::

    Keras:  v = momentum * v - lr * g          w = w + v     (nesterov: w + momentum*v - lr*g)
    torch:  b = momentum * b + (1 - dampening) * g           w = w - lr * b
            (nesterov: w - lr * (g + momentum * b)); the first step sets b = g.

With a constant lr the two trajectories are the same up to rounding (Keras's ``v`` is
``-lr * b``); they part when lr changes (pytorch#1099), and torch also has ``dampening``,
``maximize`` and L2 ``weight_decay`` folded into the gradient.
"""

from . import _ops
from .optimizer import Optimizer


def _check_impl_flags(fused=None, capturable=False, differentiable=False):
    for name, value in (("fused", fused), ("capturable", capturable), ("differentiable", differentiable)):
        if value:
            raise ValueError(f"`{name}` is not reproduced by scratchopt (torch's {name}=True path has "
                             f"other bits). Received: {name}={value!r}")


class SGD(Optimizer):
    """Stochastic gradient descent with torch 2.13's arguments, defaults and bits.

    ``foreach`` is accepted and ignored (torch's foreach path gives the for-loop's bits);
    ``fused=True`` is refused (other bits).

    >>> import numpy as np
    >>> from scratchopt.torch.optim import SGD
    >>> w = np.array([1.0, -2.0], np.float32)
    >>> opt = SGD([w], lr=0.1, momentum=0.9)
    >>> for _ in range(2):
    ...     opt.step([2 * w])                     # the gradient of sum(w**2)
    >>> w.tolist()
    [0.46000000834465027, -0.9200000166893005]
    >>> sorted(opt.state_dict()["state"][0])
    ['momentum_buffer']
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        _check_impl_flags(fused, False, differentiable)
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
                    "nesterov": nesterov, "maximize": maximize, "foreach": foreach,
                    "differentiable": differentiable, "fused": fused}
        super().__init__(params, defaults)

    def _init_state(self, p, group):
        return {}

    def _update(self, p, g, state, group):
        # ┌ torch 2.13 `_single_tensor_sgd`, op by op (add(.., alpha) is one FMA) ──────────┐
        # │ g = -g                                   if maximize                           │
        # │ g = fma(p, weight_decay, g)              if weight_decay != 0  (L2 in g)       │
        # │ b = g (first step), else fma(g, 1 - dampening, momentum * b)                   │
        # │ g = fma(b, momentum, g) if nesterov else b                                     │
        # │ p = fma(g, -lr, p)                                                             │
        # └────────────────────────────────────────────────────────────────────────────────┘
        if group["maximize"]:
            g = -g
        if group["weight_decay"] != 0:
            g = _ops.add(g, p, group["weight_decay"])
        momentum = group["momentum"]
        if momentum != 0:
            b = state.get("momentum_buffer")
            if b is None:
                b = g.copy()
            else:
                b = _ops.add(b * _ops.scalar(momentum, b), g, 1 - group["dampening"])
            state["momentum_buffer"] = b
            g = _ops.add(g, b, momentum) if group["nesterov"] else b
        return _ops.add(p, g, -group["lr"]), state


__all__ = ["SGD"]
