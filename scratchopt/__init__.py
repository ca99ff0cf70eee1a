"""scratchopt: the techniques that make deep-learning training work, from scratch.

NumPy (CPU) and CuPy (GPU) implementations, each proven equal to its Keras namesake.
One folder per chapter of the lesson: ``optimizers``, ``schedules``, ``regularization``
(penalties, dropout, normalization), ``augment``, ``callbacks`` and ``nn`` (the network
pieces); ``numerics`` holds what bit-exactness with TensorFlow takes, and ``tools`` the
command line (parity, bench, demos), apart from the library.
"""

from . import augment, backend, callbacks, clipping, layers, nn, numerics, optimizers, regularizers, schedules, textbook

__version__ = "0.1.0"
__all__ = ["augment", "backend", "callbacks", "clipping", "layers", "nn", "numerics", "optimizers", "regularizers", "schedules", "textbook"]
