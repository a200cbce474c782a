"""The compiled execution of queries, falling back to graphql-core's executor.

Queries are executed *compiled*: per plan, each object selection becomes a tuple of steps (the
field's response key, how its value is got, how it is completed), compiled into one function
(:mod:`efs_sqlite.graphql.codegen`), with graphql-core's own resolvers for root fields and
references, graphql-relay's paging arithmetic for connections and each scalar type's own
``serialize`` (or what it returns, for the Python types it passes through unchanged). That skips
graphql-core's per-field machinery (paths, resolve infos, awaitable checks), about two thirds of
the CPU time of the benchmark request once the reads were batched. It answers only when nothing
goes wrong: at the first error, null where the schema forbids one, or abstract type (``node``,
``nodes``, introspection), graphql-core executes the operation again from the request's caches
and reports it in its own words (see :class:`~efs_sqlite.graphql.prefetch.Request` for store
failures). ``compiled=False`` turns it off; the tests check that both give the same answers, byte
for byte, for a corpus of queries and for random ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any, ClassVar, NamedTuple

from graphene.types.resolver import dict_or_attr_resolver
from graphql import (
    ExecutionContext,
    FieldNode,
    GraphQLError,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    Undefined,
    VariableNode,
    get_named_type,
    located_error,
)
from graphql.execution.collect_fields import collect_fields
from graphql.execution.values import get_argument_values

from efs_sqlite import uid as uids
from efs_sqlite.graphql.codegen import (
    Constant,
    EdgeNode,
    NodeId,
    ObjectStep,
    Step,
    StoredLeaf,
    compile_object,
)
from efs_sqlite.graphql.objects import Dangling, NodeRef, PageConnection, dangling_error
from efs_sqlite.graphql.paging import check_page_args
from efs_sqlite.graphql.prefetch import Request
from efs_sqlite.graphql.receipts import Answer, keep_answer
from efs_sqlite.graphql.schema import resolve_entries, resolve_list
from efs_sqlite.model import Model

__all__ = ["Direct", "Execution", "direct_fields"]

#: The Python type whose values a scalar's ``serialize`` returns unchanged (an Int only within 32
#: bits), or turns into an ISO string (graphene's DateTime).
_UNCHANGED: dict[str, type] = {"Int": int, "String": str, "Boolean": bool, "ID": str}
_ISO = {"DateTime": datetime}


class Direct(NamedTuple):
    """A field :class:`Execution` answers without a resolver call: a model field holding a
    scalar, ``id``, and the ``node`` of an edge. ``get(execution, parent)`` is the field's value."""

    get: Callable[[Execution, Any], Any]
    named: GraphQLLeafType | GraphQLObjectType
    type: GraphQLOutputType  # ``named``, or non-null of it


class _Unsupported(Exception):
    """The operation asks for something the compiled execution leaves to graphql-core."""


class _Root:
    """The source of the root fields (none of their resolvers reads it)."""


# -- how fields are got ------------------------------------------------------------------------


def _stored(shard: str, ctx: Execution, node: NodeRef) -> Any:
    req: Request = ctx.context_value
    try:  # what req.value does, one call less: this runs for most fields of a response
        return req.values[shard][node.id]
    except KeyError:
        return req.value(shard, node.id)


def _node_id(ctx: Execution, node: NodeRef) -> str:
    return uids.encode(node.id)


def _edge_node(ctx: Execution, edge: Any) -> NodeRef:
    node = edge.node  # what Connection.Edge.resolve_node does, one call less
    if type(node) is Dangling:
        raise dangling_error(node)
    return node  # type: ignore[no-any-return]


def _attribute(resolve: Callable[..., Any], ctx: Execution, source: Any) -> Any:
    return resolve(source, None)


def _resolved(
    parent: GraphQLObjectType, field_def: Any, nodes: list[FieldNode], ctx: Execution, source: Any
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
    checked: list[Any],
    ctx: Execution,
    source: Any,
) -> PageConnection:
    """A reference list: :func:`~efs_sqlite.graphql.schema.resolve_list` with its arguments
    checked and its shape worked out once per plan (they depend only on the plan's variables),
    kept in ``checked``."""
    req: Request = ctx.context_value
    if not checked:
        args = check_page_args(req.limits, get_argument_values(field_def, nodes[0], ctx.variable_values))
        info = ctx.build_resolve_info(field_def, nodes, parent, None)  # type: ignore[arg-type]
        checked += [args, req.plan.list_shape(info, spec[1])]
    shard, target, connections = spec
    return req.fill_page(shard, target, connections[target], source, checked[0], checked[1])


def _plain_list(
    spec: tuple[Any, ...],
    parent: GraphQLObjectType,
    field_def: Any,
    nodes: list[FieldNode],
    selection: list[Any],
    ctx: Execution,
    source: Any,
) -> list[Any]:
    """A plain reference list: :func:`~efs_sqlite.graphql.schema.resolve_entries` with its
    entries' selection worked out once per plan (kept in ``selection``). A node that no longer
    exists is left to graphql-core, which reports it at its entry."""
    req: Request = ctx.context_value
    if not selection:
        info = ctx.build_resolve_info(field_def, nodes, parent, None)  # type: ignore[arg-type]
        selection.append(req.plan.selection(info, spec[1], nodes))
    entries = req.fill_list(*spec, source, selection[0])
    for entry in entries:
        if type(entry) is not NodeRef:
            raise entry
    return entries


# -- how values are completed ------------------------------------------------------------------


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


def _stored_leaf(shard: str, serialize: Callable[[Any], Any], ctx: Execution, node: NodeRef) -> Any:
    """A required stored scalar of ``node``, serialized. Compiled objects do this inline
    (:class:`~efs_sqlite.graphql.codegen.StoredLeaf`), where the usual Python types skip
    ``serialize``; this is what they call for a value not read yet."""
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


def direct_fields(schema: GraphQLSchema, model: Model) -> dict[tuple[str, str], Direct]:
    """The fields :class:`Execution` answers itself, by (object type, field name)."""
    direct = {}
    for t in model.types.values():
        obj, connection = schema.get_type(t.name), schema.get_type(f"{t.name}Connection")
        assert isinstance(obj, GraphQLObjectType) and isinstance(connection, GraphQLObjectType)
        edge = get_named_type(connection.fields["edges"].type)
        assert isinstance(edge, GraphQLObjectType)
        getters: dict[tuple[str, str], Callable[[Execution, Any], Any]] = {(t.name, "id"): _node_id}
        for f in t.fields:
            if f.kind not in ("ref", "refs"):
                getters[t.name, f.graphql_name] = partial(_stored, t.shard(f.name))
        if obj.is_type_of is None:
            getters[edge.name, "node"] = _edge_node
        for (parent, name), get in getters.items():
            field_type = (obj if parent == t.name else edge).fields[name].type
            direct[parent, name] = Direct(get, get_named_type(field_type), field_type)  # type: ignore[arg-type]
    return direct


class Execution(ExecutionContext):
    """graphql-core's execution with this API's request state: the lookahead, the collected
    sub-fields and the compiled objects come from the plan of the document and its lookahead
    variables. A query runs compiled (:meth:`execute_operation`); a mutation, or a query the
    compiled execution gives back, runs through graphql-core's own code, where the
    :class:`Direct` fields skip the resolver call (no resolve info, no argument parsing; no
    middleware either, and this API uses none).

    An API executes with its own subclass (:meth:`bound`): its direct fields, whether queries
    run compiled, and what to call when one falls back to graphql-core.

    ``execute_operation``, ``execute_field``, ``collect_subfields``, ``build_resolve_info``,
    ``complete_value``, ``complete_object_value`` and ``collected_errors`` are graphql-core 3.2's
    internals (pyproject.toml keeps graphql-core at 3.2): a change of them fails the tests."""

    direct: ClassVar[Mapping[tuple[str, str], Direct]] = {}
    compile_queries: ClassVar[bool] = True

    @staticmethod
    def on_fallback() -> None:
        """Called for each query graphql-core executes after the compiled execution gave up."""

    @classmethod
    def bound(
        cls, direct: Mapping[tuple[str, str], Direct], compile_queries: bool, on_fallback: Callable[[], None]
    ) -> type[Execution]:
        """A subclass with these direct fields, compiled execution on or off, and fallback hook."""
        attrs = {
            "direct": direct,
            "compile_queries": compile_queries,
            "on_fallback": staticmethod(on_fallback),
        }
        return type(cls.__name__, (cls,), attrs)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        req: Request = self.context_value
        req.plan = plan = req.prepared.plan(self.operation, self.variable_values)
        self._subfields_cache = plan.subfields

    # -- compiled execution -----------------------------------------------------------------------

    def execute_operation(self, operation: OperationDefinitionNode, root_value: Any) -> Any:
        """A query runs compiled (see :meth:`_compile`); if that meets anything it does not
        answer exactly as graphql-core would — an error, a null where the schema forbids one,
        an abstract type — graphql-core executes the whole operation again, from the request's
        caches, so it reads nothing twice and reports what happened in its own words."""
        req: Request = self.context_value
        if operation.operation == OperationType.QUERY and self.compile_queries:
            if not req.plan.unsupported:
                root_type = self.schema.query_type
                assert root_type is not None
                try:
                    fields = collect_fields(
                        self.schema, self.fragments, self.variable_values, root_type, operation.selection_set
                    )
                    # (a compiled object is None for a None source; the root value is None, the root is not)
                    return self._compile(root_type, fields)(self, _Root())
                except _Unsupported:
                    req.plan.unsupported = True
                except (GraphQLError, TypeError):
                    pass  # graphql-core meets it again in the same data, and reports it
                except Exception as error:
                    req.replay = error  # a failure of the store: raised again where it happened
            self.on_fallback()
        return super().execute_operation(operation, root_value)

    def _compile(
        self, object_type: GraphQLObjectType, fields: Mapping[str, list[FieldNode]]
    ) -> Callable[[Execution, Any], dict[str, Any]]:
        """A function that completes an object of ``object_type`` with these collected fields as
        graphql-core would when nothing goes wrong (raising if anything does). The functions
        are kept with the plan, so each shape of object is compiled once per plan."""
        compiled = self.context_value.plan.compiled
        key = (object_type, *(id(nodes[0]) for nodes in fields.values()))
        complete = compiled.get(key)
        if complete is not None:
            return complete  # type: ignore[no-any-return]
        if object_type.is_type_of is not None:
            raise _Unsupported
        steps = tuple(self._step(object_type, response_key, nodes) for response_key, nodes in fields.items())
        complete = compiled[key] = compile_object(object_type.name, steps)
        return complete  # type: ignore[no-any-return]

    def _step(self, object_type: GraphQLObjectType, response_key: str, nodes: list[FieldNode]) -> ObjectStep:
        """How the field ``nodes`` of ``object_type`` is got and completed."""
        name = nodes[0].name.value
        if name == "__typename":
            return Constant(response_key, object_type.name)
        field_def = object_type.fields.get(name)
        if field_def is None:
            raise _Unsupported
        direct = self.direct.get((object_type.name, name))
        resolve = field_def.resolve
        if (
            direct is not None
            and getattr(direct.get, "func", None) is _stored
            and isinstance(direct.type, GraphQLNonNull)
        ):
            # A required stored scalar, the most frequent field: read and serialized inline.
            shard, leaf = direct.get.args[0], direct.named  # type: ignore[attr-defined]
            return StoredLeaf(
                response_key,
                shard,
                partial(_stored_leaf, shard, leaf.serialize),
                partial(_required_leaf, leaf.serialize),
                _UNCHANGED.get(leaf.name),
                _ISO.get(leaf.name),
            )
        if direct is not None and direct.get is _node_id:  # an 11-character str: what ID! returns
            return NodeId(response_key)
        if direct is not None and direct.get is _edge_node:
            return EdgeNode(response_key, _edge_node, self._completer(field_def.type, nodes))
        if direct is not None:
            get = direct.get
        elif isinstance(resolve, partial) and resolve.func is dict_or_attr_resolver:
            get = partial(_attribute, resolve)  # graphene's default: no info, no arguments
        elif isinstance(resolve, partial) and resolve.func is resolve_list:
            get = partial(_list_field, resolve.args, object_type, field_def, nodes, [])
        elif isinstance(resolve, partial) and resolve.func is resolve_entries:
            get = partial(_plain_list, resolve.args, object_type, field_def, nodes, [])
        elif resolve is not None:
            get = partial(_resolved, object_type, field_def, nodes)
        else:
            raise _Unsupported
        return Step(response_key, get, self._completer(field_def.type, nodes))

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
        direct = self.direct.get((parent_type.name, field_nodes[0].name.value))
        if direct is None:
            if parent_type is self.schema.mutation_type:
                return self._execute_mutation(parent_type, source, field_nodes, path)
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

    def _execute_mutation(
        self, parent_type: GraphQLObjectType, source: Any, field_nodes: list[FieldNode], path: Any
    ) -> Any:
        """A mutation field, executed; a first attempt with a ``clientMutationId`` then keeps its
        answer, complete and free of errors, in its receipt (:mod:`~efs_sqlite.graphql.receipts`).
        Mutation fields run one after another, so the errors added meanwhile are this field's."""
        req: Request = self.context_value
        errors = len(self.collected_errors.errors)
        completed = super().execute_field(parent_type, source, field_nodes, path)
        pending = req.answers.pop(str(path.key), None)
        if pending is not None and len(self.collected_errors.errors) == errors:
            keep_answer(req.store, pending, completed)
        return completed

    def complete_value(
        self, return_type: GraphQLOutputType, field_nodes: list[FieldNode], info: Any, path: Any, result: Any
    ) -> Any:
        """A retried mutation's kept answer is complete already: returned as it was first."""
        if type(result) is Answer:
            return result.value
        return super().complete_value(return_type, field_nodes, info, path, result)
