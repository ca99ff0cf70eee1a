"""The fused CuPy path: one CUDA kernel traced from each optimizer's own rule.

Here, on any machine:

* the trace is the rule: the recorded operations, replayed with NumPy's ufuncs, give the
  rule's own bits on drawn arrays (subnormals, NaN, inf), for every optimizer, every
  combination of unused slots and every bool scalar;
* the generated CUDA C is the rule: each kernel body, run line by line by a small
  interpreter of its C (``+ - * /``, ``? :``, ``isnan``, ``sqrt``, ``abs``, CUDA's ``max``
  and ``min``, ``T(...)`` literals) on NumPy arrays, gives the rule's own bits on random
  values with NaN, inf, subnormals and signed zeros, for every rule and slot variant; a
  wrong entry in ``fused_gpu.UFUNCS`` (``maximum`` written with ``min``) fails it, which a
  second test checks for each entry the rules use;
* what cannot be traced (a branch on an array value, a NumPy-scalar constant, an unknown
  ufunc) is refused by ``trace``, so ``run`` falls back to array code;
* where ``nvcc`` is installed, the generated kernels compile for float32 and float64, and
  ``--fmad=false`` (``fused_gpu.OPTIONS``) leaves no fused multiply-add in the PTX, while
  the same kernel without it has some (so the check can fail).

On a CUDA device (marker ``gpu``; skipped with the reason elsewhere):

* fused CuPy gives the CuPy array path's bits on drawn runs (every option, subnormals,
  NaN and inf), through ``pack()`` too;
* both give the NumPy path's bits on ordinary values without norm clipping, over 20 steps.
"""

import functools
import inspect
import itertools
import re
import shutil
import subprocess
from unittest import mock

import numpy as np
import pytest
from conftest import scaled
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizer_info import INFOS
from strategies import runs
from test_fused import assert_same_runs, mixed, states

from scratchopt.numerics import tf_arithmetic
from scratchopt.optimizers import adam, rmsprop, sgd
from scratchopt.optimizers.engine import fused_gpu
from scratchopt.optimizers.engine.fusion import split_scalars

pytestmark = pytest.mark.filterwarnings("ignore:Gradients do not exist")

#: Every built-in rule: its scalar names, the scalars that may be bool literals, and which
#: of its slots an optimizer may leave unused (``slots()`` in its file).
RULES = {
    "sgd": (sgd.update, ("lr", "momentum", "nesterov"), ("nesterov",), (True,)),
    "adam": (adam.update, ("alpha", "one_minus_beta_1", "one_minus_beta_2", "epsilon"), (), (False, False, True)),
    "rmsprop": (rmsprop.update, ("lr", "rho", "one_minus_rho", "epsilon", "momentum"), (), (False, True, True)),
}


def variants(name):
    """Every (missing, literals) the rule can be traced with: unused slots and bool values."""
    _, _, bools, optional = RULES[name]
    for missing in itertools.product(*[[False, True] if o else [False] for o in optional]):
        for values in itertools.product([False, True], repeat=len(bools)):
            yield (False, False, *missing), dict(zip(bools, values))


CASES = [(name, missing, literals) for name in RULES for missing, literals in variants(name)]


def replay(kernel, arrays, scalars):
    """Run the recorded operations with NumPy's ufuncs: the kernel's body, on the CPU."""
    env = dict(arrays)
    env.update(scalars)
    dtype = arrays["var"].dtype.type
    for result, ufunc, operands in kernel.ops:
        args = [env[x] if isinstance(x, str) else dtype(x) for x in operands]
        env[result] = getattr(np, ufunc)(*args)
    return {name: env[value] for name, value in kernel.outputs.items()}


@pytest.mark.parametrize("name, missing, literals", CASES, ids=str)
@settings(max_examples=scaled(15))
@given(seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float32, np.float64]),
       nonfinite=st.booleans())
def test_the_trace_replays_to_the_rules_bits(name, missing, literals, seed, dtype, nonfinite):
    rule, scalar_names, _, _ = RULES[name]
    rng = np.random.default_rng(seed)
    names = list(inspect.signature(rule).parameters)[:len(missing)]
    arrays = {n: None if gone else mixed(rng, 64, dtype, nonfinite) for n, gone in zip(names, missing)}
    arrays = {n: np.abs(a) if n in ("v", "v_max") and a is not None else a for n, a in arrays.items()}
    scalars = {n: literals[n] if n in literals else dtype(rng.uniform(0.001, 1.0)) for n in scalar_names}
    kernel = fused_gpu.trace(rule, missing, scalar_names, literals)
    with tf_arithmetic():
        expected = rule(*arrays.values(), **scalars)
        got = replay(kernel, {n: a for n, a in arrays.items() if a is not None},
                     {n: v for n, v in scalars.items() if n not in literals})
    for state, value in zip(names[1:], expected):
        if arrays[state] is None:
            assert value is None and state not in got
        else:
            np.testing.assert_array_equal(got[state].view(np.uint8), np.asarray(value).view(np.uint8),
                                          err_msg=f"{name} {state}")
    assert kernel.in_params.startswith("T g, ") and not any(n in kernel.in_params for n in literals)


# --- the generated C, run on the CPU -------------------------------------------------------
#
# ``replay`` above replays the recorded ufunc *names*; the CUDA C each name becomes
# (``fused_gpu.UFUNCS``) is what the GPU runs. Here that text itself is evaluated: each line
# of ``kernel.operation`` is parsed and computed with NumPy, in the array dtype, with the C
# meaning of every name. ``max``/``min`` are CUDA's float overloads, ``fmaxf``/``fminf``
# (IEEE maxNum: a NaN operand gives the other one), which is why the generated line tests
# ``isnan`` first.

C_FUNCTIONS = {"isnan": np.isnan, "sqrt": np.sqrt, "abs": np.abs, "max": np.fmax, "min": np.fmin}
_TOKEN = re.compile(r"\s*(?:(?P<number>[+-]?0x[0-9a-fA-F]+(?:\.[0-9a-fA-F]*)?p[+-]?\d+)"
                    r"|(?P<name>[A-Za-z_]\w*)|(?P<op>[-+*/?:(),;=]))")


def c_tokens(text):
    out, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise SyntaxError(f"cannot read the C at {text[position:]!r}")
        out.append((match.lastgroup, match.group(match.lastgroup)))
        position = match.end()
    return out


class CExpression:
    """Recursive descent over C's precedence: ``?:`` < ``+ -`` < ``* /`` < unary ``-`` < calls."""

    def __init__(self, tokens, env, dtype):
        self.tokens, self.env, self.dtype, self.at = tokens, env, dtype, 0

    def peek(self):
        return self.tokens[self.at][1] if self.at < len(self.tokens) else None

    def take(self, expected=None):
        kind, value = self.tokens[self.at]
        if expected is not None and value != expected:
            raise SyntaxError(f"expected {expected!r}, got {value!r}")
        self.at += 1
        return kind, value

    def conditional(self):
        condition = self.additive()
        if self.peek() != "?":
            return condition
        self.take("?")
        yes = self.conditional()
        self.take(":")
        no = self.conditional()
        return np.where(np.asarray(condition, bool), yes, no).astype(self.dtype)

    def additive(self):
        value = self.multiplicative()
        while self.peek() in ("+", "-"):
            op = self.take()[1]
            right = self.multiplicative()
            value = value + right if op == "+" else value - right
        return value

    def multiplicative(self):
        value = self.unary()
        while self.peek() in ("*", "/"):
            op = self.take()[1]
            right = self.unary()
            value = value * right if op == "*" else value / right
        return value

    def unary(self):
        if self.peek() == "-":
            self.take()
            return -self.unary()
        return self.primary()

    def primary(self):
        kind, value = self.take()
        if value == "(":
            inner = self.conditional()
            self.take(")")
            return inner
        if kind != "name":
            raise SyntaxError(f"unexpected {value!r}")
        if self.peek() != "(":
            return self.env[value]
        self.take("(")
        if value == "T":  # the literal cast T(0x1.8p-1): a double rounded to the array dtype
            sign, literal = 1.0, self.take()
            if literal[1] == "-":
                sign, literal = -1.0, self.take()
            self.take(")")
            assert literal[0] == "number", literal
            return self.dtype.type(sign * float.fromhex(literal[1]))
        args = [self.conditional()]
        while self.peek() == ",":
            self.take(",")
            args.append(self.conditional())
        self.take(")")
        return C_FUNCTIONS[value](*args)


def run_c(operation, env, dtype):
    """Run a kernel body, statement by statement, over NumPy arrays: ``T x = e;``, ``x = e;``."""
    env = dict(env)
    with np.errstate(all="ignore"):
        for line in operation.splitlines():
            tokens = c_tokens(line)
            if tokens[0][1] == "T" and tokens[1][0] == "name" and tokens[2][1] == "=":
                tokens = tokens[1:]  # a declaration: T _3 = ...;
            assert tokens[0][0] == "name" and tokens[1][1] == "=" and tokens[-1][1] == ";", line
            parser = CExpression(tokens[2:-1], env, dtype)
            value = parser.conditional()
            assert parser.at == len(parser.tokens), f"left over in {line!r}"
            env[tokens[0][1]] = np.asarray(value).astype(dtype)
    return env


def special_values(dtype):
    info = np.finfo(dtype)
    return np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, info.smallest_subnormal,
                     -info.smallest_subnormal, info.tiny, info.max, -info.max, 1.0, -1.0], dtype)


def _decay_rule():
    from scratchopt.optimizers.base import decay

    return decay


#: The rules of the C check: the optimizers' and the weight decay's (a rule without ``g``).
C_RULES = {**RULES, "decay": (_decay_rule(), ("weight_decay", "lr"), (), ())}
C_CASES = CASES + [("decay", (True, False), {})]


def check_generated_c(name, missing, literals, dtype, seed):
    """The kernel's C, interpreted, against the rule run on the same arrays in NumPy (no
    flush-to-zero on either side: the GPU keeps subnormals). Raises AssertionError."""
    rule, scalar_names, _, _ = C_RULES[name]
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    names = list(inspect.signature(rule).parameters)[:len(missing)]
    arrays = {}
    for n, gone in zip(names, missing):
        if gone:
            arrays[n] = None
            continue
        values = np.concatenate([rng.permutation(special_values(dtype)), mixed(rng, 243, dtype, nonfinite=True)])
        arrays[n] = np.abs(values) if n in ("v", "v_max") else values
    scalars = {n: literals[n] if n in literals else dtype.type(rng.uniform(0.001, 1.0)) for n in scalar_names}
    kernel = fused_gpu.trace(rule, missing, scalar_names, literals)
    with np.errstate(all="ignore"):
        expected = rule(*[None if a is None else a.copy() for a in arrays.values()], **scalars)
    env = {n: a for n, a in arrays.items() if a is not None}
    env.update({n: v for n, v in scalars.items() if n not in literals})
    got = run_c(kernel.operation, env, dtype)
    for state, value in zip(names[1:], expected):
        if arrays[state] is None:
            continue
        ours, theirs = got[state], np.asarray(value, dtype)
        differ = ours.view(f"u{dtype.itemsize}") != theirs.view(f"u{dtype.itemsize}")
        differ &= ~(np.isnan(ours) & np.isnan(theirs))  # any NaN is a NaN (payloads are not the point)
        if differ.any():
            i = int(np.argmax(differ))
            inputs = {n: a[i] for n, a in env.items() if isinstance(a, np.ndarray) and a.shape}
            raise AssertionError(f"{name} {dict(literals)} missing={missing} {dtype}: {state}[{i}] is "
                                 f"{ours[i]!r} by the generated C, {theirs[i]!r} by the rule; inputs {inputs}\n"
                                 f"{kernel.operation}")


@pytest.mark.parametrize("name, missing, literals", C_CASES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_generated_c_computes_the_rule(name, missing, literals, dtype):
    for seed in range(scaled(3)):
        check_generated_c(name, missing, literals, dtype, seed)


#: For each ufunc: a plausible wrong CUDA C for it (the kind of slip a code generator makes).
MUTATIONS = {
    "add": "{0} - {1}",
    "subtract": "{1} - {0}",
    "multiply": "{0} + {1}",
    "true_divide": "{1} / {0}",
    "divide": "{0} * {1}",
    "negative": "{0}",
    "sqrt": "abs({0})",
    "absolute": "{0}",
    "square": "{0} + {0}",
    "maximum": "isnan({0}) ? {0} : isnan({1}) ? {1} : min({0}, {1})",
    "minimum": "isnan({0}) ? {0} : isnan({1}) ? {1} : max({0}, {1})",
}
USED = sorted({u for name, missing, literals in C_CASES
               for _, u, _ in fused_gpu.trace(C_RULES[name][0], missing, C_RULES[name][1], literals).ops})


def test_every_ufunc_has_a_mutation():
    assert set(MUTATIONS) == set(fused_gpu.UFUNCS)


@pytest.mark.parametrize("ufunc, wrong", [pytest.param(u, MUTATIONS[u], id=u) for u in USED]
                         # CUDA's max alone: a NaN would not win
                         + [pytest.param("maximum", "max({0}, {1})", id="maximum-without-isnan")])
def test_a_wrong_c_expression_is_caught_on_the_cpu(monkeypatch, ufunc, wrong):
    """The check above can fail: with one ``UFUNCS`` entry wrong (issue 12: ``maximum`` as
    ``min`` passed every test on a CPU machine), some rule and slot variant fails it."""
    monkeypatch.setitem(fused_gpu.UFUNCS, ufunc, wrong)
    caught = []
    for name, missing, literals in C_CASES:
        try:
            check_generated_c(name, missing, literals, np.float32, 0)
        except AssertionError as error:
            caught.append(str(error))
    assert caught, f"UFUNCS[{ufunc!r}] = {wrong!r} was not caught"


def test_the_kernel_parameters_follow_the_unused_slots():
    kernel = fused_gpu.trace(rmsprop.update, (False, False, False, True, True),
                             ("lr", "rho", "one_minus_rho", "epsilon", "momentum"), {})
    assert kernel.out_params == "T var, T v"
    assert kernel.in_params == "T g, T lr, T rho, T one_minus_rho, T epsilon, T momentum"
    assert "avg_g" not in kernel.operation and "buf" not in kernel.operation
    assert kernel.name == "scratchopt_rmsprop_update"


def test_a_rule_without_the_gradient_takes_none_for_it():
    """The weight decay is a rule that ignores the gradient: no ``g`` parameter at all."""
    from scratchopt.optimizers.base import decay

    kernel = fused_gpu.trace(decay, (True, False), ("weight_decay", "lr"), {})
    assert (kernel.in_params, kernel.out_params) == ("T weight_decay, T lr", "T var")
    assert kernel.operation.splitlines() == ["T _0 = var * weight_decay;", "T _1 = _0 * lr;",
                                             "T _2 = var - _1;", "var = _2;"]
    with pytest.raises(TypeError, match="the variable cannot be None"):
        fused_gpu.trace(decay, (False, True), ("weight_decay", "lr"), {})


def _branches(g, var, *, lr):
    if g:  # on an array value: cannot be traced
        return var - lr * g,
    return var,


def _compares(g, var, *, lr):
    return var - lr * (g > 0),


def _numpy_constant(g, var, *, lr):
    return var - np.float64(0.5) * lr * g,


def _cumsum(g, var, *, lr):
    return var - lr * np.cumsum(g),


def _swap(g, var, a, b, *, lr):
    return var - lr * g, b, a


@pytest.mark.parametrize("rule, match", [(_branches, "branches on an array value"),
                                         (_compares, "'>' not supported"),
                                         (_numpy_constant, "float64 constant"),
                                         (_cumsum, "cannot trace np.cumsum")])
def test_what_cannot_be_traced_is_refused(rule, match):
    with pytest.raises(TypeError, match=match):
        fused_gpu.trace(rule, (False, False), ("lr",), {})


def test_a_swap_reads_the_old_values_and_python_constants_take_the_array_dtype():
    kernel = fused_gpu.trace(_swap, (False,) * 4, ("lr",), {})
    lines = kernel.operation.splitlines()
    assert lines.index("T _in_a = a;") < lines.index("b = _in_a;")
    assert lines.index("T _in_b = b;") < lines.index("a = _in_b;")
    half = fused_gpu.trace(lambda g, var, *, lr: (var - 0.5 * g,), (False, False), ("lr",), {})
    assert "T(0x1.0000000000000p-1) * g" in half.operation


def test_scalars_arrive_in_the_array_dtype():
    literals, values = split_scalars({"lr": 0.1, "momentum": np.float32(0.9), "nesterov": True}, np.float32)
    assert literals == [("nesterov", True)]
    assert [type(v) for v in values] == [np.float32, np.float32] and values[0] == np.float32(0.1)


# --- the generated CUDA, compiled where nvcc is installed ---------------------------------

NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc is not installed: the generated CUDA "
                                "is compiled on a machine with the CUDA toolkit")


def cuda_source(kernel):
    """The kernel as CuPy lays it out: array parameters as references to one element."""
    ins = [p.split()[1] for p in kernel.in_params.split(", ")]
    outs = [p.split()[1] for p in kernel.out_params.split(", ")]
    params = ", ".join([f"const T* _raw_{ins[0]}"] + [f"T {n}" for n in ins[1:]]
                       + [f"T* _raw_{n}" for n in outs] + ["long long _n"])
    refs = "\n".join([f"const T &{ins[0]} = _raw_{ins[0]}[i];"] + [f"T &{n} = _raw_{n}[i];" for n in outs])
    return (f"template <typename T>\n__global__ void {kernel.name}({params}) {{\n"
            "for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < _n;"
            " i += (long long)blockDim.x * gridDim.x) {\n"
            f"{refs}\n{kernel.operation}\n}}\n}}\n"
            f"template __global__ void {kernel.name}<float>({params.replace('T ', 'float ').replace('T* ', 'float* ')});\n"
            f"template __global__ void {kernel.name}<double>({params.replace('T ', 'double ').replace('T* ', 'double* ')});\n")


@functools.cache
def ptx(name, missing, literals, options):
    rule, scalars, _, _ = RULES[name]
    kernel = fused_gpu.trace(rule, missing, scalars, dict(literals))
    return subprocess.run([NVCC, "-x", "cu", "-ptx", "-arch=sm_90", *options, "-o", "-", "-"],
                          input=cuda_source(kernel), capture_output=True, text=True, check=True).stdout


@needs_nvcc
@pytest.mark.parametrize("name, missing, literals", CASES, ids=str)
def test_the_generated_cuda_compiles_without_fused_multiply_adds(name, missing, literals):
    text = ptx(name, missing, tuple(literals.items()), fused_gpu.OPTIONS)
    assert ".entry" in text and "fma." not in text


@needs_nvcc
def test_without_fmad_false_the_compiler_would_contract():
    """The check above can fail: Adam's kernel compiled with NVCC's default has FMAs."""
    assert "fma.rn" in ptx("adam", (False, False, False, False, True), (), ())


# --- on a CUDA device ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cp():
    import cupy

    return cupy


def device_trajectory(cp, cls, kwargs, params, steps, backend, pack=False):
    """``test_fused.trajectory`` with the params and gradients on the GPU; states as NumPy."""
    opt = cls(**kwargs)
    opt.backend = backend
    params = [cp.asarray(p) for p in params]
    params = opt.pack(params) if pack else (opt.build(params) or params)
    out = []
    for grads in steps:
        opt.apply([None if g is None else cp.asarray(g) for g in grads], params)
        iterations, arrays = states(opt, params)
        out.append((iterations, [cp.asnumpy(a) for a in arrays]))
    return out


@pytest.mark.gpu
@pytest.mark.parametrize("info", [i for i in INFOS if i.fused], ids=str)
@settings(max_examples=scaled(25), deadline=None)
@given(data=st.data())
def test_fused_cupy_matches_the_cupy_array_path(cp, info, data):
    run = data.draw(runs(info, max_steps=5, nonfinite=data.draw(st.booleans())))
    pack = data.draw(st.booleans())
    reference = device_trajectory(cp, info.cls, run.kwargs, run.params, run.grads, "numpy")
    with mock.patch.object(fused_gpu, "run", wraps=fused_gpu.run) as spy:
        ours = device_trajectory(cp, info.cls, run.kwargs, run.params, run.grads, "auto", pack=pack)
    assert spy.called == (ours[-1][0] > 0) and all(call.kwargs == {} for call in spy.call_args_list)
    assert_same_runs(reference, ours, f"{info} pack={pack}")


#: Options that leave every operation elementwise (no norm, hence no sum order), per optimizer.
ELEMENTWISE = {
    "SGD": [{}, {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True}],
    "Adam": [{}, {"amsgrad": True}, {"weight_decay": 0.01, "use_ema": True}],
    "AdamW": [{}, {"amsgrad": True}],
    "RMSprop": [{}, {"centered": True}, {"momentum": 0.9, "centered": True}],
}


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["numpy", "auto"], ids=["cupy-array", "cupy-fused"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("info", [i for i in INFOS if i.fused], ids=str)
def test_cupy_gives_the_numpy_paths_bits_on_ordinary_values(cp, info, dtype, backend):
    """No subnormals (the CPU flushes them, the GPU keeps them) and no norms (sum order)."""
    rng = np.random.default_rng(0)
    shapes = [(), (7,), (64, 33), (100_003,)]
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    steps = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(20)]
    for kwargs in ELEMENTWISE[info.name]:
        kwargs = dict(kwargs, learning_rate=0.01)
        reference = _cpu_trajectory(info.cls, kwargs, params, steps)
        ours = device_trajectory(cp, info.cls, kwargs, params, steps, backend)
        assert_same_runs(reference, ours, f"{info} {kwargs} {np.dtype(dtype)} {backend}")


def _cpu_trajectory(cls, kwargs, params, steps):
    opt = cls(**kwargs)
    opt.backend = "numpy"
    params = [p.copy() for p in params]
    out = []
    for grads in steps:
        opt.apply(grads, params)
        out.append(states(opt, params))
    return out
