"""Workload experiments: exact, repeatable counts through the EFS model; costs as the price tables say."""

from __future__ import annotations

import math
import os
import random
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from efs_sqlite.costs import DYNAMODB, EFS_METERING, EFS_PRICES, LAMBDA, RequestProfile, cost_per_million
from efs_sqlite.efs_model import PROFILES, Ops
from efs_sqlite.experiments import (
    BENCHMARK_QUERY,
    COST_KEYS,
    LOCKING,
    OP_KINDS,
    WORKLOAD_JOURNAL_MODES,
    Workload,
    benchmark_graph,
    graphql_request_ops,
    request_profile,
    run_workloads,
    workloads,
)
from efs_sqlite.experiments.queries import _critical_path, _Read
from efs_sqlite.graph import Graph
from efs_sqlite.store import ShardStore
from efs_sqlite.uid import decode, encode

SIZES = {"rows": 300, "batch": 10, "list_entries": 2_000}
READS = ("point_read", "batched_read", "list_page")
WRITES = ("commit", "node_create")
COUNT_COLUMNS = (
    "db_opens",
    *(f"op_{k}" for k in OP_KINDS),
    "nfs_requests",
    "metadata_read_ops",
    "metadata_write_ops",
    "data_read_ops",
    "data_write_ops",
    "data_read_bytes",
    "data_write_bytes",
)
GiB, MiB = 2**30, 2**20
# synchronous=FULL makes every commit wait for the disk; the counts do not depend on the file
# system, so the cases live in memory (tmpfs) where there is one.
SHM = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


@pytest.fixture(scope="module")
def new_root() -> Iterator[Callable[[], Path]]:
    """Fresh folders whose paths all have the same length: a grouped write's super-journal holds
    the journals' full paths, so the bytes it writes depend on that length."""
    made: list[str] = []

    def make() -> Path:
        made.append(tempfile.mkdtemp(prefix="efs-experiments-", dir=SHM))
        return Path(made[-1])

    yield make
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def suite() -> dict[str, Workload]:
    return workloads(**SIZES)


@pytest.fixture(scope="module")
def table(suite, new_root) -> list[dict[str, Any]]:
    # Pinned on the worst-case translation; tests/test_nfs_client.py pins the Linux client's.
    return run_workloads(suite=suite, root=new_root(), repeats=2, translation="worst_case")


def key(row: dict[str, Any]) -> tuple[str, str, str, str]:
    return row["workload"], row["journal_mode"], row["locking"], row["profile"]


def row_of(table, workload, journal_mode="delete", locking="normal", profile="elastic") -> dict[str, Any]:
    (row,) = [r for r in table if key(r) == (workload, journal_mode, locking, profile)]
    return row


def test_the_table_has_every_combination(table, suite):
    warm = [name for name, w in suite.items() if not w.cold]
    expected = {(w, j, "normal", p) for w in suite for j in WORKLOAD_JOURNAL_MODES for p in PROFILES}
    expected |= {(w, j, "exclusive", p) for w in warm for j in WORKLOAD_JOURNAL_MODES for p in PROFILES}
    assert sorted(map(key, table)) == sorted(expected)  # each combination exactly once
    assert all(r["what_if"] == (r["locking"] == "exclusive") for r in table)
    # Every call the model counted is in exactly one op_ column.
    assert all(sum(r[f"op_{k}"] for k in OP_KINDS) == r["ops_total"] for r in table)


def test_counts_are_exact_and_repeatable(table, suite, new_root):
    again = run_workloads(
        ["point_read", "commit", "node_create", "list_page_cold"],
        journal_modes=["delete", "persist"],
        locking=LOCKING,
        profiles=["elastic"],
        suite=suite,
        root=new_root(),
        repeats=3,
        translation="worst_case",
    )
    for row in again:
        first = row_of(table, row["workload"], row["journal_mode"], row["locking"])
        assert {c: row[c] for c in COUNT_COLUMNS} == {c: first[c] for c in COUNT_COLUMNS}, row["workload"]


def test_a_workload_whose_runs_differ_is_refused(new_root):
    def grow(store, state, i):  # each run writes one more row than the last
        with store.write() as w:
            for n in range(i + 2):
                w.put("claim_type_code", 1000 * (i + 2) + n, "x" * 3000)

    growing = Workload("growing", "not repeatable", lambda store: None, grow)
    with pytest.raises(RuntimeError, match="repetitions made different operations"):
        run_workloads(["growing"], suite={"growing": growing}, locking=["normal"], root=new_root())


def test_a_commit_syncs_and_a_read_does_not(table):
    for r in table:
        base = r["workload"].removesuffix("_cold")
        if base in READS:
            assert r["op_sync"] == r["op_write"] == r["metadata_write_ops"] == 0, r["workload"]
        else:
            assert base in WRITES
            assert r["op_sync"] > 0 and r["op_write"] > 0 and r["data_write_bytes"] > 0, r["workload"]


def test_warm_reads_open_nothing_and_cold_ones_open_each_shard_once(table):
    for r in table:
        base = r["workload"].removesuffix("_cold")
        if base not in READS:
            continue
        if r["cold"]:
            assert r["db_opens"] == r["shards_touched"] == 1
        else:
            assert r["db_opens"] == 0
            # PERSIST leaves the journal behind: every read opens it to check it is not hot.
            assert r["op_open"] == (1 if r["journal_mode"] == "persist" and r["locking"] == "normal" else 0)


def test_a_warm_read_takes_one_lock_per_shard(table):
    for name in READS:
        r = row_of(table, name)
        assert r["shards_touched"] == r["max_lock_calls_per_shard"] == r["op_lock"] == r["op_unlock"] == 1


def test_exclusive_locking_is_a_what_if_that_drops_the_lock_round_trips(table):
    for name in READS:
        for mode in WORKLOAD_JOURNAL_MODES:
            r = row_of(table, name, mode, "exclusive")
            # The locks are held and nobody else can write: SQLite trusts its cache, no request at all.
            assert r["what_if"] and r["nfs_requests"] == 0 and r["latency_ms"] == 0
    for name in WRITES:
        normal, exclusive = row_of(table, name), row_of(table, name, locking="exclusive")
        assert exclusive["lock_requests"] == 0 < normal["lock_requests"]
        assert exclusive["nfs_requests"] < normal["nfs_requests"]


def test_latency_columns_follow_the_profiles(table):
    for r in table:
        p = PROFILES[r["profile"]]
        expected = (
            (r["metadata_read_ops"] + r["metadata_write_ops"]) * p.metadata_s
            + r["data_read_ops"] * p.read_s
            + r["data_write_ops"] * p.write_s
        )
        assert r["latency_ms"] == pytest.approx(expected * 1000)
        if r["profile"] == "local":
            assert r["latency_ms"] == 0


def test_cost_columns_are_the_cost_model_of_the_row(table, suite):
    for r in table:
        w = suite[r["workload"]]
        profile = RequestProfile(
            **{k: r[k] for k in ("metadata_read_ops", "metadata_write_ops", "data_read_ops")},
            **{k: r[k] for k in ("data_read_bytes", "data_write_ops", "data_write_bytes")},
            **w.dynamodb,
        )
        usd = cost_per_million(profile, atomic=w.atomic)
        assert {k: r[f"usd_per_million_{k}"] for k in COST_KEYS} == pytest.approx(usd)


def lambda_usd(seconds: float) -> float:
    """One invocation at 1 GB, duration rounded up to the millisecond."""
    return LAMBDA.request + math.ceil(round(seconds * 1000, 6)) / 1000 * LAMBDA.gb_second


def test_cost_columns_match_a_hand_computation(table):
    r = row_of(table, "commit")
    latency_s = r["latency_ms"] / 1000  # Elastic, Bursting and Provisioned share the Regional latencies
    m = EFS_METERING
    # Elastic: data requests metered at >= 32 KiB each, metadata at >= 4 KiB; reads and writes priced apart.
    read = max(r["data_read_ops"] * m.elastic_data_min, r["data_read_bytes"])
    read += r["metadata_read_ops"] * m.elastic_metadata_min
    write = max(r["data_write_ops"] * m.elastic_data_min, r["data_write_bytes"])
    write += r["metadata_write_ops"] * m.elastic_metadata_min
    elastic = (read * EFS_PRICES.elastic_read_gb + write * EFS_PRICES.elastic_write_gb) / GiB
    assert r["usd_per_million_efs_elastic"] == pytest.approx((elastic + lambda_usd(latency_s)) * 1e6)
    # Bursting: no charge per request, only the Lambda time the waits add.
    assert r["usd_per_million_efs_bursting"] == pytest.approx(lambda_usd(latency_s) * 1e6)
    # Provisioned: the MiB/s these requests need all month (requests >= 4 KB, reads at a third).
    metered = max(r["data_read_ops"] * 4096, r["data_read_bytes"]) / 3
    metered += max(r["data_write_ops"] * 4096, r["data_write_bytes"])
    metered += (r["metadata_read_ops"] + r["metadata_write_ops"]) * 4096
    provisioned = metered / MiB * EFS_PRICES.provisioned_mibps_month / (730 * 3600)
    assert r["usd_per_million_efs_provisioned"] == pytest.approx((provisioned + lambda_usd(latency_s)) * 1e6)
    # DynamoDB: one PutItem of one ~100-byte item: one write unit, one round trip.
    dynamo = DYNAMODB.write_request_unit + lambda_usd(DYNAMODB.latency_s)
    assert r["usd_per_million_dynamodb"] == pytest.approx(dynamo * 1e6)
    assert r["dynamodb_latency_ms"] == DYNAMODB.latency_s * 1000


def test_request_profile_takes_the_measured_ops_and_the_dynamodb_side():
    ops = {
        "metadata_read_ops": 7,
        "metadata_write_ops": 1,
        "data_read_ops": 2,
        "data_read_bytes": 100,
        "data_write_ops": 3,
        "data_write_bytes": 5000,
    }
    p = request_profile(ops, dynamodb={"items_read": 150, "dynamodb_calls": 2}, compute_s=0.004)
    assert (p.metadata_ops, p.data_read_bytes, p.data_write_ops) == (8, 100, 3)
    assert (p.items_read, p.dynamodb_calls, p.compute_s) == (150, 2, 0.004)
    with pytest.raises(ValueError, match="BatchGetItem"):
        request_profile(ops, dynamodb={"items_read": 150})  # 150 keys cannot be one BatchGetItem


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"journal_modes": ["wal"]}, "WAL cannot run on EFS"),
        ({"profiles": ["nfs"]}, "unknown choices"),
        ({"locking": ["shared"]}, "unknown choices"),
        ({"repeats": 0}, "repeats"),
    ],
)
def test_bad_choices_are_refused(kwargs, message, suite):
    with pytest.raises(ValueError, match=message):
        run_workloads(["point_read"], suite=suite, **kwargs)
    with pytest.raises(ValueError, match="unknown workloads"):
        run_workloads(["no_such_workload"], suite=suite)


# -- the GraphQL request -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def benchmark(new_root) -> list[dict[str, Any]]:
    return graphql_request_ops(
        profiles=["elastic", "bursting"], root=new_root(), repeats=2, translation="worst_case"
    )


def test_the_benchmark_request_warm(benchmark):
    warm = [r for r in benchmark if not r["cold"]]
    assert {r["profile"] for r in warm} == {"elastic", "bursting"}
    r = next(r for r in warm if r["profile"] == "elastic")
    # claim: 3 values + 2 lists; its parties: 2 values + 1 list: 8 shards, each read once, no file opened.
    assert r["shards_touched"] == 8
    assert r["op_open"] == r["db_opens"] == 0
    assert r["max_lock_calls_per_shard"] == 1 and r["op_lock"] == r["op_unlock"] == 8
    assert r["op_sync"] == r["op_write"] == 0
    # A read-only request on Elastic: every request one ~1 ms round trip.
    assert r["latency_ms"] == pytest.approx(r["nfs_requests"] * PROFILES["elastic"].metadata_s * 1000)
    # The claim's values and lists first; then its parties' values and lists, whose ids the page gave.
    assert r["rounds"] == 2
    # Locked ahead: every shard's read transaction begins at once (7 round trips: the lock, its
    # probes, the change counter), both rounds read warm pages inside them (none), and all commit
    # at once (1): the request waits for one shard's lock cycle, not one per round.
    per_shard = r["latency_ms"] / r["shards_touched"]
    assert per_shard == pytest.approx(8.0)
    assert r["latency_parallel_ms"] == pytest.approx(per_shard) and r["latency_parallel_ms"] <= 15.0
    assert r["dynamodb_items_read"] == 3 + 2 + 10 * 3


def test_the_benchmark_request_cold_opens_each_shard_once(benchmark):
    r = next(r for r in benchmark if r["cold"] and r["profile"] == "elastic")
    warm = next(r for r in benchmark if not r["cold"] and r["profile"] == "elastic")
    assert r["db_opens"] == r["shards_touched"] == 8
    assert r["latency_ms"] > warm["latency_ms"] and r["latency_parallel_ms"] < r["latency_ms"]


def test_reads_that_need_nothing_from_each_other_overlap(new_root):
    query = "query($id: ID!) { claim(id: $id) { claimIdentifier claimTypeCode timestamp } }"
    (r,) = graphql_request_ops(query, profiles=["elastic"], cold=[False], root=new_root(), repeats=2)
    # Three shards read for one known id: concurrently, the request waits for one of them.
    assert (r["shards_touched"], r["rounds"]) == (3, 1)
    assert r["latency_parallel_ms"] == pytest.approx(r["latency_ms"] / 3)
    assert r["dynamodb_items_read"] == 3


#: From a party: its claims, and their parties: the party shards are read at two levels.
PARTY_CLAIMS_PARTIES = """query($id: ID!) { party(id: $id) { partyIdentifier
  claims: claimsConnection { edges { node { claimTypeCode parties: partiesConnection(first: 10) { edges
    { node { partyIdentifier } } } } } } } }"""


def _first_party(store: ShardStore) -> dict[str, str]:
    claim = decode(benchmark_graph(store)["id"])
    return {"id": encode(store.list_page("claim_parties", claim, 0, 1)[0])}


def test_a_shard_read_at_two_levels_is_locked_once(new_root):
    (r,) = graphql_request_ops(
        PARTY_CLAIMS_PARTIES,
        data=_first_party,
        profiles=["elastic"],
        cold=[False],
        root=new_root(),
        translation="worst_case",
    )
    # party_identifier, party_claims, claim_type_code, claim_parties: the party, its claim, the
    # claim's parties (the first one already read); one lock cycle each for the whole request.
    assert r["shards_touched"] == 4 and r["rounds"] == 3
    assert r["max_lock_calls_per_shard"] == 1 and r["op_lock"] == 4
    assert r["latency_parallel_ms"] == pytest.approx(8.0)


def _claim_without_parties(store: ShardStore) -> dict[str, str]:
    benchmark_graph(store)  # the party shards exist ...
    day = datetime(2024, 3, 2, tzinfo=UTC)
    return {
        "id": encode(Graph(store).create_node("Claim", {"identifier": 1, "type_code": "X", "timestamp": day}))
    }


def test_shards_locked_ahead_but_not_read_show_in_the_counts(new_root):
    (r,) = graphql_request_ops(
        data=_claim_without_parties,
        profiles=["elastic"],
        cold=[False],
        root=new_root(),
        translation="worst_case",
    )
    # ... and are locked ahead though the claim has no parties to read them for: their lock
    # cycles are counted (8 round trips each), off the critical path.
    assert r["shards_touched"] == 8 and r["op_lock"] == r["op_unlock"] == 8
    assert r["rounds"] == 1 and r["latency_parallel_ms"] == pytest.approx(8.0)
    assert r["dynamodb_items_read"] == 3 + 2


def _traced(shard: str, start: int, end: int, ms: int, data: bool = True, **ids: set[int]) -> _Read:
    ops = Ops(PROFILES["elastic"], metadata_read_ops=ms, rounds=Counter(getattr=ms))
    return _Read({shard}, ids.get("keys", set()), ids.get("found", set()), ops, data, start, end)


def test_the_critical_path_follows_shards_and_ids_whatever_the_order_of_the_trace():
    reads = [
        _traced("a", 1, 4, 7, data=False),  # lock-ahead BEGINs, at once
        _traced("b", 2, 3, 7, data=False),
        _traced("a", 5, 6, 0, keys={1}, found={2}),  # a list read: node 2 is in node 1's list
        _traced("b", 7, 8, 0, keys={1}),  # the same round: needs nothing from "a"
        _traced("b", 9, 10, 2, keys={2}),  # the next round: node 2's values (2 round trips)
        _traced("a", 11, 12, 1, data=False),  # the COMMITs
        _traced("b", 13, 14, 1, data=False),
    ]
    # the reads' own, nothing else
    total = Ops(PROFILES["elastic"], metadata_read_ops=18, rounds=Counter(getattr=18))
    expected = (pytest.approx(0.010), 2)  # BEGIN b (7), its reads (0, then 2), COMMIT b (1)
    assert _critical_path(total, reads, "elastic") == expected
    for seed in range(5):
        shuffled = reads[:]
        random.Random(seed).shuffle(shuffled)
        assert _critical_path(total, shuffled, "elastic") == expected


def test_a_failing_request_is_an_error(new_root):
    with pytest.raises(RuntimeError, match="the request failed"):
        graphql_request_ops(BENCHMARK_QUERY, {"id": "00000000001"}, cold=[False], root=new_root())
