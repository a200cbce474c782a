"""Run every ``NN_name.ipynb`` notebook in order through papermill (what ``make demo`` does).

Executed copies go to ``runs/NN_name.ipynb``; each notebook writes its figures and result tables
under ``runs/NN_name/`` and a ``summary.json`` of headline numbers, printed at the end.

    python notebooks/run_all.py                       # all notebooks, their default parameters
    python notebooks/run_all.py -p scale small 04     # only notebooks whose name starts with 04
    python notebooks/run_all.py -p target moto 03     # a parameter goes to the notebooks that declare it
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def notebooks(select: list[str]) -> list[Path]:
    found = sorted(p for p in HERE.glob("[0-9][0-9]_*.ipynb"))
    return [p for p in found if not select or any(p.name.startswith(s) for s in select)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("select", nargs="*", help="run only notebooks whose name starts with these")
    parser.add_argument(
        "-p",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a parameter for every notebook that declares it (papermill -p)",
    )
    parser.add_argument("--runs", default=str(ROOT / "runs"), help="output folder (default: runs/)")
    args = parser.parse_args(argv)

    import papermill as pm  # imported here so --help needs no Jupyter stack

    runs = Path(args.runs).resolve()
    runs.mkdir(parents=True, exist_ok=True)
    params = {"runs_dir": str(runs), **{k: _value(v) for k, v in args.p}}
    todo = notebooks(args.select)
    if not todo:
        print("no notebooks matched", file=sys.stderr)
        return 1
    unused = set(params)
    began = time.perf_counter()
    for nb in todo:
        out = runs / nb.name
        # Only what the notebook declares: papermill would inject the rest as stray variables.
        declared = {k: v for k, v in params.items() if k in pm.inspect_notebook(str(nb))}
        unused -= set(declared)
        shown = ", ".join(f"{k}={v!r}" for k, v in declared.items() if k != "runs_dir")
        print(f"== {nb.name} -> {_show(out)}" + (f" ({shown})" if shown else ""), flush=True)
        start = time.perf_counter()
        try:
            pm.execute_notebook(
                nb, out, parameters=declared, kernel_name="python3", cwd=str(HERE), progress_bar=False
            )
        except pm.PapermillExecutionError as exc:
            print(f"!! {nb.name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}", file=sys.stderr)
            print(f"   the executed copy with the error is {out}", file=sys.stderr)
            return 1
        print(f"   done in {time.perf_counter() - start:.1f} s", flush=True)
    if unused:
        print(f"!! no notebook declares {sorted(unused)}: ignored", file=sys.stderr)

    elapsed = time.perf_counter() - began
    print(f"\n{len(todo)} notebook(s) in {elapsed:.0f} s. Results are under {_show(runs)}:")
    for nb in todo:
        folder = runs / nb.stem
        files = sorted(p.name for p in folder.glob("*") if p.suffix in (".png", ".csv", ".json", ".md"))
        print(f"\n{nb.stem}: executed notebook {_show(runs / nb.name)}")
        if files:
            print(f"  {_show(folder)}/: {', '.join(files)}")
        summary = folder / "summary.json"
        if summary.exists():
            for key, value in json.loads(summary.read_text()).items():
                print(f"  {key}: {value}")
    return 0


def _show(path: Path) -> str:
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def _value(text: str) -> object:
    """Parameters from the command line: numbers and booleans as such, anything else a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


if __name__ == "__main__":
    sys.exit(main())
