"""Test-session set-up: Hypothesis profiles, one TensorFlow per process, the gpu marker.

Profiles (choose with ``HYPOTHESIS_PROFILE=...``; ``ci`` is the default):

* ``ci``: derandomized (the same examples on every run), fixed example counts, no
  deadline: the whole suite fits the CI budget on a 2-core machine.
* ``thorough``: randomized, 20x the examples, for local deep runs.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

from scratchopt.backend import gpu_available

settings.register_profile(
    "ci", derandomize=True, max_examples=40, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough", max_examples=800, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def scaled(n):
    """An example count relative to the active profile (the ci profile's 40 is 1x)."""
    return max(1, n * settings().max_examples // 40)


@pytest.fixture(scope="session")
def tf():
    """TensorFlow, imported once for the whole session, with one intra-op thread."""
    from scratchopt.tools.keras_reference import tensorflow

    tf = tensorflow()
    # TF's eager runtime caches the tensors it makes from Python scalars, keyed by value, and
    # 0.0 == -0.0: once some test converts -0.0, every later ``convert_to_tensor(0.0)`` in
    # the process returns -0.0 (Keras's ``ExponentialDecay(0.0, ...)`` then gives -0.0).
    # Convert +0.0 first, so the whole session sees what a fresh process sees.
    tf.convert_to_tensor(0.0)
    return tf


def pytest_collection_modifyitems(config, items):
    if gpu_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU with CuPy (scratchopt.backend.gpu_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
