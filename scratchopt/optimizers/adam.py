"""Adam and AMSGrad: momentum on the gradient, scaled by a running RMS of the gradient."""

from ..backend import maximum, sqrt
from ..numerics import as_dtype, power, through_float32
from .base import Optimizer


def update(g, var, m, v, v_hat, *, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    """One Adam step, elementwise; ``alpha`` carries the learning rate and bias corrections.

    Textbook (Kingma & Ba 2015, Alg. 1)        Keras (this code)
    -----------------------------------        -------------------------------------------
    m = beta_1 * m + (1 - beta_1) * g          alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
    v = beta_2 * v + (1 - beta_2) * g**2       m = m + (g - m) * (1 - beta_1)
    m_hat = m / (1 - beta_1**t)                v = v + (g*g - v) * (1 - beta_2)
    v_hat = v / (1 - beta_2**t)                AMSGrad: v_hat = max(v_hat, v); use v_hat for v
    w = w - lr * m_hat / (sqrt(v_hat) + eps)   w = w - (m * alpha) / (sqrt(v) + epsilon)

    What the difference does: the bias corrections are folded into the step size
    (the paper's own "epsilon hat" form, end of its section 2), so ``epsilon`` is added
    to the *uncorrected* ``sqrt(v)``. That equals a textbook epsilon of
    ``epsilon / sqrt(1 - beta_2**t)``: at t = 1 with beta_2 = 0.999 it is 32x larger
    than written, so early steps on parameters whose gradients are near 0 are smaller;
    the factor fades towards 1 over the first few thousand steps.
    ``m + (g - m) * (1 - beta_1)`` is the same average as
    ``beta_1 * m + (1 - beta_1) * g`` but rounds differently. AMSGrad's maximum is taken
    over the uncorrected ``v``. ``beta_1 = 1.0`` is accepted (as by Keras) and makes
    ``alpha`` infinite: the weights become NaN. Measured (``python docs/textbook_gap.py``:
    float64, lr 0.01, defaults, N(0,1) gradients): 4.5e-4 apart within 200 steps.
    """
    m = m + (g - m) * one_minus_beta_1
    v = v + (g * g - v) * one_minus_beta_2
    if v_hat is not None:  # AMSGrad: divide by the largest v seen so far
        v_hat = maximum(v_hat, v)
    var = var - (m * alpha) / (sqrt(v if v_hat is None else v_hat) + epsilon)
    return var, m, v, v_hat


class Adam(Optimizer):
    """``Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07, amsgrad=False, ...)``.

    The rule is ``update`` above; ``scalars`` below computes its step size ``alpha`` with
    ``t = iterations + 1`` and the betas' powers through the C library's ``pow``, as TF's
    scalar kernel does. As in Keras nothing is validated: negative betas and
    ``beta_1 = 1.0`` are accepted.

    Examples
    --------
    The first step moves every weight by about ``learning_rate``, whatever the size of
    its gradient: at t = 1, ``m = 0.1 * g`` and ``sqrt(v) = sqrt(0.001) * |g|``, and
    ``alpha = lr * sqrt(0.001) / 0.1``, so the step is ``lr * sign(g)`` (less a hair
    for ``epsilon``).

    >>> import numpy as np
    >>> from scratchopt.optimizers import Adam
    >>> w = np.array([1.0, 2.0, 3.0])
    >>> opt = Adam(learning_rate=0.1)
    >>> opt.apply([np.array([0.5, -3.0, 100.0])], [w])
    >>> np.round(w, 4)
    array([0.9, 2.1, 2.9])
    """

    defaults = {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07,
                "amsgrad": False}
    update = staticmethod(update)

    def slots(self):
        return {"m": True, "v": True, "v_hat": bool(self.amsgrad)}

    def scalars(self, lr, step, dtype):
        t = dtype.type(step + 1)
        beta_1_power = power(through_float32(self.beta_1, dtype), t)
        beta_2_power = power(through_float32(self.beta_2, dtype), t)
        return {
            "alpha": lr * sqrt(1 - beta_2_power) / (1 - beta_1_power),
            "one_minus_beta_1": as_dtype(1 - self.beta_1, dtype),  # 1 - beta in double, then rounded
            "one_minus_beta_2": as_dtype(1 - self.beta_2, dtype),
            "epsilon": as_dtype(self.epsilon, dtype),
        }
