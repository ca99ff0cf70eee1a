"""``Conv2D`` against Keras: the parity rows, and the term-scale errors the bounds are set on.

``compare(kwargs, shape, dtype, rng)`` draws a kernel, bias, input and ``dy``, runs one
forward and backward through ``scratchopt.nn.conv.Conv2D`` and through ``keras.layers.Conv2D``
(the same weights; gradients from ``tf.GradientTape`` with ``output_gradients=dy``), and
returns both results: ``y``, ``dx``, ``dkernel``, ``dbias``.

``term_errors`` measures a non-exact result the way a float sum's error should be measured:
relative to its **term scale** ``S``, the same quantity computed in float64 from ``|x|``,
``|kernel|``, ``|bias|``, ``|dy|`` (every term counted positive, the activation's mask
kept). A sum is off by a few epsilons of ``S`` whatever its order, and ``S`` bounds every
partial sum, so ``|ours - keras| / (eps * S)`` is a scale-free number of epsilons;
``parity_tests/measure_conv.py`` prints its maximum over many random layers.
"""

import numpy as np

from ..nn.conv import Conv2D, col2im, im2col, output_size
from .parity import Row

#: The parity table's rows: (constructor arguments, input shape, dtype). float64 rows are
#: exact (TF's Eigen order); float32 rows are held to a bound (``Row.hold_to``).
CONV_ROWS = [
    ({"filters": 8, "kernel_size": 3}, (4, 8, 8, 3), "float64"),
    ({"filters": 32, "kernel_size": 3, "padding": "same", "activation": "relu"}, (32, 8, 8, 16), "float64"),
    ({"filters": 5, "kernel_size": (2, 3), "strides": 2, "padding": "same"}, (3, 9, 7, 4), "float64"),
    ({"filters": 12, "kernel_size": 3, "padding": "same", "data_format": "channels_first"}, (2, 6, 8, 8),
     "float64"),
    ({"filters": 64, "kernel_size": 3, "padding": "same"}, (4, 8, 8, 64), "float64"),
    ({"filters": 32, "kernel_size": 3, "padding": "same", "activation": "relu"}, (32, 8, 8, 16), "float32"),
    ({"filters": 5, "kernel_size": (2, 3), "strides": 2, "padding": "same"}, (3, 9, 7, 4), "float32"),
]

#: The float32 bound, in float32 epsilons of the term scale (see ``docs/convolution.md`` for
#: the measurement it comes from).
F32_EPSILONS = 8
#: The float64 bound for what is not bit-exact (``dx`` in a few small, strided shapes; see
#: ``nn/conv.py``), in float64 epsilons of the term scale.
F64_EPSILONS = 4

NAMES = ("y", "dx", "dkernel", "dbias")


def draw(kwargs, shape, dtype, rng):
    """Random ``(x, kernel, bias, dy)`` for a layer of ``kwargs`` on input ``shape``."""
    layer = Conv2D(**kwargs, dtype=dtype)
    channels_first = layer.data_format == "channels_first"
    h, w, cin = (shape[2], shape[3], shape[1]) if channels_first else (shape[1], shape[2], shape[3])
    (kh, kw), (sh, sw) = layer.kernel_size, layer.strides
    ho, wo = output_size(h, kh, sh, layer.padding)[0], output_size(w, kw, sw, layer.padding)[0]
    x = rng.standard_normal(shape).astype(dtype)
    kernel = (rng.standard_normal((kh, kw, cin, layer.filters)) * 0.3).astype(dtype)
    bias = rng.standard_normal(layer.filters).astype(dtype) if layer.use_bias else None
    out = (shape[0], layer.filters, ho, wo) if channels_first else (shape[0], ho, wo, layer.filters)
    dy = rng.standard_normal(out).astype(dtype)
    return x, kernel, bias, dy


def ours(kwargs, dtype, x, kernel, bias, dy):
    """scratchopt's ``(y, dx, dkernel, dbias)`` (dbias None without a bias)."""
    layer = Conv2D(**kwargs, dtype=dtype)
    layer.build(x.shape)
    layer.params["kernel"][...] = kernel
    if bias is not None:
        layer.params["bias"][...] = bias
    y = layer(x)
    dx = layer.backward(dy)
    return y, dx, layer.grads["kernel"], layer.grads.get("bias")


def keras(kwargs, dtype, x, kernel, bias, dy, native=False):
    """Keras's ``(y, dx, dkernel, dbias)``, eager, from ``tf.GradientTape``.

    A channels_first layer is run as Keras's channels_last layer on the transposed input
    (and its results transposed back), unless ``native``: TF's CPU Conv2D refuses NCHW in
    float64, and in float32 (oneDNN) it was seen to add the bias along the wrong axis when
    the output's width equals ``filters`` (``parity_tests/test_conv.py`` keeps the case).
    """
    if kwargs.get("data_format") == "channels_first" and not native:
        last = {k: v for k, v in kwargs.items() if k != "data_format"}
        to_last = (lambda a: None if a is None else np.ascontiguousarray(a.transpose(0, 2, 3, 1)))
        y, dx, *rest = keras(last, dtype, to_last(x), kernel, bias, to_last(dy))
        return (np.ascontiguousarray(y.transpose(0, 3, 1, 2)), np.ascontiguousarray(dx.transpose(0, 3, 1, 2)),
                *rest)
    from .keras_reference import tensorflow

    tf = tensorflow()
    import keras as keras_module

    layer = keras_module.layers.Conv2D(**kwargs, dtype=dtype)
    layer.build(x.shape)
    layer.kernel.assign(kernel)
    watched = [layer.kernel]
    if bias is not None:
        layer.bias.assign(bias)
        watched.append(layer.bias)
    variable = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(variable)
        y = layer(variable)
    grads = tape.gradient(y, [variable, *watched], output_gradients=tf.constant(dy))
    return (y.numpy(), *(g.numpy() for g in grads)) + ((None,) if bias is None else ())


def compare(kwargs, shape, dtype, rng):
    """``(inputs, ours, keras)`` for one random draw."""
    inputs = draw(kwargs, shape, dtype, rng)
    return inputs, ours(kwargs, dtype, *inputs), keras(kwargs, dtype, *inputs)


def term_scales(kwargs, x, kernel, bias, dy, active=None):
    """``S`` for ``y``, ``dx``, ``dkernel``, ``dbias``: each computed in float64 from absolute
    values (``active``: the ReLU's mask, from Keras's output, or None)."""
    layer = Conv2D(**kwargs)
    first = layer.data_format == "channels_first"
    x, dy = (np.abs(a.astype(np.float64)) for a in (x, dy))
    if first:
        x, dy = x.transpose(0, 2, 3, 1), dy.transpose(0, 2, 3, 1)
        active = None if active is None else active.transpose(0, 2, 3, 1)
    w = np.abs(kernel.astype(np.float64))
    kh, kw, _, filters = w.shape
    (sh, sw), (n, h, wd, _) = layer.strides, x.shape
    ho, top, bottom = output_size(h, kh, sh, layer.padding)
    wo, left, right = output_size(wd, kw, sw, layer.padding)
    x_pad = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    p = im2col(x_pad, kh, kw, sh, sw, ho, wo)
    wm = w.reshape(-1, filters)
    y = (p @ wm).reshape(n, ho, wo, filters) + (0.0 if bias is None else np.abs(bias.astype(np.float64)))
    dz = dy if active is None else dy * active
    rows = dz.reshape(-1, filters)
    dx = col2im(rows @ wm.T, x_pad.shape, kh, kw, sh, sw, ho, wo)[:, top:top + h, left:left + wd]
    if first:
        y, dx = y.transpose(0, 3, 1, 2), dx.transpose(0, 3, 1, 2)
    return y, dx, (p.T @ rows).reshape(w.shape), rows.sum(axis=0)


def term_errors(kwargs, inputs, mine, theirs):
    """``{name: max |ours - keras| / (eps * S)}`` over the four results, in epsilons of the
    dtype. Where ``S`` is 0 (no term at all) both must be exactly 0 (else inf)."""
    x = inputs[0]
    eps = float(np.finfo(x.dtype).eps)
    active = theirs[0] > 0 if kwargs.get("activation") == "relu" else None
    errors = {}
    for name, a, b, s in zip(NAMES, mine, theirs, term_scales(kwargs, *inputs, active=active)):
        if a is None:
            continue
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        ratio = np.divide(diff, eps * s, out=np.where(diff == 0, 0.0, np.inf), where=s > 0)
        errors[name] = float(np.max(ratio)) if ratio.size else 0.0
    return errors


def random_layer(rng):
    """``(kwargs, input shape)``: a random Conv2D that Keras accepts on that input."""
    while True:
        kh, kw = (int(v) for v in rng.integers(1, 6, 2))
        sh, sw = (int(v) for v in rng.integers(1, 4, 2))
        padding = str(rng.choice(["valid", "same"]))
        h, w = (int(v) for v in rng.integers(1, 13, 2))
        if padding == "valid" and (kh > h or kw > w):
            continue
        n, cin, filters = int(rng.integers(1, 7)), int(rng.integers(1, 25)), int(rng.integers(1, 41))
        kwargs = {"filters": filters, "kernel_size": (kh, kw), "strides": (sh, sw), "padding": padding}
        if rng.random() < 0.3:
            kwargs["data_format"] = "channels_first"
        if rng.random() < 0.2:
            kwargs["use_bias"] = False
        if rng.random() < 0.3:
            kwargs["activation"] = "relu"
        shape = (n, cin, h, w) if kwargs.get("data_format") == "channels_first" else (n, h, w, cin)
        return kwargs, shape


def keras_is_wrong(kwargs, inputs, theirs, errors):
    """True when a float32 difference is beyond the bound because Keras's float32 result is
    itself far (over 1000 epsilons of the term scale) from Keras's float64 result on the same
    numbers: TF's oneDNN kernel is wrong there (seen: one input channel, an input narrower
    than the stride, "same" padding; values of 1e37), not scratchopt."""
    if max(errors.values()) <= F32_EPSILONS:
        return False
    wide = [None if a is None else a.astype(np.float64) for a in inputs]
    reference = keras(kwargs, "float64", *wide)
    return max(term_errors(kwargs, inputs, theirs, reference).values()) > 1000


def run_conv_row(kwargs, shape, dtype, steps, seed=0):
    """``min(steps, 5)`` forward + backward calls on fresh random data; returns a ``Row``.

    Every result is folded in with ``row.compare`` (so ``max_abs`` / ``max_ulp`` say how far
    apart); float64 rows are expected exact. A float32 row is not bitwise (oneDNN against
    BLAS): it is held to ``F32_EPSILONS`` of the term scale (``Row.hold_to``), and its note
    gives the largest error.
    """
    rng = np.random.default_rng(seed)
    calls = min(steps, 5)
    label = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    row = Row(f"Conv2D({label}) on {shape}", np.dtype(dtype).name, calls, 0.0, 0.0, True)
    worst = 0.0
    for _ in range(calls):
        inputs, mine, theirs = compare(kwargs, shape, dtype, rng)
        for a, b in zip(mine, theirs):
            if a is not None:
                row.compare(a, b)
        worst = max(worst, *term_errors(kwargs, inputs, mine, theirs).values())
    if np.dtype(dtype) == np.float32:
        row.hold_to(worst, F32_EPSILONS, source="parity_tests/measure_conv.py")
    return row
