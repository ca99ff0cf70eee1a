"""``scratchopt.torch.nn`` against torch 2.13 (CPU, one intra-op thread).

Exact where ATen's order is reproduced (BatchNorm's forward and running statistics, the
(N, C) sums, Dropout given torch's mask, clipping); within the bounds measured by
``parity_tests/measure_torch_nn.py`` elsewhere (``parity_torch_nn.BOUNDS``).
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from scratchopt.tools import parity_torch_nn as P
from scratchopt.tools.parity import Row
from scratchopt.torch import nn as tnn
from scratchopt.torch.nn import utils

torch.set_num_threads(1)
DTYPES = ["float32", "float64"]
COMPONENTS = [c for c, _ in P.TORCH_NN_ROWS]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("component", COMPONENTS)
def test_row_exact_where_reproduced_and_within_the_measured_bounds(component, dtype):
    cmp = P.compare_torch_nn(component, dtype, steps=4, seed=7)
    assert not cmp.misses, f"{component} {dtype}: not the same bits: {cmp.misses}"
    assert cmp.within_bounds(), cmp.finish().note
    row = cmp.finish()
    assert isinstance(row, Row)
    assert row.exact == (not cmp.misses and all(v == 0 for v in cmp.worst.values()))


@settings(max_examples=8)
@given(seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from(DTYPES),
       component=st.sampled_from(["BatchNorm1d (N, C)", "BatchNorm2d", "LayerNorm", "clip_grad_norm_"]))
def test_hypothesis_drawn_cases(seed, dtype, component):
    cmp = P.compare_torch_nn(component, dtype, steps=1, seed=seed)
    assert not cmp.misses and cmp.within_bounds(), cmp.finish().note


def test_the_check_can_fail(monkeypatch):
    """Two roundings for x*alpha + beta (no FMA) are caught: not the same bits as torch."""
    def two_roundings(x, mean, invstd, w, b, shape):
        alpha = invstd * w
        beta = b - mean * alpha
        return x * alpha.reshape(shape) + beta.reshape(shape), alpha

    monkeypatch.setattr(tnn.BatchNorm1d, "_normalize", staticmethod(two_roundings))
    cmp = P.compare_torch_nn("BatchNorm1d (N, C)", "float32", steps=4, seed=7)
    assert "y" in cmp.misses and not cmp.finish().exact
    # and a bounded array 16 eps off fails its bound
    bounded = P.Comparison("x", "float32", 1)
    ref = np.ones(4, np.float32)
    bounded.bounded("LayerNorm y", ref * (1 + 16 * np.finfo(np.float32).eps), ref)
    assert not bounded.within_bounds()


# --- the torch conventions, shown on small cases ------------------------------------------------


def test_running_var_is_unbiased_and_momentum_is_the_new_share():
    bn = tnn.BatchNorm1d(1)
    x = np.array([[1.0], [3.0]], np.float32)  # mean 2, biased var 1, unbiased var 2
    bn(x)
    assert bn.running_mean[0] == np.float32(0.1) * np.float32(2)  # 0.9 * 0 + 0.1 * 2
    assert math.isclose(bn.running_var[0], 0.9 + 0.1 * 2, rel_tol=1e-6)
    assert bn.num_batches_tracked == 1


def test_momentum_none_is_a_cumulative_average():
    bn = tnn.BatchNorm1d(1, momentum=None)
    for mean in (2.0, 4.0, 6.0):
        bn(np.array([[mean - 1], [mean + 1]], np.float64))
    assert math.isclose(bn.running_mean[0], 4.0)


def test_train_eval_and_grads_keys():
    bn = tnn.BatchNorm2d(3)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    bn(x)
    bn.backward(np.ones_like(x))
    assert set(bn.grads) == {"weight", "bias"} and bn.grads["weight"].shape == (3,)
    before = bn.running_mean.copy()
    bn.eval()
    bn(x)
    assert np.array_equal(before, bn.running_mean) and not bn.training
    assert bn.train() is bn and bn.training
    no_affine = tnn.BatchNorm1d(3, affine=False)
    no_affine(x[:, :, 0, 0])
    no_affine.backward(np.ones((2, 3), np.float32))
    assert no_affine.grads == {} and no_affine.weight is None


def test_track_running_stats_false_uses_batch_statistics_in_eval():
    bn = tnn.BatchNorm1d(2, track_running_stats=False).eval()
    x = np.array([[1.0, 2.0], [3.0, 6.0]])
    assert bn.running_mean is None
    np.testing.assert_allclose(bn(x), [[-1, -1], [1, 1]], atol=1e-4)


def test_float64_input_remakes_float32_parameters_once():
    bn = tnn.BatchNorm1d(2)
    bn(np.ones((3, 2)) * np.arange(3)[:, None])
    assert bn.weight.dtype == np.float64
    with pytest.raises(TypeError):
        bn(np.ones((3, 2), np.float32))


def test_dropout_scales_by_the_rounded_reciprocal_not_a_division():
    p = 0.3
    x = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
    keep = np.ones(1000, bool)
    y = tnn.Dropout(p)(x, keep=keep)
    assert np.array_equal(y, x * np.float32(1 / (1 - p)))
    assert not np.array_equal(y, x / np.float32(1 - p))  # the textbook form differs in the last bit
    torch.manual_seed(0)
    t = torch.nn.Dropout(p)(torch.from_numpy(x)).numpy()
    assert np.array_equal(tnn.Dropout(p)(x, keep=t != 0), t)


def test_dropout_modes_and_edges():
    x = np.arange(1.0, 5.0)
    assert np.array_equal(tnn.Dropout(1.0)(x), np.zeros(4))
    assert np.array_equal(tnn.Dropout(0.0)(x), x)
    d = tnn.Dropout(0.5, seed=0)
    assert set(np.unique(d(np.ones(200)))) == {0.0, 2.0}
    assert np.array_equal(d.eval()(x), x)


@pytest.mark.parametrize(("make", "torch_make"), [
    (lambda: tnn.BatchNorm1d(-1), lambda: torch.nn.BatchNorm1d(-1)),
    (lambda: tnn.BatchNorm1d(1.5), lambda: torch.nn.BatchNorm1d(1.5)),
    (lambda: tnn.BatchNorm2d("a"), lambda: torch.nn.BatchNorm2d("a")),
    (lambda: tnn.Dropout(1.1), lambda: torch.nn.Dropout(1.1)),
    (lambda: tnn.Dropout(-0.1), lambda: torch.nn.Dropout(-0.1)),
    (lambda: tnn.Dropout("a"), lambda: torch.nn.Dropout("a")),
    (lambda: tnn.LayerNorm(-1), lambda: torch.nn.LayerNorm(-1)),
    (lambda: tnn.LayerNorm(1.5), lambda: torch.nn.LayerNorm(1.5)),
    (lambda: tnn.LayerNorm("a"), lambda: torch.nn.LayerNorm("a")),
])
def test_bad_arguments_raise_torchs_exception_type(make, torch_make):
    with pytest.raises(Exception) as theirs:
        torch_make()
    with pytest.raises(type(theirs.value)):
        make()


@pytest.mark.parametrize(("layer", "x", "error"), [
    (lambda: tnn.BatchNorm1d(3), np.zeros((2, 4)), RuntimeError),
    (lambda: tnn.BatchNorm1d(3), np.zeros((1, 3)), ValueError),
    (lambda: tnn.BatchNorm1d(3), np.zeros((2, 3, 4, 5)), ValueError),
    (lambda: tnn.BatchNorm2d(3), np.zeros((2, 3, 4)), ValueError),
    (lambda: tnn.LayerNorm(4), np.zeros((2, 5)), RuntimeError),
])
def test_bad_inputs_raise_torchs_exception_type_and_change_nothing(layer, x, error):
    module = layer()
    state = {k: None if v is None else v.copy() for k, v in vars(module).items() if isinstance(v, np.ndarray)}
    with pytest.raises(error):
        module(x)
    for k, v in state.items():
        assert np.array_equal(getattr(module, k), v)


def test_clip_grad_norm_inf_and_error_if_nonfinite():
    grads = [np.array([3.0, -7.0]), np.array([5.0])]
    total = utils.clip_grad_norm_(grads, 3.5, norm_type=math.inf)
    assert total == 7.0 and np.allclose(grads[0], [1.5, -3.5], atol=1e-6)
    with pytest.raises(RuntimeError, match="non-finite"):
        utils.clip_grad_norm_([np.array([np.inf])], 1.0, error_if_nonfinite=True)
    g = np.array([np.nan, 1.0])
    assert np.isnan(utils.clip_grad_norm_([g], 1.0)) and np.isnan(g).all()
    with pytest.raises(TypeError):
        utils.clip_grad_norm_([np.ones(2, np.float32), np.ones(2)], 1.0)


def test_clip_grad_norm_serial_sum_for_norm_1_is_not_numpys_pairwise_sum():
    x = np.random.default_rng(3).standard_normal(5000).astype(np.float32)
    ours = utils.get_total_norm([x], 1.0)
    ref = torch.linalg.vector_norm(torch.from_numpy(x), 1).numpy()
    assert ours == ref
    assert np.abs(x).sum() != ref or np.abs(x[::-1]).sum() != ref  # another order: other bits
