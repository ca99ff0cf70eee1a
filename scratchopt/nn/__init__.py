"""The network pieces from scratch: layers, losses, metrics and ``Sequential.fit``.

``Dense``, ``Conv2D``, ``MaxPooling2D``, ``GlobalAveragePooling2D``, ``Flatten``,
``Activation``/``ReLU`` and ``LSTM``; the losses (``MeanSquaredError``, the cross-entropies)
and the accuracy metrics; ``Sequential`` to chain them. Enough to rerun the lesson's
optimizer comparison and its complete training setup (a small CNN) with scratchopt's own
optimizers, schedules, callbacks and layers, and to check both against Keras epoch by epoch. Every layer
derives from ``Layer`` (``nn/layer.py``: the call / backward protocol and its checks).
"""

from . import losses, metrics, saving
from .activations import Activation, ReLU
from .conv import Conv2D
from .dense import Dense
from .layer import Layer
from .lstm import LSTM
from .losses import CategoricalCrossentropy, MeanSquaredError, SoftmaxCrossEntropy, SparseCategoricalCrossentropy
from .pooling import GlobalAveragePooling2D, MaxPooling2D
from .reshaping import Flatten
from .sequential import History, Sequential, load_model

__all__ = ["Activation", "CategoricalCrossentropy", "Conv2D", "Dense", "Flatten", "GlobalAveragePooling2D", "History",
           "LSTM", "Layer", "MaxPooling2D", "MeanSquaredError", "ReLU", "Sequential", "SoftmaxCrossEntropy",
           "SparseCategoricalCrossentropy", "load_model", "losses", "metrics", "saving"]
