"""The checks an optimizer makes, written once: all of them run before anything changes.

At construction, Keras's checks of the common arguments (``validate_common``; each
optimizer checks its own arguments in its constructor). When a class is defined, the rule
contract (``rule_contract``). At each step, every (gradient, param) pair and what the step
needs of them together (``check_pairs``, ``check_step``, ``check_memory``), and the
learning rate a schedule gives (``check_rate``); on ``load_state_dict``, every field
(``check_state``): so that a bad call raises with the parameters and the optimizer's state
exactly as they were.

Memory. A step writes each param in place while it reads the gradients, so a gradient
that shares memory with a param, or two params that share memory, would make the result
depend on the order of the writes (and the fused and NumPy paths differ in that order).
Both are refused. Checking every pair is O(N^2); instead each array's *owner* is read
(``a.base``: NumPy and CuPy point a view at the array that owns the memory). Arrays with
different owners cannot overlap, so the common case costs a few C-speed passes over the
lists (``check_memory``); only arrays that share an owner are compared by their byte
ranges, sorted, and then exactly (``np.shares_memory``).
"""

import inspect
import itertools
import math
import numbers
import operator
import sys

import numpy as np

from .. import checks
from ..backend import _kind, namespace

_GRAD_DTYPES = (np.dtype(np.float16),) + checks.FLOAT_DTYPES
_BASE = operator.attrgetter("base")
_WRITEABLE = operator.attrgetter("flags.writeable")
#: The keys of ``Optimizer.state_dict()``.
STATE_KEYS = ("iterations", "learning_rate", "slots", "ema", "accumulators")


def validate_common(opt):
    """Keras's checks of the common arguments, including what it lets through (KERAS_SEMANTICS §1)."""
    s = opt.gradient_accumulation_steps
    if s and isinstance(s, numbers.Real) and not s >= 2:  # 0/None disable it; 2.5 passes here
        raise ValueError(f"`gradient_accumulation_steps` must be an integer >= 2. "
                         f"Received: gradient_accumulation_steps={s!r}")
    if opt.use_ema:
        m = opt.ema_momentum
        if checks.is_real(m) and (m > 1 or m < 0):
            raise ValueError(f"`ema_momentum` must be in the range [0, 1]. Received: ema_momentum={m!r}")
        f = opt.ema_overwrite_frequency
        if f and (not isinstance(f, int) or f < 1):  # 0 is falsy, so accepted
            raise ValueError("`ema_overwrite_frequency` must be an integer >= 1 or None. "
                             f"Received: ema_overwrite_frequency={f!r}")
    clips = {k: getattr(opt, k) for k in ("clipnorm", "clipvalue", "global_clipnorm")}
    if sum(v is not None for v in clips.values()) > 1:
        raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. "
                         "Received: " + ", ".join(f"{k}={v!r}" for k, v in clips.items()))


def as_list(value, name):
    """``list(value)`` for the list arguments of ``apply``/``build``/``pack``; a bare array
    (which ``list`` would split into rows) or a non-iterable is a TypeError naming ``name``."""
    if type(value) is list:  # the common case, first
        return list(value)
    if _kind(value) is not None or isinstance(value, (str, bytes)):
        raise TypeError(f"`{name}` must be a list of arrays, one per param: pass [x] for a single "
                        f"array. Received: {name}={short_repr(value)} ({type(value).__name__})")
    try:
        return list(value)
    except TypeError:
        raise TypeError(f"`{name}` must be a list of arrays, one per param. "
                        f"Received: {name}={short_repr(value)} ({type(value).__name__})") from None


def native(dtype):
    """``dtype`` in the machine's byte order (``>f4`` -> ``float32``): the same numbers."""
    return dtype if dtype.isnative else dtype.newbyteorder("=")


def check_pairs(opt, grads, params, positions):
    """Each (grad, param) of a step (``positions``: their indices in the call): kinds,
    dtypes, shapes; before anything changes."""
    known = array_types()
    accumulating = opt.gradient_accumulation_steps
    for i, g, p in zip(positions, grads, params):
        # Two arrays of one known array type (the common case, checked quickly: a step
        # may have thousands of pairs) need only the dtype checks; anything else, all.
        if not (type(p) is type(g) and type(p) in known and p.dtype in checks.FLOAT_DTYPES):
            check_param(p, f"params[{i}]")
            if _kind(g) is None:
                raise TypeError(f"grads[{i}] must be a NumPy or CuPy array of floats (or None for no "
                                f"gradient), got {short_repr(g)} ({type(g).__name__})")
            try:
                namespace(p, g)
            except TypeError as error:
                raise TypeError(f"grads[{i}] and params[{i}]: {error}") from None
        if g.dtype not in _GRAD_DTYPES and native(g.dtype) not in _GRAD_DTYPES:
            raise TypeError(f"grads[{i}] has dtype {g.dtype}; gradients must be float16/32/64")
        if g.shape != p.shape:
            raise ValueError(f"grads[{i}] has shape {tuple(g.shape)} but params[{i}] has {tuple(p.shape)}")
        if accumulating and g.dtype != p.dtype and native(g.dtype) != native(p.dtype):
            raise TypeError(f"grads[{i}] is {g.dtype} for a {p.dtype} param: with gradient "
                            "accumulation the dtypes must match (Keras fails here too)")


def check_writeable(params, positions):
    """Every param the step writes is writeable (NumPy's flag; CuPy arrays always are)."""
    try:
        if all(map(_WRITEABLE, params)):  # C-speed for the common case
            return
    except AttributeError:  # CuPy arrays have no such flag
        pass
    for i, p in zip(positions, params):
        if not getattr(p.flags, "writeable", True):
            raise ValueError(f"params[{i}] is read-only (flags.writeable is False), and the optimizer "
                             "updates its params in place: make it writeable, or leave it out of the step")


def check_packs(packs):
    """The packed buffers a step writes (params and slots) are writeable: a view made from a
    buffer stays writeable after the buffer is made read-only, so each buffer is checked."""
    for pack in packs:
        for buffer in (pack.param, *pack.slots.values()):
            if not getattr(buffer.flags, "writeable", True):
                raise ValueError(f"params[{pack.indices[0]}] is packed into a read-only buffer "
                                 "(flags.writeable is False), and the optimizer updates it in place")


def check_step(opt, dtypes):
    """What the step needs of all its gradients together (``dtypes``: an iterable of theirs,
    read only when needed)."""
    s = opt.gradient_accumulation_steps
    if s and not isinstance(s, numbers.Integral):
        raise TypeError(f"gradient_accumulation_steps={s!r} is not an integer: Keras accepts it "
                        "at construction and fails at the first step, and so does scratchopt")
    if opt.global_clipnorm and opt.global_clipnorm > 0:
        dtypes = {native(d) for d in dtypes}
        if len(dtypes) > 1:
            raise TypeError(f"global_clipnorm needs gradients of one dtype, got {sorted(map(str, dtypes))} "
                            "(Keras fails here too)")


def check_rate(lr, where, python_float_to_float32=True):
    """The value a learning-rate callable returned: a real number (Python or NumPy, NaN and
    inf included) or a 0-d float array, as the scalar it stands for.

    ``python_float_to_float32``: the value becomes a float32 tensor if it is a Python float
    (a plain callable's, in Keras), and TF refuses a finite one beyond float32's range."""
    if isinstance(lr, np.ndarray) and lr.ndim == 0 and lr.dtype.kind == "f":
        lr = lr[()]
    if not checks.is_real(lr):
        raise TypeError(f"`learning_rate` must give a real number, but {where} returned "
                        f"{short_repr(lr)} ({type(lr).__name__})")
    out_of_range = isinstance(lr, int) and not -2**63 <= lr < 2**63
    if python_float_to_float32 and type(lr) is float and math.isfinite(lr):
        with np.errstate(over="ignore"):
            out_of_range = math.isinf(np.float32(lr))
    if out_of_range:
        raise ValueError(f"`learning_rate` is out of range: {where} returned {lr!r}, beyond what "
                         "Keras converts to a float32 tensor (it raises there too)")
    return lr


def check_memory(grads, params, positions, owners):
    """No gradient shares memory with a param (``positions``: the pairs' indices).

    ``owners`` is ``memory_owners(all params)``. The common case, every gradient owning
    its memory or viewing an array no param views, is decided at C speed; otherwise the
    byte ranges are compared (``check_disjoint``)."""
    ids, clean = owners
    if clean and ids.isdisjoint(map(id, grads)):
        bases = list(map(_BASE, grads))
        if _all_none(bases):
            return
        unique = dict(zip(map(id, bases), bases))
        unique.pop(id(None), None)
        if ids.isdisjoint(unique) and all(map(_owns, unique.values())):
            return
    named = [(f"grads[{i}]", g, False) for i, g in zip(positions, grads)]
    check_disjoint(named + [(f"params[{i}]", p, True) for i, p in zip(positions, params)])


def memory_owners(params):
    """``(ids, clean)``: the ids of ``params`` and of the arrays whose memory they view, and
    whether each of those owns its memory (a plain array without a ``base``)."""
    bases = list(map(_BASE, params))
    ids = set(map(id, params))
    ids.update(map(id, bases))
    ids.discard(id(None))
    unique = dict(zip(map(id, bases), bases))
    unique.pop(id(None), None)
    return ids, all(map(_owns, unique.values()))


def check_params_disjoint(params):
    """No two params share memory (at build: the params of a step are built ones)."""
    bases = list(map(_BASE, params))
    if _all_none(bases):  # each owns its memory (distinct: check_distinct)
        return
    check_disjoint([(f"params[{i}]", p, True) for i, p in enumerate(params)])


def check_disjoint(named):
    """``named``: ``(name, array, is_param)``; a ValueError naming the first two arrays that
    share memory, one of them a param. Byte ranges sorted by start, so each array is only
    compared with those whose ranges overlap its own (``may_share_memory``), then exactly."""
    spans = sorted(((lo, hi, k) for k, (_, a, _) in enumerate(named) for lo, hi in [_bounds(a)] if hi > lo))
    open_ = []  # (end, k) of the ranges still open at the current start
    for lo, hi, k in spans:
        open_ = [(end, j) for end, j in open_ if end > lo]
        for _, j in open_:
            (first, a, a_param), (second, b, b_param) = sorted((named[j], named[k]), key=_order)
            if (a_param or b_param) and _shares_memory(a, b):
                what = "would be stepped twice" if a_param and b_param else "is written while it is read"
                raise ValueError(f"{second} shares memory with {first}: the shared memory {what}. "
                                 "Pass arrays that do not overlap (a copy: x.copy())")
        open_.append((hi, k))


def _order(item):
    """params before grads, then by position: the message names them in that order."""
    name = item[0]
    return (not item[2], int(name[name.index("[") + 1:-1]))


def _all_none(values):
    """Whether every value is None, at C speed (``list.count(None)`` would compare each
    array it meets with None, elementwise)."""
    return not any(map(operator.is_not, values, itertools.repeat(None)))


def _owns(a):
    return a.base is None and type(a) in array_types()


def _bounds(a):
    """``[lo, hi)``: the bytes ``a`` spans (NumPy or CuPy; any strides). A NumPy scalar
    (a gradient may be one) holds its own value: it spans nothing a param could."""
    if a.size == 0 or isinstance(a, np.generic):
        return 0, 0
    start = a.__array_interface__["data"][0] if isinstance(a, np.ndarray) else a.data.ptr
    low = sum(s * (n - 1) for s, n in zip(a.strides, a.shape) if s < 0)
    high = sum(s * (n - 1) for s, n in zip(a.strides, a.shape) if s > 0)
    return start + low, start + high + a.itemsize


def _shares_memory(a, b):
    xp = namespace(a, b)
    exact = getattr(xp, "shares_memory", None)
    return True if exact is None else bool(exact(a, b))


def check_state(opt, state):
    """``load_state_dict``'s argument, every field, against this optimizer: returns
    ``(copies, iterations, learning_rate)`` once all of it is known to fit (``copies``: the
    (destination, source) arrays to copy)."""
    if not isinstance(state, dict):
        raise TypeError(f"`state` must be a dict from state_dict(). Received: state={short_repr(state)} "
                        f"({type(state).__name__})")
    if not opt.built:
        raise ValueError("call build(params) before load_state_dict(state)")
    missing = [k for k in STATE_KEYS if k not in state]
    if missing:
        raise ValueError(f"`state` lacks {', '.join(map(repr, missing))} (state_dict() gives "
                         f"{', '.join(map(repr, STATE_KEYS))})")
    iterations = state["iterations"]
    if not isinstance(iterations, numbers.Integral) or isinstance(iterations, (bool, np.bool_)):
        raise TypeError(f"state['iterations'] must be an int >= 0, got {iterations!r} ({type(iterations).__name__})")
    if iterations < 0:
        raise ValueError(f"state['iterations'] must be an int >= 0, got {iterations!r}")
    lr = state["learning_rate"]
    if lr is not None and not checks.is_real(lr):
        raise TypeError(f"state['learning_rate'] must be a number (or None with a schedule), got "
                        f"{short_repr(lr)} ({type(lr).__name__})")
    copies = []
    for key, ours in (("slots", opt._slots), ("ema", opt._averages), ("accumulators", opt._accumulators)):
        theirs = state[key]
        if theirs is not None and not isinstance(theirs, (list, tuple)):
            raise TypeError(f"state[{key!r}] must be a list (or None), got {short_repr(theirs)} ({type(theirs).__name__})")
        if (ours is None) != (theirs is None) or (ours is not None and len(ours) != len(theirs)):
            raise ValueError(f"state[{key!r}] does not match this optimizer's configuration: "
                             f"{_describe(theirs)} for {_describe(ours)}")
        for i, (a, b) in enumerate(zip(ours or (), theirs or ())):
            where = f"state[{key!r}][{i}]"
            if key != "slots":
                copies.append((a, b, where))
                continue
            if not isinstance(b, dict):
                raise TypeError(f"{where} must be a dict of slot arrays, got {short_repr(b)} ({type(b).__name__})")
            if set(a) != set(b):
                raise ValueError(f"{where} has {sorted(map(str, b))}, expected {sorted(a)}")
            copies += [(a[k], b[k], f"{where}[{k!r}]") for k in a]
    for dst, src, where in copies:
        if _kind(src) is None or isinstance(src, np.generic):
            raise TypeError(f"{where} must be an array like the optimizer's own, got "
                            f"{short_repr(src)} ({type(src).__name__})")
        if (namespace(dst) is not namespace(src) or dst.shape != src.shape
                or native(dst.dtype) != native(src.dtype)):
            raise ValueError(f"{where} is {type(src).__name__} {src.dtype}{tuple(src.shape)}, "
                             f"expected {type(dst).__name__} {dst.dtype}{tuple(dst.shape)}")
    return [(dst, src) for dst, src, _ in copies], int(iterations), lr


def _describe(arrays):
    return "None" if arrays is None else f"{len(arrays)} entries"


def short_repr(value, limit=60):
    """``repr(value)``, shortened: a list of a million floats is not a message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def rule_contract(cls):
    """The names of ``cls.update``'s slots, in its order, once they are checked against
    ``cls.slot_names``: slots reach the rule by name, so the two must name the same arrays."""
    parameters = inspect.signature(cls.update).parameters.values()
    arrays = [p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD]
    if arrays[:2] != ["g", "var"]:
        raise TypeError(f"{cls.__name__}.update must take (g, var, *slots, *, scalars...); "
                        f"its array parameters are {arrays}")
    rule_slots = arrays[2:]
    if sorted(rule_slots) != sorted(cls.slot_names) or len(set(cls.slot_names)) != len(cls.slot_names):
        raise TypeError(f"{cls.__name__}: update's slots {rule_slots} and slot_names "
                        f"{list(cls.slot_names)} must name the same arrays (a slot reaches the rule "
                        "as the parameter of its name)")
    return tuple(rule_slots)


def same_arrays(a, b):
    """Whether two lists hold the very same arrays, in order (a C-speed check)."""
    return len(a) == len(b) and all(map(operator.is_, a, b))


def array_types():
    """The array types a fast pair check accepts: NumPy's, and CuPy's once it is imported."""
    cupy = sys.modules.get("cupy")
    return (np.ndarray,) if cupy is None else (np.ndarray, cupy.ndarray)


def check_param(p, where):
    if _kind(p) is None:
        raise TypeError(f"{where} must be a NumPy or CuPy array, got {type(p).__name__}")
    if isinstance(p, np.generic):
        raise TypeError(f"{where} is a NumPy scalar; params must be arrays (they are updated in "
                        "place): pass a list of arrays")
    if p.dtype not in checks.FLOAT_DTYPES and native(p.dtype) not in checks.FLOAT_DTYPES:
        raise TypeError(f"{where} has dtype {p.dtype}; params must be float32 or float64")


def check_names(names, params):
    """``build``'s names: None, or one str (or None) per param."""
    if names is None:
        return [None] * len(params)
    names = as_list(names, "names")
    if len(names) != len(params):
        raise ValueError(f"got {len(names)} names for {len(params)} params: `names` needs one per param")
    for i, name in enumerate(names):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"names[{i}] must be a str (or None), got {short_repr(name)} ({type(name).__name__})")
    return names


def check_distinct(params):
    """The same array twice would be stepped twice: refused."""
    if len(set(map(id, params))) != len(params):
        first = {}
        for i, p in enumerate(params):
            if id(p) in first:
                raise ValueError(f"params[{i}] is params[{first[id(p)]}]: each param may appear once")
            first[id(p)] = i


def takes_step(fn):
    """Whether a learning-rate callable takes the step (else Keras calls it with nothing)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # no signature to read (some builtins): pass the step
        return True
    return any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
               or p.kind is p.VAR_POSITIONAL for p in parameters)
