"""The fused CPU path: an optimizer's own ``update`` rule, compiled by numba into one loop.

The NumPy path runs a rule such as Adam's ``update(g, var, m, v, v_max, *, alpha, ...)`` on
whole arrays: every ``+``, ``*`` and ``sqrt`` is one pass over memory with a temporary
array. Here the *same function* is compiled by numba for scalars and called once per
element inside a generated loop, so each element is read once and written once::

    def _chunk(g, var, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
        for _i in range(var.size):
            _r = _rule(g[_i], var[_i], m[_i], v[_i], None, alpha, one_minus_beta_1, ...)
            var[_i] = _r[0]
            m[_i] = _r[1]
            v[_i] = _r[2]

The loop is generated from the rule's signature (its array parameters, then its keyword
scalars) and from which slots are unused this time: an unused slot is passed as the
literal ``None``, so numba prunes the rule's ``if slot is None`` branches, and a ``bool``
scalar (SGD's ``nesterov``) is written into the loop as a literal. There is no second
copy of the math: change ``adam.update`` and this path follows.

Why the bits are the NumPy path's, bit for bit (``parity_tests/test_fused.py`` checks it):

* ``fastmath=False``: no reassociation, no reciprocal tricks, and no FMA contraction
  (LLVM only fuses a multiply and an add when the IR allows it, which numba does only
  under fastmath). Each ``+ - * / sqrt`` is one IEEE-rounded operation, as in NumPy;
  vectorising an elementwise loop does not change that.
* ``error_model="numpy"``: a division by zero gives inf/NaN as in NumPy. (numba's default
  ``"python"`` model also adds a zero check to every division, which stops the loop from
  vectorising: 4-6x slower for Adam and RMSprop.)
* scalars arrive in the array dtype (a Python float is rounded to it, as NumPy 2 treats
  a Python float next to a float32 array), so float32 math stays float32.
* flush-to-zero: the NumPy path runs with FTZ|DAZ set in the calling thread's MXCSR
  (``numerics.flush_denormals``), as TF's CPU kernels do. numba's worker threads keep
  the mode they were created with, not the caller's current one, so the parallel kernel
  reads the caller's FTZ/DAZ bits and each chunk sets them in its own thread's MXCSR
  (``ldmxcsr``), then restores the thread's own. The serial kernel runs in the calling
  thread and needs nothing. (The workers are started outside flush-to-zero, so that
  they do not flush in the rest of the process's numba code: ``_start_threads``.)

numba is optional (``pip install scratchopt[fast]``): it is imported on the first fused
step, never by ``import scratchopt``. Each kernel (rule, unused slots, dtype, serial or
parallel) is compiled on its first use, in about half a second, and kept for the
process. ``engine.run`` chooses this path when numba imports and every array is
a C-contiguous, aligned NumPy float32/float64 array; ``SCRATCHOPT_BACKEND=numpy`` or
``opt.backend = "numpy"`` forces the NumPy reference path.
"""

import functools
import platform
import types

import numpy as np

from ...numerics import FTZ_DAZ, sums_fast
from .. import clipping_fast
from ..clipping_fast import GlobalNorm
from . import fusion

#: From this many bytes per array on, the kernel runs in parallel (numba ``prange``, one
#: chunk per thread); below it, serially in the calling thread. Measured with
#: ``python benchmarks/fused_crossover.py --rule`` on this project's 2-core AMD EPYC (numba
#: 0.68, OpenMP layer, a quiet machine), Adam, medians, serial vs parallel:
#:   float32: 7.4 vs 8.8 us at 2e4 elements, 9.7 vs 9.8 at 3.5e4, 10.6 vs 10.4 at 4e4,
#:            13.6 vs 11.5 at 5e4, 18.0 vs 13.4 at 7e4, 430 vs 320 at 1e6;
#:   float64: 9.0 vs 9.3 us at 1e4, 10.7 vs 10.3 at 1.5e4, 12.6 vs 11.2 at 2e4, 17.0 vs 13.5 at 3e4.
#: So about 160 KB per array (1.2e5-1.6e5 bytes): 40,960 float32 or 20,480 float64 elements.
#: Lighter rules cross later (plain SGD float32 near 8e4), heavier ones sooner (centered
#: RMSprop with momentum near 3e4). On a machine whose other cores are busy the parallel
#: kernel waits for its slowest thread, and loses at every size (with two other processes
#: running on these 2 cores: about 8 ms per call, from 1e3 to 1e7 elements);
#: ``numba.set_num_threads(1)`` (or ``NUMBA_NUM_THREADS=1``) then keeps every kernel serial.
PARALLEL_MIN_BYTES = 160 << 10

_X86 = platform.machine() in ("x86_64", "AMD64")
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_fallbacks = fusion.Fallbacks("fused path")


@functools.cache
def available():
    """Whether numba can be imported (the ``fast`` extra). Imports it on the first call."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def eligible(arrays):
    """Whether the fused kernel can run on ``arrays`` (``[g, var, *slots]``, None for unused slots).

    Every array must be a plain NumPy ndarray of one dtype (float32 or float64), C-contiguous,
    aligned, of ``var``'s size; the state arrays must be writeable. The gradient may also be
    a NumPy scalar (what NumPy's arithmetic makes of a 0-d array).
    """
    var = arrays[1]
    if type(var) is not np.ndarray or var.dtype not in _DTYPES:
        return False
    for k, a in enumerate(arrays):
        if a is None or (k == 0 and isinstance(a, np.generic) and a.dtype == var.dtype and var.size == 1):
            continue
        if (type(a) is not np.ndarray or a.dtype != var.dtype or a.size != var.size
                or not a.flags.c_contiguous or not a.flags.aligned
                or (k > 0 and not a.flags.writeable)):
            return False
    return True


def run(rule, arrays, scalars, prescale=None):
    """``var, *slots = rule(g, var, *slots, **scalars)``, in place, through a fused kernel.

    ``arrays`` is ``[g, var, *slots]`` (None for an unused slot) and must be ``eligible``.
    ``prescale``: the gradient's clipping, done in the same pass: ``(c, d)`` for
    ``(g * c) / d`` (clipnorm), ``(s,)`` for ``g * s`` (global_clipnorm), scalars of the
    arrays' dtype; or a ``clipping_fast.GlobalNorm`` of the gradient's segments, whose
    factor ``s`` the kernel computes first, in the same call.
    Returns True; or False, having changed nothing, when numba cannot compile the rule
    for these inputs (a custom optimizer's rule may use what numba does not support): the
    caller then runs the NumPy path, and a ``RuntimeWarning`` says why, once per kernel
    (``fusion.Fallbacks``: other inputs of the same rule still try the fused path).
    """
    literals, values = fusion.split_scalars(scalars, arrays[1].dtype.type)
    parallel = arrays[1].nbytes >= PARALLEL_MIN_BYTES and _threads() > 1
    missing = tuple(a is None for a in arrays)
    if isinstance(prescale, GlobalNorm):  # the kernel computes the factor first
        scaling, values = "global", values + list(prescale)
    else:
        scaling = len(prescale) if prescale else 0
        if scaling:
            values = values + [arrays[1].dtype.type(x) for x in prescale]
    if _fallbacks.failed(rule) and _failure_key(rule, missing, scalars, literals, parallel, arrays, values) in _fallbacks:
        return False
    import numba

    try:
        kernel = _kernels.get(rule, missing, tuple(scalars), tuple(literals), parallel, scaling,
                              arrays[1].dtype)
        # numba compiles a new signature before running it, and a compiled kernel cannot
        # raise (no bounds checks, IEEE division): an error here means nothing was written.
        kernel(*[a.reshape(-1) for a in arrays if a is not None], *values)
    except (numba.core.errors.NumbaError, TypeError, AttributeError) as error:
        _fallbacks.add(_failure_key(rule, missing, scalars, literals, parallel, arrays, values), error)
        return False
    return True


def _failure_key(rule, missing, scalars, literals, parallel, arrays, values):
    """The kernel cache's key, plus what numba compiles a new signature for: the dtype, the
    gradient's kind (array or scalar) and the scalar values' types."""
    return (rule, missing, tuple(scalars), tuple(literals), parallel, arrays[1].dtype, type(arrays[0]),
            tuple(map(type, values)))


def _threads():
    """numba's thread count (starting its threads, the first time: ``_start_threads``)."""
    import numba

    _start_threads()
    return numba.get_num_threads()


@functools.cache
def _jit_rule(rule, dtype):
    """``rule`` compiled by numba for scalars of ``dtype``, its keyword-only scalars made
    positional, and inlined into the kernel's loop.

    numba binds keyword-only arguments for calls from Python, not for calls between
    compiled functions; the same bytecode with ``co_kwonlyargcount = 0`` takes the
    scalars positionally, in the order of the rule's signature. ``inline="always"``
    (numba's own inlining) puts the rule's body in the loop, so that LLVM vectorises it even
    when the rule is too large for LLVM to inline (Ftrl's, with two ``pow``).

    A rule may call an array function that has a one-element form for the elements of
    whole SIMD packets (``element_forms``: Ftrl's ``power_array`` and ``clip_by_value``);
    the compiled rule calls that form instead.
    """
    import numba

    code = rule.__code__
    positional = code.replace(co_argcount=code.co_argcount + code.co_kwonlyargcount, co_kwonlyargcount=0)
    names = rule.__globals__
    swaps = element_forms(rule, dtype)
    if swaps:
        names = {**names, **swaps}
    function = types.FunctionType(positional, names, rule.__name__, None, rule.__closure__)
    return numba.njit(function, fastmath=False, error_model="numpy", inline="always")


def element_forms(rule, dtype):
    """``{global name: compiled one-element form}`` for the array functions ``rule`` calls
    that have one (``numerics.pow_fast.element_forms``); empty for every other rule.

    The engine runs such a rule only on whole packets: ``Ftrl.run_rule`` hands the kernel
    the first ``size - size % LANES`` elements and runs the rest as array code.
    """
    from ...numerics import pow_fast

    forms = pow_fast.element_forms(dtype)
    called = {name: rule.__globals__.get(name) for name in rule.__code__.co_names}
    return {name: forms[value] for name, value in called.items()
            if isinstance(value, types.FunctionType) and value in forms}


def source(rule, missing, scalar_names, literals, parallel, scaling=0):
    """The Python source of the kernel for ``rule``: ``_chunk`` and the entry point ``_kernel``.

    ``missing[k]`` says whether the rule's k-th array argument is None this time;
    ``literals`` maps the bool/None scalars (written into the loop) to their values;
    ``scaling``: the gradient is clipped in the loop, ``(g[_i] * _c) / _d`` (2: clipnorm)
    or ``g[_i] * _c`` (1: global_clipnorm), the clipping functions' own operations; or
    ``"global"``: as 1, the kernel taking a ``clipping_fast.GlobalNorm``'s fields instead
    of ``_c``, and computing ``_c`` from the whole gradient first (in ``_get_num_threads()``
    chunks when ``parallel``)::

        def _kernel(g, var, m, v, alpha, ..., _norm_layout, _norm_c, _norm_inverse):
            _clip_c = _global_scale(g, 1, _norm_layout, _norm_c, _norm_inverse)
            _chunk(g, var, m, v, alpha, ..., _clip_c)
    """
    array_names, keyword_names = fusion.rule_signature(rule, missing, scalar_names)
    arrays = [n for n, gone in zip(array_names, missing) if not gone]
    by_norm = scaling == "global"
    scaling = 1 if by_norm else scaling
    values = [n for n in scalar_names if n not in literals] + ["_clip_c", "_clip_d"][:scaling]
    arguments = ", ".join(arrays + values)
    reads = [f"{n}[_i]" if not gone else "None" for n, gone in zip(array_names, missing)]
    if scaling and not missing[0]:
        reads[0] = f"({reads[0]} * _clip_c) / _clip_d" if scaling == 2 else f"{reads[0]} * _clip_c"
    call = ", ".join(reads + [repr(literals[n]) if n in literals else n for n in keyword_names])
    lines = [f"def _chunk({arguments}):",
             f"    for _i in range({array_names[1]}.size):",
             f"        _r = _rule({call})"]
    lines += [f"        {n}[_i] = _r[{k}]" for k, (n, gone) in enumerate(zip(array_names[1:], missing[1:]))
              if not gone]
    if by_norm:  # the kernel takes the norm's fields in place of ``_clip_c``, and computes it
        norm = ", ".join(_NORM_FIELDS)
        lines += ["", "", f"def _kernel({', '.join(arrays + values[:-1])}, {norm}):",
                  f"    _clip_c = _global_scale({arrays[0]}, {'_get_num_threads()' if parallel else 1}, {norm})"]
    else:
        lines += ["", "", f"def _kernel({arguments}):"]
    if not parallel:
        lines += [f"    _chunk({arguments})"]
    else:
        lines += [f"    _n = {array_names[1]}.size",
                  "    _threads = _get_num_threads()",
                  "    _size = (_n + _threads - 1) // _threads",
                  "    _size = (_size + 15) // 16 * 16  # chunks start on multiples of 64 bytes",
                  "    _count = (_n + _size - 1) // _size"]
        if _X86:
            lines += ["    _mode = _get_mxcsr() & _FTZ_DAZ  # the calling thread's flush bits"]
        lines += ["    for _c in _prange(_count):"]
        if _X86:
            lines += ["        _saved = _get_mxcsr()",
                      "        _set_mxcsr((_saved & ~_FTZ_DAZ) | _mode)"]
        # Each chunk gets slices, so that its loop starts at index 0: numba then knows
        # the index is not negative, and LLVM vectorises the loop (from a runtime start
        # it does not: a scalar loop, 4-6x slower).
        sliced = ", ".join([f"{n}[_lo:_hi]" for n in arrays] + values)
        lines += ["        _lo = _c * _size",
                  "        _hi = min(_lo + _size, _n)",
                  f"        _chunk({sliced})"]
        if _X86:
            lines += ["        _set_mxcsr(_saved)"]
    return "\n".join(lines) + "\n"


_OPTIONS = {"fastmath": False, "error_model": "numpy", "nogil": True}
_NORM_FIELDS = ["_norm_" + name for name in GlobalNorm._fields]


def _namespace(rule, dtype):
    import numba

    namespace = {"_rule": _jit_rule(rule, dtype), "_prange": numba.prange, "_FTZ_DAZ": np.uint32(FTZ_DAZ),
                 "_get_num_threads": numba.get_num_threads}
    if _X86:
        namespace.update(_mxcsr_intrinsics())
    return namespace


def _run_source(text, namespace, rule):
    # The text is ours (``source``), built from the rule's signature: no outside input.
    exec(compile(text, f"<fused kernel for {rule.__module__}.{rule.__qualname__}>", "exec"), namespace)  # noqa: S102


def _compile_chunk(rule, missing, scalar_names, literals, scaling, dtype):
    """The loop ``_chunk``, compiled once for the serial and the parallel kernel (it is the
    same loop: the parallel kernel calls it on each thread's slice)."""
    import numba

    namespace = _namespace(rule, dtype)
    _run_source(source(rule, missing, scalar_names, dict(literals), False, scaling), namespace, rule)
    return numba.njit(namespace["_chunk"], **_OPTIONS)


def _compile(rule, missing, scalar_names, literals, parallel, scaling, dtype):
    import numba

    namespace = _namespace(rule, dtype)
    _run_source(source(rule, missing, scalar_names, dict(literals), parallel, scaling), namespace, rule)
    if scaling == "global":  # the factor's function; the loop is global_clipnorm's (scaling 1)
        namespace["_global_scale"] = clipping_fast._kernel(sums_fast._packet_size(dtype), parallel)
        scaling = 1
    namespace["_chunk"] = _chunks.get(rule, missing, scalar_names, literals, scaling, dtype)
    return numba.njit(namespace["_kernel"], parallel=parallel, **_OPTIONS)


_chunks = fusion.KernelCache(_compile_chunk)  # (rule, missing, scalar names, literals, scaling, dtype) -> loop
_kernels = fusion.KernelCache(_compile)  # (rule, missing, scalar names, literals, parallel, scaling, dtype) -> kernel


@functools.cache
def _start_threads():
    """Start numba's worker threads outside flush-to-zero, once.

    A new thread inherits its creator's floating-point mode. The first parallel kernel
    usually runs inside a flushed step, and workers created there would flush subnormals
    in every later numba function of the process. So the threading layer is started
    (the workqueue layer makes its threads then) and a trivial parallel loop is run (the
    OpenMP and TBB layers make theirs at the first loop) with this thread's FTZ/DAZ
    cleared.
    """
    if not _X86:
        return  # nothing is flushed (numerics.FTZ_SUPPORTED): nothing to inherit
    import numba

    def touch(out):
        for i in numba.prange(out.size):
            out[i] = i

    touch = numba.njit(touch, parallel=True)
    intrinsics = _mxcsr_intrinsics()
    get, set_ = intrinsics["_get_mxcsr"], intrinsics["_set_mxcsr"]
    read = numba.njit(lambda: get())
    write = numba.njit(lambda value: set_(value))
    saved = read()
    write(saved & ~np.uint32(FTZ_DAZ))
    try:
        touch(np.empty(64 * numba.get_num_threads()))
    finally:
        write(saved)


@functools.cache
def _mxcsr_intrinsics():
    """``_get_mxcsr()`` and ``_set_mxcsr(value)``: read and write this thread's MXCSR (x86-64)."""
    from llvmlite import ir
    from numba.core import types as nb
    from numba.extending import intrinsic

    def mxcsr_call(builder, name, slot):
        fnty = ir.FunctionType(ir.VoidType(), [ir.PointerType(ir.IntType(8))])
        fn = builder.module.globals.get(name) or ir.Function(builder.module, fnty, name)
        builder.call(fn, [builder.bitcast(slot, ir.PointerType(ir.IntType(8)))])

    @intrinsic
    def _get_mxcsr(typingctx):
        def codegen(context, builder, signature, args):
            slot = builder.alloca(ir.IntType(32))
            mxcsr_call(builder, "llvm.x86.sse.stmxcsr", slot)
            return builder.load(slot)

        return nb.uint32(), codegen

    @intrinsic
    def _set_mxcsr(typingctx, value):
        def codegen(context, builder, signature, args):
            slot = builder.alloca(ir.IntType(32))
            value = args[0]
            if value.type.width > 32:  # numba widens integer arithmetic to 64 bits
                value = builder.trunc(value, ir.IntType(32))
            builder.store(value, slot)
            mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
            return context.get_dummy_value()

        if not isinstance(value, nb.Integer):
            return None
        return nb.none(value), codegen

    return {"_get_mxcsr": _get_mxcsr, "_set_mxcsr": _set_mxcsr}
