"""Read and write capacity units, computed from item sizes by AWS's documented rules.

Sizes (``docs/SOURCES.md#dynamodb-item-size``): an item is the sum of its attribute names' and
values' sizes; a string is its UTF-8 bytes, a binary its raw bytes, a number 1 byte per two
significant digits plus 1 (leading and trailing zeros trimmed), a null or a boolean 1 byte.

Units (``docs/SOURCES.md#dynamodb-capacity``):

- a read: 1 unit per started 4 KB of an item, each item rounded up on its own for GetItem and
  BatchGetItem; a Query sums the sizes of the items it returns, then rounds up once. Eventually
  consistent reads cost half. A read that finds nothing costs what one unit of a found item does;
- a write: 1 unit per started 1 KB of the item written (for a delete, the item deleted; the store
  charges a put by the new item's size, since it does not read the item it replaces);
- in a transaction (TransactWriteItems) every item costs twice.

DynamoDB's own ``ConsumedCapacity`` figures are not used: moto returns fixed ones, not computed.

>>> item = {"id": {"N": "12345"}, "f": {"S": "claim_type_code"}, "v": {"S": "MOTOR"}}
>>> item_size(item)  # "id" 2 + 12345 (5 digits: 3 + 1) 4, "f" 1 + 15, "v" 1 + 5
28
>>> read_units([item]), read_units([item], consistent=False), write_units(item, transactional=True)
(1.0, 0.5, 2.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["KB", "item_size", "number_size", "query_units", "read_units", "write_units"]

KB = 1024
_READ_UNIT = 4 * KB
_WRITE_UNIT = KB


def number_size(text: str) -> int:
    """Bytes of a number (its decimal text): 1 per two significant digits, plus 1.

    >>> number_size("7"), number_size("100"), number_size("-0.0120"), number_size("1234567890123")
    (2, 2, 2, 8)
    """
    digits = text.lstrip("+-").replace(".", "").split("e")[0].split("E")[0].strip("0")
    return math.ceil(len(digits) / 2) + 1


def _value_size(value: Mapping[str, Any]) -> int:
    ((form, raw),) = value.items()
    if form == "S":
        return len(raw.encode("utf-8"))
    if form == "N":
        return number_size(raw)
    if form == "B":
        return len(raw)
    if form in ("NULL", "BOOL"):
        return 1
    raise ValueError(f"no size rule for the attribute type {form!r}")


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """The size of an item in DynamoDB's typed form, in bytes."""
    return sum(len(name.encode("utf-8")) + _value_size(value) for name, value in item.items())


def _units(size: int, unit: int) -> int:
    return max(1, math.ceil(size / unit))


def read_units(items: Iterable[Mapping[str, Any] | None], *, consistent: bool = True) -> float:
    """The read units of a GetItem or BatchGetItem of these items (``None``: a key not found),
    each item rounded up to 4 KB on its own.

    >>> big = {"v": {"S": "x" * 5000}}  # 5,002 bytes: 2 units
    >>> read_units([big, None]), read_units([big, None], consistent=False)
    (3.0, 1.5)
    """
    units = sum(_units(0 if item is None else item_size(item), _READ_UNIT) for item in items)
    return units * (1.0 if consistent else 0.5)


def query_units(items: Iterable[Mapping[str, Any]], *, consistent: bool = True) -> float:
    """The read units of a Query returning these items: their sizes summed, then rounded up.

    >>> entry = {"id": {"N": "1"}, "f": {"S": "claim_parties#0000000000000000000"}, "r": {"N": "9"}}
    >>> item_size(entry), query_units([entry] * 99), query_units([entry] * 100), read_units([entry] * 99)
    (41, 1.0, 2.0, 99.0)
    """
    units = _units(sum(item_size(item) for item in items), _READ_UNIT)
    return units * (1.0 if consistent else 0.5)


def write_units(item: Mapping[str, Any], *, transactional: bool = False) -> float:
    """The write units of writing (or deleting) ``item``: 1 per started KB, twice in a transaction.

    >>> write_units({"v": {"S": "x" * 1023}}), write_units({"v": {"S": "x" * 1024}})
    (1.0, 2.0)
    """
    return _units(item_size(item), _WRITE_UNIT) * (2.0 if transactional else 1.0)
