"""Run every benchmark, against its baselines and peers, in one run; write ``bench.json`` and
``bench.md`` and print the table. Every target of the issues is checked; a missed one is
printed as MISSED.

    python -m benchmarks                  # the default run (a few minutes)
    python -m benchmarks --quick          # tiny sizes, for the smoke test (no meaningful numbers)
    python -m benchmarks --full           # adds generate + load of the ``default`` data set (slow)
    python -m benchmarks --only store,uid # some sections only
    python -m benchmarks --readme [--from runs/bench.json]   # rewrite README's performance section
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.report import Row, Target, markdown, readme_section, row, update_readme
from efs_sqlite.data import Scale

REPO = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much each section does."""

    ids: int = 1_000_000
    id_repeats: int = 5
    store_rows: int = 100_000
    store_batch: int = 1_000
    store_calls: int = 2_000
    store_repeats: int = 7
    graphql_requests: int = 2_000
    graphql_baseline_requests: int = 300
    graphql_claims: int = 500
    graphql_efs_requests: int = 20
    loader_scale: str | Scale = "small"
    loader_repeats: int = 5
    efs_threads_scale: str | Scale = "small"
    efs_repeats: int = 3
    cold_processes: int = 15
    kv_keys: int = 10_000
    writer_ops: int = 200
    writer_repeats: int = 3
    full: bool = False


# Small enough for a smoke test; every code path runs, no figure means anything.
_TINY = Scale("tiny", claims=200, parties=80, hubs=1, hub_claims=50)
QUICK = Sizes(
    ids=20_000,
    id_repeats=3,
    store_rows=2_000,
    store_batch=100,
    store_calls=200,
    store_repeats=3,
    graphql_requests=100,
    graphql_baseline_requests=20,
    graphql_claims=20,
    graphql_efs_requests=10,
    loader_scale=_TINY,
    loader_repeats=1,
    efs_threads_scale=_TINY,
    efs_repeats=1,
    cold_processes=2,
    kv_keys=300,
    writer_ops=10,
    writer_repeats=1,
)
DEFAULT = Sizes()
FULL = dataclasses.replace(DEFAULT, loader_scale="default", loader_repeats=3, full=True)


# -- sections: each runs its benchmarks and turns the results into rows ------------------------
# Each imports its benchmark module itself, so that --readme and --only need none of the others.


def uid_section(s: Sizes) -> tuple[dict[str, Any], list[Row]]:
    from benchmarks import bench_uid

    r = bench_uid.bench_generate(s.ids, s.id_repeats)
    rows = [
        row(
            "uid",
            "Small UID generate(), one thread",
            r["generate_ids_per_s"],
            "ids/s",
            higher_is_better=True,
            value_range=(r["generate_ids_per_s_min"], r["generate_ids_per_s_max"]),
            baseline=("bare clock-and-shift loop", r["baseline_ids_per_s"]),
            targets=[Target("value", ">=", 1_000_000)],
            note=f"{r['n']:,} ids, median of {r['repeats']} repeats taking turns with the baseline loop; "
            f"{r['generate_ids_per_cpu_s']:,.0f} ids per second of process CPU time; "
            f"encode {r['encode_ns_per_id']:.0f} ns/id, decode {r['decode_ns_per_id']:.0f} ns/id.",
        )
    ]
    return r, rows


def store_section(s: Sizes) -> tuple[dict[str, Any], list[Row]]:
    from benchmarks import bench_store

    r = {
        "get": bench_store.bench_get(s.store_rows, s.store_calls, repeats=3 * s.store_repeats),
        "get_many": bench_store.bench_get_many(s.store_rows, s.store_batch, repeats=3 * s.store_repeats),
        "bulk_insert": bench_store.bench_bulk_insert(s.store_rows, repeats=s.store_repeats),
    }
    get, many, insert = r["get"], r["get_many"], r["bulk_insert"]
    half_raw = [Target("ratio", ">=", 0.5)]

    # The ratio to raw apsw by process CPU time too: steadier when other processes share the machine.
    by_cpu = {
        "get": 1 / get["store / raw apsw (cpu)"],
        "get_many": 1 / many["store / raw apsw (cpu)"],
        "bulk_insert": insert["store / raw apsw (cpu)"],
    }

    def best(result: dict[str, Any], prefix: str, suffix: str) -> tuple[str, float]:
        """The fastest variant of a baseline, named."""
        name = min((k for k in result if k.startswith(prefix) and k.endswith(suffix)), key=result.get)
        return f"raw {name.removesuffix(suffix)}", result[name]

    rows = []
    for baseline, checked in (("apsw", True), ("sqlite3", False)):
        label = {"apsw": "raw apsw", "sqlite3": "stdlib sqlite3"}[baseline]
        cpu = {
            k: f" By process CPU time the ratio is {v:.2f}x." if checked else "" for k, v in by_cpu.items()
        }
        rows += [
            row(
                "store",
                f"ShardStore.get, warm point read, vs {label}",
                get["store us/get"],
                "µs",
                higher_is_better=False,
                value_range=get["store us/get range"],
                baseline=(f"raw {baseline}", get[f"{baseline} us/get"]),
                note=f"{get['calls']:,} autocommit reads per repeat out of {s.store_rows:,} rows, "
                f"median of {get['repeats']} repeats in turns." + cpu["get"],
            ),
            row(
                "store",
                f"ShardStore.get_many, per id, vs {label}",
                many["store us/id"],
                "µs",
                higher_is_better=False,
                value_range=many["store us/id range"],
                baseline=best(many, baseline, " us/id"),
                targets=[Target("ratio", ">=", 0.5, "per id <= 2x raw (ratio >= 0.5x)")] if checked else [],
                note=f"{many['batch']:,} ids (10% absent) out of {many['rows']:,}, "
                f"median of {many['repeats']} repeats; the baseline is its fastest statement form."
                + cpu["get_many"],
            ),
            row(
                "store",
                f"ShardStore.bulk_insert vs {label}",
                insert["store rows/s"],
                "rows/s",
                higher_is_better=True,
                value_range=insert["store rows/s range"],
                baseline=(f"raw {baseline} executemany", insert[f"{baseline} rows/s"]),
                targets=half_raw if checked else [],
                note=f"{insert['rows']:,} rows in one transaction into a new shard, synchronous=FULL, "
                f"median of {insert['repeats']} repeats." + cpu["bulk_insert"],
            ),
        ]
    return r, rows


def graphql_section(s: Sizes) -> tuple[dict[str, Any], list[Row]]:
    from benchmarks import bench_graphql

    r = bench_graphql.bench_graphql(
        s.graphql_requests, s.graphql_baseline_requests, s.graphql_claims, s.graphql_efs_requests
    )
    ours = next(x for x in r["rows"] if x["path"].startswith("ours: Lambda handler"))
    seed = next(x for x in r["rows"] if x["path"].startswith("seed-style"))
    note = (
        f"claim + 5 fields + its 10 parties x 3 fields as a Function URL event, in process, on "
        f"local disk; {ours['requests']:,} requests (seed-style {seed['requests']:,}) in turns."
    )
    rows = [
        row(
            "graphql",
            "benchmark request via the Lambda handler, warm",
            ours["p50_ms"],
            "ms",
            higher_is_better=False,
            p99=ours["p99_ms"],
            baseline=("seed-style path", seed["p50_ms"]),
            targets=[Target("value", "<=", r["target_p50_ms"]), Target("ratio", ">=", r["target_speedup"])],
            note=note,
        ),
        row(
            "graphql",
            "benchmark request via the Lambda handler, process CPU",
            ours["cpu_p50_ms"],
            "ms",
            higher_is_better=False,
            p99=ours["cpu_p99_ms"],
            baseline=("seed-style path", seed["cpu_p50_ms"]),
            note="CPU time per request: steadier than wall time when other processes share the machine.",
        ),
    ]
    if r.get("syscalls"):
        calls = r["syscalls"]
        kinds = ", ".join(f"{kind} {n:g}" for kind, n in calls["ours"].items())
        rows.append(
            row(
                "graphql",
                "file-system syscalls of the earlier system's claim query via the Lambda handler, warm",
                sum(calls["ours"].values()),
                "syscalls",
                higher_is_better=False,
                baseline=("seed-style path", sum(calls["seed"].values())),
                targets=[Target("value", "<=", r["target_syscalls"])],
                note=f"claim(id) {{ id claimIdentifier claimTypeCode parties {{ id partyIdentifier }} "
                f"transactions {{ id amount financialTransactionIdentifier }} }}, counted by "
                f"strace -e trace=%file,%desc (the event loop's epoll calls left out) over 10 warm "
                f"requests of a fresh process on local disk: {kinds}.",
            )
        )
    if r.get("efs"):
        efs = r["efs"]
        at_once = next(x for x in r["rows"] if x["path"].endswith("parallel_reads"))
        rows.append(
            row(
                "graphql",
                "benchmark request on the EFS model (Elastic, sleeping), parallel_reads",
                efs["parallel_p50_ms"],
                "ms",
                higher_is_better=False,
                p99=at_once["p99_ms"],
                baseline=("shards read one after another", efs["sequential_p50_ms"]),
                note=f"GraphQLAPI.execute on a store whose every file operation sleeps its modelled "
                f"Elastic latency; {at_once['requests']:,} requests each way, in turns; the sequential "
                f"path's round trips add up to {efs['modelled_sequential_ms']:.0f} ms modelled.",
            )
        )
    r["backends"] = both = _backends_row()
    rows += _dynamodb_rows(both)
    return r, rows


def _backends_row() -> dict[str, Any]:
    from efs_sqlite.experiments.backends import backend_comparison

    (both,) = backend_comparison(["benchmark"])
    return both


def _dynamodb_rows(both: dict[str, Any]) -> list[Row]:
    """The benchmark request on the DynamoDB backend, each figure beside EFS's for the same request."""
    where = (
        "GraphQLAPI.execute on a DynamoStore of the in-process moto server (loopback), warm, "
        "counted by the store's call log; modelled, deterministic"
    )
    efs = (
        f"EFS: the same request through the EFS model (rollback journal, Linux NFS client, "
        f"{both['efs_profile']}): {both['efs_nfs_requests']} NFS requests, "
        f"{both['efs_latency_low_ms']:.1f} – {both['efs_latency_high_ms']:.1f} ms low to high"
    )
    return [
        row(
            "graphql",
            "benchmark request on DynamoDB, modelled latency from the call log",
            both["dynamodb_p50_ms"],
            "ms",
            higher_is_better=False,
            p99=both["dynamodb_p99_ms"],
            baseline=(f"EFS {both['efs_profile'].title()} model, critical path", both["efs_latency_ms"]),
            note=f"{where}: per call type DeBrie's p50/p99 (reads timed as the writes of as many "
            f"items, docs/SOURCES.md#dynamodb-read-latency), the calls sent together counted once. {efs}.",
        ),
        row(
            "graphql",
            "benchmark request on DynamoDB, calls",
            both["dynamodb_calls"],
            "calls",
            higher_is_better=False,
            baseline=("EFS model: NFS requests", both["efs_nfs_requests"]),
            note=f"{where}: {both['dynamodb_calls_by_operation']}. {efs}.",
        ),
        row(
            "graphql",
            "benchmark request on DynamoDB, read units",
            both["dynamodb_rru"],
            "RRU",
            higher_is_better=False,
            note=f"{where}: eventually consistent reads, units from item sizes by AWS's rules "
            f"(docs/SOURCES.md#dynamodb-capacity); {both['dynamodb_wru']:g} WRU (a read writes nothing).",
        ),
    ]


def loader_section(s: Sizes) -> tuple[dict[str, Any], list[Row]]:
    from benchmarks import bench_loader

    r = {
        "local": bench_loader.bench_loader(s.loader_scale, repeats=s.loader_repeats),
        "efs": bench_loader.bench_efs_threads(s.efs_threads_scale),
    }
    local, efs = r["local"], r["efs"]
    scale = getattr(s.loader_scale, "name", s.loader_scale)
    note = f"{scale} scale, {local['rows']:,} rows, local disk, median of {s.loader_repeats} repeats."
    rows = [
        row(
            "loader",
            f"load rows/s, {label}",
            local[f"loader_{key}_rows_per_s"],
            "rows/s",
            higher_is_better=True,
            baseline=("raw apsw, same rows", local["raw_apsw_rows_per_s"]),
            targets=targets,
            note=note,
        )
        for key, label, targets in (
            ("default", "default threads (one writer on local disk)", [Target("ratio", ">=", 0.5)]),
            ("per_shard", "one thread per shard", []),
        )
    ]
    rows.append(
        row(
            "loader",
            f"load under the EFS model ({efs['profile']}), 8 threads",
            efs["threads_8_s"],
            "s",
            higher_is_better=False,
            baseline=("1 thread", efs["threads_1_s"]),
            targets=[Target("ratio", ">=", 6.0)],
            note=f"{getattr(efs['scale'], 'name', efs['scale'])} scale, {efs['records']:,} records; every "
            "file operation sleeps its modelled latency; one run each.",
        )
    )
    if s.full:
        rows.append(
            row(
                "loader",
                f"generate + load, {scale} scale",
                local["generate_plus_load_s"],
                "s",
                higher_is_better=False,
                baseline=("raw apsw inserting the same rows", local["rows"] / local["raw_apsw_rows_per_s"]),
                targets=[Target("value", "<=", 120.0)],
                note=f"generate {local['generate_s']:.1f} s + load {local['load_s']:.1f} s "
                f"({local['records']:,} records); the baseline is the insert floor alone.",
            )
        )
    return r, rows


def efs_section(s: Sizes) -> tuple[dict[str, Any], list[Row]]:
    from benchmarks import bench_peers

    r = bench_peers.bench_efs_model(s.efs_repeats)
    rows = []
    for case, label, targets in (
        ("warm", "warm", [Target("value", "<=", 15.0)]),
        ("cold", "first request of a new environment", []),
    ):
        m = r[case]
        rows.append(
            row(
                "efs model",
                f"benchmark request, modelled Elastic latency, {label}",
                m["latency_parallel_ms"],
                "ms",
                higher_is_better=False,
                baseline=("DynamoDB, modelled", m["dynamodb_latency_ms"]),
                targets=targets,
                note=f"modelled, deterministic: {m['nfs_requests']} NFS requests, {m['db_opens']} opens, "
                f"{m['shards_touched']} shards in {m['rounds']} dependent rounds, the shards of a round "
                f"read at once inside read transactions begun on every shard at once (GraphQLAPI's "
                f"parallel_reads with its lock-ahead, on by default on EFS), "
                f"at most {m['max_lock_calls_per_shard']} lock call(s) per shard; "
                f"{m['latency_ms']:.0f} ms if read one after another; "
                f"${m['usd_per_million_efs_elastic']:.2f} per million on Elastic vs "
                f"${m['usd_per_million_dynamodb']:.2f} on DynamoDB "
                f"({m['dynamodb_items_read']} items).",
            )
        )
    return r, rows


def cold_start_section(s: Sizes) -> tuple[dict[str, Any], list[Row]]:
    from benchmarks import bench_peers

    r = bench_peers.bench_cold_start(s.cold_processes)
    n = f"{r['processes']} fresh processes"
    rows = [
        row(
            "cold start",
            "new process: import the GraphQL handler + first request",
            r["wall_ms"]["median"],
            "ms",
            higher_is_better=False,
            value_range=(r["wall_ms"]["min"], r["wall_ms"]["max"]),
            baseline=('python -c "pass"', r["bare_python_ms"]["median"]),
            targets=[Target("value", "<=", 120.0)],
            note=f"spawn to exit, {n} taking turns with the baseline; of which import of "
            f"efs_sqlite/lambdas/graphql/handler.py {r['import_ms']['median']:.0f} ms (median).",
        ),
        row(
            "cold start",
            "first request in the new process",
            r["first_request_ms"]["median"],
            "ms",
            higher_is_better=False,
            value_range=(r["first_request_ms"]["min"], r["first_request_ms"]["max"]),
            baseline=("second request, same process", r["second_request_ms"]["median"]),
            note=f"{n}; the first request opens each shard and parses and validates the document.",
        ),
    ]
    return r, rows


def diskcache_section(s: Sizes) -> tuple[dict[str, Any], list[Row]]:
    from benchmarks import bench_peers

    r = bench_peers.bench_diskcache(s.kv_keys)
    rows = []
    for ours, theirs, note in (
        ("ShardStore.get", "diskcache Cache.get", "warm, keys read in random order."),
        (
            "ShardStore.put",
            "diskcache Cache.set",
            "ShardStore's defaults: rollback journal, an fsync per put.",
        ),
        (
            "ShardStore.put (WAL, synchronous=normal)",
            "diskcache Cache.set",
            "ShardStore with diskcache's own durability settings (WAL, synchronous=NORMAL).",
        ),
    ):
        a, b = r[f"{ours} us"], r[f"{theirs} us"]
        rows.append(
            row(
                "diskcache peer",
                f"{ours} vs {theirs}",
                a["median"],
                "µs",
                higher_is_better=False,
                p99=a["p99"],
                baseline=(theirs, b["median"]),
                note=f"{r['keys']:,} Small UID keys, string values, every call timed; {note} "
                f"{theirs} p99 {b['p99']:.0f} µs.",
            )
        )
    return r, rows


def writers_section(s: Sizes) -> tuple[dict[str, Any], list[Row]]:
    from benchmarks import bench_writers

    r = bench_writers.bench_writers(ops=s.writer_ops, repeats=s.writer_repeats)
    ours, default = r["store"], r["sqlite"]
    baseline = "SQLite's busy timeout (raw apsw)"
    note = (
        f"{r['writers']} processes x {r['ops']:,} one-row upserts to one shard, all at once, 1 ms apart; "
        f"local disk, synchronous=FULL; the run of median throughput of {r['repeats']}; every write of "
        "every writer completed in both."
    )
    rows = [
        row(
            "writers",
            f"{r['writers']} writer processes on one shard, jittered busy wait",
            ours["writes_per_s"],
            "writes/s",
            higher_is_better=True,
            baseline=(baseline, default["writes_per_s"]),
            note=note,
        ),
        row(
            "writers",
            "longest wait of one write",
            ours["longest_wait_ms"],
            "ms",
            higher_is_better=False,
            value_range=(ours["p50_wait_ms"], ours["longest_wait_ms_max"]),
            baseline=(baseline, default["longest_wait_ms"]),
            targets=[Target("value", "<=", 1000.0, "<= 1 s: no writer starves")],
            note=f"p50 {ours['p50_wait_ms']:.1f} ms, p99 {ours['p99_wait_ms']:.0f} ms "
            f"(baseline: p50 {default['p50_wait_ms']:.1f}, p99 {default['p99_wait_ms']:.0f}); the range is "
            "p50 to the longest over all repeats.",
        ),
        row(
            "writers",
            "slowest writer's time over the fastest's",
            ours["slowest_over_fastest"],
            "x",
            higher_is_better=False,
            baseline=(baseline, default["slowest_over_fastest"]),
            note="1 when every writer keeps pace; a starved writer makes it large.",
        ),
    ]
    return r, rows


SECTIONS: dict[str, Callable[[Sizes], tuple[dict[str, Any], list[Row]]]] = {
    "uid": uid_section,
    "store": store_section,
    "graphql": graphql_section,
    "loader": loader_section,
    "efs": efs_section,
    "cold_start": cold_start_section,
    "diskcache": diskcache_section,
    "writers": writers_section,
}


# -- the run --------------------------------------------------------------------------------------


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run(sizes: Sizes, only: list[str], command: str) -> dict[str, Any]:
    """Run the ``only`` sections (all when empty); a section that fails is reported, not fatal."""
    started, t0, load_before = datetime.now(UTC), time.perf_counter(), os.getloadavg()[0]
    rows: list[Row] = []
    results: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    for name, section in SECTIONS.items():
        if only and name not in only:
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        try:
            results[name], new = section(sizes)
        except Exception as exc:
            errors.append({"section": name, "error": repr(exc), "traceback": traceback.format_exc()})
            print(errors[-1]["traceback"], file=sys.stderr)
            continue
        rows += new
        print(f"  {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
    return {
        "meta": {
            "command": command,
            "started": started.isoformat(timespec="seconds"),
            "seconds": time.perf_counter() - t0,
            "commit": _commit(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": [load_before, os.getloadavg()[0]],
            "sizes": dataclasses.asdict(sizes),
        },
        "rows": rows,
        "results": results,
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    size.add_argument("--full", action="store_true", help="also generate + load the default data set")
    parser.add_argument("--out", type=Path, default=REPO / "runs", help="folder for bench.json and bench.md")
    parser.add_argument("--only", default="", help=f"comma-separated sections of: {', '.join(SECTIONS)}")
    parser.add_argument("--readme", action="store_true", help="only rewrite README's section from --from")
    parser.add_argument("--from", dest="source", type=Path, default=REPO / "runs" / "bench.json")
    parser.add_argument("--readme-path", type=Path, default=REPO / "README.md", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.readme:
        if not args.source.is_file():
            parser.error(f"{args.source} does not exist: run `make bench` first")
        try:
            update_readme(
                args.readme_path, readme_section(json.loads(args.source.read_text(encoding="utf-8")))
            )
        except (ValueError, OSError) as exc:
            parser.error(str(exc))
        print(f"updated the performance section of {args.readme_path} from {args.source}")
        return 0

    only = [name for name in args.only.split(",") if name]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")
    sizes = QUICK if args.quick else FULL if args.full else DEFAULT
    command = "python -m benchmarks" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    result = run(sizes, only, command)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(result, indent=1, default=str) + "\n", encoding="utf-8")
    report = markdown(result)
    (args.out / "bench.md").write_text(report, encoding="utf-8")
    print(report)
    print(f"wrote {args.out / 'bench.json'} and {args.out / 'bench.md'}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
