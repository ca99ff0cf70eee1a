"""Where a fused CuPy Adam step's time goes: ``python benchmarks/gpu_step_overhead.py``.

Needs CuPy and a CUDA device (torch too, for its row). For float32 Adam at 1e3, 1e7 and
1e8 elements it times, with CUDA events around each call (medians of 50 after 5 warm-up
calls), one after the other in the same process:

* ``opt.apply``: the whole scratchopt step (checks, learning rate, scalars, the kernel);
* the kernel alone: the same ``ElementwiseKernel`` called with the step's scalars;
* an empty kernel: an ``ElementwiseKernel`` that does nothing on the same arrays (CuPy's
  launch cost with this many arguments);
* ``torch.optim.Adam(fused=True).step()`` on one tensor of the same size;
* and, for the bytes, the device-to-device copy of 28 bytes per element (Adam's traffic).

The difference between the first two rows is scratchopt's Python; between the second
and third, the memory traffic of the rule itself.
"""

import statistics

import numpy as np

from scratchopt.optimizers import Adam
from scratchopt.optimizers.engine import fused_gpu
from scratchopt.tools.bench.timing import cupy_event_timer, fixed, measure


def timed(cupy, step, repeats=50, warmup=5):
    """Median seconds of ``repeats`` calls, after ``warmup`` untimed ones (the bench's timer)."""
    return statistics.median(measure(step, fixed(repeats, warmup=warmup), cupy_event_timer(cupy)))


def main():
    import cupy

    try:
        import torch
    except ImportError:
        torch = None
    print(f"{'elements':>10} {'opt.apply':>12} {'kernel':>12} {'empty kernel':>13} {'torch fused':>12} "
          f"{'copy 28 B/el':>13}")
    for n in (10**3, 10**7, 10**8):
        rng = cupy.random.default_rng(0)
        params = [rng.standard_normal(n, dtype=cupy.float32)]
        grads = [rng.standard_normal(n, dtype=cupy.float32)]
        opt = Adam(0.001)
        opt.apply(grads, params)
        t_apply = timed(cupy, lambda: opt.apply(grads, params))
        scalars = opt.scalars(np.float32(0.001), opt.iterations, np.dtype(np.float32))
        kernel = fused_gpu._kernels.get(type(opt).update, (False, False, False, False, True), tuple(scalars), ())
        m, v = (opt._slots[0][k] for k in ("m", "v"))
        values = [np.float32(x) for x in scalars.values()]
        t_kernel = timed(cupy, lambda: kernel(grads[0], *values, params[0], m, v))
        text = fused_gpu.trace(type(opt).update, (False, False, False, False, True), tuple(scalars), {})
        empty = cupy.ElementwiseKernel(text.in_params, text.out_params, "", "scratchopt_empty")
        t_empty = timed(cupy, lambda: empty(grads[0], *values, params[0], m, v))
        t_torch = float("nan")
        if torch is not None and torch.cuda.is_available():
            w = torch.zeros(n, device="cuda", requires_grad=True)
            w.grad = torch.randn(n, device="cuda")
            topt = torch.optim.Adam([w], lr=0.001, eps=1e-7, fused=True)
            t_torch = timed(cupy, topt.step)
        src = cupy.empty(7 * n, cupy.float32)
        dst = cupy.empty_like(src)
        t_copy = timed(cupy, lambda: cupy.copyto(dst, src)) / 2  # a copy reads and writes: 2x the bytes
        print(f"{n:>10.0e} " + " ".join(f"{t * 1e6:>10.1f}us" for t in (t_apply, t_kernel, t_empty, t_torch))
              + f" {t_copy * 1e6:>11.1f}us", flush=True)


if __name__ == "__main__":
    main()
