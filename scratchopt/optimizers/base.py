"""Keras's optimizer semantics, written once: the ``apply`` pipeline around an update rule.

An optimizer file (``sgd.py``, ``adam.py``, ...) holds only its mathematics: an
elementwise ``update`` rule, the names of its slots, and the per-step scalars it needs.
Everything else is here, in the order Keras's ``BaseOptimizer.apply`` runs it
(KERAS_SEMANTICS §1)::

    apply(grads, params):
        check everything first                 -> nothing changes if one is bad:
            each (grad, param) pair, writeable params, no memory shared between a
            gradient and a param, the learning rate (a schedule runs here, once,
            outside flush-to-zero: it is user code)
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
import itertools
import operator
import re
import warnings

import numpy as np


from .. import checks
from ..backend import namespace
from ..numerics import as_dtype, keras_cast, tf_arithmetic, through_float32
from . import clipping, clipping_fast, copies, engine, validation
from .engine import packing
from .learning_rate import LearningRate

_DTYPE = operator.attrgetter("dtype")
_FIRST = np.zeros(1, np.int64)  # the start of a gradient that is one segment of its own

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


def cast(x, dtype):
    """A hyper-parameter as Keras's ``ops.cast(x, dtype)`` gives it (``numerics.keras_cast``):
    a Python float through float32, a NumPy float in its own precision; as a NumPy scalar."""
    return through_float32(x, dtype) if type(x) is float else keras_cast(x, dtype)[()]


def constant_slot(value, param):
    """A slot filled as Keras's ``initializers.Constant(value)(shape, dtype)`` fills it:
    ``ops.cast(value, dtype) * ops.ones(shape, dtype)``. The product is a TF kernel, which
    flushes subnormals on the CPU: a float32-subnormal ``value`` (1e-45) starts the slot
    at 0, as in Keras (Adagrad's and Ftrl's ``initial_accumulator_value``)."""
    start = namespace(param).empty_like(param)
    value = cast(value, param.dtype)
    if namespace(param) is np:  # the CPU's kernels flush; a GPU's keep subnormals
        with tf_arithmetic():
            value = value * param.dtype.type(1)
    start[...] = value
    return start


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
    #: Whether the rule must see each param whole (a per-tensor norm, or an op whose bits
    #: depend on the position in the tensor): then a packed buffer is stepped param by param.
    per_tensor = False
    #: Whether a gradient is cast to its param's dtype before the rule, as Keras's rules do
    #: (Muon's own path does not: its rule casts where Keras does).
    casts_gradients = True
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
        self._rate = LearningRate(learning_rate)
        for key in COMMON_ARGUMENTS:  # a number where Keras expects one (None: unset, but not for ema_momentum)
            if key != "use_ema" and (getattr(self, key) is not None or key == "ema_momentum"):
                checks.number(key, getattr(self, key))
        if weight_decay is not None:  # Keras casts it (``keras_cast``): a Python float through float32
            checks.float32_range("weight_decay", weight_decay)
        self.built = False
        self._iterations = 0
        self._exclude_vars = []  # exclude_from_weight_decay(var_list=...): the arrays
        self._exclude_pattern = None  # ... and var_names=..., as one compiled regex
        self._packs = []
        self._packed_grads = None  # what packed_gradients() handed out

    # --- the learning rate (learning_rate.py: how Keras holds it) ---------------------------

    def _current_learning_rate(self):
        """The learning rate of the coming step, as the NumPy scalar Keras would hold."""
        return self._rate.at(self._iterations)

    @property
    def learning_rate(self):
        """The rate the next step will use, as a Python float (a float32 value, unless a
        float64 schedule gives it)."""
        return float(self._current_learning_rate())

    @learning_rate.setter
    def learning_rate(self, value):
        self._rate.set(value)

    @property
    def iterations(self):
        """Optimizer steps taken; with gradient accumulation over s calls, ``calls // s``."""
        s = self.gradient_accumulation_steps
        return int(self._iterations // s) if s else self._iterations

    # --- state: slots, EMA averages, gradient accumulators ---------------------------------

    def slots_in_use(self):
        """The slots this configuration needs (all of ``slot_names`` unless overridden)."""
        return self.slot_names

    def initial_slot(self, name, param):
        """The value a new slot starts from: zeros like ``param``, unless a rule says otherwise
        (Adagrad's accumulator starts at ``initial_accumulator_value``, ScheduleFreeAdamW's
        ``z`` at the param itself); None for a slot this param does not have (Adafactor's
        factored ``r`` and ``c`` exist for params of 2 or more dimensions only)."""
        return namespace(param).zeros_like(param)

    def build(self, params, names=None):
        """Register ``params`` (and optional ``names``) and create zeroed state for each.

        Everything is checked first (each param, one name per param, no array twice, no two
        that share memory); a failed build leaves the optimizer unbuilt. On a built
        optimizer it checks the arguments and changes nothing.
        """
        params, names = self._checked_params(params, names)
        if not self.built:
            self.__dict__.update(self._new_state(params, names))

    def _checked_params(self, params, names):
        params = validation.as_list(params, "params")
        names = validation.check_names(names, params)
        for i, p in enumerate(params):
            validation.check_param(p, f"params[{i}]")
        validation.check_distinct(params)
        if not self.built:
            validation.check_params_disjoint(params)
        return params, names

    def _new_state(self, params, names):
        """The attributes ``build`` sets, made before any is set (so a failure sets none)."""
        excluded = set(map(id, self._exclude_vars))
        used = self.slots_in_use()
        return {
            "_params": params,
            "_names": names,
            "_index": {id(p): i for i, p in enumerate(params)},
            "_owners": validation.memory_owners(params),
            "_slots": [{k: s for k in self.slot_names if k in used for s in [self.initial_slot(k, p)] if s is not None}
                       for p in params],
            "_averages": [namespace(p).zeros_like(p) for p in params] if self.use_ema else None,
            "_accumulators": ([namespace(p).zeros_like(p) for p in params]
                              if self.gradient_accumulation_steps else None),
            "_decays": [id(p) not in excluded and not (self._exclude_pattern and n is not None
                                                        and self._exclude_pattern.search(n))
                        for p, n in zip(params, names)],
            "built": True,
        }

    @property
    def params(self):
        """The arrays this optimizer steps, in build order (a new list; empty before build).

        After ``pack`` they are the packed views. A copy (``copy.deepcopy``, ``pickle``)
        holds copies of its own and steps those: pass ``copy.params`` (or no params) to
        its ``apply``; the original's arrays are refused there.
        """
        return list(self._params) if self.built else []

    def pack(self, params, names=None):
        """Move ``params`` into one flat buffer per dtype; return the arrays to use from now on.

        ``params = opt.pack(params)`` builds the optimizer if needed, copies the params of
        each dtype (and device) into one buffer, slots alike, and returns views into it:
        from now on those views *are* the params. A step then runs the rule once per buffer,
        with the same bits; what is per tensor (clipping, excluded weight decay, a missing
        gradient) stays per tensor. See ``engine/packing.py``.

        What follows from the views sharing one buffer:

        * the arrays passed in are not stepped any more: ``apply`` refuses them (a
          ValueError, "Unknown parameter"), and so it refuses any array that replaces a
          view in the caller's list; copy new values *into* a view instead (``v[...] = x``);
        * a view made read-only (``v.flags.writeable = False``) is refused by a step that
          is given the params (``apply(grads, params)``); with the arrays of
          ``packed_gradients()`` the step checks the buffers' flags only, not each view's
          (that would cost a Python call per tensor on the fast path), so to freeze the
          packed params make the buffer read-only: ``v.base.flags.writeable = False``.
        """
        params = validation.as_list(params, "params")
        for i, p in enumerate(params):
            validation.check_param(p, f"params[{i}]")
        if self._packs:
            raise ValueError("this optimizer's params are already packed")
        if self.built and not validation.same_arrays(params, self._params):
            raise ValueError("pack(params) on a built optimizer needs the params it was built "
                             "with, in the same order")
        if self.built:
            state = {"_slots": self._slots, "_decays": self._decays}
            self._checked_params(params, names)
        else:
            state = self._new_state(*self._checked_params(params, names))
        packs, views, slots = packing.pack(params, state["_slots"], state["_decays"])
        state.update(_packs=packs, _params=views, _slots=slots, _index={id(p): i for i, p in enumerate(views)},
                     _owners=validation.memory_owners(views))
        self.__dict__.update(state)
        return list(views)

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

    def scale_loss(self, loss):
        """Keras's ``scale_loss``: ``loss * loss_scale_factor`` when one is set, else ``loss``.

        ``model.fit`` differentiates the scaled loss, so the gradients come scaled, and
        ``apply`` divides them by the factor again (``nn.Sequential`` does the same).
        """
        if self.loss_scale_factor is None:
            return loss
        if type(loss) in (int, float):  # a Python number: a float32 tensor in Keras
            loss = as_dtype(loss, "float32")
        if getattr(getattr(loss, "dtype", None), "kind", None) != "f":
            raise TypeError(f"`loss` must be a float number or array, got {type(loss).__name__}: {loss!r:.80}")
        return loss * as_dtype(self.loss_scale_factor, loss.dtype)

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Exclude params (by identity) or names (regex search, as Keras) from weight decay.

        The regex is compiled here: a bad one is a ValueError at this call. The arrays of
        ``var_list`` are held, and a copy of the optimizer (``copy.deepcopy``) holds copies.
        """
        if self.built:
            raise ValueError("`exclude_from_weight_decay()` can only be configured before "
                             "the optimizer is built.")
        arrays = [] if var_list is None else validation.as_list(var_list, "var_list")
        pattern = None
        if var_names:
            names = set(var_names)  # Keras's "|".join(set(var_names)): a str gives its letters
            for name in names:
                if not isinstance(name, str):
                    raise TypeError(f"`var_names` must be a list of str (regexes), got {name!r} "
                                    f"({type(name).__name__}) in it. Received: var_names={var_names!r}")
            try:
                pattern = re.compile("|".join(names))
            except re.error as error:
                raise ValueError(f"`var_names` must be regexes, and they do not compile ({error}). "
                                 f"Received: var_names={var_names!r}") from None
        self._exclude_vars, self._exclude_pattern = arrays, pattern

    def state_dict(self):
        """Copies of everything a resumed run needs: step count, learning rate, all state."""
        if not self.built:
            raise ValueError("the optimizer has no state before it is built (first apply or build)")

        def copies(arrays):
            return None if arrays is None else [a.copy() for a in arrays]

        return {
            "iterations": self._iterations,
            "learning_rate": None if self._rate.value is None else float(self._rate.value),
            "slots": [{k: a.copy() for k, a in s.items()} for s in self._slots],
            "ema": copies(self._averages),
            "accumulators": copies(self._accumulators),
        }

    def load_state_dict(self, state):
        """Restore ``state_dict()`` output into a built optimizer.

        Every field is checked (its kind, and each array's kind, shape and dtype) before
        anything is copied: a bad state raises a TypeError or ValueError naming the field,
        with the optimizer as it was.
        """
        copies, iterations, lr = validation.check_state(self, state)
        for dst, src in copies:
            dst[...] = src
        self._iterations = iterations
        if lr is not None and self._rate.schedule is None:
            self._rate.set(lr)

    # --- copies: copy.deepcopy and pickle (copies.py) ---------------------------------------

    __getstate__ = copies.getstate
    __setstate__ = copies.setstate

    # --- one step ---------------------------------------------------------------------------

    def apply_gradients(self, grads_and_params):
        """``apply`` from ``(grad, param)`` pairs, as Keras's ``apply_gradients``; an empty
        list is a no-op, as ``apply([], [])``."""
        pairs = validation.as_list(grads_and_params, "grads_and_params")
        if not pairs:
            return
        try:
            sizes = set(map(len, pairs))
        except TypeError:
            sizes = None
        if sizes != {2}:
            for i, pair in enumerate(pairs):
                if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                    raise TypeError(f"grads_and_params[{i}] must be a (grad, param) pair, got "
                                    f"{type(pair).__name__} {validation.short_repr(pair)}")
        grads, params = zip(*pairs)
        self.apply(list(grads), list(params))

    def apply(self, grads, params=None):
        """One optimizer step: ``params`` (a list of arrays) are updated in place.

        Everything is checked before anything changes: each (grad, param) pair (array kind,
        dtype, shape), that each param is writeable and known, that no gradient shares
        memory with a param, the learning rate a schedule gives. A failed call leaves the
        params, the optimizer's state and step count exactly as they were, and an unbuilt
        optimizer unbuilt.
        """
        grads = validation.as_list(grads, "grads")
        if not grads:
            return  # Keras: an empty list is a no-op (the step count does not move)
        params, as_built = self._params_for(grads, params)
        ours = as_built and self._packed_grads is not None and validation.same_arrays(grads, self._packed_grads)
        missing = 0
        if ours:  # the optimizer's own gradient buffers: every param has one, in order
            indices = range(len(grads))
            validation.check_step(self, [pack.param.dtype for pack in self._packs])
        else:
            stepped, positions = params, range(len(params))
            if any(map(operator.is_, grads, itertools.repeat(None))):  # params without a gradient
                pairs = [(g, p, i) for i, (g, p) in enumerate(zip(grads, params)) if g is not None]
                if not pairs:
                    raise ValueError("No gradients provided for any variable.")
                missing = len(grads) - len(pairs)
                grads, stepped, positions = (list(column) for column in zip(*pairs))
            validation.check_pairs(self, grads, stepped, positions)
            validation.check_writeable(stepped, positions)
            validation.check_step(self, map(_DTYPE, grads))
            validation.check_memory(grads, stepped, positions,
                                    self._owners if self.built else validation.memory_owners(params))
        if self._packs:
            validation.check_packs(self._packs)
        fused = engine.wants_fused(self.backend, params)
        # The rate, once per call (also one that only accumulates, so that a bad value is
        # refused at once), before anything changes and outside flush-to-zero: a callable is
        # user code.
        lr = self._current_learning_rate()
        if not ours:
            self._refuse(grads, stepped, lr)
        f = self.ema_overwrite_frequency
        if self.use_ema and f and (self.iterations + 1) % f == 0:  # every param is written
            everything = self._params if self.built else params
            validation.check_writeable(everything, range(len(everything)))
        if missing:
            warnings.warn(f"Gradients do not exist for {missing} of the params.", stacklevel=2)
        before = None if self.built else dict(self.__dict__)
        try:
            if before is not None:
                self.build(params)
            if not ours:  # the built params' positions (for the built list itself: the same)
                indices = positions if as_built else [self._index[id(p)] for p in stepped]
            with tf_arithmetic():  # flush-to-zero as TF's CPU kernels; inf/NaN without warnings
                self._step(grads, indices, fused, ours, lr)
        except BaseException:
            if before is not None:  # an unbuilt optimizer stays unbuilt
                self.__dict__.clear()
                self.__dict__.update(before)
            raise
        self._iterations += 1

    def _refuse(self, grads, params, lr):
        """Raise, before anything changes, where Keras's step raises on arrays that pass every
        other check (Muon's mixed dtypes). ``grads[k]`` is for ``params[k]``, both checked."""

    def _params_for(self, grads, params):
        """``(params, as_built)``: the step's params, and whether they are the built ones in order."""
        if params is None:
            if not self.built:
                raise ValueError("pass `params` on the first call, or call `build(params)` first")
            params, as_built = self._params, True
        else:
            params = validation.as_list(params, "params")
            as_built = self.built and validation.same_arrays(params, self._params)
            if self.built and not as_built:
                for i, p in enumerate(params):
                    if id(p) not in self._index:
                        raise ValueError(
                            f"Unknown parameter at params[{i}]: this optimizer was built for other arrays, "
                            "and steps only those (`opt.params`). After pack() they are the views it "
                            "returned; a copy (copy.deepcopy, pickle) holds copies of its own.")
                validation.check_distinct(params)
        if len(grads) != len(params):
            raise ValueError(f"got {len(grads)} gradients for {len(params)} params")
        return params, as_built

    def _step(self, grads, indices, fused, ours, lr):
        """Loss scale, accumulate, then update; ``grads[k]`` is for ``self._params[indices[k]]``.

        ``ours``: the gradients are the arrays of ``packed_gradients()`` (any new gradient
        array made on the way, by scaling, accumulating or clipping, ends that).
        """
        if self.loss_scale_factor is not None:
            grads = [g / as_dtype(self.loss_scale_factor, g.dtype) for g in grads]
            ours = False
        s = self.gradient_accumulation_steps
        if not s:
            self._update(grads, indices, fused, ours, lr)
        elif (self._iterations + 1) % s == 0:
            accumulated = [self._accumulators[i] for i in indices]
            self._update([(g + a) / as_dtype(s, g.dtype) for g, a in zip(grads, accumulated)], indices, fused,
                         False, lr)
            for a in self._accumulators:  # Keras zeroes them all, even those without a gradient now
                a[...] = 0
        else:
            for g, i in zip(grads, indices):
                self._accumulators[i][...] = self._accumulators[i] + g
        if self.use_ema:
            self._update_moving_averages()

    def _update(self, grads, indices, fused, ours, lr):
        """Clip, decay the weights, then run the rule over each (gradient, variable, slots).

        Norm clipping on the fused path is not a pass of its own: its factors are computed
        (the norms need their own read of the gradients) and handed to the rule's kernel,
        which scales each gradient element as it reads it (``_clip_in_the_rule``)."""
        prescales = self._clip_in_the_rule(grads, indices, fused, ours)
        clipped = grads if prescales else self._clip(grads, fused)
        ours = ours and clipped is grads
        triples, decaying = self._triples(clipped, indices, ours)
        self._decay(decaying, lr, fused)
        scalars = {}
        for k, (g, var, slots) in enumerate(triples):
            dtype = var.dtype
            if dtype not in scalars:
                scalars[dtype] = self.scalars(dtype.type(lr), self.iterations, dtype)
            if prescales:
                engine.run(self.update, g, var, slots, scalars[dtype], fused, prescales[k])
            else:
                self.run_rule(g, var, slots, scalars[dtype], fused)

    def _clip_in_the_rule(self, grads, indices, fused, ours):
        """Per triple of ``_triples``, the clipping factors the rule's kernel applies as it
        reads the gradient (``engine.run(..., prescale=...)``); None to clip first.

        Where the bits cannot differ: norm clipping (``clipnorm``, ``global_clipnorm``), on
        the fused path, for a rule the engine runs (not ``per_tensor``, no own
        ``run_rule``), each gradient already of its param's dtype (Keras clips before the
        cast). ``clipnorm`` needs one tensor per triple (no packed buffers); a global
        scale is one number for every triple. For the gradients of one buffer (one
        triple) it is a ``clipping_fast.GlobalNorm``: the rule's kernel computes the factor
        first, in the same compiled call.
        """
        if not fused or self.per_tensor or type(self).run_rule is not Optimizer.run_rule:
            return None
        by_norm = bool(self.clipnorm and self.clipnorm > 0)
        by_global = not by_norm and bool(self.global_clipnorm and self.global_clipnorm > 0)
        if not (by_norm or by_global) or (by_norm and self._packs):
            return None
        buffer = self._one_buffer(grads, indices, ours) if by_global else None
        if buffer is not None:  # one triple, whose kernel computes the factor first
            return [clipping_fast._step_norm(*buffer, self.global_clipnorm)]
        if any(g.dtype != self._params[i].dtype or not isinstance(g, np.ndarray)
               for g, i in zip(grads, indices)):
            return None
        if by_norm:
            clipping._no_half(grads, "clipnorm")
            return [clipping.norm_factors(g, self.clipnorm) for g in grads]
        scale = clipping.global_scale(grads, self.global_clipnorm)
        if any(g.dtype != scale.dtype for g in grads):
            return None
        return [(scale,)] * len(grads)  # a packed buffer is one triple of several gradients

    def _one_buffer(self, grads, indices, ours):
        """``(flat, starts, sizes)`` for ``clipping_fast._step_norm`` when the gradients
        are one buffer it takes (``clipping_fast.wanted``): this optimizer's own
        ``packed_gradients()`` of one packed buffer (its params in order: the buffer's), or
        one whole gradient of its param's dtype; else None. Checked already: by ``apply``,
        or when the buffer was made."""
        if ours:
            pack = self._packs[0] if len(self._packs) == 1 else None
            return (pack.grad, *pack.segments) if pack and clipping_fast.wanted(pack.grad) else None
        if len(grads) == 1 and type(grads[0]) is np.ndarray and grads[0].flags.c_contiguous:
            flat = grads[0].reshape(-1)
            if flat.dtype == self._params[indices[0]].dtype and clipping_fast.wanted(flat):
                return flat, _FIRST, clipping_fast._whole(flat.size)
        return None

    def _decay(self, decaying, lr, fused):
        """Weight decay on the weights ``decaying``, before the rule (Muon decays by two rates)."""
        if self.weight_decay is not None:
            for w in decaying:
                scalars = {"weight_decay": cast(self.weight_decay, w.dtype), "lr": w.dtype.type(lr)}
                engine.run(decay, None, w, [], scalars, fused)

    def run_rule(self, g, var, slots, scalars, fused):
        """Run the rule over one (gradient, variable, slots) triple, in place: the engine's
        business (``engine.run``), unless a rule needs whole tensors (Lamb's norms, Ftrl's
        packet-wise ``pow``): such an optimizer sets ``per_tensor`` and overrides this."""
        engine.run(self.update, g, var, slots, scalars, fused)

    def _scratch(self, var):
        """An array of ``var``'s shape and dtype for a ``per_tensor`` rule's intermediate (Lamb's
        ``r``, Adafactor's ``u``) between its fused passes: a view of one buffer kept across
        steps, since a fresh array each step costs the kernel's zeroing of its pages."""
        buffer = getattr(self, "_scratch_buffer", None)
        if buffer is None or buffer.dtype != var.dtype or buffer.size < var.size:
            buffer = self._scratch_buffer = np.empty(var.size, var.dtype)
        return buffer[:var.size].reshape(var.shape)

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
        if self.per_tensor:  # whole tensors for the rule: packed buffers are stepped view by view
            whole = []
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
                if self.casts_gradients:
                    g = g.astype(var.dtype, copy=False)
                triples.append((g, var, [slots.get(k) for k in self._rule_slots]))
                if self._decays[i]:
                    decaying.append(var)
        return triples, decaying

    def _clip(self, grads, fused):
        # Keras: a clip value that is 0 or negative silently disables clipping.
        # The gradients are checked already: the clipping functions' own checks are skipped.
        if self.clipnorm and self.clipnorm > 0:
            return clipping.by_norm(grads, self.clipnorm, fused)
        if self.global_clipnorm and self.global_clipnorm > 0:
            return clipping.by_global_norm(grads, self.global_clipnorm, fused)
        if self.clipvalue and self.clipvalue > 0:
            return clipping.by_value(grads, self.clipvalue)
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
            validation.check_writeable(self._params, range(len(self._params)))
            for w, avg in zip(self._params, self._averages):
                w[...] = avg

    # --- configuration ----------------------------------------------------------------------

    def get_config(self):
        """Every constructor argument; ``type(opt).from_config(config)`` rebuilds the optimizer."""
        names = [n for n in inspect.signature(type(self).__init__).parameters if n not in ("self", "kwargs")]
        config = {n: getattr(self, n) for n in names}
        config["learning_rate"] = self._rate.config()
        return config
