"""Parity rows for ``scratchopt.torch.nn`` against torch 2.13 on the CPU (one intra-op thread).

``run_torch_nn_row(component, dtype, steps=...)`` draws ``steps`` random cases (seeded),
runs each through scratchopt and through torch from the same start, and folds every array
(the output, the running statistics, ``dx``, the parameter gradients, the clipped gradients
and the norm) into one ``scratchopt.tools.parity.Row``.

Exact rows must be the same bits. Bounded rows (``BOUNDS``) are the arrays ATen reduces in
an order that is not reproduced (vector-width trees, Welford cascades); their row is
``exact=False`` whenever the bits differ, and ``row.note`` gives the largest measured error
in units of the dtype's epsilon times the largest magnitude of torch's array, next to the
bound (measured by ``parity_tests/measure_torch_nn.py``).
"""

import numpy as np

from .parity import Row, same_bits

#: (component, what it covers): each runs in float32 and float64.
TORCH_NN_ROWS = [
    ("BatchNorm1d (N, C)", "train: y, running stats, dx, grads; then eval: all exact"),
    ("BatchNorm1d (N, C, L)", "train: y, running stats; dx, grads bounded"),
    ("BatchNorm2d", "train: y, running stats; dx, grads bounded; eval y"),
    ("BatchNorm1d momentum=None", "cumulative average over 3 calls"),
    ("LayerNorm", "y, dx, grads bounded"),
    ("Dropout", "y and dx, given torch's mask"),
    ("clip_grad_norm_", "norm_type 2, 1, inf: total norm and clipped grads"),
    ("clip_grad_value_", "clipped grads"),
]

#: Measured bounds, in epsilons of the array's scale (max |torch's array|), for the arrays
#: that are not reproduced bit for bit: (component, array) -> bound.
BOUNDS = {
    "BatchNorm float64 planes y": 2.0,  # measured 0.96 (200 cases per row)
    "BatchNorm float64 planes running_var": 2.0,  # 0.93
    "BatchNorm dx": 4.0,  # 1.66 (planes; (N, C) is exact)
    "BatchNorm grads": 2.0,  # 0.86
    "LayerNorm y": 3.0,  # 1.77
    "LayerNorm dx": 3.0,  # 1.09
    "LayerNorm grads": 3.0,  # 1.14
    "clip_grad_norm_ float32 norm 2": 3.0,  # 1.79
}


def scaled_error(ours, theirs, scale=None):
    """``max |ours - theirs| / (eps(dtype) * scale)``, ``scale`` by default ``max |theirs|``.

    Where the result is a difference of larger terms (``dx`` of a normalization, whose
    terms nearly cancel), the scale is the largest term, not the result: that is the size
    of the rounding errors any order of summation makes.
    """
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    if scale is None:
        scale = float(np.max(np.abs(theirs.astype(np.float64)), initial=0.0))
    scale = float(scale) or 1.0
    err = float(np.max(np.abs(ours.astype(np.float64) - theirs), initial=0.0))
    return err / (np.finfo(theirs.dtype).eps * scale)


class Comparison:
    """The exact arrays and the bounded ones of one row, with the worst scaled error per bound."""

    def __init__(self, component, dtype, steps):
        self.row = Row(component, dtype, steps, 0.0, 0.0, True)
        self.worst = {}
        self.misses = set()

    def exact(self, label, ours, theirs):
        if not same_bits(ours, theirs):
            self.misses.add(label)
        self.row.compare(ours, theirs)

    def bounded(self, key, ours, theirs, scale=None):
        """``scale``: the magnitude the error is measured against (default: max |theirs|)."""
        self.row.compare(ours, theirs)
        self.worst[key] = max(self.worst.get(key, 0.0), scaled_error(ours, theirs, scale))

    def finish(self, note=""):
        parts = [f"{k}: {v:.2f} eps of scale (bound {BOUNDS[k]:g})" for k, v in sorted(self.worst.items())]
        missed = [f"not the same bits: {', '.join(sorted(self.misses))}"] if self.misses else []
        self.row.note = "; ".join(([note] if note else []) + missed + parts)
        if self.worst:  # a bounded row: every bounded array within its bound, every exact one exact
            self.row.bound = ", ".join(f"{k} {BOUNDS[k]:g}" for k in sorted(self.worst)) + " eps of scale"
            self.row.within = bool(self.within_bounds() and not self.misses)
        return self.row

    def within_bounds(self):
        return all(v <= BOUNDS[k] for k, v in self.worst.items())


def _torch():
    import torch

    torch.set_num_threads(1)
    return torch


def _param(module, name, value, torch):
    with torch.no_grad():
        getattr(module, name).copy_(torch.from_numpy(np.ascontiguousarray(value)))


def _dx_scale(layer, dy):
    """The largest term of a normalization's ``dx``: ``max |dy| * max |invstd * w|``."""
    last = layer._last
    factor = np.abs(last["invstd"] * last["w"]).astype(np.float64)
    return float(np.max(np.abs(dy), initial=0.0)) * float(np.max(factor, initial=0.0))


def _bn_grad_scales(layer, dy):
    """The sums of magnitudes behind ``grad weight`` (|x - mean| |dy| invstd) and ``grad bias`` (|dy|)."""
    last = layer._last
    x, mean, invstd = (last[k].astype(np.float64) for k in ("x", "mean", "invstd"))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    axes = tuple(i for i in range(x.ndim) if i != 1)
    weight = (np.abs(x - mean.reshape(shape)) * np.abs(dy)).sum(axis=axes) * invstd
    return {"weight": float(weight.max()), "bias": float(np.abs(dy).sum(axis=axes).max())}


def batch_norm_case(cmp, rng, dtype, shape, momentum=0.1, calls=1, eval_after=True):
    """One BatchNorm case: random x, weight, bias, running stats; ``calls`` training calls."""
    from ..torch import nn as ours_nn

    torch = _torch()
    c = shape[1]
    cls = "BatchNorm2d" if len(shape) == 4 else "BatchNorm1d"
    tdtype = getattr(torch, np.dtype(dtype).name)
    ours = getattr(ours_nn, cls)(c, momentum=momentum)
    ref = getattr(torch.nn, cls)(c, momentum=momentum, dtype=tdtype)
    w, b = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    rm, rv = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2.0, c).astype(dtype)
    ours.to(dtype)
    ours.weight[...], ours.bias[...], ours.running_mean[...], ours.running_var[...] = w, b, rm, rv
    for name, v in (("weight", w), ("bias", b), ("running_mean", rm), ("running_var", rv)):
        _param(ref, name, v, torch)
    exact_backward = len(shape) == 2 or int(np.prod(shape[2:])) == 1
    # float64 with planes (L or H*W > 1): a few results 1 ULP off in about one case in three
    # (the variance's double sum: not pinned down); float32 and (N, C) inputs are exact
    exact_forward = exact_backward or np.dtype(dtype) == np.float32
    for _ in range(calls):
        x = (rng.standard_normal(shape) * rng.uniform(0.1, 10) + rng.uniform(-5, 5)).astype(dtype)
        dy = rng.standard_normal(shape).astype(dtype)
        xt = torch.from_numpy(x).requires_grad_(True)
        yt = ref(xt)
        yt.backward(torch.from_numpy(dy))
        y = ours(x)
        dx = ours.backward(dy)
        if exact_forward:
            cmp.exact("y", y, yt.detach().numpy())
            cmp.exact("running_var", ours.running_var, ref.running_var.numpy())
        else:
            cmp.bounded("BatchNorm float64 planes y", y, yt.detach().numpy())
            cmp.bounded("BatchNorm float64 planes running_var", ours.running_var, ref.running_var.numpy())
        cmp.exact("running_mean", ours.running_mean, ref.running_mean.numpy())
        if exact_backward:
            cmp.exact("dx", dx, xt.grad.numpy())
        else:
            cmp.bounded("BatchNorm dx", dx, xt.grad.numpy(), _dx_scale(ours, dy))
        grad_scales = _bn_grad_scales(ours, dy)
        for k in ("weight", "bias"):
            g, tg = ours.grads[k], getattr(ref, k).grad.numpy()
            if exact_backward:
                cmp.exact(f"grad {k}", g, tg)
            else:
                cmp.bounded("BatchNorm grads", g, tg, grad_scales[k])
            getattr(ref, k).grad = None
    if eval_after:
        ours.eval(), ref.eval()
        x = rng.standard_normal(shape).astype(dtype)
        dy = rng.standard_normal(shape).astype(dtype)
        xt = torch.from_numpy(x).requires_grad_(True)
        yt = ref(xt)
        yt.backward(torch.from_numpy(dy))
        if exact_forward:
            cmp.exact("eval y", ours(x), yt.detach().numpy())
        else:
            cmp.bounded("BatchNorm float64 planes y", ours(x), yt.detach().numpy())
        dx = ours.backward(dy)
        if exact_backward:
            cmp.exact("eval dx", dx, xt.grad.numpy())
        else:
            cmp.bounded("BatchNorm dx", dx, xt.grad.numpy(), _dx_scale(ours, dy))


def layer_norm_case(cmp, rng, dtype, shape, normalized):
    from ..torch import nn as ours_nn

    torch = _torch()
    tdtype = getattr(torch, np.dtype(dtype).name)
    ours, ref = ours_nn.LayerNorm(normalized), torch.nn.LayerNorm(normalized, dtype=tdtype)
    w = rng.standard_normal(normalized).astype(dtype)
    b = rng.standard_normal(normalized).astype(dtype)
    ours.to(dtype)
    ours.weight[...], ours.bias[...] = w, b
    _param(ref, "weight", w, torch), _param(ref, "bias", b, torch)
    # |mean| / std of a row up to about 2: the error of any order grows with that ratio
    # (``y`` and ``dx`` subtract terms of size ratio * output), in torch as here
    x = ((rng.standard_normal(shape) + rng.uniform(-2, 2)) * 10.0 ** rng.uniform(-2, 2)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = ref(xt)
    yt.backward(torch.from_numpy(dy))
    y = ours(x)
    last = ours._last
    rstd, wabs = last["rstd"].astype(np.float64), np.abs(last["w"]).astype(np.float64)
    terms = np.abs(last["rows"].astype(np.float64)) * rstd * wabs + np.abs(b.reshape(1, -1))
    cmp.bounded("LayerNorm y", y, yt.detach().numpy(), np.max(terms))  # the terms of x*rstd*w + ... + b
    rows, d = last["rows"].astype(np.float64), np.abs(dy.reshape(last["rows"].shape)).astype(np.float64)
    # dx = rstd * dy * w + b * x + c: the last two terms are of size |x| * rstd times the first
    dx_terms = (d * wabs).max(axis=1, keepdims=True) * rstd * (2 + np.abs(rows).max(axis=1, keepdims=True) * rstd)
    cmp.bounded("LayerNorm dx", ours.backward(dy), xt.grad.numpy(), np.max(dx_terms))
    # torch forms x * rstd - mean * rstd: its rounding is eps * (|x| + |mean|) * rstd
    centered = (np.abs(rows) + np.abs(last["mean"].astype(np.float64))) * rstd
    scales = {"weight": np.max((d * centered).sum(axis=0)), "bias": np.max(d.sum(axis=0))}
    for k in ("weight", "bias"):
        cmp.bounded("LayerNorm grads", ours.grads[k], getattr(ref, k).grad.numpy(), scales[k])


def dropout_case(cmp, rng, dtype, shape, p):
    from ..torch import nn as ours_nn

    torch = _torch()
    x = rng.standard_normal(shape).astype(dtype)
    x[x == 0] = 1  # so that torch's mask can be read off its output
    dy = rng.standard_normal(shape).astype(dtype)
    torch.manual_seed(int(rng.integers(2**31)))
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = torch.nn.Dropout(p)(xt)
    yt.backward(torch.from_numpy(dy))
    keep = yt.detach().numpy() != 0
    layer = ours_nn.Dropout(p)
    cmp.exact("y", layer(x, keep=keep), yt.detach().numpy())
    cmp.exact("dx", layer.backward(dy), xt.grad.numpy())


def _grad_list(rng, dtype):
    scale = 10.0 ** rng.uniform(-3, 3)
    shapes = [(), (1,), (7, 13), (int(rng.integers(1, 300)),), (int(rng.integers(1, 5000)),)]
    return [np.array(rng.standard_normal(s) * scale, dtype=dtype) for s in shapes]


def clip_norm_case(cmp, rng, dtype, norm_type):
    from ..torch.nn import utils

    torch = _torch()
    grads = _grad_list(rng, dtype)
    total_norm = float(utils.get_total_norm([g.copy() for g in grads], norm_type))
    max_norm = float(total_norm * rng.choice([0.1, 0.5, 2.0]))
    params = [torch.zeros(g.shape, dtype=getattr(torch, np.dtype(dtype).name), requires_grad=True) for g in grads]
    for p, g in zip(params, grads, strict=True):
        p.grad = torch.from_numpy(g.copy())
    ref_total = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type, foreach=False)
    total = utils.clip_grad_norm_(grads, max_norm, norm_type=norm_type)
    if np.dtype(dtype) == np.float32 and norm_type == 2.0:
        # exact per tensor of >= 8 elements; ATen's path for shorter vectors (and so the stack
        # of < 8 per-tensor norms) is not pinned down: the total is 1 ULP off in ~4% of draws
        cmp.bounded("clip_grad_norm_ float32 norm 2", np.asarray(total), ref_total.numpy())
        for g, p in zip(grads, params, strict=True):
            cmp.bounded("clip_grad_norm_ float32 norm 2", g, p.grad.numpy())
        return
    cmp.exact(f"total norm {norm_type:g}", np.asarray(total), ref_total.numpy())
    for g, p in zip(grads, params, strict=True):
        cmp.exact(f"grads {norm_type:g}", g, p.grad.numpy())


def clip_value_case(cmp, rng, dtype):
    from ..torch.nn import utils

    torch = _torch()
    grads = _grad_list(rng, dtype)
    v = float(np.abs(grads[2]).mean())
    params = [torch.zeros(g.shape, dtype=getattr(torch, np.dtype(dtype).name), requires_grad=True) for g in grads]
    for p, g in zip(params, grads, strict=True):
        p.grad = torch.from_numpy(g.copy())
    torch.nn.utils.clip_grad_value_(params, v, foreach=False)
    utils.clip_grad_value_(grads, v)
    for g, p in zip(grads, params, strict=True):
        cmp.exact("grads", g, p.grad.numpy())


def run_torch_nn_row(component, dtype, steps=20, seed=0):
    """One row of ``TORCH_NN_ROWS`` in ``dtype`` over ``steps`` random cases: a ``parity.Row``."""
    return compare_torch_nn(component, dtype, steps, seed).finish()


def compare_torch_nn(component, dtype, steps=20, seed=0):
    """The ``Comparison`` behind ``run_torch_nn_row``: ``.misses`` (exact arrays that were
    not the same bits), ``.worst`` (bounded arrays' errors), ``.within_bounds()``."""
    dtype = np.dtype(dtype)
    rng = np.random.default_rng([seed, [c for c, _ in TORCH_NN_ROWS].index(component), dtype.itemsize])
    cmp = Comparison(component, dtype.name, steps)
    for _ in range(steps):
        n, c = int(rng.integers(2, 40)), int(rng.integers(1, 20))
        if component == "BatchNorm1d (N, C)":
            batch_norm_case(cmp, rng, dtype, (n, c))
        elif component == "BatchNorm1d (N, C, L)":
            batch_norm_case(cmp, rng, dtype, (n, c, int(rng.integers(1, 40))))
        elif component == "BatchNorm2d":
            batch_norm_case(cmp, rng, dtype, (n // 4 + 1, c, int(rng.integers(1, 9)), int(rng.integers(1, 9))))
        elif component == "BatchNorm1d momentum=None":
            batch_norm_case(cmp, rng, dtype, (n, c), momentum=None, calls=3)
        elif component == "LayerNorm":
            normalized = tuple(int(d) for d in rng.integers(1, 12, size=int(rng.integers(1, 3))))
            layer_norm_case(cmp, rng, dtype, (n,) + normalized, normalized)
        elif component == "Dropout":
            dropout_case(cmp, rng, dtype, (n, c), float(rng.choice([0.1, 0.3, 0.5, 0.7])))
        elif component == "clip_grad_norm_":
            for norm_type in (2.0, 1.0, float("inf")):
                clip_norm_case(cmp, rng, dtype, norm_type)
        elif component == "clip_grad_value_":
            clip_value_case(cmp, rng, dtype)
        else:
            raise ValueError(f"unknown component {component!r}; the rows are {[c for c, _ in TORCH_NN_ROWS]}")
    return cmp


def run_all(steps=20):
    """Every row, float32 and float64."""
    return [run_torch_nn_row(c, d, steps) for c, _ in TORCH_NN_ROWS for d in ("float32", "float64")]


__all__ = ["BOUNDS", "TORCH_NN_ROWS", "compare_torch_nn", "run_all", "run_torch_nn_row", "same_bits", "scaled_error"]
