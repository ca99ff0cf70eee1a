"""``scratchopt conventions``: the same technique in Keras and in PyTorch, measured side by side.

For each technique that people port between the two frameworks (and file as a bug when the
results differ), the table gives the Keras form, the PyTorch form, and either

* the **translation** of arguments that makes the two the same, with its proof: both run
  and are compared bit for bit (``same bits``), or, where the two agree in exact arithmetic
  but round differently, how far apart they end; or
* where no translation exists, the **drift**: both train the lesson's model
  (``tools/demos/optimizers.py``: 1000 x 10 inputs, Dense 64-32-1, MSE, batches of 32 over
  the first 800 rows, no shuffling) from the same weights with the same *nominal*
  hyper-parameters for 50 epochs; the table shows each side's final loss (MSE over the 800
  training rows) and the largest difference between their parameters.

Both sides are scratchopt: the Keras side is ``scratchopt.optimizers`` (bit-exact with Keras
3.15, ``scratchopt parity``), the PyTorch side ``scratchopt.torch`` (bit-exact with torch
2.13, ``parity_tests/``); the model's forward and backward passes are shared, so the only
difference is the convention. Usage::

    scratchopt conventions [--epochs 50] [--dtype float32] [--markdown]
"""

import argparse
import dataclasses

import numpy as np

from .. import layers as keras_layers
from .. import nn, optimizers, schedules
from ..numerics import ulp_distance
from ..torch import nn as torch_nn
from ..torch import optim as torch_optim
from ..torch.nn.batch_norm import _collect_stats as torch_bn_stats
from .demos.optimizers import lesson_data, lesson_model
from .parity import same_bits

BATCH = 32
TRAIN_ROWS = 800  # the lesson's validation_split=0.2 keeps the first 800 rows for training


@dataclasses.dataclass
class Result:
    technique: str
    keras: str
    torch: str
    translation: str
    outcome: str


def _model(dtype, weights):
    model = lesson_model(dtype, seed=0)
    x, _ = lesson_data(dtype)
    model(x[:1])
    if weights is not None:
        model.set_weights(weights)
    model.compile(optimizers.SGD(), nn.MeanSquaredError())  # the loss; the optimizer is not used
    return model


def train(make_step, epochs, dtype="float32", weights=None, per_epoch=None):
    """Train the lesson's model with ``step = make_step(params)`` (``step(grads)`` updates
    ``params`` in place); ``per_epoch()`` after each epoch. Returns ``(final loss, params)``."""
    x, y = lesson_data(dtype)
    x, y = x[:TRAIN_ROWS], y[:TRAIN_ROWS]
    model = _model(dtype, weights)
    pairs = model._pairs()
    params = [layer.params[key] for layer, key in pairs]
    step = make_step(params)
    for _ in range(epochs):
        for start in range(0, TRAIN_ROWS, BATCH):
            xb, yb = x[start:start + BATCH], y[start:start + BATCH]
            y_pred = model(xb, training=True)
            model.backward(model.loss.gradient(yb, y_pred))
            step([layer.grads[key].copy() for layer, key in pairs])
        if per_epoch is not None:
            per_epoch()
    return float(model.evaluate(x, y, batch_size=TRAIN_ROWS)), [p.copy() for p in params]


def keras_step(make_optimizer):
    def make(params):
        opt = make_optimizer()
        return lambda grads: opt.apply(grads, params)
    return make


def torch_step(make_optimizer, clip=None):
    def make(params):
        opt = make_optimizer(params)

        def step(grads):
            if clip is not None:
                clip(grads)
            opt.step(grads)
        return step
    return make


def compare(keras_make, torch_make, epochs, dtype):
    """Both trainings from the same start: ``(keras loss, torch loss, max |param diff|, same bits)``."""
    weights = _model(dtype, None).get_weights()
    loss_k, params_k = train(keras_make, epochs, dtype, weights)
    loss_t, params_t = train(torch_make, epochs, dtype, weights)
    diff = max(float(np.max(np.abs(a.astype(np.float64) - b))) for a, b in zip(params_k, params_t, strict=True))
    same = all(same_bits(a, b) for a, b in zip(params_k, params_t, strict=True))
    return loss_k, loss_t, diff, same


def _drift(epochs, dtype, keras_make, torch_make):
    loss_k, loss_t, diff, same = compare(keras_make, torch_make, epochs, dtype)
    if same:
        return "same bits"
    return f"{epochs} epochs: loss Keras {loss_k:.6g} / torch {loss_t:.6g}; max |param diff| {diff:.3g}"


# --- the techniques -----------------------------------------------------------------------------


def adam_epsilon(epochs, dtype):
    """Adam's epsilon: Keras adds it to sqrt(v) *before* the bias correction (epsilon-hat),
    torch after. No constant translation: eps_keras = eps_torch * sqrt(1 - beta_2**t)."""
    return Result(
        "Adam's epsilon",
        "p -= lr*sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps)",
        "p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)",
        "none (eps_keras = eps_torch * sqrt(1 - b2^t) changes every step)",
        _drift(epochs, dtype, keras_step(lambda: optimizers.Adam(learning_rate=1e-3, epsilon=1e-7)),
               torch_step(lambda p: torch_optim.Adam(p, lr=1e-3, eps=1e-7))))


def rmsprop_epsilon(epochs, dtype):
    """RMSprop: Keras puts epsilon inside the square root, torch outside."""
    return Result(
        "RMSprop's epsilon",
        "p -= lr * g / sqrt(v + eps)",
        "p -= lr * g / (sqrt(v) + eps)",
        "none (inside vs outside the root); rho=alpha=0.9 both, eps=1e-7",
        _drift(epochs, dtype, keras_step(lambda: optimizers.RMSprop(learning_rate=1e-3, rho=0.9, epsilon=1e-7)),
               torch_step(lambda p: torch_optim.RMSprop(p, lr=1e-3, alpha=0.9, eps=1e-7))))


def sgd_momentum(epochs, dtype):
    """Momentum: Keras keeps lr inside the velocity, torch multiplies the buffer by lr."""
    return Result(
        "SGD momentum (lr inside / outside the buffer)",
        "m = mu*m - lr*g;  p += m",
        "b = mu*b + g;  p -= lr*b",
        "same arguments (equal in exact arithmetic while lr is constant; a schedule changes "
        "the math: torch applies a new lr to the whole buffer)",
        _drift(epochs, dtype, keras_step(lambda: optimizers.SGD(learning_rate=0.01, momentum=0.9)),
               torch_step(lambda p: torch_optim.SGD(p, lr=0.01, momentum=0.9))))


def weight_decay_adam(epochs, dtype):
    """Weight decay: Keras's Adam(weight_decay) is decoupled (AdamW-like), torch's Adam adds L2 to g."""
    return Result(
        "weight decay: Adam(weight_decay=0.01)",
        "p -= lr*wd*p (decoupled), then Adam",
        "g += wd*p (L2 in the gradient), then Adam",
        "none for torch's Adam; Keras's Adam(weight_decay) is torch's AdamW (next row)",
        _drift(epochs, dtype, keras_step(lambda: optimizers.Adam(learning_rate=1e-3, weight_decay=0.01)),
               torch_step(lambda p: torch_optim.Adam(p, lr=1e-3, weight_decay=0.01))))


def weight_decay_adamw(epochs, dtype):
    return Result(
        "weight decay: AdamW(weight_decay=0.01)",
        "p = p - (p*wd)*lr, then Adam (eps-hat)",
        "p = p * (1 - lr*wd), then Adam",
        "same arguments: the same math for the decay (rounded differently); Adam's epsilon still differs",
        _drift(epochs, dtype, keras_step(lambda: optimizers.AdamW(learning_rate=1e-3, weight_decay=0.01)),
               torch_step(lambda p: torch_optim.AdamW(p, lr=1e-3, weight_decay=0.01))))


def clipping(epochs, dtype):
    """Per-tensor (Keras clipnorm) vs global (torch clip_grad_norm_) clipping."""
    def clip(grads):
        torch_nn.utils.clip_grad_norm_(grads, 0.1)
    per_tensor = _drift(epochs, dtype, keras_step(lambda: optimizers.SGD(learning_rate=0.01, clipnorm=0.1)),
                        torch_step(lambda p: torch_optim.SGD(p, lr=0.01), clip))
    global_ = _drift(epochs, dtype, keras_step(lambda: optimizers.SGD(learning_rate=0.01, global_clipnorm=0.1)),
                     torch_step(lambda p: torch_optim.SGD(p, lr=0.01), clip))
    return [
        Result("clipping: per tensor vs global (0.1)", "clipnorm=0.1: g * c / max(||g||, c), each tensor",
               "clip_grad_norm_(grads, 0.1): g * min(c / (total + 1e-6), 1), all tensors",
               "none: Keras's clipnorm is clip_grad_norm_ called per tensor", per_tensor),
        Result("clipping: global (0.1)", "global_clipnorm=0.1: g * c / max(total, c)",
               "clip_grad_norm_(grads, 0.1)", "global_clipnorm=c <-> clip_grad_norm_(grads, c) "
               "(the same up to the 1e-6 and the rounding)", global_),
    ]


def batchnorm(epochs, dtype):
    """BatchNorm's momentum (0.99 kept vs 0.1 taken) and the unbiased running variance,
    on the lesson's inputs: every training batch through both layers."""
    x, _ = lesson_data(dtype)
    x = x[:TRAIN_ROWS]
    rows = []
    for keras_momentum, label in ((0.9, "momentum: Keras 1 - m <-> torch m (0.9 <-> 0.1)"),
                                  (0.1, "momentum: the same number (0.1) passed to both")):
        keras_bn = keras_layers.BatchNormalization(momentum=keras_momentum, epsilon=1e-5)
        keras_bn.build((BATCH, x.shape[1]), x.dtype)
        torch_bn = torch_nn.BatchNorm1d(x.shape[1])
        torch_bn.to(x.dtype)
        for _ in range(epochs):
            for start in range(0, TRAIN_ROWS, BATCH):
                xb = x[start:start + BATCH]
                keras_bn(xb, training=True)
                torch_bn(xb)
        mean_diff = float(np.max(np.abs(keras_bn.moving_mean.astype(np.float64) - torch_bn.running_mean)))
        same_mean = same_bits(keras_bn.moving_mean, torch_bn.running_mean)
        ratio = float(np.max(torch_bn.running_var.astype(np.float64) / keras_bn.moving_variance))
        rows.append((label, same_mean, mean_diff, ratio))
    (_, s1, d1, r1), (_, _, d2, _) = rows
    # the update rules alone, fed the same batch means (torch's serial ones): Keras's rule with
    # momentum 0.9 against torch's with 0.1, over every batch of every epoch
    keras_rule = keras_layers.BatchNormalization(momentum=0.9)
    keras_rule.build((BATCH, x.shape[1]), x.dtype)
    torch_rule = torch_nn.BatchNorm1d(x.shape[1])
    torch_rule.to(x.dtype)
    for _ in range(epochs):
        for start in range(0, TRAIN_ROWS, BATCH):
            mean, var_sum = torch_bn_stats(x[start:start + BATCH])
            keras_rule._update_moving(mean, var_sum / x.dtype.type(BATCH))
            torch_rule._update_running(mean, var_sum, BATCH, 0.1)
    rule_same = same_bits(keras_rule.moving_mean, torch_rule.running_mean)
    return [
        Result("BatchNorm momentum", "moving = moving*m + batch*(1-m), m = 0.99",
               "running = (1-m)*running + m*batch, m = 0.1",
               "Keras momentum = 1 - torch momentum (bit-exact where 1 - m rounds back to the "
               "other's m: float32 0.9 <-> 0.1 does; float64 does not, 1 - 0.9 = 0.09999999999999998)",
               f"the update rules, fed the same batch means: running mean "
               f"{'same bits' if rule_same else 'NOT the same bits'}; whole layers (Keras sums the batch "
               f"in Eigen's order, torch serially): {'same bits' if s1 else f'max diff {d1:.3g}'}; "
               f"untranslated (0.1 to both): max diff {d2:.3g}"),
        Result("BatchNorm running variance", "biased: var * 1", "unbiased: var * n / (n - 1)",
               "none (Keras stores the biased variance)",
               f"torch / Keras running variance after {epochs} epochs: {r1:.6g} (n = {BATCH}: "
               f"n/(n-1) = {BATCH / (BATCH - 1):.6g})"),
    ]


def scheduler_steps(epochs, dtype):
    """Keras's schedules are functions of the optimizer's step (per batch); torch's
    schedulers advance when ``scheduler.step()`` is called (usually once per epoch)."""
    steps_per_epoch = TRAIN_ROWS // BATCH
    keras_schedule = schedules.ExponentialDecay(0.01, decay_steps=steps_per_epoch, decay_rate=0.9, staircase=True)

    # the translation: the lr each side uses at every optimizer step
    opt = torch_optim.SGD([np.zeros(1, dtype)], lr=0.01)
    sched = torch_optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)
    keras_lrs, torch_lrs = [], []
    for step in range(epochs * steps_per_epoch):
        keras_lrs.append(np.float32(keras_schedule(step)))
        torch_lrs.append(np.float32(opt.param_groups[0]["lr"]))  # rounded as the kernels round it
        if (step + 1) % steps_per_epoch == 0:
            sched.step()
    keras_lrs, torch_lrs = np.array(keras_lrs), np.array(torch_lrs)
    differ = keras_lrs != torch_lrs
    if not differ.any():
        translated = "same bits"
    else:  # Keras: float32 lr * powf(rate, k); torch: a Python-float product, rounded once per use
        first = int(np.argmax(differ)) // steps_per_epoch
        ulps = int(np.max(ulp_distance(keras_lrs, torch_lrs)))
        translated = (f"same bits for the first {first} epochs, then apart by a growing number of ULP "
                      f"({ulps} at most, {int(differ.sum())} of {differ.size} steps): Keras computes "
                      f"0.01 * 0.9**k in float32 (0.9 rounded first), torch multiplies by 0.9 in double "
                      f"each epoch")

    def per_batch(params):  # the common mistake: scheduler.step() after every batch
        o = torch_optim.SGD(params, lr=0.01)
        s = torch_optim.lr_scheduler.ExponentialLR(o, gamma=0.9)

        def step(grads):
            o.step(grads)
            s.step()
        return step
    drift = _drift(epochs, dtype, keras_step(lambda: optimizers.SGD(learning_rate=keras_schedule)), per_batch)
    return Result("scheduler step semantics", "ExponentialDecay(0.01, 25, 0.9, staircase=True): lr(optimizer step)",
                  "ExponentialLR(opt, 0.9): lr changes at scheduler.step()",
                  f"decay_steps = steps per epoch ({steps_per_epoch}), scheduler.step() once per epoch: "
                  f"lr per step: {translated}",
                  f"scheduler.step() per batch instead: {drift}")


TECHNIQUES = [adam_epsilon, rmsprop_epsilon, sgd_momentum, weight_decay_adam, weight_decay_adamw,
              clipping, batchnorm, scheduler_steps]


def run(epochs=50, dtype="float32"):
    results = []
    for technique in TECHNIQUES:
        out = technique(epochs, dtype)
        results.extend(out if isinstance(out, list) else [out])
    return results


def markdown(results):
    lines = ["| technique | Keras | PyTorch | translation | measured |", "|---|---|---|---|---|"]
    for r in results:
        cells = [r.technique, f"`{r.keras}`", f"`{r.torch}`", r.translation, r.outcome]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def text(results):
    blocks = []
    for r in results:
        blocks.append(f"{r.technique}\n  Keras:       {r.keras}\n  PyTorch:     {r.torch}\n"
                      f"  translation: {r.translation}\n  measured:    {r.outcome}")
    return "\n\n".join(blocks)


def main(args=None):
    parser = argparse.ArgumentParser(prog="scratchopt conventions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--markdown", action="store_true", help="a Markdown table (docs/torch/conventions.md)")
    options = parser.parse_args(args)
    results = run(options.epochs, options.dtype)
    print(markdown(results) if options.markdown else text(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
