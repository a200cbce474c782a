"""ShardStore speed against raw apsw and stdlib sqlite3 doing the same work in the same run.

- ``get_many``: 1,000 ids (10% of them absent) out of 100,000 rows, time per id;
- ``bulk_insert``: 100,000 rows in one transaction, rows per second;
- ``get``: one id per call, time per call.

Every contender reads or writes the same kind of file with the same pragmas (rollback journal,
``synchronous=FULL``) and the store's table layout; the baselines use nothing of ours. Reads are
warm (connection open, pages cached), as in a warm Lambda. Targets from issue 2: bulk insert at
least 50% of raw apsw's rows/s, ``get_many`` at most 2x raw apsw's time per id.

Run on its own with ``python benchmarks/bench_store.py [--rows 100000] [--repeats 7]``.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import apsw

from efs_sqlite.store import ShardStore

# The store's layout (see efs_sqlite.store), written out so the baselines use nothing of ours.
_ITEMS = "CREATE TABLE IF NOT EXISTS items(uid INTEGER PRIMARY KEY, value, kind INTEGER NOT NULL)"
_PRAGMAS = "PRAGMA journal_mode=delete; PRAGMA synchronous=full"
_IN_JSON = "SELECT uid, value FROM items WHERE uid IN (SELECT value FROM json_each(?))"
_SHARD = "claim_type_code"


Timed = Callable[[], Any]


class Timing(NamedTuple):
    """Seconds of one contender's run over the repeats: median wall and CPU time, and the
    fastest and slowest wall time."""

    wall: float
    cpu: float
    fastest: float
    slowest: float


def _interleaved(prepare: dict[str, Callable[[], Timed]], repeats: int) -> dict[str, Timing]:
    """Median (wall, CPU) seconds of each contender over ``repeats``, and the wall-time range.

    ``prepare[name]()`` does the untimed setup of one repeat and returns the run to time. The
    contenders take turns in a rotating order, so the noise of a shared machine falls on all of them
    alike; CPU time (``process_time``) is the steadier measure when other processes compete."""
    names = list(prepare)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            run = prepare[name]()
            w, c = time.perf_counter(), time.process_time()
            run()
            wall[name].append(time.perf_counter() - w)
            cpu[name].append(time.process_time() - c)
    return {
        name: Timing(
            statistics.median(wall[name]), statistics.median(cpu[name]), min(wall[name]), max(wall[name])
        )
        for name in names
    }


def _ids(rows: int, seed: int = 1) -> list[int]:
    """Sparse, increasing 64-bit ids shaped like Small UIDs (ms << 20 | sequence)."""
    rng = random.Random(seed)
    ms = 1_750_000_000_000
    out = []
    for _ in range(rows):
        ms += rng.randrange(0, 3)
        out.append(ms << 20 | rng.randrange(1 << 20))
    return sorted(set(out))


def _rows(ids: list[int]) -> list[tuple[int, str]]:
    codes = ("MOTOR", "HOME", "TRAVEL", "HEALTH", "LIABILITY")
    return [(uid, f"{codes[uid % 5]}-{uid % 100_000:05d}") for uid in ids]


def _apsw(path: Path) -> apsw.Connection:
    db = apsw.Connection(str(path))
    db.execute(_PRAGMAS).fetchall()
    db.execute(_ITEMS)
    return db


def _sqlite3(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.executescript(_PRAGMAS + ";" + _ITEMS)
    return db


class _Filled(NamedTuple):
    """A filled shard's ids, and the store and raw connections that read it."""

    ids: list[int]
    store: ShardStore
    raw: apsw.Connection
    std: sqlite3.Connection


@contextlib.contextmanager
def _filled(rows: int, root: Path | None) -> Iterator[_Filled]:
    """A store in a temporary folder whose shard holds ``rows`` rows, with a raw apsw and a
    sqlite3 connection to the same file; all closed (and the folder removed) at the end."""
    with tempfile.TemporaryDirectory(dir=root) as tmp, contextlib.ExitStack() as stack:
        ids = _ids(rows)
        store = stack.enter_context(ShardStore(Path(tmp)))
        store.bulk_insert(_SHARD, _rows(ids))
        path = store.path(_SHARD)
        raw = _apsw(path)
        stack.callback(raw.close)
        std = _sqlite3(path)
        stack.callback(std.close)
        yield _Filled(ids, store, raw, std)


def bench_get_many(
    rows: int = 100_000, batch: int = 1_000, repeats: int = 21, root: Path | None = None
) -> dict[str, Any]:
    """Median µs per id of ``get_many`` of ``batch`` ids, against the fastest raw apsw way."""
    with _filled(rows, root) as (ids, store, raw, std):
        rng = random.Random(2)
        present = set(ids)
        absent = [uid + 1 for uid in rng.sample(ids, batch // 10) if uid + 1 not in present]
        batches = [rng.sample(ids, batch - len(absent)) + absent for _ in range(repeats + 1)]
        placeholders = "SELECT uid, value FROM items WHERE uid IN (" + ",".join("?" * batch) + ")"
        contenders: dict[str, Callable[[list[int]], dict[int, Any]]] = {
            "store": lambda b: store.get_many(_SHARD, b),
            "apsw json_each": lambda b: dict(raw.execute(_IN_JSON, (_json(b),))),
            "apsw IN (?,..)": lambda b: dict(raw.execute(placeholders, b)),
            "apsw executemany": lambda b: dict(
                raw.executemany("SELECT uid, value FROM items WHERE uid = ?", [(u,) for u in b])
            ),
            "sqlite3 json_each": lambda b: dict(std.execute(_IN_JSON, (_json(b),))),
            "sqlite3 IN (?,..)": lambda b: dict(std.execute(placeholders, b)),
        }
        expected = contenders["apsw IN (?,..)"](batches[0])
        prepare = {}
        for name, fetch in contenders.items():
            assert fetch(batches[0]) == expected, name  # same answer, and warms the cache
            prepare[name] = _each_batch(fetch, batches)
        times = _interleaved(prepare, repeats)
    us = {name: (t.wall / batch * 1e6, t.cpu / batch * 1e6) for name, t in times.items()}
    raw_best = min(us[name] for name in us if name.startswith("apsw"))
    return {
        "rows": len(ids),
        "batch": batch,
        "repeats": repeats,
        **{f"{name} us/id": w for name, (w, _) in us.items()},
        "store us/id range": (times["store"].fastest / batch * 1e6, times["store"].slowest / batch * 1e6),
        "store / raw apsw": us["store"][0] / raw_best[0],
        "store / raw apsw (cpu)": us["store"][1] / raw_best[1],
        "target": "<= 2.0",
        "met": us["store"][0] / raw_best[0] <= 2.0,
    }


def _each_batch(fetch: Callable[[list[int]], Any], batches: list[list[int]]) -> Callable[[], Timed]:
    """Prepares a run that fetches the next batch."""
    it = iter(batches)

    def prepare() -> Timed:
        batch = next(it)
        return lambda: fetch(batch)

    return prepare


def _json(ids: list[int]) -> str:
    return "[" + ",".join(map(str, ids)) + "]"


def bench_bulk_insert(rows: int = 100_000, repeats: int = 7, root: Path | None = None) -> dict[str, Any]:
    """Median rows/s of one ``bulk_insert`` of ``rows`` rows into a new shard, against raw
    ``executemany`` in one transaction (apsw and sqlite3) on the same layout and pragmas."""
    data = _rows(_ids(rows))
    with_kind = [(uid, value, 0) for uid, value in data]  # what the store writes for a str
    insert = "INSERT INTO items VALUES (?, ?, ?)"
    opened: list[Any] = []
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        # Each repeat writes a new file, created with its table before the timing starts.
        fresh = (Path(tmp) / f"f{i}.sqlite" for i in range(10**9))

        def store_run() -> Timed:
            store = ShardStore(next(fresh).with_suffix(""))
            store.bulk_insert(_SHARD, [])
            opened.append(store)
            return lambda: store.bulk_insert(_SHARD, data)

        def apsw_run() -> Timed:
            db = _apsw(next(fresh))
            opened.append(db)

            def run() -> None:
                with db:
                    db.executemany(insert, with_kind)

            return run

        def sqlite3_run() -> Timed:
            db = _sqlite3(next(fresh))
            opened.append(db)

            def run() -> None:
                db.execute("BEGIN")
                db.executemany(insert, with_kind)
                db.execute("COMMIT")

            return run

        times = _interleaved({"store": store_run, "apsw": apsw_run, "sqlite3": sqlite3_run}, repeats)
        assert opened[0].count(_SHARD) == len(data)
        for handle in opened:
            handle.close()
    rate = {name: (len(data) / t.wall, len(data) / t.cpu) for name, t in times.items()}
    return {
        "rows": len(data),
        "repeats": repeats,
        **{f"{name} rows/s": w for name, (w, _) in rate.items()},
        "store rows/s range": (len(data) / times["store"].slowest, len(data) / times["store"].fastest),
        "store / raw apsw": rate["store"][0] / rate["apsw"][0],
        "store / raw apsw (cpu)": rate["store"][1] / rate["apsw"][1],
        "target": ">= 0.5",
        "met": rate["store"][0] / rate["apsw"][0] >= 0.5,
    }


def bench_get(
    rows: int = 100_000, calls: int = 2_000, repeats: int = 21, root: Path | None = None
) -> dict[str, Any]:
    """Median µs per warm point read (one autocommit statement each)."""
    with _filled(rows, root) as (ids, store, raw, std):
        sample = random.Random(3).choices(ids, k=calls)
        sql = "SELECT value FROM items WHERE uid = ?"

        def run_store() -> None:
            get = store.get
            for uid in sample:
                get(_SHARD, uid)

        def run_raw() -> None:
            execute = raw.execute
            for uid in sample:
                execute(sql, (uid,)).fetchone()

        def run_std() -> None:
            execute = std.execute
            for uid in sample:
                execute(sql, (uid,)).fetchone()

        runs = {"store": run_store, "apsw": run_raw, "sqlite3": run_std}
        for run in runs.values():
            run()  # warm
        times = _interleaved({name: lambda r=run: r for name, run in runs.items()}, repeats)
    us = {name: (t.wall / calls * 1e6, t.cpu / calls * 1e6) for name, t in times.items()}
    return {
        "calls": calls,
        "repeats": repeats,
        **{f"{name} us/get": w for name, (w, _) in us.items()},
        "store us/get range": (times["store"].fastest / calls * 1e6, times["store"].slowest / calls * 1e6),
        "store / raw apsw": us["store"][0] / us["apsw"][0],
        "store / raw apsw (cpu)": us["store"][1] / us["apsw"][1],
    }


def run_all(rows: int = 100_000, repeats: int = 7, root: Path | None = None) -> dict[str, dict[str, Any]]:
    return {
        "get_many": bench_get_many(rows, repeats=3 * repeats, root=root),
        "bulk_insert": bench_bulk_insert(rows, repeats=repeats, root=root),
        "get": bench_get(rows, repeats=3 * repeats, root=root),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--root", type=Path, default=None, help="folder for the temporary files")
    args = parser.parse_args(argv)
    for bench, result in run_all(args.rows, args.repeats, args.root).items():
        print(bench)
        for key, value in result.items():
            shown = f"{value:>14,.2f}" if isinstance(value, float) else f"{value!s:>14}"
            print(f"  {key:>22}  {shown}")


if __name__ == "__main__":
    main()
