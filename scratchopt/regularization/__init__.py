"""The lesson's regularization chapter: L1/L2 penalties, dropout, batch and layer normalization.

``penalties.py`` (``L1``, ``L2``, ``L1L2``; public as ``scratchopt.regularizers``),
``dropout.py`` (``Dropout``, ``SpatialDropout1D/2D/3D``), ``batch_normalization.py`` and
``layer_normalization.py``. The layers are public as ``scratchopt.layers``, beside the
network pieces' ``Layer`` base (``scratchopt/nn/layer.py``) they derive from.
"""
