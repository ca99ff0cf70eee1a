"""The optimizers, one file each: the update rule and its formula box.

Shared machinery (learning rate and schedules, clipping, weight decay, EMA, gradient
accumulation, state) lives once in ``base.Optimizer``.
"""

from .adam import Adam
from .adamw import AdamW
from .base import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop"]
