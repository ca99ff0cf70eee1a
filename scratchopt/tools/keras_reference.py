"""The same steps on Keras: the reference that every parity check compares against.

Keras is driven *eagerly* (``optimizer.apply``) on the CPU with one intra-op thread:
each TF op then runs alone, in Keras's order, with no graph rewrites and no XLA
(KERAS_SEMANTICS §0.6), which is the setting in which bit-for-bit equality is defined.
TensorFlow is imported on first use only; scratchopt itself never needs it.
"""

import os

import numpy as np

from .. import schedules

_tf = None

#: scratchopt slot name -> the Keras optimizer attribute holding that slot per variable.
KERAS_SLOTS = {
    "SGD": {"m": "momentums"},
    "Adam": {"m": "_momentums", "v": "_velocities", "v_max": "_velocity_hats"},
    "AdamW": {"m": "_momentums", "v": "_velocities", "v_max": "_velocity_hats"},
    "RMSprop": {"v": "_velocities", "avg_g": "_average_gradients", "buf": "_momentums"},
}


def tensorflow():
    """Import TensorFlow once, quietly, pinned to one intra-op thread (Eigen's sum order)."""
    global _tf
    if _tf is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
        except RuntimeError:  # TF already initialised its thread pools in this process
            pass
        _tf = tf
    return _tf


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


def keras_schedule_like(ours):
    """The Keras schedule a scratchopt schedule reproduces (``CosineDecay`` for the warmup one)."""
    tensorflow()
    import keras

    if isinstance(ours, schedules.WarmupCosineDecay):
        return keras.optimizers.schedules.CosineDecay(**ours.as_cosine_decay_config())
    return getattr(keras.optimizers.schedules, type(ours).__name__)(**ours.get_config())


def keras_optimizer(ours, names=None):
    """A fresh Keras optimizer configured like the scratchopt optimizer ``ours``."""
    tensorflow()
    import keras

    config = ours.get_config()
    if isinstance(config["learning_rate"], schedules.LearningRateSchedule):
        config["learning_rate"] = keras_schedule_like(config["learning_rate"])
    elif callable(config["learning_rate"]) and ours._schedule_takes_step:
        config["learning_rate"] = keras_schedule(config["learning_rate"])  # else Keras calls it bare
    return getattr(keras.optimizers, type(ours).__name__)(**config)


class KerasRun:
    """Keras variables and optimizer that mirror a scratchopt run, step for step."""

    def __init__(self, ours, params, names=None, exclude_ids=(), exclude_names=None):
        tf = tensorflow()
        import keras

        names = names or [f"param_{i}" for i in range(len(params))]
        self.variables = [keras.Variable(np.array(p), dtype=str(p.dtype), name=n)
                          for p, n in zip(params, names)]
        self.optimizer = keras_optimizer(ours)
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
                    state[ours] = values[i].numpy()
            out.append(state)
        return out

    def averages(self):
        return [v.numpy() for v in self.optimizer._model_variables_moving_average]

    def accumulators(self):
        return [v.numpy() for v in self.optimizer._accumulated_gradients]

    @property
    def iterations(self):
        return int(np.asarray(self.optimizer.iterations))
