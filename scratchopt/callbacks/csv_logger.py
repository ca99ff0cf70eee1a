"""``CSVLogger``: one CSV row per epoch, byte for byte what Keras's writes.

::

    on_train_begin:  open the file ("w"; "a" with append=True, and no header if the file
                     already has a first line)
    on_epoch_end(epoch, logs), first time:
        keys = sorted(logs)                          alphabetical, not the logs' order
        no key starts with "val_"  ->  keys += ["val_" + k for k in keys]
        header: epoch,<keys...>
    every epoch:  a row  epoch,<logs.get(key, "NA")...>   (epochs from 0), then flush
    on_train_end: close

Quirks reproduced: the ``val_*`` columns are added when the first epoch has no validation
logs, and filled with ``NA`` (so the header never changes mid-file); rows end with
``"\\r\\n"`` (Python's ``csv`` "excel" dialect); a value is written with ``str`` (a Python
float's ``repr``: ``0.30000000000000004``); a list or array value becomes ``"[a, b]"``;
keys that first appear after the first epoch are never written.
"""

import collections
import collections.abc
import csv
import os

import numpy as np

from .base import Callback, _of_type


class CSVLogger(Callback):
    """Stream each epoch's logs to ``filename`` (Keras's ``CSVLogger``).

    Examples
    --------
    >>> import os, tempfile
    >>> from scratchopt.callbacks import CSVLogger
    >>> path = os.path.join(tempfile.mkdtemp(), "log.csv")
    >>> logger = CSVLogger(path)
    >>> logger.on_train_begin()
    >>> logger.on_epoch_end(0, {"loss": 0.5})
    >>> logger.on_epoch_end(1, {"loss": 0.25})
    >>> logger.on_train_end()
    >>> open(path, newline="").read()
    'epoch,loss,val_loss\\r\\n0,0.5,NA\\r\\n1,0.25,NA\\r\\n'
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        if not isinstance(filename, (str, os.PathLike)):
            raise TypeError(f"`filename` must be a path (str or os.PathLike). Received: filename="
                            f"{filename!r} ({type(filename).__name__})")
        _of_type("separator", separator, str, "a one-character string")
        if len(separator) != 1:  # csv's rule (Keras fails at the first epoch)
            raise ValueError(f"`separator` must be a one-character string. Received: separator={separator!r}")
        _of_type("append", append, bool, "a bool")
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = append
        self.writer = None
        self.keys = None
        self.append_header = True
        self.csv_file = None

    def on_train_begin(self, logs=None):
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename, "r") as f:
                    self.append_header = not bool(len(f.readline()))
            mode = "a"
        else:
            mode = "w"
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode)  # noqa: SIM115 (open across hooks, as Keras's file_utils.File)
        self.writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}

        def handle_value(k):
            is_zero_dim_ndarray = isinstance(k, np.ndarray) and k.ndim == 0
            if isinstance(k, str):
                return k
            if isinstance(k, collections.abc.Iterable) and not is_zero_dim_ndarray:
                return f'"[{", ".join(map(str, k))}]"'
            return k

        if self.keys is None:
            self.keys = sorted(logs.keys())
            if not any(key.startswith("val_") for key in self.keys) and self.keys:
                self.keys.extend([f"val_{k}" for k in self.keys])

        if not self.writer:
            class CustomDialect(csv.excel):
                delimiter = self.sep

            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + (self.keys or []),
                                         dialect=CustomDialect)
            if self.append_header:
                self.writer.writeheader()

        row = collections.OrderedDict({"epoch": epoch})
        row.update((key, handle_value(logs.get(key, "NA"))) for key in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None
