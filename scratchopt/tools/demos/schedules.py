"""The lesson's "Learning Rate Schedules" figure, drawn with scratchopt's schedules.

The lesson's parameters: 1000 steps from an initial rate of 0.1,

* step decay: 0.1, 0.01, 0.001, 0.0001, changing after steps 300, 600 and 800;
* exponential decay: times 0.96 every 100 steps (smoothly, Keras's default);
* cosine decay to 0 (alpha = 0) over the 1000 steps;
* warmup + cosine: linear from 0 to 0.1 over 100 steps, then cosine to 0 at step 1000.

When TensorFlow is installed, Keras's own schedules are drawn over ours (dashed) and the
largest difference is printed; it is 0, since the values are the same bits.
"""

import importlib.util

import numpy as np

from ..keras_reference import Literal

STEPS = 1000
#: The lesson's four schedules, as literal calls: scratchopt's and Keras's are each built
#: from these arguments.
LESSON_SCHEDULES = {
    "Step decay": Literal("PiecewiseConstantDecay", {"boundaries": [300, 600, 800],
                                                     "values": [0.1, 0.01, 0.001, 0.0001]}),
    "Exponential decay": Literal("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 100,
                                                      "decay_rate": 0.96}),
    "Cosine decay": Literal("CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": STEPS, "alpha": 0.0}),
    "Warmup + cosine": Literal("WarmupCosineDecay", {"initial_learning_rate": 0.1, "warmup_steps": 100,
                                                     "total_steps": STEPS}),
}
TABLE_STEPS = [0, 50, 100, 300, 301, 600, 800, 1000]


def curves():
    """``{name: rates at steps 0..STEPS}`` from scratchopt."""
    steps = np.arange(STEPS + 1)
    return {name: literal.scratchopt()(steps) for name, literal in LESSON_SCHEDULES.items()}


def keras_curves():
    """The same curves from Keras, or None when TensorFlow is not installed."""
    if importlib.util.find_spec("tensorflow") is None:
        return None
    from ..keras_reference import keras_schedule_from, tensorflow

    tf = tensorflow()
    out = {}
    for name, literal in LESSON_SCHEDULES.items():
        keras_schedule = keras_schedule_from(literal.name, literal.kwargs)
        out[name] = np.array([np.asarray(keras_schedule(tf.constant(s, tf.int64)))
                              for s in range(STEPS + 1)])
    return out


def draw(path, ours, theirs=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.arange(STEPS + 1)
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for ax, (name, rates) in zip(axes.flat, ours.items()):
        ax.plot(steps, rates, linewidth=2, label="scratchopt")
        if theirs is not None:
            ax.plot(steps, theirs[name], "--", color="black", linewidth=1, label="Keras")
        ax.set_title(name)
        ax.set_xlabel("Step")
        ax.set_ylabel("Learning rate")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle("Learning Rate Schedules")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(path):
    """Write the figure to ``path``, print the table; returns the process exit code."""
    if importlib.util.find_spec("matplotlib") is None:
        print('scratchopt demo draws with matplotlib, which is not installed. Install with:\n'
              '  pip install "scratchopt[demo]"')
        return 2
    ours = curves()
    theirs = keras_curves()
    names = list(ours)
    print("step  " + "  ".join(f"{n:>17}" for n in names))
    for s in TABLE_STEPS:
        print(f"{s:>4}  " + "  ".join(f"{ours[n][s]:>17.9g}" for n in names))
    if theirs is None:
        print("TensorFlow is not installed: Keras's curves are not drawn.")
    else:
        for name in names:
            gap = float(np.max(np.abs(ours[name].astype(np.float64) - theirs[name])))
            same = ours[name].tobytes() == theirs[name].tobytes()
            print(f"{name}: max |scratchopt - Keras| = {gap:.3g}" + (" (same bits)" if same else ""))
    draw(path, ours, theirs)
    print(f"wrote {path}")
    return 0
