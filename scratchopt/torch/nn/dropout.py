"""Dropout: torch 2.13's ``nn.Dropout(p=0.5)`` on NumPy arrays.

While training, each element is zeroed with probability ``p`` and the rest are scaled by
``1 / (1 - p)``; in eval mode (``module.eval()``) the layer is the identity.

How it differs from Keras's ``Dropout`` (``scratchopt/regularization/dropout.py``): the
arithmetic is the same, ``y = x * T(1 / (1 - p))`` with the reciprocal computed in double
and rounded once to the dtype (ATen's ``noise.div_(1 - p)`` on a 0/1 mask is
``1 * (1 / (1 - p))``), which is *not* ``x / (1 - p)`` (about one element in three differs
in the last bit for p = 0.3). What differs:

* torch keeps ``p`` of the elements *away* (Keras's ``rate`` is the same number);
* the mode comes from ``train()`` / ``eval()``, not from a ``training=`` argument;
* ``p = 1`` gives zeros (torch special-cases it: no division by zero);
* a dropped element is ``x * 0``: NaN where ``x`` is inf or NaN (Keras uses ``where`` and
  gives 0); ``-x`` gives ``-0``;
* the validation: ``p`` outside [0, 1] is a ValueError with torch's message (NaN passes in
  torch; refused here), a non-number a TypeError.

torch's random numbers (its Mersenne-Twister Bernoulli draws) are not reproduced: a
training call draws its mask from ``numpy.random.default_rng(seed)``, and a test passes
torch's own mask with ``layer(x, keep=mask)`` (read off torch's output: ``y != 0``).
"""


from ... import checks
from ...backend import namespace
from .module import Module


class Dropout(Module):
    """``torch.nn.Dropout(p=0.5)``; ``seed`` (ours) seeds the NumPy draws.

    ``layer(x, keep=None)``: ``keep`` (booleans shaped like ``x``) replaces the draw.

    Examples
    --------
    >>> import numpy as np
    >>> from scratchopt.torch.nn import Dropout
    >>> drop = Dropout(p=0.5)
    >>> x = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
    >>> drop(x, keep=np.array([True, False, True, False]))
    array([2., 0., 6., 0.], dtype=float32)
    >>> drop.backward(np.ones_like(x))
    array([2., 0., 2., 0.], dtype=float32)
    >>> drop.eval()(x)  # the identity
    array([1., 2., 3., 4.], dtype=float32)
    """

    def __init__(self, p=0.5, *, seed=None):
        super().__init__()
        if not checks.is_real(p):
            raise TypeError(f"`p` must be a number. {checks.received('p', p)}")
        if not 0 <= p <= 1:  # torch's message; NaN fails here (torch lets it through)
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = float(p)
        self.seed = seed
        self._rng = checks.generator(seed)
        self.keep = None

    def get_config(self):
        return {"p": self.p}

    def __call__(self, x, keep=None):
        return super(Module, self).__call__(x, training=self.training, keep=keep)

    def call(self, x, training=True, keep=None):
        """``y = x * (keep * T(1 / (1 - p)))``: the mask scaled first, then one multiply (ATen's order)."""
        xp = namespace(x)
        if not training or self.p == 0:
            self._last = {"scale": None}
            return x.copy()
        if self.p == 1:
            noise = xp.zeros(x.shape, x.dtype)
        else:
            if keep is None:
                keep = self._rng.random(x.shape) >= self.p
            keep = xp.asarray(keep, dtype=bool)
            if keep.shape != x.shape:
                raise ValueError(f"`keep` must have the input's shape {x.shape}. Received: keep of shape {keep.shape}")
            noise = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.p))
        self.keep = keep
        self._last = {"scale": noise}
        return x * noise

    def _backward(self, dy):
        """``dx = dy * noise`` (``noise = keep * T(1 / (1 - p))``); the identity in eval mode."""
        noise = self._last["scale"]
        return dy.copy() if noise is None else dy * noise
