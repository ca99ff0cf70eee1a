"""The fused GPU path: an optimizer's own ``update`` rule, traced into one CuPy kernel.

On CuPy arrays the reference path runs the rule as array code: every ``+ - * / sqrt`` is
a kernel launch of its own that reads its operands from GPU memory and writes a
temporary array back. Here the *same function* is called once with symbols in place of
the arrays. Each operation it performs is recorded, in order, as one line of CUDA C, and
the lines become the body of a ``cupy.ElementwiseKernel``: one launch, each element read
once and written once. Adam's rule, as the kernel runs it::

    >>> from scratchopt.optimizers import adam
    >>> names = ("alpha", "one_minus_beta_1", "one_minus_beta_2", "epsilon")
    >>> kernel = trace(adam.update, (False, False, False, False, True), names, {})
    >>> print(kernel.operation)
    T _0 = g - m;
    T _1 = _0 * one_minus_beta_1;
    T _2 = m + _1;
    T _3 = g * g;
    T _4 = _3 - v;
    T _5 = _4 * one_minus_beta_2;
    T _6 = v + _5;
    T _7 = _2 * alpha;
    T _8 = sqrt(_6);
    T _9 = _8 + epsilon;
    T _10 = _7 / _9;
    T _11 = var - _10;
    var = _11;
    m = _2;
    v = _6;
    >>> kernel.in_params, kernel.out_params
    ('T g, T alpha, T one_minus_beta_1, T one_minus_beta_2, T epsilon', 'T var, T m, T v')

The unused slot (``v_max``, AMSGrad's) was passed as ``None``, so the rule's
``if v_max is not None`` branch is simply not taken; a ``bool`` scalar (SGD's
``nesterov``) is passed as itself and picks its branch the same way. There is no second
copy of the math: change ``adam.update`` and this kernel follows.

Why the bits are the CuPy array path's, bit for bit (``parity_tests/test_gpu.py``):

* ``--fmad=false``: NVCC and NVRTC otherwise contract ``a * b + c`` into one fused
  multiply-add, rounded once instead of twice. Without contraction each line above is
  one IEEE-rounded operation, which is what each separate CuPy ufunc launch does.
* division and ``sqrt`` are IEEE round-to-nearest (CUDA's defaults ``-prec-div=true``,
  ``-prec-sqrt=true``; no ``--use_fast_math``), as in CuPy's ``true_divide`` and ``sqrt``.
* ``maximum``/``minimum`` are written as CuPy writes its ufuncs: NaN wins.
* scalars reach the kernel in the array dtype (``T``), as they reach the array code.

Against the NumPy (CPU) path the same reasoning gives the same bits, with one exception
that is measured rather than assumed: the CPU path flushes subnormals to zero (TF's CPU
kernels do; ``numerics.flush_denormals``) and the GPU keeps them, so values below
float32's 1.18e-38 (float64's 2.2e-308) can differ. The clipping norms are sums, and a
GPU sums in another order than the CPU: with ``clipnorm``/``global_clipnorm`` the two
devices differ in the last bits of the norm (``benchmarks/README.md`` gives the measured
bound).

CuPy is optional (``pip install scratchopt[gpu]``) and imported only when a CuPy array
reaches a step. Each kernel (rule, unused slots, bool scalars) is built on first use and
compiled by CuPy per dtype, then cached (CuPy also caches it on disk).
``engine.run`` chooses this path for CuPy float32/float64 arrays of one shape
unless ``opt.backend`` / ``SCRATCHOPT_BACKEND`` is ``"numpy"``.
"""

import dataclasses
import functools
import sys

import numpy as np

from . import fusion

#: Compiler options of every kernel: no multiply-add contraction (see the module docstring).
OPTIONS = ("--fmad=false",)
PATH = "fused CuPy path"
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_fallbacks = fusion.Fallbacks(PATH)

#: The NumPy ufuncs a rule may call, and the CUDA C each becomes (``{0}``, ``{1}``: operands).
UFUNCS = {
    "add": "{0} + {1}",
    "subtract": "{0} - {1}",
    "multiply": "{0} * {1}",
    "true_divide": "{0} / {1}",
    "divide": "{0} / {1}",
    "negative": "-{0}",
    "sqrt": "sqrt({0})",
    "absolute": "abs({0})",
    "square": "{0} * {0}",
    "maximum": "isnan({0}) ? {0} : isnan({1}) ? {1} : max({0}, {1})",
    "minimum": "isnan({0}) ? {0} : isnan({1}) ? {1} : min({0}, {1})",
}


@functools.cache
def available():
    """Whether CuPy imports and sees a CUDA device (``backend.gpu_available``)."""
    from ...backend import gpu_available

    return gpu_available()


def eligible(arrays):
    """Whether the kernel can run on ``arrays`` (``[g, var, *slots]``, None for unused slots):
    CuPy arrays of one float32/float64 dtype and of ``var``'s shape (any strides)."""
    cupy = sys.modules.get("cupy")
    var = arrays[1]
    if cupy is None or type(var) is not cupy.ndarray or var.dtype not in _DTYPES:
        return False
    return all(a is None or (type(a) is cupy.ndarray and a.dtype == var.dtype and a.shape == var.shape)
               for a in arrays)


def run(rule, arrays, scalars):
    """``var, *slots = rule(g, var, *slots, **scalars)``, in place, in one CuPy kernel.

    ``arrays`` must be ``eligible``. Returns True; or False, having changed nothing, when
    the rule cannot be traced or compiled (a custom rule may branch on array values): the
    caller then runs the CuPy array path, and a ``RuntimeWarning`` says why, once per kernel
    (``fusion.Fallbacks``: other inputs of the same rule still try the fused path).
    """
    literals, values = fusion.split_scalars(scalars, arrays[1].dtype.type)
    missing = tuple(a is None for a in arrays)
    if _fallbacks.failed(rule) and _failure_key(rule, missing, scalars, literals, arrays, values) in _fallbacks:
        return False
    import cupy

    try:
        kernel = _kernels.get(rule, missing, tuple(scalars), tuple(literals))
        # CuPy compiles a new dtype before launching: an error here means nothing was written.
        kernel(*arrays[:1 if arrays[0] is not None else 0], *values, *[a for a in arrays[1:] if a is not None])
    except (TypeError, ValueError, cupy.cuda.compiler.CompileException) as error:
        _fallbacks.add(_failure_key(rule, missing, scalars, literals, arrays, values), error)
        return False
    return True


def _failure_key(rule, missing, scalars, literals, arrays, values):
    """The kernel cache's key, plus the dtype and the scalar values' types."""
    return rule, missing, tuple(scalars), tuple(literals), arrays[1].dtype, tuple(map(type, values))


def _build(rule, missing, scalar_names, literals):
    import cupy

    text = trace(rule, missing, scalar_names, dict(literals))
    return cupy.ElementwiseKernel(text.in_params, text.out_params, text.operation, text.name, options=OPTIONS)


_kernels = fusion.KernelCache(_build)  # (rule, missing, scalar names, literals) -> kernel


@dataclasses.dataclass
class Kernel:
    """What ``trace`` makes of a rule: an ``ElementwiseKernel``'s parameters and body."""

    in_params: str
    out_params: str
    operation: str
    name: str
    ops: list  # the recorded operations: (result, ufunc name, operands), in order
    outputs: dict  # state array name -> the value it is assigned


class _Symbol:
    """One value of the rule, by name; arithmetic on it is recorded instead of computed."""

    __slots__ = ("name", "tape")

    def __init__(self, tape, name):
        self.tape, self.name = tape, name

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or kwargs or ufunc.__name__ not in UFUNCS:
            raise TypeError(f"the fused CuPy path cannot trace np.{ufunc.__name__}"
                            f"{'.' + method if method != '__call__' else ''}"
                            f"{' with ' + ', '.join(kwargs) if kwargs else ''}")
        return self.tape.record(ufunc.__name__, inputs)

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"the fused CuPy path cannot trace np.{func.__name__} (elementwise ufuncs only)")

    def __bool__(self):
        raise TypeError("the rule branches on an array value (only `is None` tests and bool "
                        "scalars can be traced)")

    def __add__(self, other):
        return self.tape.record("add", (self, other))

    def __radd__(self, other):
        return self.tape.record("add", (other, self))

    def __sub__(self, other):
        return self.tape.record("subtract", (self, other))

    def __rsub__(self, other):
        return self.tape.record("subtract", (other, self))

    def __mul__(self, other):
        return self.tape.record("multiply", (self, other))

    def __rmul__(self, other):
        return self.tape.record("multiply", (other, self))

    def __truediv__(self, other):
        return self.tape.record("true_divide", (self, other))

    def __rtruediv__(self, other):
        return self.tape.record("true_divide", (other, self))

    def __neg__(self):
        return self.tape.record("negative", (self,))


class _Tape:
    def __init__(self):
        self.ops = []

    def record(self, ufunc, inputs):
        operands = [self.operand(x) for x in inputs]
        result = _Symbol(self, f"_{len(self.ops)}")
        self.ops.append((result.name, ufunc, operands))
        return result

    def operand(self, x):
        """A symbol's name, or a Python number as a C literal in the array dtype (NumPy 2
        rounds a Python number to the array's dtype: ``T(...)`` does the same)."""
        if isinstance(x, _Symbol):
            return x.name
        if isinstance(x, (int, float)) and not isinstance(x, (bool, np.generic)):
            return float(x)
        raise TypeError(f"the fused CuPy path cannot trace a {type(x).__name__} constant in the "
                        "rule (Python numbers only: a NumPy scalar or array has a dtype of its own)")


def _c(operand):
    return operand if isinstance(operand, str) else f"T({float(operand).hex()})"


def trace(rule, missing, scalar_names, literals):
    """The kernel for ``rule``: call it on symbols and record what it does.

    ``missing[k]`` says whether the rule's k-th array argument is None this time;
    ``literals`` maps the bool/None scalars (passed to the rule as themselves) to their
    values; the other scalars become kernel parameters of the array dtype ``T``.
    """
    array_names, keyword_names = fusion.rule_signature(rule, missing, scalar_names, reserved=("i",))  # CuPy's loop index
    tape = _Tape()
    arrays = [None if gone else _Symbol(tape, n) for n, gone in zip(array_names, missing)]
    values = [n for n in scalar_names if n not in literals]
    keywords = {n: literals[n] if n in literals else _Symbol(tape, n) for n in keyword_names}
    results = rule(*arrays, **keywords)
    states = [n for n, gone in zip(array_names[1:], missing[1:]) if not gone]
    if len(results) != len(array_names) - 1:
        raise TypeError(f"{rule.__qualname__} returned {len(results)} values for {len(array_names) - 1} states")
    outputs = {}
    for name, gone, value in zip(array_names[1:], missing[1:], results):
        if gone:
            if value is not None:
                raise TypeError(f"{rule.__qualname__} returned a value for the unused {name}")
            continue
        if not isinstance(value, _Symbol):
            raise TypeError(f"{rule.__qualname__} returned {value!r} for {name}")
        outputs[name] = value.name
    lines = [f"T {r} = {UFUNCS[u].format(*map(_c, operands))};" for r, u, operands in tape.ops]
    # Every new value is computed before any state is written: a rule that returns one
    # input state as another (a swap) still reads the old values.
    copies = {}
    for name, value in outputs.items():
        if value in states and value != name:
            copies[value] = f"_in_{value}"
            lines.append(f"T _in_{value} = {value};")
    lines += [f"{n} = {copies.get(v, v)};" for n, v in outputs.items() if v != n]
    module = rule.__module__.rsplit(".", 1)[-1]
    identifier = "".join(c if c.isalnum() else "_" for c in f"{module}_{rule.__qualname__}")
    inputs = ([] if missing[0] else [array_names[0]]) + values
    return Kernel(in_params=", ".join(f"T {n}" for n in inputs),
                  out_params=", ".join(f"T {n}" for n in states),
                  operation="\n".join(lines), name=f"scratchopt_{identifier}", ops=tape.ops, outputs=outputs)
