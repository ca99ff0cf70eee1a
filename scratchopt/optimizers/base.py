"""Keras's optimizer semantics, written once: the ``apply`` pipeline around an update rule.

An optimizer file (``sgd.py``, ``adam.py``, ...) holds only its mathematics: an
elementwise ``update`` rule, the names of its slots, and the per-step scalars it needs.
Everything else is here, in the order Keras's ``BaseOptimizer.apply`` runs it
(KERAS_SEMANTICS §1)::

    apply(grads, params):
        check every (grad, param) pair         -> nothing changes if one is bad
        drop None gradients
        g = g / loss_scale_factor
        if accumulating and this is not the s-th call:  acc = acc + g   (and skip to EMA)
        if accumulating:                       g = (g + acc) / s;  acc = 0 afterwards
        clip                                   clipnorm | global_clipnorm | clipvalue
        weight decay                           w = w - (w * wd) * lr   (before the update)
        update rule                            w, slots = update(g, w, *slots, ...)
        EMA of the weights                     avg = m * avg + (1 - m) * w
        iterations += 1

Keras conventions that decide the bits, kept here:

* the learning rate lives in float32 (a float32 variable in Keras), then is cast to the
  parameter's dtype; a schedule is evaluated at the raw step counter;
* a gradient is cast to its parameter's dtype inside the update, i.e. *after* loss
  scaling and clipping, which run in the gradient's own dtype;
* ``iterations`` counts optimizer steps; with gradient accumulation over ``s`` calls it
  is ``calls // s``, while schedules still see the raw call count.

How a rule runs (array code, or one fused kernel on the CPU or the GPU) is the engine's
business (``engine/``): this file hands it (gradient, variable, slots) triples, one per
parameter or one per packed buffer (``pack``), and says whether it may fuse
(``backend``). To run the plain NumPy rule, where a ``print`` inside ``update`` fires, set
``opt.backend = "numpy"`` (or ``SCRATCHOPT_BACKEND=numpy``).
"""

import inspect
import numbers
import re
import warnings

import numpy as np

from .. import checks
from ..backend import namespace
from ..numerics import as_dtype, tf_arithmetic, through_float32
from . import clipping, engine, validation
from .engine import packing

#: Keras's arguments common to every optimizer, in Keras's order, with its defaults.
COMMON_ARGUMENTS = {
    "weight_decay": None,
    "clipnorm": None,
    "clipvalue": None,
    "global_clipnorm": None,
    "use_ema": False,
    "ema_momentum": 0.99,
    "ema_overwrite_frequency": None,
    "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
}


def decay(g, var, *, weight_decay, lr):
    """Decoupled weight decay, Keras's form, run just before the update rule: one more rule.

        w = w - (w * weight_decay) * lr

    The gradient is not used (it is passed as None). Written as a rule, the decay runs
    on the same paths as ``update`` (one fused pass over the weights on the CPU and on the
    GPU, or array code), instead of three array operations with their temporaries.
    """
    return (var - (var * weight_decay) * lr,)


class Optimizer(checks.Configurable):
    """Base class: a subclass gives its rule ``update``, its ``slot_names`` and ``scalars``.

    * ``update(g, var, *slots, **scalars) -> (var, *slots)``: the rule, one elementwise
      function of arrays or scalars; an unused slot is passed and returned as None.
    * ``slot_names``: the per-parameter state arrays, named as ``update``'s parameters
      after ``g, var`` (checked when the class is defined); ``slots_in_use()`` says which
      this configuration needs.
    * ``scalars(lr, step, dtype)``: the per-step scalars of ``update``, in ``dtype``.
    * its constructor: its own arguments first, in Keras's order with Keras's defaults,
      then Keras's common ones (the signature of ``Optimizer.__init__``), passed on.

    Examples
    --------
    Plain gradient descent as a new optimizer: no slots, one scalar. Clipping, weight
    decay, schedules, EMA, ... come with the base class.

    >>> import numpy as np
    >>> from scratchopt.optimizers import Optimizer
    >>> class GD(Optimizer):
    ...     @staticmethod
    ...     def update(g, var, *, lr):
    ...         return (var - lr * g,)
    ...     def scalars(self, lr, step, dtype):
    ...         return {"lr": lr}
    >>> w = np.array([1.0, 2.0, 3.0])
    >>> opt = GD(learning_rate=0.5)
    >>> opt.apply([np.array([2.0, -4.0, 0.0])], [w])  # w = w - 0.5 * g, in place
    >>> w
    array([0., 4., 3.])
    >>> opt.iterations
    1
    """

    #: The rule's state arrays, by the names ``update`` gives them.
    slot_names = ()
    #: Which path runs the rule (``engine.BACKENDS``): ``"auto"`` a fused kernel where the
    #: arrays allow it, ``"numpy"`` array code always (NumPy, or CuPy for CuPy arrays; where
    #: a ``print`` in the rule fires), ``"fused"`` is ``"auto"`` that fails when NumPy params
    #: meet a machine without numba. Under ``"auto"`` the environment variable
    #: ``SCRATCHOPT_BACKEND``, when set, decides instead.
    backend = "auto"
    _rule_slots = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "update" in cls.__dict__ or "slot_names" in cls.__dict__:
            cls._rule_slots = validation.rule_contract(cls)

    def __init__(self, learning_rate=0.001, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                 loss_scale_factor=None, gradient_accumulation_steps=None, name=None, **kwargs):
        if kwargs.pop("decay", None) is not None:
            warnings.warn("Argument `decay` is no longer supported and will be ignored.", stacklevel=3)
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        self.weight_decay, self.clipnorm, self.clipvalue = weight_decay, clipnorm, clipvalue
        self.global_clipnorm, self.use_ema, self.ema_momentum = global_clipnorm, use_ema, ema_momentum
        self.ema_overwrite_frequency, self.loss_scale_factor = ema_overwrite_frequency, loss_scale_factor
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.name = type(self).__name__ if name is None else name
        validation.validate_common(self)
        self._set_learning_rate(learning_rate, constructing=True)
        for key in COMMON_ARGUMENTS:  # a number where Keras expects one (None: unset, but not for ema_momentum)
            if key != "use_ema" and (getattr(self, key) is not None or key == "ema_momentum"):
                checks.number(key, getattr(self, key))
        self.built = False
        self._iterations = 0
        self._exclude_ids = set()
        self._exclude_pattern = None
        self._packs = []
        self._packed_grads = None  # what packed_gradients() handed out

    # --- the learning rate ----------------------------------------------------------------

    def _set_learning_rate(self, learning_rate, constructing=False):
        if callable(learning_rate):
            self._schedule = learning_rate
            # Keras calls a plain callable with no argument; a schedule gets the step.
            self._schedule_takes_step = validation.takes_step(learning_rate)
            self._lr = None
            return
        if constructing and not isinstance(learning_rate, float):
            # Keras: int and np.float32 rejected, np.float64 (a float subclass) accepted.
            raise ValueError(
                "Argument `learning_rate` should be float, or a schedule (a callable "
                f"step -> rate). Received instead: learning_rate={learning_rate!r} "
                f"({type(learning_rate).__name__})")
        if getattr(self, "_schedule", None) is not None:
            raise TypeError(
                "This optimizer was created with a schedule as its `learning_rate`, hence its "
                "learning rate is not settable. Build it with a float `learning_rate` to set it.")
        checks.number("learning_rate", learning_rate)
        self._schedule = None
        with np.errstate(over="ignore"):  # beyond float32: inf, silently, as Keras stores it
            self._lr = np.float32(learning_rate)  # Keras keeps it in a float32 variable

    def _current_learning_rate(self):
        """The learning rate of the coming step, as the NumPy scalar Keras would hold.

        A float rate lives in a float32 variable. A schedule's value keeps the schedule's
        dtype (float64 for one built on an ``np.float64`` rate, as in Keras); a plain
        callable's Python float becomes a float32 tensor, its ``np.float64`` stays float64.
        """
        if self._schedule is None:
            return self._lr
        lr = self._schedule(self._iterations) if self._schedule_takes_step else self._schedule()
        dtype = getattr(self._schedule, "dtype", None)
        if dtype is None:
            dtype = np.float64 if isinstance(lr, np.float64) else np.float32
        return np.dtype(dtype).type(lr)

    @property
    def learning_rate(self):
        """The rate the next step will use, as a Python float (a float32 value, unless a
        float64 schedule gives it)."""
        return float(self._current_learning_rate())

    @learning_rate.setter
    def learning_rate(self, value):
        self._set_learning_rate(value)

    @property
    def iterations(self):
        """Optimizer steps taken; with gradient accumulation over s calls, ``calls // s``."""
        s = self.gradient_accumulation_steps
        return int(self._iterations // s) if s else self._iterations

    # --- state: slots, EMA averages, gradient accumulators ---------------------------------

    def slots_in_use(self):
        """The slots this configuration needs (all of ``slot_names`` unless overridden)."""
        return self.slot_names

    def build(self, params, names=None):
        """Register ``params`` (and optional ``names``) and create zeroed state for each."""
        params = list(params)
        names = [None] * len(params) if names is None else list(names)
        if len(names) != len(params):
            raise ValueError(f"got {len(names)} names for {len(params)} params")
        for i, p in enumerate(params):
            validation.check_param(p, f"params[{i}]")
        validation.check_distinct(params)
        if self.built:
            return
        self._params = params
        self._names = names
        self._index = {id(p): i for i, p in enumerate(params)}
        used = self.slots_in_use()
        self._slots = [{k: namespace(p).zeros_like(p) for k in self.slot_names if k in used} for p in params]
        self._averages = [namespace(p).zeros_like(p) for p in params] if self.use_ema else None
        self._accumulators = [namespace(p).zeros_like(p) for p in params] if self.gradient_accumulation_steps else None
        self._decays = [self._uses_weight_decay(p, n) for p, n in zip(params, names)]
        self.built = True

    def pack(self, params, names=None):
        """Move ``params`` into one flat buffer per dtype; return the arrays to use from now on.

        ``params = opt.pack(params)`` builds the optimizer if needed, copies the params of
        each dtype (and device) into one buffer, slots alike, and returns views into it:
        from now on those views *are* the params (``apply`` refuses the arrays passed in).
        A step then runs the rule once per buffer, with the same bits; what is per tensor
        (clipping, excluded weight decay, a missing gradient) stays per tensor. See
        ``engine/packing.py``.
        """
        params = list(params)
        for i, p in enumerate(params):
            validation.check_param(p, f"params[{i}]")
        if self._packs:
            raise ValueError("this optimizer's params are already packed")
        if self.built and (len(params) != len(self._params)
                           or any(p is not q for p, q in zip(params, self._params))):
            raise ValueError("pack(params) on a built optimizer needs the params it was built "
                             "with, in the same order")
        self.build(params, names)
        self._packs, self._params, self._slots = packing.pack(params, self._slots, self._decays)
        self._index = {id(p): i for i, p in enumerate(self._params)}
        return list(self._params)

    def packed_gradients(self):
        """Zeroed gradient arrays laid out like the packed params (after ``pack``), the same
        arrays on every call. Write each step's gradients into them and pass them to
        ``apply``: the step then reads each buffer's gradients in place, and skips the
        per-pair checks (the arrays are the optimizer's own).
        """
        if not self._packs:
            raise ValueError("call pack(params) before packed_gradients()")
        self._packed_grads = packing.gradient_views(self._packs, self._params)
        return list(self._packed_grads)

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Exclude params (by identity) or names (regex search, as Keras) from weight decay."""
        if self.built:
            raise ValueError("`exclude_from_weight_decay()` can only be configured before "
                             "the optimizer is built.")
        self._exclude_ids = {id(v) for v in var_list or ()}
        self._exclude_pattern = "|".join(set(var_names)) if var_names else None

    def _uses_weight_decay(self, param, name):
        if id(param) in self._exclude_ids:
            return False
        return not (self._exclude_pattern and name is not None and re.search(self._exclude_pattern, name))

    def state_dict(self):
        """Copies of everything a resumed run needs: step count, learning rate, all state."""
        if not self.built:
            raise ValueError("the optimizer has no state before it is built (first apply or build)")

        def copies(arrays):
            return None if arrays is None else [a.copy() for a in arrays]

        return {
            "iterations": self._iterations,
            "learning_rate": None if self._lr is None else float(self._lr),
            "slots": [{k: a.copy() for k, a in s.items()} for s in self._slots],
            "ema": copies(self._averages),
            "accumulators": copies(self._accumulators),
        }

    def load_state_dict(self, state):
        """Restore ``state_dict()`` output into a built optimizer; all checked before any copy."""
        if not self.built:
            raise ValueError("call build(params) before load_state_dict(state)")
        pairs = []
        for key in ("slots", "ema", "accumulators"):
            ours = {"slots": self._slots, "ema": self._averages, "accumulators": self._accumulators}[key]
            theirs = state.get(key)
            if (ours is None) != (theirs is None) or (ours is not None and len(ours) != len(theirs)):
                raise ValueError(f"state[{key!r}] does not match this optimizer's configuration")
            if key == "slots":
                for i, (a, b) in enumerate(zip(ours, theirs)):
                    if set(a) != set(b):
                        raise ValueError(f"state['slots'][{i}] has {sorted(b)}, expected {sorted(a)}")
                    pairs += [(a[k], b[k], f"state['slots'][{i}][{k!r}]") for k in a]
            elif ours is not None:
                pairs += [(a, b, f"state[{key!r}][{i}]") for i, (a, b) in enumerate(zip(ours, theirs))]
        for dst, src, where in pairs:
            if namespace(dst) is not namespace(src) or dst.shape != src.shape or dst.dtype != src.dtype:
                raise ValueError(f"{where} is {type(src).__name__} {src.dtype}{tuple(src.shape)}, "
                                 f"expected {type(dst).__name__} {dst.dtype}{tuple(dst.shape)}")
        iterations = state["iterations"]
        if not isinstance(iterations, numbers.Integral) or iterations < 0:
            raise ValueError(f"state['iterations'] must be an int >= 0, got {iterations!r}")
        for dst, src, _ in pairs:
            dst[...] = src
        self._iterations = int(iterations)
        if state.get("learning_rate") is not None and self._schedule is None:
            self._lr = np.float32(state["learning_rate"])

    # --- one step ---------------------------------------------------------------------------

    def apply_gradients(self, grads_and_params):
        """``apply`` from ``(grad, param)`` pairs, as Keras's ``apply_gradients``."""
        grads, params = zip(*grads_and_params)
        self.apply(grads, params)

    def apply(self, grads, params=None):
        """One optimizer step: ``params`` (a list of arrays) are updated in place.

        A bad pair (shape, dtype or array kind) raises before anything changes.
        """
        grads = list(grads)
        if not grads:
            return  # Keras: an empty list is a no-op (the step count does not move)
        params, as_built = self._params_for(grads, params)
        ours = as_built and self._packed_grads is not None and validation.same_arrays(grads, self._packed_grads)
        if ours:  # the optimizer's own gradient buffers: every param has one, in order
            indices = range(len(grads))
            validation.check_step(self, {pack.param.dtype for pack in self._packs})
        else:
            pairs = [(i, g, p) for i, (g, p) in enumerate(zip(grads, params)) if g is not None]
            if not pairs:
                raise ValueError("No gradients provided for any variable.")
            if len(pairs) < len(grads):
                warnings.warn(f"Gradients do not exist for {len(grads) - len(pairs)} of the params.",
                              stacklevel=2)
            validation.check_pairs(self, pairs)
            validation.check_step(self, {g.dtype for _, g, _ in pairs})
            grads = [g for _, g, _ in pairs]
        fused = engine.wants_fused(self.backend, params)
        if not self.built:
            self.build(params)
        if not ours:
            indices = [self._index[id(p)] for _, _, p in pairs]
        with tf_arithmetic():  # flush-to-zero as TF's CPU kernels; inf/NaN without warnings
            self._step(grads, indices, fused, ours)
        self._iterations += 1

    def _params_for(self, grads, params):
        """``(params, as_built)``: the step's params, and whether they are the built ones in order."""
        if params is None:
            if not self.built:
                raise ValueError("pass `params` on the first call, or call `build(params)` first")
            params, as_built = self._params, True
        else:
            params = list(params)
            as_built = self.built and validation.same_arrays(params, self._params)
            if self.built and not as_built:
                for i, p in enumerate(params):
                    if id(p) not in self._index:
                        raise ValueError(f"Unknown parameter at params[{i}]: this optimizer can only "
                                         "be called for the params it was built with.")
                validation.check_distinct(params)
        if len(grads) != len(params):
            raise ValueError(f"got {len(grads)} gradients for {len(params)} params")
        return params, as_built

    def _step(self, grads, indices, fused, ours):
        """Loss scale, accumulate, then update; ``grads[k]`` is for ``self._params[indices[k]]``.

        ``ours``: the gradients are the arrays of ``packed_gradients()`` (any new gradient
        array made on the way, by scaling, accumulating or clipping, ends that).
        """
        if self.loss_scale_factor is not None:
            grads = [g / as_dtype(self.loss_scale_factor, g.dtype) for g in grads]
            ours = False
        s = self.gradient_accumulation_steps
        if not s:
            self._update(grads, indices, fused, ours)
        elif (self._iterations + 1) % s == 0:
            accumulated = [self._accumulators[i] for i in indices]
            self._update([(g + a) / as_dtype(s, g.dtype) for g, a in zip(grads, accumulated)], indices, fused, False)
            for a in self._accumulators:  # Keras zeroes them all, even those without a gradient now
                a[...] = 0
        else:
            for g, i in zip(grads, indices):
                self._accumulators[i][...] = self._accumulators[i] + g
        if self.use_ema:
            self._update_moving_averages()

    def _update(self, grads, indices, fused, ours):
        """Clip, decay the weights, then run the rule over each (gradient, variable, slots)."""
        clipped = self._clip(grads)
        ours = ours and clipped is grads
        lr = self._current_learning_rate()
        triples, decaying = self._triples(clipped, indices, ours)
        if self.weight_decay is not None:
            for w in decaying:
                scalars = {"weight_decay": through_float32(self.weight_decay, w.dtype), "lr": w.dtype.type(lr)}
                engine.run(decay, None, w, [], scalars, fused)
        scalars = {}
        for g, var, slots in triples:
            dtype = var.dtype
            if dtype not in scalars:
                scalars[dtype] = self.scalars(dtype.type(lr), self.iterations, dtype)
            engine.run(self.update, g, var, slots, scalars[dtype], fused)

    def _triples(self, grads, indices, ours):
        """The step's (gradient, variable, slots) triples, and the weights to decay.

        A packed buffer whose params all have a gradient this step is one triple (its
        gradients gathered into one array, unless they are ``ours`` already); every other
        param is a triple of its own, its gradient cast to its dtype.
        """
        every = len(indices) == len(self._params)
        present = None if every else set(indices)
        whole = [pack for pack in self._packs if every or present.issuperset(pack.indices)]
        triples, decaying = [], []
        if whole:
            by_index = None if ours else dict(zip(indices, grads))
            for pack in whole:
                g = pack.grad if ours else pack.gather([by_index[i] for i in pack.indices])
                triples.append((g, pack.param, [pack.slots.get(k) for k in self._rule_slots]))
                if pack.decays:
                    decaying.append(pack.param)
                else:
                    decaying += [self._params[i] for i in pack.indices if self._decays[i]]
        if len(whole) < len(self._packs) or not self._packs:
            in_whole = {i for pack in whole for i in pack.indices}
            for g, i in zip(grads, indices):
                if i in in_whole:
                    continue
                var, slots = self._params[i], self._slots[i]
                triples.append((g.astype(var.dtype, copy=False), var, [slots.get(k) for k in self._rule_slots]))
                if self._decays[i]:
                    decaying.append(var)
        return triples, decaying

    def _clip(self, grads):
        # Keras: a clip value that is 0 or negative silently disables clipping.
        if self.clipnorm and self.clipnorm > 0:
            return clipping.clip_by_norm(grads, self.clipnorm)
        if self.global_clipnorm and self.global_clipnorm > 0:
            return clipping.clip_by_global_norm(grads, self.global_clipnorm)
        if self.clipvalue and self.clipvalue > 0:
            return clipping.clip_by_value(grads, self.clipvalue)
        return grads

    def _update_moving_averages(self):
        """avg = m * avg + (1 - m) * w, with m = 0 on the first step (the average starts at w)."""
        first = self.iterations == 0
        for w, avg in zip(self._params, self._averages):
            m = w.dtype.type(not first) * as_dtype(self.ema_momentum, w.dtype)
            avg[...] = m * avg + (1 - m) * w
        f = self.ema_overwrite_frequency
        if f and (self.iterations + 1) % f == 0:
            self.finalize_variable_values()

    def finalize_variable_values(self, var_list=None):
        """With ``use_ema``, overwrite the params with their moving averages.

        Keras's name; ``var_list`` is accepted for its signature, the params are those the
        optimizer was built with (as in Keras, where they must be the same list).
        """
        if self.use_ema and self.built:
            for w, avg in zip(self._params, self._averages):
                w[...] = avg

    # --- configuration ----------------------------------------------------------------------

    def get_config(self):
        """Every constructor argument; ``type(opt).from_config(config)`` rebuilds the optimizer."""
        names = [n for n in inspect.signature(type(self).__init__).parameters if n not in ("self", "kwargs")]
        config = {n: getattr(self, n) for n in names}
        config["learning_rate"] = self._schedule if self._schedule is not None else float(self._lr)
        return config
