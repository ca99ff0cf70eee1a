"""``Flatten``: each sample's values in one row, so a Dense layer can follow a convolution."""

from ..backend import namespace
from .layer import Layer
from .pooling import _data_format


class Flatten(Layer):
    """``(N, d1, d2, ...) -> (N, d1 * d2 * ...)``, in channels_last order.

    ::

        forward:   y  = reshape(x, (N, -1))          (channels_first: x moved to
                                                      (N, d2, ..., d1) first, as Keras does)
        backward:  dx = reshape(dy, x.shape)         (the inverse move for channels_first)

    No arithmetic: exact both ways. An input of shape ``(N,)`` becomes ``(N, 1)``.

    Examples
    --------
    >>> import numpy as np
    >>> from scratchopt.nn.reshaping import Flatten
    >>> flatten = Flatten()
    >>> x = np.arange(8.0).reshape(1, 2, 2, 2)
    >>> flatten(x).tolist()
    [[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]]
    >>> flatten.backward(np.ones((1, 8))).shape
    (1, 2, 2, 2)
    >>> Flatten("channels_first")(x).tolist()  # channel 0 (0, 1, 2, 3 here) no longer first
    [[0.0, 4.0, 1.0, 5.0, 2.0, 6.0, 3.0, 7.0]]
    """

    def __init__(self, data_format=None):
        super().__init__()
        self.data_format = _data_format(data_format)

    def get_config(self):
        return {"data_format": self.data_format}

    def _moved(self, ndim):
        """The channels_first -> channels_last axis order, or None when nothing moves."""
        if self.data_format == "channels_first" and ndim > 2:
            return (0, *range(2, ndim), 1)
        return None

    def call(self, x, training=False):
        if x.ndim < 1:
            raise ValueError(f"Input 0 of layer Flatten is incompatible: expected min_ndim=1, "
                             f"found ndim={x.ndim}. Full shape received: {tuple(x.shape)}")
        order = self._moved(x.ndim)
        moved = x.transpose(order) if order else x
        self._last = {"shape": moved.shape, "order": order}
        # A copy, as TF's Reshape gives a new tensor: changing y in place must not change x.
        return moved.reshape(x.shape[0], -1).copy()

    def _backward(self, dy):
        dx = dy.reshape(self._last["shape"])
        order = self._last["order"]
        if order:  # back to channels_first: the inverse permutation
            dx = dx.transpose(sorted(range(len(order)), key=order.__getitem__))
        return namespace(dy).array(dx, copy=True, order="C")
