"""``scratchopt.torch.nn``: torch 2.13's BatchNorm1d/2d, LayerNorm, Dropout and ``nn.utils`` clipping.

Channels-first NumPy arrays; each module is called like torch's (``y = module(x)``, the mode
from ``module.train()`` / ``module.eval()``) and, as every scratchopt layer, asked for its
gradient: ``dx = module.backward(dy)`` fills ``module.grads`` (``"weight"``, ``"bias"``).
Each file's docstring has a box: how the torch form differs from the Keras form.
"""

from . import utils
from .batch_norm import BatchNorm1d, BatchNorm2d
from .dropout import Dropout
from .layer_norm import LayerNorm

__all__ = ["BatchNorm1d", "BatchNorm2d", "Dropout", "LayerNorm", "utils"]
