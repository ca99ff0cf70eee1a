"""FTRL-Proximal: follow the regularised leader, with per-coordinate rates (McMahan et al. 2013)."""

import numpy as np

from .. import checks
from ..backend import namespace
from ..numerics import as_dtype
from ..numerics.elementwise import clip_by_value
from ..numerics.pow import LANES, power_array
from . import engine
from .base import Optimizer, constant_slot


def update(g, var, accumulator, linear, *, lr, minus_lr_power, l1, minus_l1, two_l2, two_l2_shrinkage):
    """One FTRL step, on whole tensors (``power_array`` is TF's packet-wise ``pow``).

    Textbook (McMahan et al. 2013, Alg. 1; TF's ApplyFtrlV2)   Keras (this code)
    -------------------------------------------------------    -----------------------------------------
    n_new = n + g**2                                           n_new = n + g*g
    sigma = (n_new**-p - n**-p) / lr     (p = 0.5: sqrt)       sigma = (pow(n_new, -p) - pow(n, -p)) / lr
    z = z + g_s - sigma * w              (g_s = g + 2*l2s*w)   z = z + (g_s - sigma * w)
    w = 0 if |z| <= l1, else                                   w = (clip(z, -l1, l1) - z) / quadratic,
        -(z - sign(z) * l1) / (n_new**-p / lr + 2 * l2)         quadratic = pow(n_new, -p) / lr + 2 * l2
    n = n_new                                                  n = n_new

    (``n`` is Keras's ``accumulator``, ``z`` its ``linear``; ``l2`` includes ``beta / (2 lr)``.)

    What the difference does: the arithmetic is TF's ``ApplyFtrlV2`` rewritten with
    ``clip``: ``clip(z, -l1, l1) - z`` is ``-(z - sign(z) * l1)`` where ``|z| > l1`` and 0
    elsewhere, the same numbers. With Keras's defaults (``l1 = l2 = 0``) it is
    ``w = -z * lr / sqrt(n_new)``, FTRL's closed form. ``pow`` is the one op to watch:
    TF's array ``Pow`` uses Eigen's own approximation on full SIMD packets and libm on the
    leftover elements (``numerics.pow``), 1-2 ULP apart on a quarter of the elements;
    libm everywhere drifts hundreds of ULP from Keras over a run. Measured against the paper's
    sign form (``python docs/textbook_gap.py``: float64, lr 0.01, l1 0.001, l2 0.01, 200 steps):
    9.7e-9 apart, from Keras's float32 learning rate.
    """
    new_accumulator = accumulator + g * g
    grad_to_use = g + two_l2_shrinkage * var
    new_power = power_array(new_accumulator, minus_lr_power)
    linear = linear + (grad_to_use - ((new_power - power_array(accumulator, minus_lr_power)) / lr) * var)
    quadratic = new_power / lr + two_l2
    # tf.clip_by_value, ties as TF's packets and tail give them (the sign of a zero; a
    # subnormal l1 read as zero): numerics.elementwise.clip_by_value
    linear_clipped = clip_by_value(linear, minus_l1, l1)
    var = (linear_clipped - linear) / quadratic
    return var, new_accumulator, linear


def _nonzero_bits(x):
    """Whether the float ``x`` is not +-0, read from its bits (a subnormal is nonzero even
    where denormals-are-zero is on)."""
    return bool(np.float64(x).view(np.uint64) << np.uint64(1))


class Ftrl(Optimizer):
    """``Ftrl(learning_rate=0.001, learning_rate_power=-0.5, initial_accumulator_value=0.1,
    l1_regularization_strength=0.0, l2_regularization_strength=0.0,
    l2_shrinkage_regularization_strength=0.0, beta=0.0, ...)``.

    The rule is ``update`` above. Keras's checks are kept: ``initial_accumulator_value``, the
    three strengths must be >= 0 and ``learning_rate_power`` <= 0 (ValueError otherwise).
    The rule runs on NumPy arrays only (TF's packet-wise ``pow`` is reproduced for the
    CPU): the position of an element in its tensor decides which ``pow`` TF uses, so a
    packed buffer is stepped param by param, and each tensor's whole packets run through
    the engine (fused with numba, as every elementwise rule) and its last few elements as
    array code (``run_rule``).

    Examples
    --------
    With the defaults and ``w = 0`` the first step is ``w = -g * lr / sqrt(0.1 + g**2)``:
    FTRL's weights are a function of its accumulated state ``z``, not of where they were.

    >>> import numpy as np
    >>> from scratchopt.optimizers import Ftrl
    >>> w = np.zeros(2)
    >>> opt = Ftrl(learning_rate=0.1)
    >>> opt.apply([np.array([0.1, -3.0])], [w])
    >>> np.round(w, 4)
    array([-0.0302,  0.0994])
    """

    update = staticmethod(update)
    slot_names = ("accumulator", "linear")
    per_tensor = True

    def __init__(self, learning_rate=0.001, learning_rate_power=-0.5, initial_accumulator_value=0.1,
                 l1_regularization_strength=0.0, l2_regularization_strength=0.0,
                 l2_shrinkage_regularization_strength=0.0, beta=0.0, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None, gradient_accumulation_steps=None,
                 name="Ftrl", **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
                         ema_momentum, ema_overwrite_frequency, loss_scale_factor,
                         gradient_accumulation_steps, name, **kwargs)
        values = {"initial_accumulator_value": initial_accumulator_value,
                  "learning_rate_power": learning_rate_power,
                  "l1_regularization_strength": l1_regularization_strength,
                  "l2_regularization_strength": l2_regularization_strength,
                  "l2_shrinkage_regularization_strength": l2_shrinkage_regularization_strength, "beta": beta}
        for key, value in values.items():
            checks.float32_range(key, checks.number(key, value))
        for key, value in values.items():  # Keras's checks, in its order
            if key == "learning_rate_power" and value > 0.0:
                raise ValueError(f"`learning_rate_power` needs to be negative or zero. Received: "
                                 f"learning_rate_power={value}.")
            if key not in ("learning_rate_power", "beta") and value < 0.0:
                raise ValueError(f"`{key}` needs to be positive or zero. Received: {key}={value}.")
        self.learning_rate_power = learning_rate_power
        self.initial_accumulator_value = initial_accumulator_value
        self.l1_regularization_strength = l1_regularization_strength
        self.l2_regularization_strength = l2_regularization_strength
        self.l2_shrinkage_regularization_strength = l2_shrinkage_regularization_strength
        self.beta = beta

    def initial_slot(self, name, param):
        if name != "accumulator":
            return super().initial_slot(name, param)
        return constant_slot(self.initial_accumulator_value, param)

    def run_rule(self, g, var, slots, scalars, fused):
        """The whole packets through the engine, the last ``size % LANES`` elements as array code.

        Where an element sits decides TF's ``pow`` and clip (``update``'s docstring), so the
        tensor is cut where TF's packets end: the first ``size - size % LANES`` elements
        are all in whole packets, on every path (array code on them, in the engine's
        blocks of whole packets, gives the bits of the whole-tensor call), and the fused
        kernel compiles ``update`` with the packet's ``pow`` and clip in place of the array
        functions (``numerics.pow_fast``); the rest are the tail, libm's ``pow`` and the
        scalar clip.
        """
        if namespace(var) is not np:
            raise TypeError("Ftrl runs on NumPy arrays only (TF's packet-wise pow is reproduced for NumPy)")
        arrays = [np.asarray(g), var, *slots]
        if not all(a.flags.c_contiguous and a.shape == var.shape for a in arrays):  # a view, or a scalar g
            engine.run(self.update, g, var, slots, scalars, fused=False)  # the whole tensor as array code
            return
        flat = [a.reshape(-1) for a in arrays]
        whole = var.size - var.size % LANES[var.dtype]
        for lo, hi, path in ((0, whole, fused), (whole, var.size, False)):  # the whole packets, then the tail
            if lo < hi:
                g_part, var_part, *slot_parts = (a[lo:hi] for a in flat)
                engine.run(self.update, g_part, var_part, slot_parts, scalars, path)

    def scalars(self, lr, step, dtype):
        l2 = as_dtype(self.l2_regularization_strength, dtype) + as_dtype(self.beta, dtype) / (dtype.type(2.0) * lr)
        l1 = self.l1_regularization_strength
        return {
            "lr": lr,
            "minus_lr_power": as_dtype(-self.learning_rate_power, dtype),
            "l1": as_dtype(l1, dtype),
            # Keras's -l1 is a Python float; TF's eager runtime caches the tensors it makes of
            # Python scalars by value, and 0.0 == -0.0: with l1 = 0 the lower bound is +0.0.
            # Zero is told by its bits: this runs under flush-to-zero, where a subnormal l1
            # compares equal to 0, but Keras's -l1 (made in Python) keeps its sign.
            "minus_l1": as_dtype(-l1 if _nonzero_bits(l1) else 0.0, dtype),
            "two_l2": dtype.type(2) * l2,
            "two_l2_shrinkage": as_dtype(2 * self.l2_shrinkage_regularization_strength, dtype),
        }
