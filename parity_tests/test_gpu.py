"""The CuPy path: the same array code on the GPU, compared with the NumPy path.

These run only where CuPy sees a CUDA device (marker ``gpu``); elsewhere they are skipped
with that reason. With ``clipnorm`` the GPU is not bit-exact against the CPU: it sums the
norms in another order. (Without norm clipping it is: ``test_fused_gpu.py`` checks the
same bits on ordinary values.) The bound below was derived before any GPU run (a few eps of
each step's size per step) and passed on an NVIDIA H200 (``benchmarks/results/nvidia-h200/
pytest_gpu.txt``). What that run measured (``benchmarks/gpu_vs_cpu.py``, clipnorm=1.0, 20
steps, ``gpu_vs_cpu.json``) is far inside it: at most 2.2e-7 (float32) and 3.4e-16
(float64) of each array's largest magnitude, 1.9 and 1.5 epsilons. Tightening the bound to
the measurement needs a GPU run to confirm it, which the session that measured it had no
device time left for.
"""

import numpy as np
import pytest

from optimizer_info import INFOS
from scratchopt.backend import namespace, to_numpy

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cp():
    import cupy

    return cupy


@pytest.mark.parametrize("info", [i for i in INFOS if i.fused], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cupy_steps_stay_on_the_gpu_and_track_numpy(cp, info, dtype):
    rng = np.random.default_rng(0)
    shapes = [(), (7,), (64, 33)]
    cpu = [rng.standard_normal(s).astype(dtype) for s in shapes]
    gpu = [cp.asarray(p) for p in cpu]
    ours_cpu, ours_gpu = info.cls(learning_rate=0.01, clipnorm=1.0), info.cls(learning_rate=0.01, clipnorm=1.0)
    eps = np.finfo(dtype).eps
    for step in range(1, 21):
        grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
        ours_cpu.apply(grads, cpu)
        ours_gpu.apply([cp.asarray(g) for g in grads], gpu)
        assert all(namespace(p) is cp for p in gpu)
        for a, b in zip(cpu, gpu):
            # Each step moves a weight by at most ~lr (Adam, RMSprop) or lr*|g| (SGD), and
            # FMA/sum-order rounding perturbs each step by a few eps of its size.
            bound = 16 * eps * step * (np.abs(a) + 0.01 * 10)
            assert np.all(np.abs(to_numpy(b) - a) <= bound), info.name


def test_mixing_real_cupy_and_numpy_fails_before_any_change(cp):
    from scratchopt.optimizers import Adam

    params = [cp.ones(3, cp.float32)]
    opt = Adam()
    with pytest.raises(TypeError, match="cannot mix NumPy and CuPy"):
        opt.apply([np.ones(3, np.float32)], params)
    assert not opt.built and bool((params[0] == 1).all())
    assert isinstance(to_numpy(params[0]), np.ndarray)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_draws_its_mask_on_the_gpu_with_the_cpus_bits(cp, dtype):
    """The same seed, the same masks: TF's Philox words computed by CuPy (``numerics.philox``),
    not drawn on the host and copied. The kept values are one IEEE multiply each, so ``y``
    is the CPU's too (ordinary values: nothing to flush)."""
    from unittest import mock

    from scratchopt import layers
    from scratchopt.numerics import philox

    x = np.random.default_rng(0).standard_normal((64, 33)).astype(dtype)
    cpu, gpu = layers.Dropout(0.3, seed=5), layers.Dropout(0.3, seed=5)
    drawn, original = [], philox.stateless_uniform

    def spy(*args, **kwargs):  # keeps what each draw returned
        drawn.append(original(*args, **kwargs))
        return drawn[-1]

    for call in range(2):
        y = cpu(x, training=True)
        with mock.patch.object(philox, "stateless_uniform", spy):
            y_gpu = gpu(cp.asarray(x), training=True)
        assert len(drawn) == call + 1 and namespace(drawn[-1]) is cp
        assert namespace(gpu.keep) is cp and namespace(y_gpu) is cp
        assert np.array_equal(to_numpy(gpu.keep), cpu.keep)
        assert np.array_equal(to_numpy(y_gpu), y)
