"""Every snippet of the README, the docs and the benchmarks' README, as written.

* every fenced block says what it is: ``python`` (run here, each in a fresh namespace, in
  an empty working directory), ``bash`` (each command checked here: a ``scratchopt`` line
  parses with the command line's own parser, a ``pip install -e`` names extras that
  ``pyproject.toml`` has, a script exists), or a shape that is not run (``text``,
  ``console``, ``pycon``). An unlabelled fence, or a language outside these, fails;
* the README has exactly two set-up commands (the main job, the test suite), and
  ``.ci/run`` runs the second one verbatim;
* no snippet tells a user to ``pip install scratchopt`` from an index (it is on none) or
  to run a maintainers' tool that a clone does not have.

A new ``python`` block is collected by ``test_python_block_runs`` as it is written: there is no
list to update, and nothing to forget.
"""

import re
import shlex
import tomllib
from pathlib import Path

import pytest

from scratchopt.tools import cli

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), ROOT / "benchmarks" / "README.md"]
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<code>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
RUN, CHECKED, SHAPES = {"python"}, {"bash"}, {"text", "console", "pycon"}


def blocks():
    """``(document, line, language, code)`` for every fenced block."""
    out = []
    for path in DOCUMENTS:
        text = path.read_text()
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            out.append((path.relative_to(ROOT).as_posix(), line, match["info"].strip().split(" ")[0],
                        match["code"]))
    return out


BLOCKS = blocks()
PYTHON = [b for b in BLOCKS if b[2] == "python"]
BASH = [b for b in BLOCKS if b[2] == "bash"]


def test_every_fence_says_what_it_is():
    unlabelled = [f"{path}:{line} ```{language}" for path, line, language, _ in BLOCKS
                  if language not in RUN | CHECKED | SHAPES]
    assert not unlabelled, ("label each block: python (runs under test_readme.py), bash (its commands "
                            f"are checked), or text/console/pycon for what is not run: {unlabelled}")


def test_every_python_fence_is_collected():
    """The fences the test runs are all the ``python`` fences there are (none missed by the pattern)."""
    for path in DOCUMENTS:
        text = path.read_text()
        written = len(re.findall(r"^```python\b", text, re.MULTILINE))
        assert written == sum(b[0] == path.relative_to(ROOT).as_posix() for b in PYTHON), path
        assert not re.search(r"^[ \t]+```", text, re.MULTILINE), f"{path}: an indented fence is not checked"


@pytest.mark.parametrize("block", PYTHON, ids=[f"{path}:{line}" for path, line, _, _ in PYTHON])
def test_python_block_runs(block, tmp_path, monkeypatch):
    path, line, _, code = block
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__snippet__"}
    exec(compile(code, f"{path}:{line}", "exec"), namespace)  # noqa: S102 (the snippet, as a reader pastes it)


def extras():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project["optional-dependencies"])


def commands(code):
    """The commands of a bash block: comments dropped, ``&&`` chains split."""
    for text in code.splitlines():
        text = text.split(" #", 1)[0].strip()
        if text and not text.startswith("#"):
            yield from (c.strip() for c in text.split("&&"))


def check_command(command):
    words = shlex.split(command)
    if words[0] == "scratchopt":
        parser, subcommands = cli.build_parser()
        args, extra = parser.parse_known_args(words[1:])  # a usage error raises SystemExit here
        assert not extra, f"{command!r}: unknown {extra}"
        return
    if words[:3] == ["pip", "install", "-e"]:
        target = words[3]
        assert target.startswith("."), f"{command!r}: install from the clone"
        wanted = re.fullmatch(r"\.(?:\[([\w,-]+)\])?", target)
        assert wanted, command
        unknown = set((wanted[1] or "").split(",")) - {""} - extras()
        assert not unknown, f"{command!r}: no extras {unknown} in pyproject.toml"
        return
    if words[0] in ("python", "python3", "sh") and len(words) > 1 and not words[1].startswith("-"):
        assert (ROOT / words[1]).is_file(), f"{command!r}: no {words[1]}"
        return
    known = {("python3", "-m", "venv", ".venv"), (".", ".venv/bin/activate"), ("pytest",), ("mkdocs", "serve")}
    assert tuple(words) in known, f"{command!r}: the test does not know how to check this command"


@pytest.mark.parametrize("block", BASH, ids=[f"{path}:{line}" for path, line, _, _ in BASH])
def test_bash_block_commands_are_real(block):
    for command in commands(block[3]):
        check_command(command)


def test_the_readme_has_the_two_set_up_commands_and_ci_runs_the_second():
    readme = [code.strip() for path, _, language, code in BASH if path == "README.md"]
    assert len(readme) == 2, readme
    main_job, suite = readme
    assert main_job.startswith("python3 -m venv .venv && ") and main_job.endswith(
        ' && pip install -e ".[parity]" && scratchopt parity')
    assert suite.startswith("python3 -m venv .venv && ") and suite.endswith(' && pip install -e ".[test]" && pytest')
    ci = (ROOT / ".ci" / "run").read_text()
    assert suite in ci.splitlines(), ".ci/run must run the README's test command verbatim"
    text = (ROOT / "README.md").read_text()
    assert "about 5 minutes" in text and "about 14 minutes" in text  # what each command costs


def test_no_snippet_installs_from_an_index_or_runs_a_maintainers_tool():
    for path in DOCUMENTS:
        text = path.read_text()
        assert not re.search(r"pip install scratchopt\b(?!\[)", text), f"{path}: scratchopt is on no index"
        assert "check_api.py" not in text and "../shared/" not in text, f"{path}: not in a clone"
    assert "`demo`" in (ROOT / "README.md").read_text()  # the extra the demos need is listed
