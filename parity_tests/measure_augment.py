"""Measure RandomRotation against Keras: with TF's cos/sin (ours) and with libm's alone.

Keras takes cos and sin of the whole vector of angles; TF computes whole packets of 8 with
Eigen's polynomial and the tail with libm. ``scratchopt.augment.rotation.tf_cos_sin``
reproduces that; ``rotation_matrix(..., trig="libm")`` uses libm for every angle, which is
what a straightforward implementation does. This script measures both against Keras:

* cos and sin themselves (ULP), over ``--angles`` angles of the lesson's range (+-36
  degrees) and of the full range (+-360 degrees);
* the 3x3 matrices (ULP of the cos/sin entries, absolute difference of the offsets, on a
  32x32 image);
* the rotated images (absolute difference, pixels in [0, 255], 256 images of 32x32x3).

Run it (about 20 s)::

    python parity_tests/measure_augment.py [--angles 200000] [--out FILE.json]

``test_augment_layers.py`` asserts the libm bound chosen from this measurement.
"""

import argparse
import json

import numpy as np

from scratchopt.augment import RandomRotation
from scratchopt.augment.rotation import libm_cos_sin, rotation_matrix, tf_cos_sin
from scratchopt.numerics import ulp_distance
from scratchopt.tools.keras_reference import tensorflow
from scratchopt.tools.parity_augment import _patched_uniform, keras_layer, sample_images


def keras_matrices(angles, h, w):
    layer = keras_layer("RandomRotation", {"factor": 0.1})
    with _patched_uniform([angles]):
        transformation = layer.get_random_transformation(np.zeros((len(angles), h, w, 1), np.float32))
    return np.asarray(transformation["rotation_matrix"])


def measure(n_angles=200_000, seed=0):
    tf = tensorflow()
    rng = np.random.default_rng(seed)
    report = {"angles": n_angles}
    for label, limit in (("lesson range +-36 deg", 36.0), ("full range +-360 deg", 360.0)):
        theta = rng.uniform(-limit, limit, n_angles).astype(np.float32) * np.float32(np.pi / 180)
        tc, ts = tf.math.cos(theta).numpy(), tf.math.sin(theta).numpy()
        for trig, (c, s) in (("tf", tf_cos_sin(theta)), ("libm", libm_cos_sin(theta))):
            report[f"{label}: {trig} cos/sin max ULP"] = float(max(ulp_distance(c, tc).max(), ulp_distance(s, ts).max()))
            report[f"{label}: {trig} cos/sin share differing"] = float(np.mean((c != tc) | (s != ts)))
    angles = rng.uniform(-36, 36, 20_000).astype(np.float32)
    theirs = keras_matrices(angles, 32, 32)
    for trig in ("tf", "libm"):
        ours = rotation_matrix(angles, 32, 32, trig=trig)
        report[f"matrix {trig}: cos/sin entries max ULP"] = float(ulp_distance(ours[:, [0, 1, 3, 4]],
                                                                                theirs[:, [0, 1, 3, 4]]).max())
        report[f"matrix {trig}: offsets max abs"] = float(np.abs(ours[:, [2, 5]] - theirs[:, [2, 5]]).max())
    x = sample_images(rng, (256, 32, 32, 3), "float32")
    layer = keras_layer("RandomRotation", {"factor": 0.1, "seed": seed})
    from scratchopt.tools.parity_augment import keras_call

    theirs, (angle,) = keras_call("RandomRotation", {"factor": 0.1}, x, layer=layer)
    ours = RandomRotation(0.1)(x, draws={"angle": angle})
    report["images tf: max abs (0-255)"] = float(np.abs(ours - theirs).max())
    from scratchopt.augment import apply_transform

    libm = apply_transform(x, rotation_matrix(angle, 32, 32, trig="libm"))
    report["images libm: max abs (0-255)"] = float(np.abs(libm - theirs).max())
    report["images libm: share of pixels differing"] = float(np.mean(libm != theirs))
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--angles", type=int, default=200_000)
    parser.add_argument("--out", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    report = measure(args.angles)
    for key, value in report.items():
        print(f"{key:55s} {value:.6g}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
