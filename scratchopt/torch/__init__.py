"""PyTorch's conventions (torch 2.13), reproduced as exactly as scratchopt reproduces Keras's.

``scratchopt.torch.optim`` (SGD, Adam, AdamW, RMSprop, and ``optim.lr_scheduler``) and
``scratchopt.torch.nn`` (BatchNorm1d/2d, LayerNorm, Dropout, ``nn.utils`` clipping), with
torch's names, arguments and defaults, on NumPy arrays. Each file's box says how the torch
form differs from the Keras form; ``scratchopt conventions`` measures the differences.
"""

from . import nn, optim

__all__ = ["nn", "optim"]
