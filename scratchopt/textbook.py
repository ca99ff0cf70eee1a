"""The techniques as the papers (and PyTorch, and the lesson) write them: the left column of each box.

scratchopt's optimizers follow Keras, which differs from the textbook in small, named
ways (Adam's epsilon-hat, SGD's lr inside the velocity, RMSprop's epsilon inside the
root, AdamW's decay times the rate). These functions are the textbook forms, one step
each, in whatever precision they are given, so the differences can be measured:
``python docs/textbook_gap.py`` prints how far apart the two end up, and
``parity_tests/test_formulas.py`` checks that they agree where the conventions coincide.
"""

import math

from .backend import maximum, sqrt


def sgd(g, w, b, *, lr, momentum=0.0, nesterov=False):
    """PyTorch's SGD: ``b = mu*b + g``; ``w -= lr*b`` (Nesterov: ``w -= lr*(g + mu*b)``)."""
    if momentum == 0:
        return w - lr * g, b
    b = momentum * b + g
    return (w - lr * (g + momentum * b) if nesterov else w - lr * b), b


def adam(g, w, m, v, v_max, *, t, lr, beta_1, beta_2, epsilon, amsgrad=False, weight_decay=0.0):
    """Kingma & Ba's Adam (AMSGrad as PyTorch has it; AdamW's decay as ``w -= lr*wd*w``)."""
    w = w - lr * weight_decay * w
    m = beta_1 * m + (1 - beta_1) * g
    v = beta_2 * v + (1 - beta_2) * g**2
    if amsgrad:
        v_max = maximum(v_max, v)
    m_hat = m / (1 - beta_1**t)
    v_hat = (v_max if amsgrad else v) / (1 - beta_2**t)
    return w - lr * m_hat / (sqrt(v_hat) + epsilon), m, v, v_max


def rmsprop(g, w, v, avg_g, b, *, lr, rho, momentum=0.0, epsilon, centered=False):
    """Hinton's RMSprop as PyTorch writes it: epsilon outside the root, lr outside the buffer."""
    v = rho * v + (1 - rho) * g**2
    if centered:
        avg_g = rho * avg_g + (1 - rho) * g
        d = sqrt(v - avg_g**2) + epsilon
    else:
        d = sqrt(v) + epsilon
    if momentum > 0:
        b = momentum * b + g / d
        return w - lr * b, v, avg_g, b
    return w - lr * g / d, v, avg_g, b


def lesson_warmup_cosine(step, *, initial_lr, warmup_steps, total_steps):
    """The lesson's hand-written warmup + cosine, as written (float64, with the pitfall).

    Linear warmup, then ``0.5 * lr * (1 + cos(pi * progress))`` for *every* later step: past
    ``total_steps`` the progress exceeds 1 and the rate climbs back up.
    ``scratchopt.schedules.WarmupCosineDecay`` clamps the step and holds 0 instead.
    """
    if step < warmup_steps:
        return initial_lr * step / warmup_steps
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return 0.5 * initial_lr * (1 + math.cos(math.pi * progress))
