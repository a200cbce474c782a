"""GraphQL request latency through the Lambda handler, against a seed-style path in the same run.

The request is "a claim with 5 fields, and its 10 parties with 3 fields each", sent as a warm
Lambda Function URL invocation to ``efs_sqlite/lambdas/graphql/handler.py`` in process, on a store on local
disk. The baseline rebuilds, here and only here, the earlier system's read path on the same shard
files and the same Starlette + Mangum stack: two new SQLite connections per field read with
``CREATE TABLE IF NOT EXISTS`` and a commit, the document parsed and validated on every request,
no batching, and reference lists read whole.

The paths take turns in rounds so that they share whatever else the machine is doing; besides
wall-clock percentiles the table gives each request's process CPU time, which other processes
disturb less.

Two more rows run the same request on a store opened through the EFS model with the Elastic
profile *sleeping* each modelled round trip (``EFSModel(profile="elastic", sleep=True)``), with
``GraphQLAPI(parallel_reads=False)`` (one shard after another) and ``parallel_reads=True`` (every
shard's read transaction begun at once, then the shards of each level read at once inside them,
one thread each), also in turns: wall-clock time there is dominated by the injected network waits,
which is what locking ahead and reading a level concurrently are meant to overlap.

A last pair counts the file-system system calls of one warm request of the earlier system's own
question (:data:`SYSCALL_QUERY`: a claim, its parties and its transactions) through each handler,
with ``strace`` (when it is installed and may trace) on a fresh process that answers every claim
once, then the measured requests between two marker calls.

Run on its own with ``python benchmarks/bench_graphql.py [--requests 2000] [--claims 500]
[--efs-requests 20]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import graphene
from mangum import Mangum
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from efs_sqlite.aws.fakes import LambdaContext, function_url_event, import_handler
from efs_sqlite.efs_model import EFSModel
from efs_sqlite.graphql import GraphQLAPI
from efs_sqlite.store import Ref, ShardStore
from efs_sqlite.uid import encode, generate

TARGET_P50_MS = 1.0
TARGET_SPEEDUP = 20.0
TARGET_SYSCALLS = 21
_CONTEXT = LambdaContext("bench")

QUERY = """query($id: ID!) { claim(id: $id) {
  id claimIdentifier claimTypeCode timestamp transactionsConnection { totalCount }
  partiesConnection(first: 10) { edges { node { id partyIdentifier timestamp } } } } }"""
# The same question in the earlier schema, where lists were plain lists.
SEED_QUERY = """query($id: ID!) { claim(id: $id) {
  id claimIdentifier claimTypeCode timestamp transactions { id }
  parties { id partyIdentifier timestamp } } }"""
# The earlier system's own question, the same in both schemas: its syscalls are counted.
SYSCALL_QUERY = """query($id: ID!) { claim(id: $id) { id claimIdentifier claimTypeCode
  parties { id partyIdentifier } transactions { id amount financialTransactionIdentifier } } }"""


def build_store(root: Path, claims: int) -> list[int]:
    """``claims`` claims, each with 10 parties of its own and 5 transactions; return the claim ids."""
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    shards: dict[str, list[tuple[int, Any]]] = {}
    lists: dict[str, list[tuple[int, list[int]]]] = {}

    def put(shard: str, uid: int, value: Any) -> None:
        shards.setdefault(shard, []).append((uid, value))

    claim_ids = []
    for c in range(claims):
        claim = generate()
        claim_ids.append(claim)
        put("_type", claim, "Claim")
        put("claim_identifier", claim, 24_000_000 + c)
        put("claim_type_code", claim, ("MOTOR", "HOME", "TRAVEL")[c % 3])
        put("claim_timestamp", claim, t0 + timedelta(minutes=c))
        parties, transactions = [], []
        for p in range(10):
            party = generate()
            parties.append(party)
            put("_type", party, "Party")
            put("party_identifier", party, 10_000_000 + c * 10 + p)
            put("party_timestamp", party, t0 + timedelta(days=p))
            lists.setdefault("party_claims", []).append((party, [claim]))
        for t in range(5):
            tx = generate()
            transactions.append(tx)
            put("_type", tx, "Transaction")
            put("transaction_identifier", tx, f"FT-{c}-{t}")
            put("transaction_timestamp", tx, t0 + timedelta(hours=t))
            put("transaction_claim", tx, Ref(claim))
            put("transaction_amount", tx, Decimal(f"{t}9.95"))
        lists.setdefault("claim_parties", []).append((claim, parties))
        lists.setdefault("claim_transactions", []).append((claim, transactions))
    with ShardStore(root, synchronous="off") as store:
        for shard, rows in shards.items():
            store.bulk_insert(shard, rows)
        for shard, rows in lists.items():
            store.bulk_lists(shard, rows)
    return claim_ids


# -- the seed-style baseline (never part of the product) -----------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def seed_style_handler(root: Path) -> Mangum:
    """The earlier system's request path over our shard files: per field read, one connection
    runs ``CREATE TABLE IF NOT EXISTS`` and commits, a second one reads; no pragmas, no reuse."""

    def connect(shard: str) -> sqlite3.Connection:
        return sqlite3.connect(root / f"{shard}.sqlite")

    def read(shard: str, uid: int) -> Any:
        db = connect(shard)
        db.execute("CREATE TABLE IF NOT EXISTS items(uid INTEGER PRIMARY KEY, value)")
        db.commit()
        db.close()
        db = connect(shard)
        row = db.execute("SELECT value, kind FROM items WHERE uid = ?", (uid,)).fetchone()
        db.close()
        if row is None:
            return None
        value, kind = row
        return _EPOCH + timedelta(microseconds=value) if kind == 3 else value

    def read_list(shard: str, uid: int) -> list[int]:
        db = connect(shard)
        db.execute("CREATE TABLE IF NOT EXISTS items(uid INTEGER PRIMARY KEY, value)")
        db.commit()
        db.close()
        db = connect(shard)
        refs = [r for (r,) in db.execute("SELECT ref FROM refs WHERE uid = ? ORDER BY pos", (uid,))]
        db.close()
        return refs

    def field(kind: Any, shard: str) -> Any:
        return kind(resolver=lambda root, info: read(shard, root))

    class Transaction(graphene.ObjectType):
        id = graphene.ID(resolver=lambda root, info: str(root))
        amount = field(graphene.String, "transaction_amount")
        financial_transaction_identifier = field(graphene.String, "transaction_identifier")

    class Party(graphene.ObjectType):
        id = graphene.ID(resolver=lambda root, info: str(root))
        party_identifier = field(graphene.Int, "party_identifier")
        timestamp = field(graphene.DateTime, "party_timestamp")

    class Claim(graphene.ObjectType):
        id = graphene.ID(resolver=lambda root, info: str(root))
        claim_identifier = field(graphene.Int, "claim_identifier")
        claim_type_code = field(graphene.String, "claim_type_code")
        timestamp = field(graphene.DateTime, "claim_timestamp")
        transactions = graphene.List(
            Transaction, resolver=lambda root, info: read_list("claim_transactions", root)
        )
        parties = graphene.List(Party, resolver=lambda root, info: read_list("claim_parties", root))

    class Query(graphene.ObjectType):
        claim = graphene.Field(Claim, id=graphene.ID(required=True), resolver=lambda root, info, id: int(id))

    schema = graphene.Schema(query=Query)

    async def graphql(request: Request) -> JSONResponse:
        body = await request.json()
        result = schema.execute(body["query"], variable_values=body.get("variables"))
        out: dict[str, Any] = {"data": result.data}
        if result.errors:
            out["errors"] = [e.formatted for e in result.errors]
        return JSONResponse(out)

    return Mangum(Starlette(routes=[Route("/graphql", graphql, methods=["POST"])]), lifespan="off")


# -- measurement ---------------------------------------------------------------------------------


def _measure(
    paths: dict[str, tuple[Callable[[int], Any], int]], rounds: int
) -> dict[str, dict[str, list[float]]]:
    """Run each path's calls in turns, ``rounds`` times, so that all of them see the same
    machine (other processes come and go); record wall and process CPU time per call."""
    out = {name: {"wall": [], "cpu": []} for name in paths}
    for _ in range(rounds):
        for name, (call, per_round) in paths.items():
            wall, cpu = out[name]["wall"], out[name]["cpu"]
            for i in range(per_round):
                w, c = time.perf_counter(), time.process_time()
                call(len(wall) + i)
                cpu.append(time.process_time() - c)
                wall.append(time.perf_counter() - w)
    return out


def _efs_paths(
    root: Path, claim_ids: list[int], requests: int
) -> tuple[dict[str, dict[str, list[float]]], float]:
    """Sequential against parallel reads under the sleeping Elastic model, in turns; and the
    request's modelled latency if its round trips were made one after another."""
    with EFSModel(f"bench-graphql-{uuid.uuid4().hex[:12]}", profile="elastic", sleep=True) as model:
        store = ShardStore(root, vfs=model.name)
        sequential = GraphQLAPI(store, parallel_reads=False)
        parallel = GraphQLAPI(store, parallel_reads=True)
        variables = [{"id": encode(c)} for c in claim_ids]
        for api in (sequential, parallel):  # warm: connections (one per reader thread), documents
            assert api.execute(QUERY, variables[0]) == sequential.execute(QUERY, variables[0])
        with model.accounting() as ops:
            sequential.execute(QUERY, variables[1 % len(variables)])
        paths = {
            "EFS Elastic model, sleeping: GraphQLAPI.execute, shards one after another": (
                lambda i: sequential.execute(QUERY, variables[i % len(variables)]),
                max(1, requests // 10),
            ),
            "EFS Elastic model, sleeping: GraphQLAPI.execute, parallel_reads": (
                lambda i: parallel.execute(QUERY, variables[i % len(variables)]),
                max(1, requests // 10),
            ),
        }
        measured = _measure(paths, 10)
        parallel.close()
        store.close()
    return measured, ops.modelled_latency_s


# A fresh process answers every claim once through one handler (warm: connections, documents,
# page cache), then the measured requests between two stat() calls of marker paths strace sees.
_SYSCALL_CHILD = """
import json, os, sys
from pathlib import Path
from benchmarks.bench_graphql import SYSCALL_QUERY, seed_style_handler
from efs_sqlite.aws.fakes import LambdaContext, function_url_event, import_handler
from efs_sqlite.uid import encode
root, which, ids, requests = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
handler = import_handler("graphql", root).handler if which == "ours" else seed_style_handler(root)
events = [function_url_event({"query": SYSCALL_QUERY, "variables": {"id": encode(c) if which == "ours"
          else str(c)}}) for c in ids]
for event in events:
    response = handler(event, LambdaContext("bench"))
    assert response["statusCode"] == 200 and '"errors"' not in response["body"], response
for marker in ("start", "end"):
    try:
        os.stat(f"/efs-sqlite-syscalls-{marker}")
    except OSError:
        pass
    if marker == "start":
        for i in range(requests):
            handler(events[i % len(events)], LambdaContext("bench"))
"""
# The event loop's polls are file-descriptor calls of Mangum's, not of the file system.
_NOT_FILE_SYSTEM = {"epoll_wait", "epoll_pwait", "epoll_ctl"}


def _syscalls(root: Path, which: str, claim_ids: list[int], requests: int) -> dict[str, float] | None:
    """File-system syscalls per request of ``SYSCALL_QUERY`` through ``which`` handler (``ours``
    or ``seed``), by kind; None when strace is missing or may not trace here."""
    strace = shutil.which("strace")
    if strace is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.txt"
        done = subprocess.run(
            [
                strace,
                "-f",
                "-qq",
                "-o",
                str(trace),
                "-e",
                "trace=%file,%desc",
                sys.executable,
                "-c",
                _SYSCALL_CHILD,
                str(root),
                which,
                json.dumps(claim_ids[:20]),
                str(requests),
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        if done.returncode != 0:
            if "ptrace" in done.stderr or not trace.exists():
                return None
            raise RuntimeError(f"the syscall count of {which} failed: {done.stderr[-2000:]}")
        lines = trace.read_text().splitlines()
    marks = [i for i, line in enumerate(lines) if "efs-sqlite-syscalls-" in line]
    calls = Counter(
        m.group(1)
        for line in lines[marks[0] + 1 : marks[1]]
        if (m := re.match(r"\d+\s+(\w+)\(", line)) and m.group(1) not in _NOT_FILE_SYSTEM
    )
    return {kind: n / requests for kind, n in calls.most_common()}


def _percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = sorted(s * 1e3 for s in seconds)
    return statistics.median(ms), ms[min(len(ms) - 1, round(0.99 * len(ms)))]


def bench_graphql(
    requests: int = 2000, baseline_requests: int = 300, claims: int = 500, efs_requests: int = 20
) -> dict[str, Any]:
    """p50/p99 (wall and CPU) of the benchmark request on each path, measured in turns in this
    run, and the ratio of the seed-style path to ours; then, unless ``efs_requests`` is 0, the
    same request under the sleeping EFS Elastic model with sequential and with parallel reads."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "store"
        claim_ids = build_store(root, claims)
        ours = import_handler("graphql", root)
        seed = seed_style_handler(root)
        events = [function_url_event({"query": QUERY, "variables": {"id": encode(c)}}) for c in claim_ids]
        seed_events = [
            function_url_event({"query": SEED_QUERY, "variables": {"id": str(c)}}) for c in claim_ids
        ]

        def check(response: dict[str, Any]) -> dict[str, Any]:
            body = json.loads(response["body"])
            assert response["statusCode"] == 200 and "errors" not in body, body
            return body["data"]["claim"]

        a, b = check(ours.handler(events[0], _CONTEXT)), check(seed(seed_events[0], _CONTEXT))
        assert [e["node"]["partyIdentifier"] for e in a["partiesConnection"]["edges"]] == [
            p["partyIdentifier"] for p in b["parties"]
        ]
        api: GraphQLAPI = ours.app.state.api
        paths = {
            "ours: Lambda handler (Function URL event)": (
                lambda i: ours.handler(events[i % claims], _CONTEXT),
                max(1, requests // 20),
            ),
            "ours: GraphQLAPI.execute, no HTTP layer": (
                lambda i: api.execute(QUERY, {"id": encode(claim_ids[i % claims])}),
                max(1, requests // 20),
            ),
            "seed-style: Lambda handler (Function URL event)": (
                lambda i: seed(seed_events[i % claims], _CONTEXT),
                max(1, baseline_requests // 20),
            ),
        }
        _measure(paths, 2)  # warm up: page cache, connections, document cache
        measured = _measure(paths, 20)
        ours.store.close()
        syscalls = {which: _syscalls(root, which, claim_ids, 10) for which in ("ours", "seed")}
        modelled_s = None
        if efs_requests:
            efs, modelled_s = _efs_paths(root, claim_ids, efs_requests)
            measured.update(efs)
    rows = []
    for name, times in measured.items():
        p50, p99 = _percentiles(times["wall"])
        cpu50, cpu99 = _percentiles(times["cpu"])
        rows.append(
            {
                "path": name,
                "requests": len(times["wall"]),
                "p50_ms": p50,
                "p99_ms": p99,
                "cpu_p50_ms": cpu50,
                "cpu_p99_ms": cpu99,
            }
        )
    ours_row, seed_row = rows[0], rows[2]
    speedup = seed_row["p50_ms"] / ours_row["p50_ms"]
    efs = None
    if modelled_s is not None:
        one_by_one, at_once = rows[3], rows[4]
        efs = {
            "modelled_sequential_ms": modelled_s * 1e3,
            "sequential_p50_ms": one_by_one["p50_ms"],
            "parallel_p50_ms": at_once["p50_ms"],
            "speedup_p50": one_by_one["p50_ms"] / at_once["p50_ms"],
        }
    return {
        "rows": rows,
        "efs": efs,
        "speedup_p50": speedup,
        "speedup_cpu_p50": seed_row["cpu_p50_ms"] / ours_row["cpu_p50_ms"],
        "target_p50_ms": TARGET_P50_MS,
        "target_speedup": TARGET_SPEEDUP,
        "meets_p50": ours_row["p50_ms"] <= TARGET_P50_MS,
        "meets_speedup": speedup >= TARGET_SPEEDUP,
        "load_average": os.getloadavg()[0],
        "documents": api.cache_info(),
        "syscalls": syscalls if None not in syscalls.values() else None,
        "target_syscalls": TARGET_SYSCALLS,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| path | requests | p50 ms | p99 ms | CPU p50 ms | CPU p99 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['path']} | {r['requests']} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} "
            f"| {r['cpu_p50_ms']:.3f} | {r['cpu_p99_ms']:.3f} |"
        )
    verdict = {True: "met", False: "MISSED"}
    lines += [
        "",
        f"p50 {result['rows'][0]['p50_ms']:.3f} ms, target <= {result['target_p50_ms']} ms: "
        f"{verdict[result['meets_p50']]}",
        f"seed-style / ours at p50: {result['speedup_p50']:.1f}x wall, {result['speedup_cpu_p50']:.1f}x CPU, "
        f"target >= {result['target_speedup']:.0f}x: {verdict[result['meets_speedup']]}",
        f"(1-minute load average during the run: {result['load_average']:.1f} on {os.cpu_count()} CPUs)",
    ]
    syscalls = result.get("syscalls")
    if syscalls:
        for which, calls in syscalls.items():
            kinds = ", ".join(f"{kind} {n:g}" for kind, n in calls.items())
            lines.append(
                f"file-system syscalls per request of SYSCALL_QUERY, {which}: "
                f"{sum(calls.values()):g} ({kinds})"
            )
    efs = result.get("efs")
    if efs:
        lines.append(
            f"EFS Elastic model, sleeping: p50 {efs['sequential_p50_ms']:.1f} ms with the shards read one "
            f"after another (their round trips add up to {efs['modelled_sequential_ms']:.0f} ms modelled), "
            f"{efs['parallel_p50_ms']:.1f} ms with parallel_reads: {efs['speedup_p50']:.1f}x"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--baseline-requests", type=int, default=300)
    parser.add_argument("--claims", type=int, default=500)
    parser.add_argument("--efs-requests", type=int, default=20, help="0 skips the EFS model rows")
    args = parser.parse_args()
    print(markdown(bench_graphql(args.requests, args.baseline_requests, args.claims, args.efs_requests)))
