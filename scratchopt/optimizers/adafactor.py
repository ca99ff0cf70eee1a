"""Adafactor: Adam's second moment, factored into row and column means (Shazeer & Stern 2018)."""


import numpy as np

from .. import checks
from ..backend import maximum, minimum, namespace, sqrt
from ..numerics import as_dtype, power, reduce_mean_over
from ..numerics.sums import sum_of_squares
from . import engine
from .base import Optimizer, cast


def rms(x):
    """``sqrt(mean(x * x))`` over every element, the mean in TF's order (``reduce_mean_over``).

    Over every axis, ``reduce_mean_over`` sums the flat array as one row and divides by the
    count, so for two or more NumPy elements this is ``sum_of_squares(x) / count``: the same
    bits, without the array ``x * x`` when the sums are compiled.
    """
    if isinstance(x, np.ndarray) and x.size > 1:
        return sqrt(sum_of_squares(x) / x.dtype.type(x.size))
    return sqrt(reduce_mean_over(x * x, tuple(range(x.ndim))))


def update(g, var, r, c, v, *, rho, beta_2_t, one_minus_beta_2_t, epsilon_1, epsilon_2, clip_threshold):
    """One Adafactor step on one whole tensor (the means need it whole).

    Textbook (Shazeer & Stern 2018, Alg. 4-5)           Keras (this code)
    ------------------------------------------------    ------------------------------------------------
    rho_t = min(lr, 1 / sqrt(t))                        rho_t = min(lr, 1 / sqrt(t))
    alpha_t = max(eps_2, RMS(w)) * rho_t                alpha_t = max(epsilon_2, RMS(w)) * rho_t
    beta_2t = 1 - t**decay                              beta_2t = 1 - t**beta_2_decay
    G2 = g**2 + eps_1                                   G2 = g*g + epsilon_1
    2-D and more (the last two axes factored):
    R = beta_2t R + (1 - beta_2t) rowmean(G2)           r = beta_2t * r + (1 - beta_2t) * mean(G2, -1)
    C = beta_2t C + (1 - beta_2t) colmean(G2)           c = beta_2t * c + (1 - beta_2t) * mean(G2, -2)
    V = R C / sum(R)                                    v = (r / mean(r, -1))[..., None] * c[..., None, :]
    otherwise: V = beta_2t V + (1 - beta_2t) G2         (the same)
    U = g / sqrt(V);  U = U / max(1, RMS(U) / d)       u = g / sqrt(v);  u = u / max(1, RMS(u) / clip_threshold)
    w = w - alpha_t * U                                 w = w - alpha_t * u

    The means and RMS are ``tf.reduce_mean`` in TF's order (``numerics.sums``).

    What the difference does: the paper keeps row and column *sums* and divides by the total
    (``1^T R``); Keras keeps *means* and divides by the mean of the row means. The row and
    column counts cancel, so ``v`` is the same number, rounded differently. What differs is
    elsewhere: Keras has no first moment (the paper's ``beta_1 = 0`` setting, its default),
    and it keeps ``v`` as a full-size slot besides ``r`` and ``c``, so the factoring saves no
    memory here. ``relative_step`` caps a float learning rate at ``1 / sqrt(t)`` (a schedule
    or callable is left alone), and ``rho_t`` caps it again, as the paper's
    ``min(1e-2, 1/sqrt(t))`` with ``lr`` in place of 1e-2. Measured (``python
    docs/textbook_gap.py``, a 100-row float64 matrix, defaults, 200 steps): 2.4e-9 apart, from
    Keras's float32 learning rate; otherwise rounding.
    """
    alpha = step_size(var, rho, epsilon_2)
    if r is not None:  # factored: the last two axes
        (squared,) = squared_gradient(g, None, epsilon_1=epsilon_1)
        r, c = factored_moments(squared, r, c, beta_2_t=beta_2_t, one_minus_beta_2_t=one_minus_beta_2_t)
        u, v = normalized(g, None, factored_v(r, c))
    else:
        u, v = second_moment(g, None, v, beta_2_t=beta_2_t, one_minus_beta_2_t=one_minus_beta_2_t,
                             epsilon_1=epsilon_1)
    (var,) = descend(u, var, alpha=alpha, divisor=clip_divisor(u, clip_threshold))
    return var, r, c, v


def step_size(var, rho, epsilon_2):
    """``alpha_t = max(epsilon_2, RMS(w)) * rho_t``: relative to the weights' own size."""
    return maximum(epsilon_2, rms(var)) * rho


def second_moment(g, u, v, *, beta_2_t, one_minus_beta_2_t, epsilon_1):
    """An unfactored ``v`` and the update ``u = g / sqrt(v)``, ``(u, v)``: elementwise, so the
    engine fuses it (``u`` comes in as the array it is written to, and is not read)."""
    squared = g * g + epsilon_1
    v = beta_2_t * v + one_minus_beta_2_t * squared
    return g / sqrt(v), v


def squared_gradient(g, out, *, epsilon_1):
    """``G2 = g * g + epsilon_1``, elementwise (``out``: the array it is written to, not read)."""
    return (g * g + epsilon_1,)


def factored_moments(squared, r, c, *, beta_2_t, one_minus_beta_2_t):
    """``(r, c)``, the moving averages of ``G2``'s row means (over the last axis) and column
    means (over the one before), in TF's order (``reduce_mean_over``)."""
    r = beta_2_t * r + one_minus_beta_2_t * reduce_mean_over(squared, -1)
    c = beta_2_t * c + one_minus_beta_2_t * reduce_mean_over(squared, -2)
    return r, c


def factored_v(r, c, out=None):
    """``v = (r / mean(r, -1))[..., None] * c[..., None, :]``: the row factors times the
    column means, an outer product (written into ``out`` when given: the same bits)."""
    return namespace(r).multiply((r / reduce_mean_over(r, -1, keepdims=True))[..., None], c[..., None, :], out=out)


def normalized(g, u, v):
    """``u = g / sqrt(v)`` for a factored ``v``, ``(u, v)``: elementwise (``u`` is written,
    not read; ``v`` is only read, and handed back because the engine writes back every
    array after the gradient)."""
    return g / sqrt(v), v


def clip_divisor(u, clip_threshold):
    """``max(1, RMS(u) / clip_threshold)``: what ``u`` is divided by, clipping its RMS."""
    return maximum(u.dtype.type(1.0), rms(u) / clip_threshold)


def descend(u, var, *, alpha, divisor):
    """``w = w - alpha_t * (u / divisor)``: elementwise."""
    return (var - alpha * (u / divisor),)


class Adafactor(Optimizer):
    """``Adafactor(learning_rate=0.001, beta_2_decay=-0.8, epsilon_1=1e-30, epsilon_2=0.001,
    clip_threshold=1.0, relative_step=True, ...)``.

    The rule is ``update`` above. It needs each tensor whole, and ``r`` and ``c`` (params of 2
    or more dimensions only) have the reduced shapes ``shape[:-1]`` and ``shape[:-2] +
    shape[-1:]``: the params cannot be packed. On NumPy arrays the fused path runs the
    elementwise functions as compiled passes (``engine.run``), with ``u`` in a scratch array
    (``Optimizer._scratch``), around what needs the tensor whole:

    * unfactored ``v`` (params of fewer than 2 dimensions): ``second_moment``, then
      ``descend`` after the RMS of ``u``;
    * factored ``v``: ``squared_gradient`` into the scratch array, the row and column means
      of it (``factored_moments``), ``v`` as their outer product written into its slot
      (``factored_v``, NumPy's broadcasting ``multiply``), then ``normalized`` and ``descend``.

    ``opt.backend = "numpy"`` runs ``update`` as array code. The same functions on every
    path, so the same bits. As in Keras the values are not validated.

    Examples
    --------
    The first step moves a weight by at most ``max(epsilon_2, RMS(w)) * min(lr, 1)``: a step
    relative to the weights' own size.

    >>> import numpy as np
    >>> from scratchopt.optimizers import Adafactor
    >>> w = np.array([[3.0, 4.0], [0.0, 5.0]])
    >>> opt = Adafactor(learning_rate=0.1)
    >>> opt.apply([np.ones((2, 2))], [w])
    >>> np.round(w, 3)  # RMS(w) = 3.536: each weight moves by 0.1 * 3.536 * u, u = 1 here
    array([[ 2.646,  3.646],
           [-0.354,  4.646]])
    """

    update = staticmethod(update)
    slot_names = ("r", "c", "v")
    per_tensor = True

    def __init__(self, learning_rate=0.001, beta_2_decay=-0.8, epsilon_1=1e-30, epsilon_2=1e-3, clip_threshold=1.0,
                 relative_step=True, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name="Adafactor", **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
                         ema_momentum, ema_overwrite_frequency, loss_scale_factor,
                         gradient_accumulation_steps, name, **kwargs)
        self.beta_2_decay = checks.number("beta_2_decay", beta_2_decay)
        self.epsilon_1 = checks.number("epsilon_1", epsilon_1)
        self.epsilon_2 = checks.float32_range("epsilon_2", checks.number("epsilon_2", epsilon_2))
        self.clip_threshold = checks.number("clip_threshold", clip_threshold)
        self.relative_step = relative_step

    def initial_slot(self, name, param):
        xp = namespace(param)
        if name == "v":
            return xp.zeros_like(param)
        if param.ndim < 2:
            return None
        shape = param.shape[:-1] if name == "r" else param.shape[:-2] + param.shape[-1:]
        return xp.zeros(shape, param.dtype)

    def pack(self, params, names=None):
        raise ValueError("Adafactor's factored slots r and c do not have the params' shapes: its params "
                         "cannot be packed")

    def run_rule(self, g, var, slots, scalars, fused):
        r, c, v = slots
        if not fused or namespace(var) is not np:  # array code
            for state, new in zip([var, r, c, v], self.update(g, var, r, c, v, **scalars)):
                if state is not None:
                    state[...] = new
            return
        u = self._scratch(var)
        alpha = step_size(var, scalars["rho"], scalars["epsilon_2"])
        averages = {"beta_2_t": scalars["beta_2_t"], "one_minus_beta_2_t": scalars["one_minus_beta_2_t"]}
        if r is None:
            engine.run(second_moment, g, u, [v], {**averages, "epsilon_1": scalars["epsilon_1"]})
        else:  # factored: G2 (in u until its means are taken), then v, their outer product
            engine.run(squared_gradient, g, u, [], {"epsilon_1": scalars["epsilon_1"]})
            r[...], c[...] = factored_moments(u, r, c, **averages)
            factored_v(r, c, out=v)
            engine.run(normalized, g, u, [v], {})
        engine.run(descend, u, var, [], {"alpha": alpha, "divisor": clip_divisor(u, scalars["clip_threshold"])})

    def scalars(self, lr, step, dtype):
        t = dtype.type(step + 1)
        cap = 1 / sqrt(t)
        if self._rate.schedule is None and self.relative_step:  # Keras: a float rate, not a callable
            lr = minimum(lr, cap)
        beta_2_t = 1 - power(t, as_dtype(self.beta_2_decay, dtype))
        return {
            "rho": minimum(lr, cap),
            "beta_2_t": beta_2_t,
            "one_minus_beta_2_t": 1 - beta_2_t,
            "epsilon_1": as_dtype(self.epsilon_1, dtype),
            "epsilon_2": cast(self.epsilon_2, dtype),
            "clip_threshold": as_dtype(self.clip_threshold, dtype),
        }
