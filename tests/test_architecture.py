"""The layering of efs_sqlite: every import goes down the layers, and docs/ARCHITECTURE.md lists every module.

Imports are read with :mod:`ast` from every module, subpackages included, and anywhere in a module
(lazy imports inside functions count). A module is placed by its top-level name under the package:
``efs_sqlite.graphql.api`` belongs to ``graphql``, whether that is one file or a subpackage.
"""

from __future__ import annotations

import ast
import graphlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "efs_sqlite"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"

#: The layers, bottom first, by top-level name (``__init__`` is the package root that re-exports
#: the public API). A module imports only modules of its own layer or a lower one, and modules of
#: one layer must not import each other in a cycle. The data flows model -> store -> graph ->
#: graphql -> app -> the Lambda handlers (``efs_sqlite.lambdas``).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),
    ("uid", "kinds", "deadline", "lock_quota"),
    ("model",),
    ("hooks", "backend", "store", "dynamodb", "nfs_client", "efs_model"),
    ("graph", "data", "costs", "links", "mountstats"),
    ("loader", "graphql", "calibration"),
    ("accept", "graphiql", "app"),
    ("cli", "aws", "experiments", "__init__"),
    ("lambdas",),
)
#: Narrower than their layer: aws builds the zip and deploys it, and runs none of the runtime modules;
#: but lock_quota (standard library and errors only), so that deploy itself refuses a reserved
#: concurrency past the EFS lock quota, called from Python as from the CLI.
ONLY: dict[str, frozenset[str]] = {"aws": frozenset({"errors", "lock_quota"})}
#: Entry points no module imports (the root's lazy table names them as strings, which is no import;
#: the Lambda runtime imports the handlers by their file's path in the zip).
LEAVES = frozenset({"cli", "experiments", "lambdas"})
LAYER = {name: level for level, layer in enumerate(LAYERS) for name in layer}
TABLE_ROW = re.compile(rf"^\| `({PACKAGE}(?:\.\w+)*)` \|", re.MULTILINE)


class Import(NamedTuple):
    """One import of a package module found in the source of another."""

    importer: str
    line: int
    target: str


def top(module: str) -> str:
    """The top-level name that places ``module`` in :data:`LAYERS`.

    >>> top("efs_sqlite.graphql.api"), top("efs_sqlite.store"), top("efs_sqlite")
    ('graphql', 'store', '__init__')
    """
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def find_modules(package: Path) -> dict[str, Path]:
    """Dotted name -> file of every module under ``package`` (a package's ``__init__`` by its name)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = (package.name, *path.relative_to(package).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(module: str, path: Path, known: set[str]) -> Iterator[Import]:
    """Every import of a module of the package in ``path``, resolved to the module it loads.

    ``from efs_sqlite import uid`` imports ``efs_sqlite.uid`` when that is a module (in ``known``),
    otherwise a name of the package root; relative imports resolve against ``module``'s package.
    """
    is_package = path.name == "__init__.py"
    here = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            base_name = ".".join([*base, *(node.module or "").split(".")]).strip(".")
            targets = [
                candidate if (candidate := f"{base_name}.{alias.name}") in known else base_name
                for alias in node.names
            ]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            targets = [node.args[0].value]
        else:
            continue
        for target in targets:
            if target == PACKAGE or target.startswith(f"{PACKAGE}."):
                yield Import(module, node.lineno, target)


def violations(package: Path) -> list[str]:
    """What breaks the layering in ``package``: unplaced modules, upward imports, leaves, cycles."""
    modules = find_modules(package)
    problems = [
        f"{name} is not in the layer table: place {top(name)!r} in LAYERS of tests/test_architecture.py"
        for name in modules
        if top(name) not in LAYER
    ]
    present = {top(name) for name in modules}
    problems += [
        f"{name!r} is in LAYERS but no module has that name" for name in sorted(LAYER.keys() - present)
    ]
    graph: dict[str, set[str]] = {name: set() for name in present}
    for name, path in modules.items():
        for imp in imports(name, path, set(modules)):
            src, dst = top(imp.importer), top(imp.target)
            if src == dst or src not in LAYER or dst not in LAYER:
                continue
            graph[src].add(dst)
            where = f"{imp.importer} (line {imp.line}) imports {imp.target}"
            if dst in LEAVES:
                problems.append(f"{where}: nothing may import {dst}, an entry point")
            elif src in ONLY and dst not in ONLY[src]:
                problems.append(f"{where}: {src} may import only {sorted(ONLY[src])}")
            elif LAYER[dst] > LAYER[src]:
                problems.append(f"{where}: layer {LAYER[dst]} is above {src}'s layer {LAYER[src]}")
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as cycle:
        problems.append(f"modules import each other in a cycle: {' -> '.join(cycle.args[1])}")
    return problems


def test_every_import_goes_down_the_layers() -> None:
    assert violations(ROOT / PACKAGE) == []


def test_the_architecture_table_lists_exactly_the_modules() -> None:
    listed = TABLE_ROW.findall(ARCHITECTURE.read_text(encoding="utf-8"))
    assert len(listed) == len(set(listed)), "docs/ARCHITECTURE.md lists a module twice"
    modules = set(find_modules(ROOT / PACKAGE)) - {PACKAGE}
    assert not modules - set(listed), (
        f"docs/ARCHITECTURE.md needs a row | `module` | concept | for {sorted(modules - set(listed))}"
    )
    assert not set(listed) - modules, (
        f"docs/ARCHITECTURE.md lists modules that do not exist: {sorted(set(listed) - modules)}"
    )


def test_the_checker_reads_subpackages_lazy_imports_and_cycles(tmp_path: Path) -> None:
    files = {
        "__init__.py": "from efs_sqlite import store\n",
        "errors.py": "",
        "store.py": "from efs_sqlite.errors import StoreError\n",
        "graph.py": "from efs_sqlite import data\n",
        "data.py": "import efs_sqlite.graph\n",
        "graphql/__init__.py": "from .api import GraphQLAPI\n",
        "graphql/api.py": (
            "from .. import store\nfrom ..errors import StoreError\nfrom . import plan\n"
            "def run():\n    from efs_sqlite.experiments import workloads\n"
        ),
        "graphql/plan.py": "import importlib\nAPP = importlib.import_module('efs_sqlite.app')\n",
        "app.py": "from efs_sqlite import __version__\n",
        "experiments/__init__.py": "from efs_sqlite.graphql.api import run\n",
        "aws/deploy.py": "from efs_sqlite.errors import DeployError\nimport efs_sqlite.store\n",
        "shiny.py": "",
    }
    package = tmp_path / PACKAGE
    for name, text in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text, encoding="utf-8")
    modules = find_modules(package)
    assert set(modules) >= {
        "efs_sqlite",
        "efs_sqlite.graphql",
        "efs_sqlite.graphql.api",
        "efs_sqlite.aws.deploy",
    }
    found = {
        (i.importer, i.target)
        for i in imports("efs_sqlite.graphql.api", modules["efs_sqlite.graphql.api"], set(modules))
    }
    assert found == {
        ("efs_sqlite.graphql.api", "efs_sqlite.store"),
        ("efs_sqlite.graphql.api", "efs_sqlite.errors"),
        ("efs_sqlite.graphql.api", "efs_sqlite.graphql.plan"),
        ("efs_sqlite.graphql.api", "efs_sqlite.experiments"),
    }
    problems = violations(package)
    unplaced = [p for p in problems if p.endswith("is in LAYERS but no module has that name")]
    assert unplaced == [
        f"{name!r} is in LAYERS but no module has that name"
        for name in (
            *("accept", "backend", "calibration", "cli", "costs", "deadline", "dynamodb", "efs_model"),
            *("graphiql", "hooks", "kinds", "lambdas", "links", "loader", "lock_quota", "model"),
            *("mountstats", "nfs_client", "uid"),
        )
    ]
    expected = [
        "efs_sqlite.shiny is not in the layer table",
        "efs_sqlite.graphql.api (line 5) imports efs_sqlite.experiments: nothing may import experiments",
        "efs_sqlite.graphql.plan (line 2) imports efs_sqlite.app: layer 6 is above graphql's layer 5",
        "efs_sqlite.app (line 1) imports efs_sqlite: layer 7 is above app's layer 6",
        "efs_sqlite.aws.deploy (line 2) imports efs_sqlite.store: aws may import only "
        "['errors', 'lock_quota']",
        "modules import each other in a cycle",
    ]
    rest = [p for p in problems if p not in unplaced]
    assert len(rest) == len(expected), rest
    for start in expected:
        assert sum(problem.startswith(start) for problem in rest) == 1, (start, rest)
