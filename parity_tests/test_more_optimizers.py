"""Issue 17's optimizers: long runs against Keras, and what is particular to each.

The generic tests (construction, state_dict, failed calls, drawn runs against Keras, fused
against NumPy) cover them through ``optimizer_info.INFOS``; the parity rows (``CONFIGS``)
run them 200 steps on the four standard shapes. Here: long runs (1000 steps), float32 and float64 params
in one run, and the particulars.
"""

import numpy as np
import pytest
from hypothesis import settings

from scratchopt import optimizers
from scratchopt.optimizers.engine import fused_gpu
from scratchopt.tools.keras_reference import KerasRun, Literal, scratchopt_kwargs
from scratchopt.tools.parity import MUON_BOUND, eps_gap, same_bits, state_pairs

ELEMENTWISE = ["Nadam", "Adamax", "Adagrad", "Adadelta", "Lion", "ScheduleFreeAdamW"]
LONG_RUNS = [
    ("Nadam", {"learning_rate": 0.01}),
    ("Adamax", {"learning_rate": 0.01}),
    ("Adagrad", {"learning_rate": 0.01}),
    ("Adadelta", {"learning_rate": 1.0}),
    ("Lion", {"learning_rate": 0.001}),
    ("ScheduleFreeAdamW", {"warmup_steps": 50}),
    ("Ftrl", {"learning_rate": 0.05, "l1_regularization_strength": 0.001, "l2_regularization_strength": 0.01}),
    ("Lamb", {"learning_rate": 0.01}),
    ("Adafactor", {}),
]
#: Both dtypes in one run (so the first param, which decides Nadam's ``u_product`` dtype, is
#: float32 and float64 params follow), lengths off the packet size (pow's libm tail).
SHAPES = [((), "float32"), ((7, 13), "float32"), ((1001,), "float32"), ((1,), "float64"), ((5, 3, 4), "float64"),
          ((1003,), "float64")]


def compare(name, kwargs, steps, shapes=SHAPES, seed=0):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(d) for s, d in shapes]
    ours = getattr(optimizers, name)(**kwargs)
    reference = KerasRun(ours, [p.copy() for p in params], literal=kwargs)
    for step in range(steps):
        grads = [(rng.standard_normal(p.shape) * 10.0 ** rng.uniform(-3, 1)).astype(p.dtype) for p in params]
        ours.apply(grads, params)
        reference.apply(grads)
        for label, a, b in state_pairs(ours, reference):
            assert same_bits(a, b), f"{name} step {step}: {label} differs"
    assert ours.iterations == reference.iterations


THOROUGH = settings().max_examples > 40  # conftest's profiles: ci 24, thorough 800


@pytest.mark.parametrize("name, kwargs", LONG_RUNS, ids=[n for n, _ in LONG_RUNS])
def test_long_runs_are_exact_in_float32_and_float64(tf, name, kwargs):
    """75 steps each under the ``ci`` profile (at 150, the nine took 83 s of a 2-core run),
    1000 under ``thorough`` (a Keras step is eager, ~25 ms: all nine at 1000 steps take
    minutes); the test below runs one of them to 1000 steps on every ci run, a different
    one as the session seed changes."""
    compare(name, kwargs, steps=1000 if THOROUGH else 75)


def test_a_thousand_steps_for_the_seed_s_optimizer(tf, request):
    seed, _ = request.config._scratchopt_seed
    name, kwargs = LONG_RUNS[seed % len(LONG_RUNS)]
    compare(name, kwargs, steps=1000)


def test_nadam_keeps_u_product_in_the_first_params_dtype(tf):
    """Keras's ``u_product`` is one variable in the dtype of the first param: float64 first."""
    compare("Nadam", {"learning_rate": 0.01}, steps=30, shapes=[((3,), "float64"), ((4,), "float32")])


def test_nadam_resumes_its_u_product_from_the_step_count():
    rng = np.random.default_rng(0)
    grads = [[rng.standard_normal(5).astype(np.float32)] for _ in range(20)]
    straight, params = optimizers.Nadam(learning_rate=0.01), [np.ones(5, np.float32)]
    for g in grads:
        straight.apply(g, params)
    first, half = optimizers.Nadam(learning_rate=0.01), [np.ones(5, np.float32)]
    for g in grads[:10]:
        first.apply(g, half)
    resumed = optimizers.Nadam(learning_rate=0.01)
    resumed.build(half)
    resumed.load_state_dict(first.state_dict())
    for g in grads[10:]:
        resumed.apply(g, half)
    assert same_bits(half[0], params[0])


def test_schedule_free_copies_keras_x_old_quirk():
    """x_old is recovered from the momentum *after* its update, as Keras's live read does."""
    from scratchopt.optimizers import schedule_free_adamw as sf

    opt = optimizers.ScheduleFreeAdamW(learning_rate=0.1)
    w = np.array([1.0, -2.0])
    opt.apply([np.array([0.5, 0.25])], [w])
    z = opt._slots[0]["z"]
    # step 1: weight = 1, so x = z and y = z whatever x_old was; the quirk shows from step 2
    assert same_bits(w, z)
    assert "z_NEW" in sf.update.__doc__


def test_adagrad_and_ftrl_accumulators_start_through_float32_like_kerass_constant():
    for cls in (optimizers.Adagrad, optimizers.Ftrl):
        opt = cls()
        opt.build([np.zeros(3), np.zeros(2, np.float32)])
        assert opt._slots[0]["accumulator"][0] == np.float64(np.float32(0.1))
        assert opt._slots[1]["accumulator"].dtype == np.float32


def test_schedule_free_z_starts_at_the_params():
    w = np.array([1.5, -2.0])
    opt = optimizers.ScheduleFreeAdamW()
    opt.build([w])
    assert same_bits(opt._slots[0]["z"], w) and not np.shares_memory(opt._slots[0]["z"], w)


def test_lion_refuses_beta_1_outside_0_1_like_keras():
    for bad in (0.0, -0.5, 1.01):
        with pytest.raises(ValueError, match="beta_1"):
            optimizers.Lion(beta_1=bad)
    optimizers.Lion(beta_1=1.0)


def test_lion_sign_is_tensorflows_on_zeros_and_nan(tf):
    """sign(+-0) = +0 and sign(NaN) = NaN, on the array path and the fused path alike."""
    g = np.array([0.0, -0.0, np.nan, 1e-30, -3.0, np.inf], np.float32)
    for backend in ("numpy", "auto"):
        w = np.array([-0.0, 0.0, 1.0, 1.0, 1.0, 1.0], np.float32)
        opt = optimizers.Lion(learning_rate=0.5)
        opt.backend = backend
        reference = KerasRun(opt, [w.copy()], literal={"learning_rate": 0.5})
        opt.apply([g.copy()], [w])
        reference.apply([g.copy()])
        assert same_bits(w, reference.params()[0]), backend


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_the_gpu_path_can_trace_every_elementwise_rule(name):
    """The fused CuPy kernel is traced from the rule itself (no GPU needed to trace)."""
    cls = getattr(optimizers, name)
    opt = cls()
    opt.build([np.zeros(3)])
    scalars = opt.scalars(np.float64(0.1), 0, np.dtype(np.float64))
    kernel = fused_gpu.trace(cls.update, (False,) * (2 + len(cls.slot_names)), tuple(scalars), {})
    assert set(kernel.outputs) == {"var", *cls.slot_names}


@pytest.mark.parametrize("name", ["Ftrl", "Lamb", "Adafactor"])
def test_whole_tensor_rules_step_packed_params_one_by_one(name):
    """Lamb's norms, Adafactor's means and TF's packet-wise pow need each tensor whole."""
    cls = getattr(optimizers, name)
    rng = np.random.default_rng(0)
    shapes = [(3, 5), (11,), (2, 9)]
    plain = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(4)]
    if name == "Adafactor":
        with pytest.raises(ValueError, match="packed"):
            cls().pack([p.copy() for p in plain])
        return
    packed_opt, plain_opt = cls(learning_rate=0.01), cls(learning_rate=0.01)
    packed = packed_opt.pack([p.copy() for p in plain])
    for g in grads:
        plain_opt.apply(g, plain)
        packed_opt.apply(g, packed)
    for a, b in zip(plain, packed):
        assert same_bits(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=str)
def test_adafactor_rms_is_the_mean_over_every_axis(dtype):
    """``adafactor.rms`` takes ``sum_of_squares(x) / count`` for two or more elements: the
    bits of ``sqrt(reduce_mean_over(x * x, every axis))``, which it says it is."""
    from scratchopt.backend import sqrt
    from scratchopt.numerics import reduce_mean_over, tf_arithmetic
    from scratchopt.optimizers import adafactor

    rng = np.random.default_rng(7)
    shapes = [(), (1,), (0,), (2,), (7, 3), (3, 5, 4), (100_003,), (301, 257), (2, 1, 9, 5)]
    for shape in shapes:
        for scale, special in ((1.0, None), (1e-20, None), (1e20, None), (1.0, np.nan), (1.0, np.inf)):
            x = (rng.standard_normal(shape) * scale).astype(dtype)
            if special is not None and x.size:
                x.reshape(-1)[::3] = special
            for view in (x, x.T):  # and a non-contiguous one
                with tf_arithmetic():
                    want = sqrt(reduce_mean_over(view * view, tuple(range(view.ndim))))
                    got = adafactor.rms(view)
                assert same_bits(np.asarray(want), np.asarray(got)) or (np.isnan(want) and np.isnan(got)), (
                    shape, scale, special)


def test_adafactor_factors_only_params_of_two_or_more_dimensions():
    opt = optimizers.Adafactor()
    opt.build([np.zeros((4, 5, 6)), np.zeros(7), np.zeros(())])
    assert {k: v.shape for k, v in opt._slots[0].items()} == {"r": (4, 5), "c": (4, 6), "v": (4, 5, 6)}
    assert set(opt._slots[1]) == set(opt._slots[2]) == {"v"}


# --- Muon: exact where the op order can be followed, a measured bound where it cannot --------

MUON_SHAPES = [(7, 13), (13,), (64, 32), (33, 70), ()]


def muon_gap(dtype, kwargs, steps=200, ours_kwargs=None):
    """The largest ``eps_gap`` of Muon's 2-D states over a run (inf if a bit differs where
    ``MUON_BOUND`` asks for exactness); the other params must be exact."""
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(s).astype(dtype) for s in MUON_SHAPES]
    ours = optimizers.Muon(**(ours_kwargs or kwargs))
    reference = KerasRun(ours, [p.copy() for p in params], literal=kwargs)
    worst = 0.0
    for _ in range(steps):
        grads = [rng.standard_normal(s).astype(dtype) for s in MUON_SHAPES]
        ours.apply(grads, params)
        reference.apply(grads)
        for label, a, b in state_pairs(ours, reference):
            if np.ndim(b) == 2 and MUON_BOUND[dtype] is not None:
                worst = max(worst, eps_gap(a, b))
            elif np.ndim(b) == 2:  # float64: exact
                worst = max(worst, 0.0 if same_bits(a, b) else np.inf)
            else:  # the 1-D and 0-d params take AdamW's exact path
                assert same_bits(a, b), label
    return worst


@pytest.mark.parametrize("dtype, kwargs", [("float64", {"learning_rate": 0.01, "rms_rate": None}),
                                           ("float32", {"learning_rate": 0.01}),
                                           ("float32", {"learning_rate": 0.01, "nesterov": False,
                                                        "weight_decay": None, "adam_lr_ratio": 0.5})])
def test_muon_is_within_its_measured_bound_of_keras(tf, dtype, kwargs):
    """``parity.MUON_BOUND``, from ``parity_tests/measure_muon.py``: float32 within it,
    float64 bit for bit (200 steps on matrices of odd and even shapes)."""
    assert muon_gap(dtype, kwargs) <= (MUON_BOUND[dtype] or 0.0)


def test_muon_s_bound_catches_a_wrong_rule(tf):
    """The bound is tight enough to see one Newton-Schulz iteration too few."""
    assert muon_gap("float32", {"learning_rate": 0.01}, steps=3,
                    ours_kwargs={"learning_rate": 0.01, "ns_steps": 4}) > 100 * MUON_BOUND["float32"]


def test_muon_raises_on_float64_matrices_with_rms_rate_as_keras_does(tf):
    import keras

    w = np.ones((3, 4))
    variables = [keras.Variable(w.copy())]
    with pytest.raises(tf.errors.InvalidArgumentError):  # float64 * float32, in lr_adjust
        keras.optimizers.Muon().apply([tf.constant(np.ones((3, 4)))], variables)
    ours = optimizers.Muon()
    with pytest.raises(TypeError, match="float64"):
        ours.apply([np.ones((3, 4))], [w])
    assert same_bits(w, np.ones((3, 4))) and not ours.built  # nothing changed
    optimizers.Muon(rms_rate=None).apply([np.ones((3, 4))], [w])  # allowed, as in Keras


MUON_RATES = {"float": 0.01,
              "float32 schedule": Literal("ExponentialDecay", {"initial_learning_rate": 0.01, "decay_steps": 10,
                                                               "decay_rate": 0.9}),
              "float64 schedule": Literal("ExponentialDecay", {"initial_learning_rate": np.float64(0.01),
                                                               "decay_steps": 10, "decay_rate": 0.9})}


@pytest.mark.parametrize("rate", list(MUON_RATES))
@pytest.mark.parametrize("rms_rate", [0.2, None])
@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("param_dtype, grad_dtype", [("float32", "float32"), ("float32", "float64"),
                                                     ("float64", "float32"), ("float64", "float64")])
def test_muon_raises_where_keras_mixes_dtypes_and_only_there(tf, param_dtype, grad_dtype, nesterov, rms_rate, rate):
    """Keras's Muon path does not cast the gradient, and multiplies by a schedule's tensor and
    by a float32 sqrt: some dtype mixes raise in TF. We raise on the same ones (before any
    change), and step the others as Keras does (a float64 gradient widens a float32 matrix's
    nesterov sums)."""
    literal = {"learning_rate": MUON_RATES[rate], "nesterov": nesterov, "rms_rate": rms_rate}
    rng = np.random.default_rng(0)
    params = [rng.standard_normal((5, 4)).astype(param_dtype)]
    ours = optimizers.Muon(**scratchopt_kwargs(literal))
    reference = KerasRun(ours, [p.copy() for p in params], literal=literal)
    for _ in range(2):
        grads = [rng.standard_normal((5, 4)).astype(grad_dtype)]
        before = params[0].copy()
        try:
            ours.apply(grads, params)
        except TypeError as refusal:
            assert "Keras's Muon multiplies" in str(refusal) and same_bits(params[0], before) and not ours.built
            with pytest.raises(tf.errors.InvalidArgumentError):
                reference.apply(grads)
            return
        reference.apply(grads)
        for label, a, b in state_pairs(ours, reference):
            bound = MUON_BOUND[np.asarray(b).dtype.name]
            assert same_bits(a, b) if bound is None else eps_gap(a, b) <= bound, label


def test_muon_raises_on_the_update_steps_of_gradient_accumulation_only(tf):
    """With ``gradient_accumulation_steps=3`` Keras accumulates twice, then raises on the update."""
    w = np.zeros((3, 4))
    ours = optimizers.Muon(gradient_accumulation_steps=3)
    reference = KerasRun(ours, [w.copy()], literal={"gradient_accumulation_steps": 3})
    g = [np.ones((3, 4))]
    for _ in range(2):
        ours.apply(g, [w])
        reference.apply(g)
    with pytest.raises(TypeError, match="float64"):
        ours.apply(g, [w])
    with pytest.raises(tf.errors.InvalidArgumentError):
        reference.apply(g)
    assert ours._iterations == 2 and same_bits(reference.accumulators()[0], ours._accumulators[0])


def test_muon_sends_embeddings_excluded_layers_and_non_matrices_to_adamw():
    params = [np.ones((4, 3), np.float32), np.ones((4, 3), np.float32), np.ones((4, 3), np.float32),
              np.ones(3, np.float32)]
    opt = optimizers.Muon(exclude_layers=["head"])
    opt.build(params, names=["dense/kernel", "token_embedding/embeddings", "head/kernel", "dense/bias"])
    assert [set(s) for s in opt._slots] == [{"m"}, {"m", "v"}, {"m", "v"}, {"m", "v"}]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_by_value_is_tfs_on_ties_packets_and_tails(tf, dtype):
    """Ftrl's clip: on whole packets a tie gives the bound, on the tail the value (found by
    the ci profile: zero params and gradients with a subnormal l1 gave Keras -0 on the first
    four of six elements)."""
    from scratchopt.numerics.elementwise import clip_by_value

    rng = np.random.default_rng(0)
    tiny = np.finfo(dtype).tiny
    for n in (1, 3, 4, 6, 8, 11, 17):
        for lo_hi in ((-tiny / 2, tiny / 2), (-0.5, 0.5), (0.0, 0.0), (-1e-3, 2.0)):
            lo, hi = dtype(lo_hi[0]), dtype(lo_hi[1])
            x = rng.choice(np.array([0.0, -0.0, tiny / 4, -tiny / 4, 0.5, -0.5, 1.0, -2.0, np.nan], dtype), n)
            # 0-d arrays, not NumPy floats: TF caches the tensors it makes of Python floats
            # (np.float64 is one) by value, and -0.0 == 0.0, so a -0.0 made by an earlier
            # test came back for 0.0 here (found by a full run of the suite)
            expected = tf.clip_by_value(tf.constant(x), tf.constant(np.asarray(lo)),
                                        tf.constant(np.asarray(hi))).numpy()
            assert same_bits(clip_by_value(x, lo, hi), expected), (n, lo_hi, x)


@pytest.mark.parametrize("l1", [2.225073858507e-311, 1e-40, 0.0, -0.0])
def test_ftrl_tells_a_subnormal_l1_from_zero_by_its_bits(tf, l1):
    """Found by the ci profile: with l1 = 2.2e-311 Keras's lower bound -l1 is a negative
    subnormal, read as -0 by the clip, so zero params get -0 on whole packets; a test of
    ``l1 == 0`` under our flush-to-zero block read it as zero and gave +0 everywhere."""
    shapes = [((2, 3), "float64"), ((6,), "float32"), ((9,), "float32"), ((5,), "float64")]
    params = [np.zeros(s, d) for s, d in shapes]
    ours = optimizers.Ftrl(l1_regularization_strength=l1)
    reference = KerasRun(ours, [p.copy() for p in params], literal={"l1_regularization_strength": l1})
    for _ in range(2):
        grads = [np.zeros(p.shape, np.float32) for p in params]
        ours.apply(grads, params)
        reference.apply(grads)
        for label, a, b in state_pairs(ours, reference):
            assert same_bits(a, b), f"l1={l1!r}: {label} differs\nours  {a!r}\nkeras {b!r}"


@pytest.mark.parametrize("name", ["Adagrad", "Ftrl"])
@pytest.mark.parametrize("value", [1.401298464324817e-45, 1e-40, 1.1754943508222875e-38, 0.1])
def test_an_accumulator_starts_as_kerass_constant_initializer_fills_it(tf, name, value):
    """Found by a full run: Keras fills the accumulator with ``Constant(value)``, which is
    ``ops.cast(value, dtype) * ops.ones(shape)``; TF's multiply flushes a float32 subnormal,
    so a float32 accumulator starts at 0 where the cast alone gives 1e-45. Seen before any
    step: with ``gradient_accumulation_steps=2`` the first ``apply`` only accumulates."""
    params = [np.ones(5, np.float32), np.ones(3, np.float64)]
    kwargs = {"initial_accumulator_value": value, "gradient_accumulation_steps": 2}
    ours = getattr(optimizers, name)(**kwargs)
    reference = KerasRun(ours, [p.copy() for p in params], literal=kwargs)
    for step in range(2):
        grads = [np.full(5, 0.5, np.float32), np.full(3, -0.25, np.float64)]
        ours.apply(grads, params)
        reference.apply(grads)
        for label, a, b in state_pairs(ours, reference):
            assert same_bits(a, b), f"{name} value={value!r} step {step}: {label} differs\nours  {a!r}\nkeras {b!r}"


@pytest.mark.parametrize("value", [9.963247973947976e-42, -1e-40, 1e-45, 1e-38, 0.1])
def test_a_float32_subnormal_cast_to_float64_is_flushed_as_tfs_cast_does(tf, value):
    """Found by a full run: Keras's Ftrl makes its accumulator with ``ops.cast(value,
    float64)``, a float32 tensor first; TF's Cast flushes a float32 subnormal to a zero of
    its sign, so the float64 accumulator starts at 0.0 and the first step with a zero
    gradient divides 0 by 0 (NaN), where the unflushed value gave 0."""
    from scratchopt.numerics import casts

    for dtype, tf_dtype in ((np.float64, tf.float64), (np.float32, tf.float32)):
        expected = tf.cast(value, tf_dtype).numpy()
        assert same_bits(casts.through_float32(value, dtype), expected), (value, dtype)
        assert same_bits(casts.keras_cast(value, dtype), expected), (value, dtype)
        assert same_bits(casts.keras_cast(np.float32(value), dtype), tf.cast(np.float32(value), tf_dtype).numpy())
    if value < 0:
        return  # an accumulator starts at 0 or more (Keras's ValueError, and ours)
    params = [np.array([0.0, 1.0, -2.0], "float64"), np.zeros(9, "float32")]
    ours = optimizers.Ftrl(initial_accumulator_value=value)
    reference = KerasRun(ours, [p.copy() for p in params], literal={"initial_accumulator_value": value})
    for step in range(2):
        grads = [np.array([0.0, 0.5, -0.25], np.float32), np.zeros(9, np.float32)]
        ours.apply(grads, params)
        reference.apply(grads)
        for label, a, b in state_pairs(ours, reference):
            assert same_bits(a, b), f"value={value!r} step {step}: {label} differs\nours  {a!r}\nkeras {b!r}"
