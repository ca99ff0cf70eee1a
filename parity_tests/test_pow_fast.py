"""``numerics.pow_fast`` (TF's packet ``pow`` and clip, compiled) and Ftrl's fused CPU path
give the NumPy reference's bits.

* ``pow_fast.packet_pow`` (TF's packet ``pow``, one element, compiled) against
  ``pow.generic_pow`` (the NumPy reference, itself checked against ``tf.pow`` in
  test_pow.py), on drawn bases and exponents and every pair of special values;
* ``pow_fast.packet_clip`` against ``clip_by_value``'s whole packets, ties and subnormal
  bounds included;
* ``power_array`` compiled (the default with numba: Lamb's norms, Ftrl's array code)
  against ``SCRATCHOPT_BACKEND=numpy``, serial and parallel, with and without a tail;
* Ftrl stepped with ``backend="fused"`` against ``backend="numpy"``: drawn runs (the Keras
  parity tests' strategies) through the serial and the parallel kernel, and large tensors
  whose sizes leave a tail, with subnormals, NaN and inf; the kernel is checked to have run
  on the whole packets only.

Keras parity itself (test_more_optimizers.py) runs the default, fused, path too.
"""

import functools
import os
import subprocess
import sys
import textwrap
from unittest import mock

import numpy as np
import pytest
from conftest import scaled
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from optimizer_info import INFOS
from strategies import DTYPES, runs
from test_fused import KERNELS, assert_same_runs, kernel_sizes, mixed, trajectory

from scratchopt.numerics import sums_fast, tf_arithmetic
from scratchopt.numerics.elementwise import clip_by_value
from scratchopt.numerics.pow import LANES, generic_pow, power_array
from scratchopt.optimizers import Ftrl, ftrl
from scratchopt.optimizers.engine import fused_cpu as fused
from scratchopt.tools.parity import same_bits

pytestmark = pytest.mark.filterwarnings("ignore:Gradients do not exist")
pytest.importorskip("numba", reason="numba is not installed (pip install 'scratchopt[fast]'): "
                    "there is no compiled pow or fused path to compare")
from scratchopt.numerics import pow_fast  # noqa: E402  (imports numba)

FTRL = next(i for i in INFOS if i.name == "Ftrl")
SPECIAL = [0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0, np.inf, -np.inf, np.nan, 1e-30, 1e30, 7.25,
           200.0, -151.0, 1e10, -1e10, 1e-37, 3e38]


@functools.cache
def compiled(dtype):
    """Loops applying the compiled packet pow and clip element by element."""
    import numba

    packet_pow, packet_clip = pow_fast.kernels(np.dtype(dtype))

    @numba.njit
    def pow_each(x, y, out):
        for i in range(x.size):
            out[i] = packet_pow(x[i], y[i])

    @numba.njit
    def clip_each(x, lo, hi, out):
        for i in range(x.size):
            out[i] = packet_clip(x[i], lo, hi)

    return pow_each, clip_each


def packet_pow_of(x, y):
    out = np.empty_like(x)
    with tf_arithmetic():
        compiled(x.dtype)[0](x, y, out)
    return out


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_packet_pow_on_every_pair_of_special_values(dtype):
    values = np.array(SPECIAL + ([1e-300, 1e300] if dtype == np.float64 else []), dtype)
    x, y = (a.reshape(-1) for a in np.meshgrid(values, values))
    with tf_arithmetic():
        expected = generic_pow(x, y)
    assert same_bits(packet_pow_of(x, y), expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_packet_pow_on_an_optimizers_bases_and_exponents(dtype):
    """Ftrl's accumulators to the power -learning_rate_power, over 60 binades."""
    rng = np.random.default_rng(0)
    x = np.exp(rng.uniform(-20, 20, 200_000)).astype(dtype)
    y = rng.choice([0.5, -0.5, 1.5, 0.1, 1.0 / 3.0, 0.75], x.size).astype(dtype)
    with tf_arithmetic():
        expected = generic_pow(x, y)
    ours = packet_pow_of(x, y)
    assert same_bits(ours, expected), f"{np.count_nonzero(ours != expected)} of {x.size} differ"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@settings(max_examples=scaled(60), deadline=None)
@given(data=st.data())
def test_packet_pow_on_drawn_values(dtype, data):
    bits = np.finfo(dtype).bits
    n = data.draw(st.integers(1, 64))
    base = st.one_of(st.floats(width=bits), st.floats(-1e6, 1e6, width=bits), st.sampled_from(SPECIAL))
    exponent = st.one_of(st.floats(-12, 12, width=bits), st.integers(-40, 40).map(float),
                         st.floats(width=bits), st.sampled_from(SPECIAL))
    x = data.draw(arrays(dtype, n, elements=base))
    y = data.draw(arrays(dtype, n, elements=exponent))
    with tf_arithmetic():
        expected = generic_pow(x, y)
    assert same_bits(packet_pow_of(x, y), expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@settings(max_examples=scaled(40), deadline=None)
@given(data=st.data())
def test_packet_clip_is_clip_by_values_whole_packets(dtype, data):
    """Ties give the bound (-0 for 0 clipped to a subnormal range), NaN stays NaN."""
    bits = np.finfo(dtype).bits
    packet = LANES[np.dtype(dtype)]
    tiny = float(np.finfo(dtype).smallest_subnormal)
    x = data.draw(arrays(dtype, packet * data.draw(st.integers(1, 8)),
                         elements=st.one_of(st.floats(width=bits), st.sampled_from([0.0, -0.0, tiny, -tiny]))))
    bound = data.draw(st.one_of(st.floats(0, 10, width=bits), st.sampled_from([0.0, tiny, 3 * tiny])))
    lo, hi = dtype.type(-bound), dtype.type(bound)
    with tf_arithmetic():
        expected = clip_by_value(x, lo, hi)  # every element in a whole packet
        out = np.empty_like(x)
        compiled(x.dtype)[1](x, lo, hi, out)
    assert same_bits(out, expected) and np.array_equal(np.signbit(out), np.signbit(expected))


def numpy_power_array(x, y):
    with mock.patch.dict(os.environ, {"SCRATCHOPT_BACKEND": "numpy"}):
        return power_array(x, y)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@settings(max_examples=scaled(30), deadline=None)
@given(data=st.data())
def test_compiled_power_array_gives_the_references_bits(dtype, kernel, data):
    bits = np.finfo(dtype).bits
    n = data.draw(st.integers(1, 70))
    x = data.draw(arrays(dtype, n, elements=st.one_of(st.floats(width=bits), st.sampled_from(SPECIAL))))
    if data.draw(st.booleans()):
        y = np.asarray(data.draw(st.sampled_from([2.0, -0.5, 0.5, -0.3, 1.0, 0.0, np.nan]))).astype(dtype)
    else:
        y = data.draw(arrays(dtype, n, elements=st.floats(-8, 8, width=bits)))
    threshold = 0 if kernel == "parallel" else 1 << 62
    with mock.patch.object(sums_fast, "PARALLEL_MIN_ELEMENTS", threshold), \
            mock.patch.object(pow_fast, "power_array_whole_packets", wraps=pow_fast.power_array_whole_packets) as spy:
        ours = power_array(x, y)
    assert spy.called
    assert same_bits(ours, numpy_power_array(x, y))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_compiled_power_array_on_large_arrays_and_what_it_leaves_to_numpy(dtype):
    rng = np.random.default_rng(3)
    x = np.exp(rng.uniform(-30, 30, 300_007)).astype(dtype)
    for y in (np.asarray(2.0, dtype), np.exp(rng.uniform(-2, 2, x.size)).astype(dtype)):
        with mock.patch.object(sums_fast, "PARALLEL_MIN_ELEMENTS", 1 << 16):
            assert same_bits(power_array(x, y), numpy_power_array(x, y))
    with mock.patch.object(pow_fast, "power_array_whole_packets") as spy:
        strided = x[::2]
        assert same_bits(power_array(strided, np.asarray(2.0, dtype)), numpy_power_array(strided, np.asarray(2.0, dtype)))
        rows, exponents = x[:300_000].reshape(100, 3000), np.linspace(-1, 1, 3000).astype(dtype)
        assert same_bits(power_array(rows, exponents), numpy_power_array(rows, exponents))  # y broadcast
    assert not spy.called


@pytest.mark.parametrize("kernel", KERNELS)
@settings(max_examples=scaled(40), deadline=None)
@given(data=st.data())
def test_fused_ftrl_matches_numpy_on_drawn_runs(kernel, data):
    run = data.draw(runs(FTRL, max_steps=6, nonfinite=data.draw(st.booleans())))
    reference = trajectory(Ftrl, run.kwargs, run.params, run.grads, backend="numpy")
    with kernel_sizes(kernel), mock.patch.object(fused, "run", wraps=fused.run) as spy:
        ours = trajectory(Ftrl, run.kwargs, run.params, run.grads, backend="fused")
    assert_same_runs(reference, ours, f"Ftrl {kernel}")
    for call in spy.call_args_list:  # Ftrl's kernel saw whole packets only (weight decay's: anything)
        var = call.args[1][1]
        assert call.args[0] is not ftrl.update or var.size % LANES[var.dtype] == 0


@pytest.mark.parametrize("size", [5_003, 70_001, 16], ids=["below-crossover", "above-crossover", "no-tail"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@settings(max_examples=scaled(4), deadline=None)
@given(kwargs=FTRL.hyperparameters, seed=st.integers(0, 2**32 - 1))
def test_fused_ftrl_matches_numpy_on_large_tensors(dtype, size, kwargs, seed):
    """A tail (``size % LANES``) or none, values over every chunk, NaN and inf in one step."""
    rng = np.random.default_rng(seed)
    kwargs = dict(kwargs, learning_rate=0.05)
    params = [mixed(rng, size, dtype), mixed(rng, 3, dtype)]
    steps = [[mixed(rng, size, dtype, nonfinite=k == 2), mixed(rng, 3, dtype)] for k in range(3)]
    reference = trajectory(Ftrl, kwargs, params, steps, backend="numpy")
    with mock.patch.object(fused, "run", wraps=fused.run) as spy:
        ours = trajectory(Ftrl, kwargs, params, steps, backend="fused")
    assert_same_runs(reference, ours, f"Ftrl {dtype} {size}")
    whole = size - size % LANES[np.dtype(dtype)]
    sizes = {call.args[1][1].size for call in spy.call_args_list if call.args[0] is ftrl.update}
    assert sizes == {whole}  # the 3-element param is all tail


def test_views_and_the_numpy_backend_take_the_array_code():
    """A strided param cannot be cut into flat packets: the whole-tensor call runs it."""
    rng = np.random.default_rng(0)
    base = rng.standard_normal((40, 2)).astype(np.float32)
    grads = [rng.standard_normal(40).astype(np.float32) for _ in range(3)]
    results = []
    for backend, view in (("numpy", False), ("fused", True)):
        w = base.copy()
        param = w[:, 0] if view else w[:, 0].copy()
        opt = Ftrl(learning_rate=0.1, l1_regularization_strength=0.01)
        opt.backend = backend
        with mock.patch.object(fused, "run", wraps=fused.run) as spy:
            for g in grads:
                opt.apply([g], [param])
        assert not spy.called
        results.append(np.array(param))
    assert same_bits(*results)


def test_a_fused_step_warns_nothing():
    """A fused Ftrl step compiles without a warning, even under -W error (numba's SSA check
    warns about a branchy function inlined twice through ``overload``, numba issue 9489:
    the reason the engine swaps the rule's globals instead)."""
    code = textwrap.dedent("""
        import numpy as np
        from scratchopt.optimizers import Ftrl, ftrl
        w = np.ones(16, np.float32)  # float32, serial: the cheapest kernel to compile (7 s)
        Ftrl(l1_regularization_strength=0.01).apply([np.full(w.shape, 0.5, np.float32)], [w])
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout == "ok\n" and done.stderr == "", done.stderr[-2000:]
