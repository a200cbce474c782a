"""The store interface's contract, held by both backends: every test runs on a ShardStore (SQLite
shards on ``tmp_path``) and on a DynamoStore (a fresh table of the in-process moto server)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from test_store import INT64_MAX, INT64_MIN, VALUES, assert_same

from efs_sqlite.backend import StoreBackend
from efs_sqlite.errors import LoadError, StoreError, UIDCollision
from efs_sqlite.graph import Graph
from efs_sqlite.loader import load
from efs_sqlite.store import Ref


def test_it_is_a_store_backend(backend: StoreBackend) -> None:
    assert isinstance(backend, StoreBackend)
    assert isinstance(backend.parallel_reads, bool) and isinstance(backend.read_locks, bool)
    assert backend.healthy() is True
    assert backend.has_shard("claim_amount") in (True, False)


@pytest.mark.parametrize("value", VALUES, ids=lambda v: f"{type(v).__name__}:{v!r}"[:50])
def test_value_round_trips_with_its_type(backend: StoreBackend, value: Any) -> None:
    backend.insert("v", 1, value)
    assert_same(backend.get("v", 1, default="absent"), value)
    assert_same(backend.get_many("v", [1])[1], value)


def test_nan_and_absent_values(backend: StoreBackend) -> None:
    backend.insert("v", 1, math.nan)
    backend.insert("v", 2, Decimal("NaN"))
    assert_same(backend.get("v", 1), math.nan)
    assert str(backend.get("v", 2)) == "NaN"
    assert backend.get("v", 3) is None and backend.get("v", 3, "d") == "d"
    assert backend.get("no_such_shard", 1) is None


def test_every_write_and_read_path_keeps_types(backend: StoreBackend) -> None:
    rows = list(enumerate(VALUES, start=1))
    backend.bulk_insert("bulk", rows)
    with backend.write() as w:
        for uid, value in rows[:30]:
            w.insert("grouped", uid, value)
    for shard, written in (("bulk", rows), ("grouped", rows[:30])):
        many = backend.get_many(shard, [uid for uid, _ in written])
        scanned = dict(backend.scan(shard, limit=len(written) + 1))
        for uid, value in written:
            assert_same(backend.get(shard, uid), value)
            assert_same(many[uid], value)
            assert_same(scanned[uid], value)


@pytest.mark.parametrize(
    ("value", "error"), [(2**63, ValueError), ([1, 2], TypeError), (object(), TypeError)]
)
def test_unstorable_values_raise_and_write_nothing(backend: StoreBackend, value: Any, error: type) -> None:
    backend.insert("v", 1, "kept")
    with pytest.raises(error):
        backend.put("v", 1, value)
    with pytest.raises(error), backend.write() as w:
        w.insert("v", 2, "first")
        w.insert("other", 2, value)
    with pytest.raises(error):
        backend.bulk_insert("v", [(3, "ok"), (4, value)])
    assert backend.scan("v") == [(1, "kept")]


def test_insert_collision_raises_and_keeps_the_original(backend: StoreBackend) -> None:
    backend.insert("s", 7, "original")
    with pytest.raises(UIDCollision) as info:
        backend.insert("s", 7, "intruder")
    assert (info.value.shard, info.value.uid) == ("s", 7)
    assert isinstance(info.value, StoreError) and isinstance(info.value, KeyError)
    assert backend.get("s", 7) == "original" and backend.count("s") == 1


def test_a_collision_in_a_group_writes_nothing_of_the_group(backend: StoreBackend) -> None:
    backend.insert("b", 1, "original")
    with pytest.raises(UIDCollision), backend.write() as w:
        w.insert("a", 1, "new")
        w.list_extend("c", 1, [5, 6])
        w.insert("b", 1, "intruder")
    assert backend.get("a", 1) is None and backend.list_count("c", 1) == 0
    assert backend.get("b", 1) == "original"


def test_an_exception_in_the_block_writes_nothing(backend: StoreBackend) -> None:
    with pytest.raises(RuntimeError), backend.write() as w:
        w.insert("a", 1, "x")
        raise RuntimeError("changed my mind")
    assert backend.get("a", 1) is None


def test_put_delete_and_reinsert(backend: StoreBackend) -> None:
    backend.put("s", 1, "first")
    backend.put("s", 1, Decimal("2.50"))
    assert_same(backend.get("s", 1), Decimal("2.50"))
    backend.insert("s", 2, "y")
    backend.list_extend("s", 1, [10, 11])
    assert backend.delete("s", 1) is True
    assert backend.get("s", 1) is None and backend.list_count("s", 1) == 0
    assert backend.delete("s", 1) is False
    assert backend.get("s", 2) == "y"
    backend.insert("s", 1, "reused")
    assert backend.get("s", 1) == "reused" and backend.count("s") == 2


def test_get_many_returns_only_present_ids(backend: StoreBackend) -> None:
    backend.bulk_insert("s", [(i, f"v{i}") for i in range(0, 300, 2)])
    assert backend.get_many("s", []) == {}
    assert backend.get_many("s", [4, 5, 4, 298, 1000]) == {4: "v4", 298: "v298"}
    assert backend.get_many("s", iter(range(300))) == {i: f"v{i}" for i in range(0, 300, 2)}


@pytest.mark.parametrize("uid", [2**63, "1", True])
def test_bad_ids_are_refused(backend: StoreBackend, uid: Any) -> None:
    for call in (
        lambda: backend.insert("s", uid, "x"),
        lambda: backend.list_extend("s", 1, [uid]),
        lambda: backend.bulk_insert("s", [(1, "x"), (uid, "y")]),
    ):
        with pytest.raises(ValueError, match="not a signed 64-bit integer"):
            call()
    assert backend.count("s") == 0 and backend.list_count("s", 1) == 0


def test_scan_is_in_id_order_with_after_and_limit(backend: StoreBackend) -> None:
    ids = [INT64_MIN, -5, 0, 3, 17, 2**40, INT64_MAX]
    for uid in reversed(ids):
        backend.insert("s", uid, uid % 1000)
    backend.insert("other", 1, "not in s")
    assert [uid for uid, _ in backend.scan("s")] == ids
    assert backend.scan("s", limit=2) == [(INT64_MIN, INT64_MIN % 1000), (-5, -5 % 1000)]
    assert [uid for uid, _ in backend.scan("s", after=1, limit=2)] == [3, 17]
    assert backend.scan("s", after=INT64_MAX) == [] and backend.count("s") == len(ids)


def test_reference_lists_extend_page_count_remove(backend: StoreBackend) -> None:
    backend.list_extend("claim_parties", 1, [30, 10, 20])
    backend.list_extend("claim_parties", 1, [10, 40])
    backend.list_extend("claim_parties", 2, [99])
    assert backend.list_page("claim_parties", 1) == [30, 10, 20, 10, 40]
    assert backend.list_page("claim_parties", 1, offset=1, limit=2) == [10, 20]
    assert backend.list_page("claim_parties", 1, offset=5) == []
    assert backend.list_page("claim_parties", 1, limit=0) == []
    assert backend.list_count_many("claim_parties", [1, 2, 3]) == {1: 5, 2: 1, 3: 0}
    assert backend.list_page_many("claim_parties", [2, 1, 3], limit=2) == {2: [99], 1: [30, 10], 3: []}
    assert backend.list_window_many("claim_parties", [1, 2, 3], offset=1, limit=3) == (
        {1: 5, 2: 1, 3: 0},
        {1: [10, 20, 10], 2: [], 3: []},
    )
    assert backend.list_remove("claim_parties", 1, [10, 77]) == 2
    assert backend.list_page("claim_parties", 1) == [30, 20, 40]
    assert backend.list_count("claim_parties", 1) == 3
    backend.list_extend("claim_parties", 1, [50])
    assert backend.list_page("claim_parties", 1, offset=2, limit=1) == [40]
    assert backend.list_remove("claim_parties", 9, [1]) == 0
    with pytest.raises(ValueError):
        backend.list_page("claim_parties", 1, offset=-1)
    with backend.write() as w:
        w.list_set("claim_parties", 1, [5, 6])
        w.list_extend("claim_parties", 2, [100])
    assert backend.list_page("claim_parties", 1) == [5, 6] and backend.list_count("claim_parties", 1) == 2
    assert backend.list_page("claim_parties", 2) == [99, 100]
    backend.insert("claim_parties", 1, "a value")  # a value and a list of one id, side by side
    assert backend.get("claim_parties", 1) == "a value" and backend.list_count("claim_parties", 1) == 2


def test_several_changes_of_one_list_in_one_group(backend: StoreBackend) -> None:
    backend.list_extend("l", 1, [1, 2, 3, 4])
    with backend.write() as w:
        w.list_remove("l", 1, [2])
        w.list_extend("l", 1, [5])
        w.list_remove("l", 1, [1])
        w.put("v", 1, "x")
        w.put("v", 1, "y")
    assert backend.list_page("l", 1) == [3, 4, 5] and backend.get("v", 1) == "y"


def test_bulk_lists(backend: StoreBackend) -> None:
    rows = [(1, [3, 2, 1]), (2, list(range(300))), (3, [])]
    assert backend.bulk_lists("party_claims", rows) == 3
    assert backend.bulk_lists("party_claims", rows) == 3  # replace: idempotent
    assert backend.list_count_many("party_claims", [1, 2, 3]) == {1: 3, 2: 300, 3: 0}
    assert backend.list_page("party_claims", 2, offset=298) == [298, 299]
    assert backend.bulk_lists("party_claims", rows, on_conflict="skip_equal") == 1  # only the empty one
    with pytest.raises(UIDCollision) as info:
        backend.bulk_lists("party_claims", [(4, [1]), (1, [3, 2])], on_conflict="skip_equal")
    assert (info.value.uid, info.value.row, info.value.held, info.value.value) == (1, 1, [3, 2, 1], [3, 2])
    backend.bulk_lists("party_claims", [(2, [7])])  # replace: a shorter list
    assert backend.list_page("party_claims", 2) == [7] and backend.list_count("party_claims", 2) == 1


def test_bulk_insert_conflict_modes(backend: StoreBackend) -> None:
    assert backend.bulk_insert("s", [(1, "one"), (2, "two")]) == 2
    with pytest.raises(UIDCollision) as info:
        backend.bulk_insert("s", [(3, "three"), (2, "again"), (4, "four")])
    assert info.value.uid == 2
    with pytest.raises(UIDCollision) as info:
        backend.bulk_insert("s", [(5, "five"), (5, "twice")])
    assert info.value.uid == 5
    assert backend.scan("s") == [(1, "one"), (2, "two")]
    assert backend.bulk_insert("s", [(2, "kept?"), (3, "three")], on_conflict="ignore") == 1
    assert backend.bulk_insert("s", [(2, "replaced"), (4, "four")], on_conflict="replace") == 2
    assert backend.scan("s") == [(1, "one"), (2, "replaced"), (3, "three"), (4, "four")]
    assert backend.bulk_insert("s", [(1, "one"), (9, "nine")], on_conflict="skip_equal") == 1
    with pytest.raises(UIDCollision) as info:
        backend.bulk_insert("s", [(1, "uno")], on_conflict="skip_equal")
    assert (info.value.row, info.value.held, info.value.value) == (0, "one", "uno")
    with pytest.raises(ValueError, match="on_conflict"):
        backend.bulk_insert("s", [(10, "x")], on_conflict="overwrite")  # type: ignore[arg-type]
    assert backend.get("s", 10) is None


def test_bulk_insert_stored(backend: StoreBackend) -> None:
    day = 86_400_000_000
    assert backend.bulk_insert_stored("claim_timestamp", "datetime", [1, 2], [0, day]) == 2
    assert backend.get("claim_timestamp", 2) == datetime(1970, 1, 2, tzinfo=UTC)
    assert backend.bulk_insert_stored("transaction_amount", "decimal", [1], ["12.50"]) == 1
    assert_same(backend.get("transaction_amount", 1), Decimal("12.50"))
    assert backend.bulk_insert_stored("transaction_claim", "ref", [1], [9]) == 1
    assert_same(backend.get("transaction_claim", 1), Ref(9))
    with pytest.raises(TypeError, match="a stored datetime value"):
        backend.bulk_insert_stored("claim_timestamp", "datetime", [3], ["1970-01-01"])
    assert (
        backend.bulk_insert_stored("claim_timestamp", "datetime", [1, 4], [0, day], on_conflict="skip_equal")
        == 1
    )
    with pytest.raises(ValueError, match="kind must be one of"):
        backend.bulk_insert_stored("claim_timestamp", "float", [5], [1.0])


def test_reads_and_holds(backend: StoreBackend) -> None:
    backend.insert("s", 1, "x")
    with backend.read():
        assert backend.get("s", 1) == "x"
    assert backend.begin_read("s", wait=False) is True
    assert backend.get("s", 1) == "x" and backend.get_many("s", [1]) == {1: "x"}
    backend.end_reads()
    backend.insert("s", 2, "y")
    assert backend.get("s", 2) == "y"


def test_stats(backend: StoreBackend) -> None:
    backend.bulk_insert("a", [(i, i) for i in range(10)])
    backend.insert("b", 1, "x")
    backend.list_extend("b", 1, [1, 2, 3])
    stats = backend.stats(integrity=False)
    assert {s: (v["rows"], v["refs"]) for s, v in stats["shards"].items()} == {"a": (10, 0), "b": (1, 3)}
    assert (stats["total_rows"], stats["total_refs"]) == (11, 3) and stats["total_bytes"] > 0


def test_graph_nodes_on_either_backend(backend: StoreBackend) -> None:
    g = Graph(backend)
    claim = g.create_node("Claim", {"identifier": 1, "type_code": "MOTOR", "timestamp": "2024-01-01"})
    party = g.create_node("Party", {"identifier": 7, "timestamp": "2024-01-01", "claims": [claim]})
    assert g.list_page(claim, "parties") == [party]  # the inverse side, in the same grouped write
    assert g.list_remove(claim, "parties", [party]) == 1 and g.list_page(party, "claims") == []
    g.list_add(claim, "parties", [party])
    assert g.list_count(claim, "parties") == 1
    assert g.update_node(claim, {"type_code": "HOME"}) == "Claim"
    assert g.get_node(claim)["type_code"] == "HOME" and g.list_page(party, "claims") == [claim]
    with pytest.raises(UIDCollision):
        g.create_node("Claim", {"identifier": 2, "type_code": "X", "timestamp": "2024-01-01"}, uid=claim)
    assert g.delete_node(party) == "Party"
    assert g.type_of(party) is None and backend.list_count("party_claims", party) == 0
    assert g.list_count(claim, "parties") == 0  # deleting a node takes it off the lists naming it


def test_the_loader_loads_reruns_and_refuses_changes(backend: StoreBackend) -> None:
    records = [
        {"shard": "_type", "uid": 5, "value": "Party"},
        {"shard": "party_identifier", "uid": 5, "value": 42},
        {"shard": "party_timestamp", "uid": 5, "value": "2024-01-01T00:00:00+00:00"},
        {"shard": "party_claims", "uid": 5, "value": [7, 8]},
    ]
    summary = load(backend, records, progress=False)
    assert (summary.records, summary.skipped) == (4, 0)
    assert backend.list_page("party_claims", 5) == [7, 8] and backend.get("party_identifier", 5) == 42
    assert load(backend, records, progress=False).skipped == 4
    changed = [*records[:1], {"shard": "party_identifier", "uid": 5, "value": 43}]
    with pytest.raises(LoadError, match="already holds 42"):
        load(backend, changed, progress=False)
    assert backend.get("party_identifier", 5) == 42


def test_values_serialize_alike(backend: StoreBackend) -> None:
    backend.bulk_insert("s", [(1, "a"), (2, 2), (3, 2.5), (4, b"\x00")])
    assert json.dumps(backend.scan("s"), default=repr) == json.dumps(
        [(1, "a"), (2, 2), (3, 2.5), (4, b"\x00")], default=repr
    )
