"""Layers that regularize and normalize, each with a hand-written backward pass.

``Dropout``, ``SpatialDropout1D/2D/3D`` (``regularization/dropout.py``), ``BatchNormalization``
(``batch_normalization.py``), ``LayerNormalization`` (``layer_normalization.py``): Keras's
arguments and defaults, Keras's arithmetic (see each module's formula box), and
``layer.backward(dy)`` in place of autodiff. ``Layer`` (``scratchopt/nn/layer.py``: the
protocol and its checks of ``x`` and ``dy``) is the base of these and of every other layer,
``nn.Dense``, ``nn.ReLU``, ``augment.MixUp`` and ``augment.CutMix``.
"""

from .nn.layer import Layer
from .regularization.batch_normalization import BatchNormalization
from .regularization.dropout import Dropout, SpatialDropout1D, SpatialDropout2D, SpatialDropout3D
from .regularization.layer_normalization import LayerNormalization

__all__ = [
           "BatchNormalization",
           "Dropout",
           "Layer",
           "LayerNormalization",
           "SpatialDropout1D",
           "SpatialDropout2D",
           "SpatialDropout3D",
]
