"""Notebook 05's verdict, decided from a real query mix on a small data set: it names the side the
numbers favour, and flips when the inputs favour the other side."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from efs_sqlite import ShardStore, generate_dataset, load_path
from efs_sqlite.experiments import MIX_WEIGHTS, Verdict, mix_capacity, mix_summary, query_mix, verdict
from efs_sqlite.experiments.queries import DESIGNS

SIZES_GIB = [0.01, 1, 10, 100, 1_000, 10_000]
EFS_WINS = "**In short:** SQLite on EFS is the cheaper way"
DYNAMODB_WINS = "**In short:** for this mix DynamoDB is both cheaper and faster"
#: A mix's request rows, and the bytes of the store it ran on.
Mix = tuple[list[dict[str, Any]], int]


@pytest.fixture(scope="module")
def mix(tmp_path_factory: pytest.TempPathFactory) -> Mix:
    """The rows of a 150-request mix, and the bytes of the store it ran on."""
    data, root = tmp_path_factory.mktemp("dataset"), tmp_path_factory.mktemp("store")
    generate_dataset(data, "small", 3)
    with ShardStore(root) as store:
        load_path(store, data, progress=False)
        stored_bytes = store.stats(integrity=False)["total_bytes"]
    # Its verdicts are pinned on the worst-case translation (the Linux client's makes EFS faster).
    return query_mix(root, requests=150, seed=1, translation="worst_case"), stored_bytes


def decide(
    mix: Mix, *, memory_mb: int = 1024, sizes_gib: Sequence[float] = SIZES_GIB, **weights: float
) -> tuple[Verdict, list[dict[str, Any]]]:
    """The verdict on ``mix`` weighted by ``weights`` (default :data:`MIX_WEIGHTS`), and its costs."""
    rows, stored_bytes = mix
    weights = weights or MIX_WEIGHTS
    costs = mix_summary(rows, weights=weights, stored_gib=stored_bytes / 2**30, memory_mb=memory_mb)
    capacity = mix_capacity(rows, sizes_gib, weights=weights)
    return verdict(costs, capacity, stored_bytes=stored_bytes, scale="small", seed=1), costs


def test_a_read_mostly_mix_on_provisioned_efs_is_cheaper_than_dynamodb(mix: Mix) -> None:
    result, _ = decide(mix)
    numbers = result.numbers
    assert result.efs_wins
    assert numbers["usd_per_million_mix_efs_provisioned"] < numbers["usd_per_million_mix_dynamodb"]
    assert EFS_WINS in result.conclusion and DYNAMODB_WINS not in result.conclusion
    assert result.conclusion.startswith("**Conclusion (small data set, 150 requests, seed 1).**")
    assert numbers["requests"] == len(mix[0])
    assert numbers["stored_mib"] == round(mix[1] / 2**20, 1)
    # ~1 ms per EFS round trip and several per request: DynamoDB's ~10 ms calls are faster for all
    assert numbers["efs_faster_for"] == []
    assert "EFS is faster for no kind of request in this mix." in result.conclusion
    # a page of a long list is many DynamoDB items but a few EFS pages; a create is 7 metered writes
    assert "list_page" in numbers["efs_provisioned_cheaper_for"]
    assert "list_page" in numbers["efs_elastic_cheaper_for"]
    assert "create" not in numbers["efs_elastic_cheaper_for"]
    # One Zone has a capacity but no price in the cost model
    assert "usd_per_million_mix_efs_one_zone" not in numbers
    assert {f"max_requests_per_s_mix_{d}" for d in DESIGNS if d != "dynamodb"} <= numbers.keys()
    assert [k.split("_", 2)[2] for k in numbers if k.startswith("median_ms_")] == [
        f"{kind}_efs_vs_dynamodb" for kind in [*MIX_WEIGHTS, "mix"]
    ]


def test_the_verdict_flips_when_lambda_time_is_dear(mix: Mix) -> None:
    """At 10 GB of Lambda memory every millisecond of EFS waits costs ten times more."""
    cheap, _ = decide(mix, memory_mb=1024)
    dear, costs = decide(mix, memory_mb=10_240)
    assert cheap.efs_wins and not dear.efs_wins
    assert DYNAMODB_WINS in dear.conclusion and EFS_WINS not in dear.conclusion
    usd = {r["design"]: r["usd_per_million"] for r in costs if r["kind"] == "mix"}
    assert usd["dynamodb"] < usd["efs_provisioned"]
    assert dear.numbers["usd_per_million_mix_dynamodb"] == round(usd["dynamodb"], 3)


def test_the_verdict_follows_the_weights_of_the_mix(mix: Mix) -> None:
    lists, _ = decide(mix, list_page=1.0)
    writes, _ = decide(mix, create=1.0)
    assert lists.efs_wins and not writes.efs_wins


def test_the_conclusion_names_the_first_size_at_which_bursting_sustains_100_requests(mix: Mix) -> None:
    result, _ = decide(mix)
    bursting = [
        r for r in mix_capacity(mix[0], SIZES_GIB, weights=MIX_WEIGHTS) if r["design"] == "efs_bursting"
    ]
    first = next(i for i, r in enumerate(bursting) if r["max_requests_per_s"] >= 100)
    assert first > 0 and bursting[first - 1]["max_requests_per_s"] < 100
    assert (
        f"{bursting[first]['stored_gib']:,g} GiB is the first that sustains 100 requests/s"
        in result.conclusion
    )
    small_only, _ = decide(mix, sizes_gib=SIZES_GIB[:1])
    assert "is the first that sustains" not in small_only.conclusion


def test_mix_capacity_grows_with_the_data_stored_on_bursting_only(mix: Mix) -> None:
    capacity = mix_capacity(mix[0], SIZES_GIB, weights=MIX_WEIGHTS)
    assert [r["stored_gib"] for r in capacity[:4]] == [SIZES_GIB[0]] * 4
    assert {r["design"] for r in capacity} == {d for d in DESIGNS if d != "dynamodb"}
    by_design = {d: [r["max_requests_per_s"] for r in capacity if r["design"] == d] for d in DESIGNS}
    assert by_design["efs_bursting"] == sorted(by_design["efs_bursting"])
    assert by_design["efs_bursting"][0] < by_design["efs_bursting"][-1]
    assert len(set(by_design["efs_one_zone"])) == 1  # capped by its IOPS, whatever the size


def test_a_mix_without_the_quoted_kinds_is_refused(mix: Mix) -> None:
    rows = [r for r in mix[0] if r["kind"] != "create"]
    costs = mix_summary(rows, weights=MIX_WEIGHTS)
    with pytest.raises(KeyError):
        verdict(costs, [], stored_bytes=mix[1], scale="small", seed=1)
