"""The clipped copy with ordinary stores and with non-temporal ones, at each size.

    python benchmarks/stream_copy.py [--sizes 1e5 1e6 3e6 5e6 7e6 1e7] [--tensors 1 4] [--repeats 400] [--rounds 5]

``clip_by_norm([g], 1.0)`` of ``n`` float32 elements (``--tensors 1``), or
``clip_by_global_norm`` of 4 tensors of ``n / 4`` (``--tensors 4``), as ``scratchopt bench``
times them (called again and again, each call dropping the last one's outputs, which the
next reuses: ``memory.py``), in one process, the copies written two ways:

* ``cached``: the engine's compiled ``_copy`` pass (``engine.run``), ordinary stores;
* ``streamed``: ``engine.stream_copy``, non-temporal stores;

each also followed by a read of the clipped copies (``np.dot(out, out)``, as the
optimizer's step that takes them reads them next: a streamed copy is not in the cache any
more), and ``torch clip_grad_norm_(foreach=True)`` (in place), the bench's best peer at 1e7.
Each figure is the median over ``--rounds`` rounds of the median of ``--repeats`` calls
(fewer for big ``n``), the rounds taken in turn so that a busy moment hits every figure
alike. ``stream_copy.MIN_BYTES`` is where ``streamed`` starts to win.
"""

import argparse

import numpy as np
from timing import medians_in_turn

from scratchopt.clipping import clip_by_global_norm, clip_by_norm
from scratchopt.optimizers.engine import stream_copy


def clipped(grads, streamed, then_read=False):
    """``clip_by_norm`` of one tensor, ``clip_by_global_norm`` of more, the copies
    ``streamed`` or not whatever their size, and read back when ``then_read``."""
    stream_copy.MIN_BYTES = 0 if streamed else 1 << 62  # (restored by main)
    outs = (clip_by_norm if len(grads) == 1 else clip_by_global_norm)(grads, 1.0)
    if then_read:
        for out in outs:
            np.dot(out, out)


def measure(n, tensors, repeats, rounds, rng):
    g = [rng.standard_normal(n // tensors, dtype=np.float32) for _ in range(tensors)]
    calls = {"cached": lambda: clipped(g, False), "streamed": lambda: clipped(g, True),
             "cached+read": lambda: clipped(g, False, True), "streamed+read": lambda: clipped(g, True, True)}
    try:
        import torch

        params = [torch.nn.Parameter(torch.zeros(n // tensors)) for _ in range(tensors)]
        for p, grad in zip(params, g):
            p.grad = torch.from_numpy(grad.copy())
        calls["torch"] = lambda: torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
    except ImportError:
        pass
    t = {name: 1e3 * ms for name, ms in medians_in_turn(calls, repeats, rounds).items()}
    line = (f"n={n:.0e} ({4 * n / 2**20:.1f} MiB), {tensors} tensor{'s' if tensors > 1 else ''}: cached {t['cached']:.1f} us, streamed {t['streamed']:.1f} us "
            f"(streamed / cached {t['streamed'] / t['cached']:.2f}); then read: cached {t['cached+read']:.1f}, "
            f"streamed {t['streamed+read']:.1f} ({t['streamed+read'] / t['cached+read']:.2f})")
    if "torch" in t:
        line += (f"; torch in place {t['torch']:.1f} us (cached / torch {t['cached'] / t['torch']:.2f}, "
                 f"streamed / torch {t['streamed'] / t['torch']:.2f})")
    return line


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1e5", "1e6", "3e6", "5e6", "7e6", "1e7"])
    parser.add_argument("--tensors", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--repeats", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    chosen = stream_copy.MIN_BYTES
    print(f"# stream_copy.MIN_BYTES = {chosen} ({chosen / 2**20:g} MiB)")
    try:
        for n in (int(float(s)) for s in args.sizes):
            for tensors in args.tensors:
                print(measure(n, tensors, max(20, min(args.repeats, int(4e8 // n))), args.rounds, rng), flush=True)
    finally:
        stream_copy.MIN_BYTES = chosen


if __name__ == "__main__":
    main()
