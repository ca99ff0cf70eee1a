"""``scratchopt bench``: every component, on every backend and peer, against the memory floor.

An optimizer step, a normalization or a clip is memory-bound: its speed limit is the bytes it
must move (``components.py``: the bytes model) over the memory bandwidth. Each row of the
suite times one step of one component at one size on one backend, and sets it beside two
floors measured in the same run, at the same size, on the same device (``floors.py``), and
beside the fastest peer (Keras, TensorFlow's raw ops, PyTorch; ``peers.py``).

    scratchopt bench [--quick] [--sizes 1e3,1e5] [--components adam,sgd] [--backends ...]
                     [--devices cpu,gpu] [--repeats N] [--out DIR] [--no-plots]

``results.json`` (``schema: "scratchopt.tools.bench/1"``)::

    schema, created (UTC, ISO 8601), wall_s, device_name
    machine     cpu_model, cores, usable_cores, caches {L1d, L2, L3: bytes}, mem_total_bytes,
                mem_available_bytes, platform, python, gpu (null, or name, memory_bytes,
                free_bytes, l2_bytes, cuda_runtime, cuda_driver)
    versions    python, scratchopt, numpy, numba, tensorflow, keras, torch, cupy (null: absent)
    settings    quick, devices, sizes, components, backends, dtype, plan {warmup, min_repeats,
                max_repeats, budget_s}, tf_intra_op_threads, numba_threads,
                reachable_floor {device: method}, cache_bytes {device: bytes}
    devices     the devices that ran ("cpu", "gpu");  gpu_missing_reason: why no GPU, or null
    backends    {device: {backend: {kind, available, reason}}}
    components  {name: {label, family, model, bytes_per_element,
                 working_set_bytes_per_element, passes [{reads, writes, in_place, reduce}]}}
    rows        one per (device, component, size, backend) that ran:
                device, component, backend, kind ("ours" | "peer" | "floor"), size (asked),
                elements (used), dtype, median_s, q1_s, q3_s, min_s, max_s, repeats, method,
                note, bytes (bytes model x elements), gbps (bytes / median_s / 1e9),
                working_set_bytes, regime ("cache-resident" | "memory"), copy_floor_s,
                reachable_floor_s, pct_copy_floor, pct_reachable_floor (100 x floor /
                median_s), best_peer, ratio_to_best_peer (median_s / best peer's median_s)
    skipped     [{device, component, size, reason}]    sizes that would not fit in memory
    unavailable [{device, component, backend, reason}] backends that could not run
    errors      [{device, component, backend, size, ..., error, traceback}]

The package needs NumPy alone; rich draws the progress bar and the table, matplotlib the
plots (``pip install "scratchopt[bench]"``), and each peer is imported only to be timed.
"""

import argparse
import io
import time
from pathlib import Path

from . import components, runner
from .timing import FULL, QUICK, fixed

__all__ = ["Config", "main", "run"]

run = runner.run
Config = runner.Config


def _sizes(text):
    try:
        return tuple(int(float(s)) for s in text.replace(" ", ",").split(",") if s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes: numbers like 1e3,1e5 expected, got {text!r}") from None


def _names(text, known, option):
    names = tuple(s for s in text.replace(" ", ",").split(",") if s)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"{option}: unknown {', '.join(unknown)}; choose from {', '.join(known)}")
    return names


def config_from(args):
    """A ``runner.Config`` from the command line's options (see ``scratchopt/tools/cli.py``)."""
    quick = bool(args.quick)
    sizes = _sizes(args.sizes) if args.sizes else (runner.QUICK_SIZES if quick else runner.DEFAULT_SIZES)
    if not sizes or min(sizes) < 1:
        raise ValueError("--sizes: positive sizes expected")
    if args.components:
        names = _names(args.components, tuple(components.COMPONENTS), "--components")
    else:
        names = runner.QUICK_COMPONENTS if quick else tuple(components.COMPONENTS)
    backends = _names(args.backends, runner.BACKENDS, "--backends") if args.backends else runner.BACKENDS
    if args.repeats is not None and args.repeats < 1:
        raise ValueError("--repeats: at least 1")
    plan = fixed(args.repeats) if args.repeats else QUICK if quick else FULL
    devices = _names(args.devices, ("cpu", "gpu"), "--devices") if getattr(args, "devices", None) else ("cpu", "gpu")
    return runner.Config(sizes=sizes, components=names, backends=backends, plan=plan, devices=devices, quick=quick)


def main(args):
    """Run the suite for the parsed ``scratchopt bench`` options; 0 if every case ran."""
    import sys

    try:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )
    except ImportError:
        print('scratchopt bench draws its table with rich: pip install "scratchopt[bench]"', file=sys.stderr)
        return 2
    from . import machine, report

    try:
        config = config_from(args)
    except (ValueError, argparse.ArgumentTypeError) as error:
        print(f"scratchopt bench: {error}", file=sys.stderr)
        return 2
    if not args.out:  # the default folder, checked before the run as --out is by the parser
        from ..cli import _unwritable

        why = _unwritable(machine.OUTPUT_DIR, directory=True)
        if why:
            print(f"scratchopt bench: cannot write in {machine.OUTPUT_DIR}: {why}; give a folder with --out",
                  file=sys.stderr)
            return 2
    console = Console() if sys.stdout.isatty() else Console(width=200)
    busy = machine.busy_warning()
    if busy:
        console.print("warning: " + busy, highlight=False, markup=False)
    start = time.perf_counter()
    columns = (TextColumn("{task.description:<44}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    # The bar on stderr (bound to it: never into what sys.stdout is at a redraw), the table on stdout.
    with Progress(*columns, console=Console(file=sys.stderr), transient=True, redirect_stdout=False,
                  redirect_stderr=False) as progress:
        task = progress.add_task("planning", total=None)

        def follow(done, total, description):
            progress.update(task, completed=done, total=total, description=description)

        results = runner.run(config, follow)
    results["wall_s"] = round(time.perf_counter() - start, 2)
    gpu = results["machine"]["gpu"] if "gpu" in results["devices"] else None
    out = Path(args.out) if args.out else machine.default_out(gpu)
    out.mkdir(parents=True, exist_ok=True)
    recorder = Console(record=True, width=200, file=io.StringIO())  # the same table, as table.txt
    for table in report.tables(results):
        console.print(table)
        recorder.print(table)
    for line in report.notes(results):
        console.print(line, highlight=False, markup=False)
        recorder.print(line, highlight=False, markup=False)
    written = [report.write_json(results, out / "results.json")]
    (out / "table.txt").write_text(recorder.export_text())
    written.append(out / "table.txt")
    if not getattr(args, "no_plots", False):
        pngs = report.plots(results, out)
        if not pngs:
            console.print('No plots: matplotlib is not installed (pip install "scratchopt[bench]").',
                          markup=False)
        written += pngs
    console.print(f"{len(results['rows'])} rows in {results['wall_s']:.1f} s; wrote "
                  + ", ".join(str(p) for p in written), highlight=False)
    return 1 if results["errors"] else 0
