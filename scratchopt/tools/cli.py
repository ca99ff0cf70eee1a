"""The ``scratchopt`` command line: ``scratchopt parity`` compares every component with Keras;
``scratchopt demo schedules|optimizers`` redraws the lesson's two figures."""

import argparse
import importlib.util
import sys

INSTALL_HINT = 'pip install "scratchopt[parity]"   (TensorFlow 2.21 CPU, Keras 3.15, rich)'


def _missing_reference():
    return [m for m in ("tensorflow", "keras", "rich") if importlib.util.find_spec(m) is None]


def parity(args):
    missing = _missing_reference()
    if missing:
        print(f"scratchopt parity compares against Keras, but {', '.join(missing)} "
              f"{'is' if len(missing) == 1 else 'are'} not installed. Install with:\n  {INSTALL_HINT}",
              file=sys.stderr)
        return 2
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from . import parity as checks

    steps = 20 if args.quick else args.steps
    entries = checks.entries()
    console = Console() if sys.stdout.isatty() else Console(width=160)
    results = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("comparing with Keras", total=len(entries))
        for check in entries:
            progress.update(task, description=check.label)
            results.append((check.group, check.run(steps)))
            progress.advance(task)
    table = Table(title=f"scratchopt vs Keras {_keras_version()} (eager, CPU): optimizers {steps} steps "
                        f"on shapes {checks.SHAPES}")
    for column in ("component", "dtype", "steps", "max abs diff", "max ULP", "exact", "note"):
        table.add_column(column, justify="left" if column in ("component", "note") else "right")
    group = None
    for row_group, row in results:
        if row_group != group and group is not None:
            table.add_section()
        group = row_group
        table.add_row(row.component, row.dtype, str(row.steps), f"{row.max_abs:.3g}",
                      f"{row.max_ulp:.0f}", "[green]✓[/]" if row.exact else "[red]✗[/]", row.note)
    console.print(table)
    failed = [r for _, r in results if not r.exact]
    console.print(f"{len(results) - len(failed)} of {len(results)} rows exact.")
    if args.json:
        _write_parity_json(args.json, results, steps, args)
        console.print(f"wrote {args.json}")
    return 1 if failed else 0


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
    with open(path, "w") as f:
        json.dump(document, f, indent=1)
        f.write("\n")


def demo(args):
    from .demos import optimizers, schedules

    path = args.out or f"lesson_{args.figure}.png"
    if args.figure == "optimizers":
        return optimizers.main(path, dtype=args.dtype, epochs=args.epochs)
    return schedules.main(path)


def bench(args):
    from . import bench as suite  # imported only for this command

    return suite.main(args)


def _keras_version():
    import keras

    return keras.__version__


def main(argv=None):
    parser = argparse.ArgumentParser(prog="scratchopt", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("parity", help="compare every component with Keras, bit for bit")
    p.add_argument("--steps", type=int, default=200, help="steps per row (default 200)")
    p.add_argument("--quick", action="store_true", help="20 steps per row")
    p.add_argument("--json", metavar="PATH", help="also write the rows as JSON to PATH")
    p.set_defaults(run=parity)
    d = commands.add_parser("demo", help="rerun one of the lesson's figures")
    d.add_argument("figure", choices=["schedules", "optimizers"], help="which figure")
    d.add_argument("--out", help="PNG to write (default: lesson_<figure>.png)")
    d.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                   help="optimizers: the precision of the run (float64 matches Keras bit for bit)")
    d.add_argument("--epochs", type=int, default=50, help="optimizers: epochs (default 50, the lesson's)")
    d.set_defaults(run=demo)
    b = commands.add_parser("bench", help="time every component on every backend and peer, against the "
                                           "memory-bandwidth floor")
    b.add_argument("--quick", action="store_true", help="sizes 1e3, 1e5, 1e7 and few repeats (under a minute)")
    b.add_argument("--sizes", help="comma-separated element counts, e.g. 1e3,1e6 (default 1e3 ... 1e8)")
    b.add_argument("--components", help="comma-separated, e.g. adam,batchnorm (default: all)")
    b.add_argument("--backends", help="comma-separated backends, peers and floors to run (default: all)")
    b.add_argument("--devices", help="cpu, gpu or cpu,gpu (default: both; gpu when CuPy sees a device)")
    b.add_argument("--repeats", type=int, help="exactly this many timed calls per row (default: by duration)")
    b.add_argument("--out", help="results folder (default benchmarks/results/<device>/ in a checkout, "
                                 "else ./bench-results/)")
    b.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    b.set_defaults(run=bench)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
