"""Python-float constants becoming tensors: rounded once, or rounded through float32.

Keras hands a Python float to TensorFlow in one of two ways. ``ops.multiply(x, 0.1)``
converts it straight to ``x``'s dtype, rounding the double once (``as_dtype``).
``ops.cast(0.9, float64)`` first builds a *float32* tensor, so a float64 model sees
``0.8999999761581421`` (``through_float32``, ``keras_cast``). The learning rate always
takes the float32 road: Keras keeps it in a float32 variable.

TF's ``Cast`` kernel runs with flush-to-zero (as its other CPU kernels do), so a float32
subnormal becomes a zero of its sign on its way to float64 (found by the ci profile:
Keras's Ftrl with ``initial_accumulator_value=9.96e-42`` starts a float64 accumulator at
0.0, and its first step divides 0 by 0). The conversions here run inside ``tf_arithmetic``
for that; a cast to the tensor's own dtype converts nothing, in TF as here.
"""

import numpy as np

from .fpenv import tf_arithmetic


def as_dtype(x, dtype):
    """``x`` rounded once to ``dtype``: what ``ops.add(tensor, x)`` does with a Python float.

    float16 is the exception: TF makes a float16 tensor of a Python float through float32,
    so it is rounded twice (found by the ci profile: a loss_scale_factor of
    980.2500072678538 is 980.0 to TF, 980.5 rounded once).

    >>> as_dtype(0.9, "float64")
    np.float64(0.9)
    >>> float(as_dtype(980.2500072678538, "float16"))
    980.0
    """
    dtype = np.dtype(dtype)
    if dtype == np.float16:
        return np.float16(np.float32(x))
    return dtype.type(x)


def through_float32(x, dtype):
    """``x`` rounded to float32, then widened to ``dtype``: what ``ops.cast(x, dtype)`` does.

    >>> through_float32(0.9, "float64")
    np.float64(0.8999999761581421)
    >>> through_float32(1e-40, "float64")  # a float32 subnormal: flushed by TF's Cast
    np.float64(0.0)
    """
    x = np.float32(x)
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return x
    with tf_arithmetic():
        return dtype.type(x)


def keras_cast(x, dtype):
    """``ops.cast(x, dtype)`` for a Python number, NumPy scalar or NumPy array.

    ``tf.cast`` first makes a tensor of ``x``: a Python float becomes float32 (so it is
    rounded through float32), a Python int an integer tensor, a NumPy value keeps its own
    dtype. Then it converts that tensor to ``dtype``.

    >>> import numpy as np
    >>> float(keras_cast(0.9, "float64")), float(keras_cast(np.float64(0.9), "float64"))
    (0.8999999761581421, 0.9)
    """
    if type(x) is float:
        x = np.float32(x)
    x = np.asarray(x)
    if x.dtype == np.dtype(dtype):
        return x.copy()
    with tf_arithmetic():
        return x.astype(dtype)
