"""``torch.optim`` in NumPy, to torch 2.13's bits: ``SGD``, ``Adam``, ``AdamW``, ``RMSprop``.

Each file holds one rule, with a box of torch's op order and how it differs from Keras's
form; ``_ops`` reproduces the ATen CPU kernels they call (FMA in ``add(alpha=)``, ``lerp_``
and ``addcmul_``: ``scratchopt.numerics.fma``). ``lr_scheduler`` has torch's schedulers.
"""

from . import lr_scheduler
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "RMSprop", "lr_scheduler"]
