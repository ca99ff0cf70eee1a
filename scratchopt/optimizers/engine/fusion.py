"""What the two fused paths share, once: a rule's signature, its scalars, the kernel cache,
and the fallback when a rule cannot be fused.

Both ``fused_cpu.py`` (numba) and ``fused_gpu.py`` (CuPy) turn one update rule
``rule(g, var, *slots, *, scalars...)`` into one kernel. Both need to read which arrays and
scalars the rule takes (``rule_signature``), to pass the bool/None scalars as constants
and the others in the array dtype (``split_scalars``), to build each kernel once and keep it
(``KernelCache``), and, when a kernel cannot be compiled, to say so once and let the
caller run the rule as array code for that kernel's inputs (``Fallbacks``).
"""

import inspect
import threading
import warnings

import numpy as np


def rule_signature(rule, missing, scalar_names, reserved=()):
    """``(array_names, keyword_names)`` of a rule ``(g, var, *slots, *, scalars...)``, checked
    against the arrays (``missing``: which are None) and scalars a step passes it. Names
    starting with ``_`` (and the ``reserved`` ones) belong to the generated kernels."""
    parameters = list(inspect.signature(rule).parameters.values())
    array_names = [p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD]
    keyword_names = [p.name for p in parameters if p.kind is p.KEYWORD_ONLY]
    if len(array_names) != len(missing) or sorted(keyword_names) != sorted(scalar_names):
        raise TypeError(f"{rule.__qualname__}{inspect.signature(rule)} does not match "
                        f"{len(missing)} arrays and scalars {sorted(scalar_names)}")
    if missing[1]:
        raise TypeError("the variable cannot be None (a rule that ignores the gradient may take None)")
    if any(n.startswith("_") or n in reserved for n in array_names + keyword_names):
        raise TypeError(f"{rule.__qualname__}: {' '.join(f'`{n}`' for n in reserved)}{', ' if reserved else ''}"
                        "names starting with '_' are the kernel's own")
    return array_names, keyword_names


def split_scalars(scalars, dtype):
    """``(literals, values)``: the bool/None scalars as ``(name, value)`` pairs, which the
    kernel takes as constants, and the others in ``dtype`` (a Python number is rounded to
    the array dtype, as NumPy 2 treats it next to an array), in ``scalars``' order."""
    literals, values = [], []
    for name, value in scalars.items():
        if value is None or isinstance(value, (bool, np.bool_)):
            literals.append((name, None if value is None else bool(value)))
        elif isinstance(value, np.generic):
            values.append(value)
        else:
            values.append(dtype(value))
    return literals, values


class KernelCache:
    """Compiled kernels by key: each built by ``build(*key)`` on its first use, then kept."""

    def __init__(self, build):
        self._build = build
        self._kernels = {}
        self._lock = threading.Lock()

    def get(self, *key):
        kernel = self._kernels.get(key)
        if kernel is None:
            with self._lock:
                kernel = self._kernels.get(key)
                if kernel is None:
                    kernel = self._kernels[key] = self._build(*key)
        return kernel


class Fallbacks:
    """The kernels a fused path could not compile, by key: each key is warned about once,
    then runs as array code on that path without trying again.

    A key is what one kernel is compiled for: the rule, which of its arrays are None, its
    scalars' names, the bool/None ones' values, the dtype, the scalar values' types (and
    the path's own choices, such as serial or parallel). So one failure, say for inputs
    a step should have refused, does not send every later step of the rule to array
    code: another key still compiles. The first test, whether the rule has failed at all,
    is a set lookup, so that a rule that never failed costs no key.
    """

    def __init__(self, path):
        self.path = path
        self._errors = {}  # key -> the error
        self._rules = set()  # the rules with a failed key

    def __contains__(self, key):
        return key[0] in self._rules and key in self._errors

    def failed(self, rule):
        """Whether some key of ``rule`` failed (then look the key up: ``key in fallbacks``)."""
        return rule in self._rules

    def add(self, key, error):
        """Record that ``key`` (its rule first) cannot be fused here and warn, once per key,
        that it runs as array code."""
        rule = key[0]
        self._errors[key] = error
        self._rules.add(rule)
        text = str(error).strip()
        first = text.splitlines()[0] if text else type(error).__name__
        warnings.warn(f"the {self.path} cannot compile {rule.__module__}.{rule.__qualname__} "
                      f"({first}); it runs as array code instead", RuntimeWarning, stacklevel=5)
