"""The lesson's augmentation layers on digits: scratchopt's output, Keras's, and the difference.

Six images of scikit-learn's digits (8x8, upscaled 4x to 32x32 so the geometry shows, pixel
values 0-255) go through each of the lesson's layers, ``RandomFlip("horizontal")``,
``RandomRotation(0.1)``, ``RandomZoom(0.1)``, ``RandomContrast(0.1)``,
``RandomTranslation(0.1, 0.1)``, and through the five in a row (the lesson's pipeline).
Keras's layer draws its own random values; ours is given the same draws
(``scratchopt.tools.parity_augment``), so the two rows must agree, and the third row shows
``|scratchopt - Keras|`` (all black: the same bits). Without TensorFlow only our rows are drawn.
"""

import importlib.util

import numpy as np

LESSON = [("RandomFlip", {"mode": "horizontal"}), ("RandomRotation", {"factor": 0.1}),
          ("RandomZoom", {"height_factor": 0.1}), ("RandomContrast", {"factor": 0.1}),
          ("RandomTranslation", {"height_factor": 0.1, "width_factor": 0.1})]
N_IMAGES = 6


def digits(n=N_IMAGES, scale=4):
    """``n`` digits images as float32 (n, 8 * scale, 8 * scale, 1), values 0-255."""
    from sklearn.datasets import load_digits

    images = load_digits().images[:n] * (255.0 / 16.0)
    images = np.kron(images, np.ones((scale, scale)))
    return images[..., None].astype(np.float32)


def _label(name, kwargs):
    return f"{name}({', '.join(repr(v) for v in kwargs.values())})"


def run(images, with_keras, seed=0):
    """``[(label, ours, theirs or None)]``: each layer alone, then the five in a row."""
    from ... import augment

    rows, ours_chain, theirs_chain = [], images, images
    for i, (name, kwargs) in enumerate(LESSON):
        layer = getattr(augment, name)(**kwargs, seed=seed + i)
        if with_keras:
            from ..parity_augment import draws_from_keras, keras_call, keras_layer

            theirs, uniforms = keras_call(name, kwargs, images, layer=keras_layer(name, {**kwargs, "seed": seed + i}))
            ours = layer(images, draws=draws_from_keras(name, kwargs, uniforms, len(images)))
            theirs_chain, uniforms = keras_call(name, kwargs, theirs_chain)
            ours_chain = layer(ours_chain, draws=draws_from_keras(name, kwargs, uniforms, len(images)))
        else:
            theirs, ours = None, layer(images)
            ours_chain = layer(ours_chain)
        rows.append((_label(name, kwargs), ours, theirs))
    rows.append(("the five in a row", ours_chain, theirs_chain if with_keras else None))
    return rows


def _short(label):
    return label.split("(")[0].replace("Random", "") if "(" in label else "all five"


def draw(path, images, rows):
    """One column per picture (the originals; per layer ours, Keras's, the difference), one
    row per image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [("original\n(digits)", images, "gray")]
    for label, ours, theirs in rows:
        columns.append((f"{_short(label)}\nscratchopt", ours, "gray"))
        if theirs is not None:
            columns.append((f"{_short(label)}\nKeras", theirs, "gray"))
            diff = np.abs(ours.astype(np.float64) - theirs)
            columns.append((f"|difference|\nmax {diff.max():.3g}", diff, "magma"))
    n = images.shape[0]
    fig, axes = plt.subplots(n, len(columns), figsize=(0.95 * len(columns), 1.0 * n + 0.9), squeeze=False)
    for c, (label, batch, cmap) in enumerate(columns):
        for r in range(n):
            ax = axes[r, c]
            vmax = 255 if cmap == "gray" else 1.0  # a difference of 1 grey level would be bright
            ax.imshow(batch[r, :, :, 0], cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, c].set_title(label, fontsize=7)
    fig.suptitle("The lesson's augmentation layers (Flip('horizontal'), Rotation(0.1), Zoom(0.1), Contrast(0.1), "
                 "Translation(0.1, 0.1)): scratchopt vs Keras 3, given Keras's draws; difference in magma, "
                 "1.0 = full brightness", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(path, seed=1):
    """Run the layers, print the per-layer differences, write the PNG; returns the exit code."""
    missing = [m for m in ("matplotlib", "sklearn") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"scratchopt demo augmentation needs {' and '.join(missing)}. Install with:\n"
              '  pip install "scratchopt[demo]"')
        return 2
    with_keras = importlib.util.find_spec("tensorflow") is not None
    images = digits()
    rows = run(images, with_keras, seed)
    print(f"{N_IMAGES} digits images upscaled to 32x32, pixel values 0-255, float32")
    if with_keras:
        print(f"{'layer':<40}{'max |scratchopt - Keras|':>26}{'same bits':>11}")
        for label, ours, theirs in rows:
            same = ours.dtype == theirs.dtype and ours.tobytes() == theirs.tobytes()
            print(f"{label:<40}{float(np.abs(ours - theirs).max()):>26.3g}{'yes' if same else 'no':>11}")
    else:
        print("TensorFlow is not installed: scratchopt's rows only")
    draw(path, images, rows)
    print(f"wrote {path}")
    return 0
