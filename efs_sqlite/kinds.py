"""Value kinds: for each kind a field can have, everything the package knows of it, in one place.

A :class:`Kind` holds what the layers need of one kind, so that adding a kind is one edit here
(and its name in :data:`FieldKind`):

* ``coerce``: what the model turns a given value (Python, or its JSON form) into;
* ``stored``: the form :meth:`~efs_sqlite.store.ShardStore.bulk_insert_stored` takes it in: the
  kind tag each row gets, the test SQLite runs as it binds a value, its Python twin (None for a
  kind whose tag is the value's own, float and bool, or for a list);
* ``column``: the loader's fast check of a chunk of record values (None: value by value);
* ``to_json``: a value as a JSON record carries it (what ``coerce`` reads back), for the data set;
* ``graphql``: the name of its GraphQL scalar (None for a reference: an ``ID`` or a connection).

The kind tags are the store's file format: the ``kind`` column of every ``items`` row.

>>> KIND_OF["decimal"].graphql, KIND_OF["decimal"].stored.tag == DECIMAL
('Decimal', True)
>>> KIND_OF["datetime"].column(None)(["1970-01-02T00:00:00Z"])
[86400000000]
>>> [k for k in KINDS if KIND_OF[k].stored is None]
['float', 'bool', 'refs']
>>> KIND_OF["datetime"].to_json(datetime(2024, 1, 2, 3, 4, 5))
'2024-01-02T03:04:05Z'

"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import chain, repeat
from operator import attrgetter, floordiv, sub
from typing import Any, Literal, Protocol

from efs_sqlite.errors import ValidationError
from efs_sqlite.uid import EPOCH, are_ids, check_id

__all__ = [
    "BOOL",
    "DATETIME",
    "DATETIME_US",
    "DECIMAL",
    "INT64",
    "KINDS",
    "KIND_OF",
    "MICROSECOND",
    "NAN",
    "PLAIN",
    "REF",
    "Column",
    "FieldKind",
    "Kind",
    "Stored",
]

FieldKind = Literal["str", "int", "float", "decimal", "datetime", "bool", "bytes", "ref", "refs"]

#: The kind tags of stored values: a value SQLite keeps as it is, and the types it has no storage
#: class for (a NaN float is a tag of its own: SQLite would store it as NULL).
PLAIN, BOOL, DECIMAL, DATETIME, REF, NAN = range(6)
MICROSECOND = timedelta(microseconds=1)
#: A signed 64-bit integer: SQLite's INTEGER.
INT64 = (-(2**63), 2**63 - 1)
_FIRST_UTC, _LAST_UTC = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
#: Microseconds since the epoch that read back as a datetime: years 1 to 9999 in UTC.
DATETIME_US = ((_FIRST_UTC - EPOCH) // MICROSECOND, (_LAST_UTC - EPOCH) // MICROSECOND)


class Described(Protocol):
    """What coercion needs of a field: its name (for messages) and a decimal's places."""

    @property
    def name(self) -> str: ...

    @property
    def places(self) -> int | None: ...


#: The fast check of a chunk of values: their stored forms, or None if any is off the common shape.
Column = Callable[[list[Any]], list[Any] | None]


@dataclass(frozen=True)
class Stored:
    """How the store takes a kind's values already in their stored form: each row gets ``tag``;
    ``sql`` is the test a value bound as ``?2`` must pass (SQLite runs it while it binds the row),
    ``fits`` its Python twin, ``form`` its wording in a refusal."""

    tag: int
    sql: str
    fits: Callable[[Any], bool]
    form: str


@dataclass(frozen=True)
class Kind:
    """One kind of field value (see the module's documentation)."""

    name: str
    expected: str
    coerce: Callable[[Described, Any], Any]
    graphql: str | None
    stored: Stored | None = None
    column: Callable[[int | None], Column] | None = None
    to_json: Callable[[Any], Any] = lambda value: value

    @property
    def is_reference(self) -> bool:
        return self.graphql is None


# -- coercion: a given value -> the field's Python value (TypeError/ValueError: not of the kind) --


def _str(f: Described, v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError
    return v


def _int(f: Described, v: Any) -> int:
    if isinstance(v, bool):
        raise TypeError
    n = int(v)
    if isinstance(v, float | Decimal) and n != v:
        raise TypeError  # int() would silently drop the fraction
    if not INT64[0] <= n <= INT64[1]:
        raise ValidationError(f"{f.name}: {n} does not fit a signed 64-bit integer")
    return n


def _float(f: Described, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float | Decimal | str):
        raise TypeError
    return float(v)


def _decimal(f: Described, v: Any) -> Decimal:
    if isinstance(v, bool):
        raise TypeError  # Decimal(True) would be 1
    if isinstance(v, float):
        v = repr(v)  # the shortest repr is what the user typed; Decimal(float) is not
    d = Decimal(v) if not isinstance(v, Decimal) else v
    if not d.is_finite():
        raise ValidationError(f"{f.name}: {v!r} is not a finite number")
    if f.places is not None:
        q = Decimal(1).scaleb(-f.places)
        if d != d.quantize(q):
            raise ValidationError(f"{f.name}: {v!r} has more than {f.places} decimal places")
        d = d.quantize(q)
    return d


def _datetime(f: Described, v: Any) -> datetime:
    if isinstance(v, str):
        v = datetime.fromisoformat(v)
    elif isinstance(v, date) and not isinstance(v, datetime):
        v = datetime(v.year, v.month, v.day)
    if not isinstance(v, datetime):
        raise TypeError
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


def _bool(f: Described, v: Any) -> bool:
    if not isinstance(v, bool):
        raise TypeError
    return v


def _bytes(f: Described, v: Any) -> bytes:
    if not isinstance(v, bytes | bytearray | memoryview):
        raise TypeError
    return bytes(v)


def _ref(f: Described, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError
    return check_id(v, f.name)


def _refs(f: Described, v: Any) -> list[int]:
    if isinstance(v, str | bytes) or not isinstance(v, Iterable):
        raise TypeError
    return [_ref(f, x) for x in v]


# -- JSON forms: what a record carries ------------------------------------------------------------


def _iso_utc(at: datetime) -> str:
    """ISO 8601 in UTC with ``Z``; a naive datetime is taken as UTC, as coercion takes it."""
    if at.utcoffset() is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return at.isoformat() + "Z"


def _no_json(value: Any) -> Any:
    raise TypeError(f"a {type(value).__name__} value has no JSON form")


# -- stored forms: Python tests of what the SQL tests accept ----------------------------------------

#: A decimal is stored as a JSON number: what ``str()`` of a finite Decimal is, what ``Decimal()`` reads.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def _is_int(value: Any) -> bool:
    return isinstance(value, int)  # SQLite binds a bool as an integer


def _is_micros(value: Any) -> bool:
    return isinstance(value, int) and DATETIME_US[0] <= value <= DATETIME_US[1]


def _is_number_text(value: Any) -> bool:
    return isinstance(value, str) and _JSON_NUMBER.fullmatch(value) is not None


def _is_bytes(value: Any) -> bool:
    return isinstance(value, bytes | bytearray | memoryview)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


# -- fast checks of a chunk: C loops (map, set, min), no Python call per value ----------------------

_TZINFO = attrgetter("tzinfo")
_INTS, _STRS, _LISTS = frozenset({int}), frozenset({str}), frozenset({list})


def _strs(places: int | None) -> Column:
    return lambda vs: vs if set(map(type, vs)) == _STRS else None


def _ints(places: int | None) -> Column:
    low, high = INT64
    return lambda vs: vs if set(map(type, vs)) == _INTS and min(vs) >= low and max(vs) <= high else None


def _ids(places: int | None) -> Column:
    return lambda vs: vs if are_ids(vs) else None


def _datetimes(places: int | None) -> Column:
    return _micros


def _micros(values: list[Any]) -> list[int] | None:
    """ISO 8601 strings with an offset (``Z`` included) -> microseconds since the epoch, as
    coercing and storing each one would make them."""
    if set(map(type, values)) != _STRS:
        return None
    try:
        ats = list(map(datetime.fromisoformat, values))  # what coercion parses with
    except ValueError:
        return None
    if None in set(map(_TZINFO, ats)) or min(ats) < _FIRST_UTC or max(ats) > _LAST_UTC:
        return None  # a naive time (coercion takes it as UTC), or outside years 1..9999 in UTC
    return list(map(floordiv, map(sub, ats, repeat(EPOCH)), repeat(MICROSECOND)))


def _decimals(places: int | None) -> Column:
    if not places:
        return lambda vs: None
    # Already the text Decimal stores: a sign, no leading zero, exactly `places` decimals, and
    # too few digits for quantizing to overflow the decimal context.
    canonical = re.compile(rf"-?(?:0|[1-9][0-9]{{0,14}})\.[0-9]{{{places}}}").fullmatch
    return lambda vs: vs if set(map(type, vs)) == _STRS and all(map(canonical, vs)) else None


def _id_lists(places: int | None) -> Column:
    return _lists_of_ids


def _lists_of_ids(values: list[Any]) -> list[list[int]] | None:
    """Lists of node ids; a 25,000-entry hub list costs no Python call per entry."""
    if set(map(type, values)) != _LISTS:
        return None
    return values if are_ids(list(chain.from_iterable(values))) else None


_INTEGER = "typeof(?2) = 'integer'"
_MICROS_SQL = f"{_INTEGER} AND ?2 BETWEEN {DATETIME_US[0]} AND {DATETIME_US[1]}"
_NUMBER_SQL = "typeof(?2) = 'text' AND json_valid(?2) AND ?2 NOT GLOB '*[^0-9.eE+-]*'"

_ALL = (
    Kind("str", "a string", _str, "String", Stored(PLAIN, "typeof(?2) = 'text'", _is_str, "a str"), _strs),
    Kind("int", "an integer", _int, "Int", Stored(PLAIN, _INTEGER, _is_int, "an int"), _ints),
    Kind("float", "a number", _float, "Float"),
    Kind(
        "decimal",
        "a decimal number",
        _decimal,
        "Decimal",
        Stored(DECIMAL, _NUMBER_SQL, _is_number_text, "the text of a finite number"),
        _decimals,
        str,
    ),
    Kind(
        "datetime",
        "an ISO 8601 datetime",
        _datetime,
        "DateTime",
        Stored(DATETIME, _MICROS_SQL, _is_micros, "an int (microseconds, years 1-9999)"),
        _datetimes,
        _iso_utc,
    ),
    Kind("bool", "true or false", _bool, "Boolean"),
    Kind(
        "bytes",
        "bytes",
        _bytes,
        "Base64",
        Stored(PLAIN, "typeof(?2) = 'blob'", _is_bytes, "bytes"),
        to_json=_no_json,  # coercion takes bytes only
    ),
    Kind("ref", "a node id", _ref, None, Stored(REF, _INTEGER, _is_int, "an int"), _ids),
    Kind("refs", "a list of node ids", _refs, None, None, _id_lists),
)
#: Every kind, by name.
KIND_OF: dict[str, Kind] = {k.name: k for k in _ALL}
KINDS: tuple[str, ...] = tuple(KIND_OF)
