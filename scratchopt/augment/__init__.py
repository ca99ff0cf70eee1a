"""Data augmentation: MixUp and CutMix (equal to Keras given the same draws), and text tricks.

Augmentation trains on altered copies of the data, so the model sees more variety than the
data set holds and overfits less. An augmentation must keep the label *true*: a flipped cat
is still a cat. MixUp and CutMix go further and change the label along with the image.

* ``MixUp`` (``mixup.py``; Zhang et al. 2018, ``keras.layers.MixUp``): blend each image with
  another image of the batch, and blend the two one-hot labels with the same weight.
* ``CutMix`` (``cutmix.py``; Yun et al. 2019, ``keras.layers.CutMix``): paste a rectangle of
  another image of the batch, and weight the labels by how much of the image each one owns.
* What the two share (``mixing.py``): Keras's call and its forms of data, the draws, the
  pitfalls, and where both differ from Keras.
* ``random_deletion`` / ``random_swap`` (``text.py``; EDA, Wei & Zou 2019): drop or shuffle
  words of a sentence; the lesson's text augmentation.
"""

from .cutmix import CutMix
from .mixup import MixUp
from .text import random_deletion, random_swap

__all__ = ["CutMix", "MixUp", "random_deletion", "random_swap"]
