"""A grouped write worked out as the items DynamoDB writes, and DynamoDB's limits on writes.

:func:`needs` says what a group must read first (strongly consistent): the count items of the
lists it changes, the values it deletes, and the whole lists it removes entries from. :func:`plan`
then folds the group's operations, in order, into one action per item (a Put or a Delete), each
with the condition that makes the group safe:

- an insert puts on the condition that no value is there (a collision cancels the group, as a
  :class:`~efs_sqlite.errors.UIDCollision`);
- a list's count item is written on the condition that it still holds the length read first, so
  two writers of one list never interleave (the later one fails with
  :class:`~efs_sqlite.errors.StoreBusy`, having written nothing).

A group over 100 items or 4 MB, or an item over 400 KB, is refused before anything is sent
(``docs/SOURCES.md#dynamodb-limits``): a group is never split, which would make it not atomic.

>>> from efs_sqlite.store import WriteBatch
>>> batch = WriteBatch()
>>> batch.insert("claim_type_code", 7, "MOTOR")
>>> batch.list_extend("claim_parties", 7, [11, 12])
>>> needs(batch.ops).keys
[{'id': {'N': '7'}, 'f': {'S': 'claim_parties#n'}}]
>>> group = plan("t", batch.ops, held={}, old={})
>>> [a.item["f"]["S"][-4:] for a in group.actions], group.changed  # a value, two entries, a count
(['code', '0000', '0001', 'es#n'], 3)
>>> [next(iter(a.request)) for a in group.actions]
['Put', 'Put', 'Put', 'Put']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from efs_sqlite.dynamodb import layout
from efs_sqlite.dynamodb.capacity import item_size
from efs_sqlite.errors import GroupTooLarge, ItemTooLarge, StoreBusy, UIDCollision

__all__ = [
    "MAX_ITEM_BYTES",
    "MAX_TRANSACTION_BYTES",
    "MAX_TRANSACTION_ITEMS",
    "Action",
    "Group",
    "Needs",
    "check_size",
    "condition_failed",
    "length",
    "needs",
    "plan",
]

MAX_ITEM_BYTES = 400 * 1024
MAX_TRANSACTION_ITEMS = 100
MAX_TRANSACTION_BYTES = 4 * 1024 * 1024
#: The condition that no item is there.
NEW = "attribute_not_exists(id)"

#: A ``(shard, uid)``: where a value and a list live.
Place = tuple[str, int]
#: The items read first, by ``(uid, sort key)``.
Held = dict[tuple[int, str], layout.Item]


class Needs(NamedTuple):
    """What a group reads before it is planned: ``keys`` (one BatchGetItem) and the lists to read
    whole (``removing``)."""

    keys: list[layout.Item]
    removing: list[Place]


@dataclass
class Action:
    """One item of a group: the ``request`` (``{"Put": ...}`` or ``{"Delete": ...}``), the ``item``
    its write units are charged by, and what a failed condition of it means."""

    request: dict[str, Any]
    item: layout.Item
    collision: Place | None = None  # an insert
    list_place: Place | None = None  # a list's count item


class Group(NamedTuple):
    """A planned group: its actions, and the values and entries it changes."""

    actions: list[Action]
    changed: int


@dataclass
class _Value:
    """A value's change: put (``new``: on the condition that none was there) or, without an item,
    delete."""

    item: layout.Item | None
    new: bool


@dataclass
class _List:
    """A list's change: its length before (``base``) and after, and the entries written."""

    base: int
    length: int
    entries: dict[int, int] = field(default_factory=dict)


def needs(ops: Sequence[Any]) -> Needs:
    """What the group ``ops`` (a :class:`~efs_sqlite.store.WriteBatch`'s) must read first."""
    lists = sorted({(op.shard, op.uid) for op in ops if op.verb not in ("insert", "put")})
    deleted = sorted({(op.shard, op.uid) for op in ops if op.verb == "delete"})
    keys = [layout.count_key(s, u) for s, u in lists] + [layout.key(s, u) for s, u in deleted]
    return Needs(keys, sorted({(op.shard, op.uid) for op in ops if op.verb == "list_remove"}))


def length(held: Held, shard: str, uid: int) -> int:
    """The length of the list at ``(shard, uid)`` as read first (0 if it has no count item)."""
    item = held.get((uid, shard + layout.COUNT))
    return int(item["n"]["N"]) if item is not None else 0


def plan(table: str, ops: Sequence[Any], held: Held, old: dict[Place, list[int]]) -> Group:
    """The group ``ops`` as actions on ``table``, from the items ``held`` (read as :func:`needs`
    says) and the ``old`` entries of the lists it removes from; raises what the group breaks."""
    values: dict[Place, _Value] = {}
    lists: dict[Place, _List] = {}
    changed = 0
    for op in ops:
        place = (op.shard, op.uid)
        before = values.get(place)
        if op.verb in ("insert", "put"):
            if op.verb == "insert" and before is not None and before.item is not None:
                raise UIDCollision(op.shard, op.uid)  # over a value this group wrote
            new = before.new if before is not None else op.verb == "insert"
            values[place] = _Value(layout.value_item(op.shard, op.uid, op.arg), new)
            changed += 1
            continue
        state = lists.get(place)
        if state is None:
            base = length(held, *place)
            state = lists[place] = _List(base, base)
        if op.verb == "delete":
            there = before.item is not None if before is not None else (op.uid, op.shard) in held
            changed += there + state.length
            values[place] = _Value(None, before.new if before is not None else False)
            state.length, state.entries = 0, {}
        elif op.verb == "list_extend":
            state.entries.update((state.length + i, r) for i, r in enumerate(op.arg))
            state.length += len(op.arg)
            changed += len(op.arg)
        elif op.verb == "list_set":
            state.entries, state.length = dict(enumerate(op.arg)), len(op.arg)
            changed += len(op.arg)
        else:  # list_remove: dense positions, so the entries after the first removed move up
            was = old.get(place, [])
            current = [state.entries.get(i, was[i] if i < len(was) else 0) for i in range(state.length)]
            gone = set(op.arg)
            kept = [r for r in current if r not in gone]
            if len(kept) < len(current):
                first = next(i for i, r in enumerate(current) if r in gone)
                state.entries.update((first + j, r) for j, r in enumerate(kept[first:]))
                state.length = len(kept)
                changed += len(current) - len(kept)
    actions = _value_actions(table, values, held) + _list_actions(table, lists)
    if len(actions) > MAX_TRANSACTION_ITEMS:
        raise GroupTooLarge(
            f"a grouped write of {len(actions)} items: DynamoDB's TransactWriteItems takes at most "
            f"{MAX_TRANSACTION_ITEMS}, and a group is never split (it would no longer be atomic); "
            "write fewer changes per group"
        )
    size = sum(item_size(a.item) for a in actions)
    if size > MAX_TRANSACTION_BYTES:
        raise GroupTooLarge(f"a grouped write of {size:,} bytes: a transaction takes at most 4 MB")
    return Group(actions, changed)


def _value_actions(table: str, values: dict[Place, _Value], held: Held) -> list[Action]:
    actions = []
    for (shard, uid), change in values.items():
        condition = {"ConditionExpression": NEW} if change.new else {}
        collision = (shard, uid) if change.new else None
        if change.item is not None:
            check_size(change.item, shard, uid)
            request = {"Put": {"TableName": table, "Item": change.item, **condition}}
            actions.append(Action(request, change.item, collision))
        elif change.new or (uid, shard) in held:  # nothing to delete where nothing was
            key = layout.key(shard, uid)
            request = {"Delete": {"TableName": table, "Key": key, **condition}}
            actions.append(Action(request, held.get((uid, shard), key), collision))
    return actions


def _list_actions(table: str, lists: dict[Place, _List]) -> list[Action]:
    actions = []
    for (shard, uid), state in lists.items():
        written = {p: r for p, r in state.entries.items() if p < state.length}
        if not written and state.length == state.base:
            continue
        for pos, ref in sorted(written.items()):
            item = layout.entry_item(shard, uid, pos, ref)
            actions.append(Action({"Put": {"TableName": table, "Item": item}}, item))
        for pos in range(state.length, state.base):
            key = layout.entry_key(shard, uid, pos)
            actions.append(Action({"Delete": {"TableName": table, "Key": key}}, key))
        unchanged: dict[str, Any] = {"ConditionExpression": NEW}
        if state.base:
            unchanged = {
                "ConditionExpression": "n = :n",
                "ExpressionAttributeValues": {":n": {"N": str(state.base)}},
            }
        if state.length:
            item = layout.count_item(shard, uid, state.length)
            request = {"Put": {"TableName": table, "Item": item, **unchanged}}
        else:
            item = layout.count_key(shard, uid)
            request = {"Delete": {"TableName": table, "Key": item, **unchanged}}
        actions.append(Action(request, item, list_place=(shard, uid)))
    return actions


def check_size(item: layout.Item, shard: str, uid: int) -> None:
    """Refuse an item over DynamoDB's 400 KB with :class:`ItemTooLarge`."""
    size = item_size(item)
    if size > MAX_ITEM_BYTES:
        raise ItemTooLarge(
            f"the value of id {uid} in shard {shard!r} is an item of {size:,} bytes: DynamoDB takes at "
            f"most {MAX_ITEM_BYTES:,} (400 KB); nothing was written"
        )


def condition_failed(action: Action) -> Exception:
    """The store's error for ``action``'s failed condition."""
    if action.collision is not None:
        return UIDCollision(*action.collision)
    shard, uid = action.list_place or ("?", 0)
    return StoreBusy(
        f"the list of id {uid} in shard {shard!r} changed while it was being written (another writer); "
        "nothing was written — retry"
    )
