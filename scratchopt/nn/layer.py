"""What every layer shares: the call / backward protocol, parameters, argument checks.

A layer is called like Keras's, ``y = layer(x, training=False)``, and then, unlike Keras,
asked for its own gradient: ``dx = layer.backward(dy)`` returns the gradient with respect
to the input of the *last* call and fills ``layer.grads`` (keyed like ``layer.params``).
There is no autodiff: each layer's ``backward`` is written out by hand, in the order in
which TensorFlow's registered gradients compute it, so the bits match ``tf.GradientTape``.

``layer.params`` holds the live arrays (``"gamma"``, ``"beta"``), created at the first call
from the input's shape and dtype. An optimizer updates them in place::

    keys = list(layer.params)
    opt.apply([layer.grads[k] for k in keys], [layer.params[k] for k in keys])
"""

import numbers

import numpy as np

from ..backend import namespace
from ..numerics import reduce_mean_over, reduce_sum_over

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class Layer:
    """Base class: input checks, ``params`` / ``grads`` and the ``trainable`` flag.

    A subclass writes ``__call__`` (keeping in ``self._last`` what its backward needs,
    the input under ``"x"``) and ``_backward(dy)``; ``backward`` checks ``dy`` first.

    Examples
    --------
    >>> import numpy as np
    >>> from scratchopt.layers import Layer
    >>> class Square(Layer):
    ...     def __call__(self, x, training=False):
    ...         self._last = {"x": self._input(x)}
    ...         return x * x
    ...     def _backward(self, dy):
    ...         return 2 * self._last["x"] * dy
    >>> square = Square()
    >>> square(np.array([1.0, -3.0]))
    array([1., 9.])
    >>> square.backward(np.array([1.0, 1.0]))  # d(x**2)/dx = 2x
    array([ 2., -6.])
    """

    def __init__(self):
        self.params = {}  # name -> live array (what an optimizer updates)
        self.grads = {}  # name -> gradient from the last backward
        self.trainable = True
        self.built = False
        self._last = None  # what backward needs from the last call

    def _input(self, x, name="x"):
        """``x`` as a float32/float64 NumPy or CuPy array, else a ``TypeError``."""
        namespace(x)  # TypeError for anything that is not a NumPy or CuPy array
        if x.dtype not in FLOAT_DTYPES:
            raise TypeError(f"`{name}` must be a float32 or float64 array, got dtype {x.dtype}")
        return x

    def backward(self, dy):
        """The gradient with respect to the last call's input; fills ``self.grads``."""
        if self._last is None:
            raise RuntimeError(f"{type(self).__name__}.backward needs a forward call first")
        x = self._last["x"]
        dy = self._input(dy, "dy")
        if dy.shape != x.shape:
            raise ValueError(f"`dy` must have the last input's shape {x.shape}, got {dy.shape}")
        if dy.dtype != x.dtype:
            raise TypeError(f"`dy` must have the last input's dtype {x.dtype}, got {dy.dtype}")
        namespace(x, dy)  # TypeError when NumPy and CuPy are mixed
        return self._backward(dy)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


# --- Argument checks: Keras's, plus a TypeError for what is not a number -------------------
#
# Where Keras refuses a value at construction, we raise the same exception type; where Keras
# silently converts something odd (``axis="1"`` through ``int()``, ``momentum="0.9"`` through
# ``float()``), we refuse it with a TypeError instead.


def received(name, value):
    return f"Received: {name}={value!r} ({type(value).__name__})"


def _as_number(name, value, convert, kind, what):
    """An argument Keras passes through ``convert`` (``int``/``float``): it must convert (the
    error Keras would raise, with our message) and be a ``kind`` that is not a bool."""
    try:
        convert(value)
    except (TypeError, ValueError) as error:
        raise type(error)(f"`{name}` must be {what}. {received(name, value)}") from None
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(f"`{name}` must be {what}. {received(name, value)}")
    return convert(value)


def as_int(name, value):
    """An integer argument that Keras passes through ``int()``."""
    return _as_number(name, value, int, numbers.Integral, "an integer")


def as_float(name, value):
    """A real-number argument that Keras passes through ``float()``."""
    return _as_number(name, value, float, numbers.Real, "a number")


def as_bool(name, value):
    """A flag (Keras takes any value's truthiness; we want a bool)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be True or False. {received(name, value)}")
    return bool(value)


def normalize_axis(axis, ndim, name="axis"):
    """``axis`` (possibly negative) as an index into ``ndim`` dimensions, else ``ValueError``."""
    if not -ndim <= axis < ndim:
        raise ValueError(f"`{name}` {axis} is out of bounds for an input of rank {ndim}")
    return axis % ndim


def unbroadcast(g, shape):
    """The gradient of a broadcast: ``g`` summed back down to ``shape``, as TF's Add/Mul grads do.

    TF sums over the axes where ``shape`` has a 1 (or no dimension) and ``g`` does not, with
    ``keepdims=True``, then reshapes; with no such axis it is a copy.
    """
    padded = (1,) * (g.ndim - len(shape)) + tuple(shape)
    axes = [i for i in range(g.ndim) if padded[i] == 1 and g.shape[i] != 1]
    return reduce_sum_over(g, axes, keepdims=True).reshape(shape)


def moments(x, axes):
    """``tf.nn.moments(x, axes, keepdims=True)``: the mean and the *biased* variance.

    ::

        mean = reduce_mean(x)                 = sum(x) / T(N), the sum in Eigen's order
        var  = reduce_mean((x - mean)**2)     divided by N, not N - 1 (as Keras, for
                                              normalizing and for the moving average)

    TF's ``SquaredDifference`` computes ``(x - mean)**2`` as ``d = x - mean; d * d``. Call it
    inside ``numerics.tf_arithmetic()`` (flush-to-zero), as the layers do.
    """
    mean = reduce_mean_over(x, axes, keepdims=True)
    d = x - mean
    return mean, reduce_mean_over(d * d, axes, keepdims=True)
