"""Parity-table rows for pooling, flatten, softmax and categorical cross-entropy.

Each row draws ``min(steps, 20)`` random inputs (and output gradients), runs our layer (or
loss) and Keras's under ``tf.GradientTape``, and compares the forward values and the input
gradients. Pooling and Flatten are bit-exact; softmax and the cross-entropy use ``exp``/``log``
(NumPy's, not Eigen's), so those rows are bounded, not exact: their ``note`` gives the largest
error in epsilons of the term scale (``parity_tests/test_softmax_losses.errors`` defines it).

The lead wires ``POOLING_ROWS`` into ``parity.entries()``::

    checks += [Check("layers", f"{name} {shape} {dtype}",
                     lambda steps, a=(name, kwargs, shape, dtype): run_pooling_row(*a, steps))
               for name, kwargs, shape, dtype in POOLING_ROWS]
"""

import numpy as np

from .parity import Row

#: (layer or loss name, constructor arguments, input shape, dtype): the rows of the table.
POOLING_ROWS = [
    ("MaxPooling2D", {"pool_size": (2, 2), "ties": True}, (8, 8, 8, 4), "float32"),
    ("MaxPooling2D", {"pool_size": (3, 3), "strides": (1, 2), "padding": "same", "ties": True},
     (4, 7, 9, 3), "float64"),
    ("MaxPooling2D", {"pool_size": (2, 2), "data_format": "channels_first"}, (4, 3, 8, 8), "float64"),
    ("GlobalAveragePooling2D", {}, (8, 6, 6, 16), "float32"),
    ("GlobalAveragePooling2D", {"data_format": "channels_first", "keepdims": True}, (4, 5, 7, 7), "float64"),
    ("Flatten", {}, (8, 4, 4, 8), "float32"),
    ("Activation", {"activation": "softmax"}, (32, 10), "float32"),
    ("Activation", {"activation": "softmax"}, (32, 10), "float64"),
    ("CategoricalCrossentropy", {}, (32, 10), "float32"),
    ("CategoricalCrossentropy", {"from_logits": True}, (32, 10), "float64"),
]


def _ours(name, kwargs):
    from ..nn import activations, losses, pooling, reshaping

    for module in (pooling, reshaping, activations, losses):
        if hasattr(module, name):
            return getattr(module, name)(**kwargs)
    raise ValueError(f"no pooling row named {name!r}")


#: The bounds of the bounded rows, (output, gradient), in eps of the term scale: those of
#: parity_tests/test_softmax_losses.py, chosen from parity_tests/measure_softmax.py.
BOUNDS = {"Activation": (6, 10), "CategoricalCrossentropy": (3, 4), "logits": (3, 5)}


def run_pooling_row(name, kwargs, shape, dtype, steps, seed=0):
    """``min(steps, 20)`` random batches through our component and Keras's; returns a ``Row``.

    ``kwargs["ties"]`` (not passed to the layers) draws small integers, so that windows hold
    equal maxima. The loss rows draw probabilities (softmax of random logits) or logits with
    one-hot labels, and compare the loss and its gradient."""
    from .keras_reference import tensorflow

    tf = tensorflow()
    import keras

    kwargs = dict(kwargs)
    ties = kwargs.pop("ties", False)
    rng = np.random.default_rng(seed)
    calls = min(steps, 20)
    label = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    bounded = name in ("Activation", "CategoricalCrossentropy")
    row = Row(f"{name}({label}) on {shape}", dtype, calls, 0.0, 0.0, True)
    eps = float(np.finfo(dtype).eps)
    worst = [0.0, 0.0]
    previous = keras.config.floatx()
    keras.config.set_floatx(dtype)
    try:
        for _ in range(calls):
            if ties:
                x = rng.integers(-3, 4, shape).astype(dtype)
            else:
                x = (rng.standard_normal(shape) * 3).astype(dtype)
            if name == "CategoricalCrossentropy":
                from ..nn.activations import softmax

                from_logits = kwargs.get("from_logits", False)
                x = x if from_logits else softmax(x)
                y_true = np.eye(shape[-1], dtype=dtype)[rng.integers(0, shape[-1], shape[0])]
                variable = tf.Variable(x)
                with tf.GradientTape() as tape:
                    value = keras.losses.CategoricalCrossentropy(**kwargs)(y_true, variable)
                theirs = (value.numpy(), tape.gradient(value, variable).numpy())
                ours_fn = _ours(name, kwargs)
                ours = (ours_fn(y_true, x), ours_fn.gradient(y_true, x))
                g, y64 = 1.0 / shape[0], y_true.astype(np.float64)
                if from_logits:  # the kernel's softmax - y, times 1/N
                    grad_scale = g * (softmax(x.astype(np.float64)) + y64)
                else:  # through the clip, Log's 1/p and the division by the row sum r
                    q = x.astype(np.float64)
                    r = q.sum(-1, keepdims=True)
                    dp = g * y64 / np.clip(q / r, 1e-7, 1 - 1e-7)
                    grad_scale = dp / r + np.sum(dp * q, -1, keepdims=True) / r / r
                scales = (abs(float(theirs[0])) + 1.0, grad_scale)
            else:
                variable = tf.constant(x)
                with tf.GradientTape() as tape:
                    tape.watch(variable)
                    y = getattr(keras.layers, name)(**kwargs, dtype=dtype)(variable)
                dy = rng.standard_normal(y.shape).astype(dtype)
                theirs = (y.numpy(), tape.gradient(y, variable, output_gradients=tf.constant(dy)).numpy())
                layer = _ours(name, kwargs)
                ours = (layer(x), None)
                ours = (ours[0], layer.backward(dy))
                yk = np.abs(theirs[0].astype(np.float64))
                scales = (yk, (np.abs(dy) + np.sum(np.abs(dy * yk), -1, keepdims=True)) * yk)
            for i, (a, b, scale) in enumerate(zip(ours, theirs, scales)):
                row.compare(a, b)
                if bounded:
                    diff = np.abs(np.asarray(a, np.float64) - b)
                    floor = np.finfo(dtype).tiny / eps
                    worst[i] = max(worst[i], float(np.max(diff / (eps * np.maximum(scale, floor)))))
    finally:
        keras.config.set_floatx(previous)
    if bounded:  # NumPy's exp/log are not Eigen's: held to the bounds measure_softmax.py measured
        bounds = BOUNDS["logits" if kwargs.get("from_logits") else name]
        row.bound = (f"output {bounds[0]:g}, gradient {bounds[1]:g} eps of the term scale "
                     "(parity_tests/measure_softmax.py)")
        row.within = bool(worst[0] <= bounds[0] and worst[1] <= bounds[1])
        row.note = (f"output {worst[0]:.2f} eps of the term scale (bound {bounds[0]:g}), gradient "
                    f"{worst[1]:.2f} (bound {bounds[1]:g})")
    return row
