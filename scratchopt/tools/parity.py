"""``scratchopt parity``: every component against Keras, to the bit.

* **optimizers**: each row runs one configuration on scratchopt (NumPy) and on eager Keras
  from the same start, feeds both the same gradients for ``steps`` steps, and compares
  every parameter and every piece of optimizer state after every step;
* **schedules**: the rate at every step from 0 to 2000, and at step 10**6;
* **regularizers**: the penalty and its gradient (against ``tf.GradientTape``) on random
  arrays of every shape;
* **callbacks**: a fixed sequence of monitored values through our callback and Keras's,
  comparing the learning rate every epoch, the stop epoch and the restored weights;
* **layers**: batch and layer normalization (forward, backward, moving statistics) and
  dropout (given Keras's own mask) against Keras's layers and ``tf.GradientTape``;
* **training**: the lesson's optimizer comparison (``scratchopt.nn`` against ``model.fit``)
  in float64, the per-epoch training and validation losses, for ``steps // 20`` epochs.

"Exact" means the same bits (NaN matches NaN); the ULP and absolute columns say how far
apart the two are otherwise.
"""

import dataclasses

import numpy as np

from .. import optimizers
from ..regularization import penalties as regularizers
from ..numerics import ulp_distance
from .keras_reference import Literal


def decay_every_50(step):
    """A step schedule for the parity rows: 0.01, halved every 50 steps (computed in float32)."""
    return float(np.float32(0.01) * np.float32(0.5) ** (step // 50))


#: (optimizer, constructor arguments): the rows of the table. Each runs in float32 and float64.
CONFIGS = [
    ("SGD", {}),
    ("SGD", {"momentum": 0.9}),
    ("SGD", {"momentum": 0.9, "nesterov": True}),
    ("SGD", {"momentum": 0.9, "learning_rate": decay_every_50}),
    ("Adam", {"learning_rate": 0.01}),
    ("Adam", {"learning_rate": 0.01, "amsgrad": True}),
    ("Adam", {"learning_rate": 0.01, "clipnorm": 0.3}),
    ("Adam", {"learning_rate": decay_every_50, "global_clipnorm": 1.0}),
    ("Adam", {"learning_rate": 0.01, "use_ema": True, "ema_overwrite_frequency": 7}),
    ("Adam", {"learning_rate": 0.01, "gradient_accumulation_steps": 3, "clipvalue": 0.5,
              "weight_decay": 0.01}),
    ("AdamW", {"learning_rate": 0.01}),
    ("AdamW", {"learning_rate": 0.01, "weight_decay": 0.1, "loss_scale_factor": 128.0}),
    ("RMSprop", {"learning_rate": 0.01}),
    ("RMSprop", {"learning_rate": 0.01, "centered": True, "momentum": 0.9}),
    ("Nadam", {"learning_rate": 0.01}),
    ("Nadam", {"learning_rate": decay_every_50, "clipnorm": 0.3, "weight_decay": 0.01}),
    ("Adamax", {"learning_rate": 0.01}),
    ("Adamax", {"learning_rate": 0.01, "use_ema": True, "ema_overwrite_frequency": 7}),
    ("Adagrad", {"learning_rate": 0.01}),
    ("Adagrad", {"learning_rate": 0.01, "initial_accumulator_value": 0.0, "global_clipnorm": 1.0}),
    ("Adadelta", {"learning_rate": 1.0}),
    ("Adadelta", {"learning_rate": 1.0, "rho": 0.9, "gradient_accumulation_steps": 3, "clipvalue": 0.5}),
    ("Lion", {"learning_rate": 0.001}),
    ("Lion", {"learning_rate": 0.001, "beta_1": 0.95, "weight_decay": 0.1, "loss_scale_factor": 128.0}),
    ("ScheduleFreeAdamW", {}),
    ("ScheduleFreeAdamW", {"learning_rate": 0.01, "warmup_steps": 20, "weight_decay": 0.01}),
    ("Ftrl", {"learning_rate": 0.01}),
    ("Ftrl", {"learning_rate": 0.05, "learning_rate_power": -0.7, "l1_regularization_strength": 0.01,
              "l2_regularization_strength": 0.01, "l2_shrinkage_regularization_strength": 0.01, "beta": 0.1}),
    ("Lamb", {"learning_rate": 0.01}),
    ("Lamb", {"learning_rate": 0.01, "weight_decay": 0.01, "clipnorm": 1.0}),
    ("Adafactor", {}),
    ("Adafactor", {"learning_rate": 0.05, "relative_step": False, "clip_threshold": 0.5, "weight_decay": 0.01}),
]

#: Muon's bound, in eps of each state's largest |value| (``eps_gap``), for its 2-D params
#: and their slots; its other params take AdamW's path and are exact. float32: TF's matmul
#: runs on oneDNN, whose summation order depends on the CPU; ``python
#: parity_tests/measure_muon.py 6 200`` measured at most 2.84 on the 2-core development VM,
#: the bound is ~5.6x that. float64: None, bit-exact: ``numerics.matmul`` follows Eigen's
#: GEBP order for every shape (its 8/4/2/1-wide panels and depth blocks), which the same
#: command measured at 0 (it was 3.55 before that order was followed).
MUON_BOUND = {"float32": 16.0, "float64": None}

#: Muon's rows, each in one dtype: Keras raises on float64 matrices while ``rms_rate`` is set.
MUON_ROWS = [({"learning_rate": 0.01}, "float32"),
             ({"learning_rate": 0.01, "nesterov": False, "weight_decay": None, "adam_lr_ratio": 0.5}, "float32"),
             ({"learning_rate": 0.01, "rms_rate": None}, "float64"),
             ({"learning_rate": 0.02, "rms_rate": None, "ns_steps": 3, "clipnorm": 1.0}, "float64")]

#: Tensor shapes in every row: a scalar, a length-1 vector, a matrix, and one vector long
#: enough for TF's tree-shaped sum in the clipping norms (> 1024 packets) and for the
#: NumPy path's blocks (> BLOCK_BYTES per array in float32 and float64).
SHAPES = [(), (1,), (7, 13), (70001,)]


@dataclasses.dataclass
class Row:
    component: str
    dtype: str
    steps: int
    max_abs: float
    max_ulp: float
    exact: bool
    note: str = ""
    #: A bounded row (where TF's or torch's arithmetic cannot be followed: oneDNN's float32
    #: kernels, Eigen's exp/log, MKL's sqrt): the measured bound its differences are held to,
    #: and whether they stayed within it. An exact row has no bound.
    bound: str = ""
    within: bool = True

    @property
    def passed(self):
        """Exact, or a bounded row within its bound."""
        return self.exact or (bool(self.bound) and self.within)

    @property
    def verdict(self):
        """``"exact"``, ``"within bound"`` or ``"FAILED"``."""
        return "exact" if self.exact else "within bound" if self.passed else "FAILED"

    def hold_to(self, worst, bound, unit="eps of the term scale", source=""):
        """Make this a bounded row: its largest error ``worst`` (in ``unit``) must stay within
        ``bound``, measured by ``source``; the note says both."""
        self.bound = f"{bound:g} {unit}" + (f" ({source})" if source else "")
        self.within = bool(self.within and worst <= bound)
        self.note = (f"{self.note}; " if self.note else "") + f"max {worst:.2f} {unit}, bound {bound:g}"

    def compare(self, a, b):
        """Fold one comparison of two same-dtype arrays into the row."""
        a, b = np.asarray(a), np.asarray(b)
        if same_bits(a, b):
            return
        self.exact = False
        if a.shape != b.shape or a.dtype != b.dtype:
            self.max_abs = self.max_ulp = float("inf")
            return
        with np.errstate(invalid="ignore"):
            self.max_abs = max(self.max_abs, float(np.nanmax(np.abs(a.astype(np.float64) - b))))
        self.max_ulp = max(self.max_ulp, float(np.max(ulp_distance(a, b))))


@dataclasses.dataclass
class Check:
    """One row of the table, not yet run: ``run(steps)`` returns its ``Row``."""

    group: str
    label: str
    run: object


def same_bits(a, b):
    """True when two arrays hold the same dtype, shape and bits (any NaN matches any NaN)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    return bool(np.array_equal(nan_a, nan_b)) and a[~nan_a].tobytes() == b[~nan_b].tobytes()


def eps_gap(a, b):
    """How far ``a`` is from ``b``, in eps of ``b``'s dtype times ``b``'s largest finite |value|
    (the scale of the state, so a small element's relative error does not blow up): 0 for
    the same bits, inf where their NaN or inf places differ.

    >>> import numpy as np
    >>> eps_gap(np.float32([2.0, 1.0 + 2.0 ** -23]), np.float32([2.0, 1.0]))  # one ULP of 1, scale 2
    0.5
    """
    a, b = np.asarray(a), np.asarray(b)
    if same_bits(a, b):
        return 0.0
    if a.shape != b.shape or a.dtype != b.dtype:
        return float("inf")
    finite = np.isfinite(b)
    if not np.array_equal(finite, np.isfinite(a)) or not same_bits(a[~finite], b[~finite]):
        return float("inf")
    scale = float(np.max(np.abs(b[finite]), initial=0.0))
    gap = float(np.max(np.abs(a[finite].astype(np.float64) - b[finite]), initial=0.0))
    if gap == 0.0:  # the same values (zeros of other signs)
        return 0.0
    return gap / (scale * float(np.finfo(b.dtype).eps)) if scale else float("inf")


def describe(name, kwargs):
    args = ", ".join(f"{k}={getattr(v, '__name__', v)}" for k, v in kwargs.items())
    return f"{name}({args})"


def state_pairs(ours, reference):
    """(label, scratchopt array, Keras array) for every parameter and every piece of state."""
    pairs = [(f"param {i}", p, q) for i, (p, q) in enumerate(zip(ours._params, reference.params(), strict=True))]
    for i, (mine, theirs) in enumerate(zip(ours._slots, reference.slots(), strict=True)):
        if set(mine) != set(theirs):
            raise AssertionError(f"param {i}: slots {sorted(mine)} vs Keras's {sorted(theirs)}")
        pairs += [(f"param {i} slot {k}", mine[k], theirs[k]) for k in mine]
    if ours.use_ema:
        pairs += [(f"ema {i}", a, b)
                  for i, (a, b) in enumerate(zip(ours._averages, reference.averages(), strict=True))]
    if ours.gradient_accumulation_steps:
        pairs += [(f"accumulator {i}", a, b)
                  for i, (a, b) in enumerate(zip(ours._accumulators, reference.accumulators(), strict=True))]
    return pairs


def run_row(name, kwargs, dtype, steps, seed=0, bound=None):
    """One optimizer row: ``steps`` steps of both optimizers on random data; returns a ``Row``.

    ``bound`` (Muon's float32 ``MUON_BOUND``): the row's 2-D states are held to ``eps_gap <=
    bound``, its other states must still be exact; None: every state exact."""
    from .keras_reference import KerasRun, scratchopt_kwargs

    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    ours = getattr(optimizers, name)(**scratchopt_kwargs(kwargs))
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    reference = KerasRun(ours, params, literal=kwargs)  # Keras's defaults for what kwargs leaves out
    row = Row(describe(name, kwargs), dtype.name, steps, 0.0, 0.0, True)
    worst, exact_elsewhere = 0.0, True
    for _ in range(steps):
        grads = [(rng.standard_normal(s) * 10.0 ** rng.uniform(-3, 1)).astype(dtype) for s in SHAPES]
        ours.apply(grads, params)
        reference.apply(grads)
        for _, a, b in state_pairs(ours, reference):
            row.compare(a, b)
            if bound is not None and np.ndim(b) == 2:
                worst = max(worst, eps_gap(a, b))
            elif bound is not None:
                exact_elsewhere = exact_elsewhere and same_bits(a, b)
    if ours.iterations != reference.iterations:
        row.exact = exact_elsewhere = False
    if bound is not None and not row.exact:
        row.within = exact_elsewhere
        row.hold_to(worst, bound, "eps of the matrix's largest |value|", "parity_tests/measure_muon.py")
    return row


#: The schedule rows, as literal calls (each side built from the same arguments, with its own
#: defaults): the lesson's four curves first, then every other schedule.
SCHEDULES = [
    Literal("PiecewiseConstantDecay", {"boundaries": [300, 600, 800], "values": [0.1, 0.01, 0.001, 0.0001]}),
    Literal("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 100, "decay_rate": 0.96}),
    Literal("CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 1000, "alpha": 0.0}),
    Literal("WarmupCosineDecay", {"initial_learning_rate": 0.1, "warmup_steps": 100, "total_steps": 1000}),
    Literal("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 100, "decay_rate": 0.5,
                                 "staircase": True}),
    Literal("CosineDecay", {"initial_learning_rate": 0.0, "decay_steps": 900, "alpha": 0.05,
                            "warmup_target": 0.1, "warmup_steps": 100}),
    Literal("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 50, "decay_rate": 0.5,
                                 "staircase": False}),
    Literal("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 300, "end_learning_rate": 1e-3,
                                "power": 2.0, "cycle": True}),
    Literal("CosineDecayRestarts", {"initial_learning_rate": 0.1, "first_decay_steps": 100, "t_mul": 2.0,
                                    "m_mul": 0.8, "alpha": 0.01}),
    Literal("CosineDecayRestarts", {"initial_learning_rate": np.float64(0.1), "first_decay_steps": 150,
                                    "t_mul": 1.0, "m_mul": 0.5}),
]


def run_schedule_row(literal, steps):
    """The rate at steps 0..2000 (every ``200 // steps``-th) and 10**6, against Keras's."""
    from .keras_reference import keras_schedule_from, tensorflow

    tf = tensorflow()
    schedule = literal.scratchopt()
    keras_schedule = keras_schedule_from(literal.name, literal.kwargs)
    points = list(range(0, 2001, max(1, 200 // steps))) + [10**6]
    theirs = np.array([np.asarray(keras_schedule(tf.constant(p, tf.int64))) for p in points])
    row = Row(repr(schedule), schedule.dtype.name, len(points), 0.0, 0.0, True)
    row.compare(schedule(np.array(points)), theirs)
    return row


LESSON_OPTIMIZERS = ["SGD", "SGD + momentum", "Adam", "AdamW", "RMSprop"]

#: The regularizer rows, as literal calls: (class name, arguments).
REGULARIZERS = [("L1", {"l1": 0.01}), ("L2", {"l2": 0.01}), ("L1L2", {"l1": 0.01, "l2": 0.001})]


def run_regularizer_row(name, kwargs, dtype, steps, seed=0):
    """Penalty and gradient on ``min(steps, 50)`` random arrays of every shape, against Keras."""
    from .keras_reference import tensorflow

    tf = tensorflow()
    import keras

    regularizer = getattr(regularizers, name)(**kwargs)
    theirs = getattr(keras.regularizers, name)(**kwargs)
    rng = np.random.default_rng(seed)
    count = min(steps, 50)
    row = Row(repr(regularizer), np.dtype(dtype).name, count, 0.0, 0.0, True)
    for _ in range(count):
        for shape in SHAPES:
            w = (rng.standard_normal(shape) * 10.0 ** rng.uniform(-3, 1)).astype(dtype)
            variable = tf.Variable(w)
            with tf.GradientTape() as tape:
                penalty = theirs(variable)
            row.compare(np.asarray(regularizer(w), dtype), penalty.numpy())
            row.compare(regularizer.gradient(w), tape.gradient(penalty, variable).numpy())
    return row


def run_callback_row(config):
    """A fixed sequence of monitored values through our callback and Keras's."""
    from .parity_callbacks import run_config

    result = run_config(config)
    note = result.summary if result.exact else f"{result.difference} ({result.summary})"
    return Row(result.name, "float32", result.epochs, 0.0, 0.0, result.exact, note)


#: The layer rows: (layer name, constructor arguments, input shape, dtype). Normalization in
#: float64 (float32 differs by TF's approximate packet rsqrt: bounded in test_layers.py);
#: dropout in both precisions, given Keras's own mask.
LAYERS = [
    ("BatchNormalization", {}, (32, 64), "float64"),
    ("BatchNormalization", {"axis": 1, "momentum": 0.9}, (8, 12, 5, 5), "float64"),
    ("LayerNormalization", {}, (32, 64), "float64"),
    ("LayerNormalization", {"axis": [1, 2]}, (4, 6, 8), "float64"),
    ("Dropout", {"rate": 0.3}, (32, 64), "float32"),
    ("Dropout", {"rate": 0.3, "noise_shape": (32, 1)}, (32, 64), "float64"),
    ("SpatialDropout2D", {"rate": 0.5}, (4, 5, 5, 8), "float32"),
]


def run_layer_row(name, kwargs, shape, dtype, steps, seed=0):
    """``min(steps, 20)`` training calls (forward, backward, moving statistics), then one inference call."""
    from .. import layers
    from .keras_reference import tensorflow

    tf = tensorflow()
    import keras

    rng = np.random.default_rng(seed)
    theirs = getattr(keras.layers, name)(**kwargs, dtype=dtype)
    ours = getattr(layers, name)(**kwargs)
    calls = min(steps, 20)
    row = Row(f"{name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) on {shape}", dtype, calls,
              0.0, 0.0, True)
    for _ in range(calls):
        x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
        dy = rng.standard_normal(shape).astype(dtype)
        variable = tf.constant(x)
        watched = [getattr(theirs, k).value for k in ("gamma", "beta") if getattr(theirs, k, None) is not None]
        with tf.GradientTape() as tape:
            tape.watch(variable)
            for v in watched:
                tape.watch(v)
            y = theirs(variable, training=True)
        grads = [g.numpy() for g in tape.gradient(y, [variable, *watched], output_gradients=tf.constant(dy))]
        y = y.numpy()
        if "Dropout" in name:  # Keras's mask, read off its output (x has no zeros)
            row.compare(ours(x, training=True, keep=y != 0), y)
        else:
            row.compare(ours(x, training=True), y)
        row.compare(ours.backward(dy), grads[0])
        for key, g in zip(("gamma", "beta"), grads[1:]):
            row.compare(ours.grads[key], g)
        if name == "BatchNormalization":
            row.compare(ours.moving_mean, theirs.moving_mean.numpy())
            row.compare(ours.moving_variance, theirs.moving_variance.numpy())
    x = rng.standard_normal(shape).astype(dtype)
    row.compare(ours(x, training=False), theirs(tf.constant(x), training=False).numpy())
    return row


def run_lesson_row(name, steps):
    """The lesson's optimizer comparison in float64, per-epoch losses against Keras's."""
    from .demos import optimizers as lesson

    epochs = max(2, steps // 20)
    ours, theirs = lesson.compare(name, epochs=epochs, dtype="float64")
    row = Row(f"lesson comparison: {name}, {epochs} epochs", "float64", epochs, 0.0, 0.0, True)
    for key in ("loss", "val_loss"):
        row.compare(np.array(ours[key]), np.array(theirs[key]))
    row.note = f"val_loss {ours['val_loss'][-1]:.6f} after epoch {epochs}"
    return row


def entries():
    """Every row of the table, in display order."""
    from .parity_augment import AUGMENT_ROWS, run_augment_row
    from .parity_callbacks import CALLBACK_CONFIGS
    from .parity_conv import CONV_ROWS, run_conv_row
    from .parity_lstm import LSTM_ROWS, run_lstm_row
    from .parity_pooling import POOLING_ROWS, run_pooling_row

    checks = [Check("optimizers", f"{describe(name, kwargs)} {dtype}",
                    lambda steps, n=name, k=kwargs, d=dtype: run_row(n, k, d, steps))
              for name, kwargs in CONFIGS for dtype in ("float32", "float64")]
    checks += [Check("optimizers", f"{describe('Muon', kwargs)} {dtype}",
                     lambda steps, k=kwargs, d=dtype: run_row("Muon", k, d, steps, bound=MUON_BOUND[d]))
               for kwargs, dtype in MUON_ROWS]
    checks += [Check("schedules", repr(s.scratchopt()), lambda steps, s=s: run_schedule_row(s, steps))
               for s in SCHEDULES]
    checks += [Check("regularizers", f"{getattr(regularizers, n)(**k)!r} {dtype}",
                     lambda steps, n=n, k=k, d=dtype: run_regularizer_row(n, k, d, steps))
               for n, k in REGULARIZERS for dtype in ("float32", "float64")]
    checks += [Check("callbacks", c.name, lambda steps, c=c: run_callback_row(c))
               for c in CALLBACK_CONFIGS]
    checks += [Check("layers", f"{name} {shape} {dtype}",
                     lambda steps, a=(name, kwargs, shape, dtype): run_layer_row(*a, steps))
               for name, kwargs, shape, dtype in LAYERS]
    checks += [Check("layers", f"{describe('Conv2D', k)} on {s} {d}",
                     lambda steps, k=k, s=s, d=d: run_conv_row(k, s, d, steps))
               for k, s, d in CONV_ROWS]
    checks += [Check("layers", f"{describe(name, {k: v for k, v in kwargs.items() if k != 'ties'})} on {shape} {dtype}"
                     + (" with ties" if kwargs.get("ties") else ""),
                     lambda steps, a=(name, kwargs, shape, dtype): run_pooling_row(*a, steps))
               for name, kwargs, shape, dtype in POOLING_ROWS]
    checks += [Check("layers", f"{label} {shape} {dtype}" + (" training" if training else ""),
                     lambda steps, a=(label, kwargs, shape, dtype, training): run_lstm_row(*a, steps=steps))
               for label, kwargs, shape, dtype, training in LSTM_ROWS]
    checks += [Check("augmentation", f"{name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) {shape} {dtype}",
                     lambda steps, a=(name, kwargs, shape, dtype): run_augment_row(*a, steps))
               for name, kwargs, shape, dtype in AUGMENT_ROWS]
    checks += [Check("training", f"lesson comparison: {name}", lambda steps, n=name: run_lesson_row(n, steps))
               for name in LESSON_OPTIMIZERS]
    return checks
