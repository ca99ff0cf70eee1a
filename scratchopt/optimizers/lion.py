"""Lion: the sign of an interpolated momentum, the same step size for every weight."""

import numpy as np

from .. import checks
from ..backend import maximum, minimum
from ..numerics import as_dtype
from .base import Optimizer, cast


def update(g, var, m, *, lr, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2, huge):
    """One Lion step, elementwise.

    Textbook (Chen et al. 2023, Alg. 2)              Keras (this code)
    ---------------------------------------------    ------------------------------------------------
    c = beta_1 * m + (1 - beta_1) * g                c = m * beta_1 + g * (1 - beta_1)
    w = w - lr * (sign(c) + wd * w)                  w = w - lr * sign(c)
    m = beta_2 * m + (1 - beta_2) * g                m = m * beta_2 + g * (1 - beta_2)

    What the difference does: the arithmetic is the paper's (the products are written the
    other way round, which rounds the same). The paper's decoupled weight decay is
    ``lr * wd * w`` inside the step; Keras's common ``weight_decay`` runs before the step,
    as ``w - (w * wd) * lr``: the same decay, applied to the weights before the sign step
    instead of after. Every weight moves by exactly ``lr`` (or 0 where ``c`` is 0), so Lion
    wants a learning rate 3-10x smaller than AdamW's. ``beta_1`` and ``beta_2`` reach float64
    params through float32 (Keras's ``ops.cast``). Measured (``python docs/textbook_gap.py``: float64,
    lr 0.001, weight_decay 0.1, 200 steps): 1.0e-8 apart, from Keras's float32 learning rate.
    """
    c = m * beta_1 + g * one_minus_beta_1
    # sign(c) as TensorFlow's sign: -1, +0 (for either zero) or 1, NaN for NaN, from ufuncs
    # every path runs alike. ``huge`` (2**127 in float32, 2**1023 in float64) lifts the
    # smallest normal number past 1, the clamps hold the rest, ``+ 0.0`` makes -0 into +0.
    # (np.sign gives +0 for -0 but numba's gives -0, and CuPy's gives 0 for NaN.)
    sign_c = minimum(maximum(c * huge, -1.0), 1.0) + 0.0
    var = var - lr * sign_c
    m = m * beta_2 + g * one_minus_beta_2
    return var, m


class Lion(Optimizer):
    """``Lion(learning_rate=0.001, beta_1=0.9, beta_2=0.99, ...)``.

    The rule is ``update`` above. Keras's one check is kept: ``beta_1`` must be in (0, 1]
    (a ValueError otherwise; Lion with ``beta_1 = 0`` is signSGD).

    Examples
    --------
    Every weight moves by the learning rate, whatever the size of its gradient.

    >>> import numpy as np
    >>> from scratchopt.optimizers import Lion
    >>> w = np.array([1.0, 2.0, 3.0])
    >>> opt = Lion(learning_rate=0.1)
    >>> opt.apply([np.array([0.001, -50.0, 0.0])], [w])
    >>> np.round(w, 4)
    array([0.9, 2.1, 3. ])
    """

    update = staticmethod(update)
    slot_names = ("m",)

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None, gradient_accumulation_steps=None,
                 name="Lion", **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
                         ema_momentum, ema_overwrite_frequency, loss_scale_factor,
                         gradient_accumulation_steps, name, **kwargs)
        beta_1 = checks.float32_range("beta_1", checks.number("beta_1", beta_1))
        if beta_1 <= 0 or beta_1 > 1:  # Keras's check
            raise ValueError("Argument `beta_1` must be in the [0, 1] range. Otherwise, the optimizer "
                             f"degenerates to SignSGD. Received: beta_1={beta_1}.")
        self.beta_1 = beta_1
        self.beta_2 = checks.float32_range("beta_2", checks.number("beta_2", beta_2))

    def scalars(self, lr, step, dtype):
        beta_1, beta_2 = cast(self.beta_1, dtype), cast(self.beta_2, dtype)
        return {
            "lr": lr,
            "beta_1": beta_1,
            "one_minus_beta_1": 1.0 - beta_1,  # in the param's dtype, from the cast beta
            "beta_2": beta_2,
            "one_minus_beta_2": 1.0 - beta_2,
            "huge": as_dtype(2.0 ** (np.finfo(dtype).maxexp - 1), dtype),
        }
