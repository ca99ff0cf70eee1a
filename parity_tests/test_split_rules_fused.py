"""The rules split around a reduction give, fused, the bits of their array code.

Lamb and Adafactor need each tensor whole (norms, RMS, means), so their ``update`` is
elementwise passes around the reductions, and the fused CPU path runs the passes as engine
kernels: Lamb's ``direction`` and ``descend`` around ``trust_ratio``; Adafactor's
``second_moment`` and ``descend`` around its two RMS for an unfactored ``v`` (params of
fewer than 2 dimensions), and ``squared_gradient``, ``normalized`` and ``descend`` around
the row and column means and the outer product for a factored one. The array code
(``opt.backend = "numpy"``) runs ``update``, which calls the same functions. Compared here
bit for bit: drawn runs with the Keras parity tests' strategies (NaN and inf included)
through the serial and the parallel kernels; large tensors next to small ones of another
dtype (the scratch array is one buffer, reused across sizes and dtypes); strided params and
gradients, which the kernels leave to array code. Each test checks which kernels ran, so
that a silent fallback cannot pass. Keras parity itself (test_more_optimizers.py) runs the
default, fused, path.
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

from scratchopt import optimizers
from scratchopt.optimizers import adafactor, lamb
from scratchopt.optimizers.engine import fused_cpu as fused
from scratchopt.tools.parity import same_bits

pytestmark = pytest.mark.filterwarnings("ignore:Gradients do not exist")
pytest.importorskip("numba", reason="numba is not installed (pip install 'scratchopt[fast]'): no fused path")

#: Each optimizer's module, and the kernels one step of a param of ``ndim`` runs, in order.
SPLIT = {
    "Lamb": (lamb, lambda ndim: [lamb.direction, lamb.descend]),
    "Adafactor": (adafactor, lambda ndim: [adafactor.second_moment, adafactor.descend] if ndim < 2
                  else [adafactor.squared_gradient, adafactor.normalized, adafactor.descend]),
}
NAMES = list(SPLIT)


def info(name):
    return next(i for i in INFOS if i.name == name)


def expected_kernels(name, params, grads):
    """The kernels that stepping ``params`` with each of ``grads`` in turn runs, in order."""
    passes = SPLIT[name][1]
    return [rule for step in grads for p, g in zip(params, step) if g is not None for rule in passes(np.ndim(p))]


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

    def of(self, module):
        """The rules of ``module`` that ran (not, say, weight decay's)."""
        return [rule for rule in self.ran if rule.__module__ == module.__name__]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kernel", KERNELS)
@settings(max_examples=scaled(30), deadline=None)
@given(data=st.data())
def test_fused_matches_numpy_on_drawn_runs(name, kernel, data):
    cls, module = getattr(optimizers, name), SPLIT[name][0]
    run = data.draw(runs(info(name), max_steps=6, nonfinite=data.draw(st.booleans())))
    reference = trajectory(cls, run.kwargs, run.params, run.grads, backend="numpy")
    with kernel_sizes(kernel), Kernels() as kernels:
        ours = trajectory(cls, run.kwargs, run.params, run.grads, backend="fused")
    assert_same_runs(reference, ours, f"{name} {kernel}")
    ran = kernels.of(module)
    assert module.update not in ran
    if not run.kwargs.get("gradient_accumulation_steps"):  # every call steps, every gradient its kernels
        assert ran == expected_kernels(name, run.params, run.grads)
    else:  # some calls only accumulate: the kernels of whole steps of the params
        steps, current = [], []
        for rule in ran:
            current.append(rule)
            if rule is module.descend:
                steps, current = [*steps, current], []
        assert not current
        assert all(step in [SPLIT[name][1](np.ndim(p)) for p in run.params] for step in steps)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=str)
@settings(max_examples=scaled(4), deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_fused_matches_numpy_on_large_and_small_tensors(name, dtype, data, seed):
    """A large tensor, then small ones of other shapes (a view of the same scratch buffer),
    and params of the other dtype; values over every chunk, NaN and inf in one step."""
    cls = getattr(optimizers, name)
    rng = np.random.default_rng(seed)
    kwargs = dict(data.draw(info(name).hyperparameters), learning_rate=0.05, weight_decay=0.01)
    other = np.float64 if dtype == np.float32 else np.float32
    shapes = [((70_001,), dtype), ((7,), dtype), ((5,), other), ((300, 234), other), ((40_000,), other)]
    params = [mixed(rng, int(np.prod(s)), d).reshape(s) for s, d in shapes]
    steps = [[mixed(rng, int(np.prod(s)), d, nonfinite=k == 2).reshape(s) for s, d in shapes] for k in range(3)]
    reference = trajectory(cls, kwargs, params, steps, backend="numpy")
    with Kernels() as kernels:
        ours = trajectory(cls, kwargs, params, steps, backend="fused")
    assert_same_runs(reference, ours, f"{name} {np.dtype(dtype)}")
    assert kernels.of(SPLIT[name][0]) == expected_kernels(name, params, steps)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(4000,), (80, 50)], ids=["1-D", "2-D"])
def test_strided_params_and_gradients_take_array_code_in_the_same_bits(name, shape):
    cls, module = getattr(optimizers, name), SPLIT[name][0]
    rng = np.random.default_rng(0)
    base = rng.standard_normal((*shape, 2)).astype(np.float32)
    grads = [rng.standard_normal((*shape, 3)).astype(np.float32)[..., 1] for _ in range(3)]  # strided too
    results = []
    for backend in ("numpy", "fused"):
        w = base.copy()
        param = w[..., 0]  # a strided view: the kernels cannot take it
        opt = cls(learning_rate=0.1)
        opt.backend = backend
        with Kernels() as kernels:
            for g in grads:
                opt.apply([g], [param])
        assert module.descend not in kernels.ran  # the strided param: array code
        results.append(np.array(param))
    assert same_bits(*results)
    assert not same_bits(results[0], base[..., 0])  # it moved
