"""``Optimizer``: torch's plumbing (param groups, lazy state, ``state_dict``) over NumPy arrays.

Each subclass holds just its rule: ``_init_state(p, group)`` (the slots torch creates on the
first step) and ``_update(p, g, state, group)`` (one parameter's step, returning the new
parameter and state; it must not write into its inputs). ``step(grads)`` checks every
gradient first, runs the rule on copies, and only then writes the results back, so a failed
step changes nothing.
"""

import copy

import numpy as np

from ...checks import FLOAT_DTYPES


def _kind(value):
    return type(value).__name__


class Optimizer:
    """The base of ``SGD``, ``Adam``, ``AdamW`` and ``RMSprop`` (torch's ``torch.optim.Optimizer``).

    >>> import numpy as np
    >>> from scratchopt.torch.optim import SGD
    >>> w = np.ones(2, np.float32)
    >>> opt = SGD([w], lr=0.5)
    >>> opt.step([np.ones(2, np.float32)]); w.tolist()
    [0.5, 0.5]
    """

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        #: Per-parameter state, keyed by the parameter's position across all groups (torch's
        #: ``state_dict()`` keys).
        self.state = {}
        if isinstance(params, (np.ndarray, dict)):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or dicts, "
                f"but got {_kind(params)}")
        params = list(params)
        if len(params) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        for group in params:
            self.add_param_group(group)

    def add_param_group(self, param_group):
        """Add a group (a dict with ``"params"``); missing options take the defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {_kind(param_group)}")
        group = dict(param_group)
        params = group.get("params")
        if isinstance(params, np.ndarray):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but "
                            "the ordering of tensors in sets will change between runs. Please use a list instead.")
        else:
            params = list(params)
        for p in params:
            if not isinstance(p, np.ndarray):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {_kind(p)}")
            if p.dtype not in FLOAT_DTYPES:
                raise TypeError(f"optimizer can only optimize float32 or float64 arrays. Received: dtype={p.dtype}")
            if not p.flags.writeable:
                raise ValueError("optimizer updates parameters in place: a parameter array is read-only")
        group["params"] = params
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params):
            raise ValueError("optimizer contains a parameter group with duplicate parameters")
        if seen & {id(p) for p in params}:
            raise ValueError("some parameters appear in more than one parameter group")
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group):
        """Checks a subclass wants on every group (torch checks only the defaults)."""

    def _flat(self):
        return [p for g in self.param_groups for p in g["params"]]

    def zero_grad(self, set_to_none=True):
        """Gradients are passed to ``step``, so there is nothing to clear (kept for torch's API)."""

    def _check_grads(self, grads):
        params = self._flat()
        if isinstance(grads, np.ndarray):
            grads = [grads]
        grads = list(grads)
        if len(grads) != len(params):
            raise ValueError(f"`grads` must have one entry per parameter ({len(params)}). "
                             f"Received: {len(grads)} entries")
        checked = []
        for i, (p, g) in enumerate(zip(params, grads)):
            if g is None:
                checked.append(None)
                continue
            if isinstance(g, np.generic) and isinstance(p, np.ndarray):
                g = np.asarray(g)  # a NumPy scalar for a 0-d parameter
            if type(g) is not type(p):
                raise TypeError(f"`grads[{i}]` must be an array of the parameter's kind ({_kind(p)}). "
                                f"Received: {_kind(g)}")
            if g.dtype not in FLOAT_DTYPES:
                raise TypeError(f"`grads[{i}]` must be a float array. Received: dtype={g.dtype}")
            if g.shape != p.shape:
                raise ValueError(f"`grads[{i}]` must have the parameter's shape {p.shape}. "
                                 f"Received: shape={g.shape}")
            checked.append(g.astype(p.dtype, copy=False))
        return checked

    def step(self, grads):
        """One step: ``grads[i]`` is the gradient of the ``i``-th parameter (``None`` skips it)."""
        grads = self._check_grads(grads)
        new_params, new_state = [], {}
        index = 0
        for group in self.param_groups:
            for p in group["params"]:
                g = grads[index]
                if g is not None:
                    state = self.state.get(index) or self._init_state(p, group)
                    new_p, st = self._update(p, g, dict(state), group)
                    new_params.append((p, new_p))
                    new_state[index] = st
                index += 1
        for p, new_p in new_params:  # commit: nothing above wrote into a parameter or the state
            p[...] = new_p
        self.state.update(new_state)

    def state_dict(self):
        """``{"state": {index: {slot: array}}, "param_groups": [...]}``, torch's layout (copies)."""
        groups, start = [], 0
        for group in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            packed["params"] = list(range(start, start + len(group["params"])))
            start += len(group["params"])
            groups.append(packed)
        state = {i: {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                 for i, s in sorted(self.state.items())}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Load a ``state_dict()`` (ours, or torch's converted with ``.numpy()``): slots are cast to
        their parameter's dtype, ``step`` is kept as it is."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(self.param_groups, groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match the size "
                             "of optimizer's group")
        params = self._flat()
        index_of = {}
        start = 0
        for mine, saved in zip(self.param_groups, groups):
            for k, i in enumerate(saved["params"]):
                index_of[i] = start + k
            start += len(mine["params"])
        new_state = {}
        for i, slots in state_dict["state"].items():
            j = index_of[int(i)]
            p = params[j]
            loaded = {}
            for name, value in slots.items():
                value = np.array(value)
                if name != "step":
                    if value.shape != p.shape:
                        raise ValueError(f"state slot `{name}` of parameter {i} must have shape {p.shape}. "
                                         f"Received: shape={value.shape}")
                    value = value.astype(p.dtype)
                loaded[name] = value
            new_state[j] = loaded
        new_groups = []
        for mine, saved in zip(self.param_groups, groups):
            group = {k: copy.deepcopy(v) for k, v in saved.items() if k != "params"}
            group["params"] = mine["params"]
            new_groups.append(group)
        self.param_groups = new_groups
        self.state = new_state

    def __repr__(self):
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines) + "\n)"
