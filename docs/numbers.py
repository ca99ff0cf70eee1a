"""Every number the documentation site quotes, measured here: writes docs/generated/numbers.json.

    python docs/numbers.py            measure, write docs/generated/numbers.json
    python docs/numbers.py --check    measure, exit 1 (naming the keys) if the committed file differs

Each page says how far a technique's textbook form (``scratchopt.textbook``: the papers',
PyTorch's, the lesson's) and Keras's form (= scratchopt's, bit for bit) end up apart. A page
writes ``[[number adam.default]]`` and the docs build (``docs/hooks.py``) puts in that key's
``text``. Each entry is ``{"value", "text", "what"}``: the measured number, the number as the
prose prints it, and one sentence on what was measured (precision, steps, samples).

Everything is deterministic (fixed seeds; float64 unless the point is float32), so the same
machine gives the same bits, and ``parity_tests/test_numbers.py`` checks that the committed
file is what ``measure()`` returns. The optimizer rows are ``docs/textbook_gap.py``'s own
measurement, imported from it.
"""

import os
import sys

# Run as ``python docs/numbers.py``, docs/ is first on sys.path, where this file would stand in
# for the standard library's ``numbers`` (which NumPy and scratchopt import): take docs/ out.
if sys.path and os.path.abspath(sys.path[0] or os.curdir) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import argparse
import importlib.util
import json
import math
from pathlib import Path

import numpy as np

from scratchopt import textbook
from scratchopt.augment import CutMix
from scratchopt.callbacks import ReduceLROnPlateau
from scratchopt.clipping import clip_by_global_norm, clip_by_norm, global_norm
from scratchopt.layers import BatchNormalization, Dropout, LayerNormalization
from scratchopt.optimizers import SGD, Adam, AdamW, RMSprop
from scratchopt.tools.parity_callbacks import StandInModel, run_callback
from scratchopt.regularizers import L2
from scratchopt.schedules import WarmupCosineDecay

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "generated" / "numbers.json"
COMMAND = "python docs/numbers.py"


def _load_textbook_gap():
    """``docs/textbook_gap.py`` as a module (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location("textbook_gap", HERE / "textbook_gap.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


textbook_gap = _load_textbook_gap()


# --- formatting for prose ---------------------------------------------------------------------


def sci(x, digits=2):
    """``4.5e-4``: ``digits`` significant digits, the exponent without padding."""
    if x == 0:
        return "0"
    mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def two_digits(x):
    """``4.5e-4`` below 0.1, ``0.46`` above: two significant digits either way."""
    return sci(x) if abs(x) < 0.1 else f"{x:.2g}"


def fixed(x, decimals):
    return f"{x:.{decimals}f}"


def times(x, digits=3):
    return f"{x:.{digits}g}x"


def percent(x, digits=2):
    return f"{100 * x:.{digits}g}%"


def entry(value, text, what):
    value = int(value) if isinstance(value, (int, np.integer)) else float(value)
    return {"value": value, "text": text, "what": what}


def farthest_from(values, target):
    """The element of ``values`` farthest from ``target`` (``target`` itself when all equal it)."""
    values = np.asarray(values, np.float64).ravel()
    return float(values[np.argmax(np.abs(values - target))])


# --- optimizers -------------------------------------------------------------------------------

#: textbook_gap's row labels -> the keys the pages use.
OPTIMIZER_KEYS = {
    "SGD": "sgd.plain",
    "SGD momentum=0.9": "sgd.momentum",
    "SGD momentum=0.9, halving lr": "sgd.momentum_halving",
    "SGD Nesterov": "sgd.nesterov",
    "Adam": "adam.default",
    "Adam amsgrad": "adam.amsgrad",
    "AdamW weight_decay=0.004": "adamw.default",
    "RMSprop": "rmsprop.default",
    "RMSprop centered, momentum=0.9": "rmsprop.centered_momentum",
}
OPTIMIZER_STEPS, OPTIMIZER_SIZE = 200, 10_000


def optimizers():
    out = {}
    for label, make, step, state_size, schedule in textbook_gap.ROWS:
        worst = textbook_gap.gap(make, step, state_size, schedule, OPTIMIZER_STEPS, OPTIMIZER_SIZE)
        rate = "lr 0.01 halved every 50 steps" if schedule is textbook_gap.halving else "lr 0.01"
        out[OPTIMIZER_KEYS[label]] = entry(
            worst, two_digits(worst),
            f"Largest |Keras - textbook| in any weight over {OPTIMIZER_STEPS} steps of {label} "
            f"({rate}; {OPTIMIZER_SIZE:,} float64 weights, N(0,1) start and gradients, seed 0): "
            "docs/textbook_gap.py's row.")

    # Adam's epsilon-hat: the epsilon a textbook Adam needs to take Keras's first step. With a
    # gradient far below epsilon, Keras's step is lr * g * sqrt(1 - beta_2) / epsilon.
    g, beta_2, epsilon = 1e-20, 0.999, 1e-7
    opt, w = Adam(0.01, beta_2=beta_2, epsilon=epsilon), [np.zeros(1)]
    opt.apply([np.full(1, g)], w)
    effective = opt.learning_rate * g / float(-w[0][0]) - g  # textbook: lr * g / (|g| + eps_hat)
    out["adam.epsilon_hat_t1"] = entry(
        effective / epsilon, times(effective / epsilon),
        "The epsilon a textbook Adam needs to take Keras's first step, over Keras's epsilon "
        "(1e-7, beta_2 = 0.999, one float64 step with a gradient of 1e-20): 1 / sqrt(1 - beta_2), "
        "6.7e-6 above it since Keras's bias corrections take beta_1 and beta_2 through float32.")

    # AdamW's decay per step: with a zero gradient the Adam step is 0 and only the decay acts.
    opt, w = AdamW(1e-3, weight_decay=0.004), [np.ones(1)]
    opt.apply([np.zeros(1)], w)
    shrink = 1.0 - float(w[0][0])
    out["adamw.decay_per_step"] = entry(
        shrink, sci(shrink),
        "Relative shrink of a weight in one AdamW step (lr 1e-3, weight_decay 0.004, zero "
        "gradient, float64): lr * weight_decay, with both through float32 as in Keras.")

    # RMSprop's floor under the denominator: a gradient far below it, one step from v = 0.
    g = 1e-30
    opt, w = RMSprop(0.01, epsilon=1e-7), [np.zeros(1)]
    opt.apply([np.full(1, g)], w)
    keras_floor = opt.learning_rate * g / float(-w[0][0])
    out["rmsprop.denominator_floor_keras"] = entry(
        keras_floor, sci(keras_floor),
        "RMSprop's denominator lr * g / step in Keras's first step with a gradient of 1e-30 "
        "(epsilon 1e-7 inside the root, float64): sqrt(1e-7).")
    new, *_ = textbook.rmsprop(np.full(1, g), np.zeros(1), np.zeros(1), None, None, lr=0.01,
                               rho=0.9, epsilon=1e-8)
    torch_floor = 0.01 * g / float(-new[0])
    out["rmsprop.denominator_floor_torch"] = entry(
        torch_floor, sci(torch_floor),
        "The same denominator in PyTorch's RMSprop (textbook.rmsprop, epsilon 1e-8 outside the "
        "root, PyTorch's default; float64): epsilon itself.")
    return out


# --- schedules --------------------------------------------------------------------------------

#: (initial rate, warmup steps, total steps); the first is the lesson's (demos/schedules.py).
SCHEDULE_GRID = [(lr, warmup, total) for lr in (0.1, 1e-3, 3.0)
                 for warmup, total in ((100, 1000), (0, 1000), (10, 50), (1, 2), (1000, 10_000))]
LESSON = {"initial_lr": 0.1, "warmup_steps": 100, "total_steps": 1000}


def _lesson_rates(lr, warmup, total, steps):
    return np.array([textbook.lesson_warmup_cosine(int(s), initial_lr=lr, warmup_steps=warmup,
                                                   total_steps=total) for s in steps])


def schedules():
    out = {}
    for dtype, key in ((np.float64, "schedules.warmup_vs_lesson"), (float, "schedules.warmup_vs_lesson_float32")):
        worst = 0.0
        for lr, warmup, total in SCHEDULE_GRID:
            steps = np.arange(total + 1)
            ours = WarmupCosineDecay(dtype(lr), warmup, total)(steps).astype(np.float64)
            worst = max(worst, float(np.max(np.abs(ours - _lesson_rates(lr, warmup, total, steps)))) / lr)
        precision = ("float64 (initial rate an np.float64)" if dtype is np.float64
                     else "float32, as Keras computes for a Python-float initial rate")
        out[key] = entry(
            worst, sci(worst),
            f"Largest |WarmupCosineDecay - the lesson's formula| / initial rate over steps 0..total "
            f"of {len(SCHEDULE_GRID)} configurations (rates 0.1, 1e-3, 3; warmup/total 100/1000, "
            f"0/1000, 10/50, 1/2, 1000/10000); scratchopt in {precision}, the lesson in float64.")

    lr, warmup, total = LESSON["initial_lr"], LESSON["warmup_steps"], LESSON["total_steps"]
    step = 2 * total - warmup
    lesson = textbook.lesson_warmup_cosine(step, **LESSON) / lr
    ours = WarmupCosineDecay(lr, warmup_steps=warmup, total_steps=total)(step) / lr
    out["schedules.lesson_after_total"] = entry(
        lesson, fixed(lesson, 1),
        f"The lesson's warmup + cosine at step 2 * total - warmup = {step}, over the initial rate "
        "(the lesson's 0.1, warmup 100, total 1000; float64).")
    out["schedules.keras_after_total"] = entry(
        ours, fixed(ours, 1),
        f"scratchopt's (= Keras's) WarmupCosineDecay(0.1, 100, 1000) at step {step}, over the "
        "initial rate: it holds its final value after total_steps.")
    return out


# --- L2 -----------------------------------------------------------------------------------------


def regularization():
    out = {}
    rng = np.random.default_rng(0)
    w = rng.standard_normal(1000)
    factor = float(np.float32(0.01))  # what L2(0.01) multiplies by: the factor through float32
    ratio = L2(0.01).gradient(w) / textbook.l2_gradient(w, l2=factor)
    value = farthest_from(ratio, 2.0)
    out["l2.gradient_ratio"] = entry(
        value, f"{value:g}",
        "Keras's L2(0.01) gradient over the textbook's (l2/2)*||w||^2 gradient l2*w, with the "
        "same float32-rounded factor, on 1000 N(0,1) float64 weights (the element farthest from 2).")

    c = rng.standard_normal(1000)  # the loss 0.5 * ||w - c||^2, from w = 0
    ours, theirs, opt, reg = [np.zeros(1000)], np.zeros(1000), SGD(0.1), L2(0.01)
    for _ in range(100):
        opt.apply([(ours[0] - c) + reg.gradient(ours[0])], ours)
        theirs, _ = textbook.sgd((theirs - c) + textbook.l2_gradient(theirs, l2=0.01), theirs, None, lr=0.1)
    gap = float(np.max(np.abs(ours[0] - theirs) / np.abs(theirs)))
    out["l2.weight_gap_sgd"] = entry(
        gap, percent(gap),
        "Largest |w_Keras - w_textbook| / |w_textbook| after 100 SGD steps (lr 0.1) on "
        "0.5*||w - c||^2 + L2(0.01), Keras's penalty against the textbook's halved one "
        "(1000 float64 weights from 0, c ~ N(0,1)).")
    return out


# --- layers -------------------------------------------------------------------------------------


def dropout():
    out = {}
    x = np.ones(1_000_000)
    layer = Dropout(0.5, seed=0)
    y = layer(x, training=True)
    ratio = float(np.mean(y) / np.mean(x))
    out["dropout.train_mean_ratio"] = entry(
        ratio, fixed(ratio, 4),
        "Mean of Dropout(0.5)'s training output over the mean input, on 1e6 float64 ones "
        "(seed 0): inverted dropout keeps the expectation.")
    paper = float(np.mean(textbook.dropout(x, layer.keep, rate=0.5, training=True)))
    out["dropout.textbook_train_mean_ratio"] = entry(
        paper, fixed(paper, 4),
        "The same for the original paper's dropout (no rescaling while training), same mask.")
    one = np.ones(1)
    scale = float(textbook.dropout(one, None, rate=0.5, training=False)[0] / Dropout(0.5)(one, training=False)[0])
    out["dropout.textbook_inference_scale"] = entry(
        scale, f"{scale:g}",
        "The original paper's inference output of a unit input at rate 0.5 (scaled by 1 - rate) "
        "over Keras's (the identity).")
    return out


def _batch_with_mean_one(rng, n=32):
    """``n`` values whose mean is exactly 1: pairs 1 +- k/8 (exact in binary)."""
    k = rng.integers(-8, 9, n // 2) / 8
    return (1.0 + np.concatenate([k, -k])).reshape(n, 1)


def batchnorm():
    out = {}
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 8))
    layer = BatchNormalization(momentum=0.9)  # the same average as PyTorch's momentum=0.1
    mean, var = np.zeros(8), np.ones(8)
    for _ in range(400):
        layer(x, training=True)
        mean, var = textbook.batchnorm_running(mean, var, x, momentum=0.1)
    ratio = farthest_from(var / layer.moving_variance, 32 / 31)
    out["batchnorm.moving_variance_ratio"] = entry(
        ratio, fixed(ratio, 3),
        "PyTorch's running variance (unbiased) over Keras's moving variance (biased) after 400 "
        "training steps on one fixed batch of 32 x 8 N(0,1) values (Keras momentum 0.9 = "
        "PyTorch 0.1, both converged; float64; the channel farthest from 32/31).")

    x = _batch_with_mean_one(rng)
    for momentum, key, who in ((0.99, "default", "Keras's default momentum=0.99"),
                               (0.1, "swapped", "momentum=0.1 (PyTorch's default, given to Keras)")):
        layer = BatchNormalization(momentum=momentum)
        for _ in range(5):
            layer(x, training=True)
        value = float(layer.moving_mean[0])
        out[f"batchnorm.moving_mean_5_steps_{key}"] = entry(
            value, percent(value, 5 if value > 0.99 else 2),
            f"Keras's moving mean after 5 training steps with {who}, on a fixed batch of 32 "
            "values with mean exactly 1, as a fraction of that mean (float64).")
    mean = np.zeros(1)
    for _ in range(5):
        mean, _ = textbook.batchnorm_running(mean, np.ones(1), x, momentum=0.1)
    value = float(mean[0])
    out["batchnorm.moving_mean_5_steps_pytorch"] = entry(
        value, percent(value, 2),
        "PyTorch's running mean after the same 5 steps with its momentum=0.1 (10% new each step).")
    return out


def layernorm():
    out = {}
    rng = np.random.default_rng(0)
    for scale, key in ((1.0, "layernorm.epsilon_gap"), (0.01, "layernorm.epsilon_gap_small_inputs")):
        x = scale * rng.standard_normal((1000, 100))
        gap = float(np.max(np.abs(LayerNormalization()(x) - textbook.layer_norm(x, epsilon=1e-5))))
        out[key] = entry(
            gap, two_digits(gap),
            "Largest |Keras LayerNormalization (epsilon 1e-3) - PyTorch's default (epsilon 1e-5)| "
            f"output over 1000 rows of 100 N(0, {scale:g}^2) features (float64, gamma 1, beta 0).")
    return out


# --- clipping -----------------------------------------------------------------------------------


def clipping():
    out = {}
    rng = np.random.default_rng(0)
    sizes = (10, 100, 1000, 10_000)
    grads = [rng.standard_normal(n) for n in sizes]
    per_tensor, together = clip_by_norm(grads, 1.0), clip_by_global_norm(grads, 1.0)
    relative = max(float(np.max(np.abs(p - t) / np.abs(t))) for p, t in zip(per_tensor, together))
    factor = max(float(np.max(p / t)) for p, t in zip(per_tensor, together))
    setup = "4 N(0,1) float64 gradient tensors of sizes 10, 100, 1000, 10000, clip 1.0"
    out["clipping.per_tensor_vs_global"] = entry(
        relative, f"{relative:.3g}",
        "Largest |clip_by_norm - clip_by_global_norm| / |clip_by_global_norm| over the elements "
        f"(Keras's clipnorm, per tensor, against global_clipnorm); {setup}.")
    out["clipping.per_tensor_over_global_factor"] = entry(
        factor, times(factor),
        f"Largest clip_by_norm / clip_by_global_norm over the elements (the smallest tensor); {setup}.")
    norm = float(global_norm(per_tensor))
    out["clipping.global_norm_of_per_tensor"] = entry(
        norm, fixed(norm, 3),
        f"The global norm of the gradients after per-tensor clipping (each tensor at norm 1); {setup}.")
    return out


# --- callbacks ----------------------------------------------------------------------------------

#: A validation loss that plateaus with tiny improvements, then stops improving at all.
PLATEAU = [1.0, 0.8, 0.7, 0.69995, 0.6999, 0.69989, 0.69988, 0.69987, 0.69986, 0.69985, 0.69985, 0.69985]


def callbacks():
    out = {}
    model = StandInModel(SGD(0.1))
    trace = run_callback(ReduceLROnPlateau(factor=0.5, patience=2, min_delta=1e-4), model, PLATEAU)
    keras = [i for i, e in enumerate(trace.epochs) if e["lr_end"] != e["lr_begin"]]
    naive, best, wait = [], math.inf, 0
    for epoch, loss in enumerate(PLATEAU):
        reduce, best, wait = textbook.plateau(loss, best, wait, patience=2)
        if reduce:
            naive.append(epoch)
    curve = f"the validation losses {PLATEAU} (epochs from 0)"
    out["callbacks.plateau_first_reduction_keras"] = entry(
        keras[0], str(keras[0]),
        "First epoch at which ReduceLROnPlateau(factor=0.5, patience=2, min_delta=1e-4) (Keras's "
        f"absolute min_delta) halves the rate, on {curve}.")
    out["callbacks.plateau_reductions_keras"] = entry(
        len(keras), str(len(keras)), f"How many times it halves the rate over those {len(PLATEAU)} epochs.")
    out["callbacks.plateau_first_reduction_naive"] = entry(
        naive[0], str(naive[0]),
        "First epoch at which the naive rule (reduce when the loss has not decreased for 2 epochs, "
        f"no min_delta; textbook.plateau) reduces, on {curve}.")
    out["callbacks.plateau_reductions_naive"] = entry(
        len(naive), str(len(naive)), f"How many times the naive rule reduces over those {len(PLATEAU)} epochs.")
    return out


# --- augmentation -------------------------------------------------------------------------------


def cutmix():
    out = {}
    rng = np.random.default_rng(0)
    images = rng.random((8, 32, 32, 3))
    labels = np.eye(8)  # each image its own class: any change of partner moves label mass
    layer = CutMix(factor=(1.0, 1.0), seed=0, dtype="float64")  # Beta(1 + 1e-6, 1 + 1e-6)
    draws = layer.draw(8)
    ours = layer({"images": images, "labels": labels}, draws=draws)
    lesson_images, lesson_labels = textbook.lesson_cutmix(
        images, labels, lam=draws["mix_weight"], perm=draws["permutation_order"])

    def pixels(mixed):
        return float(np.mean(np.any(mixed != images, axis=-1)))

    def label_mass(mixed):
        return float(np.sum(np.abs(mixed - labels)) / 2 / len(labels))

    setup = ("a batch of 8 random 32x32x3 float64 images each of its own class, alpha 1 "
             "(CutMix(factor=(1.0, 1.0))), the same draws for both (seed 0)")
    for key, mixed_images, mixed_labels, who in (
            ("lesson", lesson_images, lesson_labels, "the lesson's CutMix (textbook.lesson_cutmix)"),
            ("keras", ours["images"], ours["labels"], "scratchopt's (= Keras's) CutMix")):
        value = pixels(mixed_images)
        out[f"cutmix.{key}_pixels_changed"] = entry(
            value, percent(value),
            f"Fraction of pixels that {who} changes; {setup}.")
        value = label_mass(mixed_labels)
        out[f"cutmix.{key}_label_mass_moved"] = entry(
            value, percent(value),
            f"Fraction of the label mass that {who} moves to other classes; {setup}.")
    return out


# --- the whole set ------------------------------------------------------------------------------

SECTIONS = (optimizers, schedules, regularization, dropout, batchnorm, layernorm, clipping, callbacks, cutmix)


def measure():
    """``{key: {"value", "text", "what"}}`` for every number, in the order of the sections."""
    numbers = {}
    for section in SECTIONS:
        numbers.update(section())
    return numbers


def document(numbers):
    return {"command": COMMAND, "numbers": numbers}


def render(numbers):
    return json.dumps(document(numbers), indent=2, ensure_ascii=False) + "\n"


def differences(committed, fresh):
    """The keys whose entries differ (or exist on one side only), with what differs."""
    old = committed.get("numbers", {})
    out = []
    for key in sorted(set(old) | set(fresh)):
        if key not in old:
            out.append(f"{key}: not in the committed file")
        elif key not in fresh:
            out.append(f"{key}: no longer measured")
        elif old[key] != fresh[key]:
            fields = [f for f in ("value", "text", "what") if old[key].get(f) != fresh[key].get(f)]
            out.append(f"{key}: {', '.join(fields)} differ (committed {old[key]['value']!r} "
                       f"{old[key]['text']!r}, measured {fresh[key]['value']!r} {fresh[key]['text']!r})")
    if committed.get("command") != COMMAND:
        out.append(f"command: {committed.get('command')!r}, expected {COMMAND!r}")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if the committed file differs from a fresh measurement")
    args = parser.parse_args(argv)
    numbers = measure()
    if args.check:
        try:
            committed = json.loads(OUTPUT.read_text())
        except FileNotFoundError:
            print(f"{OUTPUT} is missing: run {COMMAND}")
            return 1
        diff = differences(committed, numbers)
        if diff:
            print(f"{OUTPUT.relative_to(HERE.parent)} differs from a fresh measurement "
                  f"(run {COMMAND} to rewrite it):")
            print("\n".join(f"  {line}" for line in diff))
            return 1
        print(f"{OUTPUT.relative_to(HERE.parent)}: all {len(numbers)} numbers as measured")
        return 0
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(render(numbers))
    width = max(map(len, numbers))
    for key, item in numbers.items():
        print(f"{key:{width}}  {item['text']:>10}  {item['value']!r}")
    print(f"wrote {OUTPUT.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
