"""The store's bulk-load paths against real SQLite files: values already in stored form
(``bulk_insert_stored``, ``stored_form``), the ``skip_equal`` conflict mode of every bulk write, whole
lists (``bulk_lists``), and transactions that several bulk writes join (``transaction``)."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import apsw
import pytest

from efs_sqlite.errors import UIDCollision
from efs_sqlite.store import STORED_KINDS, Ref, ShardStore, stored_form


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ShardStore]:
    with ShardStore(tmp_path / "store") as s:
        yield s


def raw_rows(store: ShardStore, shard: str) -> list[tuple[Any, ...]]:
    """What SQLite holds, read past the store: (uid, value, kind tag) in id order."""
    db = apsw.Connection(str(store.path(shard)), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return db.execute("SELECT uid, value, kind FROM items ORDER BY uid").fetchall()
    finally:
        db.close()


PLUS_2 = timezone(timedelta(hours=2))
#: One microsecond past 9999-12-31 23:59:59.999999 UTC, as a stored datetime.
AFTER_9999 = (datetime.max.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
    microseconds=1
) + 1

#: Python values of each kind that bulk_insert_stored takes, through stored_form.
KIND_VALUES: dict[str, list[Any]] = {
    "str": ["MOTOR", "", "ünïcödé ✓", "x" * 5000],
    "int": [0, -1, 2**63 - 1, -(2**63), 210_000_042],
    "bytes": [b"", b"\x00\xff", bytes(range(256))],
    "ref": [1, Ref(2**62), 2**63 - 1],
    "datetime": [
        datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=PLUS_2),
        datetime(2019, 6, 30, 23, 59, 59),  # naive: UTC
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
    "decimal": [Decimal("12.50"), Decimal("-0.00"), Decimal("1E+2"), Decimal("0.000001"), Decimal(7)],
}


@pytest.mark.parametrize("kind", sorted(KIND_VALUES))
def test_stored_rows_read_back_as_the_values_they_came_from(store: ShardStore, kind: str) -> None:
    values = [*KIND_VALUES[kind], None]
    uids = list(range(1, len(values) + 1))
    assert store.bulk_insert_stored("s", kind, uids, [stored_form(kind, v) for v in values]) == len(values)
    got = store.get_many("s", uids)
    for uid, value in zip(uids, values, strict=True):
        if kind == "datetime" and value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        assert got[uid] == value, (kind, value)
        if value is not None:
            assert type(got[uid]) is (Ref if kind == "ref" else type(value)), (kind, value)
    # ...and SQLite holds exactly what bulk_insert writes for the same Python values.
    refs = (Ref(v) if kind == "ref" and v is not None else v for v in values)
    store.bulk_insert("t", zip(uids, refs, strict=True))
    assert raw_rows(store, "s") == raw_rows(store, "t")


@pytest.mark.parametrize(
    ("kind", "value", "error"),
    [
        ("datetime", "2024-01-01T00:00:00Z", TypeError),  # a string where microseconds belong
        ("datetime", AFTER_9999, TypeError),
        ("datetime", 1.5, TypeError),
        ("int", "12", TypeError),
        ("int", 1.0, TypeError),
        ("ref", "5", TypeError),
        ("str", 5, TypeError),
        ("str", b"bytes", TypeError),
        ("bytes", "text", TypeError),
        ("decimal", 12.5, TypeError),
        ("decimal", "abc", TypeError),
        ("decimal", "1.2.3", TypeError),
        ("decimal", ".5", TypeError),
        ("decimal", "1.", TypeError),
        ("decimal", " 1.5", TypeError),
        ("decimal", "1_000.00", TypeError),
        ("decimal", "NaN", TypeError),
        ("decimal", "Infinity", TypeError),
        ("decimal", "01.50", TypeError),
        ("decimal", "١.٥٠", TypeError),  # Arabic-Indic digits, which Decimal() reads
    ],
)
def test_a_value_not_in_stored_form_fails_the_batch_naming_it(
    store: ShardStore, kind: str, value: Any, error: type[Exception]
) -> None:
    good = stored_form(kind, KIND_VALUES[kind][0])
    for mode in ("error", "ignore", "replace", "skip_equal"):
        with pytest.raises(error, match=f"stored {kind} value") as info:
            store.bulk_insert_stored("s", kind, [1, 2, 3], [good, value, good], on_conflict=mode)
        assert repr(value)[:20] in str(info.value)
        assert store.count("s") == 0, mode  # nothing of the batch was written


@pytest.mark.parametrize(
    "text", ["1.50", "-0.00", "1E+2", "1e-7", "0", "-12", "123456789012345678901234567890.5"]
)
def test_every_number_text_decimal_writes_is_taken(store: ShardStore, text: str) -> None:
    store.bulk_insert_stored("s", "decimal", [1], [text])
    assert store.get("s", 1) == Decimal(text)


@pytest.mark.parametrize("uid", [None, "5", 5.0, 2.5])
def test_an_id_that_is_not_an_integer_is_refused(store: ShardStore, uid: Any) -> None:
    for mode in ("error", "skip_equal"):
        with pytest.raises(ValueError, match="is not a signed 64-bit integer"):
            store.bulk_insert_stored("s", "str", [1, uid], ["a", "b"], on_conflict=mode)
        assert store.count("s") == 0


def test_stored_form_refuses_values_of_another_kind() -> None:
    assert set(STORED_KINDS) == set(KIND_VALUES)
    for kind, value in [
        ("decimal", 1.5),
        ("datetime", "2024-01-01"),
        ("int", True),
        ("str", b"x"),
        ("ref", "1"),
    ]:
        with pytest.raises(TypeError, match=f"is not a {kind} value"):
            stored_form(kind, value)
    with pytest.raises(TypeError, match="is not a decimal value"):
        stored_form("decimal", Decimal("NaN"))
    for kind in ("float", "bool", "refs", "nope"):
        with pytest.raises(ValueError, match="kind must be one of"):
            stored_form(kind, None)


def test_bulk_insert_stored_checks_its_arguments(store: ShardStore) -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        store.bulk_insert_stored("s", "float", [1], [1.5])
    with pytest.raises(ValueError, match="2 ids but 1 values"):
        store.bulk_insert_stored("s", "str", [1, 2], ["a"])
    with pytest.raises(ValueError, match="on_conflict"):
        store.bulk_insert_stored("s", "str", [1], ["a"], on_conflict="overwrite")
    with pytest.raises(ValueError, match="invalid shard name"):
        store.bulk_insert_stored("../x", "str", [1], ["a"])
    assert store.bulk_insert_stored("s", "str", [], []) == 0


def test_stored_conflict_modes(store: ShardStore) -> None:
    assert store.bulk_insert_stored("s", "str", [1, 2], ["one", "two"]) == 2
    with pytest.raises(UIDCollision) as info:
        store.bulk_insert_stored("s", "str", [3, 2, 4], ["three", "again", "four"])
    assert info.value.uid == 2
    assert store.bulk_insert_stored("s", "str", [2, 3], ["kept?", "three"], on_conflict="ignore") == 1
    assert store.bulk_insert_stored("s", "str", [2, 4], ["replaced", "four"], on_conflict="replace") == 2
    assert store.scan("s") == [(1, "one"), (2, "replaced"), (3, "three"), (4, "four")]


def test_skip_equal_skips_equal_rows_and_refuses_different_ones(store: ShardStore) -> None:
    at = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    us = stored_form("datetime", at)
    assert store.bulk_insert_stored("d", "datetime", [1, 2], [us, None], on_conflict="skip_equal") == 2
    # A rerun writes nothing; a new id among known ones is written.
    assert store.bulk_insert_stored("d", "datetime", [1, 2, 3], [us, None, us], on_conflict="skip_equal") == 1
    for uids, values, row in (([4, 1], [us, us + 1], 1), ([5, 2], [us, us], 1), ([6, 6], [us, us + 1], 1)):
        with pytest.raises(UIDCollision) as info:
            store.bulk_insert_stored("d", "datetime", uids, values, on_conflict="skip_equal")
        assert (info.value.uid, info.value.row) == (uids[row], row)
        assert "already holds" in str(info.value)
        assert store.get("d", 4) is None and store.get("d", 5) is None and store.get("d", 6) is None
    assert info.value.held == at and info.value.value == at + timedelta(microseconds=1)
    # The same value under another kind is not the same stored value.
    store.bulk_insert_stored("r", "ref", [1], [7])
    with pytest.raises(UIDCollision) as info:
        store.bulk_insert_stored("r", "int", [1], [7], on_conflict="skip_equal")
    assert info.value.held == Ref(7) and type(info.value.value) is int


def test_skip_equal_of_python_values_treats_nan_as_equal_to_itself(store: ShardStore) -> None:
    rows = [(1, math.nan), (2, 1.5), (3, True), (4, None)]
    assert store.bulk_insert("f", rows, on_conflict="skip_equal") == 4
    assert store.bulk_insert("f", rows, on_conflict="skip_equal") == 0
    with pytest.raises(UIDCollision) as info:
        store.bulk_insert("f", [(5, 0.5), (2, 1.25)], on_conflict="skip_equal")
    assert (info.value.uid, info.value.row, info.value.held, info.value.value) == (2, 1, 1.5, 1.25)
    assert store.get("f", 5) is None and math.isnan(store.get("f", 1))


def test_bulk_lists_skip_equal(store: ShardStore) -> None:
    hub = list(range(10**12, 10**12 + 25_000))
    assert store.bulk_lists("l", [(1, [5, 6]), (2, hub), (3, [])], on_conflict="skip_equal") == 3
    assert store.bulk_lists("l", [(1, [5, 6]), (2, hub), (4, [9])], on_conflict="skip_equal") == 1
    assert store.list_page("l", 2, 24_998) == hub[-2:] and store.list_page("l", 4) == [9]
    for rows, row in (
        ([(5, [1]), (1, [6, 5])], 1),  # another order is another list
        ([(5, [1]), (2, hub[:-1])], 1),
        ([(5, [1]), (1, [])], 1),
        ([(6, [1]), (6, [2])], 1),  # two lists for one id in one batch
    ):
        with pytest.raises(UIDCollision, match="already holds") as info:
            store.bulk_lists("l", rows, on_conflict="skip_equal")
        assert (info.value.uid, info.value.row) == (rows[row][0], row)
        assert store.list_count_many("l", [5, 6]) == {5: 0, 6: 0}  # nothing of the batch
    assert store.bulk_lists("l", [(7, [1]), (7, [1])], on_conflict="skip_equal") == 1
    assert store.list_page_many("l", [1, 2, 3, 7], 0, 3) == {1: [5, 6], 2: hub[:3], 3: [], 7: [1]}


def test_bulk_lists_replace_and_bad_entries(store: ShardStore) -> None:
    assert store.bulk_lists("l", [(1, [3, 2, 1]), (1, (4, 5)), (2, range(3))]) == 2  # the later row wins
    assert store.list_page_many("l", [1, 2]) == {1: [4, 5], 2: [0, 1, 2]}
    assert store.bulk_lists("l", [(1, [7])]) == 1
    assert store.list_page("l", 1) == [7]
    for bad in ([1, "2"], [1, True], [1, 2**63], [1.0]):
        with pytest.raises(ValueError, match="is not a signed 64-bit integer"):
            store.bulk_lists("l", [(3, [1]), (1, bad)])
    with pytest.raises(ValueError, match="on_conflict"):
        store.bulk_lists("l", [], on_conflict="ignore")
    assert store.list_page_many("l", [1, 3]) == {1: [7], 3: []}


def test_bulk_writes_join_a_transaction(store: ShardStore, tmp_path: Path) -> None:
    other = ShardStore(tmp_path / "store")  # another connection sees only what is committed
    try:
        with store.transaction("s"):
            store.bulk_insert_stored("s", "str", [1, 2], ["a", "b"])
            store.bulk_insert("s", [(3, "c")])
            store.bulk_lists("s", [(1, [9])])
            assert store.count("s") == 3 and other.count("s") == 0
        assert other.count("s") == 3 and other.list_page("s", 1) == [9]

        with pytest.raises(UIDCollision), store.transaction("s"):
            store.bulk_insert_stored("s", "str", [4], ["d"])
            store.bulk_insert_stored("s", "str", [5, 1], ["e", "changed"], on_conflict="skip_equal")
        assert store.count("s") == 3  # the whole transaction was rolled back, not only the failed write

        tx = store.transaction("s")
        store.bulk_insert_stored("s", "str", [4], ["d"])
        tx.commit()
        tx = store.transaction("s")
        store.bulk_insert_stored("s", "str", [5], ["e"])
        tx.rollback()
        assert sorted(other.get_many("s", [4, 5])) == [4]
    finally:
        other.close()


def open_files(store: ShardStore, shard: str) -> int:
    """How many apsw connections of this process have ``shard``'s file open."""
    path = store.path(shard).resolve()
    return sum(1 for c in apsw.connections() if c.filename and Path(c.filename) == path)


def test_a_worker_thread_closes_its_own_connections(store: ShardStore) -> None:
    store.bulk_insert_stored("a", "str", [1], ["main"])
    seen: dict[str, int] = {}

    def work() -> None:
        store.bulk_insert_stored("b", "str", [1], ["worker"])
        assert store.get("a", 1) == "main"
        seen.update(a=open_files(store, "a"), b=open_files(store, "b"))
        store.close_thread()
        seen.update(a_after=open_files(store, "a"), b_after=open_files(store, "b"))

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert seen == {"a": 2, "b": 1, "a_after": 1, "b_after": 0}  # only the worker's were closed
    assert store.get("a", 1) == "main" and store.get("b", 1) == "worker"  # this thread's still work
    store.close()
    assert open_files(store, "a") == open_files(store, "b") == 0
