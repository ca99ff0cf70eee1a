"""Each rule computes its docstring's textbook box, up to the convention the box names.

The boxes are rendered here in plain float64 NumPy, as written in the papers (and
PyTorch). With a constant learning rate and ``epsilon = 0`` the Keras forms are the same
mathematics, so the two agree to rounding; with epsilon they differ exactly as the
docstrings say (Adam's epsilon-hat, RMSprop's epsilon inside the root).
"""

import numpy as np
import pytest

from scratchopt.optimizers import SGD, Adam, AdamW, RMSprop

# Hyper-parameters exact in float32, so Keras's float32 hops (the learning rate, SGD's
# momentum, the betas' powers, weight decay) round nothing and only the formulas differ.
STEPS, LR, MU, B1, B2, RHO, WD = 50, 2.0**-7, 0.875, 0.875, 1 - 2.0**-9, 0.875, 0.125
# Measured (pytest -s prints it): the largest gap is 0 (SGD, RMSprop) to 5.8e-15 (Adam)
# times the summed step sizes. 1e-13 leaves room for other data without hiding a formula
# error: the epsilon-hat difference below is 0.84 on the same scale.
RELATIVE = 1e-13


def sgd_box(g, w, b, mu, nesterov):
    b = mu * b + g
    return (w - LR * (g + mu * b) if nesterov else w - LR * b), b


def adam_box(g, w, m, v, vmax, t, b1, b2, eps, amsgrad, decay=0.0):
    w = w - LR * decay * w  # AdamW (PyTorch's form); 0 for Adam
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g**2
    m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
    if amsgrad:
        vmax = np.maximum(vmax, v)
        v_hat = vmax / (1 - b2**t)
    return w - LR * m_hat / (np.sqrt(v_hat) + eps), m, v, vmax


def rmsprop_box(g, w, v, avg, buf, rho, mu, eps, centered):
    v = rho * v + (1 - rho) * g**2
    if centered:
        avg = rho * avg + (1 - rho) * g
        d = np.sqrt(v - avg**2) + eps
    else:
        d = np.sqrt(v) + eps
    if mu > 0:
        buf = mu * buf + g / d
        return w - LR * buf, v, avg, buf
    return w - LR * g / d, v, avg, buf


CASES = {
    "SGD": (SGD(LR), lambda g, w, b, t: sgd_box(g, w, b, 0.0, False)),
    "SGD momentum": (SGD(LR, momentum=MU), lambda g, w, b, t: sgd_box(g, w, b, MU, False)),
    "SGD Nesterov": (SGD(LR, momentum=MU, nesterov=True), lambda g, w, b, t: sgd_box(g, w, b, MU, True)),
    "Adam": (Adam(LR, B1, B2, epsilon=0.0),
             lambda g, w, m, v, vm, t: adam_box(g, w, m, v, vm, t, B1, B2, 0.0, False)),
    "AMSGrad": (Adam(LR, B1, B2, epsilon=0.0, amsgrad=True),
                lambda g, w, m, v, vm, t: adam_box(g, w, m, v, vm, t, B1, B2, 0.0, True)),
    "AdamW": (AdamW(LR, WD, B1, B2, epsilon=0.0),
              lambda g, w, m, v, vm, t: adam_box(g, w, m, v, vm, t, B1, B2, 0.0, False, decay=WD)),
    "RMSprop": (RMSprop(LR, RHO, epsilon=0.0),
                lambda g, w, v, a, b, t: rmsprop_box(g, w, v, a, b, RHO, 0.0, 0.0, False)),
    "RMSprop centered momentum": (
        RMSprop(LR, RHO, momentum=MU, centered=True, epsilon=0.0),
        lambda g, w, v, a, b, t: rmsprop_box(g, w, v, a, b, RHO, MU, 0.0, True)),
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
        new, m, v, _ = adam_box(g, w, m, v, None, t, B1, B2, 1e-3 / np.sqrt(1 - B2**t), False)
        moved += np.abs(new - w)
        w = new
        opt.apply([g], ours)
    assert np.max(np.abs(ours[0] - w) / moved) <= RELATIVE
    # ... and differs from the textbook with the epsilon as written, by far more than rounding.
    w2, opt2 = rng.standard_normal(10), Adam(LR, B1, B2, epsilon=1e-3)
    ours2, m, v = [w2.copy()], np.zeros(10), np.zeros(10)
    g = np.full(10, 1e-3)
    box, m, v, _ = adam_box(g, w2, m, v, None, 1, B1, B2, 1e-3, False)
    opt2.apply([g], ours2)
    assert np.max(np.abs(ours2[0] - box)) > 1e-4 * LR
