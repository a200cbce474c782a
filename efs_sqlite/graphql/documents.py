"""The document cache: each document parsed, measured against the limits and validated once.

A :class:`DocumentCache` keeps the :class:`Prepared` form of the documents seen last (a bounded
LRU keyed by the document text; longer documents are not kept, so it stays small in memory), and
each keeps the :class:`~efs_sqlite.graphql.plans.Plan` of its operation per combination of the
variables its lookahead depends on.

>>> from efs_sqlite.graphql.schema import build_schema
>>> cache = DocumentCache(build_schema().graphql_schema, Limits(), 2, lambda: None)
>>> cache.get("{ __typename }") is cache.get("{ __typename }"), cache.get("{ x { y } }").errors[0].message
(True, "Cannot query field 'x' on type 'Query'.")
>>> {k: cache.info()[k] for k in ("hits", "misses", "parsed", "validated", "size")}
{'hits': 1, 'misses': 2, 'parsed': 2, 'validated': 2, 'size': 2}
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    Undefined,
    parse,
    validate,
)

from efs_sqlite.graphql.limits import Limits, limit_errors
from efs_sqlite.graphql.plans import Plan, frozen, lookahead_variables

__all__ = ["DocumentCache", "Prepared"]

#: Longer documents are not kept by the document cache, so it stays small in memory.
MAX_CACHED_CHARS = 100_000
#: Plans kept per document (one per combination of the variables its lookahead depends on).
MAX_PLANS = 64


class Prepared:
    """A parsed and validated document (or its errors), and the plans of its requests."""

    __slots__ = ("_lock", "_new_plan", "document", "errors", "lookahead", "plans")

    def __init__(
        self, document: DocumentNode | None, errors: tuple[GraphQLError, ...], new_plan: Callable[[], Plan]
    ) -> None:
        self.document, self.errors = document, errors
        self.lookahead: dict[int, tuple[str, ...]] = {}  # id(operation) -> its lookahead variables
        self.plans: dict[tuple[Any, ...], Plan] = {}
        self._new_plan = new_plan
        self._lock = threading.Lock()

    def plan(self, operation: OperationDefinitionNode, variables: Mapping[str, Any]) -> Plan:
        """The plan for ``operation`` with these (coerced) variables."""
        names = self.lookahead.get(id(operation))
        if names is None:
            assert self.document is not None
            fragments = {
                d.name.value: d for d in self.document.definitions if isinstance(d, FragmentDefinitionNode)
            }
            names = self.lookahead[id(operation)] = lookahead_variables(operation, fragments)
        key = (id(operation), *(frozen(variables.get(name, Undefined)) for name in names))
        try:
            hash(key)
        except TypeError:  # a value of a custom scalar that cannot be hashed: plan this request alone
            return self._new_plan()
        with self._lock:
            plan = self.plans.get(key)
            if plan is None:
                if len(self.plans) >= MAX_PLANS:
                    del self.plans[next(iter(self.plans))]
                plan = self.plans[key] = self._new_plan()
        return plan


class DocumentCache:
    """The :class:`Prepared` documents seen last, at most ``size`` of them, and counters:
    hits, misses, documents parsed and validated, and any counted with :meth:`count`."""

    def __init__(
        self, schema: GraphQLSchema, limits: Limits, size: int, new_plan: Callable[[], Plan]
    ) -> None:
        if size < 0:
            raise ValueError("cache_size must be >= 0")
        self.schema, self.limits, self.size = schema, limits, size
        self._new_plan = new_plan
        self._documents: OrderedDict[str, Prepared] = OrderedDict()
        self._lock = threading.Lock()
        self._stats = {"hits": 0, "misses": 0, "parsed": 0, "validated": 0, "fallbacks": 0}

    def info(self) -> dict[str, int]:
        """The counters, the number of documents kept (``size``) and the bound (``maxsize``)."""
        with self._lock:
            return {**self._stats, "size": len(self._documents), "maxsize": self.size}

    def count(self, name: str) -> None:
        """Add one to the counter ``name``."""
        with self._lock:
            self._stats[name] += 1

    def get(self, query: str) -> Prepared:
        """``query`` parsed, measured and validated: from the cache, or now (then kept)."""
        with self._lock:
            prepared = self._documents.get(query)
            if prepared is not None:
                self._documents.move_to_end(query)
                self._stats["hits"] += 1
                return prepared
            self._stats["misses"] += 1
        try:
            prepared = self._parse_and_validate(query)
        except RecursionError:
            prepared = Prepared(None, (GraphQLError("the document is nested too deeply"),), self._new_plan)
        if len(query) <= MAX_CACHED_CHARS and self.size:
            with self._lock:
                self._documents[query] = prepared
                while len(self._documents) > self.size:
                    self._documents.popitem(last=False)
        return prepared

    def _parse_and_validate(self, query: str) -> Prepared:
        try:
            document = parse(query, max_tokens=self.limits.max_tokens)
        except GraphQLError as error:
            return Prepared(None, (error,), self._new_plan)
        finally:
            self.count("parsed")
        errors = limit_errors(document, self.limits)
        if not errors:
            errors = validate(self.schema, document)
            self.count("validated")
        return Prepared(document, tuple(errors), self._new_plan)
