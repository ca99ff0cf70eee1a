"""The ``scratchopt`` command line: ``scratchopt parity`` compares every component with Keras
(``--framework torch``: ``scratchopt.torch`` with PyTorch); ``scratchopt demo
schedules|optimizers|training|augmentation|lstm`` redraws the lesson's figures; ``scratchopt
bench`` times every component; ``scratchopt conventions`` measures Keras's forms against
PyTorch's. Results go to stdout, progress to stderr; without ``--out`` the
figures and benchmark results go to ``scratchopt-output/`` in the working directory."""

import argparse
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

INSTALL_HINT = 'pip install "scratchopt[parity]"   (TensorFlow 2.21 CPU, Keras 3.15, rich)'

#: Where figures and benchmark results go without ``--out`` (``.gitignore`` lists it).
OUTPUT_DIR = Path("scratchopt-output")


def _missing_reference():
    return [m for m in ("tensorflow", "keras", "rich") if importlib.util.find_spec(m) is None]


def _quiet_tensorflow():
    """TensorFlow's logs off for the commands: its C++ info and warnings
    (``TF_CPP_MIN_LOG_LEVEL=2``, unless the user set it), the oneDNN notice it prints on
    import (``keras_reference.tensorflow`` drops it) and its Python logger below errors.
    Nothing that changes the arithmetic: ``TF_ENABLE_ONEDNN_OPTS`` is left alone."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if importlib.util.find_spec("tensorflow") is None:
        return
    from .keras_reference import tensorflow

    tf = tensorflow()
    tf.get_logger().setLevel("ERROR")
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # absl comes with TensorFlow; without it there is nothing to quiet
        pass


def parity(args):
    if args.framework == "torch":
        return parity_torch(args)
    missing = _missing_reference()
    if missing:
        print(f"scratchopt parity compares against Keras, but {', '.join(missing)} "
              f"{'is' if len(missing) == 1 else 'are'} not installed. Install with:\n  {INSTALL_HINT}",
              file=sys.stderr)
        return 2
    _quiet_tensorflow()
    from rich.console import Console
    from rich.table import Table

    from . import parity as checks
    from .progress import Stages

    steps = 20 if args.quick else args.steps
    entries = checks.entries()
    results = []
    with Stages(len(entries), "scratchopt parity") as stages:
        for check in entries:
            stages.start(f"{check.group}: {check.label}")
            results.append((check.group, check.run(steps)))
    console = Console(file=sys.stdout) if sys.stdout.isatty() else Console(file=sys.stdout, width=160)
    table = Table(title=f"scratchopt vs Keras {_keras_version()} (eager, CPU): optimizers {steps} steps "
                        f"on shapes {checks.SHAPES}")
    for column in ("component", "dtype", "steps", "max abs diff", "max ULP", "exact", "note"):
        table.add_column(column, justify="left" if column in ("component", "note") else "right")
    group = None
    for row_group, row in results:
        if row_group != group and group is not None:
            table.add_section()
        group = row_group
        mark = "[green]✓[/]" if row.exact else "[yellow]≈ bound[/]" if row.passed else "[red]✗[/]"
        table.add_row(row.component, row.dtype, str(row.steps), f"{row.max_abs:.3g}",
                      f"{row.max_ulp:.0f}", mark, row.note)
    console.print(table)
    console.print(summary([row for _, row in results]))
    failed = [r for _, r in results if not r.passed]
    if args.json:
        try:
            _write_parity_json(args.json, results, steps, args)
        except OSError as error:
            print(f"scratchopt parity: cannot write {args.json}: {error.strerror or error}", file=sys.stderr)
            return 2
        console.print(f"wrote {args.json}")
    return 1 if failed else 0


def parity_torch(args):
    """``scratchopt.torch`` against PyTorch 2.13 on the CPU (one intra-op thread)."""
    missing = [m for m in ("torch", "rich") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"scratchopt parity --framework torch compares against PyTorch, but {', '.join(missing)} "
              f"{'is' if len(missing) == 1 else 'are'} not installed. Install with:\n"
              '  pip install "scratchopt[torch,parity]"', file=sys.stderr)
        return 2
    from rich.console import Console
    from rich.table import Table

    from .parity_torch import entries
    from .parity_torch_nn import TORCH_NN_ROWS, run_torch_nn_row
    from .parity import Check
    from .progress import Stages

    steps = 20 if args.quick else args.steps
    checks = entries() + [Check("torch.nn", f"{c} {d}", lambda n, c=c, d=d: run_torch_nn_row(c, d, min(n, 20)))
                          for c, _ in TORCH_NN_ROWS for d in ("float32", "float64")]
    results = []
    with Stages(len(checks), "scratchopt parity --framework torch") as stages:
        for check in checks:
            stages.start(f"{check.group}: {check.label}")
            results.append((check.group, check.run(steps)))
    import torch

    console = Console(file=sys.stdout) if sys.stdout.isatty() else Console(file=sys.stdout, width=160)
    table = Table(title=f"scratchopt.torch vs PyTorch {torch.__version__} (CPU, foreach=False, one thread)")
    for column in ("component", "dtype", "steps", "max abs diff", "max ULP", "exact", "note"):
        table.add_column(column, justify="left" if column in ("component", "note") else "right")
    for _, row in results:
        mark = "[green]✓[/]" if row.exact else "[yellow]≈ bound[/]" if row.passed else "[red]✗[/]"
        table.add_row(row.component, row.dtype, str(row.steps), f"{row.max_abs:.3g}", f"{row.max_ulp:.0f}",
                      mark, row.note)
    console.print(table)
    console.print(summary([row for _, row in results]))
    return 0 if all(row.passed for _, row in results) else 1


def summary(rows):
    """"N of M rows exact", and how many more are within their measured bound, and failed."""
    exact = sum(r.exact for r in rows)
    bounded = sum(r.passed and not r.exact for r in rows)
    failed = len(rows) - exact - bounded
    return (f"{exact} of {len(rows)} rows exact" + (f", {bounded} within their measured bound" if bounded else "")
            + (f", {failed} FAILED" if failed else "") + ".")


def _write_parity_json(path, results, steps, args):
    """The table as JSON (the documentation's parity page is generated from it)."""
    import dataclasses
    import json
    import platform

    import tensorflow as tf

    command = "scratchopt parity" + (" --quick" if args.quick else f" --steps {steps}") + f" --json {path}"
    document = {"command": command, "keras": _keras_version(), "tensorflow": tf.__version__,
                "numpy": __import__("numpy").__version__, "machine": f"{platform.machine()} {platform.processor()}".strip(),
                "steps": steps, "rows": [{"group": group, **dataclasses.asdict(row)} for group, row in results]}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(document, f, indent=1, default=lambda o: o.item())  # NumPy scalars as Python's
        f.write("\n")


def demo(args):
    from .demos import augmentation, lstm, optimizers, schedules, training

    if args.all and args.figure != "optimizers":
        print(f"scratchopt demo: --all draws the optimizers' second figure; {args.figure} has none",
              file=sys.stderr)
        return 2
    path = Path(args.out) if args.out else OUTPUT_DIR / f"lesson_{args.figure}.png"
    if args.out is None:
        unwritable = _unwritable(path, directory=False)
        if unwritable:
            print(f"scratchopt demo: cannot write {path}: {unwritable}; give another path with --out",
                  file=sys.stderr)
            return 2
    _quiet_tensorflow()
    path.parent.mkdir(parents=True, exist_ok=True)
    if args.figure == "optimizers":
        return optimizers.main(path, dtype=args.dtype, epochs=args.epochs or optimizers.EPOCHS, every=args.all)
    if args.figure == "training":
        return training.main(path, dtype=args.dtype, epochs=args.epochs, dropout=not args.no_dropout,
                             quick=args.quick, runs=args.runs)
    if args.figure == "augmentation":
        return augmentation.main(path)
    if args.figure == "lstm":
        return lstm.main(path, epochs=args.epochs or lstm.EPOCHS, dtype=args.dtype)
    return schedules.main(path)


def conventions(args):
    from . import conventions as table  # imported only for this command

    _quiet_tensorflow()
    return table.main(["--epochs", str(args.epochs), "--dtype", args.dtype] + (["--markdown"] if args.markdown else []))


def bench(args):
    from . import bench as suite  # imported only for this command

    return suite.main(args)


def _keras_version():
    import keras

    return keras.__version__


# --- argument checks: a usage error (exit 2) before any work ------------------------------------


def positive_int(text):
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _unwritable(path, directory):
    """Why ``path`` cannot be written (a file, or with ``directory`` a folder to write files
    in, created if missing), or None. Tried, not guessed: a file is made in the nearest
    folder that exists and removed again; an existing file is opened for appending (its
    contents are not touched)."""
    path = Path(path)
    if path.exists():
        if directory and not path.is_dir():
            return "it is a file, not a folder"
        if not directory and path.is_dir():
            return "it is a folder; give a file path"
        if not directory:
            try:
                with open(path, "a"):
                    pass
            except OSError as error:
                return error.strerror or str(error)
            return None
    folder = path if directory and path.exists() else path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    try:
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".scratchopt-write-test-")
    except OSError as error:
        return f"cannot create files in {folder}: {error.strerror or error}"
    os.close(handle)
    os.unlink(probe)
    return None


def writable_file(text):
    """An argparse type: a file path that can be written (checked now, before any work)."""
    why = _unwritable(text, directory=False)
    if why:
        raise argparse.ArgumentTypeError(f"cannot write {text}: {why}")
    return text


def writable_folder(text):
    """An argparse type: a folder that exists or can be made, and files can be written in."""
    why = _unwritable(text, directory=True)
    if why:
        raise argparse.ArgumentTypeError(f"cannot write in {text}: {why}")
    return text


def build_parser():
    """The parser, and each subcommand's parser by name (for their own usage errors)."""
    parser = argparse.ArgumentParser(prog="scratchopt", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("parity", help="compare every component with Keras, bit for bit")
    p.add_argument("--steps", type=positive_int, default=200, help="steps per row, at least 1 (default 200)")
    p.add_argument("--quick", action="store_true", help="20 steps per row")
    p.add_argument("--json", metavar="PATH", type=writable_file, help="also write the rows as JSON to PATH")
    p.add_argument("--framework", choices=["keras", "torch"], default="keras",
                   help="the reference: Keras (default) or PyTorch 2.13 for scratchopt.torch")
    p.set_defaults(run=parity)
    d = commands.add_parser("demo", help="rerun one of the lesson's figures")
    d.add_argument("figure", choices=["schedules", "optimizers", "training", "augmentation", "lstm"],
                   help="which figure")
    d.add_argument("--out", type=writable_file,
                   help=f"PNG to write (default: {OUTPUT_DIR}/lesson_<figure>.png)")
    d.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                   help="optimizers, training, lstm: the precision of the run (float64 matches Keras bit for "
                        "bit in optimizers, to a measured bound in training)")
    d.add_argument("--epochs", type=positive_int, default=None,
                   help="optimizers, training, lstm: epochs, at least 1 (default: optimizers 50, the "
                        "lesson's; training 15, or 2 with --quick; lstm 25)")
    d.add_argument("--all", action="store_true",
                   help="optimizers: also every other optimizer Keras ships, in a second figure "
                        "(<PNG name>_all.png; about a minute per optimizer and framework for 50 epochs)")
    d.add_argument("--no-dropout", action="store_true",
                   help="training: every dropout rate 0 (the masks are Keras's either way: in float64 the "
                        "losses follow Keras's epoch by epoch with dropout or without)")
    d.add_argument("--quick", action="store_true",
                   help="training: 256 training and 64 validation images, 2 epochs")
    d.add_argument("--runs", type=writable_folder,
                   help="training: folder for the callbacks' files, best_model.keras and the TensorBoard "
                        "logs, one subfolder per framework (default: <PNG name>_runs next to the PNG)")
    d.set_defaults(run=demo)
    b = commands.add_parser("bench", help="time every component on every backend and peer, against the "
                                           "memory-bandwidth floor")
    b.add_argument("--quick", action="store_true", help="sizes 1e3, 1e5, 1e7 and few repeats (under a minute)")
    b.add_argument("--sizes", help="comma-separated element counts, e.g. 1e3,1e6 (default 1e3 ... 1e8)")
    b.add_argument("--components", help="comma-separated, e.g. adam,batchnorm (default: all)")
    b.add_argument("--backends", help="comma-separated backends, peers and floors to run (default: all)")
    b.add_argument("--devices", help="cpu, gpu or cpu,gpu (default: both; gpu when CuPy sees a device)")
    b.add_argument("--repeats", type=positive_int, help="exactly this many timed calls per row (default: by duration)")
    b.add_argument("--out", type=writable_folder,
                   help=f"results folder (default {OUTPUT_DIR}/bench/<device>/; the committed results: "
                        "--out benchmarks/results/<device>/)")
    b.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    b.set_defaults(run=bench)
    c = commands.add_parser("conventions", help="Keras's form against PyTorch's, technique by technique, measured")
    c.add_argument("--epochs", type=positive_int, default=50, help="epochs of the lesson's training per drift (default 50)")
    c.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    c.add_argument("--markdown", action="store_true", help="the table of docs/torch/conventions.md")
    c.set_defaults(run=conventions)
    return parser, {"parity": p, "demo": d, "bench": b, "conventions": c}


def main(argv=None):
    parser, subcommands = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # an option the subcommand does not have: its usage, not the top level's
        subcommands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
