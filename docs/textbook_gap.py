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
import math

import numpy as np

from scratchopt import textbook
from scratchopt.optimizers import (
    SGD,
    Adadelta,
    Adafactor,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    Ftrl,
    Lamb,
    Lion,
    Nadam,
    RMSprop,
    ScheduleFreeAdamW,
)


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


# --- issue 17's optimizers: each textbook form keeps its own state (a closure) -----------------


def nadam_paper(size, lr=0.01, b1=0.9, b2=0.999, eps=1e-7):
    """Dozat (2016), Alg. 2, with the paper's schedule mu_t = b1 (1 - 0.5 * 0.96**(t/250))."""
    m, v, prod = np.zeros(size), np.zeros(size), [1.0]

    def step(g, w, t):
        mu, mu_next = (b1 * (1 - 0.5 * 0.96 ** (s / 250)) for s in (t, t + 1))
        prod[0] *= mu
        m[:] = b1 * m + (1 - b1) * g
        v[:] = b2 * v + (1 - b2) * g**2
        m_hat = mu_next * m / (1 - prod[0] * mu_next) + (1 - mu) * g / (1 - prod[0])
        return w - lr * m_hat / (np.sqrt(v / (1 - b2**t)) + eps)
    return step


def adamax_paper(size, lr=0.01, b1=0.9, b2=0.999):
    m, u = np.zeros(size), np.zeros(size)

    def step(g, w, t):
        m[:] = b1 * m + (1 - b1) * g
        u[:] = np.maximum(b2 * u, np.abs(g))
        return w - (lr / (1 - b1**t)) * m / u
    return step


def adagrad_torch(size, lr=0.01, eps=1e-7):
    """Duchi et al.; PyTorch: the sum starts at 0, epsilon outside the root."""
    total = np.zeros(size)

    def step(g, w, t):
        total[:] += g**2
        return w - lr * g / (np.sqrt(total) + eps)
    return step


def adadelta_paper(size, rho=0.95, eps=1e-7):
    """Zeiler (2012), Alg. 1: no learning rate."""
    eg, edx = np.zeros(size), np.zeros(size)

    def step(g, w, t):
        eg[:] = rho * eg + (1 - rho) * g**2
        dx = -np.sqrt(edx + eps) / np.sqrt(eg + eps) * g
        edx[:] = rho * edx + (1 - rho) * dx**2
        return w + dx
    return step


def lion_paper(size, lr=0.001, b1=0.9, b2=0.99, wd=0.1):
    m = np.zeros(size)

    def step(g, w, t):
        c = b1 * m + (1 - b1) * g
        m[:] = b2 * m + (1 - b2) * g
        return w - lr * (np.sign(c) + wd * w)
    return step


def schedule_free_paper(size, start, lr=0.0025, b1=0.9, b2=0.999, eps=1e-8):
    """Defazio et al. (2024), Alg. 1 without warmup: x_old from the old z."""
    z, v = start.copy(), np.zeros(size)

    def step(g, w, t):
        v[:] = b2 * v + (1 - b2) * g**2
        z_old = z.copy()
        z[:] = z - lr * g / (np.sqrt(v / (1 - b2**t)) + eps)
        x_old = (w - (1 - b1) * z_old) / b1
        x = (1 - 1 / t) * x_old + (1 / t) * z
        return (1 - b1) * z + b1 * x
    return step


def ftrl_paper(size, lr=0.01, l1=0.001, l2=0.01, initial=0.1):
    """McMahan et al. (2013), Alg. 1 (per-coordinate rates, p = 1/2), with the sign form."""
    n, z = np.full(size, initial), np.zeros(size)

    def step(g, w, t):
        n_new = n + g**2
        z[:] = z + g - (np.sqrt(n_new) - np.sqrt(n)) / lr * w
        n[:] = n_new
        return np.where(np.abs(z) <= l1, 0.0, -(z - np.sign(z) * l1) / (np.sqrt(n) / lr + 2 * l2))
    return step


def lamb_paper(size, lr=0.01, b1=0.9, b2=0.999, eps=1e-7, wd=0.01):
    """You et al. (2020), Alg. 2: the decay inside the trust ratio, phi = identity."""
    m, v = np.zeros(size), np.zeros(size)

    def step(g, w, t):
        m[:] = b1 * m + (1 - b1) * g
        v[:] = b2 * v + (1 - b2) * g**2
        r = (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps) + wd * w
        return w - lr * np.linalg.norm(w) / np.linalg.norm(r) * r
    return step


def adafactor_paper(size, lr=0.001, decay=-0.8, eps_1=1e-30, eps_2=1e-3, d=1.0):
    """Shazeer & Stern (2018), Alg. 4 on a (gcd(size, 100), ...) matrix: row and column *sums*,
    V = R C / sum(R)."""
    rows = math.gcd(size, 100)
    r, c = np.zeros(rows), np.zeros(size // rows)

    def step(g, w, t):
        g, w2 = g.reshape(rows, -1), w.reshape(rows, -1)
        rho = min(lr, 1 / np.sqrt(t))
        alpha = max(eps_2, np.sqrt(np.mean(w2**2))) * rho
        beta = 1 - t**decay
        g2 = g**2 + eps_1
        r[:] = beta * r + (1 - beta) * g2.sum(axis=1)
        c[:] = beta * c + (1 - beta) * g2.sum(axis=0)
        u = g / np.sqrt(np.outer(r, c) / r.sum())
        u = u / max(1.0, np.sqrt(np.mean(u**2)) / d)
        return (w2 - alpha * u).reshape(-1)
    return step


MORE_ROWS = [
    # (label, Keras-side optimizer, textbook step factory(size, start) -> step(g, w, t) -> w)
    ("Nadam (paper's 0.96**(t/250))", lambda: Nadam(0.01), lambda n, w0: nadam_paper(n)),
    ("Adamax (no epsilon in the paper)", lambda: Adamax(0.01), lambda n, w0: adamax_paper(n)),
    ("Adagrad (PyTorch: sum from 0)", lambda: Adagrad(0.01), lambda n, w0: adagrad_torch(n)),
    ("Adadelta (Keras lr=0.001; paper: none)", lambda: Adadelta(), lambda n, w0: adadelta_paper(n)),
    ("Adadelta, Keras lr=1.0", lambda: Adadelta(1.0), lambda n, w0: adadelta_paper(n)),
    ("Lion weight_decay=0.1", lambda: Lion(0.001, weight_decay=0.1), lambda n, w0: lion_paper(n)),
    ("ScheduleFreeAdamW (x_old quirk)", lambda: ScheduleFreeAdamW(), lambda n, w0: schedule_free_paper(n, w0)),
    ("Ftrl l1=0.001, l2=0.01", lambda: Ftrl(0.01, l1_regularization_strength=0.001, l2_regularization_strength=0.01),
     lambda n, w0: ftrl_paper(n)),
    ("Lamb weight_decay=0.01", lambda: Lamb(0.01, weight_decay=0.01), lambda n, w0: lamb_paper(n)),
    ("Adafactor (100 rows)", lambda: Adafactor(), lambda n, w0: adafactor_paper(n)),
]


def more_gap(make, make_textbook, steps, size):
    rng = np.random.default_rng(0)
    start = rng.standard_normal(size)
    w = start.copy()
    matrix = isinstance(make(), Adafactor)  # factored: a (rows, size // rows) matrix
    ours = [start.copy().reshape(math.gcd(size, 100), -1) if matrix else start.copy()]
    opt, textbook_step = make(), make_textbook(size, start)
    worst = 0.0
    for t in range(1, steps + 1):
        g = rng.standard_normal(size)
        w = textbook_step(g, w, t)
        opt.apply([g.reshape(ours[0].shape)], ours)
        worst = max(worst, float(np.max(np.abs(ours[0].reshape(-1) - w))))
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
    for label, make, make_textbook in MORE_ROWS:
        print(f"{label:40} {more_gap(make, make_textbook, args.steps, args.size):18.2e}")


if __name__ == "__main__":
    main()
