"""What is timed, and how many bytes each step must move at the least (the bytes model).

Every component is an elementwise or reduce-then-elementwise job, so its speed limit is
memory traffic. Its *bytes model* is the traffic of the best possible implementation: a
list of passes over memory, each reading and writing whole arrays once. An in-place write
counts as a write (it moves the array back), but the array is read only once.

==================  =======================================================  ======
component           passes (float32: 4 bytes an element, a mask: 1 byte)     B/elem
==================  =======================================================  ======
sgd                 read g, w; write w                                        12
sgd_momentum        read g, w, m; write w, m                                  20
adam, adamw         read g, w, m, v; write w, m, v (AdamW's decay in the      28
                    same pass)
adam_global_clip    Adam with ``global_clipnorm=1``: sum g*g over all, then   32
                    read g, w, m, v; write w, m, v
adam_1000           Adam over 1000 tensors of n/1000 elements (a model's      28
                    layers): the same bytes, 1000 times the launches
adam_1000_global_   ``adam_global_clip`` over the 1000 tensors: each          32
clip                tensor's sum of squares, then the same step
rmsprop             read g, w, v; write w, v                                  20
rmsprop_centered    read g, w, v, avg_g; write w, v, avg_g                    28
batchnorm           forward: sum x (one pass for mean and variance), then     32
                    read x, write y; backward: sum over x and dy, then read
                    x, dy, write dx
layernorm           forward: read x, write y (a row of 100 stays in cache     20
                    between its statistics and its output); backward: read
                    x, dy, write dx
dropout             forward: read x, write y and the 1-byte mask;              18
                    backward: read dy and the mask, write dx
clip_norm           sum g*g, then read g, write the clipped copy               12
clip_global_norm    the same over 4 tensors of n/4 elements                    12
==================  =======================================================  ======

``adam_1000`` is the multi-tensor case: scratchopt's fused row ``pack()``s the 1000
params into one buffer and writes the gradients into ``packed_gradients()``, so a step is
one kernel; the NumPy row steps them one by one, as Keras and the TF raw op do; torch's
``foreach``/``fused`` step them all in one call. Compare its rows with ``adam``'s at the
same size to see what 1000 tensors cost.

The rest of Keras's optimizers (issue 17): Nadam, Adamax, Adadelta, Ftrl, ScheduleFreeAdamW
28 B/elem (four arrays read, three written); Adagrad and Lion 20; Lamb 40 (its trust ratio
needs the norms of ``w`` and of the update before the write: two passes); Adafactor on a
1-D tensor (unfactored) 32 (the update's RMS clips it before the write: two passes), and on
a 2-D one (``adafactor_2d``, a ``matrix_shape(n)`` matrix: factored) 32 too (the sums of
``|w|^2`` and of ``g*g`` by rows and by columns in one read, then ``v``, then the step);
LossScaleOptimizer(Adam) 32 (the finiteness check, then Adam's pass). Muon is not a row: its
2-D step is Newton-Schulz matrix products, compute-bound, which a bytes model does not bound.

``batchnorm``, ``layernorm`` and ``dropout`` are one training step each: forward with
``training=True`` and backward, on an input of shape ``(n / 100, 100)`` (100 channels or
features). The model is what a fused kernel needs, not what a path does: the NumPy path
runs one pass per operation, and AdamW's decay is its own pass, so it moves more and
shows a lower share of the floor.
"""

from dataclasses import dataclass

import numpy as np

#: Features per row of the layers' input: ``x`` has shape ``(n // FEATURES, FEATURES)``.
FEATURES = 100
F32 = 4  # bytes of a float32 element
MASK = 1  # bytes of a boolean mask element


@dataclass(frozen=True)
class Pass:
    """One pass over memory: arrays read, arrays written (their element sizes in bytes).

    The last ``in_place`` arrays read are the first ``in_place`` arrays written (an
    in-place update); the other writes go to new arrays. A ``reduce`` pass only reads.
    """

    reads: tuple
    writes: tuple = ()
    in_place: int = 0
    reduce: bool = False

    @property
    def bytes_per_element(self):
        return sum(self.reads) + sum(self.writes)

    def to_json(self):
        return {"reads": list(self.reads), "writes": list(self.writes), "in_place": self.in_place,
                "reduce": self.reduce}


@dataclass(frozen=True)
class Component:
    """A benchmarked step; ``family`` says which backends and peers apply to it."""

    name: str
    label: str
    family: str  # "optimizer", "layer" or "clipping"
    passes: tuple
    working_set: int  # bytes per element of the distinct arrays it touches
    peak_arrays: int  # float32 arrays of n elements alive at once in the hungriest backend
    model: str
    optimizer: tuple = None  # (scratchopt class name, constructor kwargs) for optimizers
    tensors: int = 1  # the n elements are split into this many equal tensors
    matrix: bool = False  # an optimizer's tensor is 2-D, ``matrix_shape(n)``, not 1-D

    @property
    def bytes_per_element(self):
        return sum(p.bytes_per_element for p in self.passes)

    def elements(self, size):
        """The element count actually used for a requested ``size`` (layers use whole rows)."""
        if self.family == "layer":
            rows, cols = layer_shape(size)
            return rows * cols
        if self.matrix:
            rows, cols = matrix_shape(size)
            return rows * cols
        return max(self.tensors, size // self.tensors * self.tensors)

    def bytes(self, size):
        return self.bytes_per_element * self.elements(size)

    def to_json(self):
        return {"label": self.label, "family": self.family, "model": self.model,
                "bytes_per_element": self.bytes_per_element,
                "working_set_bytes_per_element": self.working_set,
                "passes": [p.to_json() for p in self.passes]}


def layer_shape(size):
    """``(rows, FEATURES)`` for the layers' input of about ``size`` elements."""
    if size < FEATURES:
        return 1, size
    return size // FEATURES, FEATURES


def matrix_shape(size):
    """``(rows, columns)`` of about ``size`` elements, as square as powers of ten allow
    (1e3: (10, 100), 1e7: (1000, 10000), 1e8: (10000, 10000)): a layer's weight matrix."""
    digits = len(str(int(size))) - 1  # floor(log10(size))
    rows = 10 ** (digits // 2)
    return rows, size // rows


def _update(arrays, in_place):
    return Pass(reads=(F32,) * arrays, writes=(F32,) * in_place, in_place=in_place)


_two_pass_norm = (Pass((F32,), reduce=True), Pass((F32,), (F32,)),
                  Pass((F32, F32), reduce=True), Pass((F32, F32), (F32,)))
_one_pass_norm = (Pass((F32,), (F32,)), Pass((F32, F32), (F32,)))
_clip = (Pass((F32,), reduce=True), Pass((F32,), (F32,)))

COMPONENTS = {c.name: c for c in [
    Component("sgd", "SGD", "optimizer", (_update(2, 1),), 8, 8,
              "read g, w; write w", ("SGD", {"learning_rate": 0.01})),
    Component("sgd_momentum", "SGD momentum=0.9", "optimizer", (_update(3, 2),), 12, 10,
              "read g, w, m; write w, m", ("SGD", {"learning_rate": 0.01, "momentum": 0.9})),
    Component("adam", "Adam", "optimizer", (_update(4, 3),), 16, 12,
              "read g, w, m, v; write w, m, v", ("Adam", {"learning_rate": 0.001})),
    Component("adamw", "AdamW wd=0.004", "optimizer", (_update(4, 3),), 16, 12,
              "read g, w, m, v; write w, m, v (decay fused)",
              ("AdamW", {"learning_rate": 0.001, "weight_decay": 0.004})),
    Component("adam_global_clip", "Adam global_clipnorm=1", "optimizer",
              (Pass((F32,), reduce=True), _update(4, 3)), 16, 14,
              "sum g*g; read g, w, m, v; write w, m, v",
              ("Adam", {"learning_rate": 0.001, "global_clipnorm": 1.0})),
    Component("adam_1000", "Adam, 1000 tensors", "optimizer", (_update(4, 3),), 16, 12,
              "read g, w, m, v; write w, m, v; over 1000 tensors", ("Adam", {"learning_rate": 0.001}),
              tensors=1000),
    Component("adam_1000_global_clip", "Adam global_clipnorm=1, 1000 tensors", "optimizer",
              (Pass((F32,), reduce=True), _update(4, 3)), 16, 14,
              "sum g*g of each tensor; read g, w, m, v; write w, m, v; over 1000 tensors",
              ("Adam", {"learning_rate": 0.001, "global_clipnorm": 1.0}), tensors=1000),
    Component("rmsprop", "RMSprop", "optimizer", (_update(3, 2),), 12, 12,
              "read g, w, v; write w, v", ("RMSprop", {"learning_rate": 0.001})),
    Component("rmsprop_centered", "RMSprop centered", "optimizer", (_update(4, 3),), 16, 14,
              "read g, w, v, avg_g; write w, v, avg_g",
              ("RMSprop", {"learning_rate": 0.001, "centered": True})),
    # issue 17: the rest of Keras's optimizers, at Keras's defaults (Adagrad 0.01, Adadelta 1.0)
    Component("nadam", "Nadam", "optimizer", (_update(4, 3),), 16, 12,
              "read g, w, m, v; write w, m, v", ("Nadam", {"learning_rate": 0.001})),
    Component("adamax", "Adamax", "optimizer", (_update(4, 3),), 16, 12,
              "read g, w, m, u; write w, m, u", ("Adamax", {"learning_rate": 0.001})),
    Component("adagrad", "Adagrad", "optimizer", (_update(3, 2),), 12, 10,
              "read g, w, accumulator; write w, accumulator", ("Adagrad", {"learning_rate": 0.01})),
    Component("adadelta", "Adadelta", "optimizer", (_update(4, 3),), 16, 12,
              "read g, w, two accumulators; write w and them", ("Adadelta", {"learning_rate": 1.0})),
    Component("ftrl", "Ftrl", "optimizer", (_update(4, 3),), 16, 14,
              "read g, w, accumulator, linear; write w, accumulator, linear", ("Ftrl", {"learning_rate": 0.001})),
    Component("lion", "Lion", "optimizer", (_update(3, 2),), 12, 10,
              "read g, w, m; write w, m", ("Lion", {"learning_rate": 0.0001})),
    Component("lamb", "Lamb", "optimizer",
              (Pass((F32,) * 4, (F32, F32), in_place=2), Pass((F32,) * 3, (F32,), in_place=1)), 16, 16,
              "read g, w, m, v; write m, v (summing |w|^2 and |r|^2); read m, v, w; write w (the trust ratio)",
              ("Lamb", {"learning_rate": 0.001})),
    Component("adafactor", "Adafactor (1-D: unfactored)", "optimizer",
              (Pass((F32,) * 3, (F32,), in_place=1), Pass((F32,) * 3, (F32,), in_place=1)), 12, 14,
              "read g, w, v; write v (summing rms(w), rms(u)); read g, v, w; write w", ("Adafactor", {})),
    Component("adafactor_2d", "Adafactor (2-D: factored)", "optimizer",
              (Pass((F32, F32), reduce=True), Pass((F32,), (F32,)), Pass((F32,) * 3, (F32,), in_place=1)), 12, 14,
              "sum |w|^2, g*g by rows and by columns; read g, write v (summing rms(u)); read g, v, w; write w",
              ("Adafactor", {}), matrix=True),
    Component("schedule_free_adamw", "ScheduleFreeAdamW", "optimizer", (_update(4, 3),), 16, 12,
              "read g, w, z, v; write w, z, v", ("ScheduleFreeAdamW", {})),
    Component("loss_scale_adam", "LossScaleOptimizer(Adam)", "optimizer",
              (Pass((F32,), reduce=True), _update(4, 3)), 16, 12,
              "all(isfinite(g)); read g, w, m, v; write w, m, v (the unscaling in the same pass)",
              ("LossScaleOptimizer", {"inner_optimizer": ("Adam", {"learning_rate": 0.001})})),
    Component("batchnorm", "BatchNormalization fwd+bwd", "layer", _two_pass_norm, 16, 16,
              "sum x; read x, write y; sum x*dy, dy; read x, dy, write dx"),
    Component("layernorm", "LayerNormalization fwd+bwd", "layer", _one_pass_norm, 16, 16,
              "read x, write y; read x, dy, write dx"),
    Component("dropout", "Dropout(0.5) fwd+bwd", "layer",
              (Pass((F32,), (F32, MASK)), Pass((F32, MASK), (F32,))), 4 * F32 + MASK, 10,
              "read x, write y + mask; read dy + mask, write dx"),
    Component("clip_norm", "clip_by_norm", "clipping", _clip, 8, 6,
              "sum g*g; read g, write the clipped copy"),
    Component("clip_global_norm", "clip_by_global_norm (4 tensors)", "clipping",
              _clip, 8, 6, "sum g*g over all; read g, write the clipped copies", tensors=4),
]}


def inputs(component, size, xp=np, seed=0):
    """The arrays a step reads, made once per (component, size, device) and shared.

    Optimizers: ``{"g", "w"}`` (``split`` them into ``component.tensors`` tensors); layers:
    ``{"x", "dy"}`` of ``layer_shape(size)``; clipping: ``{"grads"}``, a list of
    ``component.tensors`` views into one buffer. All float32, N(0, 1).
    """
    rng = np.random.default_rng(seed)
    n = component.elements(size)

    def normal(shape):
        return xp.asarray(rng.standard_normal(shape, dtype=np.float32))

    if component.family == "optimizer":
        return {"g": normal(n), "w": normal(n)}
    if component.family == "layer":
        shape = layer_shape(size)
        return {"x": normal(shape), "dy": normal(shape)}
    return {"grads": split(normal(n), component.tensors)}


def optimizer_tensors(component, a):
    """An optimizer component's tensors, views of ``a``: ``split`` into ``component.tensors``,
    each of ``matrix_shape`` for a 2-D row."""
    views = split(a, component.tensors)
    return [v.reshape(matrix_shape(v.size)) for v in views] if component.matrix else views


def split(a, tensors):
    """``a`` as ``tensors`` equal views (``[a]`` for one)."""
    return [a] if tensors == 1 else list(a.reshape(tensors, -1))
