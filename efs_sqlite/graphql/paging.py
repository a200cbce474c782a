"""Paging arithmetic of reference-list connections: graphql-relay's, plus the window to read.

A reference list is a Relay connection; its page arguments (``first``, ``after``, ``last``,
``before``) are checked against the :class:`~efs_sqlite.graphql.limits.Limits`, and a page with
no size is the default page: a 25,000-entry list is never returned whole. The rows a page needs
are guessed before the list's length is known (:func:`window`), so that they are read together
with it; the exact offsets and cursors are graphql-relay's (:func:`page_layout`).

>>> limits = Limits(default_page=3)
>>> args = check_page_args(limits, {"after": "YXJyYXljb25uZWN0aW9uOjQ="})
>>> args["first"], window(args), offsets(6, args)
(3, Window(offset=5, limit=3), [5])
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple

from graphene.relay.connection import page_info_adapter
from graphql import GraphQLError
from graphql_relay import connection_from_array_slice, cursor_to_offset

from efs_sqlite.graphql.limits import Limits

__all__ = ["NO_ROWS", "Window", "check_page_args", "offsets", "page_layout", "window"]


class Window(NamedTuple):
    """Rows of a list to read: ``limit`` entries from ``offset`` (``limit`` 0: only its length)."""

    offset: int
    limit: int


#: The window of a page whose nodes nobody reads: the list's length alone.
NO_ROWS = Window(0, 0)


def check_page_args(limits: Limits, args: dict[str, Any]) -> dict[str, Any]:
    """``args`` of a connection field, checked, with the default page size when none is given."""
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


def window(args: dict[str, Any]) -> Window:
    """A guess at the rows the page needs, read together with the list's length; :data:`NO_ROWS`
    when the length must be known first (``last`` without ``before``). The guess is checked after."""
    last, before = args.get("last"), args.get("before")
    if last is not None:
        if before is None:
            return NO_ROWS
        end = cursor_to_offset(before)
        return Window(max(0, end - last), min(last, end))
    after = args.get("after")
    return Window(0 if after is None else cursor_to_offset(after) + 1, args["first"])


@lru_cache(maxsize=1024)
def page_layout(count: int, args: tuple[tuple[str, Any], ...]) -> tuple[tuple[tuple[int, str], ...], Any]:
    """The ``(offset, cursor)`` of each edge of the page that ``args`` ask for in a list of
    ``count`` entries, and its ``PageInfo``: graphql-relay's paging arithmetic, kept for the page
    shapes seen last (a page's cursors cost more to work out than to read its rows).

    >>> page_layout(10, (("first", 2), ("after", "YXJyYXljb25uZWN0aW9uOjQ=")))[0]
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


def offsets(count: int, args: dict[str, Any]) -> list[int]:
    """The offsets of the page ``args`` ask for in a list of ``count`` entries.

    >>> offsets(10, {"last": 3}), offsets(10, {"first": 2, "after": "YXJyYXljb25uZWN0aW9uOjQ="})
    ([7, 8, 9], [5, 6])
    """
    return [offset for offset, _ in page_layout(count, tuple(sorted(args.items())))[0]]
