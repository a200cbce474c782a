"""Value kinds: each kind's coercion, stored form (its Python test agrees with the SQL one SQLite
runs), fast chunk check (the same answer as coercing one by one), JSON form and GraphQL scalar."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, get_args

import apsw
import graphene
import pytest

from efs_sqlite.errors import ValidationError
from efs_sqlite.kinds import DATETIME_US, INT64, KIND_OF, KINDS, MICROSECOND, FieldKind
from efs_sqlite.store import STORED_KINDS, stored_form
from efs_sqlite.uid import EPOCH, MAX_UID


@dataclass(frozen=True)
class Described:
    name: str = "f"
    places: int | None = None


#: Values of each kind, as coercion returns them.
VALUES: dict[str, list[Any]] = {
    "str": ["", "MOTOR", "é\x00"],
    "int": [0, -1, INT64[0], INT64[1]],
    "float": [0.0, -1.5, 1e300],
    "decimal": [Decimal("12.50"), Decimal("-0.01"), Decimal("1E+3")],
    "datetime": [EPOCH, datetime(1, 1, 1, tzinfo=UTC), datetime(2024, 6, 1, 8, 30, 1, 5, tzinfo=UTC)],
    "bool": [True, False],
    "bytes": [b"", b"\x00\xff"],
    "ref": [1, MAX_UID],
    "refs": [[], [1, 2, MAX_UID]],
}

#: Stored forms, right and wrong, to put to both tests of each stored kind.
PROBES: list[Any] = [
    None,
    0,
    -1,
    INT64[1],
    *DATETIME_US,
    DATETIME_US[0] - 1,
    DATETIME_US[1] + 1,
    1.5,
    "",
    "x",
    "12.50",
    "-3",
    "1e5",
    "NaN",
    "1.2.3",
    "--1",
    b"",
    b"ab",
]


def test_the_kind_names_are_the_field_kinds() -> None:
    assert get_args(FieldKind) == KINDS == tuple(VALUES)
    assert [name for name, kind in KIND_OF.items() if kind.name != name] == []


@pytest.mark.parametrize("name", KINDS)
def test_coercion_keeps_a_value_of_the_kind(name: str) -> None:
    for value in VALUES[name]:
        assert KIND_OF[name].coerce(Described(), value) == value


@pytest.mark.parametrize("name", KINDS)
def test_the_json_form_reads_back_as_the_value(name: str) -> None:
    kind = KIND_OF[name]
    for value in VALUES[name]:
        if name == "bytes":
            with pytest.raises(TypeError, match="no JSON form"):
                kind.to_json(value)
        else:
            assert kind.coerce(Described(), kind.to_json(value)) == value


def test_the_json_form_of_a_datetime_is_utc_with_z() -> None:
    to_json = KIND_OF["datetime"].to_json
    assert to_json(datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02T03:04:05Z"  # naive: taken as UTC
    assert (
        to_json(datetime(2024, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))) == "2024-01-02T03:04:05Z"
    )


def test_refusals_name_the_field() -> None:
    with pytest.raises(ValidationError, match=r"^owner: 0 is not a node id$"):
        KIND_OF["ref"].coerce(Described("owner"), 0)
    with pytest.raises(ValidationError, match=r"^owners: 9223372036854775808 is not a node id$"):
        KIND_OF["refs"].coerce(Described("owners"), [1, MAX_UID + 1])
    with pytest.raises(ValidationError, match="more than 2 decimal places"):
        KIND_OF["decimal"].coerce(Described("amount", 2), "1.234")
    with pytest.raises(ValidationError, match="does not fit a signed 64-bit integer"):
        KIND_OF["int"].coerce(Described(), INT64[1] + 1)
    for name in ("int", "ref", "decimal"):
        with pytest.raises(TypeError):
            KIND_OF[name].coerce(Described(), True)


def test_the_stored_kinds_are_those_with_a_stored_form() -> None:
    assert set(STORED_KINDS) == {name for name in KINDS if KIND_OF[name].stored is not None}
    assert {"float", "bool", "refs"}.isdisjoint(STORED_KINDS)  # their tags are not the field's alone


@pytest.mark.parametrize("name", STORED_KINDS)
def test_the_python_test_of_a_stored_form_is_the_sql_one(name: str) -> None:
    stored = KIND_OF[name].stored
    assert stored is not None
    conn = apsw.Connection(":memory:")
    forms = [stored_form(name, v) for v in VALUES[name]]
    for value in [*PROBES, *forms]:
        (sql,) = conn.execute(f"SELECT CASE WHEN {stored.sql} THEN 1 ELSE 0 END", (None, value)).fetchone()
        assert bool(sql) == (value is not None and stored.fits(value)), value
    assert all(map(stored.fits, forms))


def test_the_datetime_range_is_what_reads_back_as_a_datetime() -> None:
    low, high = DATETIME_US
    assert EPOCH + low * MICROSECOND == datetime.min.replace(tzinfo=UTC)
    assert EPOCH + high * MICROSECOND == datetime.max.replace(tzinfo=UTC)
    with pytest.raises(OverflowError):
        EPOCH + (high + 1) * MICROSECOND


#: Chunks of record values, some of the common shape (the fast check takes them), some not.
CHUNKS: dict[str, list[list[Any]]] = {
    "str": [["a", "b"], ["a", 1]],
    "int": [[1, -5, INT64[1]], [1, INT64[1] + 1], [1, True], [1, 2.0]],
    "datetime": [["2024-01-01T00:00:00Z", "0001-01-01T00:00:00+00:00"], ["2024-01-01T00:00:00"], ["x"]],
    "decimal": [["12.50", "-0.01"], ["12.5"], ["012.50"], [1.25]],
    "ref": [[1, MAX_UID], [0, 1], [1, MAX_UID + 1], [True]],
    "refs": [[[1, 2], []], [[1, 0]], [(1, 2)]],
}


@pytest.mark.parametrize("name", list(CHUNKS))
def test_a_fast_check_answers_what_coercing_one_by_one_would(name: str) -> None:
    kind, field = KIND_OF[name], Described(places=2 if name == "decimal" else None)
    assert kind.column is not None
    check = kind.column(field.places)
    taken = 0
    for chunk in CHUNKS[name]:
        fast = check(chunk)
        if fast is None:
            continue
        taken += 1
        coerced = [kind.coerce(field, v) for v in chunk]
        assert fast == [stored_form(name, v) if name in STORED_KINDS else v for v in coerced]
    assert taken == 1  # the first chunk of each kind; every other one goes value by value


def test_kinds_checked_value_by_value_have_no_fast_check() -> None:
    assert [name for name in KINDS if KIND_OF[name].column is None] == ["float", "bool", "bytes"]
    assert KIND_OF["decimal"].column(None)(["1.00"]) is None  # no places: no canonical text


def test_every_scalar_kind_names_a_graphql_scalar() -> None:
    for name in KINDS:
        kind = KIND_OF[name]
        if kind.is_reference:
            assert kind.graphql is None and name in ("ref", "refs")
        else:
            scalar = getattr(graphene, kind.graphql)
            assert issubclass(scalar, graphene.Scalar) and scalar._meta.name == kind.graphql
