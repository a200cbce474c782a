"""Reliability: concurrent writer processes, kill -9 at random moments, injected faults, forced id collisions.

SQLite is not tested across a network, so we prove our use of it the way SQLite proves itself:
break it at every point and check ``integrity_check`` and the data after each. Writers are real
processes (``fork``); each logs a write only after the store acknowledged it (see ``_workers``),
so "every acknowledged write is present" is checked against what callers were actually told.

Sizes: the CI runs 8 writers x 60 writes twice (default and a 1 ms busy timeout), 25 rounds of
8 writers killed at random moments (200 kills), every fault point of a 4-shard node create.
``pytest -m long tests/test_reliability.py`` runs 8 x 10,000 writes and 1,000 kills.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import multiprocessing.connection
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _workers as wk
import apsw
import pytest

from efs_sqlite.efs_model import FAULT_KINDS, EFSModel
from efs_sqlite.errors import StoreError, UIDCollision
from efs_sqlite.graph import Graph
from efs_sqlite.model import TYPE_SHARD
from efs_sqlite.store import ShardStore

CTX = multiprocessing.get_context("fork")
WORKERS = 8
#: Longest the children may go without logging anything; only a hang ever reaches it.
PATIENCE_S = 120.0
#: The slot of the writes the test itself makes after each round (workers use 0..7).
PARENT = 255


# -- acknowledgements and the checks made against them ---------------------------------------------


@dataclass
class Acks:
    """What the writers' logs say: acknowledged and busy-failed ids by kind, latest put per slot."""

    acked: dict[str, set[int]] = field(default_factory=lambda: {k: set() for k in wk.KINDS})
    busy: dict[str, set[int]] = field(default_factory=lambda: {k: set() for k in wk.KINDS})
    errors: list[str] = field(default_factory=list)
    latest_put: dict[int, int] = field(default_factory=dict)

    def add_log(self, path: Path) -> None:
        for words in wk.read_log(path):
            if words[0] == "error":
                self.errors.append(" ".join(words))
            elif words[0] == "busy":
                self.busy[words[1]].add(int(words[2]))
            else:
                kind, uid = words[0], int(words[1])
                self.acked[kind].add(uid)
                if kind == "p":
                    slot = wk.slot_of(uid)
                    self.latest_put[slot] = max(uid, self.latest_put.get(slot, 0))

    @property
    def writes(self) -> int:
        return sum(len(v) for v in self.acked.values())

    @property
    def busies(self) -> int:
        return sum(len(v) for v in self.busy.values())


def scan_all(store: ShardStore, shard: str) -> dict[int, Any]:
    out: dict[int, Any] = {}
    after = None
    while page := store.scan(shard, after, 5000):
        out.update(page)
        after = page[-1][0]
    return out


def check_integrity(store: ShardStore) -> None:
    for shard in store.shards():
        assert store.integrity_check(shard) == "ok", shard


def verify(root: Path, acks: Acks) -> int:
    """Open the store fresh (running any hot-journal recovery) and check it against ``acks``.

    Returns how many hot journals the writers had left behind.
    """
    hot = [p for p in root.glob("*.sqlite-journal") if p.stat().st_size > 0]
    assert not acks.errors, acks.errors[:5]
    with ShardStore(root) as store:
        check_integrity(store)
        group = {shard: scan_all(store, shard) for shard in wk.GROUP}
        uids = set(group[wk.GROUP[0]])
        for shard, rows in group.items():
            # No partial grouped write: the same ids in every shard of the group, each value whole.
            assert set(rows) == uids, f"{shard} differs from {wk.GROUP[0]}: {set(rows) ^ uids}"
            assert all(v == wk.group_value(shard, u) for u, v in rows.items())
        assert set(store.list_count_many(wk.LIST, uids).values()) <= {2}
        assert store.stats(integrity=False)["shards"].get(wk.LIST, {}).get("refs", 0) == 2 * len(uids)
        assert acks.acked["g"] <= uids, f"acknowledged grouped writes lost: {acks.acked['g'] - uids}"
        assert not acks.busy["g"] & uids, "a grouped write reported busy was kept"

        solo = scan_all(store, wk.SOLO)
        assert acks.acked["i"] <= set(solo), f"acknowledged inserts lost: {acks.acked['i'] - set(solo)}"
        assert all(v == wk.solo_value(u) for u, v in solo.items())
        assert not acks.busy["i"] & set(solo), "an insert reported busy was kept"

        counter = scan_all(store, wk.COUNTER)
        for slot, latest in acks.latest_put.items():
            # A later put may have committed just before its writer died unacknowledged; an
            # earlier value would mean an acknowledged upsert was lost.
            assert counter[slot] >= latest and wk.slot_of(counter[slot]) == slot
    return len(hot)


def write_once_more(root: Path, round_: int) -> None:
    """The next operation after a failure: one write of every kind, from a fresh process state."""
    with ShardStore(root) as store:
        for kind in wk.KINDS:
            wk.write(store, kind, PARENT, wk.uid_of(round_, PARENT, wk.KINDS.index(kind) + 1))


def spawn(target: Callable[..., None], *args: Any) -> multiprocessing.process.BaseProcess:
    proc = CTX.Process(target=target, args=args, daemon=True)
    proc.start()
    return proc


def reap(procs: list[multiprocessing.process.BaseProcess], logs: list[Path]) -> None:
    """Wait for the children as long as their logs keep growing; fail only when none has logged
    anything for PATIENCE_S (a hang), killing those left."""
    progress, since = -1, time.monotonic()
    while alive := [p for p in procs if p.is_alive()]:
        multiprocessing.connection.wait([p.sentinel for p in alive], timeout=1.0)
        size = sum(log.stat().st_size for log in logs if log.exists())
        if size != progress:
            progress, since = size, time.monotonic()
        elif time.monotonic() - since > PATIENCE_S:
            for proc in alive:
                os.kill(proc.pid, signal.SIGKILL)
            pytest.fail(f"children {[p.pid for p in alive]} made no progress for {PATIENCE_S:.0f} s")
    for proc in procs:
        proc.join()


# -- concurrent writers ----------------------------------------------------------------------------


def run_concurrent(root: Path, ops: int, busy_timeout_ms: int) -> Acks:
    logs = [root.parent / f"concurrent-{slot}.log" for slot in range(WORKERS)]
    procs = [
        spawn(wk.writer, str(root), 0, slot, ops, str(logs[slot]), busy_timeout_ms) for slot in range(WORKERS)
    ]
    reap(procs, logs)
    acks = Acks()
    for log in logs:
        acks.add_log(log)
    assert [p.exitcode for p in procs] == [0] * WORKERS, acks.errors[:5]
    assert acks.writes + acks.busies == WORKERS * ops  # every write was answered, one way or the other
    assert verify(root, acks) == 0
    with ShardStore(root) as store:
        # Nobody was killed, so nothing committed unacknowledged: each slot holds exactly its last
        # acknowledged upsert (a busy put after it committed nothing).
        assert scan_all(store, wk.COUNTER) == acks.latest_put
        assert store.count(wk.SOLO) == len(acks.acked["i"])
        assert store.count(wk.GROUP[0]) == len(acks.acked["g"])
    return acks


@pytest.mark.slow
@pytest.mark.parametrize("busy_timeout_ms", [5000, 1])
def test_concurrent_writers_lose_nothing(tmp_path, busy_timeout_ms):
    """8 processes write the same shards; with a 1 ms busy timeout many writes fail busy, and each
    failure is an exception to its caller and leaves nothing behind."""
    acks = run_concurrent(tmp_path / "store", ops=60, busy_timeout_ms=busy_timeout_ms)
    print(f"\n8 writers, busy timeout {busy_timeout_ms} ms: {acks.writes} acknowledged, {acks.busies} busy")
    assert acks.writes > 0
    if busy_timeout_ms == 1:
        assert acks.busies > 0  # the busy path was taken, and verify() found nothing of those writes


@pytest.mark.long
def test_concurrent_writers_long(tmp_path):
    acks = run_concurrent(tmp_path / "store", ops=10_000, busy_timeout_ms=5000)
    print(f"\n8 x 10,000 writes: {acks.writes} acknowledged, {acks.busies} busy, all present")


# -- killed writers --------------------------------------------------------------------------------


def _wait_until_writing(procs: list[Any], logs: list[Path]) -> None:
    deadline = time.monotonic() + PATIENCE_S
    for proc, log in zip(procs, logs, strict=True):
        while not (log.exists() and log.stat().st_size):
            assert proc.is_alive(), f"writer {proc.pid} died before writing: exit {proc.exitcode}"
            assert time.monotonic() < deadline, f"writer {proc.pid} never wrote"
            time.sleep(0.002)


@dataclass
class KillReport:
    kills: int = 0
    rounds_with_hot_journal: int = 0
    hot_journals: int = 0


def kill_rounds(
    root: Path, rounds: int, rng: random.Random, window_s: float = 0.25
) -> tuple[Acks, KillReport]:
    """Rounds of 8 writers each SIGKILLed at a random moment in ``window_s`` after all are writing;
    after every round the whole store is checked against every acknowledgement so far."""
    acks, report = Acks(), KillReport()
    for round_ in range(rounds):
        logs = [root.parent / f"r{round_}-{slot}.log" for slot in range(WORKERS)]
        procs = [
            spawn(wk.writer, str(root), round_, slot, None, str(logs[slot]), 5000) for slot in range(WORKERS)
        ]
        _wait_until_writing(procs, logs)
        start = time.monotonic()
        for at, proc in sorted(
            zip((rng.uniform(0, window_s) for _ in procs), procs, strict=True), key=lambda x: x[0]
        ):
            time.sleep(max(0.0, start + at - time.monotonic()))
            os.kill(proc.pid, signal.SIGKILL)
        reap(procs, logs)
        # Killed, not finished and not crashed: the writers never stop on their own.
        assert [p.exitcode for p in procs] == [-signal.SIGKILL] * WORKERS
        report.kills += WORKERS
        for log in logs:
            acks.add_log(log)
        hot = verify(root, acks)
        report.hot_journals += hot
        report.rounds_with_hot_journal += hot > 0
        write_once_more(root, round_)
        # The hot journals were rolled back (or, not hot, cleared by the next write) on next open.
        assert not list(root.glob("*.sqlite-journal"))
    return acks, report


@pytest.mark.slow
def test_killed_writers_keep_every_acknowledged_write(tmp_path):
    acks, report = kill_rounds(tmp_path / "store", rounds=25, rng=random.Random(8))
    print(f"\n{report}; {acks.writes} acknowledged writes, {acks.busies} busy, all present")
    assert report.kills >= 200
    assert acks.writes > report.kills  # the kills interrupted real work, not idle processes
    # Kills land mid-commit: some rounds left a hot journal that the next open had to roll back.
    assert report.rounds_with_hot_journal > 0


@pytest.mark.long
def test_killed_writers_long(tmp_path):
    acks, report = kill_rounds(tmp_path / "store", rounds=125, rng=random.Random(1000))
    print(f"\n{report}; {acks.writes} acknowledged writes, {acks.busies} busy, all present")
    assert report.kills >= 1000


# -- UID collisions across processes ---------------------------------------------------------------


def _race(target: Callable[..., None], root: Path, n: int) -> list[list[list[str]]]:
    barrier = CTX.Barrier(2)
    logs = [root.parent / f"{target.__name__}-{slot}.log" for slot in (1, 2)]
    procs = [
        spawn(target, str(root), slot, n, str(log), barrier) for slot, log in zip((1, 2), logs, strict=True)
    ]
    reap(procs, logs)
    assert [p.exitcode for p in procs] == [0, 0]
    return [wk.read_log(log) for log in logs]


def test_forced_id_collisions_across_processes_never_overwrite(tmp_path):
    """Two processes draw the same ids and insert into one shard: each id is kept by exactly one,
    with that one's value; the other was told (UIDCollision) and overwrote nothing."""
    root, n = tmp_path / "store", 100
    logs = _race(wk.forced_inserter, root, n)
    won = [{int(uid) for verdict, uid in log if verdict == "ok"} for log in logs]
    lost = [{int(uid) for verdict, uid in log if verdict == "collision"} for log in logs]
    assert [len(w) + len(c) for w, c in zip(won, lost, strict=True)] == [n, n]
    assert not won[0] & won[1]
    # Same sequence in both: every id drawn was drawn twice, so each was won once and lost once.
    assert won[0] | won[1] == lost[0] | lost[1] == won[0] ^ won[1]
    with ShardStore(root) as store:
        check_integrity(store)
        stored = scan_all(store, wk.COLLIDE)
    assert set(stored) == won[0] | won[1]
    for slot, ids in zip((1, 2), won, strict=True):
        assert all(stored[uid] == f"slot{slot}" for uid in ids)


def test_forced_id_collisions_in_node_creation_are_retried_with_a_new_id(tmp_path):
    root, n = tmp_path / "store", 25
    logs = _race(wk.forced_creator, root, n)
    created: dict[int, int] = {}
    draws = 0
    for log in logs:
        *nodes, (word, count) = log
        assert word == "draws"
        draws += int(count)
        created.update((int(uid), int(identifier)) for uid, identifier in nodes)
    assert len(created) == 2 * n  # every create returned a distinct id
    print(f"\nnode creates: {2 * n}, ids drawn: {draws}")
    assert draws > 2 * n  # collisions happened (the first id is always drawn twice) and were retried
    with ShardStore(root) as store:
        check_integrity(store)
        graph = Graph(store)
        assert store.count(TYPE_SHARD) == 2 * n
        for uid, identifier in created.items():
            node = graph.get_node(uid, "Party")
            assert node is not None and node["identifier"] == identifier  # nobody's node was overwritten
        assert store.count("party_identifier") == store.count("party_timestamp") == 2 * n


def test_node_creation_gives_up_after_its_retries_and_writes_nothing(tmp_path):
    with ShardStore(tmp_path / "store") as store:
        graph = Graph(store, new_id=lambda: 12345, retries=3)
        first = graph.create_node("Party", {"identifier": 1, "timestamp": "2024-01-01T00:00:00Z"})
        with pytest.raises(UIDCollision):
            graph.create_node("Party", {"identifier": 2, "timestamp": "2024-02-02T00:00:00Z"})
        assert first == 12345 and store.count(TYPE_SHARD) == store.count("party_identifier") == 1
        assert graph.get_node(first)["identifier"] == 1


# -- injected faults (the EFS model's VFS) ---------------------------------------------------------

_model_names = (f"reliability-efs-{i}" for i in itertools.count())
#: The four shards a Party with a claims list is written to, in one grouped write.
PARTY_SHARDS = (TYPE_SHARD, "party_identifier", "party_timestamp", "party_claims")


@pytest.fixture
def efs() -> Iterator[EFSModel]:
    with EFSModel(next(_model_names)) as model:
        yield model


class Ids:
    """Node ids drawn in order, so the test knows the id of a create that failed."""

    def __init__(self) -> None:
        self.next = 1_000
        self.last = 0

    def __call__(self) -> int:
        self.last, self.next = self.next, self.next + 1
        return self.last


def party_state(store: ShardStore, uid: int) -> str:
    """``"whole"``, ``"absent"`` or a description of a partial node."""
    have = {s for s in PARTY_SHARDS[:3] if store.get(s, uid) is not None}
    if store.list_count("party_claims", uid):
        have.add("party_claims")
    if have == set(PARTY_SHARDS):
        return "whole"
    return "absent" if not have else f"partial: {sorted(have)}"


class FaultRun:
    """A warm Graph on the EFS model, creating Party nodes (4 shards in one grouped write) whose
    ``identifier`` is their own id, and the tally of the creates tried under a fault."""

    def __init__(self, root: Path, model: EFSModel) -> None:
        self.root, self.model, self.ids = root, model, Ids()
        self.graph = self._graph()
        self.claim = self.graph.create_node(
            "Claim", {"identifier": 1, "type_code": "MOTOR", "timestamp": "2024-01-01"}
        )
        self.committed: set[int] = set()
        self.create()
        self.create()  # warm: every shard open, every table made
        self.points = self.completed = self.kept_despite_error = 0
        self.errors: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.crashed = False
        self.left_super_journal = self.swept = 0

    def _graph(self) -> Graph:
        return Graph(ShardStore(self.root, vfs=self.model.name), new_id=self.ids, retries=1)

    def create(self) -> None:
        uid = self.graph.create_node(
            "Party",
            {"identifier": self.ids.next, "timestamp": "2024-01-01T00:00:00Z", "claims": [self.claim]},
        )
        self.committed.add(uid)

    def dry_counts(self) -> Counter[str]:
        """The calls one warm create makes, by kind."""
        with self.model.accounting() as ops:
            self.create()
        return ops.counts

    def attempt(self, *, reopen: bool) -> None:
        """Create a node under the armed fault, recover, check, and create the next one.

        ``reopen``: the fault killed the process; carry on in a new one (a fresh store).
        """
        drawn = self.ids.last
        try:
            self.create()
        except (apsw.Error, StoreError) as exc:
            assert str(exc), "an error without a message"
            self.errors[type(exc).__name__] += 1
            ok = False
        else:
            self.completed += 1
            ok = True
        self.crashed = self.model.crashed
        if reopen:
            with contextlib.suppress(apsw.Error):
                self.graph.store.close()  # the dead process's handles: the OS closes them
        self.model.recover()
        if reopen:
            self.graph = self._graph()
            self.sweep()
        self.points += 1
        # A fresh plain store reads the files as the next process would (hot journals roll back).
        with ShardStore(self.root) as plain:
            check_integrity(plain)
            # No id drawn: it failed in the reads that check its references, before writing.
            uid = self.ids.last if self.ids.last != drawn else None
            state = "absent" if uid is None else party_state(plain, uid)
            assert state in ("whole", "absent"), f"id {uid}: {state}"
            assert ok <= (state == "whole"), f"id {uid}: acknowledged, then lost"
            if state == "whole":
                self.kept_despite_error += not ok
                self.committed.add(uid)
            self.outcomes[state] += 1
            self.create()  # the next operation succeeds
            ids = sorted(self.committed)
            assert plain.get_many(TYPE_SHARD, ids) == dict.fromkeys(ids, "Party")
            assert plain.get_many("party_identifier", ids) == {u: u for u in ids}
            assert plain.list_page_many("party_claims", ids, 0, 5) == {u: [self.claim] for u in ids}

    def sweep(self) -> None:
        """What the next process does first: sweep the super-journals the dead one left, before
        anything else opens the shards (a super-journal removed while a journal of its group still
        named it would turn a rolled-back node into a partial one, which the checks then find)."""
        self.left_super_journal += bool(list(self.root.glob("*.sqlite-mj*")))
        with ShardStore(self.root) as sweeper:
            self.swept += len(sweeper.sweep_super_journals())
        assert not list(self.root.glob("*.sqlite-mj*")), "a super-journal outlived the sweep"

    def __str__(self) -> str:
        return (
            f"{self.points} fault points: {self.completed} completed, errors {dict(self.errors)}, "
            f"outcomes {dict(self.outcomes)}, kept despite an error {self.kept_despite_error}, "
            f"{len(self.committed)} committed nodes all present; super-journals left by "
            f"{self.left_super_journal} crashes, {self.swept} of them orphans the sweep removed"
        )


@pytest.mark.slow
def test_an_io_error_at_every_operation_of_a_node_create(tmp_path, efs):
    """EIO at each operation of a 4-shard grouped write in turn, on one warm store: the call raises
    or completes, nothing partial, committed data stays, and the same store's next create works."""
    run = FaultRun(tmp_path / "store", efs)
    counts = {k: v for k, v in run.dry_counts().items() if k in FAULT_KINDS}
    for kind, calls in sorted(counts.items()):
        for nth in range(1, calls + 1):
            fault = efs.inject(kind, nth, "eio")
            run.attempt(reopen=False)
            assert fault.fired == 1, f"{kind} #{nth} was not reached"
    run.graph.store.close()
    print(f"\nEIO: {run}")
    assert run.points == sum(counts.values()) > 50
    assert run.errors


@pytest.mark.slow
def test_a_crash_at_every_operation_of_a_node_create(tmp_path, efs):
    """The process dies at operation N of a node create, for every N: a fresh process finds the
    node whole or absent, every earlier node intact, and can create the next one."""
    run = FaultRun(tmp_path / "store", efs)
    # Counted as crash_at() counts: every call the shim sees, not only those a fault can target.
    total = sum(run.dry_counts().values())
    for n in range(1, total + 1):
        efs.crash_at(n)
        run.attempt(reopen=True)
        assert run.crashed, f"operation {n} was not reached"
    run.graph.store.close()
    print(f"\ncrash: {run}")
    assert run.points == total > 50
    assert set(run.outcomes) == {"whole", "absent"}  # crashes before and after the commit point
    # Some crashes left a super-journal, and some of those were orphans that only the sweep removes.
    assert run.left_super_journal >= run.swept > 0


def _orphan(root: Path, main: str) -> Path:
    """A super-journal as a writer killed while writing it leaves: no journal names it."""
    path = root / f"{main}.sqlite-mj0A1B2C3D"
    path.write_bytes(str(root / "other.sqlite-journal").encode()[:7])  # cut short
    return path


def test_the_sweep_removes_an_orphan_super_journal_but_not_a_live_writers(tmp_path):
    root = tmp_path / "store"
    with ShardStore(root) as store:
        with store.write() as w:
            w.insert("grp_a", 1, "a")
            w.insert("grp_b", 1, "b")
        orphan = _orphan(root, "grp_a")
        # A live writer of the group holds its main shard: the super-journal may be its own.
        with wk.ExclusiveLock(store.path("grp_a")):
            assert store.sweep_super_journals() == []
            assert orphan.exists()
        assert store.sweep_super_journals() == [orphan.name]
        assert not orphan.exists()
        assert store.get_many("grp_b", [1]) == {1: "b"} and store.integrity_check("grp_a") == "ok"
        _orphan(root, "no-shard")  # not a shard's name: left alone
        assert store.sweep_super_journals() == []
