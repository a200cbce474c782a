"""Look-ahead plans: what a document's selections ask of the nodes of each type.

The resolver of a root field looks ahead at its whole selection (graphql-core's
``collect_sub_fields``, so fragments, aliases and ``@include``/``@skip`` count): per selection set,
the shards of the values it reads, the references and reference lists it follows and the page of
each list (a :class:`Selection`). That depends only on the document, the operation and the
variables used below the root fields (page sizes, ``@include(if:)``), not on the root fields' own
arguments such as the id: so it is worked out once per such combination (a :class:`Plan`, kept
with the cached document), as are the sub-fields graphql-core collects for each object and the
compiled objects.

>>> from graphql import parse
>>> doc = parse('query($id: ID!, $n: Int) { claim(id: $id) { partiesConnection(first: $n) { totalCount } } }')
>>> lookahead_variables(doc.definitions[0], {})
('n',)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLResolveInfo,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
)
from graphql import Node as SyntaxNode
from graphql.execution.collect_fields import collect_sub_fields
from graphql.execution.values import get_argument_values

from efs_sqlite.graphql.limits import Limits
from efs_sqlite.graphql.objects import Connection
from efs_sqlite.graphql.paging import NO_ROWS, Window, check_page_args, window
from efs_sqlite.model import TYPE_SHARD, Model

__all__ = [
    "Batch",
    "ListShape",
    "Plan",
    "SelectedList",
    "SelectedRef",
    "Selection",
    "frozen",
    "lookahead_variables",
]


class SelectedRef(NamedTuple):
    """A single reference a selection follows."""

    shard: str
    target: str  # the type it points to
    nodes: list[FieldNode]  # what is selected of the target


class SelectedList(NamedTuple):
    """A reference list a selection follows: a page of its connection, or (``plain``) the whole
    list, up to ``Limits.max_list`` entries (``args`` then ``{"first": max_list}``)."""

    shard: str
    target: str  # the type of its entries
    args: dict[str, Any]  # the page arguments, checked
    connection: type[Connection] | None  # None for a plain list
    nodes: list[FieldNode]  # what is selected of each entry's node (empty: none)
    window: Window  # read with the lengths: see paging.window; NO_ROWS when no node is selected
    plain: bool = False


class Selection(NamedTuple):
    """What one selection set asks of the nodes of one type."""

    shards: tuple[str, ...]  # plain and single-reference fields to read
    required: tuple[str, ...]  # those of required fields: present exactly when the node exists
    reads: tuple[str, ...]  # the value shards a level reads: ``shards``, and ``_type`` if no required
    refs: tuple[SelectedRef, ...]
    lists: tuple[SelectedList, ...]


class ListShape(NamedTuple):
    """What a connection field selects: the nodes' selection, if any; whether the page's edges
    are read at all (or only ``totalCount``)."""

    node_nodes: list[FieldNode]
    edges: bool
    selection: Selection | None


class Batch(NamedTuple):
    """Nodes of one type in one level of a prefetch, and what is selected of them."""

    type_name: str
    ids: list[int]
    nodes: list[FieldNode]


def _ids(field_nodes: list[FieldNode]) -> tuple[int, ...]:
    # Field nodes live as long as their document, which outlives its plans: their ids are stable.
    return tuple(map(id, field_nodes))


class Plan:
    """What requests of one document, operation and lookahead variables share, filled lazily:
    the :class:`Selection` of each type and selection, the shards a prefetch locks ahead, the
    sub-fields graphql-core collects per object (``subfields``) and the compiled objects
    (``compiled``; ``unsupported`` once the operation is found to need graphql-core's executor).
    """

    __slots__ = (
        "ahead_shards",
        "compiled",
        "edge_nodes",
        "limits",
        "model",
        "selected_edges",
        "selections",
        "subfields",
        "unsupported",
    )

    def __init__(self, model: Model, limits: Limits) -> None:
        self.model, self.limits = model, limits
        self.selections: dict[tuple[Any, ...], Selection] = {}
        self.edge_nodes: dict[tuple[int, ...], list[FieldNode]] = {}
        self.selected_edges: dict[tuple[int, ...], bool] = {}
        self.ahead_shards: dict[tuple[Any, ...], tuple[str, ...]] = {}
        self.subfields: dict[tuple[Any, ...], Any] = {}
        self.compiled: dict[tuple[Any, ...], Any] = {}
        self.unsupported = False

    def selection(self, info: GraphQLResolveInfo, type_name: str, field_nodes: list[FieldNode]) -> Selection:
        """What ``field_nodes`` select of a ``type_name`` node."""
        key = (type_name, *_ids(field_nodes))
        selection = self.selections.get(key)
        if selection is None:
            selection = self.selections[key] = self._analyse(info, type_name, field_nodes)
        return selection

    def _analyse(self, info: GraphQLResolveInfo, type_name: str, field_nodes: list[FieldNode]) -> Selection:
        object_type = info.schema.get_type(type_name)
        assert isinstance(object_type, GraphQLObjectType)
        t = self.model.type(type_name)
        by_name = {f.graphql_name: f for f in t.fields}
        connections = {f"{f.graphql_name}Connection": f for f in t.fields if f.kind == "refs"}
        shards: dict[str, bool] = {}
        refs, lists = [], []
        selected = collect_sub_fields(
            info.schema, info.fragments, info.variable_values, object_type, field_nodes
        )
        for nodes in selected.values():
            name = nodes[0].name.value
            f = by_name.get(name)
            if f is not None and f.kind == "refs":  # a plain list: every entry, up to max_list
                rows = Window(0, self.limits.max_list)
                args = {"first": self.limits.max_list}
                lists.append(SelectedList(t.shard(f.name), f.target, args, None, nodes, rows, plain=True))
                continue
            if f is not None:
                shard = t.shard(f.name)
                shards[shard] = f.required
                if f.kind == "ref":
                    refs.append(SelectedRef(shard, f.target, nodes))
                continue
            f = connections.get(name)
            if f is None:  # id, __typename
                continue
            shard = t.shard(f.name)
            field_def = object_type.fields[name]
            try:
                args = check_page_args(
                    self.limits, get_argument_values(field_def, nodes[0], info.variable_values)
                )
            except GraphQLError:
                continue  # the resolver reports it
            connection = get_named_type(field_def.type)
            node_nodes = self.node_nodes(info, connection, nodes)
            rows = window(args) if node_nodes else NO_ROWS
            lists.append(SelectedList(shard, f.target, args, connection.graphene_type, node_nodes, rows))
        required = tuple(s for s, is_required in shards.items() if is_required)
        return Selection(
            tuple(shards),
            required,
            tuple(shards) if required else (*shards, TYPE_SHARD),
            tuple(refs),
            tuple(lists),
        )

    def node_nodes(
        self, info: GraphQLResolveInfo, connection: Any, field_nodes: list[FieldNode]
    ) -> list[FieldNode]:
        """The selection of ``edges { node { ... } }`` under a connection field."""
        key = _ids(field_nodes)
        nodes = self.edge_nodes.get(key)
        if nodes is None:
            edges = _sub_nodes(info, connection, field_nodes, "edges")
            edge_type = get_named_type(connection).fields["edges"].type
            nodes = self.edge_nodes[key] = _sub_nodes(info, edge_type, edges, "node") if edges else []
        return nodes

    def selects_edges(self, info: GraphQLResolveInfo, connection: Any, field_nodes: list[FieldNode]) -> bool:
        """Whether a connection field selects more than ``totalCount``."""
        key = _ids(field_nodes)
        edges = self.selected_edges.get(key)
        if edges is None:
            parent = get_named_type(connection)
            fields = collect_sub_fields(
                info.schema, info.fragments, info.variable_values, parent, field_nodes
            )
            names = {nodes[0].name.value for nodes in fields.values()}
            edges = self.selected_edges[key] = bool(names - {"totalCount", "__typename"})
        return edges

    def list_shape(self, info: GraphQLResolveInfo, target: str) -> ListShape:
        """What the connection field being resolved (of ``target`` nodes) selects."""
        node_nodes = self.node_nodes(info, info.return_type, info.field_nodes)
        edges = bool(node_nodes) or self.selects_edges(info, info.return_type, info.field_nodes)
        return ListShape(node_nodes, edges, self.selection(info, target, node_nodes) if node_nodes else None)

    def ahead(self, info: GraphQLResolveInfo, level: list[Batch]) -> tuple[str, ...]:
        """The shards a prefetch of ``level`` may read at any depth, from the plan alone (no data
        read): each selection's value shards and list shards, then those of the selections its
        references and lists lead to. Empty when it reads one level only: each shard is then read
        once, all at once, and holding them ahead would save nothing."""
        roots = [(b.type_name, b.nodes) for b in level if b.ids]
        key = tuple((t, *_ids(nodes)) for t, nodes in roots)
        shards = self.ahead_shards.get(key)
        if shards is None:
            found: dict[str, None] = {}
            seen: set[tuple[Any, ...]] = set()
            todo, deep = list(roots), False
            while todo:  # a document is finite, so is its tree of selections
                t, nodes = todo.pop()
                if (t, *_ids(nodes)) in seen:
                    continue
                seen.add((t, *_ids(nodes)))
                sel = self.selection(info, t, nodes)
                found.update(dict.fromkeys(sel.reads))
                found.update(dict.fromkeys(lst.shard for lst in sel.lists))
                below = [(ref.target, ref.nodes) for ref in sel.refs]
                below += [(lst.target, lst.nodes) for lst in sel.lists if lst.nodes]
                deep = deep or bool(below)
                todo += below
            shards = self.ahead_shards[key] = tuple(found) if deep else ()
        return shards


def _sub_nodes(
    info: GraphQLResolveInfo, parent_type: Any, field_nodes: list[FieldNode], name: str
) -> list[FieldNode]:
    """The field nodes of every selection of ``name`` (aliases included) under ``field_nodes``."""
    parent = get_named_type(parent_type)
    assert isinstance(parent, GraphQLObjectType)
    fields = collect_sub_fields(info.schema, info.fragments, info.variable_values, parent, field_nodes)
    return [node for nodes in fields.values() for node in nodes if node.name.value == name]


def lookahead_variables(
    operation: OperationDefinitionNode, fragments: Mapping[str, FragmentDefinitionNode]
) -> tuple[str, ...]:
    """The variables used below the root fields of ``operation`` (in arguments and directives):
    the lookahead and the sub-fields of every object depend on those and on nothing else.

    >>> from graphql import parse
    >>> doc = parse('query($id: ID!, $n: Int, $x: Boolean!) { claim(id: $id) { ...F } } '
    ...             'fragment F on Claim { partiesConnection(first: $n) { totalCount @include(if: $x) } }')
    >>> lookahead_variables(doc.definitions[0], {"F": doc.definitions[1]})
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


def frozen(value: Any) -> Any:
    """A hashable stand-in for a coerced variable value (lists and input objects included).

    >>> frozen({"b": [1, 2], "a": None})
    (<class 'dict'>, (('a', None), ('b', (<class 'list'>, (1, 2)))))
    """
    if isinstance(value, dict):
        return (dict, tuple(sorted((k, frozen(v)) for k, v in value.items())))
    if isinstance(value, list):
        return (list, tuple(map(frozen, value)))
    return value
