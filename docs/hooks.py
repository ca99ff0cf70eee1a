"""mkdocs hooks: what the pages take from the repository, so that nothing on the site is copied.

A page writes a directive on a line of its own (or inline, for numbers); the build
replaces it with the thing itself, read at build time:

    [[source scratchopt.optimizers.adam.update]]   the function's or class's source code
    [[example scratchopt.optimizers.Adam]]         the doctested example of its docstring
    [[number adam.default]]                        a measured number, from docs/generated/numbers.json
                                                   (written by ``python docs/numbers.py``)
    [[parity optimizers]]                          the rows of one group of ``scratchopt parity``,
                                                   from docs/generated/parity.json
    [[parity-summary]]                             "65 of 65 rows exact", with the command and versions
    [[bench amd-epyc-2c adam,adamw 1e3,1e5,1e7]]   rows of a committed benchmark run
                                                   (benchmarks/results/<dir>/results.json)
    [[bench-machine amd-epyc-2c]]                  the machine and versions of that run
    [[gpu-vs-cpu nvidia-h200]]                     the GPU paths against the NumPy path
                                                   (benchmarks/results/<dir>/gpu_vs_cpu.json)
    [[text benchmarks/results/nvidia-h200/gpu_step_overhead.txt]]
                                                   a committed text output, verbatim
    [[targets]]                                    issue 5's speed targets against the committed runs
                                                   (benchmarks/targets.py)
    [[figure benchmarks/results/amd-epyc-2c/time_vs_size_cpu.png | caption]]
                                                   a figure from anywhere in the repository,
                                                   copied into the site

An unknown name, key or file fails the build (``mkdocs build --strict`` runs in CI), so a
page cannot silently lose what it includes.
"""

import importlib
import importlib.util
import inspect
import json
import posixpath
import re
import textwrap
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
DIRECTIVE = re.compile(r"\[\[(source|example|number|parity|parity-summary|bench|bench-machine|gpu-vs-cpu|text|targets|figure)(?:\s+([^\]]*))?\]\]")
_figures = {}  # repository path -> the site path it is copied to


def _load(path):
    try:
        return json.loads((ROOT / path).read_text())
    except FileNotFoundError:
        raise PluginError(f"docs: {path} is missing (see docs/hooks.py for the command that writes it)") from None


def _resolve(name, directive):
    """The object a dotted name means: the longest importable module, then attributes."""
    parts = name.split(".")
    errors = []
    if parts[0] == "docs":  # a script of docs/ (not a package): load it from its file
        for k in range(len(parts), 1, -1):
            path = ROOT.joinpath(*parts[:k]).with_suffix(".py")
            if path.is_file():
                spec = importlib.util.spec_from_file_location("_docs_" + "_".join(parts[1:k]), path)
                obj = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(obj)
                for attribute in parts[k:]:
                    obj = getattr(obj, attribute)
                return obj
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ImportError as error:
            errors.append(error)
            continue
        try:
            for attribute in parts[k:]:
                obj = getattr(obj, attribute)
        except AttributeError as error:
            raise PluginError(f"docs: [[{directive} {name}]]: {error}") from None
        return obj
    raise PluginError(f"docs: [[{directive} {name}]]: no such module ({errors[0]})")


def source(name):
    obj = inspect.unwrap(_resolve(name, "source"))  # a decorated function: its own source
    path = Path(inspect.getsourcefile(obj)).relative_to(ROOT)
    lines, start = inspect.getsourcelines(obj)
    code = textwrap.dedent("".join(lines)).rstrip()
    return f'```python title="{path}, line {start}"\n{code}\n```'


def example(name):
    """The ``>>>`` example of an object's docstring (run by the test suite), as a console block."""
    obj = _resolve(name, "example")
    lines = (inspect.getdoc(obj) or "").splitlines()
    starts = [i for i, line in enumerate(lines) if line.lstrip().startswith(">>>")]
    if not starts:
        raise PluginError(f"docs: [[example {name}]]: its docstring has no >>> example")
    block = lines[starts[0]:]
    end = next((i for i, line in enumerate(block) if not line.strip()
                and not any(x.lstrip().startswith(">>>") for x in block[i + 1:i + 2])), len(block))
    return "```pycon\n" + textwrap.dedent("\n".join(block[:end])).rstrip() + "\n```"


def number(key):
    numbers = _load("docs/generated/numbers.json")["numbers"]
    if key not in numbers:
        raise PluginError(f"docs: [[number {key}]] is not in docs/generated/numbers.json")
    return numbers[key]["text"]


def _fmt(x):
    return "0" if x == 0 else "inf" if x == float("inf") else f"{x:.3g}"


def parity(group):
    document = _load("docs/generated/parity.json")
    rows = [r for r in document["rows"] if r["group"] == group]
    if not rows:
        raise PluginError(f"docs: [[parity {group}]]: no rows in that group of docs/generated/parity.json")
    bounded = any(r.get("bound") for r in rows)
    out = ["| component | dtype | steps | max abs diff | max ULP | exact |" + (" bound |" if bounded else ""),
           "|---|---|---|---|---|---|" + ("---|" if bounded else "")]
    for r in rows:
        mark = "✓" if r["exact"] else "≈ within bound" if r.get("bound") and r.get("within", True) else "✗"
        out.append(f"| {r['component']} | {r['dtype']} | {r['steps']} | {_fmt(r['max_abs'])} | "
                   f"{_fmt(r['max_ulp'])} | {mark} |" + (f" {r.get('bound', '')} |" if bounded else ""))
    return "\n".join(out)


def parity_summary(_):
    d = _load("docs/generated/parity.json")
    exact = sum(r["exact"] for r in d["rows"])
    bounded = sum(not r["exact"] and bool(r.get("bound")) and r.get("within", True) for r in d["rows"])
    return (f"**{exact} of {len(d['rows'])} rows exact**"
            + (f" and {bounded} within their measured bound" if bounded else "") + ", from `{d['command']}` against Keras {d['keras']} "
            f"and TensorFlow {d['tensorflow']} (CPU wheel), NumPy {d['numpy']}, on {d['machine']}.")


BENCH_COLUMNS = ("component", "size", "backend", "median", "GB/s", "% copy floor", "vs best peer")


def bench(arguments):
    parts = arguments.split()
    if len(parts) != 3:
        raise PluginError(f"docs: [[bench {arguments}]]: expected a results folder, components, sizes")
    folder, components, sizes = parts[0], parts[1].split(","), {float(s) for s in parts[2].split(",")}
    results = _load(f"benchmarks/results/{folder}/results.json")
    rows = [r for r in results["rows"] if r["component"] in components and r["size"] in sizes
            and r["backend"] != "reachable-floor"]
    if not rows:
        raise PluginError(f"docs: [[bench {arguments}]]: no such rows")
    names = {name: c.get("label", name) for name, c in results["components"].items()}
    out = ["| " + " | ".join(BENCH_COLUMNS) + " |", "|" + "---|" * len(BENCH_COLUMNS)]
    for r in rows:
        ratio = r.get("ratio_to_best_peer")
        out.append(f"| {names.get(r['component'], r['component'])} | {r['size']:.0e} | {r['backend']} | "
                   f"{_time(r['median_s'])} | {r['gbps']:.3g} | {_pct(r.get('pct_copy_floor'))} | "
                   f"{'—' if ratio is None or r['kind'] == 'floor' else f'{ratio:.2f}×'} |")
    return "\n".join(out)


def _time(seconds):
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def _pct(x):
    return "—" if x is None else f"{x:.0f}%"


def bench_machine(folder):
    r = _load(f"benchmarks/results/{folder}/results.json")
    m, settings = r["machine"], r["settings"]
    host = f"{m['cpu_model']}, {m['cores']} cores"
    where = f"{m['gpu']['name']} (host: {host})" if "gpu" in r["devices"] and m.get("gpu") else host
    plan = settings["plan"]
    command = "scratchopt bench" + ("" if settings["devices"] == ["cpu", "gpu"] else f" --devices {','.join(settings['devices'])}")
    if plan["min_repeats"] == plan["max_repeats"]:
        command += f" --repeats {plan['min_repeats']}"
    versions = ", ".join(f"{k} {v}" for k, v in r["versions"].items() if v)
    load = m.get("load_average", {}).get("before")
    return (f"Measured by `{command}` on **{where}**, {r['created']}, in {r.get('wall_s', 0):.0f} s; {versions}"
            + (f"; 1-minute load average {load[0]} before the run." if load else "."))


def gpu_vs_cpu(folder):
    d = _load(f"benchmarks/results/{folder}/gpu_vs_cpu.json")
    intro = (f"On **{d['device']}** (CuPy {d['cupy']}, NumPy {d['numpy']}), `python benchmarks/gpu_vs_cpu.py`: "
             "largest difference of the final params and slots after "
             f"{d['rows'][0]['steps']} steps, in ULPs and relative to the array's largest magnitude.")
    out = [intro, "",
           "| optimizer | dtype | case | CuPy array path vs NumPy | fused CuPy vs NumPy | fused vs array |",
           "|---|---|---|---|---|---|"]
    for r in d["rows"]:
        options = ", ".join(f"{k}={v}" for k, v in r["options"].items())
        cells = [f"{u:.3g} ULP, {rel:.2g}" if u else "0 (same bits)" for u, rel in (r["array_vs_numpy"], r["fused_vs_numpy"])]
        fa = "0 (same bits)" if not r["fused_vs_array"][0] else f"{r['fused_vs_array'][0]:.3g} ULP"
        out.append(f"| {r['optimizer']}({options}) | {r['dtype']} | {r['case']} | {cells[0]} | {cells[1]} | {fa} |")
    return "\n".join(out)


def text(path):
    if not (ROOT / path).is_file():
        raise PluginError(f"docs: [[text {path}]]: no such file")
    return f'```text title="{path}"\n{(ROOT / path).read_text().rstrip()}\n```'


def targets(_):
    import runpy

    return runpy.run_path(str(ROOT / "benchmarks" / "targets.py"))["markdown"]()


def figure(arguments, page):
    path, _, caption = (a.strip() for a in arguments.partition("|"))
    if not (ROOT / path).is_file():
        raise PluginError(f"docs: [[figure {path}]]: no such file")
    target = _figures.setdefault(path, "assets/" + path.replace("/", "_"))
    link = posixpath.relpath(target, posixpath.dirname(page.file.src_uri) or ".")
    return f"![{caption}]({link})\n\n*{caption}*" if caption else f"![{path}]({link})"


def on_page_markdown(markdown, page, config, files):
    def replace(match):
        kind, argument = match.group(1), (match.group(2) or "").strip()
        if kind == "figure":
            return figure(argument, page)
        return {"source": source, "example": example, "number": number, "parity": parity, "parity-summary": parity_summary,
                "bench": bench, "bench-machine": bench_machine, "gpu-vs-cpu": gpu_vs_cpu,
                "text": text, "targets": targets}[kind](argument)

    return DIRECTIVE.sub(replace, markdown)


def on_files(files, config):
    """Add every figure a page includes (found by scanning the pages) to the site."""
    docs = Path(config["docs_dir"])
    for page in docs.rglob("*.md"):
        for match in DIRECTIVE.finditer(page.read_text()):
            if match.group(1) == "figure":
                path = match.group(2).partition("|")[0].strip()
                target = _figures.setdefault(path, "assets/" + path.replace("/", "_"))
                if (ROOT / path).is_file() and files.get_file_from_path(target) is None:
                    files.append(File.generated(config, target, abs_src_path=str(ROOT / path)))
    return files
