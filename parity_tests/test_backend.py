"""scratchopt.backend: arrays stay where they are; CuPy only when asked for."""

import subprocess
import sys

import numpy as np
import pytest

from scratchopt.backend import gpu_available, namespace, to_numpy
from test_state import CuPyLookalike


def test_namespace_of_numpy_arrays_and_scalars():
    assert namespace(np.zeros(2), np.float32(1), np.ones((2, 2), np.float32)) is np


@pytest.mark.parametrize("thing", [[1.0, 2.0], 1.0, None, "x"])
def test_namespace_rejects_non_arrays_naming_type_and_position(thing):
    with pytest.raises(TypeError, match=f"{type(thing).__name__} at position 1"):
        namespace(np.zeros(2), thing)


def test_mixing_numpy_and_cupy_is_a_type_error_naming_both():
    with pytest.raises(TypeError, match="NumPy array at position 0 and a CuPy array at position 1"):
        namespace(np.zeros(2), CuPyLookalike(np.zeros(2)))


def test_to_numpy_copies():
    x = np.arange(3.0)
    y = to_numpy(x)
    y[0] = 7
    assert x[0] == 0 and isinstance(y, np.ndarray)


def test_gpu_available_is_a_bool():
    assert gpu_available() in (True, False)


def test_cupy_is_not_imported_by_cpu_work():
    """import scratchopt and a whole CPU training step never import CuPy."""
    code = (
        "import sys, numpy as np, scratchopt\n"
        "from scratchopt.optimizers import Adam\n"
        "p = [np.ones(3, np.float32)]\n"
        "Adam(clipnorm=1.0).apply([np.ones(3, np.float32)], p)\n"
        "print('cupy' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
