"""Issue 16's CPU rows, before and after, against every installed peer, side by side in one run.

    git worktree add /tmp/before <rev>            # the tree to compare with (remove it after)
    python benchmarks/reductions_before_after.py --before /tmp/before [--rounds 3] \
        [--sizes 1e5 1e7] [--json out.json] [--markdown out.md]

The components (float32, one step each, as ``scratchopt bench`` defines them): clip_by_norm,
clip_by_global_norm over 4 tensors, Adam with and without ``global_clipnorm=1`` on one tensor
and on 1000 (``pack()``ed, the gradients written into ``packed_gradients()``; Keras eager is
left out of those two rows here, at over a second a step: ``scratchopt bench`` has it), and
BatchNormalization, LayerNormalization and Dropout forward (``training=True``) + backward
on ``(n / 100, 100)``. scratchopt runs its default path (the fused optimizer kernels and,
after, the compiled sums), and "after" also with ``NUMBA_NUM_THREADS=1`` (every kernel
serial: on a shared machine the parallel ones wait for a busy core); the "after" ratios
take the faster of the two, the fastest scratchopt path. The peers are those ``scratchopt bench`` has for each component
(torch eager / foreach / fused, Keras eager, ``tf.clip_by_*``, TF's raw ops), run from the
"after" tree's bench code.

Each (tree or peers) x round is one fresh subprocess that imports ``scratchopt`` from its
tree, builds every case, warms it up (numba compiles there), then times it with
``time.perf_counter`` (the median of ``--repeats``). Rounds alternate the order of the
subprocesses, so that a busy machine slows all alike; the table gives the median over
rounds and the ratios: after / before, and each tree / the best peer.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

COMPONENTS = ("clip_norm", "clip_global_norm", "adam", "adam_global_clip", "adam_1000", "adam_1000_global_clip",
              "batchnorm", "layernorm", "dropout")
LABELS = {"clip_norm": "clip_by_norm", "clip_global_norm": "clip_by_global_norm (4 tensors)", "adam": "Adam",
          "adam_global_clip": "Adam global_clipnorm=1", "adam_1000": "Adam, 1000 tensors",
          "adam_1000_global_clip": "Adam global_clipnorm=1, 1000 tensors", "batchnorm": "BatchNormalization fwd+bwd",
          "layernorm": "LayerNormalization fwd+bwd", "dropout": "Dropout(0.5) fwd+bwd"}

WORKER = r"""
import json, os, sys, time, statistics
tree, who, components, sizes = sys.argv[1], sys.argv[2], sys.argv[3].split(","), [int(float(s)) for s in sys.argv[4].split(",")]
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, tree)
import numpy as np
import scratchopt
assert scratchopt.__file__.startswith(tree), scratchopt.__file__

def data(name, n):
    rng = np.random.default_rng(0)
    if name in ("batchnorm", "layernorm", "dropout"):
        shape = (n // 100, 100)
        return {"x": rng.standard_normal(shape, dtype=np.float32), "dy": rng.standard_normal(shape, dtype=np.float32)}
    if name.startswith("clip"):
        g = rng.standard_normal(n, dtype=np.float32)
        return {"grads": [g] if name == "clip_norm" else list(g.reshape(4, -1))}
    return {"g": rng.standard_normal(n, dtype=np.float32), "w": rng.standard_normal(n, dtype=np.float32)}

def ours(name, d):
    from scratchopt import layers, optimizers
    from scratchopt.optimizers import clipping
    if name == "clip_norm":
        return lambda: clipping.clip_by_norm(d["grads"], 1.0)
    if name == "clip_global_norm":
        return lambda: clipping.clip_by_global_norm(d["grads"], 1.0)
    if name.startswith("adam"):
        kw = {"global_clipnorm": 1.0} if name.endswith("global_clip") else {}
        opt = optimizers.Adam(learning_rate=0.001, **kw)
        if not name.startswith("adam_1000"):
            w = [d["w"].copy()]
            return lambda: opt.apply([d["g"]], w)
        w = opt.pack(list(d["w"].copy().reshape(1000, -1)))  # as the bench's fused row: one buffer,
        grads = opt.packed_gradients()                       # the gradients written into its views
        for view, g in zip(grads, d["g"].reshape(1000, -1)):
            view[...] = g
        return lambda: opt.apply(grads, w)
    layer = {"batchnorm": layers.BatchNormalization, "layernorm": layers.LayerNormalization,
             "dropout": lambda: layers.Dropout(0.5, seed=0)}[name]()
    def step():
        layer(d["x"], training=True)
        return layer.backward(d["dy"])
    return step

def peer_steps(name, d):
    from scratchopt.tools.bench import components, peers
    c = components.COMPONENTS[name]
    out = {}
    for peer in peers.PEERS:
        if not peers.applies(peer, c) or (peer == "keras-eager" and c.tensors > 1):
            continue
        try:
            step, method, _ = peers.build(peer, c, d, "cpu")
        except Exception as error:
            print(f"{peer} {name}: {type(error).__name__}: {error}", file=sys.stderr)
            continue
        out[peer] = step
    return out

def median_time(step, n):
    for _ in range(2):
        step()
    repeats = 7 if n >= 10**7 else 40
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)

results = {}
for name in components:
    for n in sizes:
        d = data(name, n)
        steps = {who: ours(name, d)} if who != "peers" else peer_steps(name, d)
        for backend, step in steps.items():
            results[f"{name}|{n}|{backend}"] = median_time(step, n)
        del d
print(json.dumps(results))
"""


#: ``--one-thread``: every library on one thread (numba, torch's OpenMP pool, TF's intra-op
#: pool, BLAS), so that no step waits for a core another process holds.
ONE_THREAD = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1",
              "TF_NUM_INTEROP_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run(tree, who, components, sizes, one_thread=False):
    env = dict(os.environ, **ONE_THREAD) if one_thread else dict(os.environ)
    if who == "after-serial":
        env["NUMBA_NUM_THREADS"] = "1"
    out = subprocess.run([sys.executable, "-c", WORKER, os.path.abspath(tree), who, ",".join(components),
                          ",".join(str(s) for s in sizes)], capture_output=True, text=True, env=env, check=False)
    if out.returncode:
        sys.exit(f"the {who} run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the source tree to compare with")
    parser.add_argument("--after", default=os.path.join(os.path.dirname(__file__), ".."),
                        help="the source tree under test (default: this checkout)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", nargs="*", type=float, default=[1e5, 1e7])
    parser.add_argument("--components", nargs="*", default=list(COMPONENTS), choices=list(COMPONENTS))
    parser.add_argument("--one-thread", action="store_true", help="every library (ours and the peers') on one "
                        "thread: ONE_THREAD's environment variables")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--markdown", help="also write the table here")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes]
    runs = {"before": [], "after": [], "after-serial": [], "peers": []}
    for r in range(args.rounds):
        order = ["before", "after", "after-serial", "peers"]
        order = order if r % 2 == 0 else order[::-1]
        for who in order:
            tree = args.before if who == "before" else args.after
            if who == "after-serial" and args.one_thread:
                continue  # the same as "after" then
            runs[who].append(run(tree, who, args.components, sizes, args.one_thread))
        print(f"round {r + 1} of {args.rounds} done", file=sys.stderr, flush=True)
    keys = set().union(*(set(d) for ds in runs.values() for d in ds))
    median = {k: statistics.median([d[k] for ds in runs.values() for d in ds if k in d]) for k in keys}
    rows = []
    for name in args.components:
        for n in sizes:
            peers = {k.split("|")[2]: t for k, t in median.items() if k.startswith(f"{name}|{n}|")
                     and k.split("|")[2] not in ("before", "after", "after-serial")}
            best = min(peers, key=peers.get) if peers else None
            before, parallel = median.get(f"{name}|{n}|before"), median.get(f"{name}|{n}|after")
            serial = median.get(f"{name}|{n}|after-serial", parallel)
            after = min(parallel, serial)  # the fastest scratchopt path
            rows.append({"component": name, "label": LABELS[name], "elements": n, "before_s": before,
                         "after_default_s": parallel, "after_one_thread_s": serial,
                         "after_s": after, "after_over_before": after / before,
                         "best_peer": best, "best_peer_s": peers.get(best),
                         "before_over_best_peer": before / peers[best] if best else None,
                         "after_over_best_peer": after / peers[best] if best else None, "peers_s": peers})
    lines = [("| component | n | before | after (default / 1 numba thread) | after/before | best peer | "
              "before/peer | after/peer |"), "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        def ms(t):
            return "-" if t is None else f"{t * 1e3:.0f} ms" if t >= 0.9995 else f"{t * 1e3:.3g} ms"

        def x(v):
            return "-" if v is None else f"{v:.2f}x"

        lines.append(f"| {row['label']} | {row['elements']:.0e} | {ms(row['before_s'])} | "
                     f"{ms(row['after_default_s'])} / {ms(row['after_one_thread_s'])} | "
                     f"{x(row['after_over_before'])} | {row['best_peer']} {ms(row['best_peer_s'])} | "
                     f"{x(row['before_over_best_peer'])} | {x(row['after_over_best_peer'])} |")
    for plain_name, what in (("adam", ""), ("adam_1000", ", 1000 tensors")):
        for n in sizes:
            plain = min(median.get(f"{plain_name}|{n}|{w}", float("inf")) for w in ("after", "after-serial"))
            clipped = min(median.get(f"{plain_name}_global_clip|{n}|{w}", float("inf"))
                          for w in ("after", "after-serial"))
            if plain < float("inf") and clipped < float("inf"):
                before = median[f"{plain_name}_global_clip|{n}|before"] / median[f"{plain_name}|{n}|before"]
                lines.append(f"\nAdam with global_clipnorm / Adam without{what}, after, {n:.0e}: "
                             f"{clipped / plain:.2f}x (before: {before:.2f}x)")
    table = "\n".join(lines)
    print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rounds": args.rounds, "sizes": sizes, "one_thread": args.one_thread, "rows": rows,
                       "runs": runs}, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
