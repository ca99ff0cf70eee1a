"""The learning site: it builds with ``mkdocs build --strict``, covers every public class,
and its runnable example runs.

``mkdocs build --strict`` fails on a broken link, a missing page, or anything a page takes
from the repository through ``docs/hooks.py`` that is not there (a renamed function, a
number ``docs/numbers.py`` no longer writes, a class without a doctested example). The build
needs the ``docs`` extra, which the ``test`` extra installs; without it the build test is
skipped with that reason.
"""

import importlib
import importlib.util
import inspect
import html
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PUBLIC_MODULES = ["scratchopt.optimizers", "scratchopt.schedules", "scratchopt.regularizers",
                  "scratchopt.callbacks", "scratchopt.layers", "scratchopt.augment", "scratchopt.nn",
                  "scratchopt.torch.optim", "scratchopt.torch.optim.lr_scheduler", "scratchopt.torch.nn"]


def public_classes():
    """Every class a public module exposes (its own, not imported from outside scratchopt)."""
    out = []
    for name in PUBLIC_MODULES:
        module = importlib.import_module(name)
        for attribute, value in vars(module).items():
            if (inspect.isclass(value) and not attribute.startswith("_")
                    and value.__module__.startswith("scratchopt")):
                out.append(value)
    return sorted(set(out), key=lambda c: c.__name__)


def test_every_public_class_has_a_section_with_its_example():
    pages = {p: p.read_text() for p in DOCS.rglob("*.md")}
    missing = []
    for cls in public_classes():
        heading = re.compile(rf"^### {re.escape(cls.__name__)}\b", re.MULTILINE)
        here = [p for p, text in pages.items() if heading.search(text)]
        if not here or not any("[[example " in pages[p] and cls.__name__ in pages[p] for p in here):
            missing.append(cls.__name__)
    assert not missing, f"no '### Name' section with an [[example ...]] on any page for: {missing}"


def test_the_parity_page_has_every_row_of_scratchopt_parity():
    """docs/generated/parity.json is `scratchopt parity --json`: the same rows as the command now."""
    document = json.loads((DOCS / "generated" / "parity.json").read_text())
    from scratchopt.tools import parity

    checks = parity.entries()
    assert [r["group"] for r in document["rows"]] == [c.group for c in checks]
    def first_word(text):  # the component's name: "SGD(momentum=0.9) float32" -> "SGD"
        return re.split(r"[ (:]", text, maxsplit=1)[0]

    assert [first_word(r["component"]) for r in document["rows"]] == [first_word(c.label) for c in checks]
    assert document["command"].startswith("scratchopt parity")
    assert all(r["exact"] or (r["bound"] and r["within"]) for r in document["rows"])


def test_the_checklist_example_runs_and_learns():
    spec = importlib.util.spec_from_file_location("checklist_example", DOCS / "examples" / "checklist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(epochs=12, verbose=False)
    assert result["val_loss"][result["best"]] < result["val_loss"][0] / 5
    assert result["final"] == pytest.approx(result["val_loss"][result["best"]], rel=0.5)


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None,
                    reason="mkdocs and mkdocs-material are not installed (pip install -e '.[docs]')")
def test_mkdocs_build_strict(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, check=False, env={**__import__("os").environ,
                                                                            "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    for page in ("index.html", "optimizers/adam/index.html", "parity/index.html", "benchmarks/index.html"):
        assert (tmp_path / "site" / page).is_file(), page
    adam = (tmp_path / "site" / "optimizers" / "adam" / "index.html").read_text()
    code = html.unescape(re.sub(r"<[^>]+>", "", adam))  # the page's text, highlighting markup removed
    assert "def update(g, var, m, v, v_max, *, alpha, one_minus_beta_1" in code, "adam.update's source is missing"
    assert "[[" not in adam, "a directive was left unexpanded"
