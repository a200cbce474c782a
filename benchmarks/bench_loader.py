"""Loader speed: rows/s against raw apsw inserting the same rows, generate + load time of a data set,
and 8 writer threads against 1 under the EFS latency model.

Run on its own with ``python benchmarks/bench_loader.py [--scale default] [--repeats 3]``.

The baseline is the floor for the same work without the loader: one apsw connection per shard,
the store's pragmas (``journal_mode=delete``, ``synchronous=full``) and layout, and the rows the
loader stored, read back in key order (prepared tuples, nothing to check or convert), committed in
transactions of ``batch`` rows as the loader commits them. Raw and loader runs alternate, so a
change in the machine's load hits both; each figure is the median of ``repeats`` runs.
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

from efs_sqlite.data import Scale, generate_dataset, read_records
from efs_sqlite.efs_model import EFSModel
from efs_sqlite.loader import default_threads, load, load_path
from efs_sqlite.model import INSURANCE
from efs_sqlite.store import ShardStore

# The store's layout (see efs_sqlite.store), written out so the baseline uses nothing of ours.
_SCHEMA = """
CREATE TABLE items(uid INTEGER PRIMARY KEY, value, kind INTEGER NOT NULL);
CREATE TABLE refs(uid INTEGER NOT NULL, pos INTEGER NOT NULL, ref INTEGER NOT NULL,
                  PRIMARY KEY (uid, pos)) WITHOUT ROWID;
"""

Rows = dict[str, tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]


def _seconds(run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _rows_of(root: Path) -> Rows:
    """Every (items, refs) row of every shard under ``root``, exactly as the loader stored them."""
    rows = {}
    for path in sorted(root.glob("*.sqlite")):
        db = apsw.Connection(str(path))
        rows[path.stem] = (
            db.execute("SELECT uid, value, kind FROM items ORDER BY uid").fetchall(),
            db.execute("SELECT uid, pos, ref FROM refs ORDER BY uid, pos").fetchall(),
        )
        db.close()
    return rows


def _raw_insert(root: Path, rows: Rows, batch: int) -> None:
    """The floor: per shard one apsw connection, the store's pragmas, a commit per ``batch`` rows."""
    for shard, (items, refs) in rows.items():
        db = apsw.Connection(str(root / f"{shard}.sqlite"))
        db.execute("PRAGMA journal_mode=delete; PRAGMA synchronous=full").fetchall()
        db.execute(_SCHEMA)
        for sql, table in (
            ("INSERT INTO items VALUES (?, ?, ?)", items),
            ("INSERT INTO refs VALUES (?, ?, ?)", refs),
        ):
            for start in range(0, len(table), batch):
                with db:
                    db.executemany(sql, table[start : start + batch])
        db.close()


def bench_loader(
    scale: str | Scale = "default", seed: int = 0, repeats: int = 3, batch: int = 10_000
) -> dict[str, Any]:
    """Generate + load ``scale`` end to end (default threads, from the compressed files), then
    loader rows/s from parsed records with 1 thread, the default and one per shard, against raw apsw
    inserting the rows the loader wrote; medians of ``repeats`` alternating runs."""
    shards = len(INSURANCE.shards())
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        data = base / "data"
        generate_s = _seconds(lambda: generate_dataset(data, scale, seed))
        first = base / "store"
        with ShardStore(first) as store:
            end_to_end = load_path(store, data, batch=batch, progress=False)
            stats = store.stats(integrity=False)
            threads = default_threads(store, shards)
        n_rows = stats["total_rows"] + stats["total_refs"]
        rows = _rows_of(first)
        records = list(read_records(data))

        def loader_run(n: int | None) -> float:
            with tempfile.TemporaryDirectory(dir=tmp) as root, ShardStore(root) as store:
                return load(store, records, threads=n, batch=batch, progress=False).seconds

        def raw_run() -> float:
            with tempfile.TemporaryDirectory(dir=tmp) as root:
                return _seconds(lambda: _raw_insert(Path(root), rows, batch))

        # The thread counts measured: 1, one per shard, and the default (one of those locally).
        counts = sorted({1, threads, shards})
        runs: dict[int | str, list[float]] = {"raw": [], **{n: [] for n in counts}}
        for _ in range(repeats):
            runs["raw"].append(raw_run())
            for n in counts:
                runs[n].append(loader_run(n))
        raw, one, default, per_shard = (statistics.median(runs[k]) for k in ("raw", 1, threads, shards))
    return {
        "scale": getattr(scale, "name", scale),
        "records": end_to_end.records,
        "rows": n_rows,
        "batch": batch,
        "generate_s": generate_s,
        "load_s": end_to_end.seconds,
        "generate_plus_load_s": generate_s + end_to_end.seconds,
        "raw_apsw_rows_per_s": n_rows / raw,
        "loader_1_thread_rows_per_s": n_rows / one,
        "default_threads": threads,
        "loader_default_rows_per_s": n_rows / default,
        "loader_per_shard_rows_per_s": n_rows / per_shard,
        "ratio_1_thread": raw / one,
        "ratio_default": raw / default,
        "ratio_per_shard": raw / per_shard,
    }


def bench_efs_threads(
    scale: str | Scale = "small", seed: int = 0, profile: str = "elastic", repeats: int = 3
) -> dict[str, Any]:
    """Load time with 1 and 8 writer threads when every file operation sleeps its EFS latency;
    medians of ``repeats`` alternating runs."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        generate_dataset(data, scale, seed)
        records = list(read_records(data))
        with ShardStore(Path(tmp) / "warm") as store:  # first-use imports out of the timing
            load(store, records[:100], progress=False)
        seconds: dict[int, list[float]] = {1: [], 8: []}
        with EFSModel(f"bench-loader-{profile}", profile=profile, sleep=True) as model:
            for run in range(repeats):
                for threads in (1, 8):
                    with ShardStore(Path(tmp) / f"t{threads}-{run}", vfs=model.name) as store:
                        seconds[threads].append(load(store, records, threads=threads, progress=False).seconds)
    one, eight = statistics.median(seconds[1]), statistics.median(seconds[8])
    return {
        "scale": getattr(scale, "name", scale),
        "profile": profile,
        "records": len(records),
        "threads_1_s": one,
        "threads_8_s": eight,
        "speedup_8_vs_1": one / eight,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="default")
    parser.add_argument("--efs-scale", default="small")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()
    targets = {
        "ratio_1_thread": 0.5,
        "ratio_default": 0.5,
        "ratio_per_shard": 0.5,
        "generate_plus_load_s": 120.0,
        "speedup_8_vs_1": 6.0,
    }
    results = bench_loader(args.scale, repeats=args.repeats, batch=args.batch)
    results.update(
        {f"efs_{k}": v for k, v in bench_efs_threads(args.efs_scale, repeats=args.repeats).items()}
    )
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
