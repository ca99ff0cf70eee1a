"""Where a clipped Adam step's extra time goes (issue 16's "clipped within 1.2x" target).

    python benchmarks/clip_overhead.py [--sizes 1e5 1e7] [--tensors 1 1000] [--repeats 2000] [--rounds 3]

For ``n`` float32 elements in one tensor, or in 1000 tensors ``pack()``ed with their
gradients written into ``packed_gradients()`` (the bench's ``adam_1000`` rows), on the
fused CPU path, in one process; each figure the median over ``--rounds`` rounds of the
median of ``--repeats`` calls (fewer at 1e7), the rounds taken in turn so that a busy
moment of the machine hits every figure alike:

* ``unclipped`` / ``clipped``: ``Adam.apply`` without and with ``global_clipnorm=1``;
* the rule's kernel on the step's own arrays (``fused_cpu.run``): ``plain``; ``scaled``,
  handed a factor (``(s,)``: the multiply in the loop); ``global``, handed the buffer's
  ``clipping_fast.GlobalNorm`` (the factor computed in the same call, as a clipped step
  does);
* what is left of each step outside its kernel run (Python: checks, scalars, dispatch).

So ``global - scaled`` is the norm's read of the gradient, ``scaled - plain`` the
multiply, and ``clipped python - unclipped python`` the clipping's own Python.
"""

import argparse

import numpy as np
from timing import median_ms

from scratchopt import optimizers
from scratchopt.numerics import tf_arithmetic
from scratchopt.optimizers.engine import fused_cpu


def median_us(f, repeats):
    return 1e3 * median_ms(f, repeats)


def step(n, tensors, clip, rng):
    """``(opt, grads, params)`` after one step: Adam over ``tensors`` float32 tensors of
    ``n`` elements in all (packed when more than one)."""
    opt = optimizers.Adam(0.001, global_clipnorm=clip)
    opt.backend = "fused"
    params = [rng.standard_normal(n // tensors, dtype=np.float32) for _ in range(tensors)]
    grads = [rng.standard_normal(n // tensors, dtype=np.float32) for _ in range(tensors)]
    if tensors > 1:
        params, views = opt.pack(params), opt.packed_gradients()
        for view, g in zip(views, grads):
            view[...] = g
        grads = views
    opt.apply(grads, params)
    return opt, grads, params


def kernel_calls(opt, grads):
    """The rule's kernel run on the clipped step's arrays: plain, scaled, and global."""
    norm = opt._clip_in_the_rule(grads, range(len(grads)), True, len(grads) > 1)[0]
    g, var, slots = opt._triples(grads, range(len(grads)), len(grads) > 1)[0][0]
    arrays = [g, var, *slots]
    scalars = opt.scalars(np.float32(0.001), opt.iterations, var.dtype)
    factor = norm.scale(g.reshape(-1))
    return {"plain": lambda: fused_cpu.run(opt.update, arrays, scalars),
            "scaled": lambda: fused_cpu.run(opt.update, arrays, scalars, (factor,)),
            "global": lambda: fused_cpu.run(opt.update, arrays, scalars, norm)}


def measure(n, tensors, repeats, rounds, rng):
    """One line of the report for ``n`` elements in ``tensors`` tensors."""
    plain_opt, plain_grads, plain_params = step(n, tensors, None, rng)
    clip_opt, clip_grads, clip_params = step(n, tensors, 1.0, rng)
    calls = {"unclipped": lambda: plain_opt.apply(plain_grads, plain_params),
             "clipped": lambda: clip_opt.apply(clip_grads, clip_params)}
    kernels = kernel_calls(clip_opt, clip_grads)
    times = {name: [] for name in [*calls, *kernels]}
    for _ in range(rounds):
        for name, call in calls.items():
            times[name].append(median_us(call, repeats))
        with tf_arithmetic():  # as inside a step
            for name, call in kernels.items():
                times[name].append(median_us(call, repeats))
    t = {name: float(np.median(values)) for name, values in times.items()}
    return (f"n={n:.0e}, {tensors} tensor{'s' if tensors > 1 else ''}: unclipped {t['unclipped']:.1f} us, "
            f"clipped {t['clipped']:.1f} us ({t['clipped'] / t['unclipped']:.2f}x); kernel plain {t['plain']:.1f}, "
            f"scaled {t['scaled']:.1f}, global {t['global']:.1f}; python outside the kernel: unclipped "
            f"{t['unclipped'] - t['plain']:.1f}, clipped {t['clipped'] - t['global']:.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1e5", "1e7"])
    parser.add_argument("--tensors", nargs="+", type=int, default=[1, 1000])
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for n in (int(float(s)) for s in args.sizes):
        for tensors in args.tensors:
            print(measure(n, tensors, max(20, min(args.repeats, int(2e8 // n))), args.rounds, rng), flush=True)


if __name__ == "__main__":
    main()
