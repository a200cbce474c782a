"""The item layout of the DynamoDB store: one table, keyed by node, then by field.

Keys
----
The partition key ``id`` (a number) is the node id; the sort key ``f`` (a string) names the field:
the shard name, ``<type>_<field>``. So a node's fields sit together in one item collection, and a
level of a GraphQL query (a few fields of a few nodes) reads items spread over the nodes'
partitions, never one partition per field.

The predecessor keyed the other way round (partition key = field name, sort key = node id:
Dgraph's layout, sharded by predicate; see ``docs/SOURCES.md#dynamodb-predecessor``). That puts
every read of one field, of every node, on one partition, which serves at most 3,000 read units
per second (``docs/SOURCES.md#dynamodb-limits``) however large the table grows, and it kept a
reference list as one list attribute, which hit the 400 KB item limit on 25,000-entry lists.

Items
-----
- a value: ``(id, f=<shard>)`` with ``v``, the value, and ``k``, its kind tag when it is not a
  plain one (the SQLite store's tags, :mod:`efs_sqlite.kinds`, plus :data:`FLOAT`): the same
  values read back with the same types on both backends;
- a reference list: one item per entry, ``(id, f=<shard>#<position>)`` with ``r``, the entry,
  the position written with :data:`POSITION_DIGITS` digits so that the string order of the sort
  key is the order of the list; and one count item ``(id, f=<shard>#n)`` with ``n``, the length.
  Positions are dense (``0 .. n-1``), as in the SQLite store, so a page is one Query of a range of
  sort keys with a limit (page 1,000 costs what page 1 does), a list's length is one read, and an
  append writes only the new entries and the count. No list is ever one item, so no list meets
  the item size limit.

Attribute names are one letter: every byte of a name is paid for in every item read or written
(``docs/SOURCES.md#dynamodb-item-size``).

>>> value_item("claim_type_code", 7, "MOTOR")
{'id': {'N': '7'}, 'f': {'S': 'claim_type_code'}, 'v': {'S': 'MOTOR'}}
>>> from decimal import Decimal
>>> decode(value_item("claim_amount", 7, Decimal("12.50")))
Decimal('12.50')
>>> entry_key("claim_parties", 7, 2)["f"]
{'S': 'claim_parties#0000000000000000002'}
"""

from __future__ import annotations

from typing import Any

from efs_sqlite.kinds import PLAIN
from efs_sqlite.store import decode_value, encode_value

__all__ = [
    "COUNT",
    "FLOAT",
    "POSITION_DIGITS",
    "Item",
    "attribute",
    "count_item",
    "count_key",
    "decode",
    "entry_item",
    "entry_key",
    "entry_range",
    "key",
    "position",
    "table_definition",
    "uid_of",
    "value_item",
]

#: An item (or a key) in DynamoDB's typed form: ``{"id": {"N": "7"}, ...}``.
Item = dict[str, dict[str, Any]]

#: The kind tag of a float, which DynamoDB has no type for (a number is decimal, and cannot be
#: infinite): kept as its ``repr``, a string. Past the SQLite store's tags (0-5).
FLOAT = 6
#: Digits of a list position in a sort key: enough for any 64-bit position.
POSITION_DIGITS = 19
#: The suffix of a list's count item: after every position (``n`` sorts after the digits).
COUNT = "#n"


def table_definition(table: str) -> dict[str, Any]:
    """``CreateTable``'s arguments for ``table``: the two keys, on-demand capacity."""
    return {
        "TableName": table,
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}, {"AttributeName": "f", "KeyType": "RANGE"}],
        "AttributeDefinitions": [
            {"AttributeName": "id", "AttributeType": "N"},
            {"AttributeName": "f", "AttributeType": "S"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


def key(shard: str, uid: int) -> Item:
    """The key of ``uid``'s value in ``shard``."""
    return {"id": {"N": str(int(uid))}, "f": {"S": shard}}


def count_key(shard: str, uid: int) -> Item:
    """The key of the count item of ``uid``'s list in ``shard``."""
    return {"id": {"N": str(int(uid))}, "f": {"S": shard + COUNT}}


def position(shard: str, pos: int) -> str:
    """The sort key of position ``pos`` of a list in ``shard``.

    >>> position("party_claims", 12)
    'party_claims#0000000000000000012'
    """
    return f"{shard}#{pos:0{POSITION_DIGITS}d}"


def entry_key(shard: str, uid: int, pos: int) -> Item:
    """The key of the entry at ``pos`` of ``uid``'s list in ``shard``."""
    return {"id": {"N": str(int(uid))}, "f": {"S": position(shard, pos)}}


def entry_range(shard: str, offset: int, limit: int) -> tuple[str, str] | None:
    """The sort keys of positions ``offset .. offset+limit-1`` (for ``BETWEEN``), or None when the
    window holds no position a sort key can name."""
    last = min(offset + limit, 10**POSITION_DIGITS) - 1
    if limit <= 0 or offset > last:
        return None
    return position(shard, offset), position(shard, last)


def value_item(shard: str, uid: int, value: Any) -> Item:
    """The item of ``uid``'s ``value`` in ``shard``; ``ValueError``/``TypeError`` for a value the
    store cannot keep (as the SQLite store says)."""
    stored, kind = encode_value(value)
    if kind == PLAIN and isinstance(stored, float):
        stored, kind = repr(stored), FLOAT
    item = key(shard, uid)
    item["v"] = attribute(stored)
    if kind != PLAIN:
        item["k"] = {"N": str(kind)}
    return item


def attribute(stored: Any) -> dict[str, Any]:
    """A stored form (None, str, int or bytes) as a typed attribute value."""
    if stored is None:
        return {"NULL": True}
    if isinstance(stored, str):
        return {"S": stored}
    if isinstance(stored, int):
        return {"N": str(stored)}
    return {"B": stored}


def entry_item(shard: str, uid: int, pos: int, ref: int) -> Item:
    """The item of the entry ``ref`` at ``pos`` of ``uid``'s list in ``shard``."""
    item = entry_key(shard, uid, pos)
    item["r"] = {"N": str(int(ref))}
    return item


def count_item(shard: str, uid: int, length: int) -> Item:
    """The count item of ``uid``'s list in ``shard``, of ``length`` entries."""
    item = count_key(shard, uid)
    item["n"] = {"N": str(length)}
    return item


def uid_of(item: Item) -> int:
    return int(item["id"]["N"])


def decode(item: Item) -> Any:
    """The value a value item holds, with the type it was written with.

    >>> decode(value_item("t_x", 1, float("inf"))), decode(value_item("t_x", 1, True))
    (inf, True)
    """
    ((form, raw),) = item["v"].items()
    kind = int(item["k"]["N"]) if "k" in item else PLAIN
    stored: Any = None if form == "NULL" else int(raw) if form == "N" else raw
    return float(stored) if kind == FLOAT else decode_value(stored, kind)
