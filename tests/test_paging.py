"""Connection paging arithmetic: the window read with a list's length covers the page asked for."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from graphql import GraphQLError
from graphql_relay import offset_to_cursor

from efs_sqlite.graphql.limits import Limits
from efs_sqlite.graphql.paging import NO_ROWS, Window, check_page_args, offsets, window

LIMITS = Limits(max_page=10, default_page=4)


def page_args(count: int) -> list[dict[str, Any]]:
    """Every combination of page arguments over a list of ``count`` entries, with cursors of the
    list: graphql-relay ignores an ``after`` past the end and clips a ``before`` past it, where
    the window is a guess that misses (the page is then read again, exactly)."""
    afters = [None, *(offset_to_cursor(i) for i in range(count))]
    befores = [None, *(offset_to_cursor(i) for i in range(count + 1))]
    sizes = [None, 0, 1, 3, 10]
    combos = []
    for first, after, last, before in itertools.product(sizes, afters, sizes, befores):
        args = {"first": first, "after": after, "last": last, "before": before}
        combos.append({k: v for k, v in args.items() if v is not None})
    return combos


@pytest.mark.parametrize("count", [0, 1, 5, 12])
def test_the_window_covers_the_page_or_asks_for_the_length_first(count: int) -> None:
    for raw in page_args(count):
        args = check_page_args(LIMITS, raw)
        rows = window(args)
        page = offsets(count, args)
        if rows == NO_ROWS:
            assert ("last" in args and "before" not in args) or not page, args
            continue
        if "first" in args and "last" in args:
            continue  # both: the window of ``last`` is read, then the page is cut (checked after)
        assert set(page) <= set(range(rows.offset, rows.offset + rows.limit)), (args, rows, page)


def test_no_page_size_is_the_default_page() -> None:
    args = check_page_args(LIMITS, {})
    assert args == {"first": 4} and window(args) == Window(0, 4) and offsets(9, args) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"first": 11}, "first must be between 0 and 10, not 11"),
        ({"last": -1}, "last must be between 0 and 10, not -1"),
        ({"after": "not a cursor"}, "after: 'not a cursor' is not a cursor of this list"),
        ({"before": offset_to_cursor(2**63)}, "is not a cursor of this list"),
    ],
)
def test_page_arguments_out_of_bounds_are_errors(args: dict[str, Any], message: str) -> None:
    with pytest.raises(GraphQLError, match=message):
        check_page_args(LIMITS, args)
