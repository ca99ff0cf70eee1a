"""Measure how far stock torch 2.13 (CPU) is from scratchopt.torch, and why.

Run: ``python parity_tests/measure_torch.py [steps] [seeds]`` (defaults 500 and 3). Prints:

1. ``Tensor.sqrt`` against a correctly rounded sqrt (NumPy's), float32 and float64: the
   share of elements off and the largest distance in ULP (MKL's vector sqrt).
2. Per optimizer config and dtype, against torch ``foreach=False``:
   - with torch's sqrt replaced by an IEEE one: must be 0 ULP (bit-exact);
   - stock torch, one step from the same state (re-synced every step), and free-running for
     ``steps`` steps: the largest raw ULP distance and the largest distance in ULPs of the
     slot's scale over all tensors (``parity_torch.scale_ulp``) over every parameter and state slot.
3. torch's ``foreach=True`` and ``fused=True`` against ``foreach=False`` (all stock torch).

The bounds in ``scratchopt/tools/parity_torch.py`` (``STOCK_SQRT_*``) and the tests in
``parity_tests/test_torch_optim.py`` come from this script's output.
"""

import sys

import numpy as np

from scratchopt.numerics import ulp_distance
from scratchopt.tools.parity import Row
from scratchopt.tools.parity_torch import (
    OPTIMIZER_CONFIGS,
    TorchPair,
    quadratic_grads,
    run_pair,
    scale_ulp,
    torch_module,
)


def measure_sqrt():
    torch = torch_module()
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        x = np.abs(rng.standard_normal(1_000_003) * 10.0 ** rng.uniform(-8, 4, 1_000_003)).astype(dtype)
        d = ulp_distance(torch.from_numpy(x).sqrt().numpy(), np.sqrt(x))
        print(f"sqrt {np.dtype(dtype).name}: {np.mean(d > 0):.3%} of 1,000,003 off, max {d.max():g} ULP")


def scaled_run(name, kwargs, dtype, steps, seed, resync, torch_kwargs=None):
    """(raw max ULP, max scale-ULP) of stock torch vs scratchopt (or vs another torch path)."""
    pair = TorchPair(name, kwargs, dtype, seed, torch_kwargs=torch_kwargs)
    rng_a, rng_b = np.random.default_rng(seed + 1), np.random.default_rng(seed + 1)
    raw, scaled = 0.0, 0.0
    for _ in range(steps):
        if resync:
            pair.sync()
        pair.step(quadratic_grads(pair.params, rng_a, dtype),
                  quadratic_grads([p.detach().numpy() for p in pair.tparams], rng_b, dtype))
        for _, a, b in pair.pairs():
            raw = max(raw, float(np.max(ulp_distance(a, b), initial=0)))
        for _, a, b in pair.slots():
            scaled = max(scaled, scale_ulp(a, b))
    return raw, scaled


def torch_vs_torch(name, kwargs, dtype, steps, seed, variant):
    """Two torch optimizers (foreach=False vs ``variant``) on the same data: raw and scale ULP."""
    torch = torch_module()
    rng = np.random.default_rng(seed)
    base = [rng.standard_normal(s).astype(dtype) for s in [(), (1,), (7, 13), (1003,)]]
    a = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in base]
    b = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in base]
    oa = getattr(torch.optim, name)(a, **kwargs, foreach=False)
    ob = getattr(torch.optim, name)(b, **kwargs, **variant)
    grng = np.random.default_rng(seed + 1)
    raw, scaled = 0.0, 0.0
    for _ in range(steps):
        grads = quadratic_grads([p.detach().numpy() for p in a], grng, dtype)
        for p, q, g in zip(a, b, grads):
            p.grad = torch.from_numpy(np.array(g, copy=True))
            q.grad = torch.from_numpy(np.array(g, copy=True))  # same gradient: compare the update only
        oa.step()
        ob.step()
        xs = np.concatenate([q.detach().numpy().ravel() for q in b])
        ys = np.concatenate([p.detach().numpy().ravel() for p in a])
        raw = max(raw, float(np.max(ulp_distance(xs, ys), initial=0)))
        scaled = max(scaled, scale_ulp(xs, ys))
    return raw, scaled


def main(steps=500, seeds=3):
    measure_sqrt()
    worst = {"one-step": 0.0, "free": 0.0}
    print(f"\n{'optimizer':80s} {'dtype':8s} ieee  one-step raw/scale   {steps}-step raw/scale")
    for name, kwargs in OPTIMIZER_CONFIGS:
        for dtype in ("float32", "float64"):
            ieee = Row("", dtype, steps, 0.0, 0.0, True)
            one, free = (0.0, 0.0), (0.0, 0.0)
            for seed in range(seeds):
                run_pair(name, kwargs, dtype, steps, seed=seed, sqrt="ieee", row=ieee)
                one = tuple(map(max, one, scaled_run(name, kwargs, np.dtype(dtype), steps, seed, True)))
                free = tuple(map(max, free, scaled_run(name, kwargs, np.dtype(dtype), steps, seed, False)))
            worst["one-step"] = max(worst["one-step"], one[1])
            worst["free"] = max(worst["free"], free[1])
            print(f"{name + ' ' + str(kwargs):80s} {dtype:8s} {'0' if ieee.exact else ieee.max_ulp:>4}  "
                  f"{one[0]:>8g} / {one[1]:<8.3g}  {free[0]:>10g} / {free[1]:<8.3g}", flush=True)
    print(f"\nworst scale-ULP: one step {worst['one-step']:.3g}, free-running {worst['free']:.3g}")
    print("\nforeach=True and fused=True vs foreach=False (stock torch, same gradients):")
    for name, kwargs in OPTIMIZER_CONFIGS:
        for dtype in ("float32", "float64"):
            fe = torch_vs_torch(name, kwargs, np.dtype(dtype), steps, 0, {"foreach": True})
            if name == "RMSprop":  # torch 2.13's RMSprop has no fused path
                fused = "fused: none in torch"
            else:
                fu = torch_vs_torch(name, kwargs, np.dtype(dtype), steps, 0, {"fused": True})
                fused = f"fused raw {fu[0]:g} scale {fu[1]:.3g}"
            print(f"{name + ' ' + str(kwargs):80s} {dtype:8s} foreach raw {fe[0]:g}   {fused}", flush=True)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
