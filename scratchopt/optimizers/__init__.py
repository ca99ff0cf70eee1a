"""The optimizers, one file each: the update rule and its formula box.

Shared machinery (learning rate and schedules, clipping, weight decay, EMA, gradient
accumulation, state) lives once in ``base.Optimizer``; ``LossScaleOptimizer`` wraps any
of them.
"""

from .adadelta import Adadelta
from .adafactor import Adafactor
from .adagrad import Adagrad
from .adam import Adam
from .adamax import Adamax
from .adamw import AdamW
from .base import Optimizer
from .ftrl import Ftrl
from .lamb import Lamb
from .lion import Lion
from .loss_scale_optimizer import LossScaleOptimizer
from .muon import Muon
from .nadam import Nadam
from .rmsprop import RMSprop
from .schedule_free_adamw import ScheduleFreeAdamW
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Nadam", "Adamax", "Adagrad", "Adadelta", "Lion",
           "ScheduleFreeAdamW", "Ftrl", "Lamb", "Adafactor", "Muon",
           "LossScaleOptimizer"]
