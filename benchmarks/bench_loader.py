"""Loader speed: rows/s against raw apsw inserting the same rows, generate + load time of a data set,
and 8 shard threads against 1 under the EFS latency model.

Run on its own with ``python benchmarks/bench_loader.py [--scale default] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apsw

from efs_sqlite.data import generate_dataset, read_records
from efs_sqlite.efs import EFSModel
from efs_sqlite.loader import load, load_path
from efs_sqlite.store import ShardStore

# The store's layout (see efs_sqlite.store), written out so the baseline uses nothing of ours.
_SCHEMA = """
CREATE TABLE items(uid INTEGER PRIMARY KEY, value, kind INTEGER NOT NULL);
CREATE TABLE refs(uid INTEGER NOT NULL, pos INTEGER NOT NULL, ref INTEGER NOT NULL,
                  PRIMARY KEY (uid, pos)) WITHOUT ROWID;
"""


def _seconds(run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _rows_of(root: Path) -> dict[str, tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """Every (items, refs) row of every shard under ``root``, exactly as the loader stored them."""
    rows = {}
    for path in sorted(root.glob("*.sqlite")):
        db = apsw.Connection(str(path))
        rows[path.stem] = (
            db.execute("SELECT uid, value, kind FROM items ORDER BY rowid").fetchall(),
            db.execute("SELECT uid, pos, ref FROM refs").fetchall(),
        )
        db.close()
    return rows


def _raw_insert(root: Path, rows: dict[str, tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]) -> None:
    """The floor: one apsw connection and one transaction per shard, same pragmas as the store."""
    for shard, (items, refs) in rows.items():
        db = apsw.Connection(str(root / f"{shard}.sqlite"))
        db.execute("PRAGMA journal_mode=delete; PRAGMA synchronous=full").fetchall()
        db.execute(_SCHEMA)
        with db:
            db.executemany("INSERT INTO items VALUES (?, ?, ?)", items)
            db.executemany("INSERT INTO refs VALUES (?, ?, ?)", refs)
        db.close()


def bench_loader(scale: str = "default", seed: int = 0, repeats: int = 3) -> dict[str, Any]:
    """Generate + load ``scale`` end to end, then loader rows/s from parsed records (1 thread and
    one per shard) against raw apsw inserting the rows the loader wrote; medians of ``repeats``."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        data = base / "data"
        generate_s = _seconds(lambda: generate_dataset(data, scale, seed))
        first = base / "store"
        with ShardStore(first) as store:
            end_to_end = load_path(store, data, progress=False)
            stats = store.stats(integrity=False)
        n_rows = stats["total_rows"] + stats["total_refs"]
        rows = _rows_of(first)
        records = list(read_records(data))

        def loader_run(threads: int | None) -> float:
            with tempfile.TemporaryDirectory(dir=tmp) as root, ShardStore(root) as store:
                return load(store, records, threads=threads, progress=False).seconds

        def raw_run() -> float:
            with tempfile.TemporaryDirectory(dir=tmp) as root:
                return _seconds(lambda: _raw_insert(Path(root), rows))

        raw = statistics.median(raw_run() for _ in range(repeats))
        one = statistics.median(loader_run(1) for _ in range(repeats))
        per_shard = statistics.median(loader_run(None) for _ in range(repeats))
    return {
        "scale": scale,
        "records": end_to_end.records,
        "rows": n_rows,
        "generate_s": generate_s,
        "load_s": end_to_end.seconds,
        "generate_plus_load_s": generate_s + end_to_end.seconds,
        "raw_apsw_rows_per_s": n_rows / raw,
        "loader_1_thread_rows_per_s": n_rows / one,
        "loader_per_shard_rows_per_s": n_rows / per_shard,
        "ratio_1_thread": raw / one,
        "ratio_per_shard": raw / per_shard,
    }


def bench_efs_threads(scale: str = "small", seed: int = 0, profile: str = "elastic") -> dict[str, Any]:
    """Load time with 1 and 8 shard threads when every file operation sleeps its EFS latency."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        generate_dataset(data, scale, seed)
        records = list(read_records(data))
        seconds = {}
        with EFSModel(f"bench-loader-{profile}", profile=profile, sleep=True) as model:
            for threads in (1, 8):
                with ShardStore(Path(tmp) / f"t{threads}", vfs=model.name) as store:
                    seconds[threads] = load(store, records, threads=threads, progress=False).seconds
    return {
        "scale": scale,
        "profile": profile,
        "records": len(records),
        "threads_1_s": seconds[1],
        "threads_8_s": seconds[8],
        "speedup_8_vs_1": seconds[1] / seconds[8],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="default")
    parser.add_argument("--efs-scale", default="small")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    targets = {
        "ratio_per_shard": 0.5,
        "ratio_1_thread": 0.5,
        "generate_plus_load_s": 120.0,
        "speedup_8_vs_1": 6.0,
    }
    results = {**bench_loader(args.scale, repeats=args.repeats)}
    results.update({f"efs_{k}": v for k, v in bench_efs_threads(args.efs_scale).items()})
    for key, value in results.items():
        target = targets.get(key.removeprefix("efs_"))
        met = ""
        if target is not None and isinstance(value, float):
            ok = value <= target if key.endswith("_s") else value >= target
            met = f"  (target {'<=' if key.endswith('_s') else '>='} {target:g}: {'met' if ok else 'MISSED'})"
        shown = f"{value:,.2f}" if isinstance(value, float) else str(value)
        print(f"{key:>32}  {shown}{met}")


if __name__ == "__main__":
    main()
