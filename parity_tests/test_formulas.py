"""Each rule computes its docstring's textbook box, up to the convention the box names.

The boxes' left columns are ``scratchopt.textbook``, run in float64, as written in the
papers (and PyTorch). With a constant learning rate and ``epsilon = 0`` the Keras forms are the same
mathematics, so the two agree to rounding; with epsilon they differ exactly as the
docstrings say (Adam's epsilon-hat, RMSprop's epsilon inside the root).
"""

import numpy as np
import pytest

from scratchopt import textbook
from scratchopt.optimizers import SGD, Adam, AdamW, RMSprop

# Hyper-parameters exact in float32, so Keras's float32 hops (the learning rate, SGD's
# momentum, the betas' powers, weight decay) round nothing and only the formulas differ.
STEPS, LR, MU, B1, B2, RHO, WD = 50, 2.0**-7, 0.875, 0.875, 1 - 2.0**-9, 0.875, 0.125
# Measured (pytest -s prints it): the largest gap is 0 (SGD, RMSprop) to 5.8e-15 (Adam)
# times the summed step sizes. 1e-13 leaves room for other data without hiding a formula
# error: the epsilon-hat difference below is 0.84 on the same scale.
RELATIVE = 1e-13
ADAM = {"lr": LR, "beta_1": B1, "beta_2": B2, "epsilon": 0.0}


CASES = {
    "SGD": (SGD(LR), lambda g, w, b, t: textbook.sgd(g, w, b, lr=LR)),
    "SGD momentum": (SGD(LR, momentum=MU), lambda g, w, b, t: textbook.sgd(g, w, b, lr=LR, momentum=MU)),
    "SGD Nesterov": (SGD(LR, momentum=MU, nesterov=True),
                     lambda g, w, b, t: textbook.sgd(g, w, b, lr=LR, momentum=MU, nesterov=True)),
    "Adam": (Adam(LR, B1, B2, epsilon=0.0),
             lambda g, w, m, v, vm, t: textbook.adam(g, w, m, v, vm, t=t, **ADAM)),
    "AMSGrad": (Adam(LR, B1, B2, epsilon=0.0, amsgrad=True),
                lambda g, w, m, v, vm, t: textbook.adam(g, w, m, v, vm, t=t, amsgrad=True, **ADAM)),
    "AdamW": (AdamW(LR, WD, B1, B2, epsilon=0.0),
              lambda g, w, m, v, vm, t: textbook.adam(g, w, m, v, vm, t=t, weight_decay=WD, **ADAM)),
    "RMSprop": (RMSprop(LR, RHO, epsilon=0.0),
                lambda g, w, v, a, b, t: textbook.rmsprop(g, w, v, a, b, lr=LR, rho=RHO, epsilon=0.0)),
    "RMSprop centered momentum": (
        RMSprop(LR, RHO, momentum=MU, centered=True, epsilon=0.0),
        lambda g, w, v, a, b, t: textbook.rmsprop(g, w, v, a, b, lr=LR, rho=RHO, momentum=MU,
                                                  epsilon=0.0, centered=True)),
}


@pytest.mark.parametrize("name", CASES)
def test_rule_computes_the_textbook_box(name):
    opt, box = CASES[name]
    rng = np.random.default_rng(0)
    w = rng.standard_normal(1000)
    grads = [rng.standard_normal(1000) for _ in range(STEPS)]
    state = [np.zeros(1000)] * (1 if name.startswith("SGD") else 3)
    w_box, ours, moved = w.copy(), [w.copy()], np.zeros(1000)
    for t, g in enumerate(grads, start=1):
        new, *state = box(g, w_box, *state, t)
        moved += np.abs(new - w_box)
        w_box = new
        opt.apply([g], ours)
    gap = np.max(np.abs(ours[0] - w_box) / moved)
    print(f"{name}: max gap / summed steps = {gap:.2g}")
    assert gap <= RELATIVE


def test_keras_epsilon_is_the_textbook_epsilon_hat():
    """Keras's Adam(epsilon=e) is textbook Adam with epsilon_t = e / sqrt(1 - beta_2**t)."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal(1000)
    ours, opt = [w.copy()], Adam(LR, B1, B2, epsilon=1e-3)
    m = v = np.zeros(1000)
    moved = np.zeros(1000)
    for t in range(1, STEPS + 1):
        g = rng.standard_normal(1000) * 1e-3  # small gradients: epsilon matters
        new, m, v, _ = textbook.adam(g, w, m, v, None, t=t, lr=LR, beta_1=B1, beta_2=B2,
                                     epsilon=1e-3 / np.sqrt(1 - B2**t))
        moved += np.abs(new - w)
        w = new
        opt.apply([g], ours)
    assert np.max(np.abs(ours[0] - w) / moved) <= RELATIVE
    # ... and differs from the textbook with the epsilon as written, by far more than rounding.
    w2, opt2 = rng.standard_normal(10), Adam(LR, B1, B2, epsilon=1e-3)
    ours2, m, v = [w2.copy()], np.zeros(10), np.zeros(10)
    g = np.full(10, 1e-3)
    box, m, v, _ = textbook.adam(g, w2, m, v, None, t=1, lr=LR, beta_1=B1, beta_2=B2, epsilon=1e-3)
    opt2.apply([g], ours2)
    assert np.max(np.abs(ours2[0] - box)) > 1e-4 * LR
