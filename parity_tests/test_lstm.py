"""``scratchopt.nn.LSTM`` against Keras's ``LSTM`` (forward and BPTT), its masks, its checks.

Bit-exact: float64 NumPy on the shapes where ``numerics.matmul`` follows TF's float64 matmul
(a batch of 2 or more, ``units`` and features multiples of 8, or tiny), with and without
dropout (each layer drawing its masks from the same seed: the masks are compared too, bit for
bit). Elsewhere a bound measured by ``parity_tests/measure_lstm.py``.
"""

import inspect

import numpy as np
import pytest
from conftest import scaled
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchopt.nn.lstm import LSTM
from scratchopt.tools.parity import same_bits
from scratchopt.tools.parity_lstm import (
    FLOAT32_BOUND_EPS,
    FLOAT64_BOUND_EPS,
    KEYS,
    LSTM_ROWS,
    lstm_pair,
    run_lstm_row,
    scaled_error,
)

EXACT_CASES = [
    ({"units": 8}, (4, 6, 8), False),
    ({"units": 8, "return_sequences": True}, (3, 5, 16), False),
    ({"units": 16, "dropout": 0.3}, (16, 8, 8), True),  # one input mask, shared by the gates
    ({"units": 8, "dropout": 0.2, "recurrent_dropout": 0.2}, (4, 9, 8), True),  # four + four masks
    ({"units": 8, "recurrent_dropout": 0.3, "return_sequences": True}, (5, 4, 8), True),
    ({"units": 8, "recurrent_dropout": 0.3}, (4, 6, 8), False),  # split products, no masks
    ({"units": 8, "use_bias": False, "unit_forget_bias": False}, (4, 6, 8), False),
    ({"units": 4, "activation": "sigmoid", "recurrent_activation": None}, (2, 5, 3), False),
    ({"units": 8}, (4, 10, 8), False),  # 10 steps: TF's AddN in chunks of 8
]


@pytest.mark.parametrize("kwargs, shape, training", EXACT_CASES)
def test_float64_is_bit_exact(tf, kwargs, shape, training):
    ours, theirs, _ = lstm_pair(kwargs, shape, "float64", training, seed=1)
    for name, mask in theirs["masks"].items():
        assert (ours["masks"][name] is None) if mask is None else same_bits(ours["masks"][name], mask), name
    for key in KEYS:
        if key in theirs:
            assert same_bits(ours[key], theirs[key]), (key, scaled_error(ours, theirs, key, None))


BOUNDED_CASES = [
    ({"units": 5}, (4, 6, 8), False),  # 4u = 20 columns: TF's matmul blocks differently
    ({"units": 8}, (4, 6, 5), False),  # 5 features: dx's product
    ({"units": 8}, (1, 6, 8), False),  # one sequence: Eigen's vector kernels
    ({"units": 6, "dropout": 0.2, "recurrent_dropout": 0.2}, (6, 7, 7), True),
]


@pytest.mark.parametrize("kwargs, shape, training", BOUNDED_CASES)
def test_float64_off_the_exact_shapes_within_the_measured_bound(tf, kwargs, shape, training):
    ours, theirs, inputs = lstm_pair(kwargs, shape, "float64", training, seed=2)
    for key in KEYS:
        if key in theirs:
            assert scaled_error(ours, theirs, key, inputs) <= FLOAT64_BOUND_EPS, key


@pytest.mark.parametrize("kwargs, training", [({"units": 8}, False),
                                              ({"units": 8, "dropout": 0.2, "recurrent_dropout": 0.2}, True),
                                              ({"units": 8, "return_sequences": True, "dropout": 0.3}, True)])
def test_float32_within_the_measured_bound(tf, kwargs, training):
    ours, theirs, inputs = lstm_pair(kwargs, (4, 6, 8), "float32", training, seed=3)
    for key in KEYS:
        if key in theirs:
            assert ours[key].dtype == np.float32
            assert scaled_error(ours, theirs, key, inputs) <= FLOAT32_BOUND_EPS, key


def test_the_checks_can_fail(tf, monkeypatch):
    """Each check sees a plausible mistake: libm's sigmoid instead of TF's (bits), another
    mask than Keras's (far beyond the bound), the textbook op order with recurrent dropout."""
    from scratchopt.nn import lstm

    kwargs, shape = {"units": 8, "dropout": 0.2, "recurrent_dropout": 0.2}, (4, 6, 8)
    with monkeypatch.context() as m:
        m.setattr(lstm, "_eigen_sigmoid", lambda x: 1 / (1 + np.exp(-x)))
        ours, theirs, _ = lstm_pair({"units": 8}, shape, "float64", False, seed=1)
        assert not same_bits(ours["y"], theirs["y"])
    with monkeypatch.context() as m:
        m.setattr(lstm, "GATE_SUM_ORDER", (0, 1, 2, 3))
        ours, theirs, _ = lstm_pair(kwargs, shape, "float64", True, seed=1)
        assert not same_bits(ours["dx"], theirs["dx"])

    real = LSTM._draw

    def other_masks(self, count, shape, rate, dtype, xp):
        out = real(self, count, shape, rate, dtype, xp)
        if count == 4 and shape[-1] == self.units:  # the recurrent masks
            out[0, 0, 0] = 0 if out[0, 0, 0] else out.max()  # one entry of one gate's mask
        return out

    monkeypatch.setattr(LSTM, "_draw", other_masks)
    ours, theirs, inputs = lstm_pair(kwargs, shape, "float64", True, seed=1)
    assert max(scaled_error(ours, theirs, k, inputs) for k in KEYS) > 100 * FLOAT64_BOUND_EPS
    assert not run_lstm_row("", kwargs, shape, "float64", True).passed


def test_parity_rows(tf):
    for label, kwargs, shape, dtype, training in LSTM_ROWS:
        row = run_lstm_row(label, kwargs, shape, dtype, training, steps=1)
        if dtype == "float64":
            assert row.exact, row
        else:
            assert row.bound and row.within and row.passed and "eps" in row.note, row


# --- masks: Keras's semantics ---------------------------------------------------------------

def test_masks_are_drawn_once_per_sequence_and_reused_at_every_step():
    x = np.random.default_rng(0).standard_normal((3, 5, 4))
    one = LSTM(6, dropout=0.5, seed=0, dtype="float64")
    one(x, training=True)
    assert one.masks["dropout"].shape == (3, 4) and one.masks["recurrent_dropout"] is None
    four = LSTM(6, dropout=0.5, recurrent_dropout=0.25, seed=0, dtype="float64")
    four(x, training=True)
    assert four.masks["dropout"].shape == (4, 3, 4)
    assert four.masks["recurrent_dropout"].shape == (4, 3, 6)
    assert set(np.unique(four.masks["recurrent_dropout"])) <= {0.0, 1 / 0.75}
    # the same masks at every step: steps given the masks reproduce the call exactly
    given = {k: v for k, v in four.masks.items()}
    y = four(x, training=True, masks=given)
    again = four(x, training=True, masks={k: v != 0 for k, v in given.items()})  # booleans work too
    assert same_bits(y, again)
    # a new call draws new masks
    four(x, training=True)
    assert not np.array_equal(four.masks["recurrent_dropout"], given["recurrent_dropout"])


@settings(max_examples=scaled(20))
@given(seed=st.integers(-(2**63), 2**63 - 1),
       kwargs=st.sampled_from([{"dropout": 0.3}, {"dropout": 0.2, "recurrent_dropout": 0.2},
                               {"recurrent_dropout": 0.4}, {"dropout": 1.0, "recurrent_dropout": 0.3},
                               {"dropout": 0.5, "return_sequences": True}]),
       calls=st.lists(st.booleans(), min_size=1, max_size=4))
def test_draws_kerass_masks_call_after_call(tf, seed, kwargs, calls):
    """``LSTM(..., seed=s)`` and ``keras.layers.LSTM(..., seed=s)``, the same weights, called
    alike (training or not, in any order): the same outputs, bit for bit, at every call. Keras
    draws the masks at inference too and does not use them; a layer that did not spend those
    seed pairs would drop other units at its next training call."""
    import keras

    x = np.random.default_rng(abs(seed) % 2**32).standard_normal((4, 6, 8))
    ours = LSTM(8, seed=seed, dtype="float64", **kwargs)
    ours.build(x.shape)
    theirs = keras.layers.LSTM(8, seed=seed, dtype="float64", **kwargs)
    theirs.build(x.shape)
    for name in ("kernel", "recurrent_kernel", "bias"):
        getattr(theirs.cell, name).assign(ours.params[name])
    for call, training in enumerate(calls):
        y = ours(x, training=training)
        assert same_bits(y, theirs(tf.constant(x), training=training).numpy()), (call, training)


def test_a_given_mask_spends_no_seed_and_a_bad_one_changes_nothing():
    x = np.random.default_rng(2).standard_normal((2, 3, 4))
    layer = LSTM(5, dropout=0.5, recurrent_dropout=0.5, seed=9, dtype="float64")
    layer(x, training=True)
    state = list(layer._seeds.state)
    assert state == [9, 8]  # four input masks, then four recurrent ones: a pair each
    layer(x, training=True, masks=layer.masks)
    assert layer._seeds.state == state
    layer(x, training=True, masks={"dropout": layer.masks["dropout"]})  # the recurrent ones drawn
    assert layer._seeds.state == [9, 12]
    with pytest.raises(ValueError, match="recurrent_dropout"):  # checked before the input masks are drawn
        layer(x, training=True, masks={"recurrent_dropout": np.ones((4, 2, 4))})
    assert layer._seeds.state == [9, 12]


def test_no_dropout_at_inference_and_rate_one_drops_nothing_as_in_keras():
    x = np.random.default_rng(1).standard_normal((2, 4, 3))
    plain = LSTM(4, seed=5, dtype="float64")
    y = plain(x)
    dropped = LSTM(4, dropout=0.5, seed=5, dtype="float64")
    assert same_bits(dropped(x, training=False), y) and dropped.masks["dropout"] is None
    everything = LSTM(4, dropout=1.0, seed=5, dtype="float64")  # Keras's cell applies 0 < rate < 1 only
    assert same_bits(everything(x, training=True), y)


def test_weights_as_keras_initializes_them():
    layer = LSTM(4, seed=3, dtype="float64")
    layer.build((2, 3, 6))
    kernel, rec, bias = (layer.params[k] for k in ("kernel", "recurrent_kernel", "bias"))
    assert kernel.shape == (6, 16) and np.abs(kernel).max() <= np.sqrt(6 / (6 + 16))
    np.testing.assert_allclose(rec @ rec.T, np.eye(4), atol=1e-12)  # orthogonal rows
    assert bias.tolist() == [0.0] * 4 + [1.0] * 4 + [0.0] * 8
    same = LSTM(4, seed=3, dtype="float64")
    same.build(6)
    assert all(same_bits(same.params[k], layer.params[k]) for k in layer.params)
    assert LSTM(4, unit_forget_bias=False, seed=0).build(6) is None


def test_signature_is_keras(tf):
    import keras

    theirs = [(p.name, p.default) for p in inspect.signature(keras.layers.LSTM.__init__).parameters.values()
              if p.kind is not p.VAR_KEYWORD]
    ours = [(p.name, p.default) for p in inspect.signature(LSTM.__init__).parameters.values()]
    assert ours[:len(theirs)] == theirs


# --- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, name", [
    ({"units": 0}, ValueError, "units"), ({"units": -3}, ValueError, "units"),
    ({"units": 2.5}, TypeError, "units"), ({"units": True}, TypeError, "units"),
    ({"units": 4, "dropout": 1.5}, ValueError, "dropout"), ({"units": 4, "dropout": -0.1}, ValueError, "dropout"),
    ({"units": 4, "recurrent_dropout": float("nan")}, ValueError, "recurrent_dropout"),
    ({"units": 4, "dropout": "0.2"}, TypeError, "dropout"),
    ({"units": 4, "activation": "relu6"}, ValueError, "activation"),
    ({"units": 4, "kernel_initializer": "he_normal"}, ValueError, "kernel_initializer"),
    ({"units": 4, "go_backwards": True}, ValueError, "go_backwards"),
    ({"units": 4, "use_cudnn": "yes"}, ValueError, "use_cudnn"),
    ({"units": 4, "dtype": "int32"}, ValueError, "dtype"),
])
def test_bad_arguments(kwargs, error, name):
    with pytest.raises(error, match=f"`{name}`"):
        LSTM(**kwargs)


def test_bad_inputs_change_nothing():
    layer = LSTM(4, seed=0, dtype="float64")
    x = np.random.default_rng(0).standard_normal((2, 3, 5))
    y = layer(x)
    before = {k: v.copy() for k, v in layer.params.items()}
    last = layer._last
    for bad, error in [(x[0], ValueError), (x[..., None], ValueError), (x[..., :4], ValueError),
                       (x.astype(np.float32), TypeError), (x.astype(int), TypeError), (x.tolist(), TypeError)]:
        with pytest.raises(error, match="`x`"):
            layer(bad)
        assert layer._last is last
    fresh = LSTM(4, dropout=0.5, dtype="float64")
    with pytest.raises(ValueError, match="masks"):
        fresh(x, training=True, masks={"dropout": np.ones((2, 4))})
    assert not fresh.built and not fresh.params
    with pytest.raises(ValueError, match="`dy`"):
        layer.backward(np.ones((2, 3, 4)))
    assert all(same_bits(before[k], layer.params[k]) for k in before)
    assert same_bits(layer.backward(np.ones_like(y)), layer.backward(np.ones_like(y)))


def test_backward_uses_the_calls_values():
    """Changing x or the weights in place after the call does not change the gradients (as a tape)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 5))
    layer = LSTM(4, seed=0, dtype="float64")
    layer(x)
    dx = layer.backward(np.ones((2, 4)))
    grads = dict(layer.grads)
    x[...] = 0
    layer.params["kernel"][...] = 0
    assert same_bits(layer.backward(np.ones((2, 4))), dx)
    assert all(same_bits(grads[k], layer.grads[k]) for k in grads)


@pytest.mark.gpu
def test_cupy_matches_numpy_within_the_bound():
    import cupy as cp

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6, 8))
    dy = rng.standard_normal((4, 6, 8))
    for dtype, bound in (("float64", FLOAT64_BOUND_EPS), ("float32", FLOAT32_BOUND_EPS)):
        cpu = LSTM(8, dropout=0.2, recurrent_dropout=0.2, return_sequences=True, seed=0, dtype=dtype)
        gpu = LSTM(8, dropout=0.2, recurrent_dropout=0.2, return_sequences=True, seed=0, dtype=dtype)
        y = cpu(x.astype(dtype), training=True)
        yg = gpu(cp.asarray(x.astype(dtype)), training=True)  # the same seed: the same weights and masks
        assert isinstance(yg, cp.ndarray)
        ours = {"y": y, "dx": cpu.backward(dy.astype(dtype)), **cpu.grads}
        theirs = {"y": yg.get(), "dx": gpu.backward(cp.asarray(dy.astype(dtype))).get(),
                  **{k: v.get() for k, v in gpu.grads.items()}}
        for key in KEYS:
            assert scaled_error(theirs, ours, key, None) <= bound, (dtype, key)


def test_the_demo_runs_and_draws(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    from scratchopt.tools.demos import lstm as demo

    x_train, y_train, x_val, _ = demo.digits_sequences()
    assert x_train.shape == (1437, 8, 8) and x_val.shape == (360, 8, 8) and 0 <= x_train.min() <= x_train.max() <= 1
    assert set(y_train.tolist()) == set(range(10))
    assert demo.main(tmp_path / "lstm.png", epochs=1) == 0
    assert (tmp_path / "lstm.png").stat().st_size > 10_000
