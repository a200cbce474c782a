"""The project holds together: environment.yml vs pyproject.toml, the console script, CI, cited sources."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import pkgutil
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import efs_sqlite

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SOURCES = ROOT / "docs" / "SOURCES.md"
# Notes kept outside the repository, and absolute paths of one machine (spelled so that this file
# does not match itself; a relative path such as ``a/work/b`` is fine).
OUTSIDE = re.compile(r"REFERENCE\.md|(?<![\w.-])/work\b/")
SOURCES_LINK = re.compile(r"SOURCES\.md#([A-Za-z0-9_-]+)")
ANCHOR = re.compile(r'<a id="([A-Za-z0-9_-]+)"></a>')


def read_environment(text: str) -> tuple[str | None, list[str]]:
    """The python version and the ``pip:`` entries of a conda environment file.

    A line reader is enough for this two-level list, so the test needs no YAML library.

    >>> read_environment("dependencies:\\n  - python=3.13  # pinned\\n  - pip:\\n      - -e .[dev]\\n")
    ('3.13', ['-e .[dev]'])
    """
    python, pip, pip_indent = None, [], None
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*", "", raw).rstrip()
        if not line:
            continue
        indent, item = len(line) - len(line.lstrip()), line.strip()
        if pip_indent is not None and indent > pip_indent:
            pip.append(item.removeprefix("- ").strip())
            continue
        pip_indent = indent if item == "- pip:" else None
        if match := re.fullmatch(r"- python\s*=+\s*([\d.]+?)\.?\*?", item):
            python = match.group(1)
    return python, pip


def satisfies(version: str, specifier: str) -> bool:
    """Whether a release like ``3.13`` meets a ``requires-python`` such as ``>=3.11,<4``.

    >>> satisfies("3.13", ">=3.11"), satisfies("3.10", ">=3.11"), satisfies("3.13", ">=3.11, <3.13")
    (True, False, False)
    """
    ops = {
        ">=": lambda a, b: a >= b,
        ">": lambda a, b: a > b,
        "<=": lambda a, b: a <= b,
        "<": lambda a, b: a < b,
        "==": lambda a, b: a[: len(b)] == b,
        "!=": lambda a, b: a[: len(b)] != b,
    }
    have = tuple(int(x) for x in version.split("."))
    for clause in specifier.split(","):
        match = re.fullmatch(r"\s*(>=|<=|==|!=|>|<)\s*([\d.]+)(\.\*)?\s*", clause)
        assert match, f"cannot read requires-python clause {clause!r}"
        want = tuple(int(x) for x in match.group(2).split("."))
        if not ops[match.group(1)](have, want):
            return False
    return True


def test_environment_yml_agrees_with_pyproject() -> None:
    python, pip = read_environment((ROOT / "environment.yml").read_text(encoding="utf-8"))
    assert python is not None, "environment.yml pins no python version"
    requires = PYPROJECT["project"]["requires-python"]
    assert satisfies(python, requires), f"environment.yml python {python} does not meet {requires}"
    assert "-e .[dev]" in pip, f"environment.yml's pip section must install -e .[dev], has {pip}"
    assert "dev" in PYPROJECT["project"]["optional-dependencies"]


def test_the_dev_extra_holds_the_test_tools() -> None:
    dev = PYPROJECT["project"]["optional-dependencies"]["dev"]
    names = {re.split(r"[\[<>=!~ ]", req, maxsplit=1)[0].lower() for req in dev}
    assert {"pytest", "hypothesis", "ruff"} <= names


def test_package_version_matches_pyproject() -> None:
    # efs_sqlite.__version__ is the only copy: pyproject.toml reads it, the installed metadata holds it.
    assert "version" not in PYPROJECT["project"] and "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "efs_sqlite.__version__"}
    installed = importlib.metadata.version("efs-sqlite")
    assert efs_sqlite.__version__ == installed, "the installed metadata is stale: pip install -e .[dev]"


def test_console_script_help_runs() -> None:
    script = Path(sys.executable).parent / "efs-sqlite"
    assert script.exists(), f"{script} is not installed: pip install -e .[dev]"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: efs-sqlite")
    version = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert version.stdout.strip() == f"efs-sqlite {efs_sqlite.__version__}"


def test_every_name_in_all_resolves() -> None:
    modules = [efs_sqlite] + [
        importlib.import_module(f"efs_sqlite.{info.name}")
        for info in pkgutil.iter_modules(efs_sqlite.__path__)
    ]
    for module in modules:
        exported = getattr(module, "__all__", [])
        assert len(set(exported)) == len(exported), f"{module.__name__}.__all__ has duplicates"
        missing = [name for name in exported if not hasattr(module, name)]
        assert not missing, f"{module.__name__}.__all__ names missing attributes: {missing}"


def test_the_package_root_exports_the_product_and_the_experiments_only_as_a_subpackage() -> None:
    from efs_sqlite import experiments

    research = set(experiments.__all__) & set(efs_sqlite.__all__)
    assert not research, f"import {sorted(research)} from efs_sqlite.experiments, not efs_sqlite"
    assert "experiments" in efs_sqlite.__all__ and efs_sqlite.experiments is experiments


def test_ci_runs_make_test() -> None:
    run = ROOT / ".ci" / "run"
    assert os.access(run, os.X_OK), ".ci/run must be executable"
    commands = [line.strip() for line in run.read_text(encoding="utf-8").splitlines()]
    assert "make test" in [c for c in commands if c and not c.startswith("#")]
    assert subprocess.run(["bash", "-n", str(run)], check=False).returncode == 0
    # and `make test` runs the test suite (dry run: nothing is executed)
    plan = subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert plan.returncode == 0, plan.stderr
    assert "pytest" in plan.stdout


def tracked_texts() -> dict[str, str]:
    """Every file git tracks, as text (undecodable bytes replaced)."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    names = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    return {n: (ROOT / n).read_bytes().decode("utf-8", "replace") for n in names if (ROOT / n).is_file()}


def source_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """The markdown tables of ``text``: (header cells, body rows of cells) each.

    >>> source_tables("x\\n| a | b |\\n|---|---|\\n| 1 | 2 \\\\| 3 |\\n\\ny")
    [(['a', 'b'], [['1', '2 \\\\| 3']])]
    """
    tables: list[tuple[list[str], list[list[str]]]] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("|") or (i and lines[i - 1].startswith("|")):
            continue
        rows = []
        for row in lines[i:]:
            if not row.startswith("|"):
                break
            rows.append([c.strip() for c in re.split(r"(?<!\\)\|", row.strip().strip("|"))])
        assert len(rows) >= 2 and set("".join(rows[1])) <= set("-:"), f"not a table at line {i + 1}"
        tables.append((rows[0], rows[2:]))
    return tables


def test_no_tracked_file_points_outside_the_project() -> None:
    offending = {name: m.group() for name, text in tracked_texts().items() if (m := OUTSIDE.search(text))}
    assert not offending, f"files citing notes or paths outside the repository: {offending}"


def test_every_sources_link_names_an_anchor() -> None:
    anchors = ANCHOR.findall(SOURCES.read_text(encoding="utf-8"))
    assert len(anchors) == len(set(anchors)), "docs/SOURCES.md repeats an anchor"
    links = {
        (name, anchor) for name, text in tracked_texts().items() for anchor in SOURCES_LINK.findall(text)
    }
    assert {n for n, _ in links} >= {"efs_sqlite/costs.py", "efs_sqlite/efs_model.py", "docs/SECURITY.md"}
    broken = sorted((name, anchor) for name, anchor in links if anchor not in anchors)
    assert not broken, f"links to anchors docs/SOURCES.md does not have: {broken}"


def test_every_section_of_sources_has_an_anchor() -> None:
    lines = SOURCES.read_text(encoding="utf-8").splitlines()
    unanchored = [
        line
        for i, line in enumerate(lines)
        if line.startswith("## ") and not (ANCHOR.fullmatch(lines[i - 2]) and lines[i - 1] == "")
    ]
    assert not unanchored, f"sections without an <a id> line (and a blank line) above them: {unanchored}"


def test_every_row_of_sources_has_a_url_and_a_date() -> None:
    tables = source_tables(SOURCES.read_text(encoding="utf-8"))
    assert sum(len(rows) for _, rows in tables) >= 40
    for header, rows in tables:
        assert {"source", "read"} <= set(header), f"a table needs 'source' and 'read' columns: {header}"
        source, read = header.index("source"), header.index("read")
        for row in rows:
            assert len(row) == len(header), f"row has {len(row)} cells, header {len(header)}: {row}"
            assert re.search(r"\(https://[^\s)]+\)", row[source]), f"no source URL: {row}"
            assert re.fullmatch(r"\d{4}(-\d\d){0,2}", row[read]), f"no date read: {row}"
