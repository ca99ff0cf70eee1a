"""How far the textbook forms end up from Keras's (= scratchopt's): the numbers in the boxes.

    python docs/textbook_gap.py [--steps 200] [--size 10000]

Both run in float64 from the same N(0,1) start on the same N(0,1) gradients, with the
hyper-parameters written the same way (Keras's defaults unless the row says otherwise).
The textbook side is ``scratchopt.textbook`` (the papers' and PyTorch's forms); the Keras
side is scratchopt's optimizer, bit-identical to Keras. Printed: the largest absolute
difference in any weight over all steps, and the step size for scale.
"""

import os
import sys

# Run as ``python docs/textbook_gap.py``, docs/ is first on sys.path, where docs/numbers.py
# would stand in for the standard library's ``numbers`` (which NumPy imports): take docs/ out.
if sys.path and os.path.abspath(sys.path[0] or os.curdir) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import argparse

import numpy as np

from scratchopt import textbook
from scratchopt.optimizers import SGD, Adam, AdamW, RMSprop


def halving(step):
    """0.01, halved every 50 steps: a schedule, to show where SGD's conventions part."""
    return 0.01 * 0.5 ** (step // 50)


def constant(step):
    return 0.01


ROWS = [
    # (label, Keras-side optimizer, textbook step(g, w, state, t, lr) -> (w, state), state size)
    ("SGD", lambda: SGD(0.01), lambda g, w, s, t, lr: textbook.sgd(g, w, s[0], lr=lr), 1, constant),
    ("SGD momentum=0.9", lambda: SGD(0.01, momentum=0.9),
     lambda g, w, s, t, lr: textbook.sgd(g, w, s[0], lr=lr, momentum=0.9), 1, constant),
    ("SGD momentum=0.9, halving lr", lambda: SGD(halving, momentum=0.9),
     lambda g, w, s, t, lr: textbook.sgd(g, w, s[0], lr=lr, momentum=0.9), 1, halving),
    ("SGD Nesterov", lambda: SGD(0.01, momentum=0.9, nesterov=True),
     lambda g, w, s, t, lr: textbook.sgd(g, w, s[0], lr=lr, momentum=0.9, nesterov=True), 1, constant),
    ("Adam", lambda: Adam(0.01),
     lambda g, w, s, t, lr: textbook.adam(g, w, *s, t=t, lr=lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7),
     3, constant),
    ("Adam amsgrad", lambda: Adam(0.01, amsgrad=True),
     lambda g, w, s, t, lr: textbook.adam(g, w, *s, t=t, lr=lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                                          amsgrad=True), 3, constant),
    ("AdamW weight_decay=0.004", lambda: AdamW(0.01),
     lambda g, w, s, t, lr: textbook.adam(g, w, *s, t=t, lr=lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                                          weight_decay=0.004), 3, constant),
    ("RMSprop", lambda: RMSprop(0.01),
     lambda g, w, s, t, lr: textbook.rmsprop(g, w, *s, lr=lr, rho=0.9, epsilon=1e-7), 3, constant),
    ("RMSprop centered, momentum=0.9", lambda: RMSprop(0.01, momentum=0.9, centered=True),
     lambda g, w, s, t, lr: textbook.rmsprop(g, w, *s, lr=lr, rho=0.9, momentum=0.9, epsilon=1e-7,
                                             centered=True), 3, constant),
]


def gap(make, step, state_size, schedule, steps, size):
    rng = np.random.default_rng(0)
    start = rng.standard_normal(size)
    ours, w = [start.copy()], start.copy()
    state = [np.zeros(size) for _ in range(state_size)]
    opt = make()
    worst = 0.0
    for t in range(1, steps + 1):
        g = rng.standard_normal(size)
        w, *state = step(g, w, state, t, schedule(t - 1))
        opt.apply([g], ours)
        worst = max(worst, float(np.max(np.abs(ours[0] - w))))
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--size", type=int, default=10_000)
    args = parser.parse_args()
    print(f"float64, {args.size:,} weights, {args.steps} steps, lr 0.01 unless noted")
    print(f"{'optimizer':34} {'max |keras - textbook|':>24}")
    for label, make, step, state_size, schedule in ROWS:
        print(f"{label:34} {gap(make, step, state_size, schedule, args.steps, args.size):24.2e}")


if __name__ == "__main__":
    main()
