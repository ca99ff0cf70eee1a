"""L1 and L2 penalties: ``scratchopt.regularization.penalties``, under Keras's module name."""

from .regularization.penalties import L1, L1L2, L2, Regularizer

__all__ = ["Regularizer", "L1", "L2", "L1L2"]
