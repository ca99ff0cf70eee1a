"""One entry per layer drives the generic tests (PyTorch's OptimizerInfo, in spirit).

An entry names the layer (scratchopt and Keras share the name), the arguments every
construction needs, and three lists about construction-time validation:

* ``rejections``: ``(kwargs, exception type)`` that Keras raises; scratchopt raises the
  same type, with a message naming the argument and the value;
* ``acceptances``: arguments that look wrong but that Keras accepts, and so do we;
* ``stricter``: ``(kwargs, exception type)`` that Keras silently converts or accepts and
  only trips over later (if ever), which scratchopt refuses at once.

Adding a layer to the suite is adding an entry here.
"""

import dataclasses

import numpy as np

from scratchopt import layers


@dataclasses.dataclass
class LayerInfo:
    name: str
    required: dict
    rejections: list
    acceptances: list
    stricter: list

    @property
    def cls(self):
        return getattr(layers, self.name)

    def keras_cls(self):
        import keras

        return getattr(keras.layers, self.name)

    def __str__(self):
        return self.name


NAN = float("nan")

#: Keras's Dropout checks (inherited by SpatialDropout): rate in [0, 1]; an int seed,
#: checked only when a generator is made (rate > 0).
DROPOUT_REJECTIONS = [
    ({"rate": 1.5}, ValueError), ({"rate": -0.1}, ValueError), ({"rate": NAN}, ValueError),
    ({"rate": "0.5"}, TypeError), ({"rate": None}, TypeError),
    ({"seed": 1.5}, ValueError), ({"seed": "1"}, ValueError), ({"seed": np.int64(3)}, ValueError),
    ({"seed": 2**63}, ValueError),  # Keras keeps the seed in an int64 tensor
]
DROPOUT_ACCEPTANCES = [
    {"rate": 1.0}, {"rate": 1}, {"rate": 0}, {"rate": 0.0},  # rate 1 drops everything
    {"rate": np.float32(0.5)}, {"rate": np.float64(0.25)},
    {"seed": -3}, {"seed": 2**63 - 1}, {"seed": -(2**63)},
    {"rate": 0.0, "seed": "1"},  # no generator at rate 0: the seed is never looked at
]
DROPOUT_STRICTER = [({"rate": True}, TypeError)]  # Keras: 0 <= True <= 1, so rate 1

DATA_FORMAT_REJECTIONS = [({"data_format": "bad"}, ValueError), ({"data_format": 5}, ValueError)]
DATA_FORMAT_ACCEPTANCES = [{"data_format": None}, {"data_format": "Channels_First"},
                           {"data_format": "channels_last"}]

INFOS = [
    LayerInfo(
        "Dropout", {"rate": 0.5},
        rejections=DROPOUT_REJECTIONS + [
            ({"noise_shape": "abc"}, ValueError), ({"noise_shape": 5}, ValueError),
            ({"noise_shape": (2.0, 3)}, ValueError), ({"noise_shape": (0, 3)}, ValueError),
            ({"noise_shape": (-1, 3)}, ValueError), ({"noise_shape": (np.int64(2), 3)}, ValueError),
        ],
        acceptances=DROPOUT_ACCEPTANCES + [{"noise_shape": (None, 3)}, {"noise_shape": [True, 3]},
                                           {"noise_shape": ()}],
        stricter=DROPOUT_STRICTER,
    ),
    LayerInfo("SpatialDropout1D", {"rate": 0.5}, DROPOUT_REJECTIONS, DROPOUT_ACCEPTANCES, DROPOUT_STRICTER),
    LayerInfo("SpatialDropout2D", {"rate": 0.5}, DROPOUT_REJECTIONS + DATA_FORMAT_REJECTIONS,
              DROPOUT_ACCEPTANCES + DATA_FORMAT_ACCEPTANCES, DROPOUT_STRICTER),
    LayerInfo("SpatialDropout3D", {"rate": 0.5}, DROPOUT_REJECTIONS + DATA_FORMAT_REJECTIONS,
              DROPOUT_ACCEPTANCES + DATA_FORMAT_ACCEPTANCES, DROPOUT_STRICTER),
    LayerInfo(
        "BatchNormalization", {},
        # Keras: self.axis = int(axis); momentum and epsilon through float().
        rejections=[
            ({"axis": [1]}, TypeError), ({"axis": None}, TypeError), ({"axis": "a"}, ValueError),
            ({"momentum": None}, TypeError), ({"momentum": "abc"}, ValueError),
            ({"momentum": [0.9]}, TypeError),
            ({"epsilon": None}, TypeError), ({"epsilon": "x"}, ValueError),
        ],
        acceptances=[{"momentum": 1.5}, {"momentum": -1}, {"momentum": NAN}, {"momentum": 0},
                     {"momentum": np.float32(0.9)}, {"epsilon": -1e-3}, {"epsilon": 0},
                     {"axis": np.int64(1)}, {"axis": 3}, {"axis": -4}],
        stricter=[({"axis": "1"}, TypeError), ({"axis": 1.5}, TypeError), ({"axis": True}, TypeError),
                  ({"momentum": "0.9"}, TypeError), ({"epsilon": "1e-3"}, TypeError),
                  ({"center": "no"}, TypeError), ({"scale": None}, TypeError)],
    ),
    LayerInfo(
        "LayerNormalization", {},
        # Keras: axis must be an int, or a list/tuple (whose items it does not check).
        rejections=[({"axis": 1.0}, TypeError), ({"axis": np.int64(1)}, TypeError),
                    ({"axis": "1"}, TypeError), ({"axis": None}, TypeError)],
        acceptances=[{"axis": [1, 2]}, {"axis": (0, -1)}, {"axis": [-1, 1]}, {"epsilon": None},
                     {"epsilon": -1.0}, {"epsilon": 0}],
        stricter=[({"axis": (1, 1.5)}, TypeError), ({"axis": True}, TypeError),
                  ({"axis": []}, ValueError), ({"axis": [1, 1]}, ValueError),
                  ({"epsilon": "x"}, TypeError), ({"center": 1}, TypeError)],
    ),
]

DROPOUT_INFOS = [i for i in INFOS if "Dropout" in i.name]
NORMALIZATION_INFOS = [i for i in INFOS if "Normalization" in i.name]
