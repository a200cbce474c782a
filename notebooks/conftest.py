"""Run the notebooks under nbval at small scale, unchanged.

``make test`` runs ``pytest --nbval-lax --nbval-current-env``, which executes every cell of every
notebook here in a fresh kernel. The notebooks keep their demo defaults (``scale = "default"``);
this file gives them the CI parameters the way papermill would: the assignments papermill injects
after the cell tagged ``parameters`` are appended to that cell before it runs. So CI and
``make demo`` execute the same notebook files, only with other parameters.

Outputs go to a temporary folder, removed at the end of the session; set ``EFS_SQLITE_NBVAL_RUNS``
to a folder to keep them.
"""

from __future__ import annotations

import ast
import os
import shutil
import tempfile
from typing import Any

import pytest

#: What every notebook gets under nbval (``runs_dir`` is added per session).
CI_PARAMETERS: dict[str, Any] = {"scale": "small", "target": "local"}


def _is_parameters_cell(item: pytest.Item) -> bool:
    cell = getattr(item, "cell", None)
    return (
        item.path.suffix == ".ipynb"
        and cell is not None
        and "parameters" in cell.get("metadata", {}).get("tags", [])
    )


def _declared(source: str) -> set[str]:
    """The names a parameters cell assigns."""
    names = set()
    for node in ast.parse(source).body:
        targets = [node.target] if isinstance(node, ast.AnnAssign) else getattr(node, "targets", [])
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cells = [item for item in items if _is_parameters_cell(item)]
    if not cells:
        return
    from papermill.translators import translate_parameters

    runs = os.environ.get("EFS_SQLITE_NBVAL_RUNS")
    if not runs:
        runs = tempfile.mkdtemp(prefix="efs-sqlite-nbval-")
        config.add_cleanup(lambda: shutil.rmtree(runs, ignore_errors=True))
    for item in cells:
        # Only the parameters a notebook declares (papermill would warn about the others). The
        # cell object is nbval's in-memory copy of the notebook: the file is not touched.
        source = item.cell.source
        declared = _declared(source)
        if not {"runs_dir", "scale"} <= declared:
            # Without them the notebook would run at demo scale in CI and write into runs/.
            raise pytest.UsageError(f"{item.path.name}: its parameters cell must declare runs_dir and scale")
        params = {k: v for k, v in {**CI_PARAMETERS, "runs_dir": runs}.items() if k in declared}
        item.cell.source = source + "\n" + translate_parameters("python3", "python", params, "CI parameters")
