"""``Sequential``: layers in a row, trained by mini-batch gradient descent, Keras's way.

``fit`` is Keras's loop (``keras/src/backend/tensorflow/trainer.py``), step for step::

    x_train, x_val = x[:split], x[split:]       validation_split takes the LAST fraction
                                                (validation_data=(x_val, y_val) replaces it)
    build the model (a forward pass on one sample) if it is not built
    callbacks.on_train_begin()                  BackupAndRestore may set the start epoch here
    for epoch in range(initial_epoch, epochs):
        reset the metrics; callbacks.on_epoch_begin(epoch)
        order = model._rng.permutation(N)       shuffle=False keeps the order
        for batch, rows in batches of batch_size:  the last batch may be smaller
            callbacks.on_train_batch_begin(batch)
            y_pred = model(x_b, training=True)
            loss   = loss_fn(y_b, y_pred) + sum of the layers' penalties
            grads  = backward(loss_fn.gradient(y_b, y_pred))
            optimizer.apply(grads, params)
            running loss += loss * len(batch)   Keras reports the mean of the batch losses
            metrics.update_state(y_b, y_pred)    *before* each update, weighted by batch size
            callbacks.on_train_batch_end(batch, {"loss": running mean, metric: result})
            stop the epoch if model.stop_training
        logs = last batch's logs + {"val_loss", "val_<metric>"}   evaluate(x_val, y_val),
                                                with the test hooks on_test_begin/batch/end
        logs = sorted by key, Python floats     Keras's CallbackList (pythonify_logs)
        callbacks.on_epoch_end(epoch, logs); History records logs
        stop if model.stop_training
    optimizer.finalize_variable_values(params)  with use_ema: the weights become their averages
    callbacks.on_train_end()

``fit``'s arguments are checked before anything changes; ``x`` and ``y`` (and ``x_val``,
``y_val``) must hold the same number of samples, as in Keras's "Data cardinality" check.

The reported losses are accumulated in the model's dtype (Keras: its ``floatx``).
Saving and loading (``save_weights``, ``save``, ``load_weights``, ``load_model``) go through
``nn/saving.py``: files written whole or not at all, checked when read.
"""

import math
import os
import time

import numpy as np

from .. import checks
from ..backend import namespace
from . import activations, losses, metrics, saving
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


class _CompileMetrics:
    """Keras's ``CompileMetrics``: the container of the compiled metrics in ``model.metrics``
    (where ``EarlyStopping``'s auto mode looks for a metric's direction)."""

    name = "compile_metrics"

    def __init__(self, metrics):
        self.metrics = list(metrics)


class Sequential:
    """A stack of layers. ``compile(optimizer, loss, metrics)``, then ``fit``, ``evaluate``, ``predict``.

    Any scratchopt layer goes in (``nn.Dense``, ``nn.ReLU``, ``scratchopt.layers``,
    ``scratchopt.augment``'s ``MixUp`` and ``CutMix``). A mixing layer, as in a Keras model,
    mixes the images of training calls only (the labels are not its input) and has no
    gradient, so it goes before every layer with parameters: ``backward`` stops there.

    Weights, Keras's order (``get_weights``, ``set_weights``, ``save_weights``): layer by
    layer, each layer's trainable ``params`` (kernel, bias; gamma, beta), then its
    non-trainable state, named by the layer's ``non_trainable_names`` (BatchNormalization:
    ``moving_mean``, ``moving_variance``). Only ``params`` go to the optimizer.

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
        self.compiled_metrics = []  # the metric objects, in compile's order
        self.metrics = []  # Keras's model.metrics: [CompileMetrics] once compiled with metrics
        self.stop_training = False
        self._rng = None  # fit's shuffling generator (BackupAndRestore saves its state)
        self._initial_epoch = None  # set by a callback's on_train_begin to resume (Keras's)
        self._resume = None  # mid-epoch position to resume from (BackupAndRestore)
        self._position = None  # where fit is: see _training_state
        self._callbacks = []  # the callbacks of the fit in progress
        self._input_spec = None  # (shape without the sample axis, dtype name) of the last call

    def compile(self, optimizer, loss, metrics=None):
        """Set the optimizer, the loss (an object, or Keras's name through ``nn.losses.get``)
        and ``metrics`` (a list: objects with ``name``, ``reset_state``, ``update_state``,
        ``result``, or names through ``nn.metrics.get(name, loss)``).

        Everything is resolved and checked before the model changes."""
        if optimizer is None or not hasattr(optimizer, "apply"):
            raise TypeError(f"`optimizer` must be a scratchopt optimizer. {_received('optimizer', optimizer)}")
        loss = _resolve_loss(loss)
        if metrics is None:
            metrics = []
        if isinstance(metrics, (str, bytes)) or not isinstance(metrics, (list, tuple)):
            raise TypeError(f"`metrics` must be a list (e.g. ['accuracy']). {_received('metrics', metrics)}")
        dtype = next((str(np.dtype(layer.dtype)) for layer in self.layers if getattr(layer, "dtype", None) is not None),
                     None)  # Keras: floatx; here the model's dtype (its first layer with one)
        resolved = [_resolve_metric(m, loss, i, dtype) for i, m in enumerate(metrics)]
        names = [m.name for m in resolved]
        if len(set(names)) != len(names) or "loss" in names:
            raise ValueError(f"`metrics` must have distinct names, none of them 'loss'. Received names: {names}")
        self.optimizer, self.loss = optimizer, loss
        self.compiled_metrics = resolved
        self.metrics = [_CompileMetrics(resolved)] if resolved else []

    # --- forward and backward ------------------------------------------------------------

    def __call__(self, x, training=False):
        shape = getattr(x, "shape", None)
        if isinstance(shape, tuple) and shape:
            self._input_spec = (tuple(int(d) for d in shape[1:]), str(x.dtype))
        for layer in self.layers:
            x = layer(x, training=training)
        return x

    def predict(self, x, batch_size=32):
        """The last layer's outputs for ``x``, computed in batches of ``batch_size`` in
        inference mode (no dropout, BatchNormalization's moving statistics, no mixing):
        nothing in the model changes."""
        _positive_batch_size(batch_size)
        n = _samples("x", x)
        if n == 0:
            raise ValueError("`x` holds no samples (0 rows): there is nothing to predict")
        parts = [self(x[start:start + batch_size], training=False) for start in range(0, n, batch_size)]
        return parts[0] if len(parts) == 1 else namespace(parts[0]).concatenate(parts, axis=0)

    def backward(self, dy, from_logits=False):
        """``dy`` through the layers, last to first; fills every layer's ``grads``.

        With ``from_logits=True``, ``dy`` is the gradient with respect to the last layer's
        softmax *logits* (what Keras's cross-entropy on a softmax output gives): that layer's
        softmax backward is skipped (``activations.backward_from_logits``).

        Returns the gradient with respect to the model's input, or None when a layer without
        a gradient (``MixUp``, ``CutMix``) stands in the way: the backward pass stops there,
        which is allowed only if no layer below it has parameters (checked before any
        layer's backward runs).
        """
        stop = max((i for i, layer in enumerate(self.layers) if not layer.differentiable), default=None)
        if stop is not None and any(layer.params for layer in self.layers[:stop]):
            raise TypeError(f"{type(self.layers[stop]).__name__} (layer {stop}) has no gradient, so the "
                            "layers with parameters below it cannot be trained: put it first")
        for i, layer in enumerate(reversed(self.layers[0 if stop is None else stop + 1:])):
            dy = activations.backward_from_logits(layer, dy) if from_logits and i == 0 else layer.backward(dy)
        return dy if stop is None else None

    # --- weights -------------------------------------------------------------------------

    def _pairs(self):
        """(layer, key) for every parameter, in Keras's order (layer by layer, kernel before bias)."""
        return [(layer, key) for layer in self.layers for key in layer.params]

    @property
    def params(self):
        """The trainable arrays (what the optimizer updates), in Keras's order."""
        return [layer.params[key] for layer, key in self._pairs()]

    @property
    def built(self):
        """True once every layer that makes weights has made them."""
        return all(getattr(layer, "built", False) or not hasattr(layer, "build") for layer in self.layers)

    def _layer_weights(self):
        """Each layer's live arrays, Keras's order: ``params``, then ``non_trainable_names``."""
        out = []
        for layer in self.layers:
            arrays = list(layer.params.values())
            for name in getattr(layer, "non_trainable_names", ()):
                a = getattr(layer, name, None)
                if a is not None:
                    arrays.append(a)
            out.append(arrays)
        return out

    @property
    def weights(self):
        """Every live array, trainable or not, in Keras's ``get_weights`` order."""
        return [a for arrays in self._layer_weights() for a in arrays]

    def get_weights(self):
        """Copies of every weight, Keras's order (BatchNormalization: gamma, beta,
        moving_mean, moving_variance)."""
        return [namespace(p).array(p, copy=True) for p in self.weights]

    def set_weights(self, weights):
        """Copy ``weights`` (``get_weights``' order) into the model; all checked first."""
        targets = self.weights
        if not isinstance(weights, (list, tuple)):
            raise TypeError(f"`weights` must be a list of arrays. {_received('weights', weights)}")
        if len(weights) != len(targets):
            raise ValueError(f"`weights` has {len(weights)} arrays, the model {len(targets)} weights")
        for i, (p, w) in enumerate(zip(targets, weights)):
            if tuple(getattr(w, "shape", ())) != p.shape:
                raise ValueError(f"`weights[{i}]` has shape {tuple(getattr(w, 'shape', ()))}, the model's "
                                 f"weight {p.shape}")
        for p, w in zip(targets, weights):
            p[...] = namespace(p).asarray(w)

    def save_weights(self, filepath):
        """The weights to ``filepath``, written whole or not at all (``nn/saving.py``):
        Keras's HDF5 layout for a path ending in ``.weights.h5`` (needs h5py), scratchopt's
        checked ``.npz`` format otherwise."""
        self._require_built("save_weights")
        if os.fspath(filepath).endswith(".weights.h5"):
            saving.write_keras_h5(filepath, self.layers, self._layer_weights())
            return
        saving.write(filepath, self._meta("weights"), self._weight_arrays())

    def save(self, filepath, extra_meta=None, extra_arrays=None):
        """A full checkpoint: weights, the layers' classes and configs, the optimizer's
        class, config and ``state_dict()``; ``scratchopt.nn.load_model`` reads it back."""
        self._require_built("save")
        meta, arrays = self._meta("model"), self._weight_arrays()
        meta["layers"] = [dict(saving.describe(layer), weights=len(w))
                          for layer, w in zip(self.layers, self._layer_weights())]
        meta["input_spec"] = self._input_spec
        if self.optimizer is not None:
            meta["optimizer"] = saving.describe(self.optimizer)
            if getattr(self.optimizer, "built", False):
                info, opt_arrays = saving.optimizer_arrays(self.optimizer.state_dict())
                meta["optimizer_state"] = info
                arrays.update(opt_arrays)
        if self.loss is not None:
            meta["loss"] = saving.describe(self.loss)
        if extra_meta is not None:
            meta["extra"] = extra_meta
        arrays.update({f"extra/{k}": v for k, v in (extra_arrays or {}).items()})
        saving.write(filepath, meta, arrays)

    def load_weights(self, filepath):
        """Weights from a file ``save_weights``, ``save`` or ``ModelCheckpoint`` wrote (either
        kind; a ``.weights.h5`` path is Keras's layout). The file is read and checked whole,
        and every shape compared, before any weight changes: a corrupt or truncated file is
        a ValueError naming it, and the model is left as it was."""
        if os.fspath(filepath).endswith(".weights.h5"):
            self._build_if_needed("load_weights")
            per_layer = saving.read_keras_h5(filepath, self.layers)
            weights = []
            for layer, arrays, mine in zip(self.layers, per_layer, self._layer_weights()):
                if arrays is None or len(arrays) != len(mine):
                    raise ValueError(f"{os.fspath(filepath)!r}: the layer {type(layer).__name__} has "
                                     f"{len(mine)} weights, the file {0 if arrays is None else len(arrays)}")
                weights.extend(arrays)
            self._set_weights_from(filepath, weights)
            return None
        meta, arrays = saving.read(filepath)
        self._build_if_needed("load_weights")
        self._set_weights_from(filepath, saving.weights_of(meta, arrays))
        return meta, arrays

    def _set_weights_from(self, filepath, weights):
        try:
            self.set_weights(weights)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{os.fspath(filepath)!r} does not fit this model: {error}") from None

    def _meta(self, kind):
        return {"kind": kind, "n_weights": len(self.weights)}

    def _weight_arrays(self):
        return {f"weights/{i}": w for i, w in enumerate(self.weights)}

    def _require_built(self, what):
        if not self.built:
            raise ValueError(f"{what} needs a built model: call it on a batch (or fit) first")

    def _build_if_needed(self, what):
        if not self.built and self._input_spec is not None:
            shape, dtype = self._input_spec
            self(np.zeros((1, *shape), dtype), training=False)
        self._require_built(what)

    # --- losses and steps ----------------------------------------------------------------

    def _logits(self):
        """The logits Keras's loss uses in place of the last layer's softmax output, or None.

        Keras's cross-entropies, given a softmax's output, take the softmax's logits
        (``_keras_logits``) and run the fused from-logits kernel, in eager and graph mode
        alike; the softmax's own backward is then off the gradient's path
        (``nn.losses.keras_logits``, ``nn.activations.backward_from_logits``).
        """
        return losses.keras_logits(self.loss, self.layers[-1]) if self.layers else None

    def total_loss(self, y_true, y_pred):
        """The loss plus every layer's penalty (Keras: ``sum([loss, *model.losses])``)."""
        logits = self._logits()
        loss = self.loss(y_true, y_pred) if logits is None else self.loss(y_true, y_pred, logits=logits)
        penalties = [p for layer in self.layers for p in getattr(layer, "penalties", list)()]
        if penalties:
            loss = loss.dtype.type(0) + loss
            for p in penalties:
                loss = loss + loss.dtype.type(p)
        return loss

    def _train_step(self, x, y):
        y_pred = self(x, training=True)
        loss = self.total_loss(y, y_pred)
        logits = self._logits()
        if logits is None:
            self.backward(self.loss.gradient(y, y_pred))
        else:
            self.backward(self.loss.gradient(y, y_pred, logits=logits), from_logits=True)
        pairs = self._pairs()
        grads = [layer.grads[key] for layer, key in pairs]
        # Keras's fit differentiates optimizer.scale_loss(loss) (a loss_scale_factor, or
        # LossScaleOptimizer's dynamic scale), and apply() divides the gradients by the
        # scale again: the gradients are scaled here. The same bits as Keras's when the
        # scale is a power of two (LossScaleOptimizer's always is); otherwise TF's backward
        # multiplies it in first, and the two differ by a rounding.
        scale = self.optimizer.scale_loss(loss.dtype.type(1))
        if scale != 1:
            grads = [g * g.dtype.type(scale) for g in grads]
        self.optimizer.apply(grads, [layer.params[key] for layer, key in pairs])
        return loss, y_pred

    def train_step(self, x, y):
        """One mini-batch: forward, loss, backward, optimizer step; returns the loss before it."""
        return self._train_step(x, y)[0]

    def _reset_metrics(self):
        for m in self.compiled_metrics:
            m.reset_state()

    def _logs(self, total, count):
        """Keras's logs: ``loss`` (the running mean), then each metric's ``result()``."""
        logs = {"loss": float(total / count)}
        for m in self.compiled_metrics:
            logs[m.name] = float(m.result())
        return logs

    def _evaluate_logs(self, x, y, batch_size, callbacks=()):
        """Keras's ``evaluate`` loop; with ``callbacks`` (fit's validation) their test hooks:
        on_test_begin, on_test_batch_begin/end(batch, running logs), on_test_end(logs)."""
        for c in callbacks:
            _hook(c, "on_test_begin")
        self._reset_metrics()
        total = count = None
        for batch, start in enumerate(range(0, len(x), batch_size)):
            for c in callbacks:
                _hook(c, "on_test_batch_begin", batch)
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            y_pred = self(xb, training=False)
            loss = self.total_loss(yb, y_pred)
            total, count = _accumulate(total, count, loss, len(xb))
            for m in self.compiled_metrics:
                m.update_state(yb, y_pred)
            if callbacks:
                logs = _pythonify(self._logs(total, count))
                for c in callbacks:
                    _hook(c, "on_test_batch_end", batch, logs)
        logs = self._logs(total, count)
        if callbacks:
            end_logs = _pythonify(logs)
            for c in callbacks:
                _hook(c, "on_test_end", end_logs)
        return logs

    def evaluate(self, x, y, batch_size=32):
        """The loss over ``x`` in batches, weighted by batch size (Keras's ``evaluate``): a
        float without metrics, ``[loss, metric, ...]`` (compile's order) with them.

        ``x`` and ``y`` must hold the same number of samples, at least one (a ValueError
        naming the counts otherwise, as Keras's "Data cardinality is ambiguous").
        """
        if self.loss is None:
            raise ValueError("call compile(optimizer, loss) before evaluate")
        _positive_batch_size(batch_size)
        _same_samples(x, y)
        logs = self._evaluate_logs(x, y, batch_size)
        return logs["loss"] if len(logs) == 1 else list(logs.values())

    def _training_state(self):
        """Where fit is, for ``BackupAndRestore``: ``{"epoch", "batch"}`` (the next batch to
        run), the shuffling generator's state at that epoch's start (mid-epoch) or now (at an
        epoch's end), and the running loss sums (mid-epoch)."""
        return dict(self._position) if self._position is not None else None

    # --- the training loop ---------------------------------------------------------------

    def fit(self, x, y, epochs=1, batch_size=32, validation_split=0.0, shuffle=True, callbacks=None,
            verbose=1, seed=None, validation_data=None, initial_epoch=0):
        """Train until epoch ``epochs`` (from ``initial_epoch``); returns a ``History``.

        The arguments are checked before anything changes: ``x`` and ``y`` must hold the same
        number of samples (ValueError naming the counts: Keras's "Data cardinality is
        ambiguous"), and so must the pair ``validation_data=(x_val, y_val)``, which, as in
        Keras, replaces ``validation_split``. A split that leaves no training or no
        validation sample is Keras's ValueError too. At the end, as Keras's ``fit`` does, the
        optimizer's ``finalize_variable_values``: with ``use_ema`` the weights become their
        moving averages (after the last epoch's validation, which uses the raw weights, and
        before the callbacks' ``on_train_end``).

        The shuffling generator is ``model._rng`` (made here from ``seed``), so that
        ``BackupAndRestore`` can save and restore it; callbacks that set ``_runs_last``
        (``BackupAndRestore``) are called after the others, so that what they save is the
        epoch's final state.
        """
        if self.optimizer is None:
            raise ValueError("call compile(optimizer, loss) before fit")
        epochs = checks.integer("epochs", epochs, at_least=0)
        initial_epoch = checks.integer("initial_epoch", initial_epoch, at_least=0)
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
        if callbacks is not None and not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"`callbacks` must be a list of callbacks. {_received('callbacks', callbacks)}")
        callbacks = list(callbacks or [])
        for i, c in enumerate(callbacks):
            if not hasattr(c, "set_model"):
                raise TypeError(f"`callbacks[{i}]` is not a callback (no set_model). "
                                f"{_received(f'callbacks[{i}]', c)}")
        validate = validation_data is not None or split < n
        rng = checks.generator(seed)
        callbacks = [c for c in callbacks if not getattr(c, "_runs_last", False)] + \
                    [c for c in callbacks if getattr(c, "_runs_last", False)]
        history = History()
        if not self.built:  # Keras builds the model before on_train_begin too
            self(x_train[:1], training=False)
        self._rng, self._callbacks = rng, callbacks
        self._initial_epoch, self._resume = None, None
        self._position = {"epoch": initial_epoch, "batch": 0, "rng": rng.bit_generator.state}
        for c in callbacks:
            c.set_model(self)
        self.stop_training = False
        for c in callbacks:
            c.on_train_begin()
        initial_epoch = self._initial_epoch or initial_epoch  # Keras's line (a restored epoch)
        resume, self._resume = self._resume, None
        steps = -(-split // batch_size)
        epoch = initial_epoch
        while epoch < epochs and not self.stop_training:  # a restored stop ends at once
            start_time = time.perf_counter()
            self._reset_metrics()
            for c in callbacks:
                c.on_epoch_begin(epoch)
            first, total, count = 0, None, None
            if resume is not None and resume["epoch"] == epoch and resume["batch"] > 0:
                rng.bit_generator.state = resume["rng"]  # the epoch's start: the same order
                first, total, count = resume["batch"], resume["total"], resume["count"]
                for m, state in zip(self.compiled_metrics, resume.get("metrics", ())):
                    _set_attributes(m, state)
            resume = None
            epoch_start = rng.bit_generator.state
            order = rng.permutation(split) if shuffle else None
            logs = {} if total is None else _pythonify(self._logs(total, count))  # a restored half epoch
            for batch in range(first, steps):
                start = batch * batch_size
                for c in callbacks:
                    _hook(c, "on_train_batch_begin", batch)
                rows = slice(start, start + batch_size) if order is None else order[start:start + batch_size]
                loss, y_pred = self._train_step(x_train[rows], y_train[rows])
                total, count = _accumulate(total, count, loss, len(x_train[rows]))
                for m in self.compiled_metrics:
                    m.update_state(y_train[rows], y_pred)
                logs = _pythonify(self._logs(total, count))
                self._position = {"epoch": epoch, "batch": batch + 1, "rng": epoch_start,
                                  "total": total, "count": count,
                                  "metrics": [_attributes(m) for m in self.compiled_metrics]}
                for c in callbacks:
                    _hook(c, "on_train_batch_end", batch, logs)
                if self.stop_training:
                    break
            logs = dict(logs)
            if validate:
                val_logs = self._evaluate_logs(x_val, y_val, batch_size, callbacks)
                logs.update({f"val_{k}": v for k, v in val_logs.items()})
            logs = _pythonify(logs)  # Keras's CallbackList: keys sorted, values Python floats
            self._position = {"epoch": epoch + 1, "batch": 0, "rng": rng.bit_generator.state}
            for c in callbacks:
                c.on_epoch_end(epoch, logs)
            history.record(epoch, logs)
            if verbose:
                seconds = time.perf_counter() - start_time
                print(f"Epoch {epoch + 1}/{epochs}\n{steps}/{steps} - {seconds:.0f}s - "
                      f"{1000 * seconds / steps:.0f}ms/step - "
                      + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
            epoch += 1
        if epochs > 0 and hasattr(self.optimizer, "finalize_variable_values"):  # Keras's fit, at the end
            self.optimizer.finalize_variable_values(self.params)
        for c in callbacks:
            c.on_train_end()
        self._callbacks, self._position = [], None
        return history


def load_model(filepath):
    """A ``Sequential`` rebuilt from a full checkpoint (``model.save``, ``ModelCheckpoint``
    with ``save_weights_only=False``): the layers from their classes and configs, the weights,
    the optimizer from its config and ``state_dict()``, and the loss (if it has a config).

    The file is read and checked whole first; a corrupt or truncated one is a ValueError
    naming it. Metrics are not saved: ``compile`` again to add them.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from scratchopt import nn, optimizers
    >>> model = nn.Sequential([nn.Dense(4, "relu", seed=0), nn.Dense(1, seed=1)])
    >>> model.compile(optimizers.Adam(0.01), "mse")
    >>> x, y = np.ones((8, 3), np.float32), np.zeros((8, 1), np.float32)
    >>> _ = model.fit(x, y, epochs=2, verbose=0, seed=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.keras")
    >>> model.save(path)
    >>> again = nn.load_model(path)
    >>> all(np.array_equal(a, b) for a, b in zip(again.get_weights(), model.get_weights()))
    True
    >>> again.optimizer.iterations, type(again.loss).__name__
    (2, 'MeanSquaredError')
    """
    meta, arrays = saving.read(filepath)
    if meta.get("kind") != "model":
        raise ValueError(f"{os.fspath(filepath)!r} holds weights only (kind {meta.get('kind')!r}); "
                         "build the model and call load_weights")
    model = Sequential([saving.rebuild(d, "a layer") for d in meta["layers"]])
    if meta.get("input_spec") is None:
        raise ValueError(f"{os.fspath(filepath)!r} does not say the model's input shape")
    shape, dtype = meta["input_spec"]
    model._input_spec = (tuple(shape), dtype)
    model._build_if_needed("load_model")
    model._set_weights_from(filepath, saving.weights_of(meta, arrays))
    if "optimizer" in meta:
        optimizer = saving.rebuild(meta["optimizer"], "the optimizer")
        if "optimizer_state" in meta:
            optimizer.build(model.params)
            optimizer.load_state_dict(saving.optimizer_state(meta["optimizer_state"], arrays))
        model.optimizer = optimizer
    if "loss" in meta:
        try:
            model.loss = saving.rebuild(meta["loss"], "the loss")
        except (ValueError, TypeError, AttributeError, ImportError):
            model.loss = None
    return model


def _pythonify(logs):
    """Keras's ``pythonify_logs`` (what its CallbackList hands every callback and History):
    the keys in sorted order (``accuracy`` before ``loss``), the values Python floats."""
    return {k: float(v) for k, v in sorted(logs.items())}


def _hook(callback, name, *args):
    """A batch hook, if the callback has it (a callback not derived from ours may not)."""
    method = getattr(callback, name, None)
    if method is not None:
        method(*args)


def _attributes(obj):
    """A snapshot of an object's attributes (a metric's running sums), arrays copied."""
    return {k: (v.copy() if hasattr(v, "copy") and hasattr(v, "shape") else v) for k, v in vars(obj).items()}


def _set_attributes(obj, state):
    for k, v in state.items():
        setattr(obj, k, v)


def _resolve_loss(loss):
    if isinstance(loss, str):
        return losses.get(loss)
    if not callable(loss) or not hasattr(loss, "gradient"):
        raise TypeError(f"`loss` must be a scratchopt loss (callable, with a gradient) or Keras's "
                        f"name for one. {_received('loss', loss)}")
    return loss


def _is_metric(m):
    return all(hasattr(m, a) for a in ("name", "reset_state", "update_state", "result"))


def _resolve_metric(identifier, loss, i, dtype):
    """``metrics[i]``: a metric object as it is, a name through ``nn.metrics.get``."""
    if _is_metric(identifier):
        return identifier
    if isinstance(identifier, str):
        return metrics.get(identifier, loss, dtype=dtype)  # an unknown name: Keras's ValueError
    raise TypeError(f"`metrics[{i}]` must be a metric (name, reset_state, update_state, result) or "
                    f"its name. {_received(f'metrics[{i}]', identifier)}")


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
