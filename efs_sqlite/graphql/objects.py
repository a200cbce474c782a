"""The Relay ``Node`` interface and the objects resolvers return.

Every node's ``id`` is its 11-character Small UID string, with no type prefix: the ``_type`` shard
knows every id's type. A resolver returns a :class:`NodeRef` (an id and a type; the field values
are in the request's cache), a :class:`Missing` entry of ``nodes(ids:)``, or, inside a reference
list, a :class:`Dangling` id of a node that no longer exists. A page of a list is a
:class:`PageConnection` of :class:`PageEdge` objects.

>>> parse_id(uids.encode(42))
42
>>> dangling_error(42).message
'node 0000000000g no longer exists (a dangling reference)'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import graphene
from graphene import relay
from graphene.relay.id_type import BaseGlobalIDType
from graphql import GraphQLError, GraphQLResolveInfo

from efs_sqlite import uid as uids
from efs_sqlite.errors import ValidationError

if TYPE_CHECKING:  # the resolvers' context, a type only: prefetch builds on this module
    from efs_sqlite.graphql.prefetch import Request

__all__ = [
    "Connection",
    "Dangling",
    "Missing",
    "Node",
    "NodeRef",
    "PageConnection",
    "PageEdge",
    "SmallUIDGlobalID",
    "dangling_error",
    "parse_id",
]


class SmallUIDGlobalID(BaseGlobalIDType):
    """Relay global ids that are plain Small UID strings: the ``_type`` shard supplies the type."""

    graphene_type = graphene.ID

    @classmethod
    def resolve_global_id(cls, info: GraphQLResolveInfo, global_id: str) -> tuple[None, int]:
        return None, parse_id(global_id)

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
    ) -> NodeRef:
        req: Request = info.context
        return req.lookup(info, id, only_type._meta.name if only_type else None)

    @classmethod
    def resolve_type(cls, instance: NodeRef | Missing, info: GraphQLResolveInfo) -> type[graphene.ObjectType]:
        if isinstance(instance, Missing):
            raise GraphQLError(instance.message)  # reported at the list item, which becomes null
        return info.schema.get_type(instance.type_name).graphene_type  # type: ignore[union-attr]


class NodeRef:
    """A node as resolvers see it; its field values are in the request's cache."""

    __slots__ = ("id", "type_name")

    def __init__(self, uid: int, type_name: str) -> None:
        self.id, self.type_name = uid, type_name


class Missing:
    """An entry of ``nodes(ids:)`` with no node behind it."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


class Dangling(int):
    """The id in a reference list of a node that no longer exists."""


def parse_id(value: Any) -> int:
    """The Small UID of an ``ID`` argument; a :class:`GraphQLError` if it names no node."""
    try:
        uid = uids.decode(value)
    except (TypeError, ValueError) as exc:
        raise GraphQLError(f"invalid id: {exc}") from None
    try:
        return uids.check_id(uid)
    except ValidationError:
        raise GraphQLError(f"invalid id: {uid} is not a node id") from None


def dangling_error(uid: int) -> GraphQLError:
    """The error a reference to the deleted node ``uid`` reads as."""
    return GraphQLError(f"node {uids.encode(uid)} no longer exists (a dangling reference)")


class Connection(relay.Connection):
    """The base of every ``<Type>Connection``: a Relay connection with ``totalCount``."""

    class Meta:
        abstract = True

    total_count = graphene.Int(required=True, description="The number of entries in the whole list.")

    class Edge:
        @staticmethod
        def resolve_node(root: Any, info: GraphQLResolveInfo) -> NodeRef:
            if isinstance(root.node, Dangling):
                raise dangling_error(root.node)
            return root.node


class PageEdge:
    """An edge of a page: what the ``<Type>Edge`` fields read (``node``, ``cursor``), without
    the cost of building a graphene object for each."""

    __slots__ = ("cursor", "node")

    def __init__(self, node: Any, cursor: str) -> None:
        self.node, self.cursor = node, cursor


class PageConnection:
    """A page of a list: what the ``<Type>Connection`` fields read (``edges``, ``page_info``,
    ``total_count``)."""

    __slots__ = ("edges", "page_info", "total_count")

    def __init__(self, edges: list[PageEdge], page_info: Any, total_count: int) -> None:
        self.edges, self.page_info, self.total_count = edges, page_info, total_count
