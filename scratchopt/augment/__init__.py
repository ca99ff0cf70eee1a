"""Data augmentation: the lesson's image layers, MixUp and CutMix (equal to Keras given the
same draws), and text tricks.

Augmentation trains on altered copies of the data, so the model sees more variety than the
data set holds and overfits less. An augmentation must keep the label *true*: a flipped cat
is still a cat. MixUp and CutMix go further and change the label along with the image.

* ``MixUp`` (``mixup.py``; Zhang et al. 2018, ``keras.layers.MixUp``): blend each image with
  another image of the batch, and blend the two one-hot labels with the same weight.
* ``CutMix`` (``cutmix.py``; Yun et al. 2019, ``keras.layers.CutMix``): paste a rectangle of
  another image of the batch, and weight the labels by how much of the image each one owns.
* What the two share (``mixing.py``): Keras's call and its forms of data, the draws, the
  pitfalls, and where both differ from Keras.
* ``RandomFlip``, ``RandomRotation``, ``RandomZoom``, ``RandomContrast``,
  ``RandomTranslation`` (``flip.py``, ``rotation.py``, ``zoom.py``, ``contrast.py``,
  ``translation.py``; ``keras.layers.Random*``): the lesson's image augmentation. Each
  geometric layer builds its own 3x3 transform; ``transform.py`` applies it (inverse
  mapping, bilinear or nearest, four fill modes); ``image_layer.py`` has their shared call.
* ``random_deletion`` / ``random_swap`` (``text.py``; EDA, Wei & Zou 2019): drop or shuffle
  words of a sentence; the lesson's text augmentation.
"""

from .contrast import RandomContrast
from .cutmix import CutMix
from .flip import RandomFlip
from .mixup import MixUp
from .rotation import RandomRotation
from .text import random_deletion, random_swap
from .transform import apply_transform
from .translation import RandomTranslation
from .zoom import RandomZoom

__all__ = ["CutMix", "MixUp", "RandomContrast", "RandomFlip", "RandomRotation", "RandomTranslation",
           "RandomZoom", "apply_transform", "random_deletion", "random_swap"]
