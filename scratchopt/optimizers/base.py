"""What every optimizer shares, written once: the Keras pipeline around an update rule.

An optimizer file (``sgd.py``, ``adam.py``, ...) holds only its mathematics: an
elementwise ``update`` function and the per-step scalars it needs. Everything else is
here, in the order Keras's ``BaseOptimizer.apply`` runs it (KERAS_SEMANTICS §1)::

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

How the rule runs (``Optimizer._run_rule``, the one place that chooses): on NumPy arrays,
through a fused numba kernel compiled from the rule itself (``fused.py``; needs the
``fast`` extra) when every array is a C-contiguous float32/float64 array; on CuPy arrays,
through one CUDA kernel traced from the rule itself (``fused_gpu.py``); else as array
code, the reference. Each fused path gives its array path's bits. ``opt.backend = "numpy"`` or the environment variable
``SCRATCHOPT_BACKEND=numpy`` forces the reference path. ``params = opt.pack(params)``
puts all params of one dtype in one buffer, so that a step runs the rule once per dtype
instead of once per param (see ``pack``).
"""

import dataclasses
import inspect
import itertools
import numbers
import operator
import os
import re
import warnings

import numpy as np

from . import clipping
from ..backend import namespace
from ..numerics import as_dtype, tf_arithmetic, through_float32
from .engine import fused_cpu as fused, fused_gpu

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
_NUMERIC_COMMON = ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "ema_momentum",
                   "ema_overwrite_frequency", "loss_scale_factor", "gradient_accumulation_steps")
_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: Bytes per array in one block of the NumPy path (see ``Optimizer._run_rule``). Under
#: glibc's default mmap threshold (128 KiB), so the rule's temporaries are recycled by
#: malloc instead of being mapped (and page-faulted) afresh: larger blocks measured 3-6x
#: slower at 1e7 elements in ``benchmarks/block_size.py``.
BLOCK_BYTES = 1 << 16
_GRAD_DTYPES = (np.dtype(np.float16),) + _FLOAT_DTYPES
#: Array types that passed ``_check_param`` and ``namespace`` (``np.ndarray``, CuPy's ndarray).
_ARRAY_TYPES = {np.ndarray}
#: The values of ``Optimizer.backend`` and of the environment variable ``SCRATCHOPT_BACKEND``.
BACKENDS = ("auto", "numpy", "fused")


def _is_real(x):
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def decay(g, var, *, weight_decay, lr):
    """Decoupled weight decay, Keras's form, run just before the update rule: one more rule.

        w = w - (w * weight_decay) * lr

    The gradient is not used (it is passed as None). Written as a rule, the decay runs
    on the same paths as ``update`` (one fused pass over the weights on the CPU and on the
    GPU, or array code), instead of three array operations with their temporaries.
    """
    return (var - (var * weight_decay) * lr,)


class Optimizer:
    """Base class: subclasses declare ``defaults``, ``slots()``, ``scalars()`` and ``update``.

    * ``defaults``: the optimizer's own constructor arguments, ``learning_rate`` first, in
      Keras's order and with Keras's defaults. The common arguments (``weight_decay``,
      ``clipnorm``, ..., ``name``) are appended, so ``SGD(0.1, 0.9)`` binds like Keras.
    * ``slots()``: ``{name: in_use}``, the per-parameter state arrays, in ``update``'s order.
    * ``scalars(lr, step, dtype)``: the per-step scalars of ``update``, in ``dtype``.
    * ``update(g, var, *slots, **scalars) -> (var, *slots)``: the rule, one elementwise
      function of arrays or scalars; an unused slot is passed and returned as None.

    Examples
    --------
    Plain gradient descent as a new optimizer: no slots, one scalar. Clipping, weight
    decay, schedules, EMA, ... come with the base class.

    >>> import numpy as np
    >>> from scratchopt.optimizers import Optimizer
    >>> class GD(Optimizer):
    ...     defaults = {"learning_rate": 0.5}
    ...     @staticmethod
    ...     def update(g, var, *, lr):
    ...         return (var - lr * g,)
    ...     def scalars(self, lr, step, dtype):
    ...         return {"lr": lr}
    >>> w = np.array([1.0, 2.0, 3.0])
    >>> opt = GD()
    >>> opt.apply([np.array([2.0, -4.0, 0.0])], [w])  # w = w - 0.5 * g, in place
    >>> w
    array([0., 4., 3.])
    >>> opt.iterations
    1
    """

    defaults = {"learning_rate": 0.001}
    #: Which path runs the update rule (see ``BACKENDS``): ``"auto"`` takes the fused kernel
    #: (numba on NumPy arrays, CUDA on CuPy arrays) for the arrays it can run on and array
    #: code for the rest, ``"numpy"`` the array-code reference path always (NumPy, or CuPy
    #: for CuPy arrays), ``"fused"`` is ``"auto"`` that fails when NumPy params meet a
    #: machine without numba.
    #: Set it on an instance (``opt.backend = "numpy"``); under ``"auto"`` the environment
    #: variable ``SCRATCHOPT_BACKEND``, when set, decides instead.
    backend = "auto"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "defaults" not in cls.__dict__:
            return
        arguments = dict(cls.defaults)
        arguments.update({k: v for k, v in COMMON_ARGUMENTS.items() if k not in arguments})
        arguments["name"] = cls.__name__
        P = inspect.Parameter
        signature = inspect.Signature(
            [P("self", P.POSITIONAL_OR_KEYWORD)]
            + [P(k, P.POSITIONAL_OR_KEYWORD, default=v) for k, v in arguments.items()]
            + [P("kwargs", P.VAR_KEYWORD)]
        )

        def __init__(self, *args, **kwargs):
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            del arguments["self"]
            Optimizer._configure(self, arguments)

        __init__.__signature__ = signature
        __init__.__qualname__ = f"{cls.__name__}.__init__"
        __init__.__doc__ = f"Build a {cls.__name__}; arguments as Keras's (see the class docstring)."
        cls.__init__ = __init__

    # --- construction and validation ------------------------------------------------------

    def _configure(self, arguments):
        extra = arguments.pop("kwargs")
        if extra.pop("decay", None) is not None:
            warnings.warn("Argument `decay` is no longer supported and will be ignored.", stacklevel=3)
        if extra:
            raise ValueError(f"Argument(s) not recognized: {extra}")
        learning_rate = arguments.pop("learning_rate")
        self._config = arguments
        for key, value in arguments.items():
            setattr(self, key, value)
        self._validate_common()
        self._set_learning_rate(learning_rate, constructing=True)
        self.validate()
        for key in _NUMERIC_COMMON + tuple(k for k, v in self.defaults.items() if isinstance(v, float)):
            value = arguments.get(key)
            if key != "learning_rate" and value is not None and not _is_real(value):
                raise TypeError(f"`{key}` must be a number, got {key}={value!r} ({type(value).__name__})")
        self.built = False
        self._iterations = 0
        self._exclude_ids = set()
        self._exclude_pattern = None
        self._packs = []
        self._packed_grads = None  # what packed_gradients() hands out (see _packed_step)
        self._fused = False

    def _validate_common(self):
        """Keras's checks, including what it lets through (KERAS_SEMANTICS §1)."""
        s = self.gradient_accumulation_steps
        if s and isinstance(s, numbers.Real) and not s >= 2:  # 0/None disable it; 2.5 passes here
            raise ValueError(f"`gradient_accumulation_steps` must be an integer >= 2. "
                             f"Received: gradient_accumulation_steps={s!r}")
        if self.use_ema:
            m = self.ema_momentum
            if _is_real(m) and (m > 1 or m < 0):
                raise ValueError(f"`ema_momentum` must be in the range [0, 1]. Received: ema_momentum={m!r}")
            f = self.ema_overwrite_frequency
            if f and (not isinstance(f, int) or f < 1):  # 0 is falsy, so accepted
                raise ValueError("`ema_overwrite_frequency` must be an integer >= 1 or None. "
                                 f"Received: ema_overwrite_frequency={f!r}")
        clips = {k: getattr(self, k) for k in ("clipnorm", "clipvalue", "global_clipnorm")}
        if sum(v is not None for v in clips.values()) > 1:
            raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. "
                             "Received: " + ", ".join(f"{k}={v!r}" for k, v in clips.items()))

    def validate(self):
        """The optimizer's own argument checks (Keras's); subclasses override."""

    # --- the learning rate ----------------------------------------------------------------

    def _set_learning_rate(self, learning_rate, constructing=False):
        if callable(learning_rate):
            self._schedule = learning_rate
            # Keras calls a plain callable with no argument; a schedule gets the step.
            self._schedule_takes_step = _takes_step(learning_rate)
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
        if not _is_real(learning_rate):
            raise TypeError(f"`learning_rate` must be a number, got {learning_rate!r}")
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

    def slots(self):
        """``{name: in_use}`` for the per-parameter state of ``update``; subclasses override."""
        return {}

    def build(self, params, names=None):
        """Register ``params`` (and optional ``names``) and create zeroed state for each."""
        params = list(params)
        names = [None] * len(params) if names is None else list(names)
        if len(names) != len(params):
            raise ValueError(f"got {len(names)} names for {len(params)} params")
        for i, p in enumerate(params):
            _check_param(p, f"params[{i}]")
        if self.built:
            return
        self._params = params
        self._names = names
        self._index = {id(p): i for i, p in enumerate(params)}

        def zeros():
            return [namespace(p).zeros_like(p) for p in params]

        used = self.slots()
        self._slot_names = list(used)  # update's slot order, unused ones included (passed as None)
        self._slots = [{k: namespace(p).zeros_like(p) for k, on in used.items() if on} for p in params]
        self._averages = zeros() if self.use_ema else None
        self._accumulators = zeros() if self.gradient_accumulation_steps else None
        self._decays = [self._uses_weight_decay(p, n) for p, n in zip(params, names)]
        self.built = True

    def pack(self, params, names=None):
        """Move ``params`` into one flat buffer per dtype; return the arrays to use from now on.

        ``params = opt.pack(params)`` builds the optimizer if needed (``names`` as in
        ``build``), copies the params of each dtype, in order, into one contiguous buffer,
        and returns views into it: one array per param, same shape, same values (C order).
        The slots (``m``, ``v``, ...) get matching buffers, and any state they already hold
        is kept. A step in which every param of a dtype has a gradient then runs the update
        rule once over that dtype's whole buffer (one fused kernel) instead of once per
        param, with the same bits.

        From now on the returned views *are* the params: let the model read and update
        those; the arrays passed in are copies the optimizer no longer knows (``apply``
        refuses them). What is per tensor stays per tensor: ``clipnorm`` and
        ``global_clipnorm`` act on each gradient before the gradients are gathered into one
        buffer, weight decay skips excluded params, and a step where some param of a dtype
        has no gradient steps that dtype's params one by one. NumPy and CuPy params are
        packed alike, one buffer per dtype and device (on CuPy the step is then one CUDA
        kernel per dtype: ``fused_gpu.py``).
        """
        params = list(params)
        for i, p in enumerate(params):
            _check_param(p, f"params[{i}]")
        if self._packs:
            raise ValueError("this optimizer's params are already packed")
        if self.built and (len(params) != len(self._params)
                           or any(p is not q for p, q in zip(params, self._params))):
            raise ValueError("pack(params) on a built optimizer needs the params it was built "
                             "with, in the same order")
        self.build(params, names)
        views = list(params)
        slots = [dict(s) for s in self._slots]
        for key in dict.fromkeys(_pack_key(p) for p in params):
            indices = [i for i, p in enumerate(params) if _pack_key(p) == key]
            ends = itertools.accumulate((params[i].size for i in indices), initial=0)
            pack = _Pack(indices, list(itertools.pairwise(ends)), all(self._decays[i] for i in indices))
            pack.param, new = pack.copy_in([params[i] for i in indices])
            for i, view in zip(indices, new):
                views[i] = view
            for name in self._slot_names:
                flat = None
                if name in slots[indices[0]]:
                    flat, new = pack.copy_in([slots[i][name] for i in indices])
                    for i, view in zip(indices, new):
                        slots[i][name] = view
                pack.slots.append(flat)
            self._packs.append(pack)
        self._params = views
        self._slots = slots
        self._index = {id(p): i for i, p in enumerate(views)}
        return list(views)

    def packed_gradients(self):
        """Zeroed gradient arrays laid out like the packed params, one per param (after ``pack``).

        Optional: write each step's gradients into these (``grads[i][...] = ...``, or
        ``out=grads[i]``) and pass them to ``apply``; the step then reads each dtype's
        gradient buffer directly instead of first copying the gradients into one. (Loss
        scaling, gradient accumulation and clipping make new gradient arrays, which are
        copied as usual.) The same arrays are returned on every call.
        """
        if not self._packs:
            raise ValueError("call pack(params) before packed_gradients()")
        views = [None] * len(self._params)
        for pack in self._packs:
            if pack.grad is None:
                zeros = [namespace(self._params[i]).zeros_like(self._params[i]) for i in pack.indices]
                pack.grad, pack.grad_views = pack.copy_in(zeros)
            for i, view in zip(pack.indices, pack.grad_views):
                views[i] = view
        self._packed_grads = views
        return list(views)

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
        if self._packed_step(grads, params):
            return
        params = self._params_for(grads, params)
        pairs = [(i, g, p) for i, (g, p) in enumerate(zip(grads, params)) if g is not None]
        if not pairs:
            raise ValueError("No gradients provided for any variable.")
        if len(pairs) < len(grads):
            warnings.warn(f"Gradients do not exist for {len(grads) - len(pairs)} of the params.", stacklevel=2)
        self._check_pairs(pairs)
        self._fused = self._fused_wanted(p for _, _, p in pairs)
        if not self.built:
            self.build(params)
        grads = [g for _, g, _ in pairs]
        indices = [self._index[id(p)] for _, _, p in pairs]
        with tf_arithmetic():  # flush-to-zero as TF's CPU kernels; inf/NaN without warnings
            self._step(grads, indices)
        self._iterations += 1

    def _packed_step(self, grads, params):
        """The step straight on the packed buffers, when nothing needs the tensors one by one.

        That is when ``grads`` are the arrays ``packed_gradients()`` handed out (so each
        dtype's gradients already lie in one buffer), ``params`` are the packed views, and
        no option works per tensor or on copies of the gradients (loss scaling, gradient
        accumulation, clipping, a weight decay that excludes some params of a buffer). The
        step then costs a few operations per buffer and none per tensor: the same bits as
        the general path (``_update``), which would walk the same buffers after checking
        every pair. Returns whether it took the step.
        """
        views = self._packed_grads
        if (views is None or len(grads) != len(views) or not all(map(operator.is_, grads, views))
                or params is not None and (len(params) != len(self._params)
                                           or not all(map(operator.is_, params, self._params)))
                or self.loss_scale_factor is not None or self.gradient_accumulation_steps
                or any(c and c > 0 for c in (self.clipnorm, self.global_clipnorm, self.clipvalue))
                or self.weight_decay is not None and not all(pack.decays for pack in self._packs)):
            return False
        self._fused = self._fused_wanted(pack.param for pack in self._packs)
        with tf_arithmetic():
            lr = self._current_learning_rate()
            if self.weight_decay is not None:
                self._decay_weights([pack.param for pack in self._packs], lr)
            for pack in self._packs:
                dtype = pack.param.dtype
                scalars = self.scalars(dtype.type(lr), self.iterations, dtype)
                self._run_rule(pack.grad, pack.param, list(pack.slots), scalars)
            if self.use_ema:
                self._update_moving_averages()
        self._iterations += 1
        return True

    def _fused_wanted(self, params):
        """Whether this step may use the fused kernels (``backend`` and SCRATCHOPT_BACKEND)."""
        backend = self.backend
        if backend == "auto":
            backend = os.environ.get("SCRATCHOPT_BACKEND") or "auto"
            where = "the environment variable SCRATCHOPT_BACKEND"
        else:
            where = "opt.backend"
        if backend not in BACKENDS:
            raise ValueError(f"{where} is {backend!r}; expected one of {', '.join(BACKENDS)}")
        if backend == "numpy":
            return False
        if backend == "fused" and not fused.available() and any(isinstance(p, np.ndarray) for p in params):
            raise ImportError(f"{where} is 'fused', which needs numba: pip install 'scratchopt[fast]'")
        return True

    def _params_for(self, grads, params):
        if params is None:
            if not self.built:
                raise ValueError("pass `params` on the first call, or call `build(params)` first")
            params = self._params
        else:
            params = list(params)
            if self.built:
                for i, p in enumerate(params):
                    if id(p) not in self._index:
                        raise ValueError(f"Unknown parameter at params[{i}]: this optimizer can only "
                                         "be called for the params it was built with.")
        if len(grads) != len(params):
            raise ValueError(f"got {len(grads)} gradients for {len(params)} params")
        return params

    def _check_pairs(self, pairs):
        s = self.gradient_accumulation_steps
        if s and not isinstance(s, numbers.Integral):
            raise TypeError(f"gradient_accumulation_steps={s!r} is not an integer: Keras accepts it "
                            "at construction and fails at the first step, and so does scratchopt")
        for i, g, p in pairs:
            # Two arrays of one array type already seen to be NumPy's or CuPy's (the common
            # case, checked quickly: a step may have thousands of pairs) need only the dtype
            # checks; anything else, all checks.
            if not (type(p) is type(g) and type(p) in _ARRAY_TYPES and p.dtype in _FLOAT_DTYPES):
                _check_param(p, f"params[{i}]")
                try:
                    namespace(p, g)
                except TypeError as error:
                    raise TypeError(f"grads[{i}] and params[{i}]: {error}") from None
                if type(p) is type(g):
                    _ARRAY_TYPES.add(type(p))
            if g.dtype not in _GRAD_DTYPES:
                raise TypeError(f"grads[{i}] has dtype {g.dtype}; gradients must be float16/32/64")
            if g.shape != p.shape:
                raise ValueError(f"grads[{i}] has shape {tuple(g.shape)} but params[{i}] has {tuple(p.shape)}")
            if self.gradient_accumulation_steps and g.dtype != p.dtype:
                raise TypeError(f"grads[{i}] is {g.dtype} for a {p.dtype} param: with gradient "
                                "accumulation the dtypes must match (Keras fails here too)")
        dtypes = {g.dtype for _, g, _ in pairs}  # dtype objects: str(dtype) costs ~10 us each
        if self.global_clipnorm and self.global_clipnorm > 0 and len(dtypes) > 1:
            raise TypeError(f"global_clipnorm needs gradients of one dtype, got {sorted(map(str, dtypes))} "
                            "(Keras fails here too)")

    def _step(self, grads, indices):
        if self.loss_scale_factor is not None:
            grads = [g / as_dtype(self.loss_scale_factor, g.dtype) for g in grads]
        s = self.gradient_accumulation_steps
        if not s:
            self._update(grads, indices)
        elif (self._iterations + 1) % s == 0:
            accumulated = [self._accumulators[i] for i in indices]
            self._update([(g + a) / as_dtype(s, g.dtype) for g, a in zip(grads, accumulated)], indices)
            for a in self._accumulators:  # Keras zeroes them all, even those without a gradient now
                a[...] = 0
        else:
            for g, i in zip(grads, indices):
                self._accumulators[i][...] = self._accumulators[i] + g
        if self.use_ema:
            self._update_moving_averages()

    def _update(self, grads, indices):
        """Clip, decay the weights, then run the rule on each parameter (or packed buffer)."""
        grads = self._clip(grads)
        lr = self._current_learning_rate()
        # A packed buffer is stepped whole when each of its params has a gradient this step;
        # the others (and every param of an unpacked optimizer) are stepped one by one.
        present = set(indices)
        whole = [pack for pack in self._packs if present.issuperset(pack.indices)]
        in_whole = {i for pack in whole for i in pack.indices}
        if self.weight_decay is not None:
            # Elementwise, so a whole buffer decays as its params would one by one; a buffer
            # holding an excluded param decays param by param.
            flat = [pack for pack in whole if all(self._decays[i] for i in pack.indices)]
            done = {i for pack in flat for i in pack.indices}
            decaying = [pack.param for pack in flat] + [
                self._params[i] for i in indices if self._decays[i] and i not in done]
            self._decay_weights(decaying, lr)
        scalars = {}

        def scalars_for(dtype):
            if dtype not in scalars:
                scalars[dtype] = self.scalars(dtype.type(lr), self.iterations, dtype)
            return scalars[dtype]

        by_index = dict(zip(indices, grads))
        for pack in whole:
            g = pack.gather([by_index[i] for i in pack.indices])
            self._run_rule(g, pack.param, list(pack.slots), scalars_for(pack.param.dtype))
        for g, i in zip(grads, indices):
            if i in in_whole:
                continue
            var = self._params[i]
            slots = [self._slots[i].get(k) for k in self._slot_names]
            self._run_rule(g.astype(var.dtype, copy=False), var, slots, scalars_for(var.dtype))

    def _decay_weights(self, weights, lr):
        """The ``decay`` rule on each array of ``weights`` (in place), before the update."""
        for w in weights:
            scalars = {"weight_decay": through_float32(self.weight_decay, w.dtype), "lr": w.dtype.type(lr)}
            self._run_rule(None, w, [], scalars, rule=decay)

    def _run_rule(self, g, var, slots, scalars, rule=None):
        """``var, *slots = rule(g, var, *slots, **scalars)``, written back in place.

        ``rule`` is the optimizer's ``update`` unless given (``decay``, the weight decay).

        A fused kernel runs it when this step allows it (``backend``) and the arrays suit
        it: on C-contiguous NumPy float32/float64 arrays, the rule compiled by numba into
        one loop (``fused.py``, when numba is installed); on CuPy float32/float64 arrays of
        one shape, the rule traced into one CUDA kernel (``fused_gpu.py``). The built-in
        rules always compile; a custom one that cannot falls back with a warning. Otherwise the rule runs as NumPy (or CuPy) array code,
        the reference path: on NumPy a large array goes through it in blocks of
        ``BLOCK_BYTES``, so the rule's temporaries stay in the CPU cache instead of
        streaming through memory (``python benchmarks/block_size.py`` measures it). The
        rule is elementwise, so blocks give the same bits as one whole-array call, and
        the fused loop the same bits as both.
        """
        rule = rule or self.update
        arrays = [g, var] + slots
        if self._fused:
            kernel = fused if isinstance(var, np.ndarray) else fused_gpu
            if kernel.available() and kernel.eligible(arrays) and kernel.run(rule, arrays, scalars):
                return
        block = BLOCK_BYTES // var.itemsize
        if (var.size <= block or namespace(var) is not np
                or not all(a is None or a.flags.c_contiguous for a in arrays)):
            _write_back([var] + slots, rule(g, var, *slots, **scalars))
            return
        flat = [None if a is None else a.reshape(-1) for a in arrays]
        for start in range(0, var.size, block):
            part = [None if a is None else a[start:start + block] for a in flat]
            _write_back(part[1:], rule(*part, **scalars))

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
        lr = self._schedule if self._schedule is not None else float(self._lr)
        return {"learning_rate": lr, **{key: getattr(self, key) for key in self._config}}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


@dataclasses.dataclass(eq=False)
class _Pack:
    """The params of one dtype in one flat buffer (``Optimizer.pack``), and their slots."""

    indices: list  # the params in the buffer, by index, in buffer order
    bounds: list  # (start, stop) of each in the buffer
    decays: bool  # whether weight decay applies to every param in it (else it decays param by param)
    param: np.ndarray = None
    slots: list = dataclasses.field(default_factory=list)  # flat slot buffers, update's order (None: unused)
    grad: np.ndarray = None  # packed_gradients(): the caller writes gradients here
    grad_views: list = None
    scratch: np.ndarray = None  # where other gradients are gathered

    @property
    def size(self):
        return self.bounds[-1][1] if self.bounds else 0

    def copy_in(self, arrays):
        """One flat buffer holding ``arrays`` (in C order), and views of it shaped like them."""
        flat = namespace(arrays[0]).empty(self.size, arrays[0].dtype)
        views = []
        for a, (lo, hi) in zip(arrays, self.bounds):
            flat[lo:hi] = a.reshape(-1)
            views.append(flat[lo:hi].reshape(a.shape))
        return flat, views

    def gather(self, grads):
        """The gradients of this buffer's params as one flat array in its dtype."""
        if self.grad_views is not None and all(g is v for g, v in zip(grads, self.grad_views)):
            return self.grad  # written in place by the caller: nothing to copy
        xp = namespace(self.param)
        if self.scratch is None:
            self.scratch = xp.empty(self.size, self.param.dtype)
        # Cast to the param dtype on the way, by the same conversion as ``astype``.
        return xp.concatenate([g.reshape(-1) for g in grads], out=self.scratch, casting="same_kind")


def _pack_key(p):
    """Params share a buffer when they share a dtype and an array module (device)."""
    return p.dtype, namespace(p).__name__


def _write_back(states, results):
    for state, new in zip(states, results):
        if state is not None:
            state[...] = new


def _check_param(p, where):
    try:
        xp = namespace(p)
    except TypeError:
        raise TypeError(f"{where} must be a NumPy or CuPy array, got {type(p).__name__}") from None
    if isinstance(p, np.generic):
        raise TypeError(f"{where} is a NumPy scalar; params must be arrays (they are updated in place)")
    if p.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{where} has dtype {p.dtype}; params must be float32 or float64")
    del xp


def _takes_step(fn):
    """Whether a learning-rate callable takes the step (else Keras calls it with nothing)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # no signature to read (some builtins): pass the step
        return True
    return any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
               or p.kind is p.VAR_POSITIONAL for p in parameters)
