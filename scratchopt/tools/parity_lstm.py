"""Parity rows for ``scratchopt.nn.LSTM``: the layer against Keras's, forward and BPTT.

Keras runs eagerly on the CPU (one intra-op thread) under ``tf.GradientTape`` with
``output_gradients=dy``; its weights are set to ours, and its seed is ours. With dropout, each
layer draws its own masks from that seed; Keras's are read first (``cell.get_dropout_mask`` /
``cell.get_recurrent_dropout_mask``, in the order its call draws them, which the call then
reuses) and compared with ours bit for bit, as a row's ``masks``.

A row compares y, dx and the three weight gradients. Float64 rows are expected bit-exact
(``row.exact``); float32 rows are held to a bound measured by ``parity_tests/measure_lstm.py``
(``row.exact`` stays honest, and ``row.note`` gives the error in eps of the term scale).
"""

import numpy as np

from .parity import Row, same_bits

#: (label, LSTM keyword arguments, (N, T, in), dtype, training)
LSTM_ROWS = [
    ("LSTM(8)", {"units": 8}, (4, 6, 8), "float64", False),
    ("LSTM(8, return_sequences=True)", {"units": 8, "return_sequences": True}, (4, 6, 8), "float64", False),
    ("LSTM(8, dropout=0.3)", {"units": 8, "dropout": 0.3}, (4, 6, 8), "float64", True),
    ("LSTM(8, dropout=0.2, recurrent_dropout=0.2)", {"units": 8, "dropout": 0.2, "recurrent_dropout": 0.2},
     (4, 6, 8), "float64", True),
    ("LSTM(8, recurrent_dropout=0.2) at inference", {"units": 8, "recurrent_dropout": 0.2}, (4, 6, 8),
     "float64", False),
    ("LSTM(8)", {"units": 8}, (4, 6, 8), "float32", False),
    ("LSTM(8, dropout=0.2, recurrent_dropout=0.2)", {"units": 8, "dropout": 0.2, "recurrent_dropout": 0.2},
     (4, 6, 8), "float32", True),
]

#: The bounds, in eps of the term scale, chosen from ``parity_tests/measure_lstm.py`` (measured
#: on 2026-11-30, 3 draws of 35 configurations: float32 4.64 eps, float64 off the exact shapes
#: 3.18 eps).
FLOAT32_BOUND_EPS = 16.0
FLOAT64_BOUND_EPS = 8.0


def keras_lstm(layer, x, dy, training):
    """Keras's LSTM with ``layer``'s arguments, weights and seed on ``x``: y, dx, the weight
    gradients (``dy`` as the output gradient) and the masks it drew (None where none)."""
    from .keras_reference import tensorflow

    tf = tensorflow()
    import keras

    config = {k: layer.get_config()[k] for k in ("units", "activation", "recurrent_activation", "use_bias",
                                                 "unit_forget_bias", "dropout", "recurrent_dropout",
                                                 "return_sequences")}
    theirs = keras.layers.LSTM(**config, seed=layer.seed, dtype=layer.dtype.name)
    theirs.build(x.shape)
    cell = theirs.cell
    cell.kernel.assign(np.asarray(layer.params["kernel"]))
    cell.recurrent_kernel.assign(np.asarray(layer.params["recurrent_kernel"]))
    if layer.use_bias:
        cell.bias.assign(np.asarray(layer.params["bias"]))
    xt = tf.constant(x)
    masks = {"dropout": None, "recurrent_dropout": None}
    if training:  # draw Keras's masks now; the call reuses the cached ones
        dp = cell.get_dropout_mask(xt[:, 0, :])
        rdp = cell.get_recurrent_dropout_mask(tf.zeros((x.shape[0], layer.units), x.dtype))
        if dp is not None:
            masks["dropout"] = np.stack([m.numpy() for m in dp]) if isinstance(dp, list) else dp.numpy()
        if rdp is not None:
            masks["recurrent_dropout"] = np.stack([m.numpy() for m in rdp])
    weights = [cell.kernel.value, cell.recurrent_kernel.value] + ([cell.bias.value] if layer.use_bias else [])
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = theirs(xt, training=training)
    grads = tape.gradient(y, [xt, *weights], output_gradients=tf.constant(dy))
    names = ["kernel", "recurrent_kernel", "bias"][:len(weights)]
    return {"y": y.numpy(), "dx": grads[0].numpy(), **{k: g.numpy() for k, g in zip(names, grads[1:])},
            "masks": masks}


def lstm_pair(kwargs, shape, dtype, training, seed=0):
    """Ours and Keras's results on one random input, each layer made with ``seed`` and drawing
    its own masks: ``(ours, theirs, inputs)``, the first two dicts of arrays."""
    from ..nn.lstm import LSTM

    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    layer = LSTM(**kwargs, seed=seed, dtype=dtype)
    layer.build(shape)
    out_shape = (shape[0], shape[1], layer.units) if layer.return_sequences else (shape[0], layer.units)
    dy = rng.standard_normal(out_shape).astype(dtype)
    theirs = keras_lstm(layer, x, dy, training)
    y = layer(x, training=training)
    dx = layer.backward(dy)
    ours = {"y": y, "dx": dx, **layer.grads, "masks": layer.masks}
    return ours, theirs, {"x": x, "dy": dy, "layer": layer}


def scaled_error(ours, theirs, key, inputs):
    """max |ours - theirs| / (eps * scale), the scale being the largest |value| of Keras's result
    (a normwise error in eps of the term scale)."""
    a, b = np.asarray(ours[key], np.float64), np.asarray(theirs[key], np.float64)
    eps = np.finfo(np.asarray(theirs[key]).dtype).eps
    scale = max(float(np.max(np.abs(b))), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(a - b))) / (eps * scale)


KEYS = ("y", "dx", "kernel", "recurrent_kernel", "bias")


def run_lstm_row(label, kwargs, shape, dtype, training, steps=1, seed=0):
    """One row: ``steps`` random draws (at most 5), every result compared with Keras's."""
    row = Row(f"{label} on {shape}" + (", training" if training else ""), dtype, min(max(steps, 1), 5),
              0.0, 0.0, True)
    worst = 0.0
    for k in range(row.steps):
        ours, theirs, inputs = lstm_pair(kwargs, shape, dtype, training, seed=seed + k)
        for name, mask in theirs["masks"].items():  # the same draws, in any dtype: a bound does not cover them
            mine = ours["masks"][name]
            if not (mine is None if mask is None else mine is not None and same_bits(mine, mask)):
                row.exact = row.within = False
                row.note = f"{name} masks differ from Keras's"
        for key in KEYS:
            if key in theirs:
                row.compare(ours[key], theirs[key])
                worst = max(worst, scaled_error(ours, theirs, key, inputs))
    if dtype == "float32":  # oneDNN's float32 matmul and Eigen's float32 sigmoid/tanh are not reproduced
        row.hold_to(worst, FLOAT32_BOUND_EPS, source="parity_tests/measure_lstm.py")
    elif not row.exact:  # the rows' float64 shapes are the exact ones: a difference is a failure
        row.note = (f"{row.note}; " if row.note else "") + f"not bit-exact: max error {worst:.2f} eps of the term scale"
    return row
