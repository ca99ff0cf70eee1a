"""The fused CPU path and multi-tensor steps give the NumPy reference path's bits.

* fused vs NumPy: every optimizer of the table, drawn runs (the same strategies as the
  Keras parity tests: options, schedules, float32/float64, float16 gradients, subnormal
  products, NaN and inf), through the serial and the parallel kernel; large arrays on
  both sides of the parallel crossover; the flush-to-zero of every worker thread;
  arrays the kernel cannot take (Fortran order, strided views) fall back to NumPy.
* packed vs per tensor: ``opt.pack(params)`` over several steps, with clipping, weight
  decay exclusions and missing gradients, gathering the gradients or reading them in place.
* numba is optional: ``import scratchopt`` does not import it, a step without it works,
  and ``SCRATCHOPT_BACKEND`` / ``opt.backend`` force the paths.

Since numba is installed for the suite, the Keras parity tests (test_optimizer_parity.py)
run the fused path too; here the NumPy path is the reference.
"""

import contextlib
import subprocess
import sys
import textwrap
from unittest import mock

import numpy as np
import pytest
from conftest import scaled
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizer_info import INFOS
from strategies import DTYPES, common_options, learning_rates, runs, to_kwargs

from scratchopt.numerics import FTZ_SUPPORTED, flush_denormals, tf_arithmetic
from scratchopt.optimizers import SGD, Adam, AdamW, RMSprop, clipping, engine, sgd
from scratchopt.optimizers.clipping_fast import GlobalNorm
from scratchopt.optimizers.engine import fused_cpu as fused
from scratchopt.tools.parity import same_bits

pytestmark = pytest.mark.filterwarnings("ignore:Gradients do not exist")
needs_numba = pytest.mark.skipif(
    not fused.available(), reason="numba is not installed (pip install 'scratchopt[fast]'): "
    "there is no fused path to compare")
KERNELS = ["serial", "parallel"]
BIG = 70_001  # above fused.PARALLEL_MIN_BYTES for float32 and float64
SMALL = 5_003  # below it


def kernel_sizes(kernel):
    """Make every size run through the serial or the parallel kernel."""
    return mock.patch.object(fused, "PARALLEL_MIN_BYTES", 0 if kernel == "parallel" else 1 << 62)


def states(opt, params):
    """Everything a step changes: params, slots, EMA averages, accumulators, the counter."""
    state = opt.state_dict()
    arrays = [p.copy() for p in params] + [s[k] for s in state["slots"] for k in sorted(s)]
    arrays += (state["ema"] or []) + (state["accumulators"] or [])
    return opt.iterations, arrays


def assert_same(reference, other, what):
    (i0, a0), (i1, a1) = reference, other
    assert i0 == i1 and len(a0) == len(a1)
    for k, (a, b) in enumerate(zip(a0, a1)):
        assert same_bits(a, b), f"{what}: array {k} differs\nnumpy {a!r}\nother {b!r}"


def trajectory(cls, kwargs, params, steps, backend="auto", pack=False, in_place=False,
               names=None, exclude=None):
    """The states after each step of ``cls(**kwargs)`` on copies of ``params``."""
    opt = cls(**kwargs)
    opt.backend = backend
    params = [p.copy() for p in params]
    if exclude is not None:
        opt.exclude_from_weight_decay(var_list=[params[i] for i in exclude])
    params = opt.pack(params, names) if pack else (opt.build(params, names) or params)
    out = []
    for grads in steps:
        if in_place:  # gradients of the param's dtype written into the packed gradient views
            grads = [write(v, g) if g is not None and g.dtype == v.dtype else g
                     for g, v in zip(grads, opt.packed_gradients())]
        opt.apply(grads, params)
        out.append(states(opt, params))
    return out


def write(view, value):
    view[...] = value
    return view


def assert_same_runs(reference, other, what):
    assert len(reference) == len(other)
    for step, (a, b) in enumerate(zip(reference, other)):
        assert_same(a, b, f"{what}, step {step}")


def mixed(rng, n, dtype, nonfinite=False):
    """n values like strategies.values(): ordinary, tiny (subnormal products), subnormal, 0, -0."""
    dtype = np.dtype(dtype)
    info = np.finfo(dtype)
    tiny = {4: 1e-19, 8: 1e-155}[dtype.itemsize]
    choices = [rng.uniform(-100, 100, n), rng.uniform(-tiny, tiny, n),
               rng.uniform(-1000, 1000, n) * float(info.smallest_subnormal),  # subnormal inputs
               np.zeros(n), np.full(n, -0.0)]
    if nonfinite:
        choices.append(rng.choice([np.nan, np.inf, -np.inf], n))
    kind = rng.integers(0, len(choices), n)
    return np.choose(kind, choices).astype(dtype)


# --- fused vs NumPy -------------------------------------------------------------------------


@needs_numba
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("info", [i for i in INFOS if i.fused], ids=str)
@settings(max_examples=scaled(40))
@given(data=st.data())
def test_fused_matches_numpy_on_drawn_runs(info, kernel, data):
    run = data.draw(runs(info, max_steps=6, nonfinite=data.draw(st.booleans())))
    reference = trajectory(info.cls, run.kwargs, run.params, run.grads, backend="numpy")
    with kernel_sizes(kernel), mock.patch.object(fused, "run", wraps=fused.run) as spy:
        ours = trajectory(info.cls, run.kwargs, run.params, run.grads, backend="fused")
    assert spy.called == (ours[-1][0] > 0)  # the fused path ran for every update there was
    assert_same_runs(reference, ours, f"{info} {kernel}")


@st.composite
def big_runs(draw, info, size):
    """Constructor arguments as runs() draws them, one large and one small param, a seed."""
    kwargs = draw(info.hyperparameters)
    options = to_kwargs(draw(common_options))
    if "weight_decay" in kwargs:
        options.pop("weight_decay", None)
    kwargs.update(options, learning_rate=draw(learning_rates))
    return kwargs, draw(st.sampled_from(DTYPES)), size, draw(st.integers(0, 2**32 - 1))


@needs_numba
@pytest.mark.parametrize("size", [SMALL, BIG], ids=["below-crossover", "above-crossover"])
@pytest.mark.parametrize("info", [i for i in INFOS if i.fused], ids=str)
@settings(max_examples=scaled(6))
@given(data=st.data())
def test_fused_matches_numpy_on_large_arrays(info, size, data):
    """Both sides of the crossover, with subnormals, NaN and inf spread over every chunk."""
    kwargs, dtype, size, seed = data.draw(big_runs(info, size))
    rng = np.random.default_rng(seed)
    params = [mixed(rng, size, dtype), mixed(rng, 5, dtype)]
    steps = [[mixed(rng, size, dtype, nonfinite=k == 2), mixed(rng, 5, dtype)] for k in range(3)]
    reference = trajectory(info.cls, kwargs, params, steps, backend="numpy")
    with mock.patch.object(fused, "run", wraps=fused.run) as spy:
        ours = trajectory(info.cls, kwargs, params, steps, backend="fused")
    assert size in {call.args[1][1].size for call in spy.call_args_list}
    assert_same_runs(reference, ours, f"{info} {dtype} {size}")
    assert (size * np.dtype(dtype).itemsize >= fused.PARALLEL_MIN_BYTES) == (size == BIG)


@needs_numba
@pytest.mark.parametrize("pack", [False, True], ids=["tensors", "packed"])
@pytest.mark.parametrize("clip", [{"clipnorm": 0.5}, {"global_clipnorm": 0.5}], ids=["clipnorm", "global"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_norm_clipping_runs_inside_the_rules_pass_with_the_same_bits(dtype, clip, pack):
    """Issue 16: on the fused path the clipping factors go into the rule's kernel
    (``prescale``), which scales each gradient element as it reads it: no clipped copy is
    made (``clipping.by_norm`` / ``by_global_norm`` do not run), and the bits are the NumPy
    path's (which clips first), NaN and inf norms included. clipnorm on a packed buffer
    (one norm per tensor) clips first: each clipped copy in its own pass (the engine's
    identity rule with the prescale), then the rule without one."""
    from scratchopt.optimizers import clipping

    rng = np.random.default_rng(0)
    params = [mixed(rng, n, dtype) for n in (3, 1000, 70001)]
    steps = [[mixed(rng, p.size, dtype, nonfinite=k == 3) * 10 for p in params] for k in range(4)]
    kwargs = {"learning_rate": 0.01, **clip}
    reference = trajectory(Adam, kwargs, params, steps, backend="numpy", pack=pack)
    clip_first = "clipnorm" in clip and pack
    with mock.patch.object(fused, "run", wraps=fused.run) as spy, \
            mock.patch.object(clipping, "by_norm", wraps=clipping.by_norm) as by_norm, \
            mock.patch.object(clipping, "by_global_norm", wraps=clipping.by_global_norm) as by_global:
        ours = trajectory(Adam, kwargs, params, steps, backend="fused", pack=pack)
    assert_same_runs(reference, ours, f"{clip} {dtype} {pack}")
    rules = [call for call in spy.call_args_list if call.args[0] is not clipping._copy]
    prescales = [call.args[3] if len(call.args) > 3 else call.kwargs.get("prescale") for call in rules]
    assert rules and all((p is None) == clip_first for p in prescales), prescales
    copies = [call for call in spy.call_args_list if call.args[0] is clipping._copy]
    assert bool(copies) == clip_first and all(len(call.args[3]) == 2 for call in copies)
    assert (by_norm.called or by_global.called) == clip_first


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_stand_alone_clipping_writes_numpys_bits_in_one_pass(dtype):
    """``clip_by_norm`` / ``clip_by_global_norm`` return a new array: from
    ``COMPILED_MIN_ELEMENTS`` on it is the engine's identity rule with the prescale (one
    pass), below it NumPy's line. Both give the NumPy path's bits (subnormal, NaN and inf
    values and norms included), and a NumPy-only run never calls the engine."""
    from scratchopt.clipping import clip_by_global_norm, clip_by_norm
    from scratchopt.optimizers import clipping

    rng = np.random.default_rng(7)
    sizes = (3, clipping.COMPILED_MIN_ELEMENTS - 1, clipping.COMPILED_MIN_ELEMENTS, 70001)
    for nonfinite in (False, True):
        grads = [mixed(rng, n, dtype, nonfinite=nonfinite and n > 3) for n in sizes]
        for clip, limit in ((clip_by_norm, 0.5), (clip_by_global_norm, 0.5), (clip_by_norm, 1e30)):
            with mock.patch.dict("os.environ", {"SCRATCHOPT_BACKEND": "numpy"}), \
                    mock.patch.object(engine, "run", wraps=engine.run) as numpy_spy:
                want = clip(grads, limit)
            with mock.patch.object(engine, "run", wraps=engine.run) as spy:
                got = clip(grads, limit)
            assert not numpy_spy.called
            assert [call.args[1].size for call in spy.call_args_list] == list(sizes[2:])
            for a, b in zip(want, got):
                assert same_bits(a, b), (clip.__name__, limit, a.size)


@needs_numba
@pytest.mark.skipif(not engine.stream_copy._X86, reason="non-temporal stores are written for x86-64 only")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@settings(max_examples=scaled(30))
@given(data=st.data())
def test_the_streamed_copy_writes_numpys_bits(dtype, data):
    """``stream_copy.scaled_copy``: the elements before ``out``'s first 64-byte line, the
    non-temporal packets (in every thread's chunk) and the tail are each the NumPy line's
    ``(g * c) / d`` or ``g * s``, subnormal, NaN and inf values and factors included, with
    flush-to-zero (as inside a clipping call) and without."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    n = data.draw(st.sampled_from([0, 1, 7, 15, 16, 17, 100, 1000, 4099, 70001]), label="n")
    shift = data.draw(st.integers(0, 15), label="out's offset in elements")
    g = mixed(rng, n + 1, dtype, nonfinite=True)[1:]  # g's own alignment unlike out's
    t = np.dtype(dtype).type
    factors = st.sampled_from([0.5, 3.0, 1e-30, 1e-300, 1e30, np.inf, np.nan, 0.0, -0.0])
    prescale = tuple(t(x) for x in data.draw(st.one_of(st.tuples(factors), st.tuples(factors, factors)),
                                             label="prescale"))
    flushed = data.draw(st.booleans(), label="flush-to-zero")
    out = np.empty(n + shift, dtype)[shift:]
    with tf_arithmetic() if flushed else contextlib.nullcontext(), np.errstate(all="ignore"):
        want = g * prescale[0] if len(prescale) == 1 else (g * prescale[0]) / prescale[1]
        engine.stream_copy.scaled_copy(g, out, prescale)
    assert same_bits(want, out), (n, shift, prescale, flushed)


@needs_numba
@pytest.mark.skipif(not engine.stream_copy._X86, reason="non-temporal stores are written for x86-64 only")
@pytest.mark.parametrize("clip", ["clip_by_norm", "clip_by_global_norm"])
def test_a_clipping_call_that_writes_min_bytes_streams_its_copies(clip, monkeypatch):
    """The copies of one call are streamed when the call writes ``MIN_BYTES`` or more in all
    (counted over its tensors), and not below; either way their bits are the NumPy path's."""
    from scratchopt import clipping as public

    clip = getattr(public, clip)
    rng = np.random.default_rng(3)
    grads = [mixed(rng, n, np.float32, nonfinite=k == 1) for k, n in enumerate((40000, 50001, 9))]
    total = sum(g.nbytes for g in grads)
    with mock.patch.dict("os.environ", {"SCRATCHOPT_BACKEND": "numpy"}):
        want = clip(grads, 0.5)
    for min_bytes, streamed in ((total, True), (total + 1, False)):
        monkeypatch.setattr(engine.stream_copy, "MIN_BYTES", min_bytes)
        with mock.patch.object(engine.stream_copy, "scaled_copy", wraps=engine.stream_copy.scaled_copy) as spy:
            got = clip(grads, 0.5)
        # the two over COMPILED_MIN_ELEMENTS; the 9 elements are NumPy's line
        assert [call.args[0].size for call in spy.call_args_list] == ([40000, 50001] if streamed else [])
        for a, b in zip(want, got):
            assert same_bits(a, b), (clip.__name__, streamed, a.size)


def test_the_kernel_reads_the_clipped_gradient():
    text = fused.source(sgd.update, (False, False, True), ("lr", "momentum", "nesterov"), {"nesterov": False},
                        parallel=False, scaling=2)
    assert "_rule((g[_i] * _clip_c) / _clip_d, var[_i], None, lr, momentum, False)" in text
    assert "def _chunk(g, var, lr, momentum, _clip_c, _clip_d):" in text


@needs_numba
@pytest.mark.skipif(not FTZ_SUPPORTED, reason="flush-to-zero is only set on x86-64 with glibc")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_thread_follows_the_callers_flush_mode(dtype):
    """Worker threads do not inherit MXCSR: each chunk sets the calling thread's FTZ/DAZ.

    ``var - g * lr`` with a subnormal product in every element, and subnormal ``var``
    inputs: flushed everywhere under ``flush_denormals`` (as the NumPy path and TF), kept
    everywhere outside it, over a size that gives every thread chunks.
    """
    n = 1 << 20
    t = dtype.type
    tiny = t(1e-20) if dtype == np.float32 else t(1e-160)  # tiny * tiny is subnormal
    sub = np.finfo(dtype).smallest_subnormal
    scalars = {"lr": tiny, "momentum": t(0), "nesterov": False}

    def inputs():  # even elements: g * lr is subnormal; odd ones: var is a subnormal input
        g, var = np.full(n, tiny, dtype), np.zeros(n, dtype)
        g[1::2], var[1::2] = 0, sub
        return g, var

    for mode in (flush_denormals, contextlib.nullcontext):
        g, var = inputs()
        with mode(), np.errstate(all="ignore"):
            expected = sgd.update(g, var, None, **scalars)[0]  # the NumPy path
        if mode is flush_denormals:
            assert not expected.any()
        else:
            assert np.all(expected[::2] == -(tiny * tiny)) and np.all(expected[1::2] == sub)
        for kernel in KERNELS:
            g, var = inputs()
            with kernel_sizes(kernel), mode():
                fused.run(sgd.update, [g, var, None], scalars)
            assert same_bits(expected, var), f"{mode.__name__} {kernel}: {np.count_nonzero(expected != var)} differ"


@needs_numba
@pytest.mark.skipif(not FTZ_SUPPORTED, reason="flush-to-zero is only set on x86-64 with glibc")
def test_worker_threads_get_their_own_mode_back():
    """After a flushed step, other parallel numba code in the process does not flush."""
    import numba

    @numba.njit(parallel=True)
    def products(x):
        out = np.empty_like(x)
        for i in numba.prange(x.size):
            out[i] = x[i] * x[i]
        return out

    x = np.full(1 << 20, 1e-20, np.float32)
    with kernel_sizes("parallel"), flush_denormals():
        fused.run(sgd.update, [x.copy(), x.copy(), None], {"lr": x[0], "momentum": x[0], "nesterov": False})
    assert np.all(products(x) == x[0] * x[0]) and x[0] * x[0] != 0


@needs_numba
def test_the_kernel_goes_parallel_above_the_crossover_and_only_with_threads():
    import numba

    def parallel_flags(size):
        with mock.patch.object(fused._kernels, "get", wraps=fused._kernels.get) as spy:
            Adam(0.1).apply([np.ones(size, np.float32)], [np.ones(size, np.float32)])
        return [call.args[4] for call in spy.call_args_list]  # (rule, missing, scalars, literals, parallel, scaling)

    crossover = fused.PARALLEL_MIN_BYTES // 4
    assert parallel_flags(crossover - 1) == [False]
    assert parallel_flags(crossover) == [numba.get_num_threads() > 1]
    before = numba.get_num_threads()
    numba.set_num_threads(1)  # one thread: a parallel kernel would only cost its launch
    try:
        assert parallel_flags(BIG) == [False]
    finally:
        numba.set_num_threads(before)


@needs_numba
@pytest.mark.parametrize("layout", ["C", "fortran", "strided"])
def test_arrays_the_kernel_cannot_take_fall_back_to_numpy(layout):
    rng = np.random.default_rng(0)
    start = mixed(rng, 6 * 50, np.float32).reshape(6, 50)
    steps = [mixed(rng, 6 * 25, np.float32).reshape(6, 25) for _ in range(3)]

    def run(backend):
        opt = Adam(0.1, amsgrad=True)
        opt.backend = backend
        if layout == "strided":  # a view into the caller's array, updated in place
            whole = start.copy()
            param = whole[:, ::2]
        else:
            param = np.array(start[:, :25], order="F" if layout == "fortran" else "C")
        for g in steps:
            opt.apply([g], [param])
        return states(opt, [param])

    reference = run("numpy")
    with mock.patch.object(fused, "run", wraps=fused.run) as spy:
        ours = run("auto")
    assert spy.called == (layout == "C")
    assert_same(reference, ours, layout)


@needs_numba
def test_the_numpy_path_can_be_forced_and_backend_values_are_checked(monkeypatch):
    params, grads = [np.ones(40, np.float32)], [np.full(40, 0.5, np.float32)]
    with mock.patch.object(fused, "run", wraps=fused.run) as spy:
        opt = Adam(0.1)
        opt.backend = "numpy"
        opt.apply(grads, params)
        monkeypatch.setenv("SCRATCHOPT_BACKEND", "numpy")
        Adam(0.1).apply(grads, [np.ones(40, np.float32)])
        assert not spy.called
        monkeypatch.setenv("SCRATCHOPT_BACKEND", "auto")
        Adam(0.1).apply(grads, [np.ones(40, np.float32)])
        assert spy.call_count == 1
        forced = Adam(0.1)
        forced.backend = "fused"  # the instance wins over the environment
        monkeypatch.setenv("SCRATCHOPT_BACKEND", "numpy")
        forced.apply(grads, [np.ones(40, np.float32)])
        assert spy.call_count == 2
    monkeypatch.setenv("SCRATCHOPT_BACKEND", "cuda")
    before = params[0].copy()
    opt.backend = "auto"
    with pytest.raises(ValueError, match="SCRATCHOPT_BACKEND is 'cuda'; expected one of auto, numpy, fused"):
        opt.apply(grads, params)
    opt.backend = "numba"
    with pytest.raises(ValueError, match="opt.backend is 'numba'"):
        opt.apply(grads, params)
    assert same_bits(before, params[0]) and opt.iterations == 1


@needs_numba
def test_the_kernel_is_generated_from_the_rule():
    """The loop calls the rule on scalars; unused slots and bool scalars become literals."""
    text = fused.source(sgd.update, (False, False, False), ("lr", "momentum", "nesterov"),
                        {"nesterov": True}, parallel=False)
    assert "_r = _rule(g[_i], var[_i], m[_i], lr, momentum, True)" in text
    assert "m[_i] = _r[1]" in text and "*" not in text.split("_rule(")[1].split(")")[0]
    text = fused.source(sgd.update, (False, False, True), ("lr", "momentum", "nesterov"),
                        {"nesterov": False}, parallel=True)
    assert "_rule(g[_i], var[_i], None, lr, momentum, False)" in text and "m[_i]" not in text
    assert "_prange" in text and ("_set_mxcsr" in text) == fused._X86
    with pytest.raises(TypeError, match="does not match"):
        fused.source(sgd.update, (False, False), ("lr",), {}, parallel=False)


def _halve(x):  # a plain Python function: numba cannot call it from compiled code
    return x * x.dtype.type(0.5)


def _uncompilable_update(g, var, m, *, lr):
    m = _halve(m) + g
    return var - m * lr, m


class HalfMomentum(SGD):
    """A custom optimizer whose rule numba cannot compile."""

    update = staticmethod(_uncompilable_update)
    slot_names = ("m",)

    def slots_in_use(self):
        return ("m",)

    def scalars(self, lr, step, dtype):
        return {"lr": lr}


@needs_numba
def test_a_rule_numba_cannot_compile_runs_on_numpy_with_a_warning():
    rng = np.random.default_rng(2)
    params = [mixed(rng, 50, np.float32)]
    steps = [[mixed(rng, 50, np.float32)] for _ in range(3)]
    reference = trajectory(HalfMomentum, {"learning_rate": 0.1}, params, steps, backend="numpy")
    with pytest.warns(RuntimeWarning, match="fused path cannot compile .*_uncompilable_update.*runs as array code"):
        ours = trajectory(HalfMomentum, {"learning_rate": 0.1}, params, steps)
    assert_same_runs(reference, ours, "fallback")


# --- multi-tensor steps -----------------------------------------------------------------------


@pytest.mark.parametrize("info", [i for i in INFOS if i.packable], ids=str)
@pytest.mark.parametrize("gradients", ["gathered", "in place"])
@settings(max_examples=scaled(30))
@given(data=st.data())
def test_packed_steps_match_per_tensor_steps(info, gradients, data):
    run = data.draw(runs(info, max_steps=5, nonfinite=data.draw(st.booleans())))
    # Twice as many params (the same dtypes, so the run's dtype constraints still hold).
    params = run.params + [np.array(-p, p.dtype) for p in run.params]
    steps = [grads + [None if g is None else np.array(-g, g.dtype) for g in grads] for grads in run.grads]
    names = [f"layer{i}/kernel" if i % 2 else f"layer{i}/bias" for i in range(len(params))]
    exclude = data.draw(st.lists(st.integers(0, len(params) - 1), unique=True, max_size=len(params)))
    kwargs = run.kwargs
    for cast in ({}, {"weight_decay": 0.05}):
        if info.name == "AdamW" and cast:
            continue
        config = {**kwargs, **cast}
        reference = trajectory(info.cls, config, params, steps, backend="numpy", names=names,
                               exclude=exclude)
        packed = trajectory(info.cls, config, params, steps, pack=True, in_place=gradients == "in place",
                            names=names, exclude=exclude)
        assert_same_runs(reference, packed, f"{info} packed, {gradients}")


@pytest.mark.parametrize("options, direct", [
    ({}, True), ({"weight_decay": 0.1}, True), ({"use_ema": True}, True),
    ({"weight_decay": 0.1, "exclude": [3]}, True), ({"clipnorm": 0.5}, False),
    ({"clipvalue": 0.1}, False), ({"loss_scale_factor": 2.0}, False),
    ({"gradient_accumulation_steps": 2}, False)], ids=str)
def test_packed_gradients_step_the_buffers_directly_with_the_same_bits(options, direct):
    """Passing packed_gradients() back steps each buffer straight from its gradient buffer
    (nothing gathered) unless an option makes new gradient arrays (loss scaling, gradient
    accumulation, clipping); a weight decay that excludes a param of a buffer decays that
    buffer param by param but still needs no gather. Either way the bits are the per-tensor
    NumPy path's."""
    from scratchopt.optimizers.engine import packing

    rng = np.random.default_rng(3)
    dtypes = [np.float32, np.float64] * 3
    params = [mixed(rng, 40 + k, dtype) for k, dtype in enumerate(dtypes)]
    steps = [[mixed(rng, 40 + k, dtype) for k, dtype in enumerate(dtypes)] for _ in range(4)]
    options = dict(options)
    exclude = options.pop("exclude", None)
    kwargs = {"learning_rate": 0.01, "momentum": 0.9, **options}
    reference = trajectory(SGD, kwargs, params, steps, backend="numpy", exclude=exclude)
    with mock.patch.object(packing.Pack, "gather", autospec=True, side_effect=packing.Pack.gather) as spy:
        ours = trajectory(SGD, kwargs, params, steps, pack=True, in_place=True, exclude=exclude)
    assert spy.called != direct
    assert_same_runs(reference, ours, f"packed, {options}")


CLIPS = [{}, {"clipnorm": 0.5}, {"global_clipnorm": 0.7}, {"clipvalue": 0.01}]


@pytest.mark.parametrize("backend", ["numpy", "auto"])
@pytest.mark.parametrize("clip", CLIPS, ids=lambda c: next(iter(c), "no clip"))
@pytest.mark.parametrize("make", [lambda **k: AdamW(0.01, weight_decay=0.1, **k),
                                  lambda **k: SGD(0.1, momentum=0.9, weight_decay=0.2, **k),
                                  lambda **k: RMSprop(0.01, centered=True, momentum=0.5, weight_decay=0.1, **k)],
                         ids=["AdamW", "SGD", "RMSprop"])
def test_packing_keeps_per_tensor_clipping_and_decay_exclusions(make, clip, backend):
    """Many tensors of two dtypes, norms that differ per tensor, exclusions by name and identity."""
    rng = np.random.default_rng(len(clip))
    shapes = [(7, 3), (3,), (), (100, 30), (1,), (20_000,), (4, 1, 5)]
    dtypes = [np.float32, np.float64, np.float32, np.float32, np.float64, np.float32, np.float64]
    params = [mixed(rng, int(np.prod(s)), d).reshape(s) for s, d in zip(shapes, dtypes)]
    scale = [1.0, 1e-3, 50.0, 0.1, 1e3, 1.0, 3.0]  # some norms above the clip, some below
    steps = [[(mixed(rng, p.size, p.dtype) * s).reshape(p.shape).astype(np.float32 if "global_clipnorm" in clip else p.dtype)
              for p, s in zip(params, scale)] for _ in range(4)]
    steps[2][4] = None  # a float64 param without a gradient: float64 steps per tensor that time
    names = ["dense/kernel", "dense/bias", "norm/gamma", "emb/embeddings", "norm/beta", "out/kernel", "out/bias"]

    def run(pack):
        opt = make(**clip)
        opt.backend = backend
        ps = [p.copy() for p in params]
        opt.exclude_from_weight_decay(var_list=[ps[5]], var_names=["bias", "gamma"])
        ps = opt.pack(ps, names) if pack else (opt.build(ps, names) or ps)
        out = []
        for grads in steps:
            opt.apply(grads, ps)
            out.append(states(opt, ps))
        return out, opt

    reference, _ = run(pack=False)
    packed, opt = run(pack=True)
    assert_same_runs(reference, packed, "packed")
    assert opt._decays == [True, False, False, True, True, False, False]
    assert [len(p.indices) for p in opt._packs] == [4, 3]


def factors_in_the_kernel():
    """A spy on the fused CPU kernel runs: the ``clipping_fast.GlobalNorm`` each run was
    handed, and the factor it gives for that run's gradient (computed before the run)."""
    seen, original = [], fused.run

    def recorded(rule, arrays, scalars, prescale=None):
        if isinstance(prescale, GlobalNorm):
            seen.append((prescale, prescale.scale(arrays[0].reshape(-1))))
        return original(rule, arrays, scalars, prescale)

    return seen, mock.patch.object(fused, "run", side_effect=recorded)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=str)
@pytest.mark.parametrize(("cls", "kwargs"), [(Adam, {"learning_rate": 0.01}),
                                             (SGD, {"learning_rate": 0.1, "momentum": 0.9, "weight_decay": 0.1})],
                         ids=["Adam", "SGD"])
def test_packed_gradients_take_their_global_norm_in_the_rules_kernel(cls, kwargs, dtype):
    """``global_clipnorm`` over a packed buffer's own gradients (``packed_gradients()``): the
    rule's one kernel run a step takes a ``GlobalNorm`` of the buffer (every param a
    segment, in order) and computes the factor itself; that factor is the reference's
    scale of the step's gradients, and the steps have the bits of the unpacked NumPy
    steps; a step with NaN and inf included."""
    rng = np.random.default_rng(6)
    shapes = [(7, 3), (3,), (), (100, 30), (1,), (20_000,), (0,), (4, 1, 5), (33,), (9, 9), (2,), (1000,), (5,)]
    scale = [1.0, 1e-3, 50.0, 1.0, 1e3, 0.1, 1.0, 3.0, 2.0, 1.0, 7.0, 0.3, 1.0]  # norms of many sizes
    params = [mixed(rng, int(np.prod(s)), dtype).reshape(s) for s in shapes]
    steps = [[(mixed(rng, p.size, dtype, nonfinite=k == 2) * c).astype(dtype).reshape(p.shape)
              for p, c in zip(params, scale)] for k in range(4)]
    kwargs = {**kwargs, "global_clipnorm": 0.7}
    reference = trajectory(cls, kwargs, params, steps, backend="numpy")
    seen, spy = factors_in_the_kernel()
    with spy:
        ours = trajectory(cls, kwargs, params, steps, pack=True, in_place=True)
    assert_same_runs(reference, ours, "packed gradients")
    assert len(seen) == len(steps)  # one kernel a step, which computed the factor
    for (norm, factor), grads in zip(seen, steps):
        assert norm.starts.tolist() == [0, *np.cumsum([g.size for g in grads])[:-1]]
        assert norm.sizes.tolist() == [g.size for g in grads]
        with tf_arithmetic():
            assert same_bits(factor, clipping.global_scale(grads, 0.7))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=str)
def test_one_whole_gradient_takes_its_global_norm_in_the_rules_kernel(dtype):
    """One gradient, not packed: the same one kernel (the gradient its own segment), and
    the bits of the NumPy steps, NaN and inf included, at sizes whose kernel is serial and
    parallel; a gradient of another dtype than its param, or a strided one, takes the
    per-gradient path, with the same bits."""
    rng = np.random.default_rng(8)
    for shape in [(30, 100), (300, 500)]:  # 1.2e4 and 6e5 bytes or more: serial and parallel
        param = mixed(rng, int(np.prod(shape)), dtype).reshape(shape)
        steps = [[(mixed(rng, param.size, dtype, nonfinite=k == 2) * c).astype(dtype).reshape(param.shape)]
                 for k, c in enumerate([1e-3, 1.0, 50.0, 0.2])]
        kwargs = {"learning_rate": 0.01, "global_clipnorm": 0.7}
        reference = trajectory(Adam, kwargs, [param], steps, backend="numpy")
        seen, spy = factors_in_the_kernel()
        with spy:
            assert_same_runs(reference, trajectory(Adam, kwargs, [param], steps), "one gradient")
        assert len(seen) == len(steps)
        for (_, factor), grads in zip(seen, steps):
            with tf_arithmetic():
                assert same_bits(factor, clipping.global_scale(grads, 0.7))
    runs = []
    for backend in ("numpy", "auto"):
        opt = Adam(**kwargs)
        opt.backend = backend
        opt.global_clipnorm = np.array(0.7)  # assigned later, unchecked (Keras takes it too)
        params, run = [param.copy()], []
        for grads in steps:
            opt.apply(grads, params)
            run.append(states(opt, params))
        runs.append(run)
    assert_same_runs(*runs, "global_clipnorm assigned a 0-d array")
    other = np.float64 if dtype == np.float32 else np.float32
    for variant in ([[g.astype(other)] for [g] in steps], [[np.asfortranarray(g)] for [g] in steps]):
        seen, spy = factors_in_the_kernel()
        with spy:
            assert_same_runs(trajectory(Adam, kwargs, [param], variant, backend="numpy"),
                             trajectory(Adam, kwargs, [param], variant), "per-gradient path")
        assert seen == []


def test_a_global_norm_the_kernel_cannot_take_is_computed_before_the_array_code():
    """Where the fused kernel does not run (arrays it cannot take, or a rule it cannot
    compile), the step's ``GlobalNorm`` becomes its factor before the rule runs as array
    code (``engine._prescaled``): the bits of the NumPy steps."""
    rng = np.random.default_rng(10)
    param = rng.standard_normal(3000).astype(np.float32)
    steps = [[rng.standard_normal(3000).astype(np.float32) * c] for c in (0.01, 5.0, 50.0)]
    kwargs = {"learning_rate": 0.01, "global_clipnorm": 0.7}
    reference = trajectory(Adam, kwargs, [param], steps, backend="numpy")
    with mock.patch.object(fused, "eligible", return_value=False), \
            mock.patch.object(engine, "_prescaled", wraps=engine._prescaled) as spy:
        assert_same_runs(reference, trajectory(Adam, kwargs, [param], steps), "array code")
    assert spy.call_count == len(steps) and all(isinstance(c.args[1], GlobalNorm) for c in spy.call_args_list)


@pytest.mark.parametrize("pack", [False, True], ids=["one gradient", "packed"])
def test_a_changed_global_clipnorm_is_used_at_the_next_step(pack):
    """The step remembers a buffer's ``GlobalNorm`` (``clipping_fast._step_norm``); a new
    ``opt.global_clipnorm`` (a number, or a 0-d array changed in place) is still the one
    the next step clips with: the bits of the NumPy steps with the same changes."""
    rng = np.random.default_rng(9)
    params = [rng.standard_normal(50).astype(np.float32), rng.standard_normal((4, 5)).astype(np.float32)]
    params = params[:1] if not pack else params
    steps = [[rng.standard_normal(p.shape).astype(np.float32) * 3 for p in params] for _ in range(5)]
    clip = np.array(2.0)
    changes = [1.0, 0.5, clip, "in place", 1.0]
    runs = []
    for backend in ("numpy", "auto"):
        opt = Adam(0.01)
        opt.backend = backend
        ps = opt.pack([p.copy() for p in params]) if pack else [p.copy() for p in params]
        clip[...] = 2.0
        run = []
        for change, grads in zip(changes, steps):
            if isinstance(change, str):
                clip[...] = 0.25
            else:
                opt.global_clipnorm = change
            if pack:
                grads = [write(v, g) for v, g in zip(opt.packed_gradients(), grads)]
            opt.apply(grads, ps)
            run.append(states(opt, ps))
        runs.append(run)
    assert_same_runs(*runs, "global_clipnorm changed between steps")  # every norm is over 2: each clip binds


def test_the_one_call_global_norm_takes_only_a_numpy_buffers_own_gradients():
    """Another buffer type (CuPy's, or here an ndarray subclass), other gradients, two
    buffers, or two gradients not packed: no one-call buffer (``_one_buffer`` says None)."""
    opt = Adam(0.1, global_clipnorm=1.0)
    params = opt.pack([np.ones(3, np.float32), np.ones((2, 2), np.float32)])
    grads = opt.packed_gradients()
    flat, starts, sizes = opt._one_buffer(grads, [0, 1], True)
    assert flat is opt._packs[0].grad and starts.tolist() == [0, 3] and sizes == (3, 4)
    assert opt._one_buffer([g.copy() for g in grads], [0, 1], False) is None

    class Other(np.ndarray):
        pass

    opt._packs[0].grad = opt._packs[0].grad.view(Other)
    assert opt._one_buffer(grads, [0, 1], True) is None
    two = Adam(0.1, global_clipnorm=1.0)
    two.pack([np.ones(3, np.float32), np.ones(2)])
    assert two._one_buffer(two.packed_gradients(), [0, 1], True) is None
    assert params[0].base is not None
    one = Adam(0.1, global_clipnorm=1.0)
    one.build([np.ones((2, 3), np.float32)])
    assert one._one_buffer([np.ones((2, 3), np.float32)], [0], False)[2] == (6,)
    others = (np.ones((2, 3)), np.ones((3, 2), np.float32).T, np.ones((2, 3), np.float16),
              np.ones((2, 3), np.float32).view(Other))  # dtype, layout, half, type
    for g in others:
        assert one._one_buffer([g], [0], False) is None


def test_a_packed_step_runs_the_rule_once_per_dtype():
    params = [np.ones((3, 4), np.float32), np.ones(5), np.ones(7, np.float32), np.ones(()), np.ones(2, np.float32)]
    grads = [np.full(p.shape, 0.5, p.dtype) for p in params]
    opt = Adam(0.1)
    params = opt.pack(params)
    with mock.patch.object(engine, "run", wraps=engine.run) as spy:
        opt.apply(grads, params)
        assert [call.args[2].size for call in spy.call_args_list] == [12 + 7 + 2, 5 + 1]
        spy.reset_mock()
        opt.apply([grads[0], None, grads[2], grads[3], grads[4]], params)  # float64 incomplete
        assert [call.args[2].size for call in spy.call_args_list] == [21, 1]


def test_pack_returns_views_that_are_the_params_from_then_on():
    originals = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(4), np.full((), 7.0)]
    opt = SGD(0.1, momentum=0.9)
    params = opt.pack(originals)
    assert [p.shape for p in params] == [(2, 3), (4,), ()]
    assert all(same_bits(a, b) for a, b in zip(originals, params))
    assert all(p.base is not None and p.flags.c_contiguous for p in params)
    assert params[1].base is params[2].base and not np.shares_memory(params[0], originals[0])
    slots = opt.state_dict()["slots"]
    assert [s["m"].shape for s in slots] == [(2, 3), (4,), ()]
    assert opt._slots[1]["m"].base is opt._slots[2]["m"].base is not None
    with pytest.raises(ValueError, match="Unknown parameter at params\\[0\\]"):
        opt.apply([np.ones((2, 3), np.float32)], [originals[0]])
    with pytest.raises(ValueError, match="already packed"):
        opt.pack(params)
    with pytest.raises(ValueError, match="needs the params it was built with"):
        built = SGD(0.1)
        built.build([np.ones(3)])
        built.pack([np.ones(3)])
    with pytest.raises(TypeError, match="params\\[1\\] must be a NumPy or CuPy array, got list"):
        SGD(0.1).pack([np.ones(3), [1.0, 2.0]])
    with pytest.raises(TypeError, match="params\\[0\\] has dtype int64"):
        SGD(0.1).pack([np.ones(3, np.int64)])
    with pytest.raises(ValueError, match="before packed_gradients"):
        SGD(0.1).packed_gradients()
    grads = opt.packed_gradients()
    assert grads is not opt.packed_gradients() and all(a is b for a, b in zip(grads, opt.packed_gradients()))
    assert [g.shape for g in grads] == [(2, 3), (4,), ()] and not any(g.any() for g in grads)


@pytest.mark.parametrize("backend", ["numpy", "auto"])
def test_packing_a_trained_optimizer_keeps_its_state(backend):
    """pack() after some steps; state_dict / load_state_dict on packed state."""
    rng = np.random.default_rng(1)
    params = [mixed(rng, 12, np.float32).reshape(3, 4), mixed(rng, 5, np.float64)]
    steps = [[mixed(rng, 12, np.float32).reshape(3, 4), mixed(rng, 5, np.float64)] for _ in range(6)]
    config = {"learning_rate": 0.01, "amsgrad": True, "use_ema": True, "gradient_accumulation_steps": 2}
    reference = trajectory(Adam, config, params, steps, backend="numpy")

    opt = Adam(**config)
    opt.backend = backend
    ps = [p.copy() for p in params]
    for grads in steps[:3]:
        opt.apply(grads, ps)
    ps = opt.pack(ps)
    saved = opt.state_dict()
    checkpoint = [p.copy() for p in ps]
    opt.apply(steps[3], ps)
    assert_same(reference[3], states(opt, ps), "after pack")
    opt.load_state_dict(saved)  # back one step, into the packed buffers
    for p, c in zip(ps, checkpoint):
        p[...] = c
    for k, grads in enumerate(steps[3:], 3):
        opt.apply(grads, ps)
        assert_same(reference[k], states(opt, ps), f"resumed step {k}")


# --- numba stays optional ---------------------------------------------------------------------

_NO_NUMBA = """
import importlib.abc, sys

class NoNumba(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("numba", "llvmlite"):
            raise ImportError(f"No module named {name!r} (blocked by the test)")

sys.meta_path.insert(0, NoNumba())
"""

_STEP = """
import sys
import numpy as np
import scratchopt
from scratchopt.optimizers import Adam
from scratchopt.optimizers.engine import fused_cpu as fused
assert "numba" not in sys.modules, "import scratchopt imported numba"
params = [np.ones(70001, np.float32), np.ones(3)]
grads = [np.full(70001, 0.5, np.float32), np.full(3, 0.25)]
opt = Adam(0.1)
opt.apply(grads, opt.pack(params) if PACK else params)
imported = "numba" in sys.modules  # before fused.available(), which imports it
print(fused.available(), imported)
"""


def python(code, **env):
    import os

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, **env}, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@pytest.mark.parametrize("pack", [False, True])
def test_without_numba_everything_runs_on_numpy(pack):
    out = python(_NO_NUMBA + _STEP.replace("PACK", str(pack)) + textwrap.dedent("""
        opt.backend = "fused"
        try:
            opt.apply(grads)
        except ImportError as error:
            assert "needs numba: pip install 'scratchopt[fast]'" in str(error), error
            assert opt.iterations == 1
        else:
            raise AssertionError("backend 'fused' without numba did not raise")
        """), SCRATCHOPT_BACKEND="")
    assert out[:2] == ["False", "False"]


@needs_numba
def test_import_does_not_import_numba_and_the_environment_forces_numpy():
    assert python(_STEP.replace("PACK", "False"), SCRATCHOPT_BACKEND="numpy")[1] == "False"
    assert python(_STEP.replace("PACK", "False"), SCRATCHOPT_BACKEND="")[:2] == ["True", "True"]
