"""The id experiments behind notebook 01 and the results-file helpers the notebooks share."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from efs_sqlite import decode, encode, from_mediagone
from efs_sqlite.experiments import (
    id_collisions,
    id_forms,
    markdown_table,
    results_dir,
    rowid_benchmark,
    write_csv,
    write_json,
)


def by_scheme(rows: list[dict], rate: float) -> dict[str, dict]:
    return {r["scheme"]: r for r in rows if r["rate_per_s"] == rate}


def test_one_generator_never_collides_while_random_schemes_do_as_the_birthday_bound_says() -> None:
    rows = id_collisions([1_000_000], duration_s=0.2, generators=3, seed=1)
    at = by_scheme(rows, 1_000_000)
    assert set(at) == {"decimal", "random20", "small-uid", "small-uid x3"}
    assert at["small-uid"]["collisions"] == 0 and at["small-uid"]["ids"] == 200_000
    for scheme in ("decimal", "random20"):
        row = at[scheme]
        assert row["ids"] == row["unique"] + row["collisions"]
        # 1,000 ids per millisecond: ~190 (19 bits) and ~95 (20 bits) expected over 200 ms.
        assert abs(row["collisions"] - row["expected"]) < 5 * math.sqrt(row["expected"]), row
    assert at["decimal"]["expected"] > 1.8 * at["random20"]["expected"]


def test_the_simulated_clock_spaces_ids_by_the_rate() -> None:
    rows = id_collisions([500, 2_000_000], duration_s=0.01, generators=1)
    assert {(r["rate_per_s"], r["ids"], r["ids_per_ms"]) for r in rows} == {
        (500, 5, 1.0),
        (2_000_000, 20_000, 2000.0),
    }
    assert "small-uid x1" not in {r["scheme"] for r in rows}  # one generator is the small-uid row


def test_a_seed_reproduces_the_measurement() -> None:
    assert id_collisions([300_000], duration_s=0.05, seed=3) == id_collisions(
        [300_000], duration_s=0.05, seed=3
    )


@pytest.mark.parametrize(
    "bad", [{"rates": [0]}, {"rates": [10], "duration_s": 0}, {"rates": [10], "generators": 0}]
)
def test_bad_arguments_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        id_collisions(**bad)


def test_forms_base62_is_fixed_width_sortable_and_round_trips() -> None:
    forms = {r["form"]: r for r in id_forms(3_000, seed=2)}
    assert forms["base62"]["in_order"] == 1.0 and forms["integer"]["in_order"] == 1.0
    assert forms["base62"]["min_chars"] == forms["base62"]["max_chars"] == 11
    assert 0.4 < forms["uuid4"]["in_order"] < 0.6 and 0.4 < forms["mediagone"]["in_order"] < 0.6
    assert forms["uuid4"]["max_chars"] == 36
    assert not forms["integer"]["js_exact"] and forms["base62"]["js_exact"]
    uid = int(forms["integer"]["example"])
    assert decode(forms["base62"]["example"]) == uid == from_mediagone(forms["mediagone"]["example"])
    assert encode(uid) == forms["base62"]["example"]


def test_rowid_benchmark_integer_key_is_one_btree_smaller_and_fewer_cold_reads(tmp_path: Path) -> None:
    rows = rowid_benchmark(3_000, 500, repeat=1, cold_lookups=5, folder=tmp_path)
    keys = {r["form"]: r for r in rows}
    assert list(keys) == ["integer", "base62", "mediagone", "uuid4"]
    assert keys["integer"]["btrees"] == 1 and {
        keys[f]["btrees"] for f in ("base62", "mediagone", "uuid4")
    } == {2}
    assert keys["integer"]["file_bytes"] < keys["base62"]["file_bytes"] < keys["uuid4"]["file_bytes"]
    assert keys["integer"]["cold_reads_per_lookup"] < keys["base62"]["cold_reads_per_lookup"]
    assert all(r["insert_rows_per_s"] > 0 and r["lookup_us"] > 0 for r in rows)
    assert list(tmp_path.iterdir()) == []  # its databases are temporary


def test_a_relative_runs_dir_starts_at_the_project_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "notebooks").mkdir()
    for cwd in (tmp_path, tmp_path / "notebooks"):
        monkeypatch.chdir(cwd)
        assert results_dir("runs", "01_x") == tmp_path / "runs" / "01_x"
    outside = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    outside.mkdir()
    monkeypatch.chdir(outside)
    assert results_dir("runs", "01_x") == outside / "runs" / "01_x"  # no project above: the working directory


def test_results_files(tmp_path: Path) -> None:
    out = results_dir(tmp_path / "runs", "09_x")
    assert out == tmp_path / "runs" / "09_x" and out.is_dir()
    rows = [{"form": "a|b", "n": 1234567, "x": 0.012345, "ok": False, "none": None}]
    with write_csv(rows, out / "t.csv").open(newline="") as fh:
        assert list(csv.DictReader(fh)) == [
            {"form": "a|b", "n": "1234567", "x": "0.012345", "ok": "False", "none": ""}
        ]
    assert json.loads(write_json({"p": out}, out / "s.json").read_text()) == {"p": str(out)}
    assert markdown_table(rows).splitlines()[2] == "| a\\|b | 1,234,567 | 0.0123 | no | — |"
    assert markdown_table(rows, ["n"]).splitlines() == ["| n |", "|---|", "| 1,234,567 |"]
