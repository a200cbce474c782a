"""The GraphQL API: a graphene schema derived from the model, executed with per-shard batching.

Schema
------
:func:`build_schema` turns every node type ``T`` of a :class:`~efs_sqlite.model.Model` into:

- an object type ``T`` implementing the Relay ``Node`` interface, whose ``id`` is the node's
  11-character Small UID string (no type prefix: the ``_type`` shard knows every id's type);
- one field per model field, named :attr:`Field.graphql_name`: ``str`` -> ``String``, ``int`` ->
  ``Int``, ``float`` -> ``Float``, ``decimal`` -> ``Decimal`` (an exact string), ``datetime`` ->
  ``DateTime`` (ISO 8601, UTC), ``bool`` -> ``Boolean``, ``bytes`` -> ``Base64``, ``ref`` -> the
  target type, ``refs`` -> a Relay connection ``<Target>Connection`` with ``totalCount``;
- query fields ``t(id: ID!): T`` (``claim``, ``party``, ``transaction``), next to ``node(id:)`` and
  ``nodes(ids:)``;
- mutations ``createT(input: TInput!)``, ``updateT(id:, input: TPatch!)`` (partial: fields left out
  keep their value, ``null`` clears an optional one), ``deleteT(id:)`` and, per reference list
  ``F``, ``addTF(id:, ids:)`` / ``removeTF(id:, ids:)``. Every input is checked against the model
  and every reference against the ``_type`` shard before one grouped write
  (:class:`~efs_sqlite.graph.Graph`): an invalid input is a GraphQL error and writes nothing.

``int`` stays GraphQL ``Int``, as in the earlier system's SDL (``claimIdentifier: Int!``): values
must fit 32 bits. A larger input is refused by GraphQL itself; a larger value already stored reads
as a field error naming the value, never as a wrong number. Compared with that SDL, the root
fields are nullable (a missing node is ``null`` plus an error instead of nulling the whole
response) and reference lists are connections, since a 25,000-entry list cannot be one value.

Execution
---------
:meth:`GraphQLAPI.execute` returns the JSON-ready response. Documents are parsed, measured against
the :class:`Limits` and validated once, then kept in a bounded LRU keyed by the document text.

Reads are batched per shard and cached for the request. The resolver of a root field looks ahead
at its whole selection (graphql-core's ``collect_sub_fields``, so fragments, aliases and
``@include``/``@skip`` count) and reads it level by level: for all the nodes of one level, one
``get_many`` per shard of the fields selected and one read per reference-list shard for the pages
asked for, whose entries make the next level. Every resolver then answers from the request's cache
(reading on a miss, so an answer never depends on the lookahead being complete). This is the
DataLoader pattern with the batch boundary at a level of the tree instead of a tick of an event
loop: each shard is read once per level however the nodes are spread over the response, and
execution stays synchronous, which took about 30% less CPU for the benchmark request than
graphql-core's asynchronous execution with a DataLoader per shard (and needs no event loop, so it
runs as is in a notebook cell).

What the lookahead finds depends only on the document, the operation and the variables used
below the root fields (page sizes, ``@include(if:)``), not on the root fields' own arguments such
as the id: so it is worked out once per such combination and kept with the cached document, as
are the sub-fields graphql-core collects for each object.

Queries are executed *compiled*: per plan, each object selection becomes a table of steps (the
field's response key, how its value is got, how it is completed), and a request walks those
tables, with graphql-core's own resolvers for root fields and references, graphql-relay's paging
arithmetic for connections and each scalar type's own ``serialize`` (or what it returns, for the
Python types it passes through unchanged). That skips graphql-core's per-field machinery (paths,
resolve infos, awaitable checks), about two thirds of the CPU time of the benchmark request once
the reads were batched. It answers only when nothing goes wrong: at the first error, null where
the schema forbids one, or abstract type (``node``, ``nodes``, introspection), graphql-core
executes the operation again from the request's caches and reports it in its own words (see
:class:`_Request` for store failures). ``compiled=False`` turns it off; the tests check that both
give the same answers, byte for byte, for a corpus of queries and for random ones.

``parallel_reads``: the reads of one level do not depend on each other, so on a network file
system, where each costs a few round trips, they are made at once, one thread per shard (each
thread keeps its own warm connection to its shard); apsw releases the GIL while SQLite waits, so
the waits overlap and a level costs its slowest shard instead of the sum. The lists of a level are
read for all its ids together with their values, and the ids of nodes that turn out not to exist
are dropped afterwards, so that a level stays one round. Results are merged into the request's
caches on the request's own thread. A request has a lane of these threads to itself while it reads
(concurrent requests get lanes of their own; a warm Lambda, one request at a time, keeps one).

On EFS most of a warm read's round trips are its lock cycle (7 of 8: taking the SHARED lock with
its probes and the change-counter read, then 1 to let go), not data, which SQLite's page cache
keeps. So a query of several levels *locks ahead*: the plan alone names every shard it may read at
any depth, and before reading anything each of those shards' threads begins a read transaction,
all at once; every level then reads inside them (warm pages cost no round trip) and they all
commit at once at the end. The benchmark request (two dependent levels) then waits for one lock
cycle, about 8 ms modelled on Elastic, instead of one per level (16 ms), each shard is locked once
per request even when two levels read it, and the request sees one snapshot of all its shards. A
request never waits for a lock while it holds one (a grouped writer holding that shard may be
waiting for one this request holds): the locks ahead are taken without waiting, and if any is
busy, every one is let go and the query reads level by level as above. A query of one level
reads without locking ahead (it would save nothing).

On local disk a read takes microseconds and the hand-off to a thread would cost more, so by
default the option is on only when the store's root is on a network file system or the store
runs on a VFS (the EFS model).

A node is taken to exist, as a ``T``, when the required fields of ``T`` that the selection reads are
present (each shard holds the values of one type only, and a node is written and deleted whole);
the ``_type`` shard is read only when the selection has no required field, for ``node(id:)``, or to
explain a failed lookup. A reference to a deleted node reads as ``null`` with an error.

>>> import tempfile
>>> from efs_sqlite.store import ShardStore
>>> api = GraphQLAPI(ShardStore(tempfile.mkdtemp()))
>>> created = api.execute('mutation { createParty(input: {partyIdentifier: 7, '
...                       'timestamp: "2024-05-01T12:00:00Z"}) { id timestamp } }')
>>> created["data"]["createParty"]["timestamp"]
'2024-05-01T12:00:00+00:00'
>>> pid = created["data"]["createParty"]["id"]
>>> api.execute('query($id: ID!) { party(id: $id) { partyIdentifier claims { totalCount } } }', {"id": pid})
{'data': {'party': {'partyIdentifier': 7, 'claims': {'totalCount': 0}}}}
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache, partial
from typing import Any, NamedTuple

import graphene
from graphene import relay
from graphene.relay.connection import page_info_adapter
from graphene.relay.id_type import BaseGlobalIDType
from graphene.types.resolver import dict_or_attr_resolver
from graphql import (
    DocumentNode,
    ExecutionContext,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    Undefined,
    VariableNode,
    execute_sync,
    get_named_type,
    get_operation_ast,
    located_error,
    parse,
    validate,
)
from graphql import Node as SyntaxNode
from graphql.execution.collect_fields import collect_fields, collect_sub_fields
from graphql.execution.values import get_argument_values
from graphql_relay import connection_from_array_slice, cursor_to_offset

from efs_sqlite import uid as uids
from efs_sqlite.errors import NodeNotFound, OperationNotAllowed, StoreBusy, ValidationError
from efs_sqlite.graph import Graph
from efs_sqlite.model import INSURANCE, TYPE_SHARD, Field, Model, NodeType
from efs_sqlite.store import ShardStore, is_network_filesystem

__all__ = [
    "GraphQLAPI",
    "Limits",
    "build_schema",
    "measure",
    "schema_sdl",
]

log = logging.getLogger(__name__)

_SCALARS: dict[str, type[graphene.Scalar]] = {
    "str": graphene.String,
    "int": graphene.Int,
    "float": graphene.Float,
    "decimal": graphene.Decimal,
    "datetime": graphene.DateTime,
    "bool": graphene.Boolean,
    "bytes": graphene.Base64,
}
_RESERVED = frozenset({"Node", "Query", "Mutation", "PageInfo"})
_INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})
#: Errors whose message is meant for the client; any other exception is logged and masked.
_CLIENT_ERRORS = (GraphQLError, ValidationError, NodeNotFound, StoreBusy)
#: Longer documents are not kept by the document cache, so it stays small in memory.
_MAX_CACHED_CHARS = 100_000


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may ask for; exceeding one is a clear GraphQL error.

    ``max_depth`` counts nested fields (``claim { parties { edges { node { id } } } }`` is 5);
    introspection (``__schema``, ``__type``) has its own ``max_introspection_depth`` since the
    standard introspection query is 13 deep. ``max_fields`` counts every selected field and alias
    with fragments expanded. ``max_page`` bounds ``first``/``last`` and ``nodes(ids:)``;
    ``default_page`` is the page a connection returns without ``first``/``last``. ``max_nodes``
    bounds the nodes one request reads (nested pages multiply). ``max_tokens`` bounds parsing.
    """

    max_depth: int = 10
    max_introspection_depth: int = 15
    max_fields: int = 1000
    max_page: int = 1000
    default_page: int = 100
    max_nodes: int = 100_000
    max_tokens: int = 20_000

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits.{name} must be a positive integer, not {value!r}")
        if self.default_page > self.max_page:
            raise ValueError("Limits.default_page must not exceed max_page")


# -- the Node interface and the objects resolvers return ----------------------------------------


class SmallUIDGlobalID(BaseGlobalIDType):
    """Relay global ids that are plain Small UID strings: the ``_type`` shard supplies the type."""

    graphene_type = graphene.ID

    @classmethod
    def resolve_global_id(cls, info: GraphQLResolveInfo, global_id: str) -> tuple[None, int]:
        return None, _parse_id(global_id)

    @classmethod
    def to_global_id(cls, _type: str, _id: int) -> str:
        return uids.encode(_id)


class Node(relay.Node):
    """An object with an ID"""

    class Meta:
        name = "Node"
        global_id_type = SmallUIDGlobalID

    @classmethod
    def node_resolver(
        cls, only_type: type[graphene.ObjectType] | None, root: Any, info: GraphQLResolveInfo, id: str
    ) -> _Node:
        return info.context.lookup(info, id, only_type._meta.name if only_type else None)

    @classmethod
    def resolve_type(cls, instance: _Node | _Missing, info: GraphQLResolveInfo) -> type[graphene.ObjectType]:
        if isinstance(instance, _Missing):
            raise GraphQLError(instance.message)  # reported at the list item, which becomes null
        return info.schema.get_type(instance.type_name).graphene_type  # type: ignore[union-attr]


class _Node:
    """A node as resolvers see it; its field values are in the request's cache."""

    __slots__ = ("id", "type_name")

    def __init__(self, uid: int, type_name: str) -> None:
        self.id, self.type_name = uid, type_name


class _Missing:
    """An entry of ``nodes(ids:)`` with no node behind it."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


class _Dangling(int):
    """The id in a reference list of a node that no longer exists."""


def _parse_id(value: Any) -> int:
    try:
        uid = uids.decode(value)
    except (TypeError, ValueError) as exc:
        raise GraphQLError(f"invalid id: {exc}") from None
    if uid == 0:
        raise GraphQLError("invalid id: 0 is not a node id")
    return uid


def _dangling(uid: int) -> GraphQLError:
    return GraphQLError(f"node {uids.encode(uid)} no longer exists (a dangling reference)")


# -- schema ------------------------------------------------------------------------------------


class _Connection(relay.Connection):
    class Meta:
        abstract = True

    total_count = graphene.Int(required=True, description="The number of entries in the whole list.")

    class Edge:
        @staticmethod
        def resolve_node(root: Any, info: GraphQLResolveInfo) -> _Node:
            if isinstance(root.node, _Dangling):
                raise _dangling(root.node)
            return root.node


def _lower_camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _read_value(shard: str, root: _Node, info: GraphQLResolveInfo) -> Any:
    return info.context.value(shard, root.id)


def _resolve_ref(shard: str, target: str, root: _Node, info: GraphQLResolveInfo) -> _Node | None:
    req: _Request = info.context
    uid = req.value(shard, root.id)
    if uid is None:
        return None
    if not req.exists(target, uid, req.selection(info, target, info.field_nodes)):
        raise _dangling(uid)
    return _Node(uid, target)


def _check_page_args(limits: Limits, args: dict[str, Any]) -> dict[str, Any]:
    for name in ("first", "last"):
        n = args.get(name)
        if n is not None and not 0 <= n <= limits.max_page:
            raise GraphQLError(f"{name} must be between 0 and {limits.max_page}, not {n}")
    for name in ("after", "before"):
        cursor = args.get(name)
        if cursor is not None:
            offset = cursor_to_offset(cursor)
            # A list position is a signed 64-bit SQLite integer: a larger offset names no entry.
            if offset is None or not 0 <= offset < 2**63:
                raise GraphQLError(f"{name}: {cursor!r} is not a cursor of this list")
    if args.get("first") is None and args.get("last") is None:
        # A 25,000-entry list is never returned whole: no page size means the default page.
        args = {**args, "first": limits.default_page}
    return args


def _window(args: dict[str, Any]) -> tuple[int, int]:
    """A guess at the rows the page needs, read together with the list's length; ``(0, 0)`` when
    the length must be known first (``last`` without ``before``). The guess is checked after."""
    last, before = args.get("last"), args.get("before")
    if last is not None:
        if before is None:
            return 0, 0
        end = cursor_to_offset(before)
        return max(0, end - last), min(last, end)
    after = args.get("after")
    return (0 if after is None else cursor_to_offset(after) + 1), args["first"]


@lru_cache(maxsize=1024)
def _page_layout(count: int, args: tuple[tuple[str, Any], ...]) -> tuple[tuple[tuple[int, str], ...], Any]:
    """The ``(offset, cursor)`` of each edge of the page that ``args`` ask for in a list of
    ``count`` entries, and its ``PageInfo``: graphql-relay's paging arithmetic, kept for the page
    shapes seen last (a page's cursors cost more to work out than to read its rows).

    >>> _page_layout(10, (("first", 2), ("after", "YXJyYXljb25uZWN0aW9uOjQ=")))[0]
    ((5, 'YXJyYXljb25uZWN0aW9uOjU='), (6, 'YXJyYXljb25uZWN0aW9uOjY='))
    """
    edges, page_info = connection_from_array_slice(
        range(count),
        dict(args),
        array_length=count,
        connection_type=lambda edges, pageInfo: (edges, pageInfo),
        page_info_type=page_info_adapter,
    )
    return tuple((edge.node, edge.cursor) for edge in edges), page_info


def _offsets(count: int, args: dict[str, Any]) -> list[int]:
    """The offsets of the page ``args`` ask for in a list of ``count`` entries.

    >>> _offsets(10, {"last": 3}), _offsets(10, {"first": 2, "after": "YXJyYXljb25uZWN0aW9uOjQ="})
    ([7, 8, 9], [5, 6])
    """
    return [offset for offset, _ in _page_layout(count, tuple(sorted(args.items())))[0]]


def _resolve_list(
    shard: str,
    target: str,
    connections: Mapping[str, type[_Connection]],
    root: _Node,
    info: GraphQLResolveInfo,
    **args: Any,
) -> _PageConnection:
    return _list_page(shard, target, connections, root, info, _check_page_args(info.context.api.limits, args))


def _list_page(
    shard: str,
    target: str,
    connections: Mapping[str, type[_Connection]],
    root: _Node,
    info: GraphQLResolveInfo,
    args: dict[str, Any],
) -> _PageConnection:
    """The page of ``root``'s list in ``shard`` that the checked ``args`` ask for."""
    req: _Request = info.context
    return _fill_page(req, shard, target, connections[target], root, args, _list_shape(req, info, target))


class _ListShape(NamedTuple):
    """What a connection field selects: the nodes' selection, if any; whether the page's edges
    are read at all (or only ``totalCount``)."""

    node_nodes: list[FieldNode]
    edges: bool
    selection: _Selection | None


def _list_shape(req: _Request, info: GraphQLResolveInfo, target: str) -> _ListShape:
    node_nodes = req.node_nodes(info, info.return_type, info.field_nodes)
    edges = bool(node_nodes) or req.selects_edges(info, info.return_type, info.field_nodes)
    return _ListShape(node_nodes, edges, req.selection(info, target, node_nodes) if node_nodes else None)


def _fill_page(
    req: _Request,
    shard: str,
    target: str,
    connection_type: type[_Connection],
    root: _Node,
    args: dict[str, Any],
    shape: _ListShape,
) -> _PageConnection:
    page = req.page(shard, root.id, args, connection_type, bool(shape.node_nodes), shape.edges)
    if shape.selection is not None:
        exists, selection = req.exists, shape.selection
        known = req.existing.get((target, id(selection)), ())  # found by the prefetch
        for edge, uid in zip(page.connection.edges, page.ids, strict=True):
            found = uid in known or exists(target, uid, selection)
            edge.node = _Node(uid, target) if found else _Dangling(uid)
    return page.connection


def _resolve_nodes(root: Any, info: GraphQLResolveInfo, ids: list[str]) -> list[_Node | _Missing]:
    req: _Request = info.context
    if len(ids) > req.api.limits.max_page:
        raise GraphQLError(f"nodes(ids:) takes at most {req.api.limits.max_page} ids, not {len(ids)}")
    return req.lookup_many(info, ids)


class _ListField(relay.ConnectionField):
    """A connection whose resolver always returns the connection itself (graphene's wrapper
    would otherwise check for awaitables and iterables on every call)."""

    def wrap_resolve(self, parent_resolver: Any) -> Any:
        return self.resolver


def _output_field(
    t: NodeType,
    f: Field,
    objects: dict[str, type[graphene.ObjectType]],
    connections: dict[str, type[_Connection]],
) -> graphene.Field:
    description = f.description or None
    shard = t.shard(f.name)
    if f.kind == "refs":
        return _ListField(
            lambda: connections[f.target],
            name=f.graphql_name,
            description=description,
            resolver=partial(_resolve_list, shard, f.target, connections),
        )
    if f.kind == "ref":
        return graphene.Field(
            lambda: objects[f.target],
            required=f.required,
            name=f.graphql_name,
            description=description,
            resolver=partial(_resolve_ref, shard, f.target),
        )
    return graphene.Field(
        _SCALARS[f.kind],
        required=f.required,
        name=f.graphql_name,
        description=description,
        resolver=partial(_read_value, shard),
    )


def _input_type(t: NodeType, patch: bool) -> type[graphene.InputObjectType]:
    attrs: dict[str, Any] = {}
    for f in t.fields:
        required = f.required and not patch
        kind: Any = _SCALARS.get(f.kind, graphene.ID)
        if f.kind == "refs":
            kind = graphene.List(graphene.NonNull(graphene.ID))
        attrs[f.name] = graphene.InputField(
            kind, required=required, name=f.graphql_name, description=f.description or None
        )
    if patch:
        suffix, description = "Patch", f"Fields of a {t.name} to change; fields left out keep their value."
    else:
        suffix, description = "Input", f"A new {t.name}."
    attrs["Meta"] = type("Meta", (), {"description": description})
    return type(f"{t.name}{suffix}", (graphene.InputObjectType,), attrs)


def _create(t: NodeType, root: Any, info: GraphQLResolveInfo, input: Mapping[str, Any]) -> _Node:
    req: _Request = info.context
    uid = req.write(lambda g: g.create_node(t.name, dict(input)))
    return req.lookup(info, uids.encode(uid), t.name)


def _update(t: NodeType, root: Any, info: GraphQLResolveInfo, id: str, input: Mapping[str, Any]) -> _Node:
    req: _Request = info.context
    req.write(lambda g: g.update_node(id, dict(input), t.name))
    return req.lookup(info, id, t.name)


def _delete(t: NodeType, root: Any, info: GraphQLResolveInfo, id: str) -> str:
    info.context.write(lambda g: g.delete_node(id, t.name))
    return id


def _edit_list(
    t: NodeType, f: Field, add: bool, root: Any, info: GraphQLResolveInfo, id: str, ids: list[str]
) -> _Node:
    req: _Request = info.context
    if add:
        req.write(lambda g: g.list_add(id, f.name, ids, t.name))
    else:
        req.write(lambda g: g.list_remove(id, f.name, ids, t.name))
    return req.lookup(info, id, t.name)


def _mutation_fields(t: NodeType, obj: type[graphene.ObjectType]) -> dict[str, graphene.Field]:
    fields = {
        f"create_{t.key}": graphene.Field(
            obj,
            name=f"create{t.name}",
            input=_input_type(t, patch=False)(required=True),
            resolver=partial(_create, t),
            description=f"Create a {t.name}; every field is written in one atomic write.",
        ),
        f"update_{t.key}": graphene.Field(
            obj,
            name=f"update{t.name}",
            id=graphene.ID(required=True),
            input=_input_type(t, patch=True)(required=True),
            resolver=partial(_update, t),
            description=f"Change fields of a {t.name}; fields left out keep their value, null clears.",
        ),
        f"delete_{t.key}": graphene.Field(
            graphene.ID,
            name=f"delete{t.name}",
            id=graphene.ID(required=True),
            resolver=partial(_delete, t),
            description=f"Delete a {t.name}: all its fields; returns its id.",
        ),
    }
    for f in t.fields:
        if f.kind != "refs":
            continue
        suffix = f.graphql_name[:1].upper() + f.graphql_name[1:]
        for verb, add in (("add", True), ("remove", False)):
            fields[f"{verb}_{t.key}_{f.name}"] = graphene.Field(
                obj,
                name=f"{verb}{t.name}{suffix}",
                id=graphene.ID(required=True),
                ids=graphene.List(graphene.NonNull(graphene.ID), required=True),
                resolver=partial(_edit_list, t, f, add),
                description=(
                    f"Append {f.target} nodes to {f.graphql_name}."
                    if add
                    else f"Remove every occurrence of these {f.target} nodes from {f.graphql_name}."
                ),
            )
    return fields


def build_schema(model: Model = INSURANCE) -> graphene.Schema:
    """The graphene schema of ``model``; execute it through :class:`GraphQLAPI`.

    >>> schema = build_schema()
    >>> print(str(schema.graphql_schema.get_type("Transaction").fields["amount"].type))
    Decimal!
    """
    clash = _RESERVED.intersection(model.types)
    if clash:
        raise ValueError(f"type names {sorted(clash)} are taken by the GraphQL schema itself")
    objects: dict[str, type[graphene.ObjectType]] = {}
    connections: dict[str, type[_Connection]] = {}
    for t in model.types.values():
        attrs: dict[str, Any] = {f.name: _output_field(t, f, objects, connections) for f in t.fields}
        attrs["Meta"] = type("Meta", (), {"interfaces": (Node,), "description": t.description or None})
        objects[t.name] = type(t.name, (graphene.ObjectType,), attrs)
    for name, obj in objects.items():
        meta = type("Meta", (), {"node": obj, "description": f"A page of a list of {name} nodes."})
        connections[name] = type(f"{name}Connection", (_Connection,), {"Meta": meta})

    query: dict[str, Any] = {
        "node": Node.Field(description="The node with this id, whatever its type."),
        "nodes": graphene.List(
            Node,
            required=True,
            ids=graphene.List(graphene.NonNull(graphene.ID), required=True),
            resolver=_resolve_nodes,
            description="The nodes with these ids, in order; null (and an error) for a missing one.",
        ),
    }
    mutation: dict[str, Any] = {}
    for t in model.types.values():
        query[t.key] = Node.Field(
            objects[t.name],
            name=_lower_camel(t.name),
            description=f"The {t.name} with this id; null and an error if there is none.",
        )
        mutation.update(_mutation_fields(t, objects[t.name]))
    return graphene.Schema(
        query=type("Query", (graphene.ObjectType,), query),
        mutation=type("Mutation", (graphene.ObjectType,), mutation),
        types=list(objects.values()),
    )


def schema_sdl(model: Model = INSURANCE) -> str:
    """The schema of ``model`` in GraphQL SDL, as ``efs-sqlite schema`` prints it."""
    return str(build_schema(model)) + "\n"


# -- limits ------------------------------------------------------------------------------------


def measure(document: DocumentNode) -> tuple[int, int, int]:
    """``(depth, fields, introspection depth)`` of ``document``, fragments expanded.

    Fragments are measured once each, so a "fragment bomb" costs linear time to measure.

    >>> measure(parse("{ claim(id: 1) { parties { edges { node { id } } } } }"))
    (5, 5, 0)
    >>> measure(parse("{ a: __typename b: __typename ...F } fragment F on Query { c: __typename }"))
    (1, 3, 0)
    """
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    memo: dict[str, tuple[int, int, int]] = {}

    def walk(selection_set: SelectionSetNode | None) -> tuple[int, int, int]:
        depth = count = intro = 0
        for sel in selection_set.selections if selection_set else ():
            if isinstance(sel, FieldNode):
                d, c, i = walk(sel.selection_set)
                if sel.name.value in _INTROSPECTION_ROOTS:
                    intro = max(intro, 1 + max(d, i))
                else:
                    depth, intro = max(depth, 1 + d), max(intro, i)
                count += 1 + c
                continue
            if isinstance(sel, InlineFragmentNode):
                d, c, i = walk(sel.selection_set)
            else:
                name = sel.name.value
                if name not in memo:
                    memo[name] = (0, 0, 0)  # a cycle (which validation reports) measures as nothing
                    if name in fragments:
                        memo[name] = walk(fragments[name].selection_set)
                d, c, i = memo[name]
            depth, count, intro = max(depth, d), count + c, max(intro, i)
        return depth, count, intro

    totals = [
        walk(d.selection_set) for d in document.definitions if not isinstance(d, FragmentDefinitionNode)
    ]
    return (
        max((t[0] for t in totals), default=0),
        sum(t[1] for t in totals),
        max((t[2] for t in totals), default=0),
    )


def _limit_errors(document: DocumentNode, limits: Limits) -> list[GraphQLError]:
    depth, fields, intro = measure(document)
    errors = []
    if depth > limits.max_depth:
        errors.append(f"the query is {depth} fields deep; the limit is {limits.max_depth}")
    if intro > limits.max_introspection_depth:
        errors.append(
            f"the introspection query is {intro} fields deep; the limit is {limits.max_introspection_depth}"
        )
    if fields > limits.max_fields:
        errors.append(
            f"the query selects {fields} fields (aliases and fragments expanded); "
            f"the limit is {limits.max_fields}"
        )
    return [GraphQLError(e) for e in errors]


# -- per-request state ---------------------------------------------------------------------------


class _Selection(NamedTuple):
    """What one selection set asks of the nodes of one type."""

    shards: tuple[str, ...]  # plain and single-reference fields to read
    required: tuple[str, ...]  # those of required fields: present exactly when the node exists
    reads: tuple[str, ...]  # the value shards a level reads: ``shards``, and ``_type`` if no required
    refs: tuple[tuple[str, str, list[FieldNode]], ...]  # (shard, target type, selection) followed
    lists: tuple[tuple[str, str, dict[str, Any], type[_Connection], list[FieldNode], tuple[int, int]], ...]
    # ^ connections: (shard, target type, checked page arguments, connection type, node selection,
    #   the window read with the lengths: see _window, (0, 0) when no node is selected)


class _Edge:
    """An edge of a page: what the ``<Type>Edge`` fields read (``node``, ``cursor``), without
    the cost of building a graphene object for each."""

    __slots__ = ("cursor", "node")

    def __init__(self, node: Any, cursor: str) -> None:
        self.node, self.cursor = node, cursor


class _PageConnection:
    """A page of a list: what the ``<Type>Connection`` fields read (``edges``, ``page_info``,
    ``total_count``)."""

    __slots__ = ("edges", "page_info", "total_count")

    def __init__(self, edges: list[_Edge], page_info: Any, total_count: int) -> None:
        self.edges, self.page_info, self.total_count = edges, page_info, total_count


#: The roots of one prefetch: ``(type, ids, selection)`` entries.
_Level = list[tuple[str, list[int], list[FieldNode]]]


class _Page(NamedTuple):
    connection: _PageConnection  # each edge's node its offset until _resolve_list fills it in
    ids: list[int]  # the node ids of the edges (empty when no node is selected)


class _Read(NamedTuple):
    """Reads of one shard: ``fetch`` runs them (on any thread), ``merge`` files their result in
    the request's caches (on the request's thread)."""

    shard: str
    fetch: Callable[[], Any]
    merge: Callable[[Any], None]


def _merge_values(cache: dict[int, Any], ids: list[int], found: dict[int, Any]) -> None:
    if len(found) < len(ids):
        cache.update(dict.fromkeys(ids))  # the ids not found: None
    cache.update(found)


def _fetch_lists(
    store: ShardStore, shard: str, uncounted: list[int], windows: dict[tuple[int, int], list[int]]
) -> tuple[dict[int, int], dict[tuple[int, int], dict[int, list[int]]]]:
    """The lengths of the ``uncounted`` lists and the ``(offset, limit)`` windows of lists, from
    one snapshot: one statement when one window is read of lists not counted yet (a level's
    usual case), else one statement each, in one read transaction."""
    if len(windows) == 1:
        [(window, group)] = windows.items()
        if uncounted and set(uncounted) <= set(group):
            counts, pages = store.list_window_many(shard, group, *window)
            return {uid: counts[uid] for uid in uncounted}, {window: pages}
    with store.read() if bool(uncounted) + len(windows) > 1 else contextlib.nullcontext():
        counts = store.list_count_many(shard, uncounted) if uncounted else {}
        pages = {window: store.list_page_many(shard, group, *window) for window, group in windows.items()}
    return counts, pages


class _Request:
    """The caches of one request (the resolvers' context): values, list lengths and list pages
    read, by shard; connections built. Also the request's node budget, the lookahead
    (``selections``) it shares with the other requests of the same document and variables, and,
    during a prefetch with ``parallel_reads``, its reader threads (``lane``) and the shards whose
    read transactions they hold (``held``: see :meth:`prefetch`).

    When the compiled execution gives up and graphql-core runs the operation again, the prefetches
    that were made are not made again (``prefetched``), and an error of the store that made it give
    up is raised again by the first read that is not in the caches (``replay``): the read that
    failed. So graphql-core reports that failure where it happened, once, instead of a retry
    quietly answering (or, for a busy shard, waiting for it a second time)."""

    __slots__ = (
        "api",
        "budget",
        "counts",
        "existing",
        "held",
        "lane",
        "lists",
        "pages",
        "prefetched",
        "prepared",
        "replay",
        "selections",
        "values",
    )

    def __init__(self, api: GraphQLAPI, prepared: _Prepared) -> None:
        self.api = api
        self.prepared = prepared
        self.budget = api.limits.max_nodes
        self.values: dict[str, dict[int, Any]] = {}
        self.lists: dict[str, dict[tuple[int, int, int], list[int]]] = {}
        self.counts: dict[str, dict[int, int]] = {}
        self.pages: dict[tuple[Any, ...], _Page] = {}
        self.selections: dict[tuple[Any, ...], Any] = {}  # replaced by the plan's (see _Execution)
        self.lane: _Lane | None = None
        self.held: set[str] | None = None
        self.prefetched: set[tuple[Any, ...]] = set()
        self.existing: dict[tuple[str, int], set[int]] = {}  # (type, id(selection)): nodes found
        self.replay: BaseException | None = None

    def _replay(self) -> None:
        if self.replay is not None:
            error, self.replay = self.replay, None
            raise error

    # -- reads, cached ----------------------------------------------------------------------------

    def _values_read(self, shard: str, ids: Iterable[int]) -> _Read | None:
        """The read of the values of ``ids`` not read yet from ``shard`` (one ``get_many``)."""
        cache = self.values.setdefault(shard, {})
        missing = [uid for uid in dict.fromkeys(ids) if uid not in cache]
        if not missing:
            return None
        return _Read(
            shard, partial(self.api.store.get_many, shard, missing), partial(_merge_values, cache, missing)
        )

    def _lists_read(self, shard: str, keys: Iterable[tuple[int, int, int]]) -> _Read | None:
        """The read of the ``(uid, offset, limit)`` windows of lists not read yet from ``shard``,
        and of the lengths not known yet: one count and one page read per window size."""
        cache, counts = self.lists.setdefault(shard, {}), self.counts.setdefault(shard, {})
        missing = [k for k in dict.fromkeys(keys) if k not in cache]
        if not missing:
            return None
        uncounted = list(dict.fromkeys(uid for uid, _, _ in missing if uid not in counts))
        windows: dict[tuple[int, int], list[int]] = {}
        for uid, offset, limit in missing:
            if limit:
                windows.setdefault((offset, limit), []).append(uid)
            else:
                cache[(uid, offset, limit)] = []  # only the length is asked for
        return _Read(
            shard,
            partial(_fetch_lists, self.api.store, shard, uncounted, windows),
            partial(self._merge_lists, shard),
        )

    def _merge_lists(
        self, shard: str, result: tuple[dict[int, int], dict[tuple[int, int], dict[int, list[int]]]]
    ) -> None:
        counts, pages = result
        self.counts[shard].update(counts)
        cache = self.lists[shard]
        for (offset, limit), found in pages.items():
            for uid, page in found.items():
                cache[(uid, offset, limit)] = page

    def _run(self, reads: Iterable[_Read | None]) -> None:
        """Make ``reads`` (of distinct shards) and keep their results: at once, one thread per
        shard, with ``parallel_reads``; else one after another. Inside a lock-ahead every read
        runs on the thread that holds its shard's read transaction (even a single one)."""
        todo = [r for r in reads if r is not None]
        if todo and self.replay is not None:
            self._replay()
        if self.held is not None and todo:
            if all(r.shard in self.held for r in todo):
                assert self.lane is not None
                self._on_readers(self.lane, todo)
                return
            # A shard the plan did not foresee: a writer may hold it while it waits for one held
            # here, so let go of every lock before reading it (and read on as without lock-ahead).
            self._release()
        if len(todo) > 1 and self.api.parallel_reads:
            if self.lane is not None:
                self._on_readers(self.lane, todo)
            else:
                with self.api._lane() as lane:
                    self._on_readers(lane, todo)
            return
        for r in todo:
            r.merge(r.fetch())

    @staticmethod
    def _on_readers(lane: _Lane, todo: list[_Read]) -> None:
        """Run ``todo`` at once on the reader threads of their shards; merge here."""
        futures = [lane.reader(r.shard).submit(r.fetch) for r in todo]
        wait(futures)  # every read has ended before an error surfaces: none outlives the request
        for r, future in zip(todo, futures, strict=True):
            r.merge(future.result())

    def read(self, shard: str, ids: Iterable[int]) -> None:
        """Read the values of ``ids`` not read yet from ``shard``: one ``get_many``."""
        self._run([self._values_read(shard, ids)])

    def value(self, shard: str, uid: int) -> Any:
        try:
            return self.values[shard][uid]
        except KeyError:
            self.read(shard, [uid])
            return self.values[shard][uid]

    def read_lists(self, shard: str, keys: Iterable[tuple[int, int, int]]) -> None:
        """Read the ``(uid, offset, limit)`` windows of lists not read yet from ``shard``, and the
        lengths not known yet: one count and one page read per window size, from one snapshot."""
        self._run([self._lists_read(shard, keys)])

    def list_window(self, shard: str, key: tuple[int, int, int]) -> tuple[int, list[int]]:
        """The length of the list at ``key[0]`` and the window ``key``."""
        cache = self.lists.get(shard)
        if cache is None or key not in cache:
            self.read_lists(shard, [key])
        return self.counts[shard][key[0]], self.lists[shard][key]

    def exists(self, type_name: str, uid: int, selection: _Selection) -> bool:
        """Whether ``uid`` is a ``type_name`` node: its selected required fields are present, or
        else the ``_type`` shard says so."""
        if selection.required:
            values = self.values
            try:  # from the cache, without a call per field: this runs for every node
                return None not in [values[shard][uid] for shard in selection.required]
            except KeyError:
                return all(self.value(shard, uid) is not None for shard in selection.required)
        return self.value(TYPE_SHARD, uid) == type_name

    def _existing(self, type_name: str, ids: list[int], selection: _Selection) -> list[int]:
        """Those of ``ids`` that are ``type_name`` nodes (:meth:`exists` for each, one pass per
        shard instead of a call per node)."""
        try:
            for shard in selection.required:
                values = self.values[shard]
                ids = [u for u in ids if values[u] is not None]
        except KeyError:  # not all read: one by one (exists reads what it lacks)
            pass
        else:
            if selection.required:
                return ids
        return [u for u in ids if self.exists(type_name, u, selection)]

    def page(
        self,
        shard: str,
        uid: int,
        args: dict[str, Any],
        connection_type: type[_Connection],
        with_ids: bool,
        with_edges: bool = True,
    ) -> _Page:
        """The page of the list at ``uid`` that ``args`` ask for (built once per request);
        without ``with_edges``, only its ``totalCount``."""
        arguments = tuple(sorted(args.items()))
        key = (shard, uid, connection_type, with_ids, with_edges, arguments)
        page = self.pages.get(key)
        if page is not None:
            return page
        start, limit = _window(args) if with_ids else (0, 0)
        count, rows = self.list_window(shard, (uid, start, limit))
        if not with_edges:  # the offsets and cursors of a page nobody reads are not worked out
            page = self.pages[key] = _Page(_PageConnection([], None, count), [])
            return page
        layout, page_info = _page_layout(count, arguments)
        connection = _PageConnection([_Edge(offset, cursor) for offset, cursor in layout], page_info, count)
        ids: list[int] = []
        if with_ids and connection.edges:
            lo, hi = connection.edges[0].node, connection.edges[-1].node + 1
            if start <= lo and hi <= start + len(rows):
                ids = rows[lo - start : hi - start]
            else:  # the guess missed (``last`` without ``before``): read the exact window
                ids = self.list_window(shard, (uid, lo, hi - lo))[1]
                connection.edges = connection.edges[: len(ids)]  # the list shrank meanwhile
        page = self.pages[key] = _Page(connection, ids)
        return page

    def write(self, change: Callable[[Graph], Any]) -> Any:
        """Run a change through the Graph, then forget everything read so far in this request."""
        result = change(self.api.graph)
        for cache in (self.values, self.lists, self.counts, self.pages, self.existing, self.prefetched):
            cache.clear()
        return result

    # -- lookahead --------------------------------------------------------------------------------

    def selection(self, info: GraphQLResolveInfo, type_name: str, field_nodes: list[FieldNode]) -> _Selection:
        """What ``field_nodes`` select of a ``type_name`` node (worked out once per plan)."""
        key = (type_name, *map(id, field_nodes))
        selection = self.selections.get(key)
        if selection is None:
            selection = self.selections[key] = self._analyse(info, type_name, field_nodes)
        return selection

    def _analyse(self, info: GraphQLResolveInfo, type_name: str, field_nodes: list[FieldNode]) -> _Selection:
        object_type = info.schema.get_type(type_name)
        assert isinstance(object_type, GraphQLObjectType)
        t, by_name = self.api.model.type(type_name), self.api.fields_by_graphql_name[type_name]
        shards: dict[str, bool] = {}
        refs, lists = [], []
        selected = collect_sub_fields(
            info.schema, info.fragments, info.variable_values, object_type, field_nodes
        )
        for nodes in selected.values():
            f = by_name.get(nodes[0].name.value)
            if f is None:  # id, __typename
                continue
            shard = t.shard(f.name)
            if f.kind != "refs":
                shards[shard] = f.required
                if f.kind == "ref":
                    refs.append((shard, f.target, nodes))
                continue
            field_def = object_type.fields[f.graphql_name]
            try:
                args = _check_page_args(
                    self.api.limits, get_argument_values(field_def, nodes[0], info.variable_values)
                )
            except GraphQLError:
                continue  # the resolver reports it
            connection = get_named_type(field_def.type)
            node_nodes = self.node_nodes(info, connection, nodes)
            window = _window(args) if node_nodes else (0, 0)
            lists.append((shard, f.target, args, connection.graphene_type, node_nodes, window))
        required = tuple(s for s, is_required in shards.items() if is_required)
        return _Selection(
            tuple(shards),
            required,
            tuple(shards) if required else (*shards, TYPE_SHARD),
            tuple(refs),
            tuple(lists),
        )

    def node_nodes(
        self, info: GraphQLResolveInfo, connection: Any, field_nodes: list[FieldNode]
    ) -> list[FieldNode]:
        """The selection of ``edges { node { ... } }`` under a connection field (cached)."""
        key = ("node", *map(id, field_nodes))
        nodes = self.selections.get(key)
        if nodes is None:
            edges = _sub_nodes(info, connection, field_nodes, "edges")
            edge_type = get_named_type(connection).fields["edges"].type
            nodes = self.selections[key] = _sub_nodes(info, edge_type, edges, "node") if edges else []
        return nodes

    def selects_edges(self, info: GraphQLResolveInfo, connection: Any, field_nodes: list[FieldNode]) -> bool:
        """Whether a connection field selects more than ``totalCount`` (cached)."""
        key = ("edges", *map(id, field_nodes))
        edges = self.selections.get(key)
        if edges is None:
            parent = get_named_type(connection)
            fields = collect_sub_fields(
                info.schema, info.fragments, info.variable_values, parent, field_nodes
            )
            names = {nodes[0].name.value for nodes in fields.values()}
            edges = self.selections[key] = bool(names - {"totalCount", "__typename"})
        return edges  # type: ignore[no-any-return]

    def prefetch(self, info: GraphQLResolveInfo, level: _Level) -> None:
        """Read what the selections below these ``(type, ids, selection)`` ask for, level by level:
        per level, one read per shard of values and one per shard of list pages.

        With ``parallel_reads`` the request takes a lane of reader threads for the prefetch and,
        when it reads more than one level, first locks ahead (:meth:`_lock_ahead`): a read
        transaction on every shard the plan says it may read, all at once; every level then reads
        inside them, and they all end, at once, before this returns (also on an error)."""
        key = tuple((t, tuple(ids), *map(id, nodes)) for t, ids, nodes in level)
        if key in self.prefetched:  # before the compiled execution gave up: all in the caches
            return
        self._replay()
        budget = self.budget
        try:
            self._prefetch(info, level)
        except BaseException:
            self.budget = budget  # graphql-core may run it again: its nodes are not counted twice
            raise
        self.prefetched.add(key)

    def _prefetch(self, info: GraphQLResolveInfo, level: _Level) -> None:
        if not self.api.parallel_reads or self.lane is not None:
            self._levels(info, level)
            return
        with self.api._lane() as lane:
            self.lane = lane
            try:
                self._lock_ahead(info, level)
                try:
                    self._levels(info, level)
                except BaseException:
                    self._release(quiet=True)  # the first error is the one to report
                    raise
                self._release()
            finally:
                self.lane = None

    def _ahead(self, info: GraphQLResolveInfo, level: _Level) -> list[str]:
        """The shards a prefetch of ``level`` may read at any depth, from the plan alone (no data
        read): each selection's value shards and list shards, then those of the selections its
        references and lists lead to. Empty when it reads one level only: each shard is then read
        once, all at once, and holding them ahead would save nothing. Kept with the plan."""
        roots = [(t, nodes) for t, ids, nodes in level if ids]
        key = ("ahead", *((t, *map(id, nodes)) for t, nodes in roots))
        shards = self.selections.get(key)
        if shards is None:
            found: dict[str, None] = {}
            seen: set[tuple[Any, ...]] = set()
            todo, deep = list(roots), False
            while todo:  # a document is finite, so is its tree of selections
                t, nodes = todo.pop()
                if (t, *map(id, nodes)) in seen:
                    continue
                seen.add((t, *map(id, nodes)))
                sel = self.selection(info, t, nodes)
                found.update(dict.fromkeys(sel.reads))
                found.update(dict.fromkeys(shard for shard, *_ in sel.lists))
                below = [(target, sub) for _, target, sub in sel.refs]
                below += [(target, sub) for _, target, _, _, sub, _ in sel.lists if sub]
                deep = deep or bool(below)
                todo += below
            shards = self.selections[key] = tuple(found) if deep else ()
        return list(shards)

    def _lock_ahead(self, info: GraphQLResolveInfo, level: _Level) -> None:
        """Begin a read transaction on each shard of :meth:`_ahead`, each on its reader thread,
        all at once: one lock cycle per shard for the whole prefetch however many levels read it,
        and every later level's warm pages come from SQLite's page cache, with no round trip.

        Never wait while holding: a grouped writer may hold one shard (PENDING or EXCLUSIVE) while
        it waits for another that this request would hold, a deadlock until a busy timeout. So
        the locks are taken without waiting; if any is busy (or fails), every one is let go and
        the prefetch reads as without lock-ahead, waiting for a lock only while holding none."""
        shards = self._ahead(info, level)
        if not shards:
            return
        assert self.lane is not None
        lane, store = self.lane, self.api.store
        futures = [lane.reader(shard).submit(store.begin_read, shard, wait=False) for shard in shards]
        self.held = set(shards)  # tried: each of these threads ends its reads in _release
        wait(futures)
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors or not all(f.result() for f in futures):
            self._release(quiet=bool(errors))
            if errors:
                raise errors[0]

    def _release(self, quiet: bool = False) -> None:
        """End the lock-ahead's read transactions, all at once on their threads, and wait for
        them: a request never returns while it holds a lock. A failure to end one still ends the
        others (the store closes a connection whose commit failed, which lets go of its lock); it
        is raised, or only logged when ``quiet`` (another error is on its way)."""
        held, self.held = self.held, None
        if not held:
            return
        assert self.lane is not None
        lane, store = self.lane, self.api.store
        futures = [lane.reader(shard).submit(store.end_reads) for shard in held]
        wait(futures)
        for future in futures:
            error = future.exception()
            if error is not None:
                if not quiet:
                    raise error
                log.warning("ending a lock-ahead read transaction failed", exc_info=error)

    def _levels(self, info: GraphQLResolveInfo, level: _Level) -> None:
        """The reads of :meth:`prefetch`, level by level."""
        while level:
            work = [(t, ids, self.selection(info, t, nodes)) for t, ids, nodes in level]
            for _, ids, _ in work:
                self.budget -= len(ids)
            if self.budget < 0:
                raise GraphQLError(
                    f"the request reads more than {self.api.limits.max_nodes} nodes; ask for smaller pages"
                )
            wanted: dict[str, list[int]] = {}
            windows: dict[str, list[tuple[int, int, int]]] = {}
            for _, ids, sel in work:
                for shard in sel.reads:
                    wanted[shard] = wanted.get(shard, []) + ids
                # Lists too are read for every id: filtering them by the values first would make
                # two rounds of a level.
                for shard, _target, _args, _conn, _nodes, (start, limit) in sel.lists:
                    windows[shard] = windows.get(shard, []) + [(u, start, limit) for u in ids]
            reads = [self._values_read(shard, ids) for shard, ids in wanted.items()]
            reads += [self._lists_read(shard, keys) for shard, keys in windows.items()]
            self._run(reads)
            work = [(t, self._existing(t, ids, sel), sel) for t, ids, sel in work]
            if any(sel.lists for _, _, sel in work):
                self._exact_pages(work)
            level = []
            for t, ids, sel in work:
                # _fill_page then needs not ask again
                self.existing.setdefault((t, id(sel)), set()).update(ids)
                for shard, target, nodes in sel.refs:
                    targets = [v for v in (self.value(shard, u) for u in ids) if v is not None]
                    if targets:
                        level.append((target, targets, nodes))
                for shard, target, args, connection_type, nodes, _in_window in sel.lists:
                    if nodes:
                        found = [i for u in ids for i in self.page(shard, u, args, connection_type, True).ids]
                        if found:
                            level.append((target, found, nodes))

    def _exact_pages(self, work: list[tuple[str, list[int], _Selection]]) -> None:
        """Read the pages of ``last`` without ``before`` of a level, which needed the lengths
        first: one more read per shard, for all of them."""
        exact: dict[str, list[tuple[int, int, int]]] = {}
        for _, ids, sel in work:
            for shard, _target, args, _conn, nodes, window in sel.lists:
                if nodes and window == (0, 0):
                    for u in ids:
                        offsets = _offsets(self.counts[shard][u], args)
                        if offsets:
                            exact.setdefault(shard, []).append((u, offsets[0], len(offsets)))
        if exact:
            self._run([self._lists_read(shard, keys) for shard, keys in exact.items()])

    # -- root lookups -----------------------------------------------------------------------------

    def lookup(self, info: GraphQLResolveInfo, id: str, type_name: str | None) -> _Node:
        """The node with the string ``id`` (of ``type_name`` if given), its selection read."""
        uid = _parse_id(id)
        if type_name is None:
            type_name = self.value(TYPE_SHARD, uid)
            if type_name is None:
                raise GraphQLError(f"no node has the id {id}")
        self.prefetch(info, [(type_name, [uid], info.field_nodes)])
        if not self.exists(type_name, uid, self.selection(info, type_name, info.field_nodes)):
            found = self.value(TYPE_SHARD, uid)
            if found is None or found == type_name:
                raise GraphQLError(f"no node has the id {id}")
            raise GraphQLError(f"node {id} is a {found}, not a {type_name}")
        return _Node(uid, type_name)

    def lookup_many(self, info: GraphQLResolveInfo, ids: list[str]) -> list[_Node | _Missing]:
        """The nodes of ``nodes(ids:)``, whatever their types, read together."""
        parsed: list[int | _Missing] = []
        for id in ids:
            try:
                parsed.append(_parse_id(id))
            except GraphQLError as error:
                parsed.append(_Missing(error.message))
        self.read(TYPE_SHARD, [u for u in parsed if isinstance(u, int)])
        by_type: defaultdict[str, list[int]] = defaultdict(list)
        for u in parsed:
            if isinstance(u, int) and self.value(TYPE_SHARD, u) is not None:
                by_type[self.value(TYPE_SHARD, u)].append(u)
        self.prefetch(info, [(t, group, info.field_nodes) for t, group in by_type.items()])
        out: list[_Node | _Missing] = []
        for id, u in zip(ids, parsed, strict=True):
            if isinstance(u, _Missing):
                out.append(u)
            elif (t := self.value(TYPE_SHARD, u)) is None:
                out.append(_Missing(f"no node has the id {id}"))
            else:
                out.append(_Node(u, t))
        return out


def _sub_nodes(
    info: GraphQLResolveInfo, parent_type: Any, field_nodes: list[FieldNode], name: str
) -> list[FieldNode]:
    """The field nodes of every selection of ``name`` (aliases included) under ``field_nodes``."""
    parent = get_named_type(parent_type)
    assert isinstance(parent, GraphQLObjectType)
    fields = collect_sub_fields(info.schema, info.fragments, info.variable_values, parent, field_nodes)
    return [node for nodes in fields.values() for node in nodes if node.name.value == name]


# -- the API -----------------------------------------------------------------------------------


class _Lane:
    """Reader threads of ``parallel_reads``, one per shard, each keeping its own connection to
    its shard warm. One request uses a lane at a time, so none of its reads ever queues behind
    another request's read (which may be waiting for a lock) while it holds locks of its own."""

    __slots__ = ("generation", "name", "readers")

    def __init__(self, name: str, generation: int) -> None:
        self.name, self.generation = name, generation
        self.readers: dict[str, ThreadPoolExecutor] = {}

    def reader(self, shard: str) -> ThreadPoolExecutor:
        """The thread that reads ``shard`` in this lane (started on first use, then kept)."""
        reader = self.readers.get(shard)
        if reader is None:
            reader = self.readers[shard] = ThreadPoolExecutor(1, f"{self.name}-{shard}")
        return reader

    def shutdown(self, wait: bool = True) -> None:
        for reader in self.readers.values():
            reader.shutdown(wait=wait)


#: Plans kept per document (one per combination of the variables its lookahead depends on).
_MAX_PLANS = 64


class _Plan(NamedTuple):
    """What requests of one document, operation and lookahead variables share (filled lazily)."""

    selections: dict[tuple[Any, ...], Any]  # _Request.selection and node_nodes
    subfields: dict[tuple[Any, ...], Any]  # graphql-core's collected sub-fields per object
    compiled: dict[tuple[Any, ...], Any]  # _Execution's compiled fields per object selection


class _Prepared:
    """A parsed and validated document (or its errors), and the plans of its requests."""

    __slots__ = ("document", "errors", "lookahead", "plans")

    def __init__(self, document: DocumentNode | None, errors: tuple[GraphQLError, ...]) -> None:
        self.document, self.errors = document, errors
        self.lookahead: dict[int, tuple[str, ...]] = {}  # id(operation) -> its lookahead variables
        self.plans: dict[tuple[Any, ...], _Plan] = {}


def _lookahead_variables(
    operation: OperationDefinitionNode, fragments: Mapping[str, FragmentDefinitionNode]
) -> tuple[str, ...]:
    """The variables used below the root fields of ``operation`` (in arguments and directives):
    the lookahead and the sub-fields of every object depend on those and on nothing else.

    >>> doc = parse('query($id: ID!, $n: Int, $x: Boolean!) { claim(id: $id) { ...F } } '
    ...             'fragment F on Claim { parties(first: $n) { totalCount @include(if: $x) } }')
    >>> _lookahead_variables(doc.definitions[0], {"F": doc.definitions[1]})
    ('n', 'x')
    """
    names: dict[str, None] = {}
    expanded: set[str] = set()

    def below(node: SyntaxNode) -> None:
        if isinstance(node, VariableNode):
            names[node.name.value] = None
            return
        if isinstance(node, FragmentSpreadNode) and node.name.value not in expanded:
            expanded.add(node.name.value)
            if node.name.value in fragments:
                below(fragments[node.name.value])
        for key in node.keys:
            child = getattr(node, key)
            for item in child if isinstance(child, list | tuple) else (child,):
                if isinstance(item, SyntaxNode):
                    below(item)

    roots: set[str] = set()

    def root(selection_set: SelectionSetNode) -> None:
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                if sel.selection_set is not None:
                    below(sel.selection_set)
            elif isinstance(sel, InlineFragmentNode):
                root(sel.selection_set)
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value not in roots:
                roots.add(sel.name.value)
                if sel.name.value in fragments:
                    root(fragments[sel.name.value].selection_set)

    root(operation.selection_set)
    return tuple(names)


def _frozen(value: Any) -> Any:
    """A hashable stand-in for a coerced variable value (lists and input objects included)."""
    if isinstance(value, dict):
        return (dict, tuple(sorted((k, _frozen(v)) for k, v in value.items())))
    if isinstance(value, list):
        return (list, tuple(map(_frozen, value)))
    return value


def _stored(shard: str, ctx: _Execution, node: _Node) -> Any:
    req: _Request = ctx.context_value
    try:  # what req.value does, one call less: this runs for most fields of a response
        return req.values[shard][node.id]
    except KeyError:
        return req.value(shard, node.id)


def _node_id(ctx: _Execution, node: _Node) -> str:
    return uids.encode(node.id)


def _edge_node(ctx: _Execution, edge: Any) -> _Node:
    node = edge.node  # what _Connection.Edge.resolve_node does, one call less
    if type(node) is _Dangling:
        raise _dangling(node)
    return node  # type: ignore[no-any-return]


class _Direct(NamedTuple):
    """A field :class:`_Execution` answers without a resolver call: a model field holding a
    scalar, ``id``, and the ``node`` of an edge. ``get(execution, parent)`` is the field's value."""

    get: Callable[[_Execution, Any], Any]
    named: GraphQLLeafType | GraphQLObjectType
    type: GraphQLOutputType  # ``named``, or non-null of it


class _Unsupported(Exception):
    """The operation asks for something the compiled execution leaves to graphql-core."""


_UNSUPPORTED = ("unsupported",)


class _Root:
    """The source of the root fields (none of their resolvers reads it)."""


def _constant(value: Any, ctx: Any, source: Any) -> Any:
    return value


def _attribute(resolve: Callable[..., Any], ctx: _Execution, source: Any) -> Any:
    return resolve(source, None)


def _resolved(
    parent: GraphQLObjectType, field_def: Any, nodes: list[FieldNode], ctx: _Execution, source: Any
) -> Any:
    """The field's own resolver, called with the resolve info and arguments graphql-core gives."""
    info = ctx.build_resolve_info(field_def, nodes, parent, None)  # type: ignore[arg-type]
    node = nodes[0]
    if len(node.arguments) == len(field_def.args) == 1 and isinstance(node.arguments[0].value, VariableNode):
        # One argument given as a variable (``claim(id: $id)``), already coerced with the others:
        # what get_argument_values would find, unless it is absent or null (then it has to say so).
        [(name, arg)] = field_def.args.items()
        value = ctx.variable_values.get(node.arguments[0].value.name.value)
        if value is not None and node.arguments[0].name.value == name:
            return field_def.resolve(source, info, **{arg.out_name or name: value})
    return field_def.resolve(source, info, **get_argument_values(field_def, node, ctx.variable_values))


def _list_field(
    spec: tuple[Any, ...],
    parent: GraphQLObjectType,
    field_def: Any,
    nodes: list[FieldNode],
    checked: list[dict[str, Any]],
    ctx: _Execution,
    source: Any,
) -> _PageConnection:
    """A reference list: :func:`_resolve_list` with its arguments checked and its shape worked
    out once per plan (they depend only on the plan's variables), kept in ``checked``."""
    req: _Request = ctx.context_value
    if not checked:
        args = _check_page_args(req.api.limits, get_argument_values(field_def, nodes[0], ctx.variable_values))
        info = ctx.build_resolve_info(field_def, nodes, parent, None)  # type: ignore[arg-type]
        checked += [args, _list_shape(req, info, spec[1])]
    shard, target, connections = spec
    return _fill_page(req, shard, target, connections[target], source, checked[0], checked[1])


#: A field of a compiled object: its response key, ``get(execution, parent)`` and how its value is
#: completed (``None``: ``get`` returns it complete).
_Step = tuple[str, Callable[[Any, Any], Any], Callable[[Any, Any], Any] | None]
_UNREAD = object()  # a value not in the request's cache


def _object_function(steps: tuple[_Step, ...]) -> Callable[[Any, Any], dict[str, Any] | None]:
    """The completion of an object made of ``steps``, as one generated function: a dict display
    where each field costs a call or two, and a required stored scalar (most of them) none —
    read from the request's cache and passed through as its type's ``serialize`` would, with
    the step itself called only for what that does not cover (a value not read yet, or not of
    the usual type). The same results as running the steps in order, a few times faster; made
    once per plan. Response keys are GraphQL names; repr() writes them as Python literals.

    >>> complete = _object_function((("__typename", partial(_constant, "T"), None),))
    >>> complete(None, object()), complete(None, None)
    ({'__typename': 'T'}, None)
    """
    names: dict[str, Any] = {"UNREAD": _UNREAD, "EMPTY": {}, "encode": uids.encode, "Dangling": _Dangling}
    reads, items = [], []
    for i, (key, get, complete) in enumerate(steps):
        names[f"get{i}"], names[f"complete{i}"] = get, complete
        value = f"get{i}(ctx, source)"
        if get is _node_id:
            value = "encode(source.id)"
        elif get is _edge_node:  # what it does, a dangling reference left to it (it raises)
            value = f"get{i}(ctx, source) if type(source.node) is Dangling else source.node"
        elif isinstance(get, partial) and get.func is _constant:
            value = repr(get.args[0])
        elif isinstance(get, partial) and get.func is _stored_leaf:
            shard, serialize, unchanged, iso = get.args
            names[f"leaf{i}"] = partial(_required_leaf, serialize)
            reads.append(f"    v{i} = values.get({shard!r}, EMPTY).get(source.id, UNREAD)")
            usual = f"leaf{i}(ctx, v{i})"
            if iso is not None:
                names[f"iso{i}"] = iso
                usual = f"v{i}.isoformat() if type(v{i}) is iso{i} else {usual}"
            if unchanged is not None:
                names[f"unchanged{i}"] = unchanged
                check = f"type(v{i}) is unchanged{i}"
                if unchanged is int:
                    check += f" and {-_INT32} <= v{i} < {_INT32}"
                usual = f"v{i} if {check} else {usual}"
            value = f"{value} if v{i} is UNREAD else {usual}"
        if complete is not None:
            value = f"complete{i}(ctx, {value})"
        items.append(f"        {key!r}: {value},")
    prelude = ["    values = ctx.context_value.values", *reads] if reads else []
    head = ["def complete(ctx, source):", "    if source is None:", "        return None"]
    code = "\n".join([*head, *prelude, "    return {", *items, "    }"])
    exec(code, names)  # the steps' own functions, in the order they were compiled
    return names["complete"]  # type: ignore[no-any-return]


def _non_null(complete: Callable[..., Any], ctx: Any, value: Any) -> Any:
    completed = complete(ctx, value)
    if completed is None:
        raise TypeError("null for a non-null field: graphql-core reports it")
    return completed


def _list(complete: Callable[..., Any], ctx: Any, value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, list | tuple):
        raise TypeError("not a list: graphql-core reports it")
    return [complete(ctx, item) for item in value]


#: The Python type whose values a scalar's ``serialize`` returns unchanged (an Int only within 32
#: bits), or turns into an ISO string (graphene's DateTime).
_UNCHANGED: dict[str, type] = {"Int": int, "String": str, "Boolean": bool, "ID": str}
_ISO = {"DateTime": datetime}
_INT32 = 2**31


def _stored_leaf(
    shard: str,
    serialize: Callable[[Any], Any],
    unchanged: type | None,
    iso: type | None,
    ctx: _Execution,
    node: _Node,
) -> Any:
    """A required stored scalar of ``node``, serialized. Compiled objects do this inline
    (:func:`_object_function`), where ``unchanged`` and ``iso`` let the usual Python types skip
    ``serialize``; this is what they call for a value they find no simple way to pass on."""
    return _required_leaf(serialize, ctx, _stored(shard, ctx, node))


def _required_leaf(serialize: Callable[[Any], Any], ctx: Any, value: Any) -> Any:
    serialized = None if value is None else serialize(value)
    if serialized is None or serialized is Undefined:
        raise TypeError("null, or a value the type cannot serialize: graphql-core reports it")
    return serialized


def _leaf(serialize: Callable[[Any], Any], ctx: Any, value: Any) -> Any:
    if value is None:
        return None
    serialized = serialize(value)
    if serialized is None or serialized is Undefined:
        raise TypeError("a value the type cannot serialize: graphql-core reports it")
    return serialized


class _Execution(ExecutionContext):
    """graphql-core's execution with this API's request state: the lookahead, the collected
    sub-fields and the compiled objects come from the plan of the document and its lookahead
    variables. A query runs compiled (:meth:`execute_operation`); a mutation, or a query the
    compiled execution gives back, runs through graphql-core's own code, where the
    :class:`_Direct` fields skip the resolver call (no resolve info, no argument parsing; no
    middleware either, and this API uses none).

    ``execute_operation``, ``execute_field``, ``collect_subfields``, ``build_resolve_info`` and
    ``complete_object_value`` are graphql-core 3.2's internal methods (graphene 3 keeps
    graphql-core below 3.3): a change of their signatures fails the tests."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        req: _Request = self.context_value
        plan = req.api._plan(req.prepared, self.operation, self.variable_values)
        req.selections = plan.selections
        self._subfields_cache = plan.subfields
        self._compiled = plan.compiled
        self._direct = req.api._direct

    # -- compiled execution -----------------------------------------------------------------------

    def execute_operation(self, operation: OperationDefinitionNode, root_value: Any) -> Any:
        """A query runs compiled (see :meth:`_compile`); if that meets anything it does not
        answer exactly as graphql-core would — an error, a null where the schema forbids one,
        an abstract type — graphql-core executes the whole operation again, from the request's
        caches, so it reads nothing twice and reports what happened in its own words."""
        req: _Request = self.context_value
        if operation.operation == OperationType.QUERY and req.api.compiled:
            if _UNSUPPORTED not in self._compiled:
                root_type = self.schema.query_type
                assert root_type is not None
                try:
                    fields = collect_fields(
                        self.schema, self.fragments, self.variable_values, root_type, operation.selection_set
                    )
                    # (a compiled object is None for a None source; the root value is None, the root is not)
                    return self._compile(root_type, fields)(self, _Root())
                except _Unsupported:
                    self._compiled[_UNSUPPORTED] = True
                except (GraphQLError, TypeError):
                    pass  # graphql-core meets it again in the same data, and reports it
                except Exception as error:
                    req.replay = error  # a failure of the store: raised again where it happened
            req.api._count("fallbacks")
        return super().execute_operation(operation, root_value)

    def _compile(
        self, object_type: GraphQLObjectType, fields: Mapping[str, list[FieldNode]]
    ) -> Callable[[_Execution, Any], dict[str, Any]]:
        """A function that completes an object of ``object_type`` with these collected fields as
        graphql-core would when nothing goes wrong (raising if anything does). The functions
        are kept with the plan, so each shape of object is compiled once per plan."""
        key = (object_type, *(id(nodes[0]) for nodes in fields.values()))
        complete = self._compiled.get(key)
        if complete is not None:
            return complete  # type: ignore[no-any-return]
        if object_type.is_type_of is not None:
            raise _Unsupported
        steps = []
        for response_key, nodes in fields.items():
            name = nodes[0].name.value
            if name == "__typename":
                steps.append((response_key, partial(_constant, object_type.name), None))
                continue
            field_def = object_type.fields.get(name)
            if field_def is None:
                raise _Unsupported
            direct = self._direct.get((object_type.name, name))
            resolve = field_def.resolve
            if (
                direct is not None
                and getattr(direct.get, "func", None) is _stored
                and isinstance(direct.type, GraphQLNonNull)
            ):
                # A required stored scalar, the most frequent field: read and serialized in one call.
                shard, leaf = direct.get.args[0], direct.named
                fast = _UNCHANGED.get(leaf.name), _ISO.get(leaf.name)
                steps.append((response_key, partial(_stored_leaf, shard, leaf.serialize, *fast), None))
                continue
            if direct is not None and direct.get is _node_id:  # an 11-character str: what ID! returns
                steps.append((response_key, _node_id, None))
                continue
            if direct is not None:
                get = direct.get
            elif isinstance(resolve, partial) and resolve.func is dict_or_attr_resolver:
                get = partial(_attribute, resolve)  # graphene's default: no info, no arguments
            elif isinstance(resolve, partial) and resolve.func is _resolve_list:
                get = partial(_list_field, resolve.args, object_type, field_def, nodes, [])
            elif resolve is not None:
                get = partial(_resolved, object_type, field_def, nodes)
            else:
                raise _Unsupported
            steps.append((response_key, get, self._completer(field_def.type, nodes)))
        complete = self._compiled[key] = _object_function(tuple(steps))
        return complete

    def _completer(self, return_type: GraphQLOutputType, nodes: list[FieldNode]) -> Callable[..., Any]:
        """How a value of ``return_type`` is completed (``complete_value`` without its error paths)."""
        if isinstance(return_type, GraphQLNonNull):
            if isinstance(return_type.of_type, GraphQLLeafType):  # the most frequent: one call
                return partial(_required_leaf, return_type.of_type.serialize)
            return partial(_non_null, self._completer(return_type.of_type, nodes))
        if isinstance(return_type, GraphQLList):
            return partial(_list, self._completer(return_type.of_type, nodes))
        if isinstance(return_type, GraphQLLeafType):
            return partial(_leaf, return_type.serialize)
        if isinstance(return_type, GraphQLObjectType):
            return self._compile(return_type, self.collect_subfields(return_type, nodes))
        raise _Unsupported  # an interface or union: its type is resolved per value

    def execute_field(
        self, parent_type: GraphQLObjectType, source: Any, field_nodes: list[FieldNode], path: Any
    ) -> Any:
        direct = self._direct.get((parent_type.name, field_nodes[0].name.value))
        if direct is None:
            return super().execute_field(parent_type, source, field_nodes, path)
        # What complete_value does for these types, the same errors included.
        try:
            value = direct.get(self, source)
            if value is None:
                if direct.type is direct.named:
                    return None
                name = f"{parent_type.name}.{field_nodes[0].name.value}"
                raise TypeError(f"Cannot return null for non-nullable field {name}.")
            if isinstance(direct.named, GraphQLObjectType):  # no is_type_of: complete needs no info
                return self.complete_object_value(direct.named, field_nodes, None, path, value)  # type: ignore[arg-type]
            return self.complete_leaf_value(direct.named, value)
        except Exception as raw_error:
            self.handle_field_error(located_error(raw_error, field_nodes, path.as_list()), direct.type, path)
            return None


def _request_error(message: str) -> dict[str, Any]:
    return {"errors": [{"message": message}]}


class GraphQLAPI:
    """The GraphQL API of ``model`` over ``store``: schema, document cache, limits, execution.

    Build it once and reuse it (a warm Lambda keeps it): the schema, the document cache, the
    store's connections and the reader threads live as long as it does. ``cache_size`` bounds
    the document cache. ``parallel_reads`` reads the shards of one level of a query at once, one
    thread per shard, and locks a query of several levels ahead (see the module's docstring);
    ``None`` (the default) turns it on when the store's root is on a network file system or the
    store runs on a VFS (the EFS model), off on local disk. ``compiled=False`` executes every
    query with graphql-core's executor alone: the reference that the compiled execution is
    tested against (same answers, 2-3x the CPU time).
    """

    def __init__(
        self,
        store: ShardStore,
        model: Model = INSURANCE,
        *,
        limits: Limits | None = None,
        cache_size: int = 256,
        parallel_reads: bool | None = None,
        compiled: bool = True,
    ) -> None:
        if cache_size < 0:
            raise ValueError("cache_size must be >= 0")
        self.store = store
        self.model = model
        self.limits = limits or Limits()
        self.graph = Graph(store, model)
        self.schema = build_schema(model)
        self.sdl = str(self.schema) + "\n"
        self._schema = self.schema.graphql_schema
        self.fields_by_graphql_name = {
            t.name: {f.graphql_name: f for f in t.fields} for t in model.types.values()
        }
        self._direct = self._direct_fields()
        if parallel_reads is None:
            parallel_reads = store.vfs is not None or is_network_filesystem(store.root)
        self.parallel_reads = parallel_reads
        self.compiled = compiled
        self._lanes: list[_Lane] = []  # idle, the last used last
        self._lane_count = 0
        self._generation = 0  # of the lanes: close() and a fork start a new one
        self._pid = os.getpid()
        self._documents: OrderedDict[str, _Prepared] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._stats = {"hits": 0, "misses": 0, "parsed": 0, "validated": 0, "fallbacks": 0}

    def __repr__(self) -> str:
        return f"GraphQLAPI({self.store!r}, {self.model!r})"

    def close(self) -> None:
        """Stop the reader threads of ``parallel_reads`` (a later request starts them again; a
        request running now stops its own when it ends). The store stays open: it is the caller's."""
        with self._lock:
            lanes, self._lanes = self._lanes, []
            self._generation += 1
        for lane in lanes:
            lane.shutdown()

    def _direct_fields(self) -> dict[tuple[str, str], _Direct]:
        """The fields :class:`_Execution` answers itself, by (object type, field name)."""
        direct = {}
        for t in self.model.types.values():
            obj, connection = self._schema.get_type(t.name), self._schema.get_type(f"{t.name}Connection")
            assert isinstance(obj, GraphQLObjectType) and isinstance(connection, GraphQLObjectType)
            edge = get_named_type(connection.fields["edges"].type)
            assert isinstance(edge, GraphQLObjectType)
            getters: dict[tuple[str, str], Callable[[_Execution, Any], Any]] = {(t.name, "id"): _node_id}
            for f in t.fields:
                if f.kind not in ("ref", "refs"):
                    getters[t.name, f.graphql_name] = partial(_stored, t.shard(f.name))
            if obj.is_type_of is None:
                getters[edge.name, "node"] = _edge_node
            for (parent, name), get in getters.items():
                field_type = (obj if parent == t.name else edge).fields[name].type
                direct[parent, name] = _Direct(get, get_named_type(field_type), field_type)  # type: ignore[arg-type]
        return direct

    @contextlib.contextmanager
    def _lane(self) -> Iterator[_Lane]:
        """A lane of reader threads for ``parallel_reads``, this request's alone until the block
        ends: the idle lane used last (its threads' connections are warm), else a new one. A warm
        Lambda, one request at a time, so keeps one lane, one thread per shard."""
        with self._lock:
            if self._pid != os.getpid():  # a forked child has none of its parent's threads
                self._lanes, self._pid = [], os.getpid()
                self._generation += 1
            if self._lanes:
                lane = self._lanes.pop()
            else:
                lane = _Lane(f"efs-sqlite-read{self._lane_count or ''}", self._generation)
                self._lane_count += 1
        try:
            yield lane
        finally:
            with self._lock:
                keep = lane.generation == self._generation and self._pid == os.getpid()
                if keep:
                    self._lanes.append(lane)
            if not keep:
                lane.shutdown(wait=False)

    def _plan(
        self, prepared: _Prepared, operation: OperationDefinitionNode, variables: Mapping[str, Any]
    ) -> _Plan:
        """The plan for ``operation`` of ``prepared`` with these (coerced) variables."""
        names = prepared.lookahead.get(id(operation))
        if names is None:
            assert prepared.document is not None
            fragments = {
                d.name.value: d
                for d in prepared.document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }
            names = prepared.lookahead[id(operation)] = _lookahead_variables(operation, fragments)
        key = (id(operation), *(_frozen(variables.get(name, Undefined)) for name in names))
        try:
            hash(key)
        except TypeError:  # a value of a custom scalar that cannot be hashed: plan this request alone
            return _Plan({}, {}, {})
        with self._lock:
            plan = prepared.plans.get(key)
            if plan is None:
                if len(prepared.plans) >= _MAX_PLANS:
                    del prepared.plans[next(iter(prepared.plans))]
                plan = prepared.plans[key] = _Plan({}, {}, {})
        return plan

    # -- documents --------------------------------------------------------------------------------

    def cache_info(self) -> dict[str, int]:
        """Document cache counters: hits, misses, documents parsed and validated, size, maxsize;
        and ``fallbacks``, the queries that graphql-core executed after the compiled execution
        gave up (an error in the response, or a shape it leaves to graphql-core)."""
        with self._lock:
            return {**self._stats, "size": len(self._documents), "maxsize": self._cache_size}

    def _count(self, name: str) -> None:
        with self._lock:
            self._stats[name] += 1

    def _prepare(self, query: str) -> _Prepared:
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
            prepared = _Prepared(None, (GraphQLError("the document is nested too deeply"),))
        if len(query) <= _MAX_CACHED_CHARS and self._cache_size:
            with self._lock:
                self._documents[query] = prepared
                while len(self._documents) > self._cache_size:
                    self._documents.popitem(last=False)
        return prepared

    def _parse_and_validate(self, query: str) -> _Prepared:
        try:
            document = parse(query, max_tokens=self.limits.max_tokens)
        except GraphQLError as error:
            return _Prepared(None, (error,))
        finally:
            with self._lock:
                self._stats["parsed"] += 1
        errors = _limit_errors(document, self.limits)
        if not errors:
            errors = validate(self._schema, document)
            with self._lock:
                self._stats["validated"] += 1
        return _Prepared(document, tuple(errors))

    # -- execution --------------------------------------------------------------------------------

    def execute(
        self,
        query: Any,
        variables: Any = None,
        operation_name: Any = None,
        *,
        allow_mutations: bool = True,
    ) -> dict[str, Any]:
        """Run one GraphQL request; return the response as a JSON-ready dict.

        A response without ``data`` means the request itself was at fault (bad JSON types, a
        syntax or validation error, a limit, bad variables): HTTP answers it with a 4xx. Raises
        :class:`OperationNotAllowed` for a mutation when ``allow_mutations`` is false.
        """
        if not isinstance(query, str) or not query.strip():
            return _request_error("the request has no query (a non-empty string)")
        if variables is not None and not isinstance(variables, dict):
            return _request_error("variables must be a JSON object")
        if operation_name is not None and not isinstance(operation_name, str):
            return _request_error("operationName must be a string")
        prepared = self._prepare(query)
        if prepared.errors:
            return {"errors": [e.formatted for e in prepared.errors]}
        assert prepared.document is not None
        if not allow_mutations:
            operation = get_operation_ast(prepared.document, operation_name)
            if operation is not None and operation.operation != OperationType.QUERY:
                raise OperationNotAllowed(f"a {operation.operation.value} must be sent with POST")
        result = execute_sync(
            self._schema,
            prepared.document,
            context_value=_Request(self, prepared),
            variable_values=variables,
            operation_name=operation_name,
            execution_context_class=_Execution,
        )
        response: dict[str, Any] = {}
        # Every root field is nullable, so a null `data` means execution never started
        # (unknown operation, bad variables): a request error, reported without `data`.
        if result.data is not None:
            response["data"] = result.data
        if result.errors:
            response["errors"] = [_client_error(e) for e in result.errors]
        return response


def _client_error(error: GraphQLError) -> dict[str, Any]:
    """The error as the client sees it; an unexpected exception is logged and its text withheld."""
    original = error.original_error
    if original is not None and not isinstance(original, _CLIENT_ERRORS):
        log.error("internal error at %s", error.path, exc_info=original)
        error = GraphQLError("internal error", error.nodes, path=error.path)
    return error.formatted
