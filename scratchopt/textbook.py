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


def l2_gradient(w, *, l2):
    """The gradient of the textbook's halved penalty ``(l2 / 2) * ||w||**2``: ``l2 * w``.

    ``scratchopt.regularizers.L2`` (Keras) has no 1/2: ``l2 * sum(w**2)``, gradient ``2 * l2 * w``.
    """
    return l2 * w


def dropout(x, keep, *, rate, training):
    """Srivastava et al.'s original dropout: drop while training, scale down at inference.

    Training: ``y = keep * x`` (no rescaling); inference: ``y = (1 - rate) * x``, the
    expected share of units that were kept. Keras's "inverted" dropout scales the kept
    units by ``1 / (1 - rate)`` while training instead, and is the identity at inference.
    """
    return keep * x if training else (1 - rate) * x


def batchnorm_running(running_mean, running_var, x, *, momentum=0.1):
    """PyTorch's running statistics after one training batch ``x`` of N rows (axis 0).

    ``running = (1 - momentum) * running + momentum * batch_statistic``, where the stored
    variance is the *unbiased* one, ``var * N / (N - 1)`` (the batch is normalized with the
    biased one). Keras's ``momentum`` is the share of the *old* value, and it stores the
    biased variance.
    """
    n = x.shape[0]
    mean = x.mean(axis=0)
    var = ((x - mean) ** 2).mean(axis=0)
    running_mean = (1 - momentum) * running_mean + momentum * mean
    running_var = (1 - momentum) * running_var + momentum * var * n / (n - 1)
    return running_mean, running_var


def layer_norm(x, *, epsilon=1e-5):
    """Ba et al.'s layer normalization over the last axis, PyTorch's default epsilon (1e-5).

    ``(x - mean) / sqrt(var + epsilon)``, biased variance; ``gamma = 1``, ``beta = 0``.
    Keras's ``LayerNormalization`` defaults to ``epsilon=1e-3``.
    """
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / sqrt(var + epsilon)


def plateau(loss, best, wait, *, patience):
    """The naive "reduce on plateau", one epoch: reduce after ``patience`` epochs without a lower loss.

    Returns ``(reduce, best, wait)``; start from ``best = inf, wait = 0``. ``loss < best`` is
    an improvement, however small (no ``min_delta``); after a reduction the count starts
    again. Keras's ``ReduceLROnPlateau`` asks for an improvement of more than an absolute
    ``min_delta`` (1e-4 by default).
    """
    if loss < best:
        return False, loss, 0
    wait += 1
    if wait >= patience:
        return True, best, 0
    return False, best, wait


def lesson_cutmix(images, labels, *, lam, perm):
    """The lesson's CutMix, as written (with the pitfall): the labels are mixed, the pixels never.

    ``labels = lam * y + (1 - lam) * y[perm]`` with ``lam ~ Beta(alpha, alpha)`` per sample
    (shape ``(B,)``); the images come back untouched. ``scratchopt.augment.CutMix`` pastes the
    partner's box into the image, so that its share of the label is its share of the pixels.
    """
    lam = lam.reshape(-1, 1)
    return images, lam * labels + (1 - lam) * labels[perm]
