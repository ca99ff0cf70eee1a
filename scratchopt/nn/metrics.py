"""Keras's accuracy metrics, with its stateful API: ``reset_state``, ``update_state``, ``result``.

Every metric here is a running mean, as Keras's ``Mean`` metric keeps it::

    update_state(y_true, y_pred):   v      = matches(y_true, y_pred)   0.0 or 1.0 per sample
                                    total += sum(v)                    in the metric's dtype
                                    count += len(v)                    (float32 by default)
    result():                       total / count                      (0.0 while count is 0)

The matches are 0 or 1, so ``total`` and ``count`` are exact integers (below 2**24 in
float32) and ``result()`` is Keras's float to the last bit: one division in the dtype.

``get(identifier, loss)`` resolves names as ``model.compile(metrics=[...])`` does
(``keras/src/trainers/compile_utils.py``): "accuracy" / "acc" become binary, sparse
categorical or categorical accuracy, chosen from the shapes of the first batch (not from
the loss), and keep the name "accuracy" (or "acc") in the logs.
"""

import numpy as np

from .. import checks
from ..backend import namespace


class MeanMetric(checks.Configurable):
    """The running mean behind every metric: ``total`` and ``count`` in ``dtype``.

    A subclass defines ``matches(y_true, y_pred)`` -> one value per sample.

    >>> import numpy as np
    >>> from scratchopt.nn.metrics import CategoricalAccuracy
    >>> m = CategoricalAccuracy()
    >>> m.update_state(np.eye(3), np.eye(3)); m.update_state(np.eye(2), np.ones((2, 2)))
    >>> m.result(), m.total, m.count  # (3 + 1) / 5; argmax ties go to the first index
    (0.800000011920929, np.float32(4.0), np.float32(5.0))
    """

    default_name = "mean"

    def __init__(self, name=None, dtype=None):
        self.name = self.default_name if name is None else name
        if not isinstance(self.name, str):
            raise TypeError(f"`name` must be a string. {checks.received('name', name)}")
        self.dtype = checks.float_dtype("dtype", dtype)
        self.reset_state()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype.name}

    def reset_state(self):
        """Back to no samples: ``total = count = 0``."""
        self.total = self.dtype.type(0)
        self.count = self.dtype.type(0)

    def update_state(self, y_true, y_pred):
        """Add one batch: its matches to ``total``, its number of samples to ``count``."""
        values = np.asarray(_host(self.matches(y_true, y_pred)), self.dtype)
        if values.ndim > 1:  # Keras's reduce_to_samplewise_values: a mean per sample
            values = values.reshape(values.shape[0], -1).mean(axis=1, dtype=self.dtype)
        total = self.total + values.sum(dtype=self.dtype)  # 0s and 1s: exact in any order
        count = self.count + self.dtype.type(values.shape[0] if values.ndim else 1)
        self.total, self.count = self.dtype.type(total), self.dtype.type(count)

    def result(self):
        """``total / count`` as a Python float (``divide_no_nan``: 0.0 before any sample)."""
        if self.count == 0:
            return 0.0
        return float(self.total / self.count)

    def matches(self, y_true, y_pred):
        raise NotImplementedError


def _host(x):
    """A NumPy array (CuPy arrays are brought to the host: a metric's value is a number)."""
    return x.get() if hasattr(x, "get") and not isinstance(x, np.ndarray) else x


def _arrays(y_true, y_pred):
    y_pred = _host(y_pred)
    y_true = _host(y_true)
    namespace(y_pred)
    y_pred, y_true = np.asarray(y_pred), np.asarray(y_true)
    if y_pred.ndim < 1:
        raise ValueError(f"`y_pred` must have a class axis. Received: y_pred of shape {y_pred.shape}")
    return y_true, y_pred


class CategoricalAccuracy(MeanMetric):
    """The fraction of samples whose predicted class (``argmax y_pred``) is the one-hot
    label's (``argmax y_true``): Keras's ``CategoricalAccuracy``. Ties in ``argmax`` go to
    the first index, as in TF.

    >>> import numpy as np
    >>> from scratchopt.nn.metrics import CategoricalAccuracy
    >>> m = CategoricalAccuracy()
    >>> m.update_state(np.array([[0, 1], [1, 0]]), np.array([[0.2, 0.8], [0.3, 0.7]]))
    >>> m.name, m.result()
    ('categorical_accuracy', 0.5)
    """

    default_name = "categorical_accuracy"

    def matches(self, y_true, y_pred):
        y_true, y_pred = _arrays(y_true, y_pred)
        if y_true.shape != y_pred.shape:
            raise ValueError(f"`y_true` must have the shape of `y_pred`, {y_pred.shape}. "
                             f"Received: y_true of shape {y_true.shape}")
        return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(self.dtype)


class SparseCategoricalAccuracy(MeanMetric):
    """The fraction of samples whose predicted class (``argmax y_pred``) is the integer
    label: Keras's ``SparseCategoricalAccuracy``. Labels are shaped ``(N,)`` or ``(N, 1)``.

    >>> import numpy as np
    >>> from scratchopt.nn.metrics import SparseCategoricalAccuracy
    >>> m = SparseCategoricalAccuracy()
    >>> m.update_state(np.array([1, 0, 2]), np.array([[0.2, 0.8, 0], [0.3, 0.7, 0], [0, 0, 1]]))
    >>> m.name, round(m.result(), 6)
    ('sparse_categorical_accuracy', 0.666667)
    """

    default_name = "sparse_categorical_accuracy"

    def matches(self, y_true, y_pred):
        y_true, y_pred = _arrays(y_true, y_pred)
        labels = y_true
        if labels.ndim == y_pred.ndim and labels.shape[-1] == 1:
            labels = labels.reshape(labels.shape[:-1])
        if labels.shape != y_pred.shape[:-1]:
            raise ValueError(f"`y_true` must hold one label per sample, shaped {y_pred.shape[:-1]} or "
                             f"{y_pred.shape[:-1] + (1,)}. Received: y_true of shape {y_true.shape}")
        # Keras compares in y_pred's dtype: the labels cast to it, the argmax too
        predicted = np.argmax(y_pred, axis=-1).astype(y_pred.dtype)
        return (labels.astype(y_pred.dtype) == predicted).astype(self.dtype)


class BinaryAccuracy(MeanMetric):
    """The fraction of predictions on the right side of ``threshold`` (``y_pred > 0.5``
    counts as 1): Keras's ``BinaryAccuracy``, a mean over the last axis per sample.

    >>> import numpy as np
    >>> from scratchopt.nn.metrics import BinaryAccuracy
    >>> m = BinaryAccuracy()
    >>> m.update_state(np.array([[1], [0]]), np.array([[0.9], [0.6]]))
    >>> m.result()
    0.5
    """

    default_name = "binary_accuracy"

    def __init__(self, name=None, dtype=None, threshold=0.5):
        self.threshold = float(checks.number("threshold", threshold))
        super().__init__(name, dtype)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}

    def matches(self, y_true, y_pred):
        y_true, y_pred = _arrays(y_true, y_pred)
        if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
            y_true = y_true.reshape(y_true.shape[:-1])
        elif y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1] == 1:
            y_pred = y_pred.reshape(y_pred.shape[:-1])
        if y_true.shape != y_pred.shape:
            raise ValueError(f"`y_true` must have the shape of `y_pred`, {y_pred.shape}. "
                             f"Received: y_true of shape {y_true.shape}")
        threshold = np.asarray(self.threshold).astype(y_pred.dtype)
        predicted = (y_pred > threshold).astype(y_true.dtype)
        return (y_true == predicted).astype(self.dtype)


class Accuracy(MeanMetric):
    """Keras's "accuracy" / "acc" in ``compile``: the first ``update_state`` picks binary,
    sparse categorical or categorical accuracy from the shapes, as Keras does::

        binary       if y_pred's last axis is 1
        sparse       else if y_true has fewer axes than y_pred, or its last axis is 1
        categorical  otherwise

    The name stays "accuracy" (or "acc"). ``metric.kind`` says what was picked.

    >>> import numpy as np
    >>> from scratchopt.nn.metrics import Accuracy
    >>> m = Accuracy()
    >>> m.update_state(np.array([2, 0]), np.array([[0.1, 0.2, 0.7], [0.5, 0.4, 0.1]]))
    >>> m.name, m.kind.__name__, m.result()
    ('accuracy', 'SparseCategoricalAccuracy', 1.0)
    """

    default_name = "accuracy"

    def __init__(self, name=None, dtype=None):
        self.kind = None
        super().__init__(name, dtype)

    def matches(self, y_true, y_pred):
        y_true, y_pred = _arrays(y_true, y_pred)
        if self.kind is None:
            if y_pred.shape[-1] == 1:
                kind = BinaryAccuracy
            elif y_true.ndim < y_pred.ndim or (y_true.ndim and y_true.shape[-1] == 1):
                kind = SparseCategoricalAccuracy
            else:
                kind = CategoricalAccuracy
            values = kind(dtype=self.dtype).matches(y_true, y_pred)
            self.kind = kind  # only once the first batch was accepted
            return values
        return self.kind(dtype=self.dtype).matches(y_true, y_pred)


#: Keras's metric names (``keras.metrics.get``) for the metrics here.
NAMES = {
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
}


def get(identifier, loss=None, dtype=None):
    """The metric for ``compile(metrics=[identifier])``: a new metric object for a name, the
    object itself for a metric.

    "accuracy" and "acc" give an ``Accuracy`` named so, which picks its kind from the first
    batch's shapes as Keras does. (``loss`` is accepted for the caller's convenience; Keras
    does not look at it, and neither does this: a one-hot target with
    ``categorical_crossentropy`` gives categorical accuracy, integer labels with
    ``sparse_categorical_crossentropy`` sparse accuracy, through the shapes.) ``dtype`` is
    the metric's (Keras: ``floatx``, float32 by default).

    >>> from scratchopt.nn import metrics
    >>> metrics.get("acc", "categorical_crossentropy").name
    'acc'
    >>> metrics.get("sparse_categorical_accuracy")
    SparseCategoricalAccuracy(dtype='float32')
    >>> metrics.get("auc")
    Traceback (most recent call last):
    ...
    ValueError: Could not interpret metric identifier: auc...
    """
    if isinstance(identifier, str):
        if identifier.lower() in ("accuracy", "acc"):
            return Accuracy(name=identifier, dtype=dtype)
        if identifier in NAMES:
            return NAMES[identifier](dtype=dtype)
        raise ValueError(f"Could not interpret metric identifier: {identifier}. `metrics` entries must be "
                         f"'accuracy', 'acc', one of {sorted(NAMES)} or a metric object. "
                         f"{checks.received('metric', identifier)}")
    if all(hasattr(identifier, a) for a in ("name", "reset_state", "update_state", "result")):
        return identifier
    raise TypeError(f"A metric must be a name or an object with name, reset_state, update_state and "
                    f"result. {checks.received('metric', identifier)}")
