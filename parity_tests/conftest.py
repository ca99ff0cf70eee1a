"""Test-session set-up: Hypothesis profiles, one TensorFlow per process, the gpu marker.

Profiles (choose with ``HYPOTHESIS_PROFILE=...``; ``ci`` is the default):

* ``ci``: fixed example counts, no deadline: the whole suite fits the CI budget on a 2-core
  machine: 24 examples a 1x test, with a worker process per core (pyproject's ``addopts``).
  It was 40, in one process, until the suite took 32 minutes on a VM that ran 2.6x slower
  than on the days CI took 13; then 30, with the workers, until CI took 1330 s, over its 20
  minutes (the README gives the time it takes now). Its examples are drawn from a seed
  derived from the commit (``git rev-parse HEAD``; the date where git is not available), so
  every run of one commit draws the same examples, and each new commit draws new ones (a
  derandomized profile would draw the same ones forever).
* ``thorough``: 20x the examples, for local deep runs, from a new random seed each session.

The session's seed is printed in pytest's header, with the command that reproduces the run;
``HYPOTHESIS_SEED=N`` or ``pytest --hypothesis-seed=N`` chooses it.
"""

import datetime
import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from scratchopt.backend import gpu_available

ROOT = Path(__file__).resolve().parent.parent

settings.register_profile(
    "ci", derandomize=False, max_examples=24, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough", max_examples=800, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def session_seed(profile, environ=os.environ, git_head=None):
    """``(seed, where it came from)``: ``HYPOTHESIS_SEED``; else for ``ci`` the commit's
    (its hash, hashed to 32 bits), or the date's without git; else a fresh random seed."""
    if environ.get("HYPOTHESIS_SEED"):
        return int(environ["HYPOTHESIS_SEED"]), "HYPOTHESIS_SEED"
    if profile != "ci":
        return random.SystemRandom().getrandbits(32), "random for this session"
    head = git_head() if git_head else _git_head()
    if head:
        return int(hashlib.sha256(head.encode()).hexdigest()[:8], 16), f"commit {head[:12]}"
    today = datetime.date.today().isoformat()
    return int(hashlib.sha256(today.encode()).hexdigest()[:8], 16), f"date {today} (git unavailable)"


def _git_head():
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    head = result.stdout.strip()
    return head if result.returncode == 0 and head else None


def pytest_configure(config):
    """Seed every Hypothesis test of the session (unless ``--hypothesis-seed`` was given)."""
    from hypothesis import core

    given = config.getoption("hypothesis_seed", default=None)
    if given is not None:
        config._scratchopt_seed = (given, "--hypothesis-seed")
        return
    controller = getattr(config, "workerinput", {}).get("scratchopt_seed")  # a pytest-xdist worker
    seed, source = controller if controller else session_seed(settings.get_current_profile_name())
    core.global_force_seed = seed
    config._scratchopt_seed = (seed, source)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """pytest-xdist: every worker draws from the seed the header printed (the controller's),
    also where that seed is random (the ``thorough`` profile)."""
    node.workerinput["scratchopt_seed"] = getattr(node.config, "_scratchopt_seed", None)


def pytest_report_header(config):
    seed, source = getattr(config, "_scratchopt_seed", (None, None))
    if seed is None:
        return None
    profile = settings.get_current_profile_name()
    return [f"hypothesis: profile {profile!r}, {settings().max_examples} examples per 1x test, seed {seed} ({source})",
            f"  reproduce: HYPOTHESIS_PROFILE={profile} HYPOTHESIS_SEED={seed} pytest ...  "
            f"(or pytest --hypothesis-seed={seed} ...)"]


def scaled(n):
    """``n`` examples at 40 a 1x test, scaled to the active profile: ``ci`` runs 3/5 of ``n``
    (24 a 1x test), ``thorough`` 20 times ``n``."""
    return max(1, n * settings().max_examples // 40)


@pytest.fixture(autouse=True)
def _fresh_keras_dtype_policy():
    """Each test starts with Keras's dtype policy unset, as a fresh process has it.

    Keras caches its global dtype policy the first time a layer asks for it, from the floatx
    of that moment, and ``keras.config.set_floatx`` does not reset it: after one test builds
    a layer under floatx float64 and restores float32, every later layer would still be
    float64 (and a float32 softmax output would be cast, losing its logits). So the policy is
    dropped after every test that may have imported Keras.
    """
    yield
    if "keras" in sys.modules:
        from keras.src.backend.common import global_state

        global_state.set_global_attribute("dtype_policy", None)


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
