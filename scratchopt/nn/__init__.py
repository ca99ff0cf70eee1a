"""A tiny network from scratch: ``Dense``, ``ReLU``, two losses and ``Sequential.fit``.

Enough to rerun the lesson's optimizer comparison with scratchopt's own optimizers,
schedules, callbacks and layers, and to check it against Keras epoch by epoch. Every layer
derives from ``Layer`` (``nn/layer.py``: the call / backward protocol and its checks).
"""

from .activations import ReLU
from .dense import Dense
from .layer import Layer
from .lstm import LSTM
from .losses import MeanSquaredError, SoftmaxCrossEntropy
from .sequential import History, Sequential

__all__ = ["Dense", "History", "LSTM", "Layer", "MeanSquaredError", "ReLU", "Sequential", "SoftmaxCrossEntropy"]
