"""The graphene schema derived from a model, and its resolvers.

:func:`build_schema` turns every node type ``T`` of a :class:`~efs_sqlite.model.Model` into:

- an object type ``T`` implementing the Relay ``Node`` interface, whose ``id`` is the node's
  11-character Small UID string (no type prefix: the ``_type`` shard knows every id's type);
- one field per model field, named :attr:`Field.graphql_name`: ``str`` -> ``String``, ``int`` ->
  ``Int``, ``float`` -> ``Float``, ``decimal`` -> ``Decimal`` (an exact string), ``datetime`` ->
  ``DateTime`` (ISO 8601, UTC), ``bool`` -> ``Boolean``, ``bytes`` -> ``Base64``, ``ref`` -> the
  target type, ``refs`` -> a plain list ``[Target]`` under the field's own name, as in the earlier
  system's SDL, and beside it a Relay connection ``<name>Connection(first, after, last, before)``
  of type ``<Target>Connection`` with ``totalCount``;
- query fields ``t(id: ID!): T`` (``claim``, ``party``, ``transaction``), next to ``node(id:)`` and
  ``nodes(ids:)``;
- mutations ``createT(input: TInput!)``, ``updateT(id:, input: TPatch!)`` (partial: fields left out
  keep their value, ``null`` clears an optional one), ``deleteT(id:, cascade:)`` and, per reference list
  ``F``, ``addTF(id:, ids:)`` / ``removeTF(id:, ids:)``. Every input is checked against the model
  and every reference against the ``_type`` shard before one grouped write
  (:class:`~efs_sqlite.graph.Graph`, which writes both sides of every inverse pair in it): an
  invalid input is a GraphQL error and writes nothing. Every mutation takes an optional
  ``clientMutationId`` that makes it idempotent (:mod:`~efs_sqlite.graphql.receipts`: a retry
  writes nothing and returns the first answer, kept by the execution once it is computed), echoed
  in the response's ``extensions.clientMutationIds`` by response key (the mutations return the
  node itself, as before, rather than a Relay payload object).

``int`` stays GraphQL ``Int``, as in the earlier system's SDL (``claimIdentifier: Int!``): values
must fit 32 bits. A larger input is refused by GraphQL itself; a larger value already stored reads
as a field error naming the value, never as a wrong number. Compared with that SDL, the root
fields are nullable (a missing node is ``null`` plus an error instead of nulling the whole
response). A plain list returns the whole list, up to ``Limits.max_list`` entries: a longer one is
an error naming its connection, which pages through it (a 25,000-entry list is never one value).

Every resolver answers from the request's caches (the context,
:class:`~efs_sqlite.graphql.prefetch.Request`), reading on a miss.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

import graphene
from graphene import relay
from graphql import GraphQLError, GraphQLResolveInfo, print_ast

from efs_sqlite import uid as uids
from efs_sqlite.graph import Graph, Record
from efs_sqlite.graphql.objects import Connection, Missing, Node, NodeRef, PageConnection, dangling_error
from efs_sqlite.graphql.paging import check_page_args
from efs_sqlite.graphql.receipts import RETENTION_S, Answer, Pending, mutate_once
from efs_sqlite.kinds import KIND_OF
from efs_sqlite.model import INSURANCE, Field, Model, NodeType

if TYPE_CHECKING:  # the resolvers' context, a type only: prefetch builds on this module
    from efs_sqlite.graphql.prefetch import Request

__all__ = ["build_schema", "resolve_entries", "resolve_list", "schema_sdl"]

#: Each value kind's scalar, by the graphene type its kind names (a reference has none).
_SCALARS: dict[str, type[graphene.Scalar]] = {
    name: getattr(graphene, kind.graphql) for name, kind in KIND_OF.items() if kind.graphql is not None
}
_RESERVED = frozenset({"Node", "Query", "Mutation", "PageInfo"})


def _lower_camel(name: str) -> str:
    return name[:1].lower() + name[1:]


# -- resolvers ---------------------------------------------------------------------------------


def _read_value(shard: str, root: NodeRef, info: GraphQLResolveInfo) -> Any:
    req: Request = info.context
    return req.value(shard, root.id)


def _resolve_ref(shard: str, target: str, root: NodeRef, info: GraphQLResolveInfo) -> NodeRef | None:
    req: Request = info.context
    uid = req.value(shard, root.id)
    if uid is None:
        return None
    if not req.exists(target, uid, req.plan.selection(info, target, info.field_nodes)):
        raise dangling_error(uid)
    return NodeRef(uid, target)


def resolve_list(
    shard: str,
    target: str,
    connections: Mapping[str, type[Connection]],
    root: NodeRef,
    info: GraphQLResolveInfo,
    **args: Any,
) -> PageConnection:
    """The page of ``root``'s list in ``shard`` that ``args`` ask for (the resolver of a
    reference list; the compiled execution recognises it by its ``partial`` arguments)."""
    req: Request = info.context
    checked = check_page_args(req.limits, args)
    return req.fill_page(shard, target, connections[target], root, checked, req.plan.list_shape(info, target))


def resolve_entries(shard: str, target: str, name: str, root: NodeRef, info: GraphQLResolveInfo) -> list[Any]:
    """Every entry of ``root``'s list in ``shard`` (the resolver of a plain list ``name``; the
    compiled execution recognises it by its ``partial`` arguments)."""
    req: Request = info.context
    return req.fill_list(shard, target, name, root, req.plan.selection(info, target, info.field_nodes))


def _resolve_nodes(root: Any, info: GraphQLResolveInfo, ids: list[str]) -> list[NodeRef | Missing]:
    req: Request = info.context
    if len(ids) > req.limits.max_page:
        raise GraphQLError(f"nodes(ids:) takes at most {req.limits.max_page} ids, not {len(ids)}")
    return req.lookup_many(info, ids)


def _selection(info: GraphQLResolveInfo) -> str:
    """What a mutation field's answer depends on besides the mutation: the field as written (its
    alias and selection set), the fragments it may spread and the operation's variables."""
    parts = [print_ast(node) for node in info.field_nodes]
    parts += [print_ast(fragment) for _, fragment in sorted(info.fragments.items())]
    text = json.dumps([parts, info.variable_values], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _mutate(
    info: GraphQLResolveInfo,
    client_id: str | None,
    args: Mapping[str, Any],
    change: Callable[[Graph, Record | None], Any],
    answer: Callable[[Any], Any],
) -> Any:
    """``answer(result)`` of ``change(graph, record)``, made once per ``clientMutationId`` (see
    :mod:`~efs_sqlite.graphql.receipts`): a retry writes nothing and returns the first answer if it
    was kept (an :class:`~efs_sqlite.graphql.receipts.Answer`, which the execution returns as it
    is), else ``answer`` of the first result; a first attempt leaves its receipt to the execution,
    which keeps the answer once it is complete. The id is echoed in the response's ``extensions``."""
    req: Request = info.context
    field = info.field_name
    outcome = req.write(lambda g: mutate_once(g.store, client_id, field, args, partial(change, g)))
    if outcome.receipt is None:  # no clientMutationId
        return answer(outcome.result)
    key = str(info.path.key)
    req.client_ids[key] = outcome.receipt.client_id
    selection = _selection(info)
    if not outcome.retry:
        req.answers[key] = Pending(outcome.receipt, selection)
    elif (kept := outcome.receipt.answer_for(selection)) is not None:
        return kept
    return answer(outcome.result)


def _create(
    t: NodeType,
    root: Any,
    info: GraphQLResolveInfo,
    input: Mapping[str, Any],
    client_mutation_id: str | None = None,
) -> NodeRef | Answer:
    values = dict(input)
    return _mutate(  # type: ignore[no-any-return]
        info,
        client_mutation_id,
        {"input": values},
        lambda g, record: g.create_node(t.name, values, record=record),
        lambda uid: info.context.lookup(info, uids.encode(uid), t.name),
    )


def _update(
    t: NodeType,
    root: Any,
    info: GraphQLResolveInfo,
    id: str,
    input: Mapping[str, Any],
    client_mutation_id: str | None = None,
) -> NodeRef | Answer:
    values = dict(input)
    args = {"id": id, "input": values}
    return _mutate(  # type: ignore[no-any-return]
        info,
        client_mutation_id,
        args,
        lambda g, record: g.update_node(id, values, t.name, record=record),
        lambda _: info.context.lookup(info, id, t.name),
    )


def _delete(
    t: NodeType,
    root: Any,
    info: GraphQLResolveInfo,
    id: str,
    cascade: bool = False,
    client_mutation_id: str | None = None,
) -> str | Answer:
    args = {"id": id, "cascade": cascade}
    return _mutate(  # type: ignore[no-any-return]
        info,
        client_mutation_id,
        args,
        lambda g, record: g.delete_node(id, t.name, cascade=cascade, record=record),
        lambda _: id,
    )


def _edit_list(
    t: NodeType,
    f: Field,
    add: bool,
    root: Any,
    info: GraphQLResolveInfo,
    id: str,
    ids: list[str],
    client_mutation_id: str | None = None,
) -> NodeRef | Answer:
    edit = Graph.list_add if add else Graph.list_remove
    args = {"id": id, "ids": ids}
    return _mutate(  # type: ignore[no-any-return]
        info,
        client_mutation_id,
        args,
        lambda g, record: edit(g, id, f.name, ids, t.name, record=record),
        lambda _: info.context.lookup(info, id, t.name),
    )


# -- types -------------------------------------------------------------------------------------


class _ListField(relay.ConnectionField):
    """A connection whose resolver always returns the connection itself (graphene's wrapper
    would otherwise check for awaitables and iterables on every call)."""

    def wrap_resolve(self, parent_resolver: Any) -> Any:
        return self.resolver


def _connection_field(t: NodeType, f: Field, connections: dict[str, type[Connection]]) -> graphene.Field:
    """The Relay connection beside the plain list ``f``: ``<name>Connection``, paged."""
    assert f.target is not None
    return _ListField(
        lambda: connections[f.target],
        name=f"{f.graphql_name}Connection",
        description=f.description or f"The {f.graphql_name} list a page at a time, with its totalCount.",
        resolver=partial(resolve_list, t.shard(f.name), f.target, connections),
    )


def _output_field(t: NodeType, f: Field, objects: dict[str, type[graphene.ObjectType]]) -> graphene.Field:
    description = f.description or None
    shard = t.shard(f.name)
    if f.kind == "refs":
        return graphene.List(
            lambda: objects[f.target],
            name=f.graphql_name,
            description=description
            or f"The whole list; a longer one than the limit is an error: use {f.graphql_name}Connection.",
            resolver=partial(resolve_entries, shard, f.target, f"{t.name}.{f.graphql_name}"),
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


#: Every mutation's description ends with what its optional clientMutationId does.
_IDEMPOTENT = (
    f" With clientMutationId, idempotent for {RETENTION_S // 3600} h: a retry with the same id writes "
    "nothing and returns the first answer (if it was kept; else the node as it is now); the id is echoed "
    "in the response's extensions.clientMutationIds."
)


def _client_mutation_id() -> graphene.String:
    return graphene.String(name="clientMutationId")


def _mutation_fields(t: NodeType, obj: type[graphene.ObjectType]) -> dict[str, graphene.Field]:
    fields = {
        f"create_{t.key}": graphene.Field(
            obj,
            name=f"create{t.name}",
            input=_input_type(t, patch=False)(required=True),
            client_mutation_id=_client_mutation_id(),
            resolver=partial(_create, t),
            description=f"Create a {t.name}; every field is written in one atomic write." + _IDEMPOTENT,
        ),
        f"update_{t.key}": graphene.Field(
            obj,
            name=f"update{t.name}",
            id=graphene.ID(required=True),
            input=_input_type(t, patch=True)(required=True),
            client_mutation_id=_client_mutation_id(),
            resolver=partial(_update, t),
            description=f"Change fields of a {t.name}; fields left out keep their value, null clears."
            + _IDEMPOTENT,
        ),
        f"delete_{t.key}": graphene.Field(
            graphene.ID,
            name=f"delete{t.name}",
            id=graphene.ID(required=True),
            cascade=graphene.Boolean(default_value=False),
            client_mutation_id=_client_mutation_id(),
            resolver=partial(_delete, t),
            description=(
                f"Delete a {t.name}: all its fields, and its entries in the lists of the other side of "
                "its inverse pairs; returns its id. Refused, naming them, if other nodes hold a "
                "required reference to it, unless cascade (which deletes them too)." + _IDEMPOTENT
            ),
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
                client_mutation_id=_client_mutation_id(),
                resolver=partial(_edit_list, t, f, add),
                description=(
                    f"Append {f.target} nodes to {f.graphql_name} (and this node to theirs)."
                    if add
                    else f"Remove every occurrence of these {f.target} nodes from {f.graphql_name} "
                    "(and this node from theirs)."
                )
                + _IDEMPOTENT,
            )
    return fields


def build_schema(model: Model = INSURANCE) -> graphene.Schema:
    """The graphene schema of ``model``; execute it through :class:`~efs_sqlite.graphql.GraphQLAPI`.

    >>> schema = build_schema()
    >>> print(str(schema.graphql_schema.get_type("Transaction").fields["amount"].type))
    Decimal!
    """
    clash = _RESERVED.intersection(model.types)
    if clash:
        raise ValueError(f"type names {sorted(clash)} are taken by the GraphQL schema itself")
    objects: dict[str, type[graphene.ObjectType]] = {}
    connections: dict[str, type[Connection]] = {}
    for t in model.types.values():
        attrs: dict[str, Any] = {f.name: _output_field(t, f, objects) for f in t.fields}
        for f in t.fields:
            if f.kind == "refs":
                attrs[f"{f.name}_connection"] = _connection_field(t, f, connections)
        attrs["Meta"] = type("Meta", (), {"interfaces": (Node,), "description": t.description or None})
        objects[t.name] = type(t.name, (graphene.ObjectType,), attrs)
    for name, obj in objects.items():
        meta = type("Meta", (), {"node": obj, "description": f"A page of a list of {name} nodes."})
        connections[name] = type(f"{name}Connection", (Connection,), {"Meta": meta})

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
