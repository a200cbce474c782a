"""Notebook 05's verdict, decided from synthetic tables whose answers are known: it names the side
the numbers favour, and flips when the inputs favour the other side.

The rows stand for a :func:`~efs_sqlite.experiments.queries.query_mix` run (the same columns) with
figures chosen per kind: EFS slower than DynamoDB for every kind at its typical latency, a long
list page many DynamoDB read units but few EFS requests, a create many metered EFS round trips
and a long Lambda wait. :func:`mix_summary` prices them with the real cost model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest

from efs_sqlite.costs import DYNAMODB, EFS_PRICES, MONTH_S
from efs_sqlite.experiments import MIX_WEIGHTS, Verdict, mix_capacity, mix_summary, verdict
from efs_sqlite.experiments.queries import DESIGNS
from efs_sqlite.experiments.verdict import Decision, decisions, decisions_table, efs_wins_map

SIZES_GIB = [0.01, 1, 10, 100, 1_000, 10_000]
EFS_WINS = "**In short:** SQLite on EFS is the cheaper way"
DYNAMODB_WINS = "**In short:** for this mix DynamoDB is both cheaper and faster"
STORED_BYTES = 2**20
#: Per kind: EFS metadata reads, metadata writes, data reads, data writes and its typical wait (ms);
#: DynamoDB read units, write units, items read, items written, calls and its wait (ms).
KINDS: dict[str, tuple[float, ...]] = {
    "point_read": (8, 0, 1, 0, 9.0, 0.5, 0, 3, 0, 1, 8.0),
    "nested": (20, 0, 6, 0, 30.0, 20.0, 0, 41, 0, 6, 25.0),
    "list_page": (12, 0, 4, 0, 30.0, 52.0, 0, 202, 0, 3, 26.0),
    "create": (60, 100, 4, 8, 400.0, 2.0, 8.0, 3, 8, 4, 50.0),
    "update": (20, 10, 2, 2, 60.0, 1.5, 2.0, 2, 1, 3, 23.0),
}
Rows = list[dict[str, Any]]


def synthetic_row(i: int, kind: str) -> dict[str, Any]:
    """One request of ``kind``: EFS's range is a third to three times its typical wait."""
    mr, mw, dr, dw, efs, rru, wru, read, written, calls, dynamo = KINDS[kind]
    compute = 0.5 + 0.01 * (i % 7)
    row = {
        "i": i,
        "kind": kind,
        "compute_ms": compute,
        "metadata_read_ops": mr,
        "metadata_write_ops": mw,
        "data_read_ops": dr,
        "data_read_bytes": dr * 4096,
        "data_write_ops": dw,
        "data_write_bytes": dw * 4096,
        "nfs_requests": mr + mw + dr + dw,
        "dynamodb_items_read": read,
        "dynamodb_items_written": written,
        "dynamodb_calls": calls,
        "dynamodb_read_units": rru,
        "dynamodb_write_units": wru,
        "dynamodb_ms": compute + dynamo,
        "dynamodb_p99_ms": compute + 3 * dynamo,
    }
    for mode in ("elastic", "bursting", "provisioned", "one_zone"):
        row |= {
            f"efs_{mode}_ms": compute + efs,
            f"efs_{mode}_low_ms": compute + efs / 3,
            f"efs_{mode}_high_ms": compute + efs * 3,
            f"efs_{mode}_sequential_ms": compute + efs * 2,
        }
    return row


@pytest.fixture(scope="module")
def mix() -> Rows:
    """100 requests, 20 of each kind."""
    return [synthetic_row(i, kind) for i, kind in enumerate(list(MIX_WEIGHTS) * 20)]


def decide(
    mix: Rows, *, memory_mb: int = 1024, sizes_gib: Sequence[float] = SIZES_GIB, **weights: float
) -> tuple[Verdict, list[dict[str, Any]]]:
    """The verdict on ``mix`` weighted by ``weights`` (default :data:`MIX_WEIGHTS`), and its costs."""
    weights = weights or MIX_WEIGHTS
    costs = mix_summary(mix, weights=weights, stored_gib=STORED_BYTES / 2**30, memory_mb=memory_mb)
    capacity = mix_capacity(mix, sizes_gib, weights=weights)
    return verdict(costs, capacity, stored_bytes=STORED_BYTES, scale="small", seed=1), costs


def test_a_read_mostly_mix_on_provisioned_efs_is_cheaper_than_dynamodb(mix: Rows) -> None:
    result, _ = decide(mix)
    numbers = result.numbers
    assert result.efs_wins
    assert numbers["usd_per_million_mix_efs_provisioned"] < numbers["usd_per_million_mix_dynamodb"]
    assert EFS_WINS in result.conclusion and DYNAMODB_WINS not in result.conclusion
    assert result.conclusion.startswith("**Conclusion (small data set, 100 requests, seed 1).**")
    assert numbers["requests"] == len(mix)
    assert numbers["stored_mib"] == round(STORED_BYTES / 2**20, 1)
    # EFS is slower than DynamoDB for every kind at its typical latency
    assert numbers["efs_faster_for"] == []
    assert "EFS is faster for no kind of request in this mix." in result.conclusion
    # a page of a long list is many DynamoDB items but a few EFS pages; a create is many metered writes
    assert "list_page" in numbers["efs_provisioned_cheaper_for"]
    assert "list_page" in numbers["efs_elastic_cheaper_for"]
    assert "create" not in numbers["efs_elastic_cheaper_for"]
    # One Zone has a capacity but no price in the cost model
    assert "usd_per_million_mix_efs_one_zone" not in numbers
    assert {f"max_requests_per_s_mix_{d}" for d in DESIGNS if d != "dynamodb"} <= numbers.keys()
    assert [k.split("_", 2)[2] for k in numbers if k.startswith("median_ms_")] == [
        f"{kind}_efs_vs_dynamodb" for kind in [*MIX_WEIGHTS, "mix"]
    ]


def test_the_verdict_flips_when_lambda_time_is_dear(mix: Rows) -> None:
    """At 10 GB of Lambda memory every millisecond of EFS waits costs ten times more."""
    cheap, _ = decide(mix, memory_mb=1024)
    dear, costs = decide(mix, memory_mb=10_240)
    assert cheap.efs_wins and not dear.efs_wins
    assert DYNAMODB_WINS in dear.conclusion and EFS_WINS not in dear.conclusion
    usd = {r["design"]: r["usd_per_million"] for r in costs if r["kind"] == "mix"}
    assert usd["dynamodb"] < usd["efs_provisioned"]
    assert dear.numbers["usd_per_million_mix_dynamodb"] == round(usd["dynamodb"], 3)


def test_the_verdict_follows_the_weights_of_the_mix(mix: Rows) -> None:
    lists, _ = decide(mix, list_page=1.0)
    writes, _ = decide(mix, create=1.0)
    assert lists.efs_wins and not writes.efs_wins


def test_the_conclusion_names_the_first_size_at_which_bursting_sustains_100_requests(mix: Rows) -> None:
    result, _ = decide(mix)
    bursting = [r for r in mix_capacity(mix, SIZES_GIB, weights=MIX_WEIGHTS) if r["design"] == "efs_bursting"]
    first = next(i for i, r in enumerate(bursting) if r["max_requests_per_s"] >= 100)
    assert first > 0 and bursting[first - 1]["max_requests_per_s"] < 100
    assert (
        f"{bursting[first]['stored_gib']:,g} GiB is the first that sustains 100 requests/s"
        in result.conclusion
    )
    small_only, _ = decide(mix, sizes_gib=SIZES_GIB[:1])
    assert "is the first that sustains" not in small_only.conclusion


def test_mix_capacity_grows_with_the_data_stored_on_bursting_only(mix: Rows) -> None:
    capacity = mix_capacity(mix, SIZES_GIB, weights=MIX_WEIGHTS)
    assert [r["stored_gib"] for r in capacity[:4]] == [SIZES_GIB[0]] * 4
    assert {r["design"] for r in capacity} == {d for d in DESIGNS if d != "dynamodb"}
    by_design = {d: [r["max_requests_per_s"] for r in capacity if r["design"] == d] for d in DESIGNS}
    assert by_design["efs_bursting"] == sorted(by_design["efs_bursting"])
    assert by_design["efs_bursting"][0] < by_design["efs_bursting"][-1]
    assert len(set(by_design["efs_one_zone"])) == 1  # capped by its IOPS, whatever the size


def test_a_mix_without_the_quoted_kinds_is_refused(mix: Rows) -> None:
    rows = [r for r in mix if r["kind"] != "create"]
    costs = mix_summary(rows, weights=MIX_WEIGHTS)
    with pytest.raises(KeyError):
        verdict(costs, [], stored_bytes=STORED_BYTES, scale="small", seed=1)


# -- decisions: who wins each measure, and whether it holds across the latency range ------------


def summary_row(kind: str, design: str, ms: float, usd: float | None, spread: float = 1.0) -> dict[str, Any]:
    """A :func:`mix_summary` row: p99 twice the median; EFS's ends ``spread`` times below and above."""
    efs = design != "dynamodb"
    return {
        "kind": kind,
        "design": design,
        "median_ms": ms,
        "p99_ms": 2 * ms,
        "median_low_ms": ms / spread if efs else None,
        "median_high_ms": ms * spread if efs else None,
        "p99_low_ms": 2 * ms / spread if efs else None,
        "p99_high_ms": 2 * ms * spread if efs else None,
        "usd_per_million": usd,
        "usd_per_million_low": usd and usd / spread if efs else None,
        "usd_per_million_high": usd and usd * spread if efs else None,
    }


def test_decisions_name_the_winner_of_each_measure_and_whether_it_holds() -> None:
    table = [
        # EFS 5 ms against 8: wins p50 and p99 across [4.5, 5.5]; $ 3 against 2, loses across [2.7, 3.3]
        summary_row("a", "efs_elastic", 5, 3.0, 1.1),
        summary_row("a", "efs_provisioned", 5, 2.5, 1.1),  # the cheapest EFS design is the one priced
        summary_row("a", "efs_bursting", 5, 0.1),  # Lambda alone, at a rate its data caps: not compared
        summary_row("a", "efs_one_zone", 1, None),  # not priced: never the $ side; not the latency side
        summary_row("a", "dynamodb", 8, 2.0),
        # EFS 5 ms against 8 at typical, but [1.7, 15] in its range: the latency answers flip
        summary_row("mix", "efs_elastic", 5, 1.0, 3.0),
        summary_row("mix", "dynamodb", 8, 2.0),
    ]
    found = {(d.kind, d.measure): d for d in decisions(table)}
    assert set(found) == {(k, m) for k in ("a", "mix") for m in ("p50", "p99", "usd_per_million")}
    assert found["a", "p50"] == Decision("a", "p50", "efs", True, "efs_elastic", 5 / 1.1, 5, 5 * 1.1, 8)
    assert (found["a", "p99"].winner, found["a", "p99"].holds) == ("efs", True)
    usd = found["a", "usd_per_million"]
    assert (usd.winner, usd.holds, usd.efs_design, usd.efs) == ("dynamodb", True, "efs_provisioned", 2.5)
    assert (found["mix", "p50"].winner, found["mix", "p50"].holds) == ("efs", False)
    # $ 1 in [0.33, 3] against 2: EFS at typical, DynamoDB at the high end
    assert (found["mix", "usd_per_million"].winner, found["mix", "usd_per_million"].holds) == ("efs", False)
    assert decisions_table(decisions(table)) == [
        {"kind": "a", "p50": "efs", "p99": "efs", "usd_per_million": "dynamodb"},
        {"kind": "mix", "p50": "efs (flips)", "p99": "efs (flips)", "usd_per_million": "efs (flips)"},
    ]


def test_a_tie_goes_to_dynamodb() -> None:
    table = [summary_row("mix", "efs_elastic", 8, 2.0), summary_row("mix", "dynamodb", 8, 2.0)]
    assert {d.winner for d in decisions(table)} == {"dynamodb"}


def test_the_conclusion_ends_with_the_table_of_winners(mix: Rows) -> None:
    result, costs = decide(mix)
    assert result.numbers["winners"] == decisions_table(decisions(costs))
    assert result.conclusion.rstrip().endswith("|")
    assert "| kind | p50 | p99 | usd_per_million |" in result.conclusion
    # the synthetic create is slower on EFS at every end of its range (133 ms at the low end against
    # 50), and dearer at typical; at the low end its Lambda time falls enough for EFS to be cheaper
    create = {d.measure: d for d in decisions(costs) if d.kind == "create"}
    assert (create["p50"].winner, create["p50"].holds) == ("dynamodb", True)
    assert (create["usd_per_million"].winner, create["usd_per_million"].holds) == ("dynamodb", False)
    usd = create["usd_per_million"]
    assert usd.efs_low < usd.dynamodb < usd.efs < usd.efs_high


# -- when does EFS win: read share x request rate x stored GB --------------------------------------


def test_the_map_covers_the_grid_and_prices_each_point(mix: Rows) -> None:
    shares, rates, sizes = [0.0, 0.5, 1.0], [1.0, 100.0, 1e6], [0.01, 1_000]
    points = efs_wins_map(mix, shares, rates, sizes)
    assert [(p.read_share, p.stored_gib, p.requests_per_s) for p in points] == [
        (s, g, r) for s in shares for g in sizes for r in rates
    ]
    at = {(p.read_share, p.requests_per_s, p.stored_gib): p for p in points}
    # no EFS design sustains a million requests a second: DynamoDB, which scales, wins
    assert all(p.efs_design is None and not p.efs_wins for p in points if p.requests_per_s == 1e6)
    # at 1 request/s and 1 TB stored, storage decides: DynamoDB's $0.25 per GB-month against $0.30
    assert all(not at[s, 1.0, 1_000].efs_wins for s in shares)
    assert EFS_PRICES.storage_gb_month > DYNAMODB.storage_gb_month
    # a read-only mix at 100 requests/s: EFS wins on either size
    assert at[1.0, 100.0, 0.01].efs_wins and at[1.0, 100.0, 1_000].efs_wins
    # each side's figure: $ per million at that rate for a month, plus the data stored
    point = at[1.0, 100.0, 0.01]
    reads_only = {k: v for k, v in MIX_WEIGHTS.items() if k in ("point_read", "nested", "list_page")}
    summary = {
        r["design"]: r for r in mix_summary(mix, weights=reads_only, stored_gib=0.01) if r["kind"] == "mix"
    }
    per_month = 100 * MONTH_S / 1e6
    assert point.dynamodb_usd_month == pytest.approx(
        summary["dynamodb"]["usd_per_million"] * per_month + 0.01 * DYNAMODB.storage_gb_month
    )
    assert point.efs_design is not None
    assert point.efs_usd_month == pytest.approx(
        summary[point.efs_design]["usd_per_million"] * per_month + 0.01 * EFS_PRICES.storage_gb_month
    )
    assert summary[point.efs_design]["max_requests_per_s"] >= 100
    assert not math.isnan(point.efs_usd_month)
