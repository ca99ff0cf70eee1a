"""scratchopt: the techniques that make deep-learning training work, from scratch.

NumPy (CPU) and CuPy (GPU) implementations, each proven equal to its Keras namesake.
"""

from . import augment, backend, callbacks, clipping, layers, nn, numerics, optimizers, regularizers, schedules, textbook

__version__ = "0.1.0"
__all__ = ["augment", "backend", "callbacks", "clipping", "layers", "nn", "numerics", "optimizers", "regularizers", "schedules", "textbook"]
