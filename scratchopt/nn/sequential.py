"""``Sequential``: layers in a row, trained by mini-batch gradient descent, Keras's way.

``fit`` is Keras's loop, step for step::

    x_train, x_val = x[:split], x[split:]       validation_split takes the LAST fraction
                                                (validation_data=(x_val, y_val) replaces it)
    for epoch in range(epochs):
        callbacks.on_epoch_begin(epoch)
        order = shuffled or 0..N-1              shuffle=False keeps the order
        for each batch of batch_size rows:      the last batch may be smaller
            y_pred = model(x_b, training=True)
            loss   = loss_fn(y_b, y_pred) + sum of the layers' penalties
            grads  = backward(loss_fn.gradient(y_b, y_pred))
            optimizer.apply(grads, params)
            running loss += loss * len(batch)   Keras reports the mean of the batch losses
                                                 *before* each update, weighted by batch size
        logs = {"loss": running / N, "val_loss": evaluate(x_val, y_val)}
        callbacks.on_epoch_end(epoch, logs)
        stop if model.stop_training
    optimizer.finalize_variable_values(params)  with use_ema: the weights become their averages
    callbacks.on_train_end()

``fit``'s arguments are checked before anything changes; ``x`` and ``y`` (and ``x_val``,
``y_val``) must hold the same number of samples, as in Keras's "Data cardinality" check.

The reported losses are accumulated in the model's dtype (Keras: its ``floatx``).
"""

import math
import time

import numpy as np

from .. import checks
from ..backend import namespace
from .layer import Layer, _received


class History:
    """Per-epoch logs: ``history.history["loss"]``, ``["val_loss"]``, ... and ``history.epoch``.

    Examples
    --------
    ``Sequential.fit`` returns one; ``record`` is what it calls after every epoch.

    >>> from scratchopt.nn import History
    >>> history = History()
    >>> history.record(0, {"loss": 1.0, "val_loss": 1.5})
    >>> history.record(1, {"loss": 0.5, "val_loss": 1.25})
    >>> history.epoch, history.history["val_loss"]
    ([0, 1], [1.5, 1.25])
    """

    def __init__(self):
        self.history, self.epoch = {}, []

    def record(self, epoch, logs):
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)


class Sequential:
    """A stack of layers. ``compile(optimizer, loss)``, then ``fit``, ``evaluate``, ``predict``.

    Any scratchopt layer goes in (``nn.Dense``, ``nn.ReLU``, ``scratchopt.layers``,
    ``scratchopt.augment``'s ``MixUp`` and ``CutMix``). A mixing layer, as in a Keras model,
    mixes the images of training calls only (the labels are not its input) and has no
    gradient, so it goes before every layer with parameters: ``backward`` stops there.

    Examples
    --------
    Learn ``y = 2 x`` from one example with one weight, starting at 0. The loss is
    ``(2 - w)**2`` and its gradient ``-2 (2 - w)``, so each SGD step (lr 0.1) cuts the
    error ``2 - w`` by a factor 0.8 and the loss by 0.64: 4, 2.56, 1.6384 (each epoch
    reports the loss before its step); after three steps ``w = 2 - 2 * 0.8**3`` = 0.976.

    >>> import numpy as np
    >>> from scratchopt.nn import Dense, MeanSquaredError, Sequential
    >>> from scratchopt.optimizers import SGD
    >>> model = Sequential([Dense(1, use_bias=False, dtype="float64")])
    >>> model.layers[0].build(1)
    >>> model.layers[0].params["kernel"][...] = 0.0  # start at w = 0 (instead of Glorot)
    >>> model.compile(SGD(learning_rate=0.1), MeanSquaredError())
    >>> x, y = np.array([[1.0]]), np.array([[2.0]])
    >>> history = model.fit(x, y, epochs=3, batch_size=1, verbose=0)
    >>> [round(loss, 4) for loss in history.history["loss"]]
    [4.0, 2.56, 1.6384]
    >>> round(float(model.predict(x)[0, 0]), 4)
    0.976
    """

    def __init__(self, layers):
        self.layers = list(layers)
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"`layers` must hold scratchopt layers (subclasses of scratchopt.nn.Layer). "
                                f"Received: layers[{i}]={layer!r} ({type(layer).__name__})")
        self.optimizer = None
        self.loss = None
        self.stop_training = False

    def compile(self, optimizer, loss):
        self.optimizer, self.loss = optimizer, loss

    # --- forward and backward ------------------------------------------------------------

    def __call__(self, x, training=False):
        for layer in self.layers:
            x = layer(x, training=training)
        return x

    predict = __call__

    def backward(self, dy):
        """``dy`` through the layers, last to first; fills every layer's ``grads``.

        Returns the gradient with respect to the model's input, or None when a layer without
        a gradient (``MixUp``, ``CutMix``) stands in the way: the backward pass stops there,
        which is allowed only if no layer below it has parameters (checked before any
        layer's backward runs).
        """
        stop = max((i for i, layer in enumerate(self.layers) if not layer.differentiable), default=None)
        if stop is not None and any(layer.params for layer in self.layers[:stop]):
            raise TypeError(f"{type(self.layers[stop]).__name__} (layer {stop}) has no gradient, so the "
                            "layers with parameters below it cannot be trained: put it first")
        for layer in reversed(self.layers[0 if stop is None else stop + 1:]):
            dy = layer.backward(dy)
        return dy if stop is None else None

    def _pairs(self):
        """(layer, key) for every parameter, in Keras's order (layer by layer, kernel before bias)."""
        return [(layer, key) for layer in self.layers for key in layer.params]

    @property
    def params(self):
        return [layer.params[key] for layer, key in self._pairs()]

    def get_weights(self):
        return [namespace(p).array(p, copy=True) for p in self.params]

    def set_weights(self, weights):
        params = self.params
        if len(weights) != len(params):
            raise ValueError(f"`weights` has {len(weights)} arrays, the model {len(params)} parameters")
        for p, w in zip(params, weights):
            if tuple(w.shape) != p.shape:
                raise ValueError(f"a weight of shape {tuple(w.shape)} for a parameter of shape {p.shape}")
        for p, w in zip(params, weights):
            p[...] = w

    def total_loss(self, y_true, y_pred):
        """The loss plus every layer's penalty (Keras: ``sum([loss, *model.losses])``)."""
        loss = self.loss(y_true, y_pred)
        penalties = [layer.penalty() for layer in self.layers if hasattr(layer, "penalty")
                     and getattr(layer, "kernel_regularizer", None) is not None]
        if penalties:
            loss = loss.dtype.type(0) + loss
            for p in penalties:
                loss = loss + loss.dtype.type(p)
        return loss

    def train_step(self, x, y):
        """One mini-batch: forward, loss, backward, optimizer step; returns the loss before it."""
        y_pred = self(x, training=True)
        loss = self.total_loss(y, y_pred)
        self.backward(self.loss.gradient(y, y_pred))
        pairs = self._pairs()
        self.optimizer.apply([layer.grads[key] for layer, key in pairs],
                             [layer.params[key] for layer, key in pairs])
        return loss

    def evaluate(self, x, y, batch_size=32):
        """The loss over ``x`` in batches, weighted by batch size (Keras's ``evaluate``).

        ``x`` and ``y`` must hold the same number of samples, at least one (a ValueError
        naming the counts otherwise, as Keras's "Data cardinality is ambiguous").
        """
        _positive_batch_size(batch_size)
        _same_samples(x, y)
        total = count = None
        for start in range(0, len(x), batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            loss = self.total_loss(yb, self(xb, training=False))
            total, count = _accumulate(total, count, loss, len(xb))
        return float(total / count)

    # --- the training loop ---------------------------------------------------------------

    def fit(self, x, y, epochs=1, batch_size=32, validation_split=0.0, shuffle=True, callbacks=None,
            verbose=1, seed=None, validation_data=None):
        """Train for ``epochs`` epochs; returns a ``History`` of per-epoch losses.

        The arguments are checked before anything changes: ``x`` and ``y`` must hold the same
        number of samples (ValueError naming the counts: Keras's "Data cardinality is
        ambiguous"), and so must the pair ``validation_data=(x_val, y_val)``, which, as in
        Keras, replaces ``validation_split``. A split that leaves no training or no
        validation sample is Keras's ValueError too. At the end, as Keras's ``fit`` does, the
        optimizer's ``finalize_variable_values``: with ``use_ema`` the weights become their
        moving averages (after the last epoch's validation, which uses the raw weights, and
        before the callbacks' ``on_train_end``).
        """
        if self.optimizer is None:
            raise ValueError("call compile(optimizer, loss) before fit")
        epochs = checks.integer("epochs", epochs, at_least=0)
        _positive_batch_size(batch_size)
        checks.flag("shuffle", shuffle)
        n = _same_samples(x, y)
        if validation_data is not None:  # Keras: it replaces validation_split
            x_val, y_val = _validation_pair(validation_data)
            split = n
            x_train, y_train = x, y
        else:
            checks.number("validation_split", validation_split)
            if not 0.0 <= validation_split < 1.0:
                raise ValueError(f"`validation_split` must be in [0, 1). "
                                 f"{checks.received('validation_split', validation_split)}")
            split = math.floor(n * (1.0 - validation_split)) if validation_split else n
            if validation_split and split in (0, n):  # Keras's message
                raise ValueError(f"Training data contains {n} samples, which is not sufficient to split it "
                                 f"into a validation and training set as specified by `validation_split="
                                 f"{validation_split}`. Either provide more data, or a different value for "
                                 "the `validation_split` argument.")
            x_train, y_train, x_val, y_val = x[:split], y[:split], x[split:], y[split:]
        validate = validation_data is not None or split < n
        rng = checks.generator(seed)
        callbacks = list(callbacks or [])
        history = History()
        for c in callbacks:
            c.set_model(self)
        self.stop_training = False
        for c in callbacks:
            c.on_train_begin()
        for epoch in range(epochs):
            start_time = time.perf_counter()
            for c in callbacks:
                c.on_epoch_begin(epoch)
            order = rng.permutation(split) if shuffle else None
            total = count = None
            for start in range(0, split, batch_size):
                rows = slice(start, start + batch_size) if order is None else order[start:start + batch_size]
                loss = self.train_step(x_train[rows], y_train[rows])
                total, count = _accumulate(total, count, loss, len(x_train[rows]))
            logs = {"loss": float(total / count)}
            if validate:
                logs["val_loss"] = self.evaluate(x_val, y_val, batch_size)
            for c in callbacks:
                c.on_epoch_end(epoch, logs)
            history.record(epoch, logs)
            if verbose:
                steps = -(-split // batch_size)
                seconds = time.perf_counter() - start_time
                print(f"Epoch {epoch + 1}/{epochs}\n{steps}/{steps} - {seconds:.0f}s - "
                      f"{1000 * seconds / steps:.0f}ms/step - "
                      + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
            if self.stop_training:
                break
        if epochs > 0 and hasattr(self.optimizer, "finalize_variable_values"):  # Keras's fit, at the end
            self.optimizer.finalize_variable_values(self.params)
        for c in callbacks:
            c.on_train_end()
        return history


def _positive_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int. {checks.received('batch_size', batch_size)}")


def _samples(name, a):
    """The number of samples (rows) of the array ``a``; a TypeError naming ``name`` if none."""
    shape = getattr(a, "shape", None)
    if not isinstance(shape, tuple) or not shape:
        raise TypeError(f"`{name}` must be a NumPy or CuPy array with a sample axis first. "
                        f"{_received(name, a)}")
    return shape[0]


def _same_samples(x, y, where=""):
    """The number of samples of ``x`` and ``y``: the same, and at least one, else ValueError."""
    n_x, n_y = _samples("x", x), _samples("y", y)
    if n_x != n_y:  # Keras's data_adapter_utils.check_data_cardinality, in words
        raise ValueError(f"Data cardinality is ambiguous{where}. Make sure all arrays contain the same "
                         f"number of samples. 'x' sizes: {n_x}, 'y' sizes: {n_y}")
    if n_x == 0:
        raise ValueError(f"`x` and `y`{where} hold no samples (0 rows): there is nothing to compute on")
    return n_x


def _validation_pair(validation_data):
    """``(x_val, y_val)``, checked like ``x`` and ``y``."""
    if not isinstance(validation_data, (tuple, list)):
        raise TypeError(f"`validation_data` must be a tuple (x_val, y_val). "
                        f"{_received('validation_data', validation_data)}")
    if len(validation_data) != 2:
        raise ValueError(f"`validation_data` must be a pair (x_val, y_val) (no sample weights here); "
                         f"got {len(validation_data)} items")
    x_val, y_val = validation_data
    _same_samples(x_val, y_val, " in `validation_data`")
    return x_val, y_val


def _accumulate(total, count, loss, n):
    """Keras's ``Mean`` metric: ``total += loss * n``, ``count += n``, in the loss's dtype."""
    T = loss.dtype.type
    total = (T(0) if total is None else total) + loss * T(n)
    count = (T(0) if count is None else count) + T(n)
    return total, count
