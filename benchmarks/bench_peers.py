"""Cold start and peers: the GraphQL Lambda handler in fresh processes against a bare interpreter;
``ShardStore`` against python-diskcache on the same keys and values; the benchmark request's
modelled EFS latency against DynamoDB's.

Run on its own with ``python -m benchmarks.bench_peers`` (from the repository root).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import diskcache

from benchmarks.report import spread
from efs_sqlite.aws.build import handler_file
from efs_sqlite.aws.fakes import function_url_event
from efs_sqlite.experiments import BENCHMARK_QUERY, benchmark_graph, graphql_request_ops
from efs_sqlite.store import ShardStore
from efs_sqlite.uid import generate

# What the Lambda runtime does at a cold start: import the handler module (which opens the store
# and builds the app), then serve the first event. The second event shows the warm cost beside it.
_CHILD = """
import time
start = time.perf_counter()
import json, sys
sys.path.insert(0, sys.argv[1])
import handler
imported = time.perf_counter()
event = json.loads(sys.argv[2])
first = handler.handler(event, None)
answered = time.perf_counter()
second = handler.handler(event, None)
again = time.perf_counter()
print(json.dumps({
    "import_s": imported - start, "first_s": answered - imported, "second_s": again - answered,
    "responses": [first, second],
}))
"""


def _run(command: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Wall seconds from spawn to exit, and the finished process; raise on failure."""
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{command[:2]} exited with {done.returncode}: {done.stderr[-2000:]}")
    return seconds, done


def bench_cold_start(processes: int = 15, root: Path | None = None) -> dict[str, Any]:
    """Spawn-to-exit wall time of a fresh ``python -c`` that imports ``efs_sqlite/lambdas/graphql/handler.py``
    (``MOUNT_PATH`` on a store holding the benchmark graph) and answers the benchmark request as a
    Function URL event, against ``python -c "pass"`` taking turns with it; in ms, over
    ``processes`` runs each after one unmeasured run (bytecode and OS file cache warm, as on a
    Lambda whose package was read once)."""
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        mount = Path(tmp) / "mnt"
        with ShardStore(mount) as store:
            variables = benchmark_graph(store)
        event = function_url_event({"query": BENCHMARK_QUERY, "variables": variables})
        env = {**os.environ, "MOUNT_PATH": str(mount)}
        cold = [sys.executable, "-c", _CHILD, str(handler_file("graphql").parent), json.dumps(event)]
        bare = [sys.executable, "-c", "pass"]
        wall: dict[str, list[float]] = {"handler": [], "bare": []}
        inside: dict[str, list[float]] = {"import": [], "first": [], "second": []}
        for i in range(processes + 1):
            seconds, done = _run(cold, env)
            reported = json.loads(done.stdout)
            for response in reported["responses"]:
                if response["statusCode"] != 200 or "errors" in json.loads(response["body"]):
                    raise RuntimeError(f"the cold-start request failed: {response}; {done.stderr[-2000:]}")
            bare_seconds, _ = _run(bare, env)
            if i:  # the first pair is the warm-up
                wall["handler"].append(seconds * 1e3)
                wall["bare"].append(bare_seconds * 1e3)
                for key in inside:
                    inside[key].append(reported[f"{key}_s"] * 1e3)
    return {
        "processes": processes,
        "wall_ms": spread(wall["handler"]),
        "bare_python_ms": spread(wall["bare"]),
        "import_ms": spread(inside["import"]),
        "first_request_ms": spread(inside["first"]),
        "second_request_ms": spread(inside["second"]),
    }


def bench_diskcache(keys: int = 10_000, rounds: int = 10, root: Path | None = None) -> dict[str, Any]:
    """µs per call of ``ShardStore.put``/``get`` and ``diskcache.Cache.set``/``get`` on the same
    ``keys`` Small UIDs and string values, each call timed; the contenders take turns in
    ``rounds`` blocks of keys. ShardStore runs twice: with its defaults (rollback journal,
    ``synchronous=full``: an fsync per put) and with diskcache's defaults (WAL, ``synchronous=normal``)."""
    ids = [generate() for _ in range(keys)]
    codes = ("MOTOR", "HOME", "TRAVEL", "HEALTH", "LIABILITY")
    values = {uid: f"{codes[i % 5]}-{i:05d}" for i, uid in enumerate(ids)}
    readback = random.Random(4).sample(ids, len(ids))
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        store = ShardStore(Path(tmp) / "store")
        store_wal = ShardStore(Path(tmp) / "store-wal", journal_mode="wal", synchronous="normal")
        cache = diskcache.Cache(str(Path(tmp) / "diskcache"))
        store_wal.put("kv", ids[0], values[ids[0]])  # opens the shard before timing, as for the others
        store.put("kv", ids[0], values[ids[0]])
        cache.set(ids[0], values[ids[0]])
        writers: dict[str, Callable[[int], Any]] = {
            "ShardStore.put": lambda uid: store.put("kv", uid, values[uid]),
            "ShardStore.put (WAL, synchronous=normal)": lambda uid: store_wal.put("kv", uid, values[uid]),
            "diskcache Cache.set": lambda uid: cache.set(uid, values[uid]),
        }
        readers: dict[str, Callable[[int], Any]] = {
            "ShardStore.get": lambda uid: store.get("kv", uid),
            "diskcache Cache.get": cache.get,
        }
        us = {**_timed_turns(writers, ids, rounds), **_timed_turns(readers, readback, rounds)}
        for name, read in readers.items():
            if any(read(uid) != values[uid] for uid in ids):
                raise AssertionError(f"{name} did not read back what was written")
        store.close()
        store_wal.close()
        cache.close()
    return {"keys": keys, **{f"{name} us": spread(samples) for name, samples in us.items()}}


def _timed_turns(
    calls: dict[str, Callable[[int], Any]], keys: list[int], rounds: int
) -> dict[str, list[float]]:
    """µs of each call on every key; the contenders take turns block by block, in rotating order."""
    out: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    size = -(-len(keys) // rounds)
    clock = time.perf_counter
    for r, start in enumerate(range(0, len(keys), size)):
        block = keys[start : start + size]
        for name in names[r % len(names) :] + names[: r % len(names)]:
            call, samples = calls[name], out[name]
            for uid in block:
                t = clock()
                call(uid)
                samples.append((clock() - t) * 1e6)
    return out


def bench_efs_model(repeats: int = 3) -> dict[str, Any]:
    """The benchmark request through the EFS model under Elastic latency, warm and cold:
    modelled latency (the critical path as ``GraphQLAPI(parallel_reads=True)`` makes the reads:
    every shard's read transaction begun at once, each round's shards read at once inside them;
    and the sum, every round trip one after another),
    operations, and the modelled DynamoDB equivalent. Deterministic."""
    keep = (
        "latency_ms",
        "latency_parallel_ms",
        "rounds",
        "nfs_requests",
        "db_opens",
        "shards_touched",
        "max_lock_calls_per_shard",
        "dynamodb_latency_ms",
        "dynamodb_items_read",
        "usd_per_million_efs_elastic",
        "usd_per_million_dynamodb",
    )
    rows = graphql_request_ops(profiles=("elastic",), repeats=repeats)
    return {"warm" if not r["cold"] else "cold": {k: r.get(k) for k in keep} for r in rows}


if __name__ == "__main__":
    for bench in (bench_efs_model, bench_diskcache, bench_cold_start):
        print(bench.__name__, json.dumps(bench(), indent=1))
