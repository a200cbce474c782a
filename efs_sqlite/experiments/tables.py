"""Results files: where a notebook puts its tables and how it shows them.

A table is a list of rows (:data:`Row`, a dict per measured case, its keys the columns), so a
notebook writes it to CSV and plots it without computing anything itself.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: One row of a tidy table: column name to value.
Row = dict[str, Any]


def results_dir(runs_dir: str | os.PathLike[str], name: str) -> Path:
    """``<runs_dir>/<name>/``, created if needed: where one notebook writes its figures and tables.

    A relative ``runs_dir`` starts at the project root, the nearest folder at or above the working
    directory that holds ``pyproject.toml`` (else at the working directory): a notebook's default
    ``runs`` is the project's ``runs/`` whether it runs from ``notebooks/`` (Jupyter, nbval) or
    from the root (``papermill notebooks/x.ipynb runs/x.ipynb``).
    """
    base = Path(runs_dir)
    if not base.is_absolute():
        here = Path.cwd()
        root = next((p for p in (here, *here.parents) if (p / "pyproject.toml").is_file()), here)
        base = root / base
    out = base / name
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_csv(rows: Sequence[Row], path: str | os.PathLike[str]) -> Path:
    """Write tidy rows as CSV (columns in first-seen order; a missing value is an empty cell).

    >>> import tempfile, pathlib
    >>> p = write_csv([{"a": 1, "b": 2.5}, {"a": 3, "c": "x"}], pathlib.Path(tempfile.mkdtemp()) / "t.csv")
    >>> p.read_text().splitlines()
    ['a,b,c', '1,2.5,', '3,,x']
    """
    columns = list(dict.fromkeys(key for row in rows for key in row))
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_json(data: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``data`` as indented JSON (datetimes, paths and decimals as strings)."""
    path = Path(path)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value).replace("|", "\\|")


def ms_range(typical: float | None, low: float | None, high: float | None) -> str:
    """A modelled latency as ``typical [low, high]`` milliseconds (``—`` if there is none).

    >>> ms_range(6.0, 1.5, 17.45), ms_range(None, None, None)
    ('6 [1.5, 17.4] ms', '—')
    """
    if typical is None or low is None or high is None:
        return "—"
    return f"{typical:.3g} [{low:.3g}, {high:.3g}] ms"


def markdown_table(rows: Sequence[Row], columns: Sequence[str] | None = None) -> str:
    """Rows as a Markdown table (for ``IPython.display.Markdown``), numbers rounded for reading.

    >>> print(markdown_table([{"form": "integer", "lookup_us": 4.4372, "rows": 100000, "ok": True}]))
    | form | lookup_us | rows | ok |
    |---|---|---|---|
    | integer | 4.44 | 100,000 | yes |
    """
    columns = list(columns or dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
