"""Gradient clipping, Keras's three kinds: ``scratchopt.optimizers.clipping``, under its public name."""

from .optimizers.clipping import clip_by_global_norm, clip_by_norm, clip_by_value, global_norm

__all__ = ["clip_by_value", "clip_by_norm", "clip_by_global_norm", "global_norm"]
