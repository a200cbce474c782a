"""The GraphQL API facade: one object holding the schema, the document cache and the readers.

:meth:`GraphQLAPI.execute` returns the JSON-ready response. Documents are parsed, measured against
the :class:`~efs_sqlite.graphql.limits.Limits` and validated once, then kept in a bounded LRU keyed
by the document text (:mod:`efs_sqlite.graphql.documents`); each request gets caches of its own
(:class:`~efs_sqlite.graphql.prefetch.Request`) and runs compiled
(:mod:`efs_sqlite.graphql.compiled`).
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from graphql import GraphQLError, OperationType, execute_sync, get_operation_ast

from efs_sqlite.backend import StoreBackend
from efs_sqlite.deadline import Deadline
from efs_sqlite.errors import DeadlineExceeded, NodeNotFound, OperationNotAllowed, StoreBusy, ValidationError
from efs_sqlite.graph import Graph
from efs_sqlite.graphql.compiled import Execution, direct_fields
from efs_sqlite.graphql.documents import DocumentCache
from efs_sqlite.graphql.limits import Limits
from efs_sqlite.graphql.plans import Plan
from efs_sqlite.graphql.prefetch import Lanes, Request
from efs_sqlite.graphql.schema import build_schema
from efs_sqlite.model import INSURANCE, Model

__all__ = ["GraphQLAPI", "request_error"]

log = logging.getLogger(__name__)

#: Errors whose message is meant for the client; any other exception is logged and masked.
_CLIENT_ERRORS = (GraphQLError, ValidationError, NodeNotFound, StoreBusy)


class GraphQLAPI:
    """The GraphQL API of ``model`` over ``store``: schema, document cache, limits, execution.

    Build it once and reuse it (a warm Lambda keeps it): the schema, the document cache, the
    store's connections and the reader threads live as long as it does. ``cache_size`` bounds
    the document cache. ``parallel_reads`` reads the shards of one level of a query at once, one
    thread per shard, and locks a query of several levels ahead (see
    :mod:`efs_sqlite.graphql.prefetch`); ``None`` (the default) takes the store's ``parallel_reads``: on
    when its reads wait on the network (a network file system, the EFS model's VFS, DynamoDB), off
    on local disk, where a read takes microseconds and the hand-off to a thread would cost more.
    ``compiled=False`` executes every query with graphql-core's executor alone: the reference
    that the compiled execution is tested against (same answers, 2-3x the CPU time).
    """

    def __init__(
        self,
        store: StoreBackend,
        model: Model = INSURANCE,
        *,
        limits: Limits | None = None,
        cache_size: int = 256,
        parallel_reads: bool | None = None,
        compiled: bool = True,
    ) -> None:
        self.store = store
        self.model = model
        self.limits = limits or Limits()
        self.graph = Graph(store, model)
        self.schema = build_schema(model)
        self.sdl = str(self.schema) + "\n"
        self._schema = self.schema.graphql_schema
        self._documents = DocumentCache(
            self._schema, self.limits, cache_size, partial(Plan, model, self.limits)
        )
        if parallel_reads is None:
            parallel_reads = store.parallel_reads
        self.parallel_reads = parallel_reads
        self.compiled = compiled
        self._lanes = Lanes()
        self._execution = Execution.bound(
            direct_fields(self._schema, model), compiled, partial(self._documents.count, "fallbacks")
        )

    def __repr__(self) -> str:
        return f"GraphQLAPI({self.store!r}, {self.model!r})"

    def close(self) -> None:
        """Stop the reader threads of ``parallel_reads`` (a later request starts them again; a
        request running now stops its own when it ends). The store stays open: it is the caller's."""
        self._lanes.close()

    def cache_info(self) -> dict[str, int]:
        """Document cache counters: hits, misses, documents parsed and validated, size, maxsize;
        and ``fallbacks``, the queries that graphql-core executed after the compiled execution
        gave up (an error in the response, or a shape it leaves to graphql-core)."""
        return self._documents.info()

    def execute(
        self,
        query: Any,
        variables: Any = None,
        operation_name: Any = None,
        *,
        allow_mutations: bool = True,
        deadline: Deadline | None = None,
    ) -> dict[str, Any]:
        """Run one GraphQL request; return the response as a JSON-ready dict.

        A response without ``data`` means the request itself was at fault (bad JSON types, a
        syntax or validation error, a limit, bad variables): HTTP answers it with a 4xx in the
        spec's media type, ``application/graphql-response+json``. Raises
        :class:`OperationNotAllowed` for a mutation when ``allow_mutations`` is false.

        ``deadline`` bounds every wait for a lock, on this thread and the reader lanes, and no
        write begins after it. A request that runs out of time having written nothing raises
        :class:`DeadlineExceeded` (HTTP: 503, retry later); one that ran out after a mutation
        field committed answers with that field's data and an error for the fields after it.
        """
        problem = request_error(query, variables, operation_name)
        if problem is not None:
            return {"errors": [{"message": problem}]}
        prepared = self._documents.get(query)
        if prepared.errors:
            return {"errors": [e.formatted for e in prepared.errors]}
        assert prepared.document is not None
        if not allow_mutations:
            operation = get_operation_ast(prepared.document, operation_name)
            if operation is not None and operation.operation != OperationType.QUERY:
                raise OperationNotAllowed(f"a {operation.operation.value} must be sent with POST")
        lanes = self._lanes if self.parallel_reads else None
        request = Request(self.store, self.graph, self.limits, prepared, lanes, deadline)
        with self.store.within(deadline):
            result = execute_sync(
                self._schema,
                prepared.document,
                context_value=request,
                variable_values=variables,
                operation_name=operation_name,
                execution_context_class=self._execution,
            )
        if not request.written:
            for error in result.errors or ():
                if isinstance(error.original_error, DeadlineExceeded):
                    raise error.original_error
        response: dict[str, Any] = {}
        # Every root field is nullable, so a null `data` means execution never started
        # (unknown operation, bad variables): a request error, reported without `data`.
        if result.data is not None:
            response["data"] = result.data
        if result.errors:
            response["errors"] = [_client_error(e) for e in result.errors]
        if request.client_ids:  # Relay's echo, beside the nodes the mutations return
            response["extensions"] = {"clientMutationIds": request.client_ids}
        return response


def request_error(query: Any, variables: Any = None, operation_name: Any = None) -> str | None:
    """Why the parameters are not a well-formed GraphQL request (JSON of the wrong types, no
    query), or ``None``. Well-formed, the query may still fail to parse or validate.

    >>> request_error("{ __typename }"), request_error(" "), request_error("{ a }", [1])
    (None, 'the request has no query (a non-empty string)', 'variables must be a JSON object')
    """
    if not isinstance(query, str) or not query.strip():
        return "the request has no query (a non-empty string)"
    if variables is not None and not isinstance(variables, dict):
        return "variables must be a JSON object"
    if operation_name is not None and not isinstance(operation_name, str):
        return "operationName must be a string"
    return None


def _client_error(error: GraphQLError) -> dict[str, Any]:
    """The error as the client sees it; an unexpected exception is logged and its text withheld."""
    original = error.original_error
    if original is not None and not isinstance(original, _CLIENT_ERRORS):
        log.error("internal error at %s", error.path, exc_info=original)
        error = GraphQLError("internal error", error.nodes, path=error.path)
    return error.formatted
