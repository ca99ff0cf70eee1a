"""A tiny network from scratch: ``Dense``, ``ReLU``, two losses and ``Sequential.fit``.

Enough to rerun the lesson's optimizer comparison with scratchopt's own optimizers,
schedules, callbacks and layers, and to check it against Keras epoch by epoch.
"""

from .layers import Dense, ReLU
from .losses import MeanSquaredError, SoftmaxCrossEntropy
from .sequential import History, Sequential

__all__ = ["Dense", "History", "MeanSquaredError", "ReLU", "Sequential", "SoftmaxCrossEntropy"]
