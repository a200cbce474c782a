"""GraphQL request experiments (notebook 05): one request's operations and critical path, and a
mix of requests against a loaded data set on EFS and on DynamoDB.

* :func:`graphql_request_ops` — the measurements of :func:`~efs_sqlite.experiments.shards.run_workloads`
  for one GraphQL request (by default :data:`BENCHMARK_QUERY` on :func:`benchmark_graph`), with
  its latency both as if its round trips were made one after another and along its critical path
  as the API makes them on EFS (a level's shards at once, inside read transactions locked ahead).
* :func:`query_mix` — a weighted mix of requests (:data:`MIX_DOCUMENTS`, :data:`MIX_WEIGHTS`) on
  both backends through the product's paths, one row per request: local wall time, compute time,
  EFS operations and latency on the Lambda's parallel path (the sequential path as an ablation),
  DynamoDB calls, units and latency through ``DynamoStore`` on a copy of the data (:func:`dynamodb_copy`);
  :func:`mix_summary` — latency percentiles, $ per million and capacity of each of
  :data:`DESIGNS`, per request kind and for the whole mix; :func:`mix_capacity` — the whole
  mix's capacity on each EFS design by the size of the data stored.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
import random
import statistics
import threading
import time
import uuid
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from graphql_relay import offset_to_cursor

from efs_sqlite.costs import DYNAMODB, RequestProfile, cost_per_million, max_requests_per_second
from efs_sqlite.efs_model import PROFILES, EFSModel, LatencyProfile, Ops
from efs_sqlite.experiments.latency import latency_range
from efs_sqlite.experiments.measure import (
    Workload,
    case_columns,
    case_rows,
    check_choices,
    measure,
    milliseconds,
    ops_columns,
    rounds_of,
    workspace,
)
from efs_sqlite.experiments.tables import Row
from efs_sqlite.graph import Graph
from efs_sqlite.graphql import GraphQLAPI
from efs_sqlite.hooks import StoreOp
from efs_sqlite.loader import dump, load
from efs_sqlite.model import TYPE_SHARD
from efs_sqlite.store import ShardStore
from efs_sqlite.uid import encode

if TYPE_CHECKING:
    from efs_sqlite.dynamodb.calls import Calls
    from efs_sqlite.dynamodb.store import DynamoStore

# -- one request --------------------------------------------------------------------------------

#: The benchmark request of issue 5: a claim with 5 fields and its 10 parties with 3 fields each.
#: It touches 8 shards: 3 claim values, 2 claim lists, 2 party values and 1 party list.
BENCHMARK_QUERY = """query Benchmark($id: ID!) {
  claim(id: $id) {
    id claimIdentifier claimTypeCode timestamp
    transactionsConnection { totalCount }
    partiesConnection(first: 10) { totalCount edges { node { id partyIdentifier timestamp
      claimsConnection { totalCount } } } }
  }
}"""


def benchmark_graph(store: ShardStore, *, parties: int = 10, transactions: int = 3) -> dict[str, str]:
    """Write the graph :data:`BENCHMARK_QUERY` reads: one claim, its ``parties`` parties (each
    listing the claim back) and ``transactions`` transactions. Returns the query's variables.

    >>> import tempfile
    >>> with ShardStore(tempfile.mkdtemp()) as store:
    ...     sorted(benchmark_graph(store, parties=2, transactions=1))
    ['id']
    """
    graph = Graph(store)
    day = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
    claim = graph.create_node("Claim", {"identifier": 4242, "type_code": "MOTOR", "timestamp": day})
    party_ids = [
        graph.create_node("Party", {"identifier": 100 + i, "timestamp": day, "claims": [claim]})
        for i in range(parties)
    ]
    tx_ids = [
        graph.create_node(
            "Transaction", {"identifier": f"FT-{i}", "timestamp": day, "claim": claim, "amount": "10.50"}
        )
        for i in range(transactions)
    ]
    graph.update_node(claim, {"parties": party_ids, "transactions": tx_ids})
    return {"id": encode(claim)}


@dataclass(eq=False)
class _Read:
    """One read the GraphQL layer made: a ``get_many``/``list_*_many`` call, or a ``read()`` block
    with every read inside it; the ids it asked for and the ids its results hold. A lock-ahead's
    ``begin_read`` and its ``end_reads`` are reads too, of no data (``data`` false). ``start`` and
    ``end`` are ticks of the store's trace clock: it ticks at every read's start and end, on any
    thread."""

    shards: set[str] = field(default_factory=set)
    keys: set[int] = field(default_factory=set)
    found: set[int] = field(default_factory=set)
    ops: Ops | None = None
    data: bool = True
    start: int = 0
    end: int = 0

    def needs(self, earlier: _Read) -> bool:
        """Whether this read could only start after ``earlier``: ``earlier`` had ended when this
        one started, and this one reads a shard ``earlier`` read (one thread and connection per
        shard: a shard's reads are serial), or asks for an id that ``earlier`` returned, or for a
        node whose type ``earlier`` looked up in ``_type``."""
        if earlier.end >= self.start:
            return False
        typed = TYPE_SHARD in earlier.shards and bool(self.keys & earlier.keys)
        return typed or bool(self.shards & earlier.shards) or bool(self.keys & earlier.found)


#: The reads a :class:`_Tracer` traces: the GraphQL layer's batched reads and lock-ahead.
_TRACED = frozenset(
    {"get_many", "list_count_many", "list_page_many", "list_window_many", "read", "begin_read", "end_reads"}
)
#: The reads whose ids are DynamoDB items read (a value, or a list's count item).
_ITEM_READS = frozenset({"get_many", "list_count_many", "list_window_many"})
#: The reads of no data: a lock-ahead's BEGIN and its final COMMIT.
_NO_DATA = frozenset({"begin_read", "end_reads"})


def _pages(op: StoreOp) -> Iterable[list[int]]:
    """The list pages a successful ``list_page_many``/``list_window_many`` returned."""
    if op.error is not None:
        return ()
    if op.name == "list_page_many":
        return op.result.values()
    if op.name == "list_window_many":
        return op.result[1].values()
    return ()


def _found(op: StoreOp) -> Iterator[int]:
    """The node ids in a read's result: reference values, list entries."""
    if op.name == "get_many" and op.error is None:
        yield from (v for v in op.result.values() if isinstance(v, int) and not isinstance(v, bool))
    for page in _pages(op):
        yield from page


class _Tracer:
    """A store hook that accounts each read separately (``reads``, on whichever thread makes it)
    and counts the values and lists read (``items``: the DynamoDB items of the same request).

    A read inside another (a ``get_many`` inside a ``read()`` block) is part of the outer one.
    """

    def __init__(self, model: EFSModel) -> None:
        self.model = model
        self.items = 0
        self.reads: list[_Read] = []
        self._tracing = threading.local()  # .read: the read this thread is inside, if any
        self._lock = threading.Lock()
        self._clock = 0

    def reset(self) -> None:
        with self._lock:
            self.items, self.reads = 0, []

    def _tick(self) -> int:
        with self._lock:
            self._clock += 1
            return self._clock

    @contextlib.contextmanager
    def observe(self, op: StoreOp) -> Iterator[None]:
        if op.name not in _TRACED:
            yield
            return
        if op.name in _ITEM_READS:
            with self._lock:
                self.items += len(op.keys)
        read: _Read | None = getattr(self._tracing, "read", None)
        if read is not None:  # inside a read already: it is part of that one
            read.shards.update(op.shards)
            read.keys.update(op.keys)
            yield
            read.found.update(_found(op))
            return
        read = self._tracing.read = _Read(
            set(op.shards), set(op.keys), data=op.name not in _NO_DATA, start=self._tick()
        )
        try:
            with self.model.accounting(current_thread=True) as ops:
                yield
        finally:
            self._tracing.read = None
            read.end = self._tick()
        read.found.update(_found(op))
        read.ops = ops
        with self._lock:
            self.reads.append(read)


def _critical_path(total: Ops, reads: Sequence[_Read], profile: str | LatencyProfile) -> tuple[float, int]:
    """Modelled latency, and rounds, if each read started as soon as the reads it needs ended.

    Reads that do not need each other overlap; a chain of reads that do is the critical path.
    ``rounds`` counts the reads of data on the longest such chain (a lock-ahead's BEGIN and
    COMMIT fetch nothing). Operations outside every read (none for a query) are added as if made
    one after another. The reads are taken in the order they started, whatever the order of
    ``reads`` (several threads append to it).
    """
    p = PROFILES[profile] if isinstance(profile, str) else profile
    ordered = sorted(reads, key=lambda r: r.start)
    finish: list[float] = []
    depth: list[int] = []
    for j, read in enumerate(ordered):
        assert read.ops is not None
        needed = [i for i in range(j) if read.needs(ordered[i])]
        finish.append(max((finish[i] for i in needed), default=0.0) + read.ops.latency_s(p))
        depth.append(read.data + max((depth[i] for i in needed), default=0))
    outside = total.rounds - sum((r.ops.rounds for r in reads if r.ops is not None), Counter())
    rest = p.rounds_s(outside)
    return max(finish, default=0.0) + rest, max(depth, default=0)


def graphql_request_ops(
    query: str = BENCHMARK_QUERY,
    variables: Mapping[str, Any] | None = None,
    *,
    data: Callable[[ShardStore], Mapping[str, Any] | None] = benchmark_graph,
    journal_modes: Sequence[str] = ("delete",),
    cold: Sequence[bool] = (False, True),
    profiles: Sequence[str] = tuple(PROFILES),
    root: str | Path | None = None,
    repeats: int = 3,
    dynamodb: Mapping[str, int] | None = None,
    name: str = "graphql",
    translation: str = "linux_nfs",
) -> list[Row]:
    """Run a GraphQL query against a store opened through the EFS model; one row per
    (journal_mode, cold, profile), with the columns of :func:`run_workloads` and:

    * ``latency_parallel_ms``: the modelled latency of the critical path through the request's
      reads as ``GraphQLAPI(parallel_reads=True)`` makes them (its default on EFS), each traced on
      the thread that makes it: a read waits for the reads it needs (its ids come from their
      results, or its node's type from a ``_type`` read) and for the earlier reads of its shard
      (one thread and connection per shard; a lock-ahead's BEGIN and final COMMIT are reads of
      their shard), the others overlapping. ``latency_ms`` is the sum, as if every round trip
      were made one after another;
    * ``rounds``: the reads of data on the longest chain (dependent rounds of reads);
    * ``dynamodb_items_read``: the items of the DynamoDB equivalent.

    ``data(store)`` writes the data (default :func:`benchmark_graph`) and may return the query's
    variables; ``variables`` overrides them. A warm request (``cold=False``) follows an unmeasured
    one on the same API and store; a cold one is the first request of a new store and API. The
    measured runs must make identical operations. The DynamoDB equivalent is, unless
    ``dynamodb`` says otherwise, one item per value and per list read, in one BatchGetItem call
    per round. A request that answers with errors raises RuntimeError. ``translation``: as for
    :func:`~efs_sqlite.experiments.shards.run_workloads`.
    """
    check_choices(journal_modes, profiles, repeats)
    apis: weakref.WeakKeyDictionary[ShardStore, GraphQLAPI] = weakref.WeakKeyDictionary()
    tracers: weakref.WeakKeyDictionary[ShardStore, _Tracer] = weakref.WeakKeyDictionary()

    def run(store: ShardStore, state: Mapping[str, Any] | None, i: int) -> None:
        api = apis.get(store)
        if api is None:
            # The path EFS takes: a lock-ahead, then each level's shards at once on their threads.
            api = apis[store] = GraphQLAPI(store, parallel_reads=True)
        tracers[store].reset()
        given = variables if variables is not None else state
        response = api.execute(query, dict(given) if given is not None else None)
        if "errors" in response:
            raise RuntimeError(f"{name}: the request failed: {response['errors']}")

    def case(base: Path, model: EFSModel, journal_mode: str, is_cold: bool) -> list[Row]:
        folder = base / f"{name}-{journal_mode}-{'cold' if is_cold else 'warm'}"
        stores: list[ShardStore] = []

        def open_store() -> ShardStore:
            tracer = _Tracer(model)
            stores.append(ShardStore(folder, journal_mode=journal_mode, vfs=model.name, hook=tracer))
            tracers[stores[-1]] = tracer
            return stores[-1]

        workload = Workload(name, "a GraphQL request", data, run, cold=is_cold)
        try:
            ops, _ = measure(
                workload,
                model,
                folder,
                journal_mode=journal_mode,
                locking="normal",
                repeats=repeats,
                open_store=open_store,
            )
        finally:
            for store in stores:  # their reader threads
                api = apis.pop(store, None)
                if api is not None:
                    api.close()
        last = tracers[stores[-1]]  # its reads are those of the last measured run (all runs are alike)
        parallel = {
            p: [_critical_path(ops, last.reads, level)[0] for level in latency_range(p)] for p in profiles
        }
        rounds = _critical_path(ops, last.reads, "local")[1]
        equivalent = dynamodb or {
            "items_read": last.items,
            "dynamodb_calls": max(rounds, math.ceil(last.items / DYNAMODB.batch_get_max)),
        }
        return case_rows(
            ops,
            case_columns(name, journal_mode, "normal", is_cold, repeats),
            profiles,
            equivalent,
            False,
            per_profile=lambda p: {
                "latency_parallel_ms": milliseconds(parallel[p][1]),
                "latency_parallel_low_ms": milliseconds(parallel[p][0]),
                "latency_parallel_high_ms": milliseconds(parallel[p][2]),
                "rounds": rounds,
            },
            extra={"dynamodb_items_read": equivalent.get("items_read", 0)},
        )

    with workspace(root, "efs-graphql", translation) as (base, model):
        return [
            row
            for journal_mode, is_cold in itertools.product(journal_modes, cold)
            for row in case(base, model, journal_mode, bool(is_cold))
        ]


# -- a mix of requests ---------------------------------------------------------------------------

#: The requests of the mix: a GraphQL document each, run against a loaded insurance store.
MIX_DOCUMENTS: dict[str, str] = {
    "point_read": "query($id: ID!) { claim(id: $id) { id claimIdentifier claimTypeCode timestamp } }",
    "nested": (
        "query($id: ID!) { claim(id: $id) { id claimTypeCode partiesConnection(first: 10) { edges { node {"
        " id partyIdentifier claimsConnection(first: 10) { totalCount edges { node { id claimTypeCode } } }"
        " } } } } }"
    ),
    "list_page": (
        "query($id: ID!, $after: String) { party(id: $id) { claimsConnection(first: 100, after: $after) {"
        " totalCount pageInfo { hasNextPage endCursor } edges { node { id } } } } }"
    ),
    "create": (
        "mutation($claim: ID!, $number: String!, $at: DateTime!) { createTransaction(input: {"
        ' financialTransactionIdentifier: $number, timestamp: $at, claim: $claim, amount: "10.50",'
        ' serviceTypeCode: "REPAIR" }) { id } }'
    ),
    "update": (
        "mutation($id: ID!, $code: String!) { updateClaim(id: $id, input: {claimTypeCode: $code}) { id } }"
    ),
}
#: The share of each request in the mix: mostly reads, a few writes.
MIX_WEIGHTS: dict[str, float] = {
    "point_read": 0.5,
    "nested": 0.2,
    "list_page": 0.2,
    "create": 0.05,
    "update": 0.05,
}
#: The designs :func:`mix_summary` compares.
DESIGNS = ("efs_elastic", "efs_bursting", "efs_provisioned", "efs_one_zone", "dynamodb")


def _mix_targets(store: ShardStore, rng: random.Random, count: int) -> dict[str, list[int]]:
    """``count`` random claims and the parties with the longest claim lists (the hubs)."""
    by_type: dict[str, list[int]] = {}
    after = None
    while page := store.scan(TYPE_SHARD, after=after, limit=10_000):
        for uid, type_name in page:
            by_type.setdefault(type_name, []).append(uid)
        after = page[-1][0]
    claims, parties = by_type.get("Claim", []), by_type.get("Party", [])
    if not claims or not parties:
        raise ValueError(f"{store.root} holds no claims or no parties: load a data set first")
    lengths = store.list_count_many("party_claims", parties)
    longest = max(lengths.values())
    hubs = [p for p in parties if lengths[p] * 2 >= longest]  # the hubs: lists near the longest
    return {
        "claims": [rng.choice(claims) for _ in range(count)],
        "hubs": hubs,
        "hub_lengths": [lengths[h] for h in hubs],
    }


def _mix_requests(
    store: ShardStore, requests: int, weights: Mapping[str, float], seed: int
) -> list[tuple[str, dict[str, Any]]]:
    """The ``(kind, variables)`` of each request, drawn with ``weights``; the same for a seed."""
    rng = random.Random(f"query_mix:{seed}")
    targets = _mix_targets(store, rng, requests)
    kinds = rng.choices(list(weights), weights=list(weights.values()), k=requests)
    out = []
    for i, (kind, claim) in enumerate(zip(kinds, targets["claims"], strict=True)):
        if kind == "list_page":
            h = rng.randrange(len(targets["hubs"]))
            offset = rng.randrange(max(1, targets["hub_lengths"][h] - 100))
            variables: dict[str, Any] = {
                "id": encode(targets["hubs"][h]),
                "after": offset_to_cursor(offset - 1) if offset else None,
            }
        elif kind == "create":
            variables = {"claim": encode(claim), "number": f"MIX-{seed}-{i}", "at": "2025-01-02T03:04:05Z"}
        elif kind == "update":
            variables = {"id": encode(claim), "code": rng.choice(["MOTOR", "PROPERTY", "LIABILITY"])}
        else:
            variables = {"id": encode(claim)}
        out.append((kind, variables))
    return out


class _Range(NamedTuple):
    """A wait in seconds at the low, typical and high ends of a latency range."""

    low: float
    typical: float
    high: float


class _EFSRequest(NamedTuple):
    """One request of the mix through the EFS model: its operations and its modelled wait per
    profile at the (low, typical, high) ends of that profile's range."""

    ops: Ops
    waits_s: dict[str, _Range]


def _efs_requests(
    root: str | os.PathLike[str],
    plan: Sequence[tuple[str, dict[str, Any]]],
    warmup: Mapping[str, Mapping[str, Any]],
    run: Callable[[GraphQLAPI, str, Mapping[str, Any]], None],
    *,
    parallel: bool,
    profiles: Sequence[str],
    journal_mode: str,
    translation: str,
) -> list[_EFSRequest]:
    """Run ``plan`` on a warm API through the EFS model. ``parallel``: the path the Lambda takes
    on EFS (a lock-ahead, then each level's shards at once), timed along each request's critical
    path as :func:`graphql_request_ops` times it; otherwise the sequential path, its round trips
    one after another."""
    tracer: _Tracer | None = None

    def wait_s(ops: Ops, level: LatencyProfile) -> float:
        return ops.latency_s(level) if tracer is None else _critical_path(ops, tracer.reads, level)[0]

    out = []
    with contextlib.ExitStack() as stack:
        model = stack.enter_context(EFSModel(f"query-mix-{uuid.uuid4().hex[:12]}", translation=translation))
        tracer = _Tracer(model) if parallel else None
        store = stack.enter_context(
            ShardStore(root, journal_mode=journal_mode, vfs=model.name, create=False, hook=tracer)
        )
        api = stack.enter_context(contextlib.closing(GraphQLAPI(store, parallel_reads=parallel)))
        for kind, variables in warmup.items():
            run(api, kind, variables)
        for kind, variables in plan:
            if tracer is not None:
                tracer.reset()
            with model.accounting() as ops:
                run(api, kind, variables)
            out.append(
                _EFSRequest(
                    ops, {p: _Range(*(wait_s(ops, level) for level in latency_range(p))) for p in profiles}
                )
            )
    return out


def _dynamodb_requests(
    store: DynamoStore,
    plan: Sequence[tuple[str, dict[str, Any]]],
    warmup: Mapping[str, Mapping[str, Any]],
    run: Callable[[GraphQLAPI, str, Mapping[str, Any]], None],
) -> list[Calls]:
    """Run ``plan`` on a warm API over the DynamoDB backend; each request's counted calls."""
    out = []
    with contextlib.closing(GraphQLAPI(store)) as api:
        for kind, variables in warmup.items():
            run(api, kind, variables)
        for kind, variables in plan:
            with store.accounting() as calls:
                run(api, kind, variables)
            out.append(calls)
    return out


#: The DynamoDB calls whose items are read, and those whose items are written.
_DYNAMODB_READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan"})
_DYNAMODB_WRITES = frozenset({"PutItem", "DeleteItem", "UpdateItem", "BatchWriteItem", "TransactWriteItems"})


def _items(calls: Calls, operations: frozenset[str]) -> int:
    return sum(c.items for c in calls.calls if c.operation in operations)


class _NodesRead:
    """A store hook that collects the ids every read and write names: the nodes a run touches."""

    def __init__(self) -> None:
        self.ids: set[int] = set()

    @contextlib.contextmanager
    def observe(self, op: StoreOp) -> Iterator[None]:
        self.ids.update(k for k in op.keys if isinstance(k, int))
        yield


def dynamodb_copy(store: ShardStore, nodes: Iterable[int] | None = None) -> DynamoStore:
    """A new table of the local DynamoDB server holding ``store``'s nodes, or only those of
    ``nodes`` (``load(dump(store))``, filtered). A request's calls and units depend only on the
    items it reads, so a copy of the nodes a mix touches serves it as the whole data set would,
    and the local server, which scans its whole table for a Query, answers in seconds."""
    from efs_sqlite.dynamodb.local import local_store  # boto3 and moto load here, not on import

    keep = None if nodes is None else set(nodes)
    copy = local_store(f"query-mix-{uuid.uuid4().hex[:12]}")
    load(copy, (r for r in dump(store) if keep is None or r["uid"] in keep), progress=False)
    return copy


def query_mix(
    root: str | os.PathLike[str],
    *,
    requests: int = 1000,
    weights: Mapping[str, float] | None = None,
    seed: int = 0,
    profiles: Sequence[str] = ("elastic", "bursting", "provisioned", "one_zone"),
    journal_mode: str = "delete",
    translation: str = "linux_nfs",
    dynamodb: DynamoStore | None = None,
) -> list[Row]:
    """Run a mix of GraphQL requests (:data:`MIX_DOCUMENTS`) against the loaded store at ``root``
    and against the same data on the DynamoDB backend.

    ``requests`` requests are drawn with ``weights`` (default :data:`MIX_WEIGHTS`) over random
    claims and, for list pages, random 100-entry windows of the longest lists (the hub parties'
    claims). The same sequence runs on a warm API each time (every kind runs once first,
    unmeasured, as on a warm Lambda): on the plain store for its wall time on this machine's disk;
    with ``synchronous=off`` for its compute time (the same work without waiting for the disk);
    through the EFS model on the path the Lambda takes (``GraphQLAPI(parallel_reads=True)``: a
    lock-ahead, then each level's shards at once) and, as an ablation, on the sequential path;
    and on ``dynamodb`` (a :class:`~efs_sqlite.dynamodb.store.DynamoStore` holding the same data;
    by default :func:`dynamodb_copy` copies the nodes the local run touched, as they are after
    it, to the local server). The mutations change the stores (each write request creates a
    transaction or updates a claim on each run).

    One row per request: ``i``, ``kind``, ``local_ms`` (wall time on local disk), ``compute_ms``,
    the operations of the parallel path (``ops_total``, ``nfs_requests``, ``db_opens``,
    ``lock_requests``, ``metadata_read_ops``, ``metadata_write_ops``, ``data_read_ops``,
    ``data_write_ops``, ``data_read_bytes``, ``data_write_bytes``, ``rounds_<class>``);
    ``efs_<profile>_ms`` with ``efs_<profile>_low_ms`` and ``efs_<profile>_high_ms``
    (``compute_ms`` plus the modelled wait along the request's critical path under each of
    ``profiles``' typical, low and high ends); ``efs_<profile>_sequential_ms`` (the sequential
    path, its round trips one after another, typical profile) and ``sequential_nfs_requests``;
    the DynamoDB backend's counts (``dynamodb_calls``, ``dynamodb_waves``, ``dynamodb_items_read``
    — keys asked for —, ``dynamodb_items_written``, ``dynamodb_read_units``,
    ``dynamodb_write_units``) and ``dynamodb_ms``/``dynamodb_p99_ms`` (``compute_ms`` plus its
    calls' modelled latency with every call at its median, or at its p99: see
    :meth:`~efs_sqlite.dynamodb.calls.Calls.latency_ms`). ``translation``: as for
    :func:`~efs_sqlite.experiments.shards.run_workloads`.
    """
    weights = dict(MIX_WEIGHTS if weights is None else weights)
    unknown = set(weights) - set(MIX_DOCUMENTS)
    if unknown or requests < 1 or not weights or min(weights.values()) < 0:
        raise ValueError(f"weights name kinds of {list(MIX_DOCUMENTS)} (>= 0) and requests >= 1")
    bad = [p for p in profiles if p not in PROFILES]
    if bad:
        raise ValueError(f"unknown profiles {bad}; expected some of {list(PROFILES)}")

    def run(api: GraphQLAPI, kind: str, variables: Mapping[str, Any]) -> None:
        response = api.execute(MIX_DOCUMENTS[kind], dict(variables))
        if "errors" in response:
            raise RuntimeError(f"{kind} request failed: {response['errors'][:2]}")

    def timed(store: ShardStore) -> list[float]:
        with contextlib.closing(GraphQLAPI(store)) as api:
            for kind, variables in warmup.items():
                run(api, kind, variables)
            walls = []
            for kind, variables in plan:
                start = time.perf_counter()
                run(api, kind, variables)
                walls.append(time.perf_counter() - start)
        return walls

    touched = _NodesRead()
    with contextlib.ExitStack() as stack:
        with ShardStore(root, journal_mode=journal_mode, create=False, hook=touched) as store:
            plan = _mix_requests(store, requests, weights, seed)
            warmup = {kind: variables for kind, variables in reversed(plan)}
            touched.ids.clear()  # drawing the plan scanned every node
            local = timed(store)
            if dynamodb is None:
                dynamodb = stack.enter_context(dynamodb_copy(store, touched.ids))
        with ShardStore(root, journal_mode=journal_mode, synchronous="off", create=False) as store:
            compute = timed(store)
        options = {"profiles": profiles, "journal_mode": journal_mode, "translation": translation}
        efs = _efs_requests(root, plan, warmup, run, parallel=True, **options)
        sequential = _efs_requests(root, plan, warmup, run, parallel=False, **options)
        dynamo = _dynamodb_requests(dynamodb, plan, warmup, run)
    rows = []
    for i, (kind, _) in enumerate(plan):
        ms = functools.partial(_plus_ms, compute[i])
        calls = dynamo[i]
        rows.append(
            {
                "i": i,
                "kind": kind,
                "local_ms": round(local[i] * 1000, 3),
                "compute_ms": round(compute[i] * 1000, 3),
                **ops_columns(efs[i].ops),
                **{
                    f"efs_{p}{suffix}_ms": ms(wait)
                    for p in profiles
                    for suffix, wait in zip(("_low", "", "_high"), efs[i].waits_s[p], strict=True)
                },
                **{f"efs_{p}_sequential_ms": ms(sequential[i].waits_s[p].typical) for p in profiles},
                "sequential_nfs_requests": sum(sequential[i].ops.requests.values()),
                "dynamodb_calls": len(calls.calls),
                "dynamodb_waves": len({c.wave for c in calls.calls}),
                "dynamodb_items_read": _items(calls, _DYNAMODB_READS),
                "dynamodb_items_written": _items(calls, _DYNAMODB_WRITES),
                "dynamodb_read_units": calls.read_units,
                "dynamodb_write_units": calls.write_units,
                "dynamodb_ms": ms(calls.latency_ms(0.5) / 1000),
                "dynamodb_p99_ms": ms(calls.latency_ms(0.99) / 1000),
            }
        )
    return rows


def _plus_ms(compute_s: float, wait_s: float) -> float:
    """A request's latency in ms: its compute time plus its storage wait."""
    return round((compute_s + wait_s) * 1000, 3)


def latency_under(row: Row, profile: LatencyProfile) -> float:
    """A :func:`query_mix` row's latency in ms under another profile (a measured one, say):
    its compute time plus its round trips at that profile's delays, one after another (the row
    keeps no reads to follow its critical path: an upper bound of the parallel path's wait)."""
    return round(row["compute_ms"] + profile.rounds_s(dict(rounds_of(row))) * 1000, 3)


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _mix_profile(row: Row, end: str = "") -> RequestProfile:
    """A :func:`query_mix` row as the cost model's input: the EFS operations and, per mode, the
    wait along the critical path (at the ``end`` of its range: ``""`` typical, ``"_low"``,
    ``"_high"``); the DynamoDB backend's counted units and modelled latency."""
    waits = tuple(
        (mode, (row.get(f"efs_{mode}{end}_ms", row[f"efs_{mode}_ms"]) - row["compute_ms"]) / 1000)
        for mode in ("elastic", "bursting", "provisioned")
        if f"efs_{mode}_ms" in row
    )
    items_read = row["dynamodb_items_read"]
    return RequestProfile(
        metadata_read_ops=row["metadata_read_ops"],
        metadata_write_ops=row["metadata_write_ops"],
        data_read_ops=row["data_read_ops"],
        data_read_bytes=row["data_read_bytes"],
        data_write_ops=row["data_write_ops"],
        data_write_bytes=row["data_write_bytes"],
        compute_s=row["compute_ms"] / 1000,
        items_read=items_read,
        items_written=row["dynamodb_items_written"],
        # A Query's items are not keys of a BatchGetItem: the calls are only checked against the
        # estimate's rule; the measured latency below replaces the estimate's calls x 10 ms.
        dynamodb_calls=max(row["dynamodb_calls"], math.ceil(items_read / DYNAMODB.batch_get_max)),
        efs_rounds=rounds_of(row),
        efs_waits_s=waits,
        dynamodb_read_units=row["dynamodb_read_units"],
        dynamodb_write_units=row["dynamodb_write_units"],
        dynamodb_latency_s=max(0.0, row["dynamodb_ms"] - row["compute_ms"]) / 1000,
    )


def mix_summary(
    rows: Sequence[Row],
    *,
    weights: Mapping[str, float] | None = None,
    stored_gib: float = 1.0,
    provisioned_mibps: float = math.inf,
    memory_mb: int = 1024,
) -> list[Row]:
    """Latency, cost and capacity of each design, per request kind and for the whole mix.

    ``rows`` come from :func:`query_mix`. The mix weighs each kind by ``weights`` (default: as
    drawn). One row per (``kind``, ``design``) of :data:`DESIGNS`, ``kind`` ``"mix"`` for the
    whole: ``requests``, ``median_ms``, ``p95_ms`` and ``p99_ms`` (latency per request: local
    compute plus modelled storage waits; DynamoDB's ``p99_ms`` from each request with every call
    at its p99), on EFS the range ``median_low_ms``/``median_high_ms``, ``p99_low_ms``/``p99_high_ms``
    and the sequential path's ``median_sequential_ms``/``p99_sequential_ms`` (``None`` for
    DynamoDB, whose figures are measured distributions, not a profile's range),
    ``mean_nfs_requests``, ``usd_per_million`` (Lambda
    requests and duration plus storage requests: :func:`efs_sqlite.costs.cost_per_million`;
    storage at rest excluded; ``None`` for One Zone, which the cost model does not price; on EFS
    also ``usd_per_million_low``/``usd_per_million_high``, at the ends of its latency range) and
    ``max_requests_per_s`` (what the file system sustains for a month:
    :func:`efs_sqlite.costs.max_requests_per_second` with ``stored_gib`` of data and, for
    Provisioned, ``provisioned_mibps`` bought — by default as much as the IOPS limits can use, the
    cost being in ``usd_per_million``; ``None`` for DynamoDB on demand, which scales with the
    request rate).
    """
    if not rows:
        raise ValueError("no rows: run query_mix first")
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    drawn = Counter(r["kind"] for r in rows)
    weights = dict(weights or {k: drawn[k] for k in kinds})
    groups = {k: [r for r in rows if r["kind"] == k] for k in kinds}
    out = []
    for kind in [*kinds, "mix"]:
        members = rows if kind == "mix" else groups[kind]
        # Each request weighs its kind's share of the mix, split over that kind's requests.
        share = (lambda r: weights.get(r["kind"], 0) / drawn[r["kind"]]) if kind == "mix" else (lambda r: 1.0)
        mix = [(_mix_profile(r), share(r)) for r in members if share(r) > 0]
        usd = cost_per_million(mix, memory_mb=memory_mb)  # One Zone is not priced: None
        # The same at the ends of EFS's latency range (its Lambda time changes; DynamoDB's not).
        usd_ends = {
            end: cost_per_million(
                [(_mix_profile(r, f"_{end}"), share(r)) for r in members if share(r) > 0], memory_mb=memory_mb
            )
            for end in ("low", "high")
        }
        for design in DESIGNS:
            latencies = [r[f"{design}_ms"] for r in members if f"{design}_ms" in r]
            # DynamoDB's tail: each request with its calls at their p99 (an upper bound of its p99)
            tail = [r[f"{design}_p99_ms"] for r in members if f"{design}_p99_ms" in r] or latencies
            ends = {
                end: [r[f"{design}_{end}_ms"] for r in members if f"{design}_{end}_ms" in r]
                for end in ("low", "high", "sequential")
            }
            out.append(
                {
                    "kind": kind,
                    "design": design,
                    "requests": len(members),
                    "median_ms": statistics.median(latencies) if latencies else None,
                    "p95_ms": _percentile(latencies, 0.95) if latencies else None,
                    "p99_ms": _percentile(tail, 0.99) if tail else None,
                    **{f"median_{e}_ms": statistics.median(v) if v else None for e, v in ends.items()},
                    **{f"p99_{e}_ms": _percentile(v, 0.99) if v else None for e, v in ends.items()},
                    "mean_nfs_requests": None
                    if design == "dynamodb"
                    else statistics.fmean(r["nfs_requests"] for r in members),
                    "usd_per_million": usd.get(design),
                    **{
                        f"usd_per_million_{e}": None if design == "dynamodb" else u.get(design)
                        for e, u in usd_ends.items()
                    },
                    "max_requests_per_s": None
                    if design == "dynamodb"
                    else max_requests_per_second(
                        mix, design[4:], stored_gib=stored_gib, provisioned_mibps=provisioned_mibps
                    ),
                }
            )
    return out


def mix_capacity(
    rows: Sequence[Row], sizes_gib: Sequence[float], *, weights: Mapping[str, float] | None = None
) -> list[Row]:
    """The most requests per second of the whole mix each EFS design sustains, by data stored.

    ``rows`` come from :func:`query_mix`, ``weights`` as in :func:`mix_summary`. One row per
    (``stored_gib`` of ``sizes_gib``, EFS ``design``): ``stored_gib``, ``design``,
    ``max_requests_per_s`` (Bursting's baseline, and so its capacity, grows with the data stored).
    """
    return [
        {"stored_gib": gib, "design": r["design"], "max_requests_per_s": r["max_requests_per_s"]}
        for gib in sizes_gib
        for r in mix_summary(rows, weights=weights, stored_gib=gib)
        if r["kind"] == "mix" and r["max_requests_per_s"] is not None
    ]
