"""Lamb's fused CPU path gives the bits of its array code (``opt.backend = "numpy"``).

The fused step runs ``lamb.direction`` and ``lamb.descend`` (elementwise) as engine kernels
around ``lamb.trust_ratio`` (the norms, whole tensors); the array code runs ``lamb.update``,
which calls the same three. Compared here bit for bit: drawn runs with the Keras parity
tests' strategies (NaN and inf included) through the serial and the parallel kernels, large
tensors next to small ones (the scratch array for ``r`` is one buffer, reused across sizes
and dtypes), and strided params and gradients, which the kernels leave to array code. Each
test checks which kernels ran, so that a silent fallback cannot pass. Keras parity itself
(test_more_optimizers.py) runs the default, fused, path.
"""

from unittest import mock

import numpy as np
import pytest
from conftest import scaled
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizer_info import INFOS
from strategies import runs
from test_fused import KERNELS, assert_same_runs, kernel_sizes, mixed, trajectory

from scratchopt.optimizers import Lamb, lamb
from scratchopt.optimizers.engine import fused_cpu as fused
from scratchopt.tools.parity import same_bits

pytestmark = pytest.mark.filterwarnings("ignore:Gradients do not exist")
pytest.importorskip("numba", reason="numba is not installed (pip install 'scratchopt[fast]'): no fused path")

LAMB = next(i for i in INFOS if i.name == "Lamb")


class Kernels:
    """Which rules the fused CPU kernel ran (``fused.run`` returned True: not a fallback)."""

    def __enter__(self):
        self.ran = []
        run = fused.run

        def recording(rule, *args, **kwargs):
            done = run(rule, *args, **kwargs)
            if done:
                self.ran.append(rule)
            return done

        self._patch = mock.patch.object(fused, "run", recording)
        self._patch.start()
        return self

    def __exit__(self, *exc):
        self._patch.stop()


@pytest.mark.parametrize("kernel", KERNELS)
@settings(max_examples=scaled(30), deadline=None)
@given(data=st.data())
def test_fused_lamb_matches_numpy_on_drawn_runs(kernel, data):
    run = data.draw(runs(LAMB, max_steps=6, nonfinite=data.draw(st.booleans())))
    reference = trajectory(Lamb, run.kwargs, run.params, run.grads, backend="numpy")
    with kernel_sizes(kernel), Kernels() as kernels:
        ours = trajectory(Lamb, run.kwargs, run.params, run.grads, backend="fused")
    assert_same_runs(reference, ours, f"Lamb {kernel}")
    assert kernels.ran.count(lamb.direction) == kernels.ran.count(lamb.descend)
    if not run.kwargs.get("gradient_accumulation_steps"):  # every call steps, every gradient a kernel
        assert kernels.ran.count(lamb.direction) == sum(g is not None for step in run.grads for g in step)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=str)
@settings(max_examples=scaled(4), deadline=None)
@given(kwargs=LAMB.hyperparameters, seed=st.integers(0, 2**32 - 1))
def test_fused_lamb_matches_numpy_on_large_and_small_tensors(dtype, kwargs, seed):
    """A large tensor, then small ones of other shapes (``r`` in a view of the same buffer),
    and a float64 param after a float32 one; values over every chunk, NaN and inf in one step."""
    rng = np.random.default_rng(seed)
    kwargs = dict(kwargs, learning_rate=0.05, weight_decay=0.01)
    other = np.float64 if dtype == np.float32 else np.float32
    shapes = [((300, 234), dtype), ((7, 3), dtype), ((5,), other), ((70_001,), other)]
    params = [mixed(rng, int(np.prod(s)), d).reshape(s) for s, d in shapes]
    steps = [[mixed(rng, int(np.prod(s)), d, nonfinite=k == 2).reshape(s) for s, d in shapes] for k in range(3)]
    reference = trajectory(Lamb, kwargs, params, steps, backend="numpy")
    with Kernels() as kernels:
        ours = trajectory(Lamb, kwargs, params, steps, backend="fused")
    assert_same_runs(reference, ours, f"Lamb {np.dtype(dtype)}")
    assert kernels.ran.count(lamb.direction) == kernels.ran.count(lamb.descend) == 3 * len(shapes)


def test_strided_params_and_gradients_take_array_code_in_the_same_bits():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((4000, 2)).astype(np.float32)
    grads = [rng.standard_normal((4000, 3)).astype(np.float32)[:, 1] for _ in range(3)]  # strided too
    results = []
    for backend in ("numpy", "fused"):
        w = base.copy()
        param = w[:, 0]  # a strided view: the kernels cannot take it
        opt = Lamb(learning_rate=0.1)
        opt.backend = backend
        with Kernels() as kernels:
            for g in grads:
                opt.apply([g], [param])
        assert lamb.descend not in kernels.ran  # the strided param: array code
        results.append(np.array(param))
    assert same_bits(*results)
    assert not same_bits(results[0], base[:, 0])  # it moved
