"""Rows of the benchmark table: one figure each, with its spread, the baseline measured in the
same run, the ratio to it and the targets it must meet; their Markdown; the README section.

``ratio`` is always the speed relative to the baseline: above 1 the figure beats its baseline,
whether the figure is a rate (higher is better) or a time (lower is better).

>>> r = row("store", "get", 2.0, "µs", higher_is_better=False, baseline=("raw", 1.0),
...         targets=[Target("ratio", ">=", 0.5)])
>>> r["ratio"], r["met"], r["target"]
(0.5, True, '>= 0.5x')
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

Row = dict[str, Any]

START, END = "<!-- bench:start -->", "<!-- bench:end -->"


class Target(NamedTuple):
    """A bound on the row's ``value`` or on its ``ratio``; ``text`` overrides the printed form."""

    of: str  # "value" or "ratio"
    op: str  # "<=" or ">="
    bound: float
    text: str | None = None


def spread(samples: Sequence[float]) -> dict[str, float]:
    """Median, p99, min and max of ``samples``.

    >>> spread([3.0, 1.0, 2.0])
    {'median': 2.0, 'p99': 3.0, 'min': 1.0, 'max': 3.0, 'n': 3}
    """
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
    return {
        "median": statistics.median(ordered),
        "p99": p99,
        "min": ordered[0],
        "max": ordered[-1],
        "n": len(ordered),
    }


def row(
    group: str,
    name: str,
    value: float,
    unit: str,
    *,
    higher_is_better: bool,
    p99: float | None = None,
    value_range: tuple[float, float] | None = None,
    baseline: tuple[str, float] | None = None,
    targets: Iterable[Target] = (),
    note: str = "",
) -> Row:
    """One figure: the median ``value`` with its ``p99`` (per-call samples) or its ``value_range``
    (min, max over repeats), compared with ``baseline`` = (what, its value in this run)."""
    ratio = None
    if baseline is not None and value and baseline[1]:
        ratio = value / baseline[1] if higher_is_better else baseline[1] / value
    checks = []
    for t in targets:
        measured = value if t.of == "value" else ratio
        met = None if measured is None else (measured <= t.bound if t.op == "<=" else measured >= t.bound)
        bound = f"{t.bound:,.0f}" if t.bound == int(t.bound) else f"{t.bound:g}"
        text = t.text or (f"{t.op} {bound} {unit}" if t.of == "value" else f"{t.op} {bound}x")
        checks.append({"of": t.of, "op": t.op, "bound": t.bound, "text": text, "met": met})
    return {
        "group": group,
        "name": name,
        "value": value,
        "unit": unit,
        "higher_is_better": higher_is_better,
        "p99": p99,
        "min": None if value_range is None else min(value_range),
        "max": None if value_range is None else max(value_range),
        "baseline": None if baseline is None else {"name": baseline[0], "value": baseline[1]},
        "ratio": ratio,
        "target": " and ".join(c["text"] for c in checks) or None,
        "checks": checks,
        "met": None if not checks else all(c["met"] is True for c in checks),
        "note": note,
    }


def _num(x: float | None) -> str:
    """Three significant digits, thousands separated.

    >>> [_num(x) for x in (2252194.6, 64.0, 0.87101, 1.1416, None)]
    ['2,252,195', '64.0', '0.871', '1.14', '—']
    """
    if x is None:
        return "—"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{max(0, 2 - math.floor(math.log10(abs(x))))}f}" if x else "0"


_VERDICT = {True: "met", False: "**MISSED**", None: "—"}


def _spread_text(r: Row) -> str:
    if r["p99"] is not None:
        return f"p99 {_num(r['p99'])}"
    if r["min"] is not None:
        return f"{_num(r['min'])} – {_num(r['max'])}"
    return "—"


def table(rows: Sequence[Row], notes: bool = True) -> str:
    """The rows as a Markdown table; with ``notes``, each row's note numbered below it."""
    lines = [
        "| area | figure | median | spread | baseline, same run | ratio | target | verdict |",
        "|---|---|---:|---:|---|---:|---|---|",
    ]
    footnotes = []
    for r in rows:
        name = r["name"]
        if notes and r["note"]:
            footnotes.append(r["note"])
            name += f" [{len(footnotes)}]"
        base = r["baseline"]
        base_text = "—" if base is None else f"{base['name']}: {_num(base['value'])} {r['unit']}"
        ratio = "—" if r["ratio"] is None else f"{_num(r['ratio'])}x"
        lines.append(
            f"| {r['group']} | {name} | {_num(r['value'])} {r['unit']} | {_spread_text(r)} | {base_text} "
            f"| {ratio} | {r['target'] or '—'} | {_VERDICT[r['met']]} |"
        )
    lines += [""] + [f"{i}. {text}" for i, text in enumerate(footnotes, 1)]
    return "\n".join(lines).rstrip() + "\n"


def summary(rows: Sequence[Row]) -> str:
    """One line: how many targets were met, and which were missed."""
    targeted = [r for r in rows if r["met"] is not None]
    missed = [r for r in targeted if not r["met"]]
    line = f"{len(targeted) - len(missed)} of {len(targeted)} targets met"
    return line + ("; MISSED: " + "; ".join(f"{r['group']}: {r['name']}" for r in missed) if missed else ".")


def header(result: dict[str, Any]) -> str:
    meta = result["meta"]
    load = ", ".join(f"{x:.1f}" for x in meta["load_average"])
    return (
        f"`{meta['command']}` on {meta['started'][:16].replace('T', ' ')} UTC, commit {meta['commit']}: "
        f"Python {meta['python']}, {meta['cpus']} CPUs, load average before/after {load}, "
        f"{meta['seconds']:.0f} s in all. Ratio: speed relative to the baseline measured in the same "
        "run (above 1: faster than the baseline)."
    )


def markdown(result: dict[str, Any]) -> str:
    """``runs/bench.md``: the header, the table with its notes, the summary, any errors."""
    parts = [header(result), table(result["rows"]), summary(result["rows"])]
    parts += [f"ERROR in {e['section']}: {e['error']}" for e in result["errors"]]
    return "\n\n".join(parts) + "\n"


def readme_section(result: dict[str, Any]) -> str:
    """The README's performance section (between the markers), from one run's results."""
    return "\n\n".join(
        [
            header(result),
            table(result["rows"], notes=False).rstrip(),
            summary(result["rows"]),
            "`make bench` also writes `runs/bench.md`, with the sizes and settings behind each row; "
            "`python -m benchmarks --readme` then regenerates this section.",
        ]
    )


def update_readme(readme: Path, section: str) -> None:
    """Replace what lies between the ``<!-- bench:start -->`` and ``<!-- bench:end -->`` markers."""
    text = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    if len(pattern.findall(text)) != 1:
        raise ValueError(f"{readme} must hold exactly one {START} ... {END} pair of markers")
    readme.write_text(pattern.sub(lambda _: f"{START}\n{section}\n{END}", text), encoding="utf-8")
