"""The tools around the library, apart from it: the command line (``cli.py``), the parity
table against Keras (``parity.py``, ``parity_callbacks.py``, ``keras_reference.py``), the
benchmarks (``bench/``) and the lesson's demos (``demos/``)."""
