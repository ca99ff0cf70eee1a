"""What the torch layers share: ``train()`` / ``eval()`` on top of scratchopt's ``Layer``.

A torch module does not take ``training=`` at each call; it carries a ``training`` flag,
``True`` from construction, set by ``module.train()`` and ``module.eval()``. ``Module``
keeps that flag and hands it to ``Layer.__call__``, which does the input checks; the
``backward(dy)`` / ``grads`` protocol is ``Layer``'s (``scratchopt/nn/layer.py``).
"""

import math
import numbers

import numpy as np

from ... import checks
from ...nn.layer import Layer


class Module(Layer):
    """A ``Layer`` called like a torch module: ``y = module(x)``, mode from ``train()`` / ``eval()``."""

    def __init__(self):
        super().__init__()
        self.training = True

    def train(self, mode=True):
        """Training mode (``mode=False``: evaluation mode); returns the module, as torch does."""
        if not isinstance(mode, bool):
            raise ValueError(  # noqa: TRY004 (torch's type)
                f"training mode is expected to be boolean. {checks.received('mode', mode)}")
        self.training = mode
        return self

    def eval(self):
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def __call__(self, x):
        return super().__call__(x, training=self.training)


def size(name, value):
    """A dimension torch passes to ``torch.empty``: an int >= 0 (TypeError / RuntimeError, as torch)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be an integer. {checks.received(name, value)}")
    if value < 0:  # torch.empty(-1): RuntimeError "Trying to create tensor with negative dimension"
        raise RuntimeError(f"`{name}` must be >= 0 (torch: negative dimension). {checks.received(name, value)}")
    return int(value)


def real(name, value, *, optional=False):
    """A float argument (``eps``, ``momentum``): torch keeps it unchecked until the first call,
    where a str fails with a TypeError; here that TypeError comes at construction."""
    if value is None and optional:
        return None
    if not checks.is_real(value) or not math.isfinite(value):
        what = "a finite number" + (" or None" if optional else "")
        error = TypeError if not checks.is_real(value) else ValueError
        raise error(f"`{name}` must be {what}. {checks.received(name, value)}")
    return float(value)
