"""A grouped write planned as items: one action per item, the conditions that make it safe, the limits."""

from __future__ import annotations

from typing import Any

import pytest

from efs_sqlite.dynamodb import layout, writes
from efs_sqlite.errors import GroupTooLarge, ItemTooLarge, UIDCollision
from efs_sqlite.store import WriteBatch


def summary(group: writes.Group) -> list[tuple[str, str, str | None]]:
    """(verb, sort key, condition) of each action."""
    out = []
    for action in group.actions:
        [(verb, params)] = action.request.items()
        sort_key = (params.get("Item") or params["Key"])["f"]["S"]
        out.append((verb, sort_key, params.get("ConditionExpression")))
    return out


def held_list(shard: str, uid: int, n: int) -> dict[tuple[int, str], Any]:
    return {(uid, shard + layout.COUNT): layout.count_item(shard, uid, n)}


def test_an_insert_is_conditional_a_put_is_not_and_a_put_after_an_insert_stays_conditional() -> None:
    b = WriteBatch()
    b.insert("a", 1, "x")
    b.put("b", 1, "y")
    b.put("a", 1, "z")  # still on the condition that nothing was there before the group
    assert summary(writes.plan("t", b.ops, {}, {})) == [
        ("Put", "a", writes.NEW),
        ("Put", "b", None),
    ]


def test_an_insert_over_a_value_of_the_same_group_collides_after_a_delete_it_does_not() -> None:
    b = WriteBatch()
    b.put("a", 1, "x")
    b.insert("a", 1, "y")
    with pytest.raises(UIDCollision):
        writes.plan("t", b.ops, {}, {})
    b = WriteBatch()
    b.delete("a", 1)
    b.insert("a", 1, "y")
    assert summary(writes.plan("t", b.ops, {(1, "a"): layout.value_item("a", 1, "old")}, {})) == [
        ("Put", "a", None)
    ]


def test_a_delete_writes_only_what_is_there_and_counts_it() -> None:
    b = WriteBatch()
    b.delete("a", 1)  # a value read first
    b.delete("b", 1)  # nothing there: no action
    b.delete("l", 1)  # a list of 2
    held = {(1, "a"): layout.value_item("a", 1, "x"), **held_list("l", 1, 2)}
    group = writes.plan("t", b.ops, held, {})
    assert group.changed == 1 + 2
    assert summary(group) == [
        ("Delete", "a", None),
        ("Delete", layout.position("l", 0), None),
        ("Delete", layout.position("l", 1), None),
        ("Delete", "l#n", "n = :n"),
    ]


def test_a_shorter_list_set_deletes_the_tail_and_guards_the_count() -> None:
    b = WriteBatch()
    b.list_set("l", 1, [7])
    group = writes.plan("t", b.ops, held_list("l", 1, 3), {})
    assert summary(group) == [
        ("Put", layout.position("l", 0), None),
        ("Delete", layout.position("l", 1), None),
        ("Delete", layout.position("l", 2), None),
        ("Put", "l#n", "n = :n"),
    ]
    assert group.actions[-1].request["Put"]["ExpressionAttributeValues"] == {":n": {"N": "3"}}


def test_a_removal_renumbers_only_from_the_first_entry_removed() -> None:
    b = WriteBatch()
    b.list_remove("l", 1, [30])
    group = writes.plan("t", b.ops, held_list("l", 1, 4), {("l", 1): [10, 20, 30, 40]})
    assert group.changed == 1
    assert summary(group) == [
        ("Put", layout.position("l", 2), None),  # 40 moves up
        ("Delete", layout.position("l", 3), None),
        ("Put", "l#n", "n = :n"),
    ]


def test_what_a_group_reads_first() -> None:
    b = WriteBatch()
    b.insert("a", 1, "x")
    b.list_extend("l", 1, [1])
    b.delete("d", 2)
    b.list_remove("r", 3, [1])
    needs = writes.needs(b.ops)
    assert [k["f"]["S"] for k in needs.keys] == ["d#n", "l#n", "r#n", "d"]
    assert needs.removing == [("r", 3)]


def test_the_limits() -> None:
    b = WriteBatch()
    for uid in range(101):
        b.put("a", uid, "x")
    with pytest.raises(GroupTooLarge, match="101 items"):
        writes.plan("t", b.ops, {}, {})
    b = WriteBatch()
    for uid in range(11):
        b.put("a", uid, "x" * 400_000)  # each under 400 KB, 4.4 MB together
    with pytest.raises(GroupTooLarge, match="4 MB"):
        writes.plan("t", b.ops, {}, {})
    b = WriteBatch()
    b.put("a", 1, "x" * (400 * 1024))
    with pytest.raises(ItemTooLarge, match="400 KB"):
        writes.plan("t", b.ops, {}, {})
