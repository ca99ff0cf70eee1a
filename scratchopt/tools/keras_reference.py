"""The same steps on Keras: the reference that every parity check compares against.

Keras is driven *eagerly* (``optimizer.apply``) on the CPU with one intra-op thread:
each TF op then runs alone, in Keras's order, with no graph rewrites and no XLA
(KERAS_SEMANTICS §0.6), which is the setting in which bit-for-bit equality is defined.
TensorFlow is imported on first use only; scratchopt itself never needs it.

The reference is built from the *literal* arguments of the call under test
(``keras_optimizer_from``, ``keras_schedule_from``, ``KerasRun(..., literal=kwargs)``): only
the arguments given are passed to Keras, so Keras's own defaults fill the rest, and a wrong
default of ours (say Adam's ``epsilon``) shows as a difference. ``keras_optimizer`` and
``keras_schedule_like`` copy scratchopt's ``get_config()`` instead; they cannot see a wrong
default, and the parity tests do not use them for that.
"""

import contextlib
import dataclasses
import inspect
import os
import sys
import tempfile

import numpy as np

from .. import schedules

_tf = None

#: scratchopt slot name -> the Keras optimizer attribute holding that slot per variable.
KERAS_SLOTS = {
    "SGD": {"m": "momentums"},
    "Adam": {"m": "_momentums", "v": "_velocities", "v_max": "_velocity_hats"},
    "AdamW": {"m": "_momentums", "v": "_velocities", "v_max": "_velocity_hats"},
    "RMSprop": {"v": "_velocities", "avg_g": "_average_gradients", "buf": "_momentums"},
    "Nadam": {"m": "_momentums", "v": "_velocities"},
    "Adamax": {"m": "_m", "u": "_u"},
    "Adagrad": {"accumulator": "_accumulators"},
    "Adadelta": {"accumulated_grad": "_accumulated_grads", "accumulated_delta_var": "_accumulated_delta_vars"},
    "Lion": {"m": "_momentums"},
    "ScheduleFreeAdamW": {"z": "_momentums", "v": "_velocities"},
    "Ftrl": {"accumulator": "_accumulators", "linear": "_linears"},
    "Lamb": {"m": "_momentums", "v": "_velocities"},
    "Adafactor": {"r": "_r", "c": "_c", "v": "_v"},
    "Muon": {"m": "momentums", "v": "adam_velocities"},
}


#: What TensorFlow prints to stderr on import (absl's C++ log, which ignores
#: ``TF_CPP_MIN_LOG_LEVEL`` before ``absl::InitializeLog``), said twice: oneDNN's notice that
#: results may differ, next to a table claiming exact ones, and absl's note about itself.
#: ``tensorflow()`` drops these lines and passes anything else through.
IMPORT_NOISE = ("oneDNN custom operations are on", "All log messages before absl::InitializeLog()")


def tensorflow():
    """Import TensorFlow once, quietly, pinned to one intra-op thread (Eigen's sum order).

    Quietly: ``TF_CPP_MIN_LOG_LEVEL=2`` unless set (TF's C++ info and warnings), and the
    ``IMPORT_NOISE`` lines removed from what the import writes to stderr. Nothing that
    changes the arithmetic (``TF_ENABLE_ONEDNN_OPTS`` stays as it is).
    """
    global _tf
    if _tf is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with _stderr_without(IMPORT_NOISE):
            import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
        except RuntimeError:  # TF already initialised its thread pools in this process
            pass
        _tf = tf
    return _tf


@contextlib.contextmanager
def _stderr_without(noise):
    """Run the block with file descriptor 2 going to a temporary file, then write what it
    got back to stderr, less the lines that contain one of ``noise`` (all of it on an error)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no descriptor 2 to borrow
        yield
        return
    failed = True
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
            failed = False
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode(errors="replace").splitlines(keepends=True)
            kept = lines if failed else [line for line in lines if not any(n in line for n in noise)]
            if kept:
                os.write(2, "".join(kept).encode())


def keras_schedule(fn):
    """A Keras LearningRateSchedule calling the Python ``fn(step)``; its output is float32."""
    tf = tensorflow()
    import keras

    class PythonSchedule(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            return tf.constant(np.float32(fn(int(np.asarray(step)))), tf.float32)

        def get_config(self):
            return {}

    return PythonSchedule()


@dataclasses.dataclass
class Literal:
    """A constructor call as a test or a parity row writes it: a class name and the arguments
    given, nothing else. Both sides are built from it: ``scratchopt()`` makes scratchopt's
    object, ``keras_schedule_from`` Keras's, each applying *its own* defaults to what is left
    out, so a wrong default on our side is a difference the comparison sees."""

    name: str
    kwargs: dict

    def scratchopt(self):
        """scratchopt's object: ``scratchopt.schedules.<name>(**kwargs)``."""
        return getattr(schedules, self.name)(**self.kwargs)

    def __repr__(self):
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in self.kwargs.items())})"


def keras_schedule_from(name, kwargs):
    """Keras's schedule for the literal call ``schedules.<name>(**kwargs)``.

    Keras has every scratchopt schedule but the lesson's ``WarmupCosineDecay(initial_learning_rate,
    warmup_steps, total_steps)``: its reference is Keras's ``CosineDecay`` written from the
    lesson's definition (0 up to ``initial_learning_rate`` over ``warmup_steps``, then a cosine
    to 0 at ``total_steps``), not from scratchopt's own conversion. The warmup starts at a
    zero of the rate's own type (``np.float64(0.0)`` for an ``np.float64`` rate), since Keras
    computes in the dtype of ``initial_learning_rate``.
    """
    tensorflow()
    import keras

    kwargs = dict(kwargs)
    if name == "WarmupCosineDecay":
        for key in ("initial_learning_rate", "warmup_steps", "total_steps"):
            if key not in kwargs:
                raise TypeError(f"WarmupCosineDecay: give `{key}` by name in the literal")
        kwargs.pop("name", None)
        peak, warmup, total = kwargs.pop("initial_learning_rate"), kwargs.pop("warmup_steps"), kwargs.pop("total_steps")
        if kwargs:
            raise TypeError(f"WarmupCosineDecay has no arguments {sorted(kwargs)}")
        zero = np.float64(0.0) if isinstance(peak, np.float64) else 0.0
        return keras.optimizers.schedules.CosineDecay(zero, total - warmup, warmup_target=peak,
                                                      warmup_steps=warmup)
    return getattr(keras.optimizers.schedules, name)(**kwargs)


def _takes_step(fn):
    """Whether Keras would have to pass ``fn`` the step: it has a required positional argument."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
               for p in parameters)


def keras_learning_rate(value):
    """Keras's ``learning_rate`` for a literal one: a ``Literal`` schedule becomes Keras's
    schedule, a Python callable ``step -> rate`` a Keras schedule calling it, a number stays."""
    if isinstance(value, Literal):
        return keras_schedule_from(value.name, value.kwargs)
    if isinstance(value, schedules.LearningRateSchedule):
        raise TypeError(f"{value!r} is a scratchopt object: give the schedule as "
                        "Literal(name, kwargs), so Keras's is built from the same arguments")
    if callable(value) and _takes_step(value):
        return keras_schedule(value)
    return value  # a number, or a callable that Keras calls with no argument


def scratchopt_kwargs(kwargs):
    """The same literal arguments for scratchopt: each ``Literal`` made into scratchopt's object."""
    return {k: v.scratchopt() if isinstance(v, Literal) else v for k, v in kwargs.items()}


def keras_optimizer_from(name, kwargs):
    """Keras's optimizer for the literal call ``optimizers.<name>(**kwargs)``: only the
    arguments given are passed, so Keras's own defaults fill the rest."""
    tensorflow()
    import keras

    kwargs = dict(kwargs)
    if "learning_rate" in kwargs:
        kwargs["learning_rate"] = keras_learning_rate(kwargs["learning_rate"])
    return getattr(keras.optimizers, name)(**kwargs)


# --- from scratchopt's own configuration (weaker: a wrong default of ours is copied over) ----


def keras_schedule_like(ours):
    """The Keras schedule configured like the scratchopt schedule ``ours`` (its ``get_config()``).

    A wrong default of ours is copied into Keras here and goes unseen: comparisons that
    test the defaults build the reference from the literal arguments (``keras_schedule_from``).
    """
    tensorflow()
    import keras

    if isinstance(ours, schedules.WarmupCosineDecay):
        config = ours.get_config()
        return keras_schedule_from("WarmupCosineDecay", {k: config[k] for k in
                                                         ("initial_learning_rate", "warmup_steps", "total_steps")})
    return getattr(keras.optimizers.schedules, type(ours).__name__)(**ours.get_config())


def keras_optimizer(ours, names=None):
    """A fresh Keras optimizer configured like the scratchopt optimizer ``ours`` (its
    ``get_config()``; see ``keras_schedule_like`` for what that cannot catch)."""
    tensorflow()
    import keras

    config = ours.get_config()
    if isinstance(config["learning_rate"], schedules.LearningRateSchedule):
        config["learning_rate"] = keras_schedule_like(config["learning_rate"])
    elif callable(config["learning_rate"]) and ours._rate.takes_step:
        config["learning_rate"] = keras_schedule(config["learning_rate"])  # else Keras calls it bare
    return getattr(keras.optimizers, type(ours).__name__)(**config)


class KerasRun:
    """Keras variables and optimizer that mirror a scratchopt run, step for step."""

    def __init__(self, ours, params, names=None, exclude_ids=(), exclude_names=None, literal=None):
        """``literal``: the arguments ``ours`` was constructed with, as written (schedules as
        ``Literal``); Keras's optimizer is then built from them alone, with Keras's defaults
        for the rest. Without it, from ``ours.get_config()`` (which copies our defaults)."""
        tf = tensorflow()
        import keras

        names = names or [f"param_{i}" for i in range(len(params))]
        self.variables = [keras.Variable(np.array(p), dtype=str(p.dtype), name=n)
                          for p, n in zip(params, names)]
        if literal is None:
            self.optimizer = keras_optimizer(ours)
        else:
            self.optimizer = keras_optimizer_from(type(ours).__name__, literal)
        if exclude_ids or exclude_names:
            self.optimizer.exclude_from_weight_decay(
                var_list=[self.variables[i] for i in exclude_ids] or None, var_names=exclude_names)
        self._tf = tf

    def apply(self, grads):
        """One step; ``None`` entries are passed through as Keras's missing gradients."""
        tensors = [None if g is None else self._tf.constant(g) for g in grads]
        self.optimizer.apply(tensors, self.variables)

    def params(self):
        return [v.numpy() for v in self.variables]

    def slots(self):
        """Per variable, ``{scratchopt slot name: array}`` for the slots Keras created."""
        out = []
        table = KERAS_SLOTS[type(self.optimizer).__name__]
        for i in range(len(self.variables)):
            state = {}
            for ours, attr in table.items():
                values = getattr(self.optimizer, attr, None) or []
                if values and values[i] is not None:
                    value = values[i].numpy()
                    if value.dtype.kind in "iu":  # Adafactor's integer placeholder for an unfactored r, c
                        continue
                    state[ours] = value
            out.append(state)
        return out

    def averages(self):
        return [v.numpy() for v in self.optimizer._model_variables_moving_average]

    def accumulators(self):
        return [v.numpy() for v in self.optimizer._accumulated_gradients]

    @property
    def iterations(self):
        return int(np.asarray(self.optimizer.iterations))
