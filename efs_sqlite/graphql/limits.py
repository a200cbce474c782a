"""Bounds on what one request may ask for, and the measure of a document they are checked against.

A document is measured once, when it is parsed (see :mod:`efs_sqlite.graphql.documents`): a
document over a limit is refused whole, with a clear GraphQL error, before it is validated.

>>> from graphql import parse
>>> [e.message for e in limit_errors(parse("{ a { b { c } } }"), Limits(max_depth=2))]
['the query is 3 fields deep; the limit is 2']
"""

from __future__ import annotations

from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    InlineFragmentNode,
    SelectionSetNode,
)

__all__ = ["Limits", "limit_errors", "measure"]

_INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may ask for; exceeding one is a clear GraphQL error.

    ``max_depth`` counts nested fields (``claim { partiesConnection { edges { node { id } } } }``
    is 5, ``claim { parties { id } }`` 3);
    introspection (``__schema``, ``__type``) has its own ``max_introspection_depth`` since the
    standard introspection query is 13 deep. ``max_fields`` counts every selected field and alias
    with fragments expanded. ``max_page`` bounds ``first``/``last`` and ``nodes(ids:)``;
    ``default_page`` is the page a connection returns without ``first``/``last`` (its
    ``pageInfo.hasNextPage`` and ``totalCount`` say when there is more). ``max_list`` bounds a plain
    list (``parties``): a longer one is an error naming its connection, never a truncated list. ``max_nodes``
    bounds the nodes one request reads (nested pages multiply). ``max_tokens`` bounds parsing.
    """

    max_depth: int = 10
    max_introspection_depth: int = 15
    max_fields: int = 1000
    max_page: int = 1000
    default_page: int = 100
    max_list: int = 1000
    max_nodes: int = 100_000
    max_tokens: int = 20_000

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits.{name} must be a positive integer, not {value!r}")
        if self.default_page > self.max_page:
            raise ValueError("Limits.default_page must not exceed max_page")


def measure(document: DocumentNode) -> tuple[int, int, int]:
    """``(depth, fields, introspection depth)`` of ``document``, fragments expanded.

    Fragments are measured once each, so a "fragment bomb" costs linear time to measure.

    >>> from graphql import parse
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


def limit_errors(document: DocumentNode, limits: Limits) -> list[GraphQLError]:
    """The errors of ``document`` against ``limits`` (none: it is within them)."""
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
