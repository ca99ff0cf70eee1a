"""Adam and AMSGrad: momentum on the gradient, scaled by a running RMS of the gradient."""

from .. import checks
from ..backend import maximum, sqrt
from ..numerics import as_dtype, power
from .base import Optimizer, cast


def update(g, var, m, v, v_max, *, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    """One Adam step, elementwise; ``alpha`` carries the learning rate and bias corrections.

    Textbook (Kingma & Ba 2015, Alg. 1)        Keras (this code)
    -----------------------------------        -------------------------------------------
    m = beta_1 * m + (1 - beta_1) * g          alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
    v = beta_2 * v + (1 - beta_2) * g**2       m = m + (g - m) * (1 - beta_1)
    m_hat = m / (1 - beta_1**t)                v = v + (g*g - v) * (1 - beta_2)
    v_hat = v / (1 - beta_2**t)                AMSGrad: v_max = max(v_max, v); use v_max for v
    w = w - lr * m_hat / (sqrt(v_hat) + eps)   w = w - (m * alpha) / (sqrt(v) + epsilon)

    ``m_hat`` and ``v_hat`` are the textbook's bias-corrected moments; Keras never forms
    them. ``v_max`` is AMSGrad's running maximum of the *uncorrected* ``v`` (Keras's slot
    ``velocity_hat``), a slot of its own.

    What the difference does: the bias corrections are folded into the step size
    (the paper's own "epsilon hat" form, end of its section 2), so ``epsilon`` is added
    to the *uncorrected* ``sqrt(v)``. That equals a textbook epsilon of
    ``epsilon / sqrt(1 - beta_2**t)``: at t = 1 with beta_2 = 0.999 it is 32x larger
    than written, so early steps on parameters whose gradients are near 0 are smaller;
    the factor fades towards 1 over the first few thousand steps.
    ``m + (g - m) * (1 - beta_1)`` is the same average as
    ``beta_1 * m + (1 - beta_1) * g`` but rounds differently. ``beta_1 = 1.0`` is
    accepted (as by Keras) and makes ``alpha`` infinite: the weights become NaN. Measured
    (``python docs/textbook_gap.py``: float64, lr 0.01, defaults, N(0,1) gradients):
    4.5e-4 apart within 200 steps.

    This function is the rule every path runs: as NumPy/CuPy array code, or compiled into
    one loop (numba) or one CUDA kernel. With numba installed the default step compiles
    it, so a ``print`` or breakpoint here fires only with ``opt.backend = "numpy"`` (or
    ``SCRATCHOPT_BACKEND=numpy``): see ``engine/__init__.py``.
    """
    m = m + (g - m) * one_minus_beta_1
    v = v + (g * g - v) * one_minus_beta_2
    if v_max is not None:  # AMSGrad: divide by the largest v seen so far
        v_max = maximum(v_max, v)
    var = var - (m * alpha) / (sqrt(v if v_max is None else v_max) + epsilon)
    return var, m, v, v_max


class Adam(Optimizer):
    """``Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07, amsgrad=False, ...)``.

    The rule is ``update`` above; ``scalars`` below computes its step size ``alpha`` with
    ``t = iterations + 1`` and the betas' powers through the C library's ``pow``, as TF's
    scalar kernel does. As in Keras the values are not validated: negative betas and
    ``beta_1 = 1.0`` are accepted; a beta beyond float32's range (``1e39``), which TF
    cannot cast, is a ValueError here at construction (in Keras, at the first step).

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

    update = staticmethod(update)
    slot_names = ("m", "v", "v_max")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07, amsgrad=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name="Adam", **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
                         ema_momentum, ema_overwrite_frequency, loss_scale_factor,
                         gradient_accumulation_steps, name, **kwargs)
        # Keras casts the betas to the variable's dtype (``ops.cast``: a Python float through
        # float32, ``base.cast``), and TF refuses a float beyond float32's range.
        self.beta_1 = checks.float32_range("beta_1", checks.number("beta_1", beta_1))
        self.beta_2 = checks.float32_range("beta_2", checks.number("beta_2", beta_2))
        self.epsilon = checks.number("epsilon", epsilon)
        self.amsgrad = amsgrad

    def slots_in_use(self):
        return ("m", "v", "v_max") if self.amsgrad else ("m", "v")

    def scalars(self, lr, step, dtype):
        t = dtype.type(step + 1)
        beta_1_power = power(cast(self.beta_1, dtype), t)
        beta_2_power = power(cast(self.beta_2, dtype), t)
        return {
            "alpha": lr * sqrt(1 - beta_2_power) / (1 - beta_1_power),
            "one_minus_beta_1": as_dtype(1 - self.beta_1, dtype),  # 1 - beta in double, then rounded
            "one_minus_beta_2": as_dtype(1 - self.beta_2, dtype),
            "epsilon": as_dtype(self.epsilon, dtype),
        }
