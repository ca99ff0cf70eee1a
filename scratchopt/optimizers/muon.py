"""Muon: momentum orthogonalised by Newton-Schulz for 2-D weights, AdamW for the rest."""

import re

import numpy as np

from .. import checks
from ..backend import sqrt
from ..numerics import as_dtype, power, reduce_sum_over
from ..numerics.matmul import matmul
from . import adam, engine
from .base import Optimizer, cast, decay


def newton_schulz(x, steps, a, b, c):
    """Keras's ``zeropower_via_newtonschulz5``: ``x`` pushed towards the nearest orthogonal
    matrix (its singular values towards ~1) by the quintic iteration, in Keras's op order.

        if rows > cols: x = x^T
        x = x / (||x||_F + 1e-7)
        repeat steps:  A = x x^T;  B = b A + (c A) A;  x = a x + B x
        if rows > cols: x = x^T

    The products are ``numerics.matmul``: TF's order, exact in float64 (Eigen's GEBP kernel's
    panels and depth blocks). In float32 TF's matmul runs on oneDNN, whose summation order
    depends on the CPU: there, NumPy's ``@``.
    """
    tall = x.shape[-2] > x.shape[-1]
    if tall:
        x = np.ascontiguousarray(x.T)
    t = x.dtype.type
    x = x / (sqrt(reduce_sum_over(x * x, (0, 1), keepdims=True)) + t(1e-7))
    a, b, c = t(a), t(b), t(c)
    for _ in range(steps):
        temp_a = matmul(x, np.ascontiguousarray(x.T))
        temp_b = b * temp_a + matmul(c * temp_a, temp_a)
        x = a * x + matmul(temp_b, x)
    return np.ascontiguousarray(x.T) if tall else x


class Muon(Optimizer):
    """``Muon(learning_rate=0.001, adam_beta_1=0.9, adam_beta_2=0.999, adam_weight_decay=0.004,
    epsilon=1e-07, weight_decay=0.004, ..., exclude_layers=None, exclude_embeddings=True,
    muon_a=3.4445, muon_b=-4.775, muon_c=2.0315, adam_lr_ratio=1, momentum=0.95, ns_steps=5,
    nesterov=True, rms_rate=0.2)``.

    Textbook (Jordan et al. 2024; Moonlight, Liu et al. 2025)   Keras (this code)
    ---------------------------------------------------------   ---------------------------------------------
    B = mu * B + G                                              m = m + (g + m * (mu - 1))
    nesterov: U = G + mu * B                                    nesterov: u = g + mu * m;  else u = m
    O = NewtonSchulz5(U)                                        o = newton_schulz(u)   (above)
    W = W - lr * (0.2 * sqrt(max(A, B)) * O + wd * W)           w = w - (w * wd) * lr  (before), then
                                                                w = w - ((lr * o) * sqrt(max(rows, cols))) * rms_rate

    Params that are not 2-D, whose name contains "embedding" (``exclude_embeddings``) or
    matches a regex of ``exclude_layers`` (names come from ``build(params, names=...)``) take
    Adam's step instead (``adam.update``, at ``learning_rate * adam_lr_ratio``) and decay by
    ``adam_weight_decay``; the Muon params decay by ``weight_decay`` (either may be None: no
    decay for those).

    What the difference does: ``m + (g + m * (mu - 1))`` is ``mu * m + g`` rounded differently;
    the rest is the Moonlight form. Keras's Muon path does not cast the gradient, and
    multiplies the update by the rate and by ``sqrt(max(rows, cols))`` (float32) without
    casts: some dtype mixes make TF raise (``_refuse`` says which), and scratchopt raises a
    TypeError on the same ones, before anything changes (Keras has updated the momentum by
    then). Parity: the AdamW params are exact, and so are the float64 matrices
    (``numerics.matmul`` follows Eigen's float64 GEBP order, every panel of every shape);
    the float32 matrices are within ``parity.MUON_BOUND`` (16 eps of each matrix's largest
    value; measured 2.84) of Keras's: TF's float32 matmul runs on oneDNN, whose order
    depends on the CPU.

    Examples
    --------
    The update of a 2-D weight is (nearly) orthogonal: a gradient with one large and one small
    direction moves the weight about equally along both.

    >>> import numpy as np
    >>> from scratchopt.optimizers import Muon
    >>> w = np.zeros((2, 2), np.float32)
    >>> opt = Muon(learning_rate=0.1, weight_decay=None, rms_rate=None, nesterov=False)
    >>> opt.apply([np.array([[10.0, 0.0], [0.0, 0.1]], np.float32)], [w])
    >>> np.round(-w / 0.1, 1) + 0.0  # a 100:1 gradient, a 1:1 step (singular values near 0.7)
    array([[0.7, 0. ],
           [0. , 0.7]], dtype=float32)
    """

    update = staticmethod(adam.update)  # the AdamW params' rule; the Muon params': _muon_step
    slot_names = ("m", "v", "v_max")
    per_tensor = True
    casts_gradients = False  # Keras's Muon path computes in the gradient's dtype where it is wider

    def __init__(self, learning_rate=0.001, adam_beta_1=0.9, adam_beta_2=0.999, adam_weight_decay=0.004,
                 epsilon=1e-7, weight_decay=0.004, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name="Muon", exclude_layers=None, exclude_embeddings=True,
                 muon_a=3.4445, muon_b=-4.7750, muon_c=2.0315, adam_lr_ratio=1, momentum=0.95, ns_steps=5,
                 nesterov=True, rms_rate=0.2, **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
                         ema_momentum, ema_overwrite_frequency, loss_scale_factor,
                         gradient_accumulation_steps, name, **kwargs)
        for key, value in (("adam_beta_1", adam_beta_1), ("adam_beta_2", adam_beta_2), ("epsilon", epsilon),
                           ("muon_a", muon_a), ("muon_b", muon_b), ("muon_c", muon_c),
                           ("adam_lr_ratio", adam_lr_ratio), ("momentum", momentum)):
            checks.float32_range(key, checks.number(key, value))
        if adam_weight_decay is not None:
            checks.number("adam_weight_decay", adam_weight_decay)
        if rms_rate is not None:
            checks.number("rms_rate", rms_rate)
        if not isinstance(ns_steps, int) or isinstance(ns_steps, bool) or ns_steps < 0:
            raise TypeError(f"`ns_steps` must be an int >= 0. Received: ns_steps={ns_steps!r}")
        self.adam_beta_1, self.adam_beta_2, self.adam_weight_decay = adam_beta_1, adam_beta_2, adam_weight_decay
        self.epsilon, self.muon_a, self.muon_b, self.muon_c = epsilon, muon_a, muon_b, muon_c
        self.adam_lr_ratio, self.momentum, self.ns_steps, self.nesterov = adam_lr_ratio, momentum, ns_steps, nesterov
        self.exclude_layers = list(exclude_layers or [])
        self.exclude_embeddings = exclude_embeddings
        self.rms_rate = rms_rate

    def uses_adamw(self, param, name):
        """Keras's ``_should_use_adamw``: not 2-D, an embedding, or an excluded layer (by name)."""
        if param.ndim != 2:
            return True
        name = name or ""
        if self.exclude_embeddings and "embedding" in name.lower():
            return True
        return any(re.search(keyword, name) for keyword in self.exclude_layers)

    def slots_in_use(self):
        return ("m", "v")

    def _new_state(self, params, names):
        state = super()._new_state(params, names)
        for p, n, slots in zip(params, names, state["_slots"]):
            if not self.uses_adamw(p, n):
                del slots["v"]
        state["_adamw"] = [self.uses_adamw(p, n) for p, n in zip(params, names)]
        return state

    def pack(self, params, names=None):
        raise ValueError("Muon's params cannot be packed: its 2-D params are stepped as whole matrices, "
                         "with slots of their own")

    def _refuse(self, grads, params, lr):
        """Where Keras's Muon step mixes float32 and float64 tensors, and so raises, raise first.

        Keras's Muon path does not cast the gradient: its update has the dtype of
        ``g + mu * m`` (nesterov; a float64 gradient widens a float32 matrix's) or of ``m``.
        Then ``lr * update``: a float rate is a Keras variable, whose product promotes, but a
        schedule's rate is a tensor of its own dtype, and TF refuses a product of two
        dtypes. Then ``* sqrt(max(rows, cols))``, a float32 tensor: with ``rms_rate`` set, a
        float64 update raises. With gradient accumulation only the update steps raise."""
        s = self.gradient_accumulation_steps
        if (self.rms_rate is None and self._rate.schedule is None) or (s and (self._iterations + 1) % s):
            return
        rate = None if self._rate.schedule is None else np.asarray(lr).dtype
        for g, p in zip(grads, params):
            if self._adamw[self._index[id(p)]] if self.built else self.uses_adamw(p, None):
                continue
            update = np.result_type(g.dtype, p.dtype) if self.nesterov else p.dtype
            where = f"params[{self._index[id(p)]}]" if self.built else f"a {p.shape} param"
            if rate is not None and rate != update:
                raise TypeError(f"{where}: its Muon update is {update} and the learning-rate schedule gives "
                                f"{rate}: Keras's Muon multiplies the two (lr * update) and raises; so does "
                                "scratchopt. Use a schedule of the params' dtype")
            if self.rms_rate is not None and update == np.float64:
                raise TypeError(f"{where}: its Muon update is float64 (a float64 2-D param, or a float64 "
                                "gradient with nesterov): Keras's Muon multiplies it by a float32 number "
                                "(sqrt(max(rows, cols))) and raises; so does scratchopt. Use float32, or "
                                "rms_rate=None")

    def _decay(self, decaying, lr, fused):
        for w in decaying:
            i = self._index[id(w)]
            rate = self.adam_weight_decay if self._adamw[i] else self.weight_decay
            if rate is not None:
                engine.run(decay, None, w, [], {"weight_decay": cast(rate, w.dtype),
                                                       "lr": w.dtype.type(lr)}, fused)

    def run_rule(self, g, var, slots, scalars, fused):
        m, v, _ = slots
        if v is not None:
            adam_scalars = {k: scalars[k] for k in ("alpha", "one_minus_beta_1", "one_minus_beta_2", "epsilon")}
            engine.run(adam.update, g.astype(var.dtype, copy=False), var, slots, adam_scalars, fused)
            return
        # Keras's Muon path does not cast the gradient: a float64 one widens the float32
        # matrix's sums (NumPy's promotion is Keras's), and each assignment casts back
        m[...] = m + (g + m * scalars["momentum_minus_one"]).astype(m.dtype, copy=False)
        u = g + scalars["momentum"] * m if self.nesterov else m
        o = newton_schulz(u, self.ns_steps, self.muon_a, self.muon_b, self.muon_c)
        step = scalars["lr"] * o
        if self.rms_rate is not None:
            scale = np.sqrt(np.float32(max(var.shape)))  # float32, as Keras's sqrt of an int
            step = (step * var.dtype.type(scale)) * as_dtype(self.rms_rate, var.dtype)
        var[...] = var - step.astype(var.dtype, copy=False)

    def _update(self, grads, indices, fused, ours, lr):
        self._rate_of_step = lr  # the rate in its own dtype (a float64 schedule's stays float64)
        super()._update(grads, indices, fused, ours, lr)

    def scalars(self, lr, step, dtype):
        t = dtype.type(step + 1)
        # Keras: learning_rate * adam_lr_ratio in the rate's own dtype, then cast to the param's
        rate = self._rate_of_step
        adam_lr = dtype.type(rate * rate.dtype.type(self.adam_lr_ratio))
        beta_1_power = power(cast(self.adam_beta_1, dtype), t)
        beta_2_power = power(cast(self.adam_beta_2, dtype), t)
        return {
            "alpha": adam_lr * sqrt(1 - beta_2_power) / (1 - beta_1_power),
            "one_minus_beta_1": as_dtype(1 - self.adam_beta_1, dtype),
            "one_minus_beta_2": as_dtype(1 - self.adam_beta_2, dtype),
            "epsilon": as_dtype(self.epsilon, dtype),
            "lr": lr,
            "momentum": as_dtype(self.momentum, dtype),
            "momentum_minus_one": as_dtype(self.momentum - 1, dtype),
        }

