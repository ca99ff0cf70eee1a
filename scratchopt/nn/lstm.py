"""``LSTM``: a long short-term memory layer, forward over time and backpropagation through time by hand.

The equations (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000), for
one step ``t``, an input ``x_t`` (N, in) and the previous state ``h``, ``c`` (N, units)::

    z   = x_t @ W + h @ U + b            W: kernel (in, 4u), U: recurrent_kernel (u, 4u), b: (4u,)
    z_i, z_f, z_c, z_o = split(z, 4)     Keras's gate order: input, forget, cell, output
    i   = sigmoid(z_i)                   how much of the candidate to write
    f   = sigmoid(z_f)                   how much of the old cell to keep
    g   = tanh(z_c)                      the candidate
    o   = sigmoid(z_o)                   how much of the cell to show
    c_t = f * c + i * g                  the cell: a sum, so its gradient flows through time
    h_t = o * tanh(c_t)                  the output (and the next step's h)

``sigmoid`` is ``recurrent_activation`` and ``tanh`` is ``activation``. The layer returns
``h_T`` (N, u), or every ``h_t`` (N, T, u) with ``return_sequences=True``; the state starts at
zeros.

Backpropagation through time runs the same steps backwards, ``t = T-1, ..., 0``, carrying two
gradients from the future, ``dh`` (into ``h_t`` from step t+1) and ``dc`` (into ``c_t``)::

    dh_t = dy_t + dh                                 dy_t: the gradient of the output at t
    do   = dh_t * tanh(c_t)
    dc_t = dh_t * o * (1 - tanh(c_t)**2) + dc        dc: f_{t+1} * dc_{t+1}, from the next step
    di, df, dg = dc_t * g, dc_t * c, dc_t * i
    dz   = [di*i*(1-i), df*f*(1-f), dg*(1-g**2), do*o*(1-o)]
    dW  += x_t^T @ dz      dU += h^T @ dz      db += sum over the batch of dz
    dx_t = dz @ W^T        dh   = dz @ U^T     dc  = f * dc_t     (handed to step t-1)

The weights are shared by all steps, so their gradients are sums over time; ``c`` is updated
by ``f * c`` and not through a squashing matrix product, which is why its gradient survives
many steps (and ``unit_forget_bias=True`` starts ``f`` near ``sigmoid(1)`` to help it).

Dropout in a recurrent layer (Gal & Ghahramani 2016, "A theoretically grounded application of
dropout in recurrent neural networks"): ``dropout`` drops entries of the input ``x_t`` and
``recurrent_dropout`` entries of the state ``h`` fed back, with inverted scaling
``1 / (1 - rate)``. The masks are drawn **once per sequence** and the same mask is used at
every step. A fresh mask at each step would inject new noise into the recurrent path at every
step, and over T steps that noise compounds: the memory cannot hold information for long.
With one mask, dropping a unit means removing one *connection* of the network for the whole
sequence, exactly as a feed-forward dropout removes a unit: the network trained is a
sub-network of the same recurrent network, and the dropout is approximate Bayesian inference
over its weights (variational dropout). At inference (``training=False``) nothing is dropped.

Keras's masks, exactly (``keras/src/layers/rnn/lstm.py``, ``dropout_rnn_cell.py``; Keras 3.15.1
on the TensorFlow backend):

* ``recurrent_dropout == 0`` (``implementation=2``): **one** input mask (N, in), shared by the four
  gates; the fused product ``z = (x_t * m) @ W + h @ U + b`` above. Keras first tries its fused
  cuDNN kernel (``backend.lstm``), which on a CPU raises ``NotImplementedError``; it then runs the
  generic ``LSTMCell`` step in a ``tf.while_loop``. That generic step is what this layer follows.
* ``recurrent_dropout > 0`` (``implementation=1``, also at inference): **four** input masks
  (N, in) and **four** recurrent masks (N, u), one per gate (i, f, c, o), and four products per
  step: ``z_k = ((x_t * m_k) @ W_k + b_k) + (h * r_k) @ U_k``. The sums are grouped differently
  from the fused form (the bias is added before ``h @ U``), so the bits differ too.
* A mask holds ``1 / (1 - rate)`` (rounded to the dtype) where kept and 0 where dropped;
  the input masks are drawn first, then the recurrent ones, at the start of each call.
* A mask is applied only when ``training`` and ``0 < rate < 1``: Keras's cell ignores
  ``rate == 1`` (nothing is dropped). Keras clips a rate outside [0, 1] silently; this layer
  refuses it (``ValueError``).
* Each mask is Keras's draw, bit for bit: ``tf.nn.experimental.stateless_dropout`` of ones,
  that is ``u = stateless_uniform((N, in), pair)``, kept where ``u >= T(rate)``
  (``regularization.dropout.keep_mask``, TF's Philox in ``numerics.philox``). Each mask takes
  the next seed pair of the layer's ``philox.SeedGenerator(seed)``, as each of Keras's takes
  the next of the cell's ``SeedGenerator``: ``LSTM(..., seed=s)`` drops what
  ``keras.layers.LSTM(..., seed=s)`` drops, call after call.
* Keras draws the masks at the start of **every** call, inference included
  (``RNN._maybe_config_dropout_masks``), and drops them unused when ``training`` is False. So
  does this layer, without computing them: an inference call spends its seed pairs, and the
  next training call uses the same pairs as Keras's. A rate of 1 draws nothing (TF's
  ``dropout`` returns zeros before it takes a seed).

To use masks of your own: ``layer(x, training=True, masks={"dropout": m, "recurrent_dropout":
r})``, ``m`` of shape (N, in) (four of them, stacked as (4, N, in), with recurrent dropout),
``r`` of shape (4, N, u); float masks (Keras's tensors, values 0 and ``1/(1-rate)``) or boolean
``keep`` masks. A mask given spends no seed pair. ``layer.masks`` holds the masks of the last
call.

Exactness (float64, NumPy): TensorFlow's float64 ``sigmoid`` and ``tanh`` are Eigen's
vectorised approximations (a rational ``tanh``; ``sigmoid = e / (1 + e)`` with Eigen's
``exp``), not the C library's: ``_eigen_tanh`` / ``_eigen_sigmoid`` below reproduce them, in
whole packets of 4 and a scalar tail, as TF's kernels compute them. Gradients summed over
time are added as TF's ``AddN`` adds them (``_add_n``), the fused bias's gradient row by row
(Keras's ``ops.add(z, bias)`` is ``tf.nn.bias_add``), and the four gates' gradients into ``x_t``
and ``h`` in the tape's order (o, f, i, c; ``GATE_SUM_ORDER``). The result is bit-exact against
Keras's ``GradientTape`` (y, dx and the three weight gradients, with and without dropout) where
``numerics.matmul`` follows TF's float64 matmul: a batch of 2 or more, ``units`` and the feature
count multiples of 8. Elsewhere, and in float32 (oneDNN's matmul, Eigen's float32
approximations) and on CuPy, the same formulas in ordinary arithmetic stay within a measured
bound: 3.2 eps (float64) and 4.6 eps (float32) of the term scale measured, 8 and 16 asserted
(``parity_tests/measure_lstm.py``, ``parity_tests/test_lstm.py``).
"""

import math
import numbers

import numpy as np

from .. import checks
from ..backend import namespace
from ..numerics import philox, reduce_sum_over, tf_arithmetic
from ..numerics.matmul import bias_add_grad, matmul
from ..regularization.dropout import keep_mask
from .layer import Layer

ACTIVATIONS = ("tanh", "sigmoid", "linear")
INITIALIZERS = ("glorot_uniform", "orthogonal", "zeros", "ones")
PACKET = 4  # Eigen's float64 AVX packet: 4 lanes


# --- TensorFlow's float64 sigmoid and tanh (Eigen, AVX without FMA) ---------------------------

def _packets(x):
    """A boolean array: True where ``x`` (flattened, row-major) is in a whole packet of 4."""
    flat = np.arange(x.size).reshape(x.shape)
    return flat < x.size - x.size % PACKET


def _eigen_exp(x):
    """Eigen's ``pexp_double`` (Cephes: ``2**n * exp(r)`` with a rational ``exp(r)``)."""
    lo, hi = -745.519, 709.784
    v = np.minimum(x, hi)
    n = np.floor(1.4426950408889634073599 * v + 0.5)
    r = v - n * 0.693145751953125
    r = r - n * 1.42860682030941723212e-6
    r2 = r * r
    px = (1.26177193074810590878e-4 * r2 + 3.02994407707441961300e-2) * r2 + 9.99999999999999999910e-1
    px = px * r
    qx = ((3.00198505138664455042e-6 * r2 + 2.52448340349684104192e-3) * r2
          + 2.27265548208155028766e-1) * r2 + 2.00000000000000000009e0
    y = 2.0 * (px / (qx - px)) + 1.0
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.maximum(np.ldexp(y, np.clip(n, -2099, 2099).astype(np.int64)), x)
    return np.where(x < lo, 0.0, e)


def _eigen_sigmoid(x):
    """TF's float64 ``Sigmoid``: ``e / (1 + e)``, ``e = exp(x)`` (Eigen's on packets, libm's
    on the tail); 1 where ``e`` is inf."""
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.where(_packets(x), _eigen_exp(x), np.exp(x) if x.size % PACKET == 0 else _libm(math.exp, x))
        return np.where(np.isinf(e), 1.0, e / (1.0 + e))


_TANH_ALPHA = (2.6158007860482230e-23, 7.6534862268749319e-19, 3.1309488231386680e-15,
               4.2303918148209176e-12, 2.4618379131293676e-09, 6.8644367682497074e-07,
               9.3839087674268880e-05, 5.9809711724441161e-03, 1.5184719640284322e-01)
_TANH_BETA = (6.463747022670968018e-21, 5.782506856739003571e-17, 1.293019623712687916e-13,
              1.123643448069621992e-10, 4.492975677839633985e-08, 8.785185266237658698e-06,
              8.295161192716231542e-04, 3.437448108450402717e-02, 4.851805297361760360e-01, 1.0)


def _eigen_tanh(x):
    """TF's float64 ``Tanh``: Eigen's [19/18] rational ``ptanh_double`` on whole packets
    (input clamped to +-17.714196154005176, the non-FMA build's bound), libm's ``tanh`` on
    the tail."""
    v = np.clip(x, -17.714196154005176, 17.714196154005176)
    x2 = v * v
    x3 = x2 * v
    p = np.full_like(v, _TANH_ALPHA[0])
    for a in _TANH_ALPHA[1:]:
        p = p * x2 + a
    q = np.full_like(v, _TANH_BETA[0])
    for b in _TANH_BETA[1:]:
        q = q * x2 + b
    p = x3 * p + v
    packed = p / q
    if x.size % PACKET == 0:
        return packed
    return np.where(_packets(x), packed, _libm(math.tanh, x))


def _libm(fn, x):
    """``fn`` (the C library's, through ``math``) on the tail elements; NaN elsewhere."""
    out = np.full(x.shape, np.nan)
    flat, dest = x.reshape(-1), out.reshape(-1)
    for k in range(x.size - x.size % PACKET, x.size):
        try:
            dest[k] = fn(flat[k])
        except OverflowError:
            dest[k] = math.inf
    return out


def _sigmoid(x):
    xp = namespace(x)
    if xp is np and x.dtype == np.float64:
        return _eigen_sigmoid(x)
    one = x.dtype.type(1)
    return one / (one + xp.exp(-x))


def _tanh(x):
    xp = namespace(x)
    if xp is np and x.dtype == np.float64:
        return _eigen_tanh(x)
    return xp.tanh(x)


def _sigmoid_grad(y, dy):
    """TF's ``SigmoidGrad``: ``dy * (y * (1 - y))`` on packets, ``(dy * y) * (1 - y)`` on the tail."""
    one = y.dtype.type(1)
    packed = dy * (y * (one - y))
    if namespace(y) is not np or y.dtype != np.float64 or y.size % PACKET == 0:
        return packed
    return np.where(_packets(y), packed, (dy * y) * (one - y))


def _tanh_grad(y, dy):
    """TF's ``TanhGrad``: ``dy * (1 - y * y)``."""
    return dy * (y.dtype.type(1) - y * y)


_FORWARD = {"sigmoid": _sigmoid, "tanh": _tanh, "linear": lambda x: x}
_BACKWARD = {"sigmoid": _sigmoid_grad, "tanh": _tanh_grad, "linear": lambda y, dy: dy}


def _add_n(terms):
    """TF's ``AddN`` (the tape's sum of a tensor's gradients), in its order: the first
    ``n % 8`` terms (8 or 9 when that is 0 or 1) left to right, then each further 8 summed
    left to right and added to the total."""
    n = len(terms)
    if n == 1:
        return terms[0]
    first = n % 8
    first = {0: 8, 1: 9}.get(first, first) if n >= 8 else n
    total = terms[0]
    for term in terms[1:first]:
        total = total + term
    for r in range(first, n, 8):
        chunk = terms[r]
        for term in terms[r + 1:r + 8]:
            chunk = chunk + term
        total = total + chunk
    return total


# --- the layer --------------------------------------------------------------------------------

def _activation(name, value):
    value = "linear" if value is None else value
    if value not in ACTIVATIONS:
        raise ValueError(f"`{name}` must be 'tanh', 'sigmoid', 'linear' or None. {checks.received(name, value)}")
    return value


def _initializer(name, value):
    if value not in INITIALIZERS:
        raise ValueError(f"`{name}` must be one of {', '.join(map(repr, INITIALIZERS))}. "
                         f"{checks.received(name, value)}")
    return value


def _rate(name, value):
    if not checks.is_real(value):
        raise TypeError(f"`{name}` must be a float between 0 and 1. {checks.received(name, value)}")
    if not 0 <= value <= 1:  # NaN too; Keras clips silently instead
        raise ValueError(f"`{name}` must be a float between 0 and 1. {checks.received(name, value)}")
    return float(value)


def _unsupported(name, value, default):
    if value is not default and value != default:
        raise ValueError(f"`{name}` is not supported by scratchopt's LSTM (only {default!r}). "
                         f"{checks.received(name, value)}")
    return value


class LSTM(Layer):
    """``LSTM(units, ...)``: Keras's arguments, names and defaults; the math is in the module docstring.

    ``layer(x, training=False, masks=None)`` takes ``x`` of shape (N, T, in) and returns
    ``h_T`` (N, units), or (N, T, units) with ``return_sequences``. ``layer.backward(dy)``
    runs backpropagation through time and fills ``layer.grads`` (``"kernel"``,
    ``"recurrent_kernel"``, ``"bias"``).

    Weights, as Keras's: ``kernel`` (in, 4u), Glorot-uniform; ``recurrent_kernel`` (u, 4u),
    orthogonal (the QR of a Gaussian (4u, u) matrix, its columns' signs fixed by R's
    diagonal, transposed); ``bias`` (4u,) zeros, with the forget gate's quarter at 1 when
    ``unit_forget_bias``. All drawn from ``seed`` with NumPy (``checks.generator``), which
    also seeds the dropout masks (TF's draws, as Keras's: the module docstring). The weights
    are not Keras's draws: set them to compare with a Keras layer.

    Arguments Keras has and this layer does not implement are accepted at their defaults
    only (``activity_regularizer``, the constraints, ``return_state``, ``go_backwards``,
    ``stateful``); anything else is a ``ValueError`` naming it.

    Examples
    --------
    >>> import numpy as np
    >>> from scratchopt.nn.lstm import LSTM
    >>> layer = LSTM(3, seed=0, dtype="float64")
    >>> x = np.random.default_rng(0).standard_normal((2, 5, 4))  # 2 sequences, 5 steps, 4 features
    >>> layer(x).shape
    (2, 3)
    >>> layer.params["kernel"].shape, layer.params["recurrent_kernel"].shape, layer.params["bias"]
    ((4, 12), (3, 12), array([0., 0., 0., 1., 1., 1., 0., 0., 0., 0., 0., 0.]))
    >>> dx = layer.backward(np.ones((2, 3)))
    >>> dx.shape, layer.grads["recurrent_kernel"].shape
    ((2, 5, 4), (3, 12))
    """

    regularizable = (("kernel", "kernel_regularizer"), ("recurrent_kernel", "recurrent_regularizer"),
                     ("bias", "bias_regularizer"))  # Keras adds each penalty to the loss

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, seed=None, return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False, unroll=False,
                 use_cudnn="auto", dtype="float32"):
        super().__init__()
        if isinstance(units, bool) or not isinstance(units, numbers.Integral):
            raise TypeError(f"`units` must be a positive integer. {checks.received('units', units)}")
        if units <= 0:  # Keras's exception
            raise ValueError(f"`units` must be a positive integer. {checks.received('units', units)}")
        self.units = int(units)
        self.activation = _activation("activation", activation)
        self.recurrent_activation = _activation("recurrent_activation", recurrent_activation)
        self.use_bias = checks.flag("use_bias", use_bias)
        self.kernel_initializer = _initializer("kernel_initializer", kernel_initializer)
        self.recurrent_initializer = _initializer("recurrent_initializer", recurrent_initializer)
        self.bias_initializer = _initializer("bias_initializer", bias_initializer)
        self.unit_forget_bias = checks.flag("unit_forget_bias", unit_forget_bias)
        self.kernel_regularizer = kernel_regularizer
        self.recurrent_regularizer = recurrent_regularizer
        self.bias_regularizer = bias_regularizer
        for name, value in (("activity_regularizer", activity_regularizer), ("kernel_constraint", kernel_constraint),
                            ("recurrent_constraint", recurrent_constraint), ("bias_constraint", bias_constraint)):
            _unsupported(name, value, None)
        self.dropout = _rate("dropout", dropout)
        self.recurrent_dropout = _rate("recurrent_dropout", recurrent_dropout)
        if seed is not None and not (isinstance(seed, numbers.Integral) and not isinstance(seed, bool)):
            raise ValueError(f"`seed` must be an integer or None. {checks.received('seed', seed)}")
        self.seed = seed
        self.return_sequences = checks.flag("return_sequences", return_sequences)
        _unsupported("return_state", return_state, False)
        _unsupported("go_backwards", go_backwards, False)
        _unsupported("stateful", stateful, False)
        self.unroll = checks.flag("unroll", unroll)  # the same arithmetic either way
        if not (isinstance(use_cudnn, bool) or (isinstance(use_cudnn, str) and use_cudnn == "auto")):
            raise ValueError(f"`use_cudnn` must be one of 'auto', True, False. {checks.received('use_cudnn', use_cudnn)}")
        self.use_cudnn = use_cudnn
        self.dtype = checks.float_dtype("dtype", dtype)
        # Keras's LSTMCell: any recurrent dropout switches to four masks and split products
        self.implementation = 1 if self.recurrent_dropout != 0 else 2
        self._rng = checks.generator(seed)  # the weights
        # the dropout masks: Keras's seed pairs, one per mask (the weights do not use them)
        self._seeds = philox.SeedGenerator(None if seed is None else int(seed))
        self.masks = None

    def get_config(self):
        return {"units": self.units, "activation": self.activation,
                "recurrent_activation": self.recurrent_activation, "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer,
                "recurrent_initializer": self.recurrent_initializer,
                "bias_initializer": self.bias_initializer, "unit_forget_bias": self.unit_forget_bias,
                "kernel_regularizer": self.kernel_regularizer,
                "recurrent_regularizer": self.recurrent_regularizer,
                "bias_regularizer": self.bias_regularizer, "dropout": self.dropout,
                "recurrent_dropout": self.recurrent_dropout, "seed": self.seed,
                "return_sequences": self.return_sequences, "unroll": self.unroll,
                "use_cudnn": self.use_cudnn, "dtype": self.dtype.name}

    # --- weights ---

    def _init(self, kind, shape):
        if kind == "zeros":
            return np.zeros(shape)
        if kind == "ones":
            return np.ones(shape)
        if kind == "glorot_uniform":
            limit = np.sqrt(6.0 / (shape[0] + shape[1]))
            return self._rng.uniform(-limit, limit, shape)
        # Keras's Orthogonal: QR of a Gaussian (max, min) matrix, Q's columns signed by diag(R)
        rows, cols = shape
        a = self._rng.standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        return q.T if rows < cols else q

    def build(self, input_shape, xp=np):
        """Make ``kernel`` (in, 4u), ``recurrent_kernel`` (u, 4u) and ``bias`` (4u,);
        ``input_shape`` is the input's shape or its last dimension ``in``."""
        input_dim = input_shape if isinstance(input_shape, numbers.Integral) else input_shape[-1]
        u = self.units
        self.params["kernel"] = xp.asarray(self._init(self.kernel_initializer, (input_dim, 4 * u)).astype(self.dtype))
        self.params["recurrent_kernel"] = xp.asarray(
            self._init(self.recurrent_initializer, (u, 4 * u)).astype(self.dtype))
        if self.use_bias:
            if self.unit_forget_bias:  # Keras: [init(u), ones(u), init(2u)]
                bias = np.concatenate([self._init(self.bias_initializer, (u,)), np.ones(u),
                                       self._init(self.bias_initializer, (2 * u,))])
            else:
                bias = self._init(self.bias_initializer, (4 * u,))
            self.params["bias"] = xp.asarray(bias.astype(self.dtype))
        self.built = True

    # --- masks ---

    def _draw(self, count, shape, rate, dtype, xp):
        """Keras's ``_create_dropout_mask``: ``count`` masks (one, unstacked, for None) of
        ``shape``, each ``stateless_dropout(ones, rate)`` with the next seed pair:
        ``T(1 / (1 - rate))`` where kept, 0 where dropped."""
        scale, zero = dtype.type(1 / (1 - rate)), dtype.type(0)
        masks = [xp.where(keep_mask(shape, self._seeds.next(), rate, dtype, xp), scale, zero)
                 for _ in range(count or 1)]
        return masks[0] if count is None else xp.stack(masks)

    def _given(self, name, value, shape, rate, x):
        xp = namespace(x)
        value = xp.asarray(value)
        if tuple(value.shape) != shape:
            raise ValueError(f"`masks[{name!r}]` must have shape {shape}. Received: shape {tuple(value.shape)}")
        if value.dtype == np.bool_:
            return xp.where(value, x.dtype.type(1 / (1 - rate)), x.dtype.type(0))
        if value.dtype != x.dtype:
            raise TypeError(f"`masks[{name!r}]` must be boolean or {x.dtype}. Received: dtype {value.dtype}")
        return value.copy()

    def _masks(self, x, training, masks):
        """The input and recurrent masks this call applies (None where nothing is dropped)."""
        n, _, features = x.shape
        xp = namespace(x)
        masks = {} if masks is None else dict(masks)
        unknown = set(masks) - {"dropout", "recurrent_dropout"}
        if unknown:
            raise ValueError(f"`masks` takes the keys 'dropout' and 'recurrent_dropout'. Received: {sorted(unknown)}")
        # Keras's order: the input masks (four with recurrent dropout, else one), then the recurrent ones
        kinds = (("dropout", self.dropout, 4 if self.implementation == 1 else None, (n, features)),
                 ("recurrent_dropout", self.recurrent_dropout, 4, (n, self.units)))
        given = {name: self._given(name, masks[name], ((count,) if count else ()) + shape, rate, x)
                 for name, rate, count, shape in kinds
                 if training and 0 < rate < 1 and masks.get(name) is not None}  # all checked before a draw
        out = []
        for name, rate, count, shape in kinds:
            if not 0 < rate < 1:  # nothing drawn (rate 1: TF's dropout returns zeros before its seed)
                out.append(None)
            elif not training:  # Keras draws them all the same, and does not use them
                for _ in range(count or 1):
                    self._seeds.next()
                out.append(None)
            elif name in given:
                out.append(given[name])
            else:
                out.append(self._draw(count, shape, rate, x.dtype, xp))
        return out

    # --- forward ---

    def call(self, x, training=False, masks=None):
        if x.ndim != 3:
            raise ValueError(f"`x` must be 3-d (batch, timesteps, features). "
                             f"Received: x of shape {tuple(x.shape)}")
        if self.built and x.shape[-1] != self.params["kernel"].shape[0]:
            raise ValueError(f"`x` must have {self.params['kernel'].shape[0]} features (the built kernel's "
                             f"input size). Received: x of shape {tuple(x.shape)}")
        if self.built and x.dtype != self.params["kernel"].dtype:
            raise TypeError(f"`x` must have the layer's dtype, {self.params['kernel'].dtype}. "
                            f"Received: x of dtype {x.dtype}")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"`x` must have at least one sequence and one step. Received: x of shape {tuple(x.shape)}")
        xp = namespace(x)
        if not self.built and x.dtype != self.dtype:
            raise TypeError(f"`x` must have the layer's dtype, {self.dtype}. Received: x of dtype {x.dtype}")
        dp, rdp = self._masks(x, training, masks)  # checked (and drawn) before the layer changes
        if not self.built:
            self.build(x.shape[-1], xp)
        weights = {k: v.copy() for k, v in self.params.items()}
        with tf_arithmetic():
            steps, hs = self._forward(x, weights, dp, rdp)
        self.masks = {"dropout": dp, "recurrent_dropout": rdp}
        self._last = {"x": x.copy(), "weights": weights, "steps": steps, "dp": dp, "rdp": rdp}
        if self.return_sequences:
            return xp.stack(hs, axis=1)
        return hs[-1]

    def _forward(self, x, w, dp, rdp):
        n, t_max, _ = x.shape
        xp = namespace(x)
        u = self.units
        act, ract = _FORWARD[self.activation], _FORWARD[self.recurrent_activation]
        h = xp.zeros((n, u), x.dtype)
        c = xp.zeros((n, u), x.dtype)
        kernel, rec, bias = w["kernel"], w["recurrent_kernel"], w.get("bias")
        if self.implementation == 1:
            k_parts = [xp.ascontiguousarray(kernel[:, k * u:(k + 1) * u]) for k in range(4)]
            u_parts = [xp.ascontiguousarray(rec[:, k * u:(k + 1) * u]) for k in range(4)]
        steps, hs = [], []
        for t in range(t_max):
            xt = xp.ascontiguousarray(x[:, t, :])
            if self.implementation == 2:
                xin = xt * dp if dp is not None else xt
                z = matmul(xin, kernel)
                z = z + matmul(h, rec)
                if bias is not None:
                    z = z + bias
                zs = [xp.ascontiguousarray(z[:, k * u:(k + 1) * u]) for k in range(4)]
                xins, hins = [xin] * 4, [h] * 4
            else:
                xins = [xt * dp[k] for k in range(4)] if dp is not None else [xt] * 4
                hins = [h * rdp[k] for k in range(4)] if rdp is not None else [h] * 4
                zs = []
                for k in range(4):
                    zx = matmul(xins[k], k_parts[k])
                    if bias is not None:
                        zx = zx + bias[k * u:(k + 1) * u]
                    zs.append(zx + matmul(hins[k], u_parts[k]))
            i = ract(zs[0])
            f = ract(zs[1])
            g = act(zs[2])
            c_new = f * c + i * g
            o = ract(zs[3])
            tc = act(c_new)
            h_new = o * tc
            steps.append({"xins": xins, "hins": hins, "c": c, "i": i, "f": f, "g": g, "o": o, "tc": tc})
            h, c = h_new, c_new
            hs.append(h)
        return steps, hs

    # --- backward (BPTT) ---

    def _backward(self, dy):
        last = self._last
        with tf_arithmetic():
            dx, grads = self._bptt(dy, last)
        self.grads = grads
        for key, reg in (("kernel", self.kernel_regularizer), ("recurrent_kernel", self.recurrent_regularizer),
                         ("bias", self.bias_regularizer)):
            if reg is not None and key in grads:
                grads[key] = grads[key] + reg.gradient(last["weights"][key])
        return dx

    def _bptt(self, dy, last):
        x, w, steps, dp, rdp = last["x"], last["weights"], last["steps"], last["dp"], last["rdp"]
        xp = namespace(dy)
        t_max = x.shape[1]
        u = self.units
        dact, dract = _BACKWARD[self.activation], _BACKWARD[self.recurrent_activation]
        kernel, rec = w["kernel"], w["recurrent_kernel"]
        dws, dus, dbs, dxs = [], [], [], [None] * t_max
        dh_parts, dc_next = [], None  # the gradients into h_t that step t+1 hands back
        for t in reversed(range(t_max)):
            s = steps[t]
            if self.return_sequences:  # h_t is also the output at t: dy_t comes first in the sum
                dh_parts = [dy[:, t, :]] + dh_parts
            elif not dh_parts:
                dh_parts = [dy]
            dh = _add_n(dh_parts)
            do = dh * s["tc"]
            dc = dact(s["tc"], s["o"] * dh)
            if dc_next is not None:
                dc = dc + dc_next
            df = dc * s["c"]
            di = dc * s["g"]
            dg = s["i"] * dc
            dc_next = s["f"] * dc
            dzs = [dract(s["i"], di), dract(s["f"], df), dact(s["g"], dg), dract(s["o"], do)]
            if self.implementation == 2:
                dz = xp.concatenate(dzs, axis=1)
                dws.append(matmul(s["xins"][0], dz, transpose_a=True))
                dus.append(matmul(s["hins"][0], dz, transpose_a=True))
                if self.use_bias:
                    dbs.append(bias_add_grad(dz))  # ops.add(z, bias) is tf.nn.bias_add in Keras
                dx_t = matmul(dz, kernel, transpose_b=True)
                dxs[t] = dx_t * dp if dp is not None else dx_t
                dh_parts = [matmul(dz, rec, transpose_b=True)]
            else:
                parts_x, parts_h = [], []
                dws.append(xp.concatenate([matmul(s["xins"][k], dzs[k], transpose_a=True) for k in range(4)], axis=1))
                # recurrent_kernel[:, k*u:(k+1)*u] reads the variable once per gate: the tape sums
                # 4T gradients, each zero outside its gate's columns (StridedSliceGrad)
                for k in REC_SUM_ORDER:
                    term = xp.zeros_like(rec)
                    term[:, k * u:(k + 1) * u] = matmul(s["hins"][k], dzs[k], transpose_a=True)
                    dus.append(term)
                if self.use_bias:
                    dbs.append(xp.concatenate([reduce_sum_over(d, [0]) if xp is np else d.sum(axis=0)
                                               for d in dzs]))
                for k in range(4):
                    gx = matmul(dzs[k], kernel[:, k * u:(k + 1) * u], transpose_b=True)
                    parts_x.append(gx * dp[k] if dp is not None else gx)
                    gh = matmul(dzs[k], rec[:, k * u:(k + 1) * u], transpose_b=True)
                    parts_h.append(gh * rdp[k] if rdp is not None else gh)
                dxs[t] = _add_n([parts_x[k] for k in GATE_SUM_ORDER])
                dh_parts = [parts_h[k] for k in GATE_SUM_ORDER]
        grads = {"kernel": _add_n(dws), "recurrent_kernel": _add_n(dus)}
        if self.use_bias:
            grads["bias"] = _add_n(dbs)
        return xp.stack(dxs, axis=1), grads



#: The order in which the tape sums the four gates' gradients into x_t and h (implementation 1).
GATE_SUM_ORDER = (3, 1, 0, 2)  # o, f, i, c (measured against the tape)
REC_SUM_ORDER = GATE_SUM_ORDER
