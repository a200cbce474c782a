"""The research notebooks: their shape (one typed parameters cell, public API only, stripped, aws
cells guarded), and a rerun through ``notebooks/run_all.py`` with non-default parameters whose result
files are read back.

The notebooks themselves run cell by cell under nbval in ``make test`` (see notebooks/conftest.py).
"""

from __future__ import annotations

import ast
import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

import efs_sqlite
from efs_sqlite import experiments

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
EXPECTED = ["01_small_uid", "02_shards", "03_deploy_lambda", "04_load_data", "05_query_experiments"]
PNG = b"\x89PNG\r\n\x1a\n"
# Beyond the standard library and the package: the plotting and display stack a notebook runs in.
THIRD_PARTY = {"matplotlib", "IPython"}
# What a notebook may import from: the product's API and the experiments, each by its __all__.
PUBLIC = {"efs_sqlite": efs_sqlite, "efs_sqlite.experiments": experiments}


def notebook_paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def read(path: Path) -> Any:
    return nbformat.read(str(path), as_version=4)


def code_cells(nb: Any) -> list[Any]:
    return [c for c in nb.cells if c.cell_type == "code"]


def tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


@pytest.fixture(params=notebook_paths(), ids=lambda p: p.stem)
def notebook(request: pytest.FixtureRequest) -> tuple[str, Any]:
    return request.param.stem, read(request.param)


def test_the_five_notebooks_are_there() -> None:
    assert [p.stem for p in notebook_paths()] == EXPECTED


def test_one_parameters_cell_of_typed_literals(notebook: tuple[str, Any]) -> None:
    name, nb = notebook
    cells = [c for c in code_cells(nb) if "parameters" in tags(c)]
    assert len(cells) == 1, f"{name}: {len(cells)} cells tagged 'parameters'"
    declared: dict[str, Any] = {}
    for stmt in ast.parse(cells[0].source).body:
        assert isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name), (
            f"{name}: the parameters cell holds only `name: type = literal` lines, not {ast.unparse(stmt)!r}"
        )
        value = ast.literal_eval(stmt.value)
        kind = ast.unparse(stmt.annotation)
        assert type(value).__name__ == kind, f"{name}: {stmt.target.id}: {kind} = {value!r}"
        declared[stmt.target.id] = value
    # What run_all and the CI parameters (notebooks/conftest.py) rely on.
    assert declared["runs_dir"] == "runs" and declared["scale"] == "default", name


def test_committed_without_outputs(notebook: tuple[str, Any]) -> None:
    name, nb = notebook
    for cell in code_cells(nb):
        assert cell.outputs == [] and cell.execution_count is None, f"{name}: run nbstripout"


def test_imports_only_the_public_api(notebook: tuple[str, Any]) -> None:
    name, nb = notebook
    allowed = set(sys.stdlib_module_names) | THIRD_PARTY
    for cell in code_cells(nb):
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
                if modules[0].split(".")[0] == "efs_sqlite":
                    public = PUBLIC.get(node.module or "")
                    assert public is not None, f"{name}: import from {' or '.join(PUBLIC)}, not {node.module}"
                    private = [a.name for a in node.names if a.name not in public.__all__]
                    assert not private, f"{name}: {private} are not in {node.module}.__all__"
                    continue
            else:
                continue
            for module in modules:
                assert module.split(".")[0] in allowed, f"{name}: imports {module}"


def test_aws_cells_are_guarded_and_skipped(notebook: tuple[str, Any]) -> None:
    name, nb = notebook
    for cell in code_cells(nb):
        touches_aws = 'target == "aws"' in cell.source
        skipped = "nbval-skip" in tags(cell)
        assert touches_aws == skipped, f"{name}: {cell.source[:60]!r}"
        if skipped:  # papermill has no skip tag: the cell must do nothing unless target is aws
            assert cell.source.startswith('if target == "aws":'), f"{name}: {cell.source[:60]!r}"
    if name == "03_deploy_lambda":
        assert any("nbval-skip" in tags(c) for c in code_cells(nb))


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_run_all_reruns_a_notebook_with_other_parameters(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    command = ["--runs", str(runs), "-p", "scale", "small", "-p", "seed", "7", "01"]
    done = subprocess.run(
        [sys.executable, str(NOTEBOOKS / "run_all.py"), *command],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = runs / "01_small_uid"
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["scale"], summary["seed"]) == ("small", 7)
    assert summary["small_uid_collisions_one_process"] == 0
    # run_all prints every headline number of the summary
    assert all(key in done.stdout for key in summary)

    executed = read(runs / "01_small_uid.ipynb")
    injected = [c for c in executed.cells if "injected-parameters" in tags(c)]
    assert len(injected) == 1 and "seed = 7" in injected[0].source

    collisions = read_csv(out / "collisions.csv")
    rates = sorted({float(r["rate_per_s"]) for r in collisions})
    assert rates[-1] >= 1_000_000
    for row in collisions:
        assert int(row["ids"]) == int(row["unique"]) + int(row["collisions"])
    forms = {r["form"]: r for r in read_csv(out / "id_forms.csv")}
    assert set(forms) == {"integer", "base62", "mediagone", "uuid4"}
    rowid = {r["form"]: r for r in read_csv(out / "rowid.csv")}
    assert rowid["integer"]["btrees"] == "1" and rowid["uuid4"]["btrees"] == "2"
    for figure in ("bit_layout.png", "collisions.png", "rowid.png"):
        data = (out / figure).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000, figure


@pytest.mark.slow
def test_deploy_notebook_runs_the_moto_target(tmp_path: Path) -> None:
    """nbval runs 03 with target=local; this runs its boto3 deployment against moto, as a user would."""
    import papermill as pm

    runs = tmp_path / "runs"
    pm.execute_notebook(
        NOTEBOOKS / "03_deploy_lambda.ipynb",
        tmp_path / "03.ipynb",
        parameters={"runs_dir": str(runs), "scale": "small", "target": "moto", "stack_name": "nbtest"},
        kernel_name="python3",
        cwd=str(NOTEBOOKS),
        progress_bar=False,
    )
    summary = json.loads((runs / "03_deploy_lambda" / "summary.json").read_text())
    assert summary["target"] == "moto" and summary["local_http_status"] == 200
    assert summary["moto_redeploy_identical"] is True
    assert summary["moto_deploy_calls"] > 10 and summary["moto_teardown_calls"] > 10
    assert summary["zip_bytes"] < 50 * 2**20
