"""Concurrent writers: the store's jittered busy wait against SQLite's default busy timeout.

8 processes each commit ``ops`` one-row upserts to the same shard, all at once, so nearly every
commit finds the lock taken. Each write is timed from call to acknowledgement. The store waits in
short jittered steps (:mod:`efs_sqlite.store`); the baseline is raw apsw doing the same
``BEGIN IMMEDIATE`` / upsert / ``COMMIT`` with the same pragmas under ``sqlite3_busy_timeout``,
whose sleeps grow to 100 ms, so a writer that has waited long tries less often than a newcomer.
Between two writes a writer sleeps 1 ms, a request's other work. Reported per contender: writes
per second over all writers, the longest wait of any one write, the p50 and p99 of the waits, and
the time the slowest writer spent in its writes over the fastest's (1 when all keep pace).
Neither may starve a writer: every write of every writer completes (the busy timeout, 60 s, is
never reached).

Run on its own with ``python benchmarks/bench_writers.py [--ops 200] [--writers 8]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Any

import apsw

from benchmarks.report import spread
from efs_sqlite.store import ShardStore

_CTX = multiprocessing.get_context("fork")
_SHARD = "counter_value"
_TIMEOUT_MS = 60_000
#: Between two writes a writer does a request's other work (parsing, answering): without it, the
#: writer that just committed takes the lock again before any waiter can see it free.
_THINK_S = 0.001
_ITEMS = "CREATE TABLE IF NOT EXISTS items(uid INTEGER PRIMARY KEY, value, kind INTEGER NOT NULL)"


def _store_writer(root: str, slot: int, ops: int) -> list[float]:
    store = ShardStore(root, busy_timeout_ms=_TIMEOUT_MS)
    store.put(_SHARD, slot, 0)  # open and warm, before the start
    return _timed(lambda i: store.put(_SHARD, slot, i), ops, store.close)


def _sqlite_writer(root: str, slot: int, ops: int) -> list[float]:
    conn = apsw.Connection(str(Path(root) / f"{_SHARD}.sqlite"))
    conn.set_busy_timeout(_TIMEOUT_MS)
    conn.execute("PRAGMA journal_mode=delete; PRAGMA synchronous=full").fetchall()

    def put(i: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT OR REPLACE INTO items VALUES (?, ?, 0)", (slot, i))
        conn.execute("COMMIT")

    put(0)
    return _timed(put, ops, conn.close)


_WRITERS = {"store": _store_writer, "sqlite": _sqlite_writer}
_start: Any = None  # the barrier, inherited by the forked writers


def _timed(write: Any, ops: int, close: Any) -> list[float]:
    _start.wait()
    waits = []
    for i in range(1, ops + 1):
        t = time.perf_counter()
        write(i)
        waits.append(time.perf_counter() - t)
        time.sleep(_THINK_S)
    close()
    return waits


def _child(kind: str, root: str, slot: int, ops: int, out: Any) -> None:
    out.send(_WRITERS[kind](root, slot, ops))
    out.close()


def run_writers(kind: str, writers: int, ops: int) -> dict[str, Any]:
    """``writers`` processes of ``kind`` ("store" or "sqlite"), ``ops`` writes each, at once."""
    global _start
    with tempfile.TemporaryDirectory() as tmp:
        with ShardStore(tmp) as store:  # the shard and its tables exist before anyone starts
            store.put(_SHARD, -1, 0)
        conn = apsw.Connection(str(Path(tmp) / f"{_SHARD}.sqlite"))
        conn.execute(_ITEMS)
        conn.close()
        _start = _CTX.Barrier(writers + 1)
        pipes, procs = [], []
        for slot in range(writers):
            ours, theirs = _CTX.Pipe(duplex=False)
            procs.append(_CTX.Process(target=_child, args=(kind, tmp, slot, ops, theirs), daemon=True))
            procs[-1].start()
            pipes.append(ours)
        _start.wait()
        t = time.perf_counter()
        waits = [pipe.recv() for pipe in pipes]
        wall = time.perf_counter() - t
        for proc in procs:
            proc.join()
        assert [len(w) for w in waits] == [ops] * writers, "a writer did not complete"
        with ShardStore(tmp) as store:
            assert store.get_many(_SHARD, range(writers)) == dict.fromkeys(range(writers), ops)
    # Each writer's time writing: a starved writer takes far longer than the others.
    busy = [sum(w) for w in waits]
    ms = spread([x * 1000 for w in waits for x in w])
    return {
        "writers": writers,
        "ops": ops,
        "writes_per_s": writers * ops / wall,
        "longest_wait_ms": ms["max"],
        "p50_wait_ms": ms["median"],
        "p99_wait_ms": ms["p99"],
        "slowest_writer_s": max(busy),
        "fastest_writer_s": min(busy),
        "slowest_over_fastest": max(busy) / min(busy),
    }


def bench_writers(writers: int = 8, ops: int = 200, repeats: int = 3) -> dict[str, Any]:
    """Both contenders, taking turns ``repeats`` times; the run with the median throughput of each."""
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in _WRITERS}
    for _ in range(repeats):
        for kind in _WRITERS:
            runs[kind].append(run_writers(kind, writers, ops))
    out: dict[str, Any] = {"writers": writers, "ops": ops, "repeats": repeats}
    for kind, results in runs.items():
        ordered = sorted(results, key=lambda r: r["writes_per_s"])
        out[kind] = ordered[len(ordered) // 2]
        out[kind]["longest_wait_ms_max"] = max(r["longest_wait_ms"] for r in results)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--ops", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    result = bench_writers(args.writers, args.ops, args.repeats)
    for kind in _WRITERS:
        print(kind, {k: round(v, 3) if isinstance(v, float) else v for k, v in result[kind].items()})
