"""The load experiments (notebook 04) and the query-mix experiment (notebook 05), on a small data set."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from efs_sqlite import PROFILES, ShardStore, generate_dataset, load_path
from efs_sqlite.experiments import (
    MIX_DOCUMENTS,
    MIX_WEIGHTS,
    check_load,
    load_throughput,
    mix_summary,
    query_mix,
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("dataset")
    return folder, generate_dataset(folder, "small", 3)


@pytest.fixture(scope="module")
def loaded(dataset: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("loaded")
    with ShardStore(root) as store:
        load_path(store, dataset[0], progress=False)
    return root


@pytest.fixture
def store_copy(loaded: Path, tmp_path: Path) -> Path:
    """A private copy of the loaded store: the mix's mutations change it."""
    return Path(shutil.copytree(loaded, tmp_path / "store"))


def test_check_load_passes_a_full_load_and_names_a_shard_that_lost_a_row(
    dataset: tuple[Path, dict], store_copy: Path
) -> None:
    manifest = dataset[1]
    with ShardStore(store_copy) as store:
        rows = check_load(store, manifest)
        assert {r["shard"] for r in rows} == set(manifest["shards"])
        assert all(r["ok"] and r["integrity"] == "ok" for r in rows)
        lists = {r["shard"]: r for r in rows}["party_claims"]
        assert lists["stored_rows"] == manifest["shards"]["party_claims"]["rows"]  # entries, not lists

        victim = store.scan("claim_type_code", limit=1)[0][0]
        assert store.delete("claim_type_code", victim)
        after = {r["shard"]: r for r in check_load(store, manifest)}
    assert not after["claim_type_code"]["ok"]
    assert after["claim_type_code"]["stored_rows"] == after["claim_type_code"]["expected_rows"] - 1
    assert all(r["ok"] for shard, r in after.items() if shard != "claim_type_code")


def test_load_throughput_measures_each_distinct_latency_once(dataset: tuple[Path, dict]) -> None:
    rows = load_throughput(
        dataset[0], threads=[1, 3], profiles=["local", "elastic", "bursting"], records=1500
    )
    assert [(r["profile"], r["threads"]) for r in rows] == [
        ("local", 1),
        ("local", 3),
        ("elastic / bursting", 1),
        ("elastic / bursting", 3),
    ]
    assert all(r["records"] == 1500 and r["records_per_s"] > 0 for r in rows)
    local, efs = rows[:2], rows[2:]
    assert all(r["nfs_requests"] is None for r in local)
    for r in efs:
        assert r["nfs_requests"] > 0
        assert r["slept_s"] == pytest.approx(r["modelled_s"])  # every modelled delay was really slept


def test_load_throughput_refuses_bad_arguments(dataset: tuple[Path, dict]) -> None:
    with pytest.raises(ValueError):
        load_throughput(dataset[0], threads=[0])
    with pytest.raises(ValueError, match="unknown profiles"):
        load_throughput(dataset[0], profiles=["nfs"], records=10)


def test_query_mix_rows_add_up(store_copy: Path) -> None:
    rows = query_mix(
        store_copy, requests=80, seed=5, profiles=["elastic", "one_zone"], translation="worst_case"
    )
    assert len(rows) == 80 and {r["kind"] for r in rows} <= set(MIX_DOCUMENTS)
    elastic, one_zone = PROFILES["elastic"], PROFILES["one_zone"]
    for r in rows:
        assert r["db_opens"] == 0  # a warm API keeps its files open
        reads = r["metadata_read_ops"] + r["metadata_write_ops"], r["data_read_ops"], r["data_write_ops"]
        # the critical path through the parallel path's reads: never longer than its round trips
        # made one after another, and never shorter than the compute time
        for design, profile in (("efs_elastic", elastic), ("efs_one_zone", one_zone)):
            one_after_another = r["compute_ms"] + profile.latency_s(*reads) * 1000
            assert r["compute_ms"] <= r[f"{design}_ms"] <= one_after_another + 0.01
            assert r[f"{design}_low_ms"] <= r[f"{design}_ms"] <= r[f"{design}_high_ms"]
        assert r["sequential_nfs_requests"] > 0 and r["efs_elastic_sequential_ms"] > r["compute_ms"]
        writes = r["kind"] in ("create", "update")
        assert (r["data_write_ops"] > 0) == writes == (r["dynamodb_items_written"] > 0)
        assert r["dynamodb_items_read"] > 0
        # DynamoDB as its backend counted: calls in waves, units, and their modelled latency
        assert 1 <= r["dynamodb_waves"] <= r["dynamodb_calls"]
        assert r["dynamodb_read_units"] > 0 and (r["dynamodb_write_units"] > 0) == writes
        assert r["compute_ms"] < r["dynamodb_ms"] <= r["dynamodb_p99_ms"]
    creates = [r for r in rows if r["kind"] == "create"]
    # a transaction: _type and its 5 given fields, and its entry in its claim's transactions (the
    # other side of the inverse pair) with that list's count item, one TransactWriteItems
    assert creates and {r["dynamodb_items_written"] for r in creates} == {8}
    reads_only = [r for r in rows if r["kind"] == "point_read"]
    # a point read: one BatchGetItem of its 3 fields, whatever the backend's consistency
    assert reads_only and {(r["dynamodb_calls"], r["dynamodb_items_read"]) for r in reads_only} == {(1, 3)}


def test_query_mix_draws_the_same_requests_for_a_seed(loaded: Path, tmp_path: Path) -> None:
    runs = [
        query_mix(shutil.copytree(loaded, tmp_path / name), requests=40, seed=9, profiles=["elastic"])
        for name in ("a", "b")
    ]
    keep = ("kind", "nfs_requests", "dynamodb_items_read", "dynamodb_items_written")
    first, second = ([{k: r[k] for k in keep} for r in run] for run in runs)
    assert first == second


def test_query_mix_refuses_unknown_kinds_and_profiles(store_copy: Path) -> None:
    with pytest.raises(ValueError):
        query_mix(store_copy, requests=5, weights={"delete_everything": 1.0})
    with pytest.raises(ValueError):
        query_mix(store_copy, requests=5, profiles=["nfs"])


def test_mix_summary_prices_and_caps_each_design(store_copy: Path) -> None:
    rows = query_mix(store_copy, requests=60, seed=2)
    table = mix_summary(rows, weights=MIX_WEIGHTS, stored_gib=0.5)
    kinds = {r["kind"] for r in rows}
    assert {(r["kind"], r["design"]) for r in table} == {
        (k, d)
        for k in [*kinds, "mix"]
        for d in ("efs_elastic", "efs_bursting", "efs_provisioned", "efs_one_zone", "dynamodb")
    }
    by = {(r["kind"], r["design"]): r for r in table}
    for kind in [*kinds, "mix"]:
        assert by[(kind, "dynamodb")]["max_requests_per_s"] is None
        assert by[(kind, "efs_one_zone")]["usd_per_million"] is None  # not priced by the cost model
        assert by[(kind, "efs_elastic")]["median_ms"] <= by[(kind, "efs_elastic")]["p95_ms"]
    per_kind = [by[(k, "efs_elastic")]["usd_per_million"] for k in kinds]
    assert min(per_kind) <= by[("mix", "efs_elastic")]["usd_per_million"] <= max(per_kind)
    # Bursting's sustained rate grows with the data stored; the IOPS-capped modes do not change
    bigger = {(r["kind"], r["design"]): r for r in mix_summary(rows, weights=MIX_WEIGHTS, stored_gib=5_000)}
    assert (
        bigger[("mix", "efs_bursting")]["max_requests_per_s"]
        > by[("mix", "efs_bursting")]["max_requests_per_s"]
    )
    assert (
        bigger[("mix", "efs_elastic")]["max_requests_per_s"]
        == by[("mix", "efs_elastic")]["max_requests_per_s"]
    )
    with pytest.raises(ValueError):
        mix_summary([])
