"""Adam and AdamW, torch's form: epsilon added after the bias correction, Python-float corrections.

How it differs from Keras's ``Adam`` (``scratchopt.optimizers.adam``)::

    Keras:  alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)           (float32 tensor math)
            w = w - alpha * m / (sqrt(v) + epsilon)                      (epsilon is "eps-hat")
    torch:  denom = sqrt(v) / sqrt(1 - beta_2**t) + eps                  (Python-float corrections)
            w = w - (lr / (1 - beta_1**t)) * m / denom

The same formula with ``eps_torch = eps_keras / sqrt(1 - beta_2**t)``: equal only for
``eps = 0``, otherwise the effective epsilon differs per step (keras#17391, pytorch#104857).
torch also updates ``m`` with ``lerp`` and ``v`` with ``addcmul`` (both one FMA), adds L2
``weight_decay`` into the gradient (Adam) or decays ``w *= 1 - lr * weight_decay`` before
the step (AdamW, or Adam with ``decoupled_weight_decay=True``; Keras's AdamW decays after).
"""

import numpy as np

from . import _ops
from .optimizer import Optimizer
from .sgd import _check_impl_flags


class Adam(Optimizer):
    """Adam with torch 2.13's arguments, defaults and op order.

    Bit-exact against torch except where torch's ``sqrt`` (MKL, not correctly rounded) is
    1 ULP away; see ``docs/torch/optim.md`` for the measured bound.

    >>> import numpy as np
    >>> from scratchopt.torch.optim import Adam
    >>> w = np.array([1.0, -2.0])
    >>> opt = Adam([w], lr=0.1)
    >>> opt.step([2 * w]); w.tolist()      # the first step moves each weight by ~lr (eps shows)
    [0.9000000005, -1.90000000025]
    >>> sorted(opt.state_dict()["state"][0])
    ['exp_avg', 'exp_avg_sq', 'step']
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
                 decoupled_weight_decay=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not (isinstance(betas[0], float) and isinstance(betas[1], float)):
            raise ValueError("betas must be either both floats or both Tensors")  # noqa: TRY004 (torch raises ValueError)
        _check_impl_flags(fused, capturable, differentiable)
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                    "amsgrad": amsgrad, "maximize": maximize, "foreach": foreach, "capturable": capturable,
                    "differentiable": differentiable, "fused": fused,
                    "decoupled_weight_decay": decoupled_weight_decay}
        super().__init__(params, defaults)

    def _init_state(self, p, group):
        state = {"step": np.array(0.0, np.float32), "exp_avg": np.zeros_like(p), "exp_avg_sq": np.zeros_like(p)}
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = np.zeros_like(p)
        return state

    def _update(self, p, g, state, group):
        beta1, beta2 = group["betas"]
        lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
        # ┌ torch 2.13 `_single_tensor_adam` (foreach=False), op by op ─────────────────────┐
        # │ g = -g if maximize;  t = t + 1   (a float32 scalar tensor)                      │
        # │ p = p * (1 - lr*wd)        if decoupled (AdamW)   | g = fma(p, wd, g)  (L2)     │
        # │ m = lerp(m, g, 1 - beta1)                          (one FMA)                    │
        # │ v = fma((1 - beta2) * g, g, beta2 * v)             (addcmul)                    │
        # │ bc1 = 1 - beta1**t; bc2 = 1 - beta2**t; step_size = lr / bc1   (Python floats)  │
        # │ v_hat = max(v_max, v) if amsgrad else v                                         │
        # │ denom = sqrt(v_hat) / bc2**0.5 + eps                                            │
        # │ p = p + (-step_size * m) / denom                   (addcdiv, no FMA)            │
        # └─────────────────────────────────────────────────────────────────────────────────┘
        if group["maximize"]:
            g = -g
        step = state["step"] + np.float32(1)
        if weight_decay != 0:
            if group["decoupled_weight_decay"]:
                p = p * _ops.scalar(1 - lr * weight_decay, p)
            else:
                g = _ops.add(g, p, weight_decay)
        m = _ops.lerp(state["exp_avg"], g, 1 - beta1)
        v = _ops.addcmul(state["exp_avg_sq"] * _ops.scalar(beta2, p), g, g, 1 - beta2)
        t = float(step)
        bias_correction1 = 1 - beta1**t
        bias_correction2 = 1 - beta2**t
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2**0.5
        new = {"step": step, "exp_avg": m, "exp_avg_sq": v}
        if group["amsgrad"]:
            v = np.maximum(state["max_exp_avg_sq"], v)
            new["max_exp_avg_sq"] = v
        denom = _ops.sqrt(v) / _ops.scalar(bias_correction2_sqrt, p) + _ops.scalar(eps, p)
        return _ops.addcdiv(p, m, denom, -step_size), new


class AdamW(Adam):
    """AdamW: torch's ``Adam`` with ``decoupled_weight_decay=True`` and ``weight_decay=0.01``.

    The decay multiplies the weights by ``1 - lr * weight_decay`` *before* the Adam step
    (Keras's AdamW subtracts ``lr * weight_decay * w`` in float32 tensor math first too,
    but with its own epsilon form; see ``Adam``).

    >>> import numpy as np
    >>> from scratchopt.torch.optim import AdamW
    >>> w = np.array([1.0, -2.0])
    >>> opt = AdamW([w], lr=0.1, weight_decay=0.5)
    >>> opt.step([np.zeros(2)]); w.tolist()           # zero gradient: only the decay acts
    [0.95, -1.9]
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True


__all__ = ["Adam", "AdamW"]
