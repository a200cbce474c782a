"""Child processes of the tests: writers that log every commit they saw succeed (the reliability
tests), and :class:`ExclusiveLock`, another process holding a shard locked (the busy tests).

A worker runs in its own process (``multiprocessing`` with ``fork``) and appends one line to its
own log *after* each write returns, so a line is an acknowledgement: the store told the caller the
write is durable. A test may kill the worker at any moment; whatever the log holds must then be
in the store. The log is opened unbuffered, so a line is one ``write()`` system call that a
SIGKILL cannot split.

Log lines: ``<kind> <uid> <value>`` for an acknowledged write, ``busy <kind> <uid> <value>`` for
a write that raised :class:`~efs_sqlite.errors.StoreBusy`, ``error <kind> <uid> <message>`` for
anything else.

The ids are ``(round << 40) | (slot << 32) | seq``: a log line names who wrote what without any
randomness, so these tests never meet an id collision they did not force.

>>> uid_of(2, 3, 5) == (2 << 40) | (3 << 32) | 5, slot_of(uid_of(2, 3, 5))
(True, 3)
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from efs_sqlite.errors import StoreBusy, UIDCollision
from efs_sqlite.graph import Graph
from efs_sqlite.store import ShardStore
from efs_sqlite.uid import Generator

#: A grouped write inserts one value into each of these, and a two-entry list into LIST.
GROUP = ("grp_a", "grp_b", "grp_c")
LIST = "grp_refs"
#: Single-shard inserts.
SOLO = "solo_value"
#: Upserts: one row per slot, holding the uid of that slot's latest put.
COUNTER = "counter_value"
#: The shard two processes with the same forced id sequence insert into.
COLLIDE = "collide_value"
#: Every id a forced generator makes lies in this millisecond (2023-11-14).
FIXED_MS = 1_700_000_000_000
KINDS = "gip"  # grouped, insert, put — in turn


def uid_of(round_: int, slot: int, seq: int) -> int:
    return (round_ << 40) | (slot << 32) | seq


def slot_of(uid: int) -> int:
    return (uid >> 32) & 0xFF


def group_value(shard: str, uid: int) -> str:
    return f"{shard}:{uid}"


def solo_value(uid: int) -> str:
    return f"solo:{uid}"


def write(store: ShardStore, kind: str, slot: int, uid: int) -> None:
    if kind == "g":
        with store.write() as w:
            for shard in GROUP:
                w.insert(shard, uid, group_value(shard, uid))
            w.list_extend(LIST, uid, [uid, uid])
    elif kind == "i":
        store.insert(SOLO, uid, solo_value(uid))
    else:
        store.put(COUNTER, slot, uid)


def writer(root: str, round_: int, slot: int, ops: int | None, log_path: str, busy_timeout_ms: int) -> None:
    """Write ``ops`` times (forever if ``None``) in turn: a grouped write, an insert, an upsert."""
    store = ShardStore(root, busy_timeout_ms=busy_timeout_ms)
    seqs: Iterator[int] = itertools.count(1) if ops is None else iter(range(1, ops + 1))
    with open(log_path, "ab", buffering=0) as log:
        for seq in seqs:
            kind = KINDS[seq % 3]
            uid = uid_of(round_, slot, seq)
            try:
                write(store, kind, slot, uid)
            except StoreBusy:
                log.write(f"busy {kind} {uid} {uid}\n".encode())
            except Exception as exc:
                log.write(f"error {kind} {uid} {exc!r}\n".encode())
                raise
            else:
                log.write(f"{kind} {uid} {uid}\n".encode())
    store.close()


def forced_generator() -> Generator:
    """A generator stuck in one millisecond with a sequence that always starts at 0: every
    process that makes one draws exactly the same ids, in the same order."""
    return Generator(clock=lambda: FIXED_MS * 1_000_000, start=lambda: 0)


def forced_inserter(root: str, slot: int, n: int, log_path: str, barrier: object) -> None:
    """Insert ``n`` values under ids from :func:`forced_generator`; log ``ok`` or ``collision``."""
    gen, store = forced_generator(), ShardStore(root)
    barrier.wait()  # type: ignore[attr-defined]
    with open(log_path, "ab", buffering=0) as log:
        for _ in range(n):
            uid = gen.generate()
            try:
                store.insert(COLLIDE, uid, f"slot{slot}")
            except UIDCollision:
                log.write(f"collision {uid}\n".encode())
            else:
                log.write(f"ok {uid}\n".encode())
    store.close()


def forced_creator(root: str, slot: int, n: int, log_path: str, barrier: object) -> None:
    """Create ``n`` Party nodes through :class:`Graph` with ids from :func:`forced_generator`.

    Logs ``<uid> <identifier>`` per node created and, at the end, ``draws <k>``: how many ids the
    graph asked for (each draw beyond one per node was a retry after a collision).
    """
    gen = forced_generator()
    draws = itertools.count(1)
    drawn = [0]

    def new_id() -> int:
        drawn[0] = next(draws)
        return gen.generate()

    # Enough retries that a process running behind the other never gives up.
    graph = Graph(ShardStore(root), new_id=new_id, retries=2 * n + 1)
    barrier.wait()  # type: ignore[attr-defined]
    with open(log_path, "ab", buffering=0) as log:
        for i in range(n):
            identifier = slot * 1_000_000 + i
            uid = graph.create_node("Party", {"identifier": identifier, "timestamp": "2024-01-01T00:00:00Z"})
            log.write(f"{uid} {identifier}\n".encode())
        log.write(f"draws {drawn[0]}\n".encode())
    graph.store.close()


def read_log(path: str | os.PathLike[str]) -> list[list[str]]:
    """The complete lines of a worker's log, split into words."""
    data = Path(path).read_bytes() if Path(path).exists() else b""
    # A line is written by one write() call; one without its newline was never acknowledged.
    return [line.split() for line in data.decode().split("\n")[:-1]]


_LOCKER = """
import sys, apsw
conn = apsw.Connection(sys.argv[1])
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
print("released", flush=True)
"""


class ExclusiveLock:
    """Another process holding ``BEGIN EXCLUSIVE`` on a SQLite file from the start of the
    ``with`` block until :meth:`release`; whatever happens, the block's end kills it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> ExclusiveLock:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _LOCKER, self.path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert self.process.stdout is not None and self.process.stdout.readline() == "locked\n"
        except BaseException:
            self.__exit__()
            raise
        return self

    def release(self) -> None:
        """Commit in the other process (its lock is gone when this returns)."""
        assert self.process is not None and self.process.stdin is not None and self.process.stdout
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline() == "released\n"

    def __exit__(self, *exc: Any) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()
