"""Measure how far ``scratchopt.torch.nn`` is from torch 2.13 where the bits are not reproduced.

    python parity_tests/measure_torch_nn.py [cases per row, default 200]

Runs every row of ``scratchopt.tools.parity_torch_nn.TORCH_NN_ROWS`` in float32 and
float64 over many seeded random cases and prints, per row, whether it was exact, the
largest ULP distance, and for each bounded array the worst error in epsilons of its scale
(what ``BOUNDS`` and ``parity_tests/test_torch_nn.py`` assert). The bounds in ``BOUNDS``
were chosen from this script's output (rounded up, with headroom) on torch 2.13.0+cpu.
"""

import sys
import time

from scratchopt.tools.parity_torch_nn import (  # noqa: F401
    BOUNDS,
    TORCH_NN_ROWS,
    Comparison,
    run_torch_nn_row,
)


def main(steps=200):
    worst = {}
    for component, _ in TORCH_NN_ROWS:
        for dtype in ("float32", "float64"):
            start = time.perf_counter()
            row = run_torch_nn_row(component, dtype, steps=steps, seed=12345)
            print(f"{component:28s} {dtype}  exact={row.exact!s:5s} max_ulp={row.max_ulp:<12g} "
                  f"{time.perf_counter() - start:5.1f}s  {row.note}")
            for part in row.note.split("; "):
                if " eps of scale" in part:
                    key, value = part.split(": ")
                    worst[key] = max(worst.get(key, 0.0), float(value.split()[0]))
    print("\nworst, against the bounds:")
    for key, value in sorted(worst.items()):
        print(f"  {key:45s} {value:8.2f}  (bound {BOUNDS[key]:g})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
