"""Callbacks against the real Keras callbacks, and Keras's quirks computed by hand.

The drawn tests run a scratchopt callback and its Keras namesake over the same monitored
values (exact ties, values a sub-ULP apart, NaN, inf, Python floats and ints, np.float32,
np.float64, missing values) and compare every epoch's learning rate (its bits), counters,
the stop, ``stopped_epoch``, the restored weights, warnings, printed messages and errors
(``scratchopt.tools.parity_callbacks``). The quirk tests compute the expected numbers from
Keras's rules by hand, and check Keras agrees.
"""

import math
import subprocess
import sys
import types

import numpy as np
import pytest
from conftest import scaled
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

from scratchopt import callbacks
from scratchopt.optimizers import SGD
from scratchopt.tools.parity_callbacks import (
    CALLBACK_CONFIGS,
    StandInModel,
    first_difference,
    run_callback,
    run_callback_pair,
    run_config,
)

f32 = np.float32

# TF reading a variable under NumPy 2: noise from Keras's side, not behaviour.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def lrs(trace, key="lr_end"):
    """The float32 learning rates of a trace, one per epoch."""
    return [np.uint32(e[key]).view(np.float32) for e in trace.epochs]


def assert_same(ours, keras):
    difference = first_difference(ours, keras)
    assert difference is None, difference


# --- drawn values and arguments ------------------------------------------------------------

#: How each monitored value moves from the last; the common moves come several times.
MOVES = ["new", "better", "worse", "tie", "sub_ulp_below", "sub_ulp_above", "one_ulp_below",
         "by_delta", "missing"] * 3 + ["nan", "inf", "huge", "subnormal"]


def _move(draw, move, prev):
    """The next monitored value after ``prev``."""
    if move == "new":
        return draw(st.floats(-2, 2, allow_nan=False))
    if move in ("better", "worse"):
        return prev + (1 if move == "worse" else -1) * draw(st.floats(0, 0.3))
    if move == "by_delta":  # exactly a min_delta away
        return prev - draw(st.sampled_from([1e-4, 1e-2, 0.1]))
    if move == "inf":
        return draw(st.sampled_from([math.inf, -math.inf]))
    if move == "subnormal":  # TF's kernels read subnormal float32/float64 as 0
        return draw(st.sampled_from([1e-45, -1e-45, 1e-40, -3e-39, 5e-324, -1e-310]))
    return {
        "tie": prev,
        "sub_ulp_below": prev - 1e-10,  # equal in float32, not in float64
        "sub_ulp_above": prev + 1e-10,
        "one_ulp_below": float(np.nextafter(f32(prev), f32(-np.inf))),
        "nan": math.nan,
        "huge": 1e39,  # beyond float32: TF refuses to convert it
    }[move]


@st.composite
def monitored(draw, max_size=12):
    """A sequence of monitored values, each moved from the last one, in a drawn number type."""
    out, prev = [], 0.5
    for _ in range(draw(st.integers(1, max_size))):
        move = draw(st.sampled_from(MOVES))
        if move == "missing":
            out.append(None)
            continue
        x = _move(draw, move, prev)
        if move not in ("nan", "inf", "huge"):
            prev = x
        kind = draw(st.sampled_from(["float"] * 5 + ["float32", "float64", "int"]))
        if kind == "int" and math.isfinite(x):
            x = round(x)
        elif kind != "int":
            with np.errstate(over="ignore"):
                x = {"float": float, "float32": f32, "float64": np.float64}[kind](x)
        out.append(x)
    return out


def number_types(strategy):
    """A drawn number as a Python float, or sometimes np.float32 / np.float64."""
    return st.tuples(strategy, st.sampled_from([float, float, float, f32, np.float64])).map(
        lambda t: t[1](t[0]))


min_deltas = st.one_of(st.just(0), st.sampled_from([1e-4, -1e-4, 1e-10, 0.0, 0.05]),
                       number_types(st.floats(-0.1, 0.1)))
modes_and_monitors = st.sampled_from([("auto", "val_loss")] * 3 + [
    ("auto", "loss"), ("min", "val_loss"), ("max", "val_loss"), ("max", "val_acc"),
    ("min", "val_acc"), ("auto", "val_acc")])  # the last: a ValueError, in both

early_stopping_kwargs = st.fixed_dictionaries({
    "mode_monitor": modes_and_monitors,
    "min_delta": min_deltas,
    "patience": st.integers(0, 4),
    "verbose": st.sampled_from([0, 1]),
    "baseline": st.one_of(st.none(), number_types(st.floats(-2, 2))),
    "restore_best_weights": st.booleans(),
    "start_from_epoch": st.integers(0, 4),
})

reduce_lr_kwargs = st.fixed_dictionaries({
    "mode_monitor": modes_and_monitors,
    "factor": st.one_of(st.sampled_from([0.1, 0.5, 0.0, 0, -0.5, f32(0.5)]), st.floats(0, 0.99)),
    "patience": st.integers(0, 4),
    "verbose": st.sampled_from([0, 1]),
    "min_delta": st.one_of(st.just(1e-4), min_deltas),
    "cooldown": st.integers(0, 3),
    "min_lr": st.one_of(st.sampled_from([0.0, 0, 1e-4, 1e-3, 0.005, f32(1e-3)]), st.floats(0, 0.02)),
})


def split_mode(kwargs):
    mode, monitor = kwargs.pop("mode_monitor")
    return {"mode": mode, "monitor": monitor, **kwargs}


@settings(max_examples=scaled(400))
@given(kwargs=early_stopping_kwargs.map(split_mode), values=monitored())
def test_early_stopping_matches_keras(tf, kwargs, values):
    assert_same(*run_callback_pair("EarlyStopping", kwargs, values))


@settings(max_examples=scaled(400))
@given(kwargs=reduce_lr_kwargs.map(split_mode), values=monitored(),
       lr=st.one_of(st.just(0.01), st.floats(1e-4, 0.1)))
def test_reduce_lr_on_plateau_matches_keras(tf, kwargs, values, lr):
    assert_same(*run_callback_pair("ReduceLROnPlateau", kwargs, values, lr=lr))


def _schedule(form, a, k):
    """A LearningRateScheduler schedule of a drawn form (a, k: its constants)."""
    if form == "times":
        return lambda epoch, lr: lr * a
    if form == "times_every_k":
        return lambda epoch, lr: lr * a if epoch % k == k - 1 else lr
    if form == "one_argument":
        return lambda epoch: 0.05 * a**epoch
    if form == "float32":
        return lambda epoch, lr: f32(lr) * f32(a)
    if form == "float64":
        return lambda epoch: np.float64(0.01) / (1 + epoch)
    if form == "odd":  # NaN, beyond float32 (inf once stored), subnormal, zero, negative
        return lambda epoch, lr: [math.nan, 1e39, 1e-40, 1e-46, 0.0, -0.01][epoch % 6] if epoch >= k else lr
    if form == "int":  # Keras: ValueError at the first epoch
        return lambda epoch, lr: 1
    if form == "inner_type_error":  # Keras retries it with one argument, which fails
        def schedule(epoch, lr):
            if epoch >= k:
                raise TypeError("a bug inside the schedule")
            return lr * a
        return schedule
    raise AssertionError(form)


FORMS = ["times", "times_every_k", "one_argument", "float32", "float64", "odd", "int",
         "inner_type_error"]


@settings(max_examples=scaled(200))
@given(form=st.sampled_from(FORMS), a=st.floats(0.05, 1.5), k=st.integers(1, 4),
       lr=st.one_of(st.just(0.05), st.floats(1e-4, 0.1)), epochs=st.integers(1, 8),
       verbose=st.sampled_from([0, 1]))
def test_learning_rate_scheduler_matches_keras(tf, form, a, k, lr, epochs, verbose):
    note(f"schedule form {form}")
    assert_same(*run_callback_pair("LearningRateScheduler", {"verbose": verbose}, [0.5] * epochs,
                                   lr=lr, schedule=_schedule(form, a, k)))


operands = st.one_of(
    monitored(max_size=1).map(lambda values: values[0]).filter(lambda x: x is not None),
    st.sampled_from([2**31, -(2**40), 16777217, True, np.bool_(False), np.int64(3), np.int32(-2),
                     np.float16(-6e-8), np.float16(0.5), np.float64(-1e-310), f32(-1e-45)]))


@settings(max_examples=scaled(500))
@given(x1=operands, x2=operands, op=st.sampled_from(["less", "greater"]))
def test_comparison_is_keras_ops_comparison(tf, x1, x2, op):
    """``less``/``greater`` on every drawn pair of number types, against keras.ops itself."""
    import keras

    # TF cannot order two bools; a callback never asks (its left side is a difference, never a bool).
    assume(not (isinstance(x1, (bool, np.bool_)) and isinstance(x2, (bool, np.bool_))))

    def outcome(fn):
        try:
            return bool(fn(x1, x2))
        except ValueError as error:
            return ("ValueError", str(error))

    assert outcome(getattr(callbacks, op)) == outcome(getattr(keras.ops, op)), (x1, x2)


@pytest.mark.parametrize("config", CALLBACK_CONFIGS, ids=lambda c: c.name)
def test_named_configurations_are_exact(tf, config):
    row = run_config(config)
    assert row.exact, row.difference


def test_a_difference_is_reported(tf):
    """The trace comparison itself can fail: a different factor shows up at the first cut."""
    import keras

    values = [1.0, 1.0, 1.0]
    ours = run_callback(callbacks.ReduceLROnPlateau(factor=0.5, patience=1),
                        StandInModel(SGD(learning_rate=0.01)), values)
    theirs = run_callback(keras.callbacks.ReduceLROnPlateau(factor=0.2, patience=1),
                          StandInModel(keras.optimizers.SGD(learning_rate=0.01)), values)
    keras_lr = f32(float(f32(0.01)) * 0.2)  # Keras's rule: the double product, stored as float32
    assert first_difference(ours, theirs) == (
        f"epoch 1: lr_end: ours 0.005 (0x3ba3d70a), keras {keras_lr!s} (0x{keras_lr.view(np.uint32):08x})")


# --- Keras's quirks, by hand ---------------------------------------------------------------


def test_python_floats_compare_in_float32():
    """0.3 - 1e-10 < 0.3 is True in Python; Keras's ops.less makes both float32 first."""
    assert (0.3 - 1e-10 < 0.3) and not callbacks.less(0.3 - 1e-10, 0.3)
    assert callbacks.less(np.float64(0.3) - 1e-10, 0.3)  # np.float64 keeps float64: promoted
    assert not callbacks.less(f32(0.3) - 1e-10, np.float64(f32(0.3)))  # f32 subtraction (NEP 50)
    assert callbacks.less(2**40, 2**40 + 1)  # ints (int64 here) compare exactly
    assert not callbacks.less(16777216.0, 16777217)  # an int32 meets a float32: cast to float32
    with pytest.raises(ValueError, match="out of range"):
        callbacks.less(1e39, 0.0)


def test_subnormals_read_as_zero_except_in_float16():
    """TF's CPU kernels run with DAZ: a subnormal float32/float64 compares as 0."""
    assert not callbacks.less(-1e-45, 0.0)  # float32 subnormal
    assert not callbacks.less(np.float64(-5e-324), np.float64(0.0))  # float64 subnormal
    assert not callbacks.less(f32(-1e-45), np.float64(0.0))  # read as 0 before the cast to float64
    assert callbacks.less(np.float64(-1e-40), 0.0)  # normal in float64
    assert callbacks.less(np.float16(-6e-8), np.float16(0.0))  # float16 is converted in software


def test_sub_ulp_improvement_is_none_for_python_floats_but_counts_for_float64(tf):
    # patience=0: the first epoch that does not improve (after epoch 0) stops.
    # As np.float64 the second value improves; the third (a Python float: f32(0.3) > 0.3) stops.
    for values, stop in ([[0.3, 0.3 - 1e-10], 1], [[np.float64(0.3), np.float64(0.3) - 1e-10], 2]):
        ours, keras = run_callback_pair("EarlyStopping", {"patience": 0}, values + [0.3])
        assert_same(ours, keras)
        assert ours.stopped_at == stop


def test_min_delta_is_absolute_and_its_sign_is_ignored(tf):
    # min mode: improved when current + |min_delta| < best. 0.9 + 0.1 < 1.0 is False in float32.
    for min_delta in (0.1, -0.1):
        ours, keras = run_callback_pair("EarlyStopping", {"patience": 0, "min_delta": min_delta},
                                        [1.0, 0.9, 0.7])
        assert_same(ours, keras)
        assert ours.stopped_at == 1


def test_cooldown_one_is_cooldown_zero(tf):
    """Reductions at every non-improving epoch after the first for cooldown 0 and 1; cooldown=2
    rests one epoch. Halving is exact, so the rates are f32(0.01) * 0.5**n."""
    values = [1.0] * 7
    expected = {0: [0, 1, 2, 3, 4, 5, 6], 1: [0, 1, 2, 3, 4, 5, 6], 2: [0, 1, 1, 2, 2, 3, 3],
                3: [0, 1, 1, 1, 2, 2, 2]}
    for cooldown, halvings in expected.items():
        ours, keras = run_callback_pair("ReduceLROnPlateau",
                                        {"factor": 0.5, "patience": 1, "cooldown": cooldown}, values)
        assert_same(ours, keras)
        assert lrs(ours) == [f32(0.01) * f32(0.5) ** n for n in halvings], cooldown


def test_at_min_lr_nothing_resets_and_wait_keeps_growing(tf):
    # f32(0.01) as a double * 0.1 = 0.000999999977648 < 0.001, so max(...) gives min_lr. Then
    # old == f32(min_lr) is not > f32(min_lr): no reduction, no reset, wait grows.
    ours, keras = run_callback_pair("ReduceLROnPlateau",
                                    {"factor": 0.1, "patience": 1, "min_lr": 0.001}, [1.0] * 5)
    assert_same(ours, keras)
    assert lrs(ours) == [f32(0.01)] + [f32(0.001)] * 4
    assert [e["wait"] for e in ours.epochs] == ["0", "0", "1", "2", "3"]


def test_the_learning_rate_itself_can_be_monitored(tf):
    """The rate is logged before the monitored value is read, so monitor="learning_rate" works:
    the rate never improves on itself, is halved, then the halved rate improves on the best."""
    ours, keras = run_callback_pair("ReduceLROnPlateau", {"monitor": "learning_rate", "mode": "min",
                                                          "factor": 0.5, "patience": 1}, [None] * 6)
    assert_same(ours, keras)
    assert lrs(ours) == [f32(0.01) * f32(0.5) ** n for n in (0, 1, 1, 2, 2, 3)]


def test_min_lr_keeps_its_type_where_it_wins(tf):
    """new = max(old * factor, min_lr): with factor=0 and min_lr=0 the product 0.0 comes first."""
    ours, keras = run_callback_pair("ReduceLROnPlateau", {"factor": 0, "min_lr": 0, "patience": 0,
                                                          "verbose": 1}, [1.0, 1.0])
    assert_same(ours, keras)
    assert ours.printed == "\nEpoch 2: ReduceLROnPlateau reducing learning rate to 0.0.\n"


def test_learning_rate_is_logged_at_epoch_end(tf):
    ours, keras = run_callback_pair("ReduceLROnPlateau", {"patience": 0, "factor": 0.5}, [1.0, 2.0])
    assert_same(ours, keras)
    # logged before the reduction of that epoch, as a double of the float32 rate
    assert [np.uint64(e["logged_lr"]).view(np.float64) for e in ours.epochs] == [float(f32(0.01))] * 2


def test_baseline_is_not_the_initial_best(tf):
    # Were 0.5 the initial best, nothing would improve, and the snapshot would be epoch 0's.
    # It is not: epoch 0 improves on None, epoch 1 on 0.7, so epoch 1's weights come back.
    ours, keras = run_callback_pair("EarlyStopping", {"baseline": 0.5, "patience": 5,
                                                      "restore_best_weights": True},
                                    [0.7, 0.6, 0.65])
    assert_same(ours, keras)
    assert ours.final_weights == [[1.0, 1.0, 1.0]]


def test_improving_without_beating_baseline_never_stops(tf):
    # wait += 1 every epoch, never reset (the baseline is not beaten), but every epoch improves
    # on best, and an improving epoch skips the stop check. The first non-improving one stops.
    ours, keras = run_callback_pair("EarlyStopping", {"baseline": 0.5, "patience": 1},
                                    [1.0, 0.9, 0.8, 0.7, 0.95])
    assert_same(ours, keras)
    assert [e["wait"] for e in ours.epochs] == ["1", "2", "3", "4", "5"]
    assert ours.stopped_at == 4 and ours.epochs[-1]["stopped_epoch"] == "4"


def test_best_weights_are_restored_without_an_early_stop(tf):
    ours, keras = run_callback_pair("EarlyStopping", {"patience": 10, "restore_best_weights": True},
                                    [1.0, 0.5, 0.7])
    assert_same(ours, keras)
    assert ours.stopped_at is None and ours.final_weights == [[1.0, 1.0, 1.0]]


def test_the_snapshot_is_a_copy_even_of_live_weights(tf):
    """A deviation: a model handing out its live arrays still gets its best epoch back.
    Keras keeps what get_weights() returned, so it "restores" the last epoch's values."""
    import keras

    class LiveModel(StandInModel):
        def get_weights(self):
            return self.weights  # the arrays themselves, updated in place each epoch

    restored = {}
    for module, optimizer in ((callbacks, SGD()), (keras.callbacks, keras.optimizers.SGD())):
        model = LiveModel(optimizer)
        callback = module.EarlyStopping(patience=10, restore_best_weights=True)
        callback.set_model(model)
        callback.on_train_begin()
        for epoch, value in enumerate([1.0, 0.5, 0.7]):
            model.weights[0][:] = epoch
            callback.on_epoch_end(epoch, {"val_loss": value})
        callback.on_train_end()
        restored[module] = model.weights[0].tolist()
    assert restored[callbacks] == [1.0] * 3 and restored[keras.callbacks] == [2.0] * 3


def test_start_from_epoch_and_missing_values_do_not_count(tf):
    # Epochs 0-1 are warm-up, epoch 3 is missing (a warning); wait counts epochs 4 and 5.
    ours, keras = run_callback_pair("EarlyStopping", {"patience": 2, "start_from_epoch": 2},
                                    [9.0, 9.0, 1.0, None, 2.0, 2.0, 2.0])
    assert_same(ours, keras)
    assert ours.stopped_at == 5
    assert ours.warnings == [("UserWarning: Early stopping conditioned on metric `val_loss` which "
                              "is not available. Available metrics are: unrelated_metric")]


def test_epoch_zero_never_stops(tf):
    """Reused without on_train_begin, a worse value at epoch 0 still does not stop (epoch > 0)."""
    import keras

    for callback, optimizer in ((callbacks.EarlyStopping(), SGD()),
                                (keras.callbacks.EarlyStopping(), keras.optimizers.SGD())):
        model = StandInModel(optimizer)
        callback.set_model(model)
        callback.on_epoch_end(0, {"val_loss": 1.0})
        callback.on_epoch_end(0, {"val_loss": 2.0})
        assert not model.stop_training and callback.wait == 1
        callback.on_epoch_end(1, {"val_loss": 2.0})
        assert model.stop_training and callback.stopped_epoch == 1


def test_schedule_sees_the_float32_rate_and_sets_a_float32_rate(tf):
    import keras

    def recording(seen):
        def schedule(epoch, lr):
            seen.append(lr)
            return 0.05
        return schedule

    for module, optimizer in ((callbacks, SGD(learning_rate=0.01)),
                              (keras.callbacks, keras.optimizers.SGD(learning_rate=0.01))):
        seen = []
        callback = module.LearningRateScheduler(recording(seen))
        callback.set_model(StandInModel(optimizer))
        callback.on_epoch_begin(0)
        callback.on_epoch_begin(1)
        assert seen == [0.009999999776482582, 0.05000000074505806]
        assert float(np.asarray(optimizer.learning_rate)) == 0.05000000074505806


def test_a_type_error_inside_the_schedule_retries_with_one_argument(tf):
    calls = []

    def schedule(*args):
        calls.append(args)
        if len(args) == 2:
            raise TypeError("inside")
        return 0.5

    callback = callbacks.LearningRateScheduler(schedule)
    callback.set_model(StandInModel(SGD()))
    callback.on_epoch_begin(3)
    assert calls == [(3, float(f32(0.01))), (3,)]
    assert callback.model.optimizer.learning_rate == 0.5


@pytest.mark.parametrize("result", [1, "0.1", None, np.float16(0.1)], ids=repr)
def test_a_schedule_result_that_is_not_a_float_is_a_value_error(result):
    callback = callbacks.LearningRateScheduler(lambda epoch, lr: result)
    callback.set_model(StandInModel(SGD()))
    with pytest.raises(ValueError, match="should be a float. Got: "):
        callback.on_epoch_begin(0)


@pytest.mark.parametrize("kind, kwargs", [("LearningRateScheduler", {}),
                                          ("ReduceLROnPlateau", {"patience": 0})])
def test_a_schedule_optimizer_rate_cannot_be_set(tf, kind, kwargs):
    """Both refuse to set the rate of an optimizer built with a schedule: TypeError."""
    ours, keras = run_callback_pair(kind, kwargs, [1.0, 1.0], lr=lambda step: 0.01,
                                    schedule=(lambda epoch, lr: lr * 0.5) if kind[0] == "L" else None)
    assert ours.error[:3] == keras.error[:3] and ours.error[2] == "TypeError"  # the texts differ
    ours.error = keras.error = None
    assert_same(ours, keras)


def _keras_metrics(name, direction):
    from keras.src.trainers.compile_utils import MetricsList

    return MetricsList([types.SimpleNamespace(name=name, _direction=direction)])


@pytest.mark.parametrize("monitor, metric, direction, maximised", [
    ("val_acc", "acc", "up", True),
    ("val_acc", "acc", "down", False),
    ("acc", "acc", None, False),  # a _direction other than "up" minimises
    ("val_loss", "loss", "up", True),  # a metric named "loss" overrides the name rule
])
def test_auto_mode_reads_directions_inside_metric_containers(tf, monitor, metric, direction, maximised):
    values = [1.0, 2.0, 3.0]  # rising: improves every epoch only when maximised
    metrics = [_keras_metrics(metric, direction)]
    ours, keras = run_callback_pair("EarlyStopping", {"monitor": monitor}, values, metrics=metrics)
    assert_same(ours, keras)
    assert (ours.stopped_at is None) == maximised


def test_auto_mode_ignores_metrics_outside_containers(tf):
    metrics = [types.SimpleNamespace(name="acc", _direction="up")]
    ours, keras = run_callback_pair("EarlyStopping", {"monitor": "val_acc"}, [1.0], metrics=metrics)
    assert_same(ours, keras)
    assert ours.error[2] == "ValueError" and "isn't able to automatically determine" in ours.error[3]


# --- construction: our contract, and where it refuses what Keras accepts ---------------------

ES, RLR, LRS = "EarlyStopping", "ReduceLROnPlateau", "LearningRateScheduler"
OK_SCHEDULE = {"schedule": lambda epoch, lr: lr}

#: (callback, kwargs, our error, what Keras does: "rejects" (the same type), another type, "accepts")
REJECTIONS = [
    (RLR, {"factor": 1.0}, ValueError, "rejects"),
    (RLR, {"factor": 2}, ValueError, "rejects"),
    (RLR, {"factor": "0.5"}, TypeError, "rejects"),
    (RLR, {"factor": math.nan}, ValueError, "accepts"),
    (RLR, {"factor": -math.inf}, ValueError, "accepts"),
    (RLR, {"factor": True}, TypeError, ValueError),  # Keras: True >= 1.0
    (RLR, {"min_lr": -1e-3}, ValueError, "accepts"),
    (RLR, {"min_lr": math.inf}, ValueError, "accepts"),
    (RLR, {"min_lr": "0"}, TypeError, "accepts"),
    (RLR, {"cooldown": -1}, ValueError, "accepts"),
    (RLR, {"cooldown": None}, TypeError, "accepts"),
    (RLR, {"patience": -2}, ValueError, "accepts"),
    (RLR, {"epsilon": 1e-4}, TypeError, "accepts"),  # an unknown keyword: Keras swallows **kwargs
    (RLR, {"mode": "mx"}, ValueError, "accepts"),  # Keras warns, falls back to auto
    (ES, {"mode": "maximum"}, ValueError, "accepts"),
    (ES, {"mode": None}, TypeError, "accepts"),
    (ES, {"monitor": 3}, TypeError, "accepts"),
    (ES, {"monitor": None}, TypeError, "accepts"),
    (ES, {"patience": -1}, ValueError, "accepts"),
    (ES, {"patience": math.nan}, ValueError, "accepts"),
    (ES, {"patience": "3"}, TypeError, "accepts"),
    (ES, {"start_from_epoch": -1}, ValueError, "accepts"),
    (ES, {"start_from_epoch": "2"}, TypeError, "accepts"),
    (ES, {"min_delta": "0.1"}, TypeError, "rejects"),  # abs("0.1")
    (ES, {"min_delta": math.nan}, ValueError, "accepts"),
    (ES, {"min_delta": True}, TypeError, "accepts"),
    (ES, {"baseline": "0.5"}, TypeError, "accepts"),
    (ES, {"restore_best_weights": "yes"}, TypeError, "accepts"),
    (ES, {"restore_best_weights": 1}, TypeError, "accepts"),
    (ES, {"verbose": "1"}, TypeError, "accepts"),
    (ES, {"verbose": 1.0}, TypeError, "accepts"),
    (LRS, {"schedule": 0.01}, TypeError, "accepts"),
    (LRS, {"schedule": None}, TypeError, "accepts"),
    (LRS, {**OK_SCHEDULE, "verbose": None}, TypeError, "accepts"),
]


def case_id(case):
    """Stable across processes (pytest-xdist's workers must collect the same ids): a
    function shows as its name, not its repr with an address."""
    show = lambda v: v.__name__ if callable(v) else repr(v)  # noqa: E731
    return f"{case[0]}-" + ",".join(f"{k}={show(v)}" for k, v in case[1].items())


@pytest.mark.parametrize("case", REJECTIONS, ids=case_id)
def test_bad_arguments_are_refused_at_construction_naming_them(tf, case):
    import keras

    kind, kwargs, error, keras_does = case
    with pytest.raises(error) as ours:
        getattr(callbacks, kind)(**kwargs)
    (name, value), = [(k, v) for k, v in kwargs.items() if k != "schedule" or len(kwargs) == 1]
    message = str(ours.value)
    if name == "epsilon":  # an unknown keyword: Python's own TypeError names it
        assert "'epsilon'" in message, message
    else:
        assert f"{name}={value!r}" in message or f"{name}={value}" in message, message
    # Keras's side, as the table says (each "accepts" is listed in scratchopt/callbacks/base.py's docstring).
    if keras_does != "accepts":
        with pytest.raises(error if keras_does == "rejects" else keras_does):
            getattr(keras.callbacks, kind)(**kwargs)
    elif "mode" in kwargs:
        with pytest.warns(UserWarning, match="fallback to auto mode"):
            getattr(keras.callbacks, kind)(**kwargs)
    else:
        getattr(keras.callbacks, kind)(**kwargs)


@pytest.mark.parametrize("case", REJECTIONS, ids=case_id)
def test_a_refused_construction_leaves_no_state(case):
    """Every check runs before the callback sets a single attribute."""
    kind, kwargs, error, _ = case
    cls = getattr(callbacks, kind)
    callback = cls.__new__(cls)
    with pytest.raises(error):
        callback.__init__(**kwargs)
    assert vars(callback) == {}


@pytest.mark.parametrize("kind, kwargs", [
    (ES, {"patience": 2.5, "min_delta": np.float32(0.01), "baseline": math.nan, "start_from_epoch": 1.0,
          "restore_best_weights": np.bool_(True), "verbose": True}),
    (RLR, {"factor": -1, "min_lr": np.float64(0.0), "cooldown": 1.5, "patience": math.inf,
           "min_delta": 0}),
])
def test_odd_but_valid_arguments_are_accepted_and_behave_as_in_keras(tf, kind, kwargs):
    """What Keras accepts and still works (floats for counts, NumPy scalars), we accept too."""
    assert_same(*run_callback_pair(kind, kwargs, [1.0, 0.5, 0.5, 0.5, 0.7, 0.2, 0.3, 0.3]))


@pytest.mark.parametrize("kind", [ES, RLR, LRS])
def test_signature_is_keras_signature(tf, kind):
    import inspect

    import keras

    def arguments(cls):
        return [(p.name, p.default) for p in inspect.signature(cls.__init__).parameters.values()
                if p.name not in ("self", "kwargs")]

    assert arguments(getattr(callbacks, kind)) == arguments(getattr(keras.callbacks, kind))


def test_imports_without_tensorflow():
    code = ("import sys, scratchopt.callbacks; "
            "assert not {'tensorflow', 'keras'} & set(sys.modules), 'TensorFlow or Keras imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
