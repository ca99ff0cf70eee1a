"""How far the GPU paths end from the NumPy path: ``python benchmarks/gpu_vs_cpu.py [--out F]``.

Needs CuPy and a CUDA device. For every optimizer, with options that are purely
elementwise and with the norm clippings (whose sums a GPU adds in another order), in
float32 and float64, it runs 20 steps from the same params and gradients on three paths,
the NumPy reference on the CPU, the CuPy array path and the fused CuPy kernel, and prints
the largest difference of the final params and slots in ULPs (``numerics.ulp_distance``)
and relative to the largest magnitude of the array. A third case feeds subnormal
gradients: the CPU flushes them to zero (as TF's CPU kernels do), the GPU does not.
``parity_tests/test_fused_gpu.py`` and ``test_gpu.py`` take their bounds from this output
(``benchmarks/results/<gpu>/gpu_vs_cpu.json``).
"""

import argparse
import json
import sys

import numpy as np

from scratchopt import optimizers
from scratchopt.numerics import ulp_distance

CONFIGS = [
    ("SGD", {"momentum": 0.9, "nesterov": True}),
    ("Adam", {}),
    ("Adam", {"amsgrad": True}),
    ("AdamW", {}),
    ("RMSprop", {"centered": True, "momentum": 0.9}),
]
OPTIONS = {"elementwise": {}, "clipnorm": {"clipnorm": 1.0}, "global_clipnorm": {"global_clipnorm": 1.0}}
SHAPES = [(), (7,), (64, 33), (100_003,)]
STEPS = 20


def inputs(dtype, case, seed=0):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    steps = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(STEPS)]
    if case == "subnormal":
        tiny = float(np.finfo(dtype).smallest_normal)
        steps = [[(g * tiny / 4).astype(dtype) for g in grads] for grads in steps]
    return params, steps


def final_state(name, kwargs, params, steps, xp, backend):
    opt = getattr(optimizers, name)(learning_rate=0.01, **kwargs)
    opt.backend = backend
    params = [xp.array(p, copy=True) for p in params]  # the caller's arrays stay as they are
    for grads in steps:
        opt.apply([xp.asarray(g) for g in grads], params)
    slots = [s[k] for s in opt.state_dict()["slots"] for k in sorted(s)]
    to_numpy = (lambda a: a) if xp is np else xp.asnumpy
    return [to_numpy(a) for a in params + slots]


def compare(reference, other):
    ulps = max(float(np.max(ulp_distance(a, b), initial=0)) for a, b in zip(reference, other))
    relative = max(float(np.max(np.abs(a.astype(np.float64) - b) / max(np.max(np.abs(a)), 1e-300), initial=0))
                   for a, b in zip(reference, other))
    return ulps, relative


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    import cupy

    rows = []
    print(f"{'optimizer':36} {'dtype':8} {'case':16} {'array vs numpy':>20} {'fused vs numpy':>20} "
          f"{'fused vs array':>15}")
    for name, kwargs in CONFIGS:
        for option, extra in OPTIONS.items():
            for dtype in (np.float32, np.float64):
                cases = ["ordinary", "subnormal"] if option == "elementwise" else ["ordinary"]
                for case in cases:
                    params, steps = inputs(dtype, case)
                    settings = {**kwargs, **extra}
                    cpu = final_state(name, settings, params, steps, np, "numpy")
                    array = final_state(name, settings, params, steps, cupy, "numpy")
                    fused = final_state(name, settings, params, steps, cupy, "auto")
                    row = {"optimizer": name, "options": settings, "dtype": np.dtype(dtype).name,
                           "case": case if option == "elementwise" else option, "steps": STEPS,
                           "array_vs_numpy": compare(cpu, array), "fused_vs_numpy": compare(cpu, fused),
                           "fused_vs_array": compare(array, fused)}
                    rows.append(row)
                    label = f"{name}({', '.join(f'{k}={v}' for k, v in settings.items())})"
                    cells = [f"{u:g} ulp {r:.1e}" for u, r in (row["array_vs_numpy"], row["fused_vs_numpy"])]
                    print(f"{label:36.36} {row['dtype']:8} {row['case']:16} {cells[0]:>20} {cells[1]:>20} "
                          f"{row['fused_vs_array'][0]:>11g} ulp", flush=True)
    if args.out:
        device = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
        with open(args.out, "w") as f:
            json.dump({"device": device.decode() if isinstance(device, bytes) else device,
                       "cupy": cupy.__version__, "numpy": np.__version__, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
