"""The checks an optimizer makes, written once: all of them run before anything changes.

At construction, Keras's checks of the common arguments (``validate_common``; each
optimizer checks its own arguments in its constructor). When a class is defined, the rule
contract (``rule_contract``). At each step, every (gradient, param) pair and what the step
needs of them together (``check_pairs``, ``check_step``), so that a bad pair raises with
the parameters and the optimizer's state exactly as they were.
"""

import inspect
import numbers
import operator
import sys

import numpy as np

from .. import checks
from ..backend import namespace

_GRAD_DTYPES = (np.dtype(np.float16),) + checks.FLOAT_DTYPES


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


def check_pairs(opt, pairs):
    """Each (index, grad, param) of a step: kinds, dtypes, shapes; before anything changes."""
    known = array_types()
    for i, g, p in pairs:
        # Two arrays of one known array type (the common case, checked quickly: a step
        # may have thousands of pairs) need only the dtype checks; anything else, all.
        if not (type(p) is type(g) and type(p) in known and p.dtype in checks.FLOAT_DTYPES):
            check_param(p, f"params[{i}]")
            try:
                namespace(p, g)
            except TypeError as error:
                raise TypeError(f"grads[{i}] and params[{i}]: {error}") from None
        if g.dtype not in _GRAD_DTYPES:
            raise TypeError(f"grads[{i}] has dtype {g.dtype}; gradients must be float16/32/64")
        if g.shape != p.shape:
            raise ValueError(f"grads[{i}] has shape {tuple(g.shape)} but params[{i}] has {tuple(p.shape)}")
        if opt.gradient_accumulation_steps and g.dtype != p.dtype:
            raise TypeError(f"grads[{i}] is {g.dtype} for a {p.dtype} param: with gradient "
                            "accumulation the dtypes must match (Keras fails here too)")

def check_step(opt, dtypes):
    """What the step needs of all its gradients together (``dtypes``: theirs)."""
    s = opt.gradient_accumulation_steps
    if s and not isinstance(s, numbers.Integral):
        raise TypeError(f"gradient_accumulation_steps={s!r} is not an integer: Keras accepts it "
                        "at construction and fails at the first step, and so does scratchopt")
    if opt.global_clipnorm and opt.global_clipnorm > 0 and len(dtypes) > 1:
        raise TypeError(f"global_clipnorm needs gradients of one dtype, got {sorted(map(str, dtypes))} "
                        "(Keras fails here too)")


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
    try:
        namespace(p)
    except TypeError:
        raise TypeError(f"{where} must be a NumPy or CuPy array, got {type(p).__name__}") from None
    if isinstance(p, np.generic):
        raise TypeError(f"{where} is a NumPy scalar; params must be arrays (they are updated in place)")
    if p.dtype not in checks.FLOAT_DTYPES:
        raise TypeError(f"{where} has dtype {p.dtype}; params must be float32 or float64")


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
