"""The same GraphQL requests on both backends: what each costs on DynamoDB (calls, read and write
units, modelled latency from the call log) beside EFS (NFS requests, modelled latency).

The requests are :data:`~efs_sqlite.experiments.queries.BENCHMARK_QUERY` and each kind of the
query mix (:data:`~efs_sqlite.experiments.queries.MIX_DOCUMENTS`), all on the graph
:func:`~efs_sqlite.experiments.queries.benchmark_graph` writes (a claim, its 10 parties and 3
transactions): a list page is of a party's claims, a create adds a transaction to the claim, an
update changes the claim's type code. Each is measured warm (after one unmeasured request on the
same API and store), as a warm Lambda environment serves it.

- DynamoDB: the in-process moto server (:func:`~efs_sqlite.dynamodb.local.local_store`), a table
  of its own per request kind, counted by the store's call log
  (:meth:`~efs_sqlite.dynamodb.DynamoStore.accounting`): units by AWS's rules, latency per call
  type from DeBrie's measurements (``docs/SOURCES.md#debrie-latency``, and for reads
  ``docs/SOURCES.md#dynamodb-read-latency``), the calls sent together counted once. The graph is
  written by one store and read by another, so a read request is not made strongly consistent
  by the writes before it (read-your-writes holds only on the writing thread).
- EFS: :func:`~efs_sqlite.experiments.queries.graphql_request_ops` through the EFS model (rollback
  journal, Linux NFS client): its NFS requests and the modelled latency of its critical path under
  the profile's low, typical and high figures.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from typing import Any

from efs_sqlite.experiments.queries import (
    BENCHMARK_QUERY,
    MIX_DOCUMENTS,
    benchmark_graph,
    graphql_request_ops,
)
from efs_sqlite.experiments.tables import Row
from efs_sqlite.graphql import GraphQLAPI
from efs_sqlite.uid import decode, encode

__all__ = ["REQUESTS", "backend_comparison", "request_variables"]

#: The requests compared: the benchmark request, then the query mix's kinds.
REQUESTS: dict[str, str] = {"benchmark": BENCHMARK_QUERY, **MIX_DOCUMENTS}
_tables = itertools.count(1)


def request_variables(kind: str, store: Any) -> dict[str, Any]:
    """Write :func:`benchmark_graph` into *store* and return the variables of request *kind* on it."""
    claim = benchmark_graph(store)["id"]
    if kind == "list_page":
        (party,) = store.list_page("claim_parties", decode(claim), 0, 1)
        return {"id": encode(party), "after": None}
    if kind == "create":
        return {"claim": claim, "number": "BACKENDS-1", "at": "2025-01-02T03:04:05Z"}
    if kind == "update":
        return {"id": claim, "code": "PROPERTY"}
    if kind not in REQUESTS:
        raise ValueError(f"no request {kind!r}; choose from {sorted(REQUESTS)}")
    return {"id": claim}


def backend_comparison(
    kinds: Sequence[str] = tuple(REQUESTS), *, profile: str = "elastic", consistent_reads: bool = False
) -> list[Row]:
    """One row per request kind: DynamoDB's calls (``dynamodb_calls``, and by operation), read and
    write units, modelled p50/p99 latency; beside EFS's NFS requests and modelled latency (the
    critical path under *profile*: typical, low and high). ``consistent_reads`` reads DynamoDB
    strongly consistent (twice the read units)."""
    unknown = sorted(set(kinds) - set(REQUESTS))
    if unknown:
        raise ValueError(f"no request {unknown}; choose from {sorted(REQUESTS)}")
    return [{"request": kind, **_dynamodb(kind, consistent_reads), **_efs(kind, profile)} for kind in kinds]


def _dynamodb(kind: str, consistent_reads: bool) -> Row:
    from efs_sqlite.dynamodb import local_store

    table = f"backends-{os.getpid()}-{next(_tables)}"
    with local_store(table) as writer:
        variables = request_variables(kind, writer)
    store = local_store(table, consistent_reads=consistent_reads)
    api = GraphQLAPI(store)
    try:
        _execute(api, kind, variables)  # warm: the document cache, the client's connections
        with store.accounting() as calls:
            _execute(api, kind, variables)
    finally:
        api.close()
        store.client.delete_table(TableName=table)
        store.close()
    counts = calls.counts
    return {
        "dynamodb_calls": sum(counts.values()),
        "dynamodb_calls_by_operation": ", ".join(f"{op} {n}" for op, n in sorted(counts.items())),
        "dynamodb_rru": calls.read_units,
        "dynamodb_wru": calls.write_units,
        "dynamodb_p50_ms": calls.latency_ms(0.5),
        "dynamodb_p99_ms": calls.latency_ms(0.99),
    }


def _execute(api: GraphQLAPI, kind: str, variables: dict[str, Any]) -> None:
    response = api.execute(REQUESTS[kind], variables)
    if "errors" in response:
        raise RuntimeError(f"{kind}: the request failed: {response['errors']}")


def _efs(kind: str, profile: str) -> Row:
    (row,) = graphql_request_ops(
        REQUESTS[kind],
        data=lambda store: request_variables(kind, store),
        cold=(False,),
        profiles=(profile,),
        repeats=2,
        name=f"backends-{kind}",
    )
    return {
        "efs_profile": profile,
        "efs_nfs_requests": row["nfs_requests"],
        "efs_latency_ms": row["latency_parallel_ms"],
        "efs_latency_low_ms": row["latency_parallel_low_ms"],
        "efs_latency_high_ms": row["latency_parallel_high_ms"],
    }
