"""Dynamic loss scaling around any optimizer: scale the loss up, the gradients back down,
and skip the steps whose gradients overflowed."""

import numpy as np

from .. import checks
from ..backend import namespace
from ..numerics import tf_arithmetic
from . import validation
from .base import Optimizer

_COMMON_DEFAULTS = {"weight_decay": None, "clipnorm": None, "global_clipnorm": None, "clipvalue": None,
                    "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
                    "loss_scale_factor": None, "gradient_accumulation_steps": None}


class LossScaleOptimizer(Optimizer):
    """``LossScaleOptimizer(inner_optimizer, initial_scale=32768.0, dynamic_growth_steps=2000)``.

    Keras's dynamic loss scaling (the scheme of Micikevicius et al. 2018), for float16
    training, where small gradients underflow::

        loss_to_differentiate = opt.scale_loss(loss)      # loss * dynamic_scale
        apply(grads):
            if every gradient is finite:
                inner.apply(g / dynamic_scale)            # in the gradient's dtype (float16: float32)
                if step_counter == dynamic_growth_steps - 1:
                    step_counter = 0; dynamic_scale = dynamic_scale * 2
                else:
                    step_counter += 1
            else:                                         # an overflow: skip the step
                step_counter = 0; dynamic_scale = dynamic_scale * 0.5

    ``dynamic_scale`` is a float32 number, as Keras's variable; the division by it is exact
    (a power of two) unless the quotient falls below float32's normal range, where TF's
    flush-to-zero applies (and here too). A skipped step leaves the params, the inner
    optimizer and its ``iterations`` as they were. ``iterations`` and ``learning_rate`` are the
    inner optimizer's; ``state_dict()`` holds the inner optimizer's state and the scale's.

    The common optimizer arguments are refused (as in Keras: give them to the inner
    optimizer), and so is ``dynamic=False``. The inner optimizer's ``loss_scale_factor`` is
    set to None, as Keras sets it.

    Examples
    --------
    An overflow halves the scale and skips the step; finite steps then double it back
    after ``dynamic_growth_steps`` of them.

    >>> import numpy as np
    >>> from scratchopt.optimizers import SGD, LossScaleOptimizer
    >>> w = np.array([1.0], np.float32)
    >>> opt = LossScaleOptimizer(SGD(learning_rate=0.5), initial_scale=8.0, dynamic_growth_steps=2)
    >>> opt.apply([np.array([np.inf], np.float32)], [w])
    >>> opt.dynamic_scale, w, opt.iterations
    (np.float32(4.0), array([1.], dtype=float32), 0)
    >>> opt.apply([np.array([8.0], np.float32)], [w])  # the unscaled gradient is 2.0
    >>> opt.apply([np.array([8.0], np.float32)], [w])
    >>> opt.dynamic_scale, w, opt.iterations
    (np.float32(8.0), array([-1.], dtype=float32), 2)
    """

    def __init__(self, inner_optimizer, initial_scale=32768.0, dynamic_growth_steps=2000, name=None, **kwargs):
        if not kwargs.pop("dynamic", True):
            raise ValueError("LossScaleOptimizer no longer supports `dynamic=False`. Instead, simply set "
                             "`loss_scale_factor` directly on the `inner_optimizer`.")
        for key, default in _COMMON_DEFAULTS.items():
            if key in kwargs:
                value = kwargs.pop(key)
                if (default is None and value is not None) or value != default:
                    raise ValueError(f"LossScaleOptimizer does not support `{key}`. Instead, set "
                                     f"`{key}` on the `inner_optimizer`.")
        if kwargs:
            raise ValueError(f"LossScaleOptimizer does not support arguments: `{'`, `'.join(kwargs)}`.")
        if not isinstance(inner_optimizer, Optimizer) or isinstance(inner_optimizer, LossScaleOptimizer):
            raise TypeError("`inner_optimizer` must be a scratchopt optimizer (SGD, Adam, ...). "
                            f"Received: inner_optimizer={inner_optimizer!r} ({type(inner_optimizer).__name__})")
        super().__init__(learning_rate=0.0, name="LossScaleOptimizer" if name is None else name)
        self.inner_optimizer = inner_optimizer
        self.initial_scale = checks.float32_range("initial_scale", checks.number("initial_scale", initial_scale))
        self.dynamic_growth_steps = checks.number("dynamic_growth_steps", dynamic_growth_steps)
        inner_optimizer.loss_scale_factor = None
        self.step_counter = 0
        self._scale = np.float32(self.initial_scale)

    # --- what is the inner optimizer's ------------------------------------------------------

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self.inner_optimizer.learning_rate = value

    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    @property
    def params(self):
        return self.inner_optimizer.params

    @property
    def built(self):
        return getattr(self.inner_optimizer, "built", False)

    @built.setter
    def built(self, value):  # the base constructor sets it; the inner optimizer's is the one
        pass

    def build(self, params, names=None):
        self.inner_optimizer.build(params, names)

    def pack(self, params, names=None):
        return self.inner_optimizer.pack(params, names)

    def packed_gradients(self):
        return self.inner_optimizer.packed_gradients()

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        self.inner_optimizer.exclude_from_weight_decay(var_list, var_names)

    def finalize_variable_values(self, var_list=None):
        self.inner_optimizer.finalize_variable_values(var_list)

    # --- the scale --------------------------------------------------------------------------

    @property
    def dynamic_scale(self):
        """The current loss scale, a float32 number (Keras's ``dynamic_scale`` variable)."""
        return self._scale

    def scale_loss(self, loss):
        """``loss * dynamic_scale`` (before the first step: ``loss * initial_scale``), in
        Keras's dtype: float32 scale and a float64 loss give float64, a Python float float32."""
        if not self.built:
            scale = self.initial_scale
            if type(loss) in (int, float) and type(scale) in (int, float):
                loss, scale = np.float32(loss), np.float32(scale)
        else:
            scale = self._scale
            if type(loss) in (int, float):
                loss = np.float32(loss)
        with np.errstate(over="ignore", invalid="ignore"):  # float16 overflows to inf, as in Keras
            return loss * scale

    def apply(self, grads, params=None):
        """One step: the gradients unscaled and passed to the inner optimizer if all are finite;
        otherwise no step, and the scale halves."""
        grads = validation.as_list(grads, "grads")
        if not grads:
            return
        present = [g for g in grads if g is not None]
        if all(bool(namespace(g).isfinite(g).all()) for g in present if validation._kind(g) is not None):
            with tf_arithmetic():
                scale = self._scale
                unscaled = [None if g is None else g / scale for g in grads]
            self.inner_optimizer.apply(unscaled, params)  # raises before anything changes
            if self.step_counter == self.dynamic_growth_steps - 1:
                self.step_counter = 0
                self._scale = self._scale * np.float32(2.0)
            else:
                self.step_counter += 1
            return
        self._check_skipped(grads, params)
        self.step_counter = 0
        self._scale = self._scale * np.float32(0.5)

    def _check_skipped(self, grads, params):
        """A skipped step still refuses what a step would refuse (then nothing changes)."""
        inner = self.inner_optimizer
        params, _ = inner._params_for(grads, params)
        pairs = [(g, p, i) for i, (g, p) in enumerate(zip(grads, params)) if g is not None]
        if pairs:
            grads, stepped, positions = (list(column) for column in zip(*pairs))
            validation.check_pairs(inner, grads, stepped, positions)
            validation.check_writeable(stepped, positions)
        if not inner.built:
            inner.build(params)

    # --- state and configuration ------------------------------------------------------------

    def __getstate__(self):  # the inner optimizer copies itself (its own __getstate__)
        return dict(self.__dict__)

    def __setstate__(self, state):
        self.__dict__.update(state)

    def state_dict(self):
        """The inner optimizer's ``state_dict()``, and the scale's state."""
        return {"inner": self.inner_optimizer.state_dict(), "step_counter": self.step_counter,
                "dynamic_scale": float(self._scale)}

    def load_state_dict(self, state):
        if not isinstance(state, dict) or set(state) != {"inner", "step_counter", "dynamic_scale"}:
            raise ValueError("a LossScaleOptimizer state is a dict with keys 'inner', 'step_counter' "
                             f"and 'dynamic_scale'. Received: {validation.short_repr(state)}")
        counter = checks.number("step_counter", state["step_counter"], at_least=0)
        scale = checks.number("dynamic_scale", state["dynamic_scale"])
        self.inner_optimizer.load_state_dict(state["inner"])
        self.step_counter, self._scale = int(counter), np.float32(scale)

    def get_config(self):
        return {"name": self.name, "inner_optimizer": self.inner_optimizer, "initial_scale": self.initial_scale,
                "dynamic_growth_steps": self.dynamic_growth_steps}
