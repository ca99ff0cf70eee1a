"""What every layer shares: the call / backward protocol, parameters, Keras's argument checks.

Every layer of scratchopt (``nn.Dense``, ``nn.ReLU``, the regularization layers of
``scratchopt.layers``, the mixing layers of ``scratchopt.augment``) derives from ``Layer``.
A layer is called like Keras's, ``y = layer(x, training=False)``, and then, unlike Keras,
asked for its own gradient: ``dx = layer.backward(dy)`` returns the gradient with respect
to the input of the *last* call and fills ``layer.grads`` (keyed like ``layer.params``).
There is no autodiff: each layer's ``_backward`` is written out by hand, in the order in
which TensorFlow's registered gradients compute it, so the bits match ``tf.GradientTape``.

The base does the checking, once for every layer::

    layer(x, training)   ->  x must be a float32/float64 NumPy or CuPy array (TypeError)
                             y = layer.call(x, training=training, ...)
                             the output's shape, dtype and array kind are remembered
    layer.backward(dy)   ->  dy must have that shape (ValueError), dtype and kind (TypeError),
                             all checked before anything changes; then layer._backward(dy)

``layer.params`` holds the live arrays (``"kernel"``, ``"gamma"``, ...), created at the
first call from the input's shape and dtype. An optimizer updates them in place::

    keys = list(layer.params)
    opt.apply([layer.grads[k] for k in keys], [layer.params[k] for k in keys])

A layer that has no gradient (``MixUp``, ``CutMix``: random data augmentation) says so with
``differentiable = False``: its ``backward`` raises, and ``Sequential`` stops there.
"""

import reprlib

from .. import checks
from ..backend import namespace
from ..numerics import reduce_mean_over, reduce_sum_over

FLOAT_DTYPES = checks.FLOAT_DTYPES


class Layer(checks.Configurable):
    """Base class: input and ``dy`` checks, ``params`` / ``grads`` and the ``trainable`` flag.

    A subclass writes ``call(x, training=False, ...)`` (keeping in ``self._last`` what its
    backward needs: values computed in the call, or copies, never the caller's arrays, so
    that changing ``x`` in place after the call does not change ``dx``, as with Keras's
    tape) and ``_backward(dy)``; ``layer(x)`` checks ``x`` and calls ``call``,
    ``layer.backward(dy)`` checks ``dy`` against the output of that call and calls
    ``_backward``. ``get_config()`` gives the constructor's arguments, so ``repr(layer)``
    and ``type(layer).from_config(config)`` work for every layer.

    Examples
    --------
    >>> import numpy as np
    >>> from scratchopt.layers import Layer
    >>> class Square(Layer):
    ...     def call(self, x, training=False):
    ...         self._last = {"x": x.copy()}
    ...         return x * x
    ...     def _backward(self, dy):
    ...         return 2 * self._last["x"] * dy
    >>> square = Square()
    >>> square(np.array([1.0, -3.0]))
    array([1., 9.])
    >>> square.backward(np.array([1.0, 1.0]))  # d(x**2)/dx = 2x
    array([ 2., -6.])
    >>> square.backward(np.array([1.0, 1.0, 1.0]))  # dy must be shaped like the last output
    Traceback (most recent call last):
    ...
    ValueError: `dy` must have the shape of the last output, (2,). Received: dy of shape (3,)...
    """

    #: False for a layer that has no gradient (data augmentation): ``backward`` raises.
    differentiable = True

    def __init__(self):
        self.params = {}  # name -> live array (what an optimizer updates)
        self.grads = {}  # name -> gradient from the last backward
        self.trainable = True
        self.built = False
        self._last = None  # what _backward needs from the last call
        self._output = None  # (shape, dtype, array module's name) of the last call's output

    def get_config(self):
        """The constructor's arguments (none here; every layer with arguments overrides it)."""
        return {}

    def __call__(self, x, training=False, **options):
        """``y = layer(x, training=False)``: checks ``x``, then the subclass's ``call``."""
        y = self.call(self._input(x), training=training, **options)
        self._output = (y.shape, y.dtype, namespace(y).__name__)
        return y

    def call(self, x, training=False):
        """The forward pass on a checked ``x`` (each layer writes its own)."""
        raise NotImplementedError(f"{type(self).__name__} does not define call(x, training)")

    def _input(self, x, name="x"):
        """``x`` as a float32/float64 NumPy or CuPy array, else a ``TypeError`` naming ``name``."""
        try:
            namespace(x)
        except TypeError:
            raise TypeError(f"`{name}` must be a NumPy or CuPy array. {_received(name, x)}") from None
        if x.dtype not in FLOAT_DTYPES:
            raise TypeError(f"`{name}` must be a float32 or float64 array. {_received(name, x)}")
        return x

    def backward(self, dy):
        """The gradient with respect to the last call's input; fills ``self.grads``.

        ``dy`` (the gradient with respect to the last call's output) is checked first: not a
        float array, another dtype or the other array kind (NumPy / CuPy) is a ``TypeError``,
        another shape a ``ValueError``, and the layer is left as it was.
        """
        if not self.differentiable:
            raise TypeError(f"{type(self).__name__} is not differentiable: it has no backward (it "
                            "transforms the data, as in Keras); apply it before the layers you train")
        if self._output is None:
            raise RuntimeError(f"{type(self).__name__}.backward needs a forward call first")
        shape, dtype, kind = self._output
        dy = self._input(dy, "dy")
        if dy.shape != shape:
            raise ValueError(f"`dy` must have the shape of the last output, {shape}. {_received('dy', dy)}")
        if dy.dtype != dtype:
            raise TypeError(f"`dy` must have the dtype of the last output, {dtype}. {_received('dy', dy)}")
        if namespace(dy).__name__ != kind:
            raise TypeError(f"`dy` must be a {_kind(kind)} array, as the last output is (NumPy and CuPy "
                            f"are never mixed). {_received('dy', dy)}")
        return self._backward(dy)

    def _backward(self, dy):
        raise NotImplementedError(f"{type(self).__name__} does not define _backward(dy)")

    #: (weight, argument) pairs: the weights a regularizer argument may penalize, in Keras's
    #: order (``Dense``/``Conv2D``: the kernel; ``LSTM``: kernel, recurrent kernel, bias).
    regularizable = ()

    def penalties(self):
        """Each regularizer's penalty on its weight (Keras's ``layer.losses``): Keras adds
        each to the loss as its own term."""
        return [getattr(self, argument)(self.params[key]) for key, argument in self.regularizable
                if getattr(self, argument, None) is not None and key in self.params]

    def penalty(self):
        """The sum of ``penalties()``, 0.0 without a regularizer."""
        return sum(self.penalties(), 0.0)


def _kind(name):
    return "CuPy" if name == "cupy" else "NumPy"


def _received(name, value):
    """``checks.received``, with an array described by its shape and dtype, not its values."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"Received: {name} of shape {tuple(value.shape)}, dtype {value.dtype} ({type(value).__name__})"
    return f"Received: {name}={reprlib.repr(value)} ({type(value).__name__})"


# --- Keras's int() / float() arguments ---------------------------------------------------------
#
# Where Keras refuses a value at construction, we raise the same exception type; where Keras
# silently converts something odd (``axis="1"`` through ``int()``, ``momentum="0.9"`` through
# ``float()``), ``checks`` refuses it with a TypeError instead.


def _converts(name, value, convert, what):
    """What Keras's ``convert(value)`` refuses, refused with its exception type (``int("a")``:
    a ValueError, ``int(None)``: a TypeError) and our message."""
    try:
        convert(value)
    except (TypeError, ValueError) as error:
        raise type(error)(f"`{name}` must be {what}. {checks.received(name, value)}") from None


def as_int(name, value):
    """An integer argument that Keras passes through ``int()`` (then ``checks.integer``)."""
    _converts(name, value, int, "an integer")
    return checks.integer(name, value)


def as_float(name, value):
    """A real-number argument that Keras passes through ``float()``, returned as a Python float."""
    _converts(name, value, float, "a number")
    return float(checks.number(name, value))


# --- the arithmetic the normalization layers share -----------------------------------------


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
