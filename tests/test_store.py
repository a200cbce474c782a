"""The sharded store, against real SQLite files: values, names, reads, writes, lists, connections,
journal modes, locking, and grouped-write atomicity under real process crashes."""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import _workers as wk
import apsw
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import efs_sqlite.store as store_module
from efs_sqlite.efs_model import EFSModel
from efs_sqlite.errors import StoreBusy, StoreError, UIDCollision
from efs_sqlite.store import Ref, ShardStore, is_network_filesystem, validate_shard

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: The first 8 bytes of a journal that SQLite will roll back (a zeroed header is not hot).
JOURNAL_MAGIC = bytes.fromhex("d9d505f920a163d7")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(root: Path) -> Iterator[ShardStore]:
    with ShardStore(root) as s:
        yield s


def connections_to(path: Path) -> list[apsw.Connection]:
    """The open apsw connections whose main database is ``path`` (any thread, any store)."""
    return [c for c in apsw.connections() if c.filename and Path(c.filename) == path.resolve()]


def same_objects(a: list[Any], b: list[Any]) -> bool:
    return sorted(map(id, a)) == sorted(map(id, b))


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def is_hot(journal: Path) -> bool:
    with open(journal, "rb") as fh:
        return fh.read(8) == JOURNAL_MAGIC


# -- values round-trip with their type ---------------------------------------------------------

PLUS_0530 = timezone(timedelta(hours=5, minutes=30))

VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    INT64_MAX,
    INT64_MIN,
    0.0,
    -0.0,
    1.0,  # an integral float stays a float
    0.1,
    -2.5e-300,
    5e-324,
    1.7976931348623157e308,
    math.inf,
    -math.inf,
    "",
    "MOTOR",
    "unicode: ünïcødé — 日本語 \U0001f600",
    "nul\x00inside",
    "x" * 100_000,
    b"",
    b"\x00",
    bytes(range(256)) * 40,
    Decimal("12.50"),
    Decimal("0.10"),
    Decimal("100"),
    Decimal("1E+3"),
    Decimal("-0"),
    Decimal("-0.00"),
    Decimal("1234567890123456789012345678901234567890"),
    Decimal("0.1234567890123456789012345678901234567890"),
    Decimal("-7.25E-30"),
    Decimal("Infinity"),
    datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
    datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    Ref(1),
    Ref(INT64_MAX),
    Ref(INT64_MIN),
]


def assert_same(got: Any, expected: Any) -> None:
    """``got`` is ``expected`` as a stored value should read back: same type, same value, exactly."""
    if isinstance(expected, datetime) and expected.utcoffset() is None:
        expected = expected.replace(tzinfo=UTC)  # naive means UTC
    assert type(got) is type(expected), (got, expected)
    if isinstance(expected, float):
        if math.isnan(expected):
            assert math.isnan(got)
        else:
            assert got == expected and math.copysign(1, got) == math.copysign(1, expected)
    elif isinstance(expected, Decimal):
        assert str(got) == str(expected)  # digits, exponent, sign and trailing zeros
    elif isinstance(expected, datetime):
        assert got == expected
        assert got.utcoffset() == timedelta(0)
    else:
        assert got == expected


@pytest.mark.parametrize("value", VALUES, ids=lambda v: f"{type(v).__name__}:{v!r}"[:50])
def test_value_round_trips_with_its_type(store: ShardStore, value: Any) -> None:
    store.insert("v", 1, value)
    assert_same(store.get("v", 1, default="absent"), value)


def test_nan_round_trips(store: ShardStore) -> None:
    store.insert("v", 1, math.nan)  # SQLite itself would turn a NaN into NULL
    store.insert("v", 2, Decimal("NaN"))
    assert_same(store.get("v", 1), math.nan)
    assert str(store.get("v", 2)) == "NaN"


def test_every_write_and_read_path_keeps_types(store: ShardStore) -> None:
    rows = list(enumerate(VALUES, start=1))
    store.bulk_insert("bulk", rows)
    with store.write() as w:
        for uid, value in rows:
            w.insert("grouped", uid, value)
            w.put("grouped_put", uid, value)
    for shard in ("bulk", "grouped", "grouped_put"):
        many = store.get_many(shard, [uid for uid, _ in rows])
        scanned = dict(store.scan(shard, limit=len(rows) + 1))
        for uid, value in rows:
            assert_same(store.get(shard, uid), value)
            assert_same(many[uid], value)
            assert_same(scanned[uid], value)


def test_naive_datetimes_are_utc_and_other_zones_are_converted(store: ShardStore) -> None:
    naive = datetime(2024, 6, 1, 12, 30, 15, 250000)
    zoned = datetime(2024, 6, 1, 12, 30, tzinfo=PLUS_0530)
    store.put("t", 1, naive)
    store.put("t", 2, zoned)
    got_naive, got_zoned = store.get("t", 1), store.get("t", 2)
    assert got_naive == naive.replace(tzinfo=UTC) and got_naive.utcoffset() == timedelta(0)
    assert got_zoned == zoned  # the same instant ...
    assert (got_zoned.hour, got_zoned.minute, got_zoned.utcoffset()) == (7, 0, timedelta(0))  # ... in UTC


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (2**63, ValueError),
        (INT64_MIN - 1, ValueError),
        (Ref(2**63), ValueError),
        ([1, 2], TypeError),
        ({"a": 1}, TypeError),
        (object(), TypeError),
        (1 + 2j, TypeError),
        # Valid datetimes that have no UTC equivalent in years 1-9999 could never be read back.
        (datetime(1, 1, 1, tzinfo=PLUS_0530), ValueError),
        (datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))), ValueError),
    ],
    ids=repr,
)
def test_unstorable_values_raise_and_write_nothing(store: ShardStore, value: Any, error: type) -> None:
    store.insert("v", 1, "kept")
    with pytest.raises(error):
        store.put("v", 1, value)
    with pytest.raises(error), store.write() as w:
        w.insert("v", 2, "first")
        w.insert("other", 2, value)  # raises here, at the caller's line, before any commit
    with pytest.raises(error):
        store.bulk_insert("v", [(3, "ok"), (4, value)])
    assert store.scan("v") == [(1, "kept")]
    assert "other" not in store.shards()


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(INT64_MIN, INT64_MAX),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.binary(),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.none()
        | st.builds(timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))),
    ),
    st.builds(Ref, st.integers(INT64_MIN, INT64_MAX)),
)


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShardStore]:
    with ShardStore(tmp_path_factory.mktemp("property")) as s:
        yield s


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=SCALARS, uid=st.integers(INT64_MIN, INT64_MAX))
def test_property_put_get_round_trip(shared_store: ShardStore, value: Any, uid: int) -> None:
    shared_store.put("prop", uid, value)
    assert_same(shared_store.get("prop", uid), value)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.dictionaries(st.integers(INT64_MIN, INT64_MAX), SCALARS, max_size=40))
def test_property_bulk_insert_get_many_scan(shared_store: ShardStore, rows: dict[int, Any]) -> None:
    shared_store.clear(shared_store.root.name)
    assert shared_store.bulk_insert("bulk", rows.items()) == len(rows)
    many = shared_store.get_many("bulk", rows)
    assert many.keys() == rows.keys()
    for uid, value in rows.items():
        assert_same(many[uid], value)
    # Paging through scan() yields every id once, in order.
    seen: list[int] = []
    after = None
    while page := shared_store.scan("bulk", after=after, limit=7):
        seen += [uid for uid, _ in page]
        after = page[-1][0]
    assert seen == sorted(rows)


# -- shard names -------------------------------------------------------------------------------

BAD_NAMES: list[Any] = [
    "..",
    "../etc",
    "a/b",
    "/abs",
    "",
    " ",
    "a b",
    "claim_type_code ",
    "Claim",
    "A",
    "x" * 64,
    "1abc",
    "a-b",
    "a.b",
    "naïve",
    "a\x00b",
    None,
    1,
    b"abc",
    ["a"],
]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_bad_shard_names_raise_before_touching_any_file(tmp_path: Path, name: Any) -> None:
    root = tmp_path / "store"
    s = ShardStore(root)
    calls = [
        lambda: s.get(name, 1),
        lambda: s.get_many(name, [1]),
        lambda: s.scan(name),
        lambda: s.count(name),
        lambda: s.list_count(name, 1),
        lambda: s.list_page(name, 1),
        lambda: s.insert(name, 1, "x"),
        lambda: s.put(name, 1, "x"),
        lambda: s.delete(name, 1),
        lambda: s.list_extend(name, 1, [2]),
        lambda: s.list_remove(name, 1, [2]),
        lambda: s.bulk_insert(name, [(1, "x")]),
        lambda: s.bulk_lists(name, [(1, [2])]),
        lambda: s.integrity_check(name),
        lambda: s.path(name),
    ]
    if name is not None:  # vacuum(None) means every shard
        calls.append(lambda: s.vacuum(name))
    for call in calls:
        with pytest.raises(ValueError, match="invalid shard name"):
            call()
    with pytest.raises(ValueError, match="invalid shard name"), s.write() as w:
        w.insert("fine", 1, "x")
        w.insert(name, 1, "x")
    s.close()
    assert files_in(tmp_path) == ["store"] and files_in(root) == []


@pytest.mark.parametrize("name", ["a", "_", "_type", "claim_type_code", "x" * 63, "a1_2"])
def test_good_shard_names(store: ShardStore, name: str) -> None:
    assert validate_shard(name) == name
    store.insert(name, 1, "x")
    assert store.path(name).name == f"{name}.sqlite" and store.path(name).exists()
    assert store.shards() == [name]


# -- reads of missing shards -------------------------------------------------------------------


def test_reading_a_missing_shard_creates_no_file(store: ShardStore, root: Path) -> None:
    assert store.get("missing", 1) is None
    assert store.get("missing", 1, default=0) == 0
    assert store.get_many("missing", [1, 2]) == {}
    assert store.scan("missing") == []
    assert store.count("missing") == 0
    assert store.list_count("missing", 1) == 0
    assert store.list_count_many("missing", [1, 2]) == {1: 0, 2: 0}
    assert store.list_page("missing", 1) == []
    assert store.list_page_many("missing", [1, 2]) == {1: [], 2: []}
    assert store.integrity_check("missing") == "ok"
    assert store.delete("missing", 1) is False
    assert store.list_remove("missing", 1, [2]) == 0
    with store.read():
        assert store.get("missing", 1) is None
    store.vacuum("missing")
    assert store.shards() == []
    assert store.stats()["shards"] == {}
    assert files_in(root) == []


def test_a_shard_created_later_by_someone_else_is_seen(store: ShardStore, root: Path) -> None:
    assert store.get("late", 1) is None
    with ShardStore(root) as other:
        other.insert("late", 1, "now")
    assert store.get("late", 1) == "now"


# -- writes ------------------------------------------------------------------------------------


def test_insert_collision_raises_and_keeps_the_original(store: ShardStore) -> None:
    store.insert("s", 7, "original")
    with pytest.raises(UIDCollision) as info:
        store.insert("s", 7, "intruder")
    assert (info.value.shard, info.value.uid) == ("s", 7)
    assert "7" in str(info.value) and "'s'" in str(info.value)
    assert isinstance(info.value, StoreError) and isinstance(info.value, KeyError)
    assert store.get("s", 7) == "original"
    assert store.count("s") == 1


def test_a_collision_in_a_group_writes_nothing_of_the_group(store: ShardStore) -> None:
    store.insert("b", 1, "original")
    with pytest.raises(UIDCollision), store.write() as w:
        w.insert("a", 1, "new")
        w.list_extend("c", 1, [5, 6])
        w.insert("b", 1, "intruder")
    assert store.get("a", 1) is None and store.list_count("c", 1) == 0
    assert store.get("b", 1) == "original"


def test_an_exception_in_the_block_writes_nothing(store: ShardStore) -> None:
    with pytest.raises(RuntimeError), store.write() as w:
        w.insert("a", 1, "x")
        raise RuntimeError("changed my mind")
    assert store.get("a", 1) is None


def test_put_upserts_and_may_change_the_type(store: ShardStore) -> None:
    store.put("s", 1, "first")
    store.put("s", 1, Decimal("2.50"))
    assert_same(store.get("s", 1), Decimal("2.50"))
    store.put("s", 1, True)
    assert_same(store.get("s", 1), True)
    assert store.count("s") == 1


def test_delete_removes_value_and_list(store: ShardStore) -> None:
    store.insert("s", 1, "x")
    store.insert("s", 2, "y")
    store.list_extend("s", 1, [10, 11])
    assert store.delete("s", 1) is True
    assert store.get("s", 1) is None and store.list_count("s", 1) == 0
    assert store.delete("s", 1) is False
    assert store.get("s", 2) == "y"
    store.insert("s", 1, "reused")  # a deleted id may be inserted again
    assert store.get("s", 1) == "reused"


def test_get_many_returns_only_present_ids(store: ShardStore) -> None:
    store.bulk_insert("s", [(i, f"v{i}") for i in range(0, 100, 2)])
    assert store.get_many("s", []) == {}
    assert store.get_many("s", [4, 5, 4, 98, 1000]) == {4: "v4", 98: "v98"}


@pytest.mark.parametrize("uid", [2**63, INT64_MIN - 1, "1", 1.0, True, None])
def test_bad_ids_are_refused(store: ShardStore, uid: Any) -> None:
    for call in (
        lambda: store.insert("s", uid, "x"),
        lambda: store.put("s", uid, "x"),
        lambda: store.list_extend("s", uid, [1]),
        lambda: store.list_extend("s", 1, [uid]),
        lambda: store.bulk_insert("s", [(1, "x"), (uid, "y")]),
    ):
        with pytest.raises(ValueError, match="not a signed 64-bit integer"):
            call()
    assert store.count("s") == 0 and store.list_count("s", 1) == 0


def test_writing_inside_a_read_block_is_refused_clearly(store: ShardStore) -> None:
    store.insert("s", 1, "x")
    with store.read():
        assert store.get("s", 1) == "x"
        with pytest.raises(StoreError, match=r"inside store\.read"):
            store.insert("s", 2, "y")
        with pytest.raises(StoreError, match=r"inside store\.read"), store.write():
            pass
        assert store.get("s", 1) == "x"
    store.insert("s", 2, "y")
    assert store.get("s", 2) == "y"


def test_a_read_block_sees_one_snapshot(store: ShardStore, root: Path) -> None:
    store.insert("s", 1, "before")
    with ShardStore(root, busy_timeout_ms=100) as writer:
        with store.read():
            assert store.get("s", 1) == "before"
            # The reader's shared lock keeps a rollback-journal writer from committing.
            with pytest.raises(StoreBusy):
                writer.put("s", 1, "after")
            assert store.get("s", 1) == "before"
        writer.put("s", 1, "after")
    assert store.get("s", 1) == "after"


# -- scan --------------------------------------------------------------------------------------


def test_scan_is_in_id_order_with_after_and_limit(store: ShardStore) -> None:
    ids = [INT64_MIN, -5, 0, 3, 17, 2**40, INT64_MAX]
    shuffled = ids[:]
    random.Random(1).shuffle(shuffled)
    for uid in shuffled:
        store.insert("s", uid, uid % 1000)
    assert [uid for uid, _ in store.scan("s")] == ids
    assert store.scan("s", limit=2) == [(INT64_MIN, INT64_MIN % 1000), (-5, -5 % 1000)]
    assert [uid for uid, _ in store.scan("s", after=0)] == [3, 17, 2**40, INT64_MAX]
    assert [uid for uid, _ in store.scan("s", after=1, limit=2)] == [3, 17]
    assert store.scan("s", after=INT64_MAX) == []
    assert store.scan("s", limit=0) == []


# -- reference lists ---------------------------------------------------------------------------


def test_reference_lists_extend_page_count_remove(store: ShardStore) -> None:
    store.list_extend("claim_parties", 1, [30, 10, 20])
    store.list_extend("claim_parties", 1, [10, 40])  # appends, duplicates kept
    store.list_extend("claim_parties", 2, [99])
    assert store.list_page("claim_parties", 1) == [30, 10, 20, 10, 40]
    assert store.list_page("claim_parties", 1, offset=1, limit=2) == [10, 20]
    assert store.list_page("claim_parties", 1, offset=4, limit=10) == [40]
    assert store.list_page("claim_parties", 1, offset=5) == []
    assert store.list_page("claim_parties", 1, limit=0) == []
    assert store.list_count("claim_parties", 1) == 5
    assert store.list_count_many("claim_parties", [1, 2, 3]) == {1: 5, 2: 1, 3: 0}
    assert store.list_page_many("claim_parties", [2, 1, 3], limit=2) == {2: [99], 1: [30, 10], 3: []}

    assert store.list_remove("claim_parties", 1, [10, 77]) == 2  # every occurrence
    assert store.list_page("claim_parties", 1) == [30, 20, 40]
    store.list_extend("claim_parties", 1, [50])  # after a removal, appends still go last
    assert store.list_page("claim_parties", 1) == [30, 20, 40, 50]
    assert store.list_page("claim_parties", 1, offset=2, limit=1) == [40]
    assert store.list_page("claim_parties", 2) == [99]
    with pytest.raises(ValueError):
        store.list_page("claim_parties", 1, offset=-1)

    with store.write() as w:
        w.list_set("claim_parties", 1, [5, 6])
        w.list_extend("claim_parties", 2, [100])
    assert store.list_page("claim_parties", 1) == [5, 6]
    assert store.list_page("claim_parties", 2) == [99, 100]
    # Lists and values of one id live side by side.
    store.insert("claim_parties", 1, "a value")
    assert store.get("claim_parties", 1) == "a value" and store.list_count("claim_parties", 1) == 2


def test_bulk_lists_sets_whole_lists_idempotently(store: ShardStore) -> None:
    rows = [(1, [3, 2, 1]), (2, list(range(1000)))]
    store.bulk_lists("party_claims", rows)
    store.bulk_lists("party_claims", rows)  # a resumed load does not double a list
    assert store.list_page("party_claims", 1) == [3, 2, 1]
    assert store.list_count_many("party_claims", [1, 2]) == {1: 3, 2: 1000}
    assert store.list_page("party_claims", 2, offset=998) == [998, 999]


def test_a_page_of_a_25000_entry_list_reads_only_that_page(root: Path) -> None:
    n, first = 25_000, 10**12
    with ShardStore(root) as s:
        s.list_extend("claim_transactions", 5, range(first, first + n))
        s.list_extend("claim_transactions", 4, [1, 2, 3])  # neighbours on both sides of the key range
        s.list_extend("claim_transactions", 6, [7, 8, 9])
    assert (root / "claim_transactions.sqlite").stat().st_size // 4096 > 100  # pages in the file

    with EFSModel("store-test-pages") as efs, ShardStore(root, vfs=efs.name) as s:
        assert s.list_count("claim_transactions", 4) == 3  # opens the file and reads the schema
        with efs.accounting() as ops:
            assert s.list_page("claim_transactions", 5, offset=0, limit=10) == list(range(first, first + 10))
        assert s.list_page("claim_transactions", 5, offset=12_340, limit=10) == list(
            range(first + 12_340, first + 12_350)
        )
        assert s.list_page("claim_transactions", 5, offset=n - 5, limit=10) == list(
            range(first + n - 5, first + n)
        )
        assert s.list_page("claim_transactions", 5, offset=n, limit=10) == []
        assert s.list_count("claim_transactions", 5) == n
    # The first page costs a descent of the B-tree, not a read of the list.
    assert ops.by_file["claim_transactions.sqlite"]["read"] < 8, ops.as_dict()


def test_the_page_statement_searches_the_primary_key(store: ShardStore) -> None:
    store.list_extend("claim_parties", 1, range(25_000))
    (conn,) = connections_to(store.path("claim_parties"))
    statements: list[tuple[str, Any]] = []

    def trace(cursor: apsw.Cursor, sql: str, bindings: Any) -> bool:
        statements.append((sql, bindings))
        return True

    conn.exec_trace = trace
    try:
        assert store.list_page("claim_parties", 1, offset=100, limit=10) == list(range(100, 110))
    finally:
        conn.exec_trace = None
    selects = [(sql, b) for sql, b in statements if sql.lstrip().upper().startswith(("SELECT", "WITH"))]
    assert selects, statements
    for sql, bindings in selects:
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, bindings)]
        # A seek to (uid, offset): dense positions make a deep page as cheap as the first.
        assert any(step.startswith("SEARCH refs USING PRIMARY KEY (uid=? AND pos>?") for step in plan), plan
        assert not any(step.startswith("SCAN refs") or "TEMP B-TREE" in step for step in plan), plan


def test_a_deep_page_reads_no_more_than_the_first(tmp_path: Path) -> None:
    with EFSModel("store-test-deep-page") as efs, ShardStore(tmp_path, vfs=efs.name) as s:
        s.list_extend("claim_parties", 1, range(25_000))
        reads = []
        for offset in (0, 12_340, 24_990):
            s.close()  # cold: every page read reaches the file
            with efs.accounting() as ops:
                assert s.list_page("claim_parties", 1, offset=offset, limit=10) == list(
                    range(offset, min(offset + 10, 25_000))
                )
            reads.append(ops.by_file["claim_parties.sqlite"]["read"])
        assert max(reads) <= reads[0] + 1, reads


def test_removal_keeps_positions_dense(store: ShardStore) -> None:
    store.list_extend("claim_parties", 1, [10, 11, 12, 11, 13, 14])
    assert store.list_remove("claim_parties", 1, [11, 99]) == 2
    assert store.list_page("claim_parties", 1, 0, 10) == [10, 12, 13, 14]
    assert store.list_count("claim_parties", 1) == 4
    assert store.list_page("claim_parties", 1, offset=2, limit=1) == [13]
    store.list_extend("claim_parties", 1, [15])
    assert store.list_page("claim_parties", 1, 0, 10) == [10, 12, 13, 14, 15]
    (conn,) = connections_to(store.path("claim_parties"))
    assert [p for (p,) in conn.execute("SELECT pos FROM refs WHERE uid = 1 ORDER BY pos")] == [0, 1, 2, 3, 4]


# -- connections -------------------------------------------------------------------------------


def test_connections_are_reused_across_calls(store: ShardStore) -> None:
    store.insert("a", 1, "x")
    (conn,) = connections_to(store.path("a"))
    for i in range(5):
        store.get("a", 1)
        store.get_many("a", [1, 2])
        store.scan("a")
        store.count("a")
        store.put("a", 2, i)
        store.list_extend("a", 1, [i])
        store.list_page("a", 1)
        with store.read():
            store.get("a", 1)
    assert same_objects(connections_to(store.path("a")), [conn])

    with store.write() as w:  # a group has its own connection (shard a as main, b attached) ...
        w.put("a", 3, "x")
        w.put("b", 3, "y")
    group_conns = connections_to(store.path("a"))
    assert len(group_conns) == 2
    for i in range(5):  # ... which is reused too
        with store.write() as w:
            w.put("a", 3, i)
            w.put("b", 3, i)
    assert same_objects(connections_to(store.path("a")), group_conns)


def test_another_thread_gets_its_own_connection(store: ShardStore) -> None:
    store.insert("a", 1, "x")
    before = connections_to(store.path("a"))

    def in_thread() -> list[apsw.Connection]:
        assert store.get("a", 1) == "x"
        store.put("a", 2, "from thread")
        return connections_to(store.path("a"))

    with ThreadPoolExecutor(1) as pool:
        during = pool.submit(in_thread).result()
    new = [c for c in during if not any(c is b for b in before)]
    assert len(new) == 1 and len(during) == len(before) + 1
    assert store.get("a", 2) == "from thread"
    after = connections_to(store.path("a"))
    assert same_objects(after, during)  # the main thread kept using its own
    store.close()
    assert connections_to(store.path("a")) == []  # close() reaches every thread's connections


def test_a_forked_child_uses_fresh_connections(store: ShardStore, root: Path) -> None:
    store.insert("a", 1, "parent")
    (parent_conn,) = connections_to(store.path("a"))
    used_in_child: list[str] = []
    parent_conn.exec_trace = lambda cursor, sql, bindings: used_in_child.append(sql) or True
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 only if every check holds
        code = 1
        try:
            store.insert("a", 2, "child")
            store.list_extend("b", 1, [1, 2, 3])
            ok = store.get("a", 1) == "parent" and not used_in_child
            ok = ok and any(c is not parent_conn for c in connections_to(store.path("a")))
            code = 0 if ok else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    parent_conn.exec_trace = None
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent still reads through its own (older) connection and sees the child's writes.
    assert store.get("a", 2) == "child" and store.list_page("b", 1) == [1, 2, 3]
    assert same_objects(connections_to(store.path("a")), [parent_conn])


# -- journal modes and WAL ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["delete", "truncate", "persist"])
def test_journal_modes_are_set_on_every_connection(root: Path, mode: str) -> None:
    with ShardStore(root, journal_mode=mode.upper()) as s:
        assert s.journal_mode == mode
        s.insert("a", 1, "x")
        with s.write() as w:
            w.insert("a", 2, "y")
            w.insert("b", 2, "y")
        conns = connections_to(s.path("a"))
        assert len(conns) == 2
        for conn in conns:
            for _, schema, _ in conn.execute("PRAGMA database_list").fetchall():
                assert conn.execute(f"PRAGMA {schema}.journal_mode").fetchone()[0] == mode
                assert conn.execute(f"PRAGMA {schema}.synchronous").fetchone()[0] == 2  # FULL
        s.insert("a", 3, "z")  # after a one-shard commit ...
        journals = {p.name: p.stat().st_size for p in root.glob("*-journal")}
        assert not [p for p in root.glob("*-journal") if is_hot(p)]
        if mode == "delete":
            assert journals == {}
        elif mode == "truncate":
            assert journals == {"a.sqlite-journal": 0, "b.sqlite-journal": 0}
        else:  # ... persist keeps the journal with a zeroed header; a multi-file commit truncates it
            assert journals.keys() == {"a.sqlite-journal", "b.sqlite-journal"}
            assert journals["a.sqlite-journal"] > 0 and journals["b.sqlite-journal"] == 0


def test_default_journal_mode_is_delete_and_bad_options_raise(root: Path) -> None:
    assert ShardStore(root).journal_mode == "delete"
    with pytest.raises(ValueError, match="journal_mode"):
        ShardStore(root, journal_mode="memory")
    with pytest.raises(ValueError, match="synchronous"):
        ShardStore(root, synchronous="sometimes")
    with pytest.raises(ValueError, match="busy_timeout_ms"):
        ShardStore(root, busy_timeout_ms=-1)
    with pytest.raises(FileNotFoundError):
        ShardStore(root / "absent", create=False)


@pytest.fixture
def mounts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake mount table: / is local, ``net_*`` folders are network mounts, one local mount nested."""
    base = tmp_path.resolve()
    table = tmp_path / "mounts"
    table.write_text(
        "proc /proc proc rw,nosuid 0 0\n"
        "/dev/vda / ext4 rw,relatime 0 0\n"
        f"fs-0123abcd.efs.eu-west-1.amazonaws.com:/ {base}/net_nfs4 nfs4 rw,vers=4.1,hard 0 0\n"
        f"127.0.0.1:/ {base}/net_efs efs rw,tls 0 0\n"
        f"server:/export {base}/net_nfs nfs rw 0 0\n"
        f"server:/export {base}/net\\040space nfs4 rw 0 0\n"
        f"/dev/vdb {base}/net_nfs4/local ext4 rw 0 0\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(store_module, "MOUNTS", str(table))
    return base


@pytest.mark.parametrize("mount", ["net_nfs4", "net_efs", "net_nfs", "net space"])
def test_wal_is_refused_on_a_network_mount(mounts: Path, mount: str) -> None:
    root = mounts / mount / "store"
    assert is_network_filesystem(root)
    with pytest.raises(StoreError, match=r"WAL refused.*network file system") as info:
        ShardStore(root, journal_mode="wal")
    assert "shared memory" in str(info.value)
    assert not (mounts / mount).exists()  # refused before creating anything
    # The rollback journal is fine there.
    with ShardStore(root, journal_mode="truncate") as s:
        s.insert("a", 1, "x")
        assert s.get("a", 1) == "x"


@pytest.mark.parametrize("local", ["", "net_nfs4/local"])
def test_wal_is_allowed_on_a_local_file_system(mounts: Path, local: str) -> None:
    root = mounts / local / "store"
    assert not is_network_filesystem(root)
    with ShardStore(root, journal_mode="wal") as s:
        s.insert("a", 1, "x")
        (conn,) = connections_to(s.path("a"))
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert (root / "a.sqlite-wal").exists()
        assert s.get("a", 1) == "x"


def test_network_detection_reads_the_mount_table(tmp_path: Path) -> None:
    table = tmp_path / "mounts"
    table.write_text("/dev/vda / ext4 rw 0 0\nsrv:/ /mnt/data nfs4 rw 0 0\n//srv/x /mnt/smb cifs rw 0 0\n")
    assert is_network_filesystem("/mnt/data/store", mounts=str(table))
    assert is_network_filesystem("/mnt/data", mounts=str(table))
    assert is_network_filesystem("/mnt/smb/x", mounts=str(table))
    assert not is_network_filesystem("/mnt/database", mounts=str(table))  # a prefix is not a parent
    assert not is_network_filesystem("/home", mounts=str(table))
    assert not is_network_filesystem("/home", mounts=str(tmp_path / "no-such-table"))


# -- busy --------------------------------------------------------------------------------------


def test_a_lock_held_by_another_process_raises_store_busy(root: Path) -> None:
    warm = ShardStore(root, busy_timeout_ms=150)
    warm.insert("a", 1, "before")
    with wk.ExclusiveLock(warm.path("a")) as lock:
        cold = ShardStore(root, busy_timeout_ms=150)

        def attempts() -> list[str]:
            failures = []
            for name, call in [
                ("insert", lambda: warm.insert("a", 2, "lost?")),
                ("put", lambda: warm.put("a", 1, "changed")),
                ("group", lambda: _group_put(warm, ["a", "b"], 3)),
                ("bulk", lambda: warm.bulk_insert("a", [(4, "x")])),
                ("read", lambda: warm.get("a", 1)),
                ("cold insert", lambda: cold.insert("a", 5, "x")),
            ]:
                with pytest.raises(StoreBusy, match="stayed locked") as info:
                    call()
                failures.append(f"{name}: {info.value}")
            return failures

        with ThreadPoolExecutor(1) as pool:  # a hang fails the test instead of stalling the suite
            failures = pool.submit(attempts).result(timeout=60)
        assert len(failures) == 6
        lock.release()
    # Nothing was half-written, and the store works again once the lock is gone.
    assert warm.scan("a") == [(1, "before")]
    assert warm.get("b", 3) is None
    warm.insert("a", 2, "after")
    cold.insert("a", 5, "x")
    assert warm.get_many("a", [1, 2, 5]) == {1: "before", 2: "after", 5: "x"}
    warm.close()
    cold.close()


def _group_put(store: ShardStore, shards: list[str], uid: int) -> None:
    with store.write() as w:
        for shard in shards:
            w.put(shard, uid, shard)


# -- read transactions held across tasks (begin_read / end_reads) --------------------------------


def test_a_read_held_across_tasks_of_one_thread_costs_one_lock_cycle(tmp_path: Path) -> None:
    with EFSModel(f"efs-test-hold-{os.getpid()}-{random.getrandbits(32)}") as model:
        store = ShardStore(tmp_path / "s", vfs=model.name)
        store.insert("a", 1, "before")
        writer = ShardStore(tmp_path / "s", busy_timeout_ms=0)
        with ThreadPoolExecutor(1) as worker:
            assert worker.submit(store.get, "a", 1).result() == "before"  # its connection, warm
            with model.accounting() as ops:
                assert worker.submit(store.begin_read, "a").result()  # one task begins ...
                assert worker.submit(store.get, "a", 1).result() == "before"  # ... others read ...
                with pytest.raises(StoreBusy):  # the held lock keeps a writer from committing
                    writer.put("a", 1, "after")
                assert worker.submit(store.get_many, "a", [1]).result() == {1: "before"}
                with pytest.raises(StoreError, match=r"inside store\.read"):  # this thread may not write
                    worker.submit(store.put, "a", 2, "x").result()

                def nested() -> Any:
                    with store.read():  # inside the hold: a no-op, which ends nothing
                        return store.get("a", 1)

                assert worker.submit(nested).result() == "before"
                assert worker.submit(store.count, "a").result() == 1
                worker.submit(store.end_reads).result()  # ... and the last one ends the hold
            assert (ops.counts["lock"], ops.counts["unlock"], ops.counts["read"]) == (1, 1, 1)
            writer.put("a", 1, "after")
            assert worker.submit(store.get, "a", 1).result() == "after"
            worker.submit(store.put, "a", 2, "x").result()
            worker.submit(store.close_thread).result()
        writer.close()
        store.close()


def test_begin_read_without_waiting_answers_false_while_a_writer_holds_the_shard(root: Path) -> None:
    store = ShardStore(root, busy_timeout_ms=100)
    store.insert("a", 1, "a")
    store.insert("b", 1, "b")
    with wk.ExclusiveLock(store.path("a")) as lock:
        assert store.begin_read("a", wait=False) is False  # nothing held: the thread is as it was
        store.put("b", 2, "written")
        assert store.begin_read("b") and store.begin_read("a", wait=False) is False
        assert store.get("b", 2) == "written"  # b stays held ...
        with pytest.raises(StoreError, match=r"inside store\.read"):
            store.put("b", 3, "x")
        with pytest.raises(StoreBusy, match="stayed locked"):  # waiting: for the busy timeout
            store.begin_read("a")
        store.end_reads()  # ... until the hold ends
        store.put("b", 3, "x")
        lock.release()
    assert store.begin_read("a", wait=False) is True
    assert store.get("a", 1) == "a"
    store.end_reads()
    store.close()


def test_a_missing_shard_is_held_as_missing(root: Path) -> None:
    store = ShardStore(root)
    assert store.begin_read("new", wait=False) is True
    assert not store.path("new").exists()  # nothing created
    with ShardStore(root) as writer:
        writer.insert("new", 1, "x")  # created meanwhile, by another connection
        assert store.get("new", 1) is None and store.count("new") == 0  # the hold's snapshot
        store.end_reads()
        assert store.get("new", 1) == "x"
    store.close()


def test_end_reads_ends_every_hold_even_when_one_fails(tmp_path: Path) -> None:
    with EFSModel(f"efs-test-end-{os.getpid()}-{random.getrandbits(32)}") as model:
        store = ShardStore(tmp_path / "s", vfs=model.name)
        for shard in ("a", "b", "c"):
            store.insert(shard, 1, shard)
        assert all(store.begin_read(shard) for shard in ("a", "b", "c"))
        fault = model.inject("unlock", 1, file="b.sqlite")
        with pytest.raises(apsw.IOError, match="injected EIO on unlock"):
            store.end_reads()
        assert fault.fired == 1
        with ShardStore(tmp_path / "s", busy_timeout_ms=0) as writer, writer.write() as w:
            for shard in ("a", "b", "c"):  # every lock was let go
                w.put(shard, 2, "after")
        assert store.get_many("b", [1, 2]) == {1: "b", 2: "after"}  # b reopened
        store.put("a", 3, "writable again")
        store.close()


# -- bulk insert, stats, clear -----------------------------------------------------------------


def test_bulk_insert_conflict_modes(store: ShardStore) -> None:
    assert store.bulk_insert("s", [(1, "one"), (2, "two")]) == 2
    with pytest.raises(UIDCollision) as info:
        store.bulk_insert("s", [(3, "three"), (2, "again"), (4, "four")])
    assert info.value.uid == 2  # names the row that collided
    with pytest.raises(UIDCollision) as info:
        store.bulk_insert("s", [(5, "five"), (5, "twice")])
    assert info.value.uid == 5
    assert store.scan("s") == [(1, "one"), (2, "two")]  # neither failed batch left a row

    assert store.bulk_insert("s", [(2, "kept?"), (3, "three")], on_conflict="ignore") == 1
    assert store.get_many("s", [2, 3]) == {2: "two", 3: "three"}
    assert store.bulk_insert("s", [(2, "replaced"), (4, "four")], on_conflict="replace") == 2
    assert store.scan("s") == [(1, "one"), (2, "replaced"), (3, "three"), (4, "four")]
    assert store.bulk_insert("s", iter([])) == 0
    with pytest.raises(ValueError, match="on_conflict"):
        store.bulk_insert("s", [(9, "x")], on_conflict="overwrite")  # type: ignore[arg-type]
    assert store.get("s", 9) is None


def test_stats(store: ShardStore, root: Path) -> None:
    store.bulk_insert("a", [(i, i) for i in range(10)])
    store.insert("b", 1, "x")
    store.list_extend("b", 1, [1, 2, 3])
    stats = store.stats()
    assert stats["root"] == str(root) and stats["journal_mode"] == "delete"
    assert stats["shards"] == {
        "a": {"rows": 10, "refs": 0, "bytes": (root / "a.sqlite").stat().st_size, "integrity": "ok"},
        "b": {"rows": 1, "refs": 3, "bytes": (root / "b.sqlite").stat().st_size, "integrity": "ok"},
    }
    assert (stats["total_rows"], stats["total_refs"]) == (11, 3)
    assert stats["total_bytes"] == sum(s["bytes"] for s in stats["shards"].values()) > 0
    assert "integrity" not in store.stats(integrity=False)["shards"]["a"]


def test_integrity_check_reports_a_damaged_shard(store: ShardStore, root: Path) -> None:
    store.bulk_insert("a", [(i, "v" * 200) for i in range(2000)])
    store.close()
    path = root / "a.sqlite"
    data = bytearray(path.read_bytes())
    data[4096 * 3 : 4096 * 3 + 64] = bytes(64)  # wipe the header of a B-tree page
    path.write_bytes(bytes(data))
    assert "malformed" in store.integrity_check("a")
    path.write_bytes(b"this is not an SQLite file" * 200)
    store.close()
    assert "not a database" in store.integrity_check("a")


def test_clear_needs_the_confirmation(root: Path) -> None:
    s = ShardStore(root, journal_mode="persist")  # persist leaves journals behind: clear removes them
    s.insert("a", 1, "x")
    s.insert("b", 1, "y")
    with pytest.raises(ValueError, match="confirm"):
        s.clear("yes")
    assert s.get("a", 1) == "x" and s.shards() == ["a", "b"]
    assert s.clear(root.name) == 2
    assert files_in(root) == []
    s.insert("a", 1, "fresh")  # the store is usable afterwards
    assert s.scan("a") == [(1, "fresh")]
    s.close()


def test_vacuum_keeps_the_data(store: ShardStore) -> None:
    store.bulk_insert("a", [(i, "v" * 100) for i in range(3000)])
    store.bulk_insert("b", [(1, "b")])
    with store.write() as w:
        for i in range(0, 3000, 2):
            w.delete("a", i)
    size = store.path("a").stat().st_size
    store.vacuum("a")
    assert store.path("a").stat().st_size < size
    store.vacuum()
    assert store.count("a") == 1500 and store.get("a", 1) == "v" * 100 and store.get("b", 1) == "b"


# -- grouped writes survive a crash at any point -------------------------------------------------

CRASHED = 86  # exit status of a process stopped by KillVFS


class KillVFS(apsw.VFS):
    """The default VFS, counting file mutations (writes, syncs, truncations, deletions); with
    ``crash_at`` set, the process really dies (``os._exit``, as under SIGKILL) just before that
    mutation. (``efs_sqlite.efs_model.EFSModel.crash_at`` simulates a death inside a live process; this is
    the real thing.) fsync is skipped: a killed process loses nothing the kernel holds, SQLite takes
    the same steps either way, and the test runs four times faster."""

    def __init__(self, name: str) -> None:
        self.name, self.mutations, self.crash_at = name, 0, 0
        super().__init__(name, "")

    def mutation(self) -> None:
        self.mutations += 1
        if self.mutations == self.crash_at:
            os._exit(CRASHED)

    def xOpen(self, name: Any, flags: list[int]) -> apsw.VFSFile:
        return _KillFile(self, name, flags)

    def xDelete(self, name: str, syncdir: bool) -> None:
        self.mutation()
        super().xDelete(name, False)


class _KillFile(apsw.VFSFile):
    def __init__(self, vfs: KillVFS, name: Any, flags: list[int]) -> None:
        self.vfs = vfs
        super().__init__("", name, flags)

    def xWrite(self, data: bytes, offset: int) -> None:
        self.vfs.mutation()
        super().xWrite(data, offset)

    def xTruncate(self, size: int) -> None:
        self.vfs.mutation()
        super().xTruncate(size)

    def xSync(self, flags: int) -> None:
        self.vfs.mutation()


@pytest.fixture
def kill_vfs() -> Iterator[KillVFS]:
    vfs = KillVFS("store-test-kill")
    yield vfs
    vfs.unregister()


CRASH_SHARDS = ("crash_a", "crash_b", "crash_c", "crash_d")


def _crash_during_grouped_write(root: Path, mode: str, vfs: KillVFS, crash_at: int) -> int:
    """In a forked child: write a first group, then die just before the ``crash_at``-th file
    mutation of a second group (0: never). Returns the child's exit status; on 0 the number of
    mutations of the second group is in ``root/ops``."""
    pid = os.fork()
    if pid:
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)
    code = 1
    try:
        s = ShardStore(root, vfs=vfs.name, journal_mode=mode)
        with s.write() as w:
            for shard in CRASH_SHARDS:
                w.insert(shard, 1, shard * 500)
            w.list_extend("crash_c", 1, range(100))
        start = vfs.mutations
        vfs.crash_at = start + crash_at if crash_at else 0
        with s.write() as w:
            w.insert("crash_a", 2, "a" * 3000)
            w.put("crash_b", 1, "replaced")
            w.list_extend("crash_c", 1, range(100, 400))
            w.delete("crash_d", 1)
        (root / "ops").write_text(str(vfs.mutations - start))
        code = 0
    finally:
        os._exit(code)


def _group_state(s: ShardStore) -> str:
    """Which of the two groups written by :func:`_crash_during_grouped_write` is visible."""
    first = (
        s.get("crash_a", 2) is None,
        s.get("crash_b", 1) == "crash_b" * 500,
        s.list_page("crash_c", 1, limit=1000) == list(range(100)),
        s.get("crash_d", 1) == "crash_d" * 500,
    )
    second = (
        s.get("crash_a", 2) == "a" * 3000,
        s.get("crash_b", 1) == "replaced",
        s.list_page("crash_c", 1, limit=1000) == list(range(400)),
        s.get("crash_d", 1) is None,
    )
    return "first" if all(first) else "second" if all(second) else f"mixed {first} {second}"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["delete", "truncate", "persist"])
def test_a_crash_at_every_step_of_a_grouped_commit_keeps_all_or_nothing(
    tmp_path: Path, mode: str, kill_vfs: KillVFS
) -> None:
    assert _crash_during_grouped_write(tmp_path / "count", mode, kill_vfs, 0) == 0
    total = int((tmp_path / "count" / "ops").read_text())
    assert total > 20  # journals, super-journal, syncs, database pages, deletes
    outcomes = []
    for crash_at in range(1, total + 1):
        root = tmp_path / f"crash{crash_at}"
        assert _crash_during_grouped_write(root, mode, kill_vfs, crash_at) == CRASHED
        with ShardStore(root, journal_mode=mode, vfs=kill_vfs.name) as s:
            for shard in CRASH_SHARDS:
                assert s.integrity_check(shard) == "ok", (crash_at, shard)
            state = _group_state(s)
            outcomes.append(state)
            assert state in ("first", "second"), (crash_at, state)
            # Reading rolled back every hot journal; what is left is not hot ...
            assert not [p.name for p in root.glob("*-journal") if is_hot(p)], (crash_at, files_in(root))
            # ... and the next write clears it away (delete mode leaves no journal at all).
            _group_put(s, list(CRASH_SHARDS), 3)
            if mode == "delete":
                assert not list(root.glob("*-journal")), (crash_at, files_in(root))
    # Early crashes keep the first group, late ones (after the super-journal is gone) the second.
    assert outcomes[0] == "first" and outcomes[-1] == "second"
    assert outcomes == sorted(outcomes)  # one switch-over point: the commit


KILL_CHILD = """
import random, sys
from efs_sqlite.store import ShardStore
root, uid, shards = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
rng = random.Random(uid)
store = ShardStore(root)
print("ready", flush=True)
while True:
    value = f"{uid}:" + "x" * rng.randrange(0, 9000)  # sizes from one cell to overflow pages
    with store.write() as w:
        for shard in shards:
            w.insert(shard, uid, value)
    print(uid, flush=True)  # acknowledged: the grouped commit returned
    uid += 1
"""


def _kill_rounds(root: Path, rounds: int, seed: int) -> int:
    """Kill a grouped writer at random moments ``rounds`` times; check the store after each kill.

    Returns in how many rounds the kill left a hot journal (a commit cut short).
    """
    rng = random.Random(seed)
    acknowledged: set[int] = set()
    cut_short = 0
    for r in range(rounds):
        child = subprocess.Popen(
            [sys.executable, "-c", KILL_CHILD, str(root), str(r * 1_000_000 + 1), ",".join(CRASH_SHARDS)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        # A grouped commit makes ~15 fsyncs (a few ms each on a disk), so the kill moments must span
        # more than one commit to land in every phase of it.
        time.sleep(rng.uniform(0, 0.100))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
        assert child.returncode == -signal.SIGKILL
        acknowledged |= {int(line) for line in out.split("\n")[:-1]}  # complete lines only
        cut_short += any(is_hot(p) for p in root.glob("*-journal"))

        with ShardStore(root) as s:
            present = {}
            for shard in CRASH_SHARDS:
                assert s.integrity_check(shard) == "ok", (r, shard)
                rows = s.scan(shard, limit=10**9)
                assert all(value.startswith(f"{uid}:") for uid, value in rows)
                present[shard] = dict(rows)
            uids = set(present[CRASH_SHARDS[0]])
            assert acknowledged <= uids, (r, sorted(acknowledged - uids))
            for shard in CRASH_SHARDS[1:]:
                assert present[shard] == present[CRASH_SHARDS[0]], (r, shard)  # all or nothing
        assert not [p for p in root.glob("*-journal") if is_hot(p)], r
    with ShardStore(root) as s:
        _group_put(s, list(CRASH_SHARDS), 0)
    assert not list(root.glob("*-journal"))
    return cut_short


@pytest.mark.slow
def test_killing_a_grouped_writer_at_random_moments_keeps_all_or_nothing(tmp_path: Path) -> None:
    assert _kill_rounds(tmp_path / "store", rounds=50, seed=2) > 0


@pytest.mark.long
def test_killing_a_grouped_writer_many_times(tmp_path: Path) -> None:
    assert _kill_rounds(tmp_path / "store", rounds=500, seed=3) > 0


def test_a_stale_handle_is_reopened_on_the_next_call(tmp_path: Path) -> None:
    """EFS answers ESTALE for a handle to a replaced file: the store must not stay broken."""
    with EFSModel("store-test-estale") as efs, ShardStore(tmp_path, vfs=efs.name) as s:
        s.insert("_type", 1, "Claim")
        with s.write() as w:
            w.insert("claim_type_code", 1, "MOTOR")
            w.insert("_type", 2, "Party")
        efs.inject("read", 1, "estale")
        with pytest.raises(apsw.IOError):
            s.get("_type", 1)
        efs.recover()
        assert s.get("_type", 1) == "Claim"
        s.insert("_type", 3, "Claim")
        with s.write() as w:  # the grouped-write connection that included the shard is fresh too
            w.insert("claim_type_code", 3, "HOME")
            w.insert("_type", 4, "Party")
        assert s.get_many("_type", [1, 2, 3, 4]) == {1: "Claim", 2: "Party", 3: "Claim", 4: "Party"}


def test_a_page_beyond_64_bits_is_empty(store: ShardStore) -> None:
    store.list_extend("claim_parties", 1, [1, 2, 3])
    assert store.list_page("claim_parties", 1, offset=2**64, limit=10) == []
    assert store.list_page("claim_parties", 1, offset=2**63 - 5, limit=10) == []
    assert store.list_page("claim_parties", 1, offset=1, limit=2**70) == [2, 3]


def test_the_mount_table_can_be_given(tmp_path: Path) -> None:
    table = tmp_path / "mounts"
    table.write_text(f"server:/ {tmp_path.resolve()}/shared nfs4 rw 0 0\n", encoding="utf-8")
    with pytest.raises(StoreError, match="WAL refused"):
        ShardStore(tmp_path / "shared" / "store", journal_mode="wal", mounts=str(table))
    with ShardStore(tmp_path / "local", journal_mode="wal", mounts=str(table)) as s:
        s.insert("a", 1, "x")
