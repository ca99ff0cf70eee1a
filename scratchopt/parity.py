"""``scratchopt parity``: every component against Keras, step by step, to the bit.

Each row runs one configuration on scratchopt (NumPy) and on eager Keras from the same
start, feeds both the same gradients for ``steps`` steps, and compares every parameter
and every piece of optimizer state after every step. "Exact" means the same bits (NaN
matches NaN); the ULP and absolute columns say how far apart the two are otherwise.
"""

import dataclasses

import numpy as np

from . import optimizers
from .numerics import ulp_distance


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
]

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


def same_bits(a, b):
    """True when two arrays hold the same dtype, shape and bits (any NaN matches any NaN)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    return bool(np.array_equal(nan_a, nan_b)) and a[~nan_a].tobytes() == b[~nan_b].tobytes()


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


def run_row(name, kwargs, dtype, steps, seed=0):
    """One row: ``steps`` steps of both optimizers on random data; returns a ``Row``."""
    from .keras_reference import KerasRun

    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    ours = getattr(optimizers, name)(**kwargs)
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    reference = KerasRun(ours, params)
    max_abs, max_ulp, exact = 0.0, 0.0, True
    for _ in range(steps):
        grads = [(rng.standard_normal(s) * 10.0 ** rng.uniform(-3, 1)).astype(dtype) for s in SHAPES]
        ours.apply(grads, params)
        reference.apply(grads)
        for _, a, b in state_pairs(ours, reference):
            if not same_bits(a, b):
                exact = False
                with np.errstate(invalid="ignore"):
                    max_abs = max(max_abs, float(np.nanmax(np.abs(a.astype(np.float64) - b))))
                max_ulp = max(max_ulp, float(np.max(ulp_distance(a, b))))
    if ours.iterations != reference.iterations:
        exact = False
    return Row(describe(name, kwargs), dtype.name, steps, max_abs, max_ulp, exact)


def entries():
    """The table's (name, kwargs, dtype) entries, in display order."""
    return [(name, kwargs, dtype) for name, kwargs in CONFIGS for dtype in ("float32", "float64")]
