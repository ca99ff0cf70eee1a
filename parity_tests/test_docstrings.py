"""The docstrings' examples: every module's doctests pass, and every public API object has one.

(a) ``test_doctests``: one test per module of the ``scratchopt`` package (found with
    ``pkgutil.walk_packages``), running its doctests with the standard ``doctest`` module;
    a failure reports doctest's own account of it (the example, expected and got).
(b) ``test_public_object_has_an_example``: every public class and function of the API
    modules (``API_MODULES``: their ``__all__``, else every name not starting with ``_``
    that the module defines) has a ``>>>`` example in its own docstring, and doctest
    collects it (so (a) runs it). A new class is covered as soon as it is exported.

No module is skipped for TensorFlow: none imports it at import time (``keras_reference``,
``parity``, ``parity_callbacks`` and ``bench.peers`` import it inside functions). One module
is not imported at all: ``scratchopt.__main__`` runs the command line (and ``sys.exit``)
when imported.
"""

import doctest
import importlib
import inspect
import pkgutil

import pytest

import scratchopt

#: Modules that cannot be imported to read their doctests, with the reason.
NOT_IMPORTED = {
    "scratchopt.__main__": "importing it runs the command line and calls sys.exit",
}

#: The modules whose public classes and functions must each carry an example.
API_MODULES = (
    "scratchopt.optimizers",
    "scratchopt.schedules",
    "scratchopt.regularizers",
    "scratchopt.clipping",
    "scratchopt.callbacks",
    "scratchopt.layers",
    "scratchopt.augment",
    "scratchopt.nn",
    "scratchopt.torch.optim",
    "scratchopt.torch.optim.lr_scheduler",
    "scratchopt.torch.nn",
)


def _modules():
    names = ["scratchopt"] + [info.name for info in pkgutil.walk_packages(scratchopt.__path__, "scratchopt.")]
    return sorted(name for name in names if name not in NOT_IMPORTED)


def _doctests(module):
    """The module's doctests (those with at least one example), as doctest finds them."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    return [test for test in finder.find(module) if test.examples]


@pytest.mark.parametrize("name", _modules())
def test_doctests(name, monkeypatch):
    # The optimizers' examples run on the NumPy reference path: the fused numba path gives
    # the same bits (test_fused.py) but compiles each kernel on first use (~0.5 s each).
    monkeypatch.setenv("SCRATCHOPT_BACKEND", "numpy")
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report, failed, attempted = [], 0, 0
    for test in _doctests(module):
        result = runner.run(test, out=report.append)
        failed, attempted = failed + result.failed, attempted + result.attempted
    if failed:
        pytest.fail(f"{failed} of {attempted} doctest examples failed in {name}:\n" + "".join(report),
                    pytrace=False)


def _public_objects():
    """(module name, object name) for each public class and function of ``API_MODULES``."""
    found = []
    for module_name in API_MODULES:
        module = importlib.import_module(module_name)
        names = getattr(module, "__all__", None)
        if names is None:
            names = [n for n, obj in vars(module).items() if not n.startswith("_")
                     and getattr(obj, "__module__", None) == module_name]
        for name in names:
            obj = getattr(module, name)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__.startswith("scratchopt"):
                found.append((module_name, name))
    return found


PUBLIC = _public_objects()


def test_the_list_of_public_objects_is_complete():
    """The derivation finds what the docs promise (so an empty list cannot pass (b))."""
    names = {name for _, name in PUBLIC}
    expected = {
        "Optimizer", "SGD", "Adam", "AdamW", "RMSprop",
        "LearningRateSchedule", "PiecewiseConstantDecay", "ExponentialDecay", "CosineDecay",
        "InverseTimeDecay", "PolynomialDecay", "CosineDecayRestarts", "WarmupCosineDecay",
        "Regularizer", "L1", "L2", "L1L2",
        "clip_by_value", "clip_by_norm", "clip_by_global_norm",
        "Callback", "LearningRateScheduler", "ReduceLROnPlateau", "EarlyStopping",
        "Layer", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
        "BatchNormalization", "LayerNormalization",
        "MixUp", "CutMix", "random_deletion", "random_swap",
        "Dense", "ReLU", "MeanSquaredError", "SoftmaxCrossEntropy", "Sequential", "History",
    }
    assert expected <= names, f"not found: {sorted(expected - names)}"


@pytest.mark.parametrize(("module_name", "name"), PUBLIC, ids=[f"{m}.{n}" for m, n in PUBLIC])
def test_public_object_has_an_example(module_name, name):
    obj = getattr(importlib.import_module(module_name), name)
    docstring = vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__  # its own, not inherited
    assert docstring and ">>>" in docstring, (
        f"{module_name}.{name} has no '>>>' example in its docstring: add an Examples section")
    home = importlib.import_module(obj.__module__)
    collected = {test.name for test in _doctests(home)}
    assert f"{obj.__module__}.{obj.__qualname__}" in collected, (
        f"doctest does not collect the example of {obj.__module__}.{obj.__qualname__}")
