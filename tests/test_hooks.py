"""Store hooks, against a real store: every read and write is observed, with its keys, result or
error, nesting and thread; a hook can fail or hold back a call; a store with no hook pays nothing."""

from __future__ import annotations

import contextlib
import inspect
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from efs_sqlite.errors import StoreError, UIDCollision
from efs_sqlite.hooks import StoreOp
from efs_sqlite.store import OBSERVED_METHODS, ShardStore


class Recorder:
    """A hook that records every op (in the order they end) and how deep each was nested."""

    def __init__(self) -> None:
        self.ops: list[StoreOp] = []
        self.depths: list[tuple[str, int]] = []
        self._depth = threading.local()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def observe(self, op: StoreOp) -> Iterator[None]:
        depth = getattr(self._depth, "n", 0)
        self._depth.n = depth + 1
        yield
        self._depth.n = depth
        with self._lock:
            self.ops.append(op)
            self.depths.append((op.name, depth))

    def names(self) -> list[str]:
        return [op.name for op in self.ops]


class Failing:
    """A hook that fails every call of ``name`` before it is made."""

    def __init__(self, name: str) -> None:
        self.name = name

    @contextlib.contextmanager
    def observe(self, op: StoreOp) -> Iterator[None]:
        if op.name == self.name:
            raise RuntimeError(f"injected into {op.name}")
        yield


#: The public methods of ShardStore that read or write no data, so no hook is told of them.
NOT_DATA = {
    "path",
    "shards",
    "has_shard",
    "healthy",
    "close",
    "close_thread",
    "within",
    "sweep_super_journals",
}


def _write_block(store: ShardStore) -> None:
    with store.write() as w:
        w.insert("t_a", 9, "x")


def _read_block(store: ShardStore) -> None:
    with store.read():
        pass


def _transaction(store: ShardStore) -> None:
    store.transaction("t_a").rollback()


#: One call of each data method, on a store holding t_a (1 -> "a") and t_l (1 -> [5, 6]).
CALLS: dict[str, Callable[[ShardStore], Any]] = {
    "get": lambda s: s.get("t_a", 1),
    "get_many": lambda s: s.get_many("t_a", [1]),
    "scan": lambda s: s.scan("t_a"),
    "count": lambda s: s.count("t_a"),
    "list_count": lambda s: s.list_count("t_l", 1),
    "list_count_many": lambda s: s.list_count_many("t_l", [1]),
    "list_page": lambda s: s.list_page("t_l", 1),
    "list_page_many": lambda s: s.list_page_many("t_l", [1]),
    "list_window_many": lambda s: s.list_window_many("t_l", [1]),
    "read": _read_block,
    "begin_read": lambda s: (s.begin_read("t_a"), s.end_reads()),
    "end_reads": lambda s: s.end_reads(),
    "write": _write_block,
    "transaction": _transaction,
    "insert": lambda s: s.insert("t_a", 2, "b"),
    "put": lambda s: s.put("t_a", 2, "c"),
    "delete": lambda s: s.delete("t_a", 2),
    "list_extend": lambda s: s.list_extend("t_l", 1, [7]),
    "list_remove": lambda s: s.list_remove("t_l", 1, [7]),
    "bulk_insert": lambda s: s.bulk_insert("t_a", [(3, "c")], on_conflict="replace"),
    "bulk_insert_stored": lambda s: s.bulk_insert_stored("t_b", "int", [1], [1], on_conflict="replace"),
    "bulk_lists": lambda s: s.bulk_lists("t_m", [(1, [2])]),
    "integrity_check": lambda s: s.integrity_check("t_a"),
    "stats": lambda s: s.stats(integrity=False),
    "vacuum": lambda s: s.vacuum("t_a"),
    "clear": lambda s: s.clear(confirm=s.root.name),
}


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def store(tmp_path: Path, recorder: Recorder) -> Iterator[ShardStore]:
    with ShardStore(tmp_path / "store") as plain:
        plain.insert("t_a", 1, "a")
        plain.list_extend("t_l", 1, [5, 6])
    with ShardStore(tmp_path / "store", hook=recorder) as hooked:
        yield hooked


def public_methods() -> list[str]:
    return sorted(name for name, _ in inspect.getmembers(ShardStore, inspect.isfunction) if name[0] != "_")


@pytest.mark.parametrize("name", public_methods())
def test_every_public_method_is_observed_or_listed_as_not_data(
    name: str, store: ShardStore, recorder: Recorder
) -> None:
    if name in NOT_DATA:
        assert name not in OBSERVED_METHODS
        getattr(store, name)
        return
    assert name in CALLS, f"ShardStore.{name}: give it a call in CALLS, or list it in NOT_DATA"
    CALLS[name](store)
    assert name in recorder.names(), f"ShardStore.{name} was called but its hook was not told"


def test_the_method_list_covers_only_methods_that_exist() -> None:
    assert set(CALLS) | NOT_DATA == set(public_methods())


def test_a_store_without_a_hook_runs_the_class_methods(tmp_path: Path) -> None:
    with ShardStore(tmp_path) as store:
        store.insert("t_a", 1, "a")
        assert store.get_many("t_a", [1]) == {1: "a"}
        assert not set(vars(store)) & {*OBSERVED_METHODS, "read", "write"}  # nothing shadows them


def test_an_observed_method_keeps_its_name_and_documentation(store: ShardStore) -> None:
    assert "get_many" in vars(store)  # this store's own, observed
    assert (store.get_many.__name__, store.get_many.__doc__) == ("get_many", ShardStore.get_many.__doc__)


def test_keys_arguments_shards_and_results(store: ShardStore, recorder: Recorder) -> None:
    assert store.get_many("t_a", iter([1, 4])) == {1: "a"}  # an iterator: both see every id
    assert store.list_page_many("t_l", (1,), offset=1, limit=5) == {1: [6]}
    store.bulk_insert("t_a", iter([(7, "g"), (8, "h")]))
    store.list_extend("t_l", 1, iter([8, 9]))
    get_many, page, bulk, extend = recorder.ops
    assert (get_many.name, get_many.shard, get_many.keys, get_many.shards) == (
        "get_many",
        "t_a",
        (1, 4),
        ("t_a",),
    )
    assert get_many.result == {1: "a"} and get_many.error is None
    assert (page.keys, page.args, page.result) == ((1,), {"offset": 1, "limit": 5}, {1: [6]})
    assert (bulk.keys, bulk.result) == ((7, 8), 2)
    assert (extend.keys, extend.args) == ((1,), {"refs": [8, 9]})
    assert store.get_many("t_a", [7, 8]) == {7: "g", 8: "h"}
    assert store.list_page("t_l", 1) == [5, 6, 8, 9]


def test_the_error_of_a_call_is_told_then_raised(store: ShardStore, recorder: Recorder) -> None:
    with pytest.raises(UIDCollision) as raised:
        store.insert("t_a", 1, "again")
    (op,) = recorder.ops
    assert op.name == "insert" and op.error is raised.value and op.result is None


def test_a_hook_can_fail_a_call_before_it_is_made(tmp_path: Path) -> None:
    with ShardStore(tmp_path, hook=Failing("write")) as store:
        with pytest.raises(RuntimeError, match="injected into write"), store.write() as w:
            w.insert("t_a", 1, "a")
        assert store.get("t_a", 1) is None  # nothing was written
        store.insert("t_a", 1, "a")  # other calls go through
        assert store.get("t_a", 1) == "a"
    with ShardStore(tmp_path, hook=Failing("get_many")) as store:
        with pytest.raises(RuntimeError, match="injected into get_many"):
            store.get_many("t_a", [1])
        assert store.get("t_a", 1) == "a"


def test_a_block_spans_the_calls_inside_it(store: ShardStore, recorder: Recorder) -> None:
    with store.read():
        store.get("t_a", 1)
        store.list_count("t_l", 1)  # asks list_count_many: observed too, nested in it
    assert recorder.depths == [
        ("get", 1),
        ("list_count_many", 2),
        ("list_count", 1),
        ("end_reads", 1),  # the block ends its reads
        ("read", 0),
    ]
    end_reads = recorder.ops[3]
    assert end_reads.shards == ("t_a", "t_l")  # the shards it let go


def test_a_write_block_is_told_its_batch_and_the_commit_error(store: ShardStore, recorder: Recorder) -> None:
    with store.write() as w:
        w.insert("t_a", 2, "b")
        w.list_set("t_l", 1, [9])
    (op,) = recorder.ops
    assert op.name == "write" and op.error is None
    assert [(o.verb, o.shard, o.uid) for o in op.result.ops] == [("insert", "t_a", 2), ("list_set", "t_l", 1)]
    with pytest.raises(UIDCollision), store.write() as w:
        w.insert("t_a", 1, "taken")
    assert isinstance(recorder.ops[-1].error, UIDCollision)
    with pytest.raises(StoreError, match=r"inside store\.read"), store.read(), store.write():
        pass


def test_a_hook_can_hold_a_thread_back(store: ShardStore, tmp_path: Path) -> None:
    class Gate:
        def __init__(self) -> None:
            self.waiting, self.go = threading.Event(), threading.Event()

        @contextlib.contextmanager
        def observe(self, op: StoreOp) -> Iterator[None]:
            if op.name == "get":
                self.waiting.set()
                assert self.go.wait(timeout=60)
            yield

    gate = Gate()
    gated = ShardStore(store.root, hook=gate)
    result: list[Any] = []
    reader = threading.Thread(target=lambda: result.append(gated.get("t_a", 1)))
    reader.start()
    assert gate.waiting.wait(timeout=60)
    assert result == []
    gate.go.set()
    reader.join(timeout=60)
    assert result == ["a"]
    gated.close()


def test_open_connections_counts_every_thread(tmp_path: Path) -> None:
    with ShardStore(tmp_path) as store:
        store.insert("t_a", 1, "a")
        assert store.open_connections == 1
        other = threading.Thread(target=store.get, args=("t_a", 1))
        other.start()
        other.join(timeout=60)
        store.get("t_b", 1)  # a missing shard opens nothing
        assert store.open_connections == 2
        store.close()
        assert store.open_connections == 0
