"""Smoke test of ``make bench``: the runner works at a tiny size and writes valid results.

No timing is asserted (speed belongs to the benchmarks); these tests only prove that every
section runs, every row carries what the table and the README need, and the README section is
regenerated in place.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REQUIRED_KEYS = ("name", "value", "unit", "baseline", "ratio", "target", "met")
SECTIONS = {"uid", "store", "graphql", "loader", "efs model", "cold start", "diskcache peer", "writers"}


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    done = bench("--quick", "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.slow
def test_quick_run_writes_a_row_with_every_key_for_every_section(quick):
    result = json.loads((quick / "bench.json").read_text())
    assert result["errors"] == []
    rows = result["rows"]
    assert {r["group"] for r in rows} == SECTIONS
    for r in rows:
        assert all(key in r for key in REQUIRED_KEYS), r
        assert isinstance(r["value"], int | float) and r["value"] > 0, r
        assert r["met"] in (True, False, None)
        assert (r["target"] is None) == (r["met"] is None), r
        if r["baseline"] is not None:
            assert r["baseline"]["value"] > 0 and r["ratio"] > 0, r


@pytest.mark.slow
def test_every_target_of_the_issues_is_checked(quick):
    rows = json.loads((quick / "bench.json").read_text())["rows"]
    targets = {(r["group"], c["of"], c["op"], c["bound"]) for r in rows for c in r["checks"]}
    assert targets >= {
        ("uid", "value", ">=", 1_000_000),
        ("store", "ratio", ">=", 0.5),  # insert >= 50% of raw; get_many per id <= 2x raw
        ("graphql", "value", "<=", 1.0),
        ("graphql", "ratio", ">=", 20.0),
        ("loader", "ratio", ">=", 0.5),
        ("loader", "ratio", ">=", 6.0),
        ("efs model", "value", "<=", 15.0),
        ("writers", "value", "<=", 1000.0),  # no writer starves
    }


@pytest.mark.slow
def test_the_benchmark_request_has_dynamodb_rows_beside_the_efs_figures(quick):
    rows = {r["name"]: r for r in json.loads((quick / "bench.json").read_text())["rows"]}
    latency = rows["benchmark request on DynamoDB, modelled latency from the call log"]
    assert latency["group"] == "graphql" and latency["unit"] == "ms"
    assert latency["p99"] > latency["value"] > 0
    assert latency["baseline"]["name"] == "EFS Elastic model, critical path"
    calls = rows["benchmark request on DynamoDB, calls"]
    assert calls["unit"] == "calls" and calls["baseline"]["name"] == "EFS model: NFS requests"
    assert "BatchGetItem" in calls["note"] and "NFS requests" in calls["note"]
    units = rows["benchmark request on DynamoDB, read units"]
    assert units["unit"] == "RRU" and "0 WRU" in units["note"]


@pytest.mark.slow
def test_the_table_shows_every_row_and_missed_targets(quick):
    rows = json.loads((quick / "bench.json").read_text())["rows"]
    table = (quick / "bench.md").read_text()
    for r in rows:
        assert r["name"] in table
    assert table.count("**MISSED**") == sum(r["met"] is False for r in rows)


@pytest.mark.slow
def test_readme_section_is_rewritten_between_the_markers_only(quick, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# t\n\nbefore\n<!-- bench:start -->\nstale table\n<!-- bench:end -->\nafter\n")
    source = quick / "bench.json"
    done = bench("--readme", "--from", str(source), "--readme-path", str(readme))
    assert done.returncode == 0, done.stderr
    text = readme.read_text()
    assert text.startswith("# t\n\nbefore\n<!-- bench:start -->\n")
    assert text.endswith("<!-- bench:end -->\nafter\n")
    assert "stale table" not in text
    for r in json.loads(source.read_text())["rows"]:
        assert r["name"] in text
    again = bench("--readme", "--from", str(source), "--readme-path", str(readme))
    assert again.returncode == 0 and readme.read_text() == text  # idempotent


def test_readme_without_markers_is_refused_and_left_alone(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    source = tmp_path / "bench.json"
    meta = {"command": "python -m benchmarks", "started": "2026-01-01T00:00:00+00:00", "commit": "0000000",
            "python": "3.11.7", "cpus": 2, "load_average": [0.5, 0.5], "seconds": 1.0}  # fmt: skip
    source.write_text(json.dumps({"meta": meta, "rows": [], "errors": []}))
    done = bench("--readme", "--from", str(source), "--readme-path", str(readme))
    assert done.returncode != 0 and "markers" in done.stderr
    assert readme.read_text() == "# no markers\n"


def test_unknown_section_is_refused(tmp_path):
    done = bench("--only", "uid,nope", "--out", str(tmp_path))
    assert done.returncode == 2 and "nope" in done.stderr
    assert not (tmp_path / "bench.json").exists()
