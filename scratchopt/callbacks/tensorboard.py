"""``TensorBoard``: the epoch's logs as TensorBoard scalars, where Keras puts them.

Keras's layout (``keras/src/callbacks/tensorboard.py``), reproduced::

    <log_dir>/train/events.out.tfevents...        epoch_loss, epoch_<metric>, epoch_learning_rate
                                                  (step = epoch, from 0)
    <log_dir>/validation/events.out.tfevents...   evaluation_loss_vs_iterations, ...
                                                  (step = optimizer.iterations; written at
                                                   on_test_end, the end of fit's validation)
                                                  epoch_loss, epoch_<metric> (the val_ logs,
                                                   "val_" removed; step = epoch)
    update_freq="batch" or N:  batch_loss, batch_<metric> in train/ at the global batch
                               count (from 1), every N-th batch

Quirk reproduced: with an integer ``update_freq`` Keras's ``record_if(step % N == 0)`` stays
in force outside batches too, so an epoch's scalars are written only when the global batch
count (at the epoch's end) is a multiple of N, and ``evaluation_*`` only when the validation
batch count is.

``epoch_learning_rate`` is the optimizer's ``learning_rate`` at the epoch's end (Keras's
``_collect_learning_rate``), added to the train logs; each value is written as a float32
scalar tensor with the "scalars" plugin's metadata, as ``tf.summary.scalar`` writes it.

The files are written with the ``tensorboard`` package's own protocol buffers and
``RecordWriter`` (the event file's framing), named and begun as its ``EventFileWriter`` does
(imported when the callback is made: ``pip install 'scratchopt[tensorboard]'``).
Not reproduced (refused with a ValueError if asked for): ``histogram_freq``,
``write_images``, ``profile_batch``, ``embeddings_freq``, ``write_steps_per_second``;
``write_graph`` is accepted and writes nothing (there is no graph).
"""

import itertools
import os
import socket
import time

from .. import checks
from .base import Callback, _of_type


def _tensorboard():
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.plugins.scalar import metadata
        from tensorboard.summary.writer.record_writer import RecordWriter
        from tensorboard.util import tensor_util
    except ImportError:
        raise ImportError("the TensorBoard callback writes with the `tensorboard` package: "
                          "pip install 'scratchopt[tensorboard]'") from None
    return event_pb2, summary_pb2, metadata, RecordWriter, tensor_util


_uid = itertools.count()


class _EventFile:
    """``tensorboard.summary.writer.event_file_writer.EventFileWriter``, synchronous, on a
    plain file: the same file name, the same first event (``file_version="brain.Event:2"``),
    each event framed by the package's ``RecordWriter`` (length, masked CRC-32C, data, CRC).
    (``EventFileWriter`` itself opens files through ``tensorboard.compat.tf``, which imports
    TensorFlow when it is installed: seconds, for nothing.)"""

    def __init__(self, logdir, pb):
        self._event_pb2, RecordWriter = pb[0], pb[3]
        os.makedirs(logdir, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{next(_uid)}"
        self.path = os.path.join(logdir, name)
        self._file = open(self.path, "wb")  # noqa: SIM115 (open until close(), as EventFileWriter's)
        self._records = RecordWriter(self._file)
        self.add_event(self._event_pb2.Event(
            wall_time=time.time(), file_version="brain.Event:2",
            source_metadata=self._event_pb2.SourceMetadata(writer="scratchopt.callbacks.TensorBoard")))
        self.flush()

    def add_event(self, event):
        self._records.write(event.SerializeToString())

    def flush(self):
        self._file.flush()

    def close(self):
        self._file.close()


class TensorBoard(Callback):
    """Write the epoch's logs (and optionally batch logs) for TensorBoard (Keras's layout).

    Examples
    --------
    >>> import tempfile
    >>> from scratchopt.callbacks import TensorBoard
    >>> board = TensorBoard(log_dir=tempfile.mkdtemp(), update_freq="batch")
    >>> board.update_freq
    1
    """

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0, embeddings_freq=0,
                 embeddings_metadata=None):
        super().__init__()
        if not isinstance(log_dir, (str, os.PathLike)):
            raise TypeError(f"`log_dir` must be a path (str or os.PathLike). {checks.received('log_dir', log_dir)}")
        _of_type("write_graph", write_graph, bool, "a bool")
        for name, value in (("histogram_freq", histogram_freq), ("write_images", write_images),
                            ("write_steps_per_second", write_steps_per_second),
                            ("profile_batch", profile_batch), ("embeddings_freq", embeddings_freq),
                            ("embeddings_metadata", embeddings_metadata)):
            if value:
                raise ValueError(f"`{name}` is not supported by scratchopt's TensorBoard (epoch and batch "
                                 f"scalars only). {checks.received(name, value)}")
        if update_freq not in ("epoch", "batch"):
            checks.integer("update_freq", update_freq, at_least=1)
        self._pb = _tensorboard()  # the ImportError now, not at the first epoch
        self.log_dir = str(log_dir)
        self.write_graph = write_graph
        self.update_freq = 1 if update_freq == "batch" else update_freq
        self._writers = {}
        self._contexts = []
        self._global_train_batch = 0
        self._global_test_batch = 0

    def set_model(self, model):
        self.model = model
        self._train_dir = os.path.join(self.log_dir, "train")
        self._val_dir = os.path.join(self.log_dir, "validation")
        self._writers = {}

    def _writer(self, which):
        if which not in self._writers:
            directory = self._train_dir if which == "train" else self._val_dir
            self._writers[which] = _EventFile(directory, self._pb)
        return self._writers[which]

    def _scalar(self, which, tag, value, step):
        event_pb2, summary_pb2, metadata, _, tensor_util = self._pb
        tensor = tensor_util.make_tensor_proto(float(value), dtype="float32")
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(
            tag=tag, tensor=tensor, metadata=metadata.create_summary_metadata(display_name="", description=""))])
        self._writer(which).add_event(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

    # Keras pushes a (default writer, record_if(step % update_freq == 0)) context at each
    # train batch, test start and test batch (unless update_freq == "epoch"), and every
    # summary written meanwhile obeys the innermost one: ``_contexts`` is that stack.

    def _push(self, which, step):
        if self.update_freq != "epoch":
            self._contexts.append((which, step))

    def _pop(self):
        if self.update_freq != "epoch" and self._contexts:
            self._contexts.pop()

    def _recording(self):
        """Keras's record_if: with update_freq N, only when the innermost context's step is a
        multiple of N (so epoch scalars too: a Keras quirk, reproduced)."""
        return not self._contexts or self._contexts[-1][1] % self.update_freq == 0

    def on_train_begin(self, logs=None):
        self._global_train_batch = 0
        self._global_test_batch = 0
        self._contexts = []
        self._push("train", self._global_train_batch)

    def on_train_end(self, logs=None):
        self._pop()
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def on_train_batch_begin(self, batch, logs=None):
        self._global_train_batch += 1
        if self.update_freq != "epoch":
            self._pop()
            self._push("train", self._global_train_batch)

    def on_train_batch_end(self, batch, logs=None):
        # Keras writes to the default writer, which exists only with update_freq != "epoch"
        if self.update_freq == "epoch" or not self._recording() or not isinstance(logs, dict):
            return
        which = self._contexts[-1][0]
        for name, value in logs.items():
            self._scalar(which, f"batch_{name}", value, self._global_train_batch)

    def on_test_begin(self, logs=None):
        self._push("val", self._global_test_batch)

    def on_test_batch_begin(self, batch, logs=None):
        self._global_test_batch += 1
        if self.update_freq != "epoch":
            self._pop()
            self._push("val", self._global_test_batch)

    def on_test_end(self, logs=None):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and hasattr(optimizer, "iterations") and self._recording():
            for name, value in (logs or {}).items():
                self._scalar("val", f"evaluation_{name}_vs_iterations", value, optimizer.iterations)
        self._pop()

    def on_epoch_end(self, epoch, logs=None):
        if not logs:
            return
        train_logs = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val_logs = {k: v for k, v in logs.items() if k.startswith("val_")}
        optimizer = getattr(self.model, "optimizer", None)
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)
        if optimizer is not None and hasattr(optimizer, "learning_rate"):
            train_logs["learning_rate"] = float(optimizer.learning_rate)  # Keras's _collect_learning_rate
        if self._recording():
            for name, value in train_logs.items():
                self._scalar("train", f"epoch_{name}", value, epoch)
            for name, value in val_logs.items():
                self._scalar("val", f"epoch_{name[4:]}", value, epoch)
        for writer in self._writers.values():
            writer.flush()
