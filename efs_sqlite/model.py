"""Declarative node types: the one description from which shards and the GraphQL schema derive.

A :class:`Model` is a set of :class:`NodeType`, each a tuple of typed :class:`Field`. Every field
is stored in its own shard named ``<type>_<field>`` (``claim_type_code``), exactly as the earlier
system laid out its files, plus one shard, ``_type``, that maps every node id to its type name so
that an id alone finds its node.

Adding a field or a type is one edit to :data:`INSURANCE` (or to your own model):

>>> m = Model([NodeType("Pet", (Field("name", "str"), Field("owner", "ref", target="Pet", required=False)))])
>>> m.shards()
['_type', 'pet_name', 'pet_owner']
>>> m.field_for_shard("pet_name").graphql_name
'name'
>>> INSURANCE.type("Transaction").field("identifier").graphql_name
'financialTransactionIdentifier'
>>> len(INSURANCE.shards()) - 1   # the 14 field shards of the earlier system, plus _type
14

A reference field may name its ``inverse``, the field of the target type that holds the way back:
the graph then keeps both sides in step (:mod:`efs_sqlite.graph`). Both fields name each other;
a pair is two lists (many to many) or a list and a single reference (one to many):

>>> INSURANCE.inverse(INSURANCE.type("Transaction"), INSURANCE.type("Transaction").field("claim"))
Inverse(type=NodeType(name='Claim', ...), field=Field(name='transactions', ...))
>>> [f"{a.type.name}.{a.field.name} <-> {b.type.name}.{b.field.name}" for a, b in INSURANCE.pairs()]
['Claim.transactions <-> Transaction.claim', 'Claim.parties <-> Party.claims']
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import InvalidOperation
from typing import Any, NamedTuple

from efs_sqlite.errors import ValidationError
from efs_sqlite.kinds import KIND_OF, KINDS, FieldKind

__all__ = [
    "INSURANCE",
    "KINDS",
    "TYPE_SHARD",
    "Field",
    "Inverse",
    "Model",
    "NodeType",
]

#: The shard mapping node id -> type name. The leading underscore keeps it apart from every
#: ``<type>_<field>`` name, whose type part is a lowercase word.
TYPE_SHARD = "_type"

_NAME = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
_TYPE_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


@dataclass(frozen=True)
class Field:
    """One typed field of a node type.

    ``kind`` is one of :data:`KINDS` (see :mod:`efs_sqlite.kinds`); ``ref`` holds one node id of
    type ``target``, ``refs`` an ordered list of them (stored one row per entry, so it pages).
    ``places`` fixes the number of decimal places of a ``decimal``. ``graphql_name`` defaults to
    the camelCase of ``name``. ``inverse`` names the field of ``target`` that points back (see
    :meth:`Model.inverse`).
    """

    name: str
    kind: FieldKind
    required: bool = True
    target: str | None = None
    places: int | None = None
    graphql_name: str = ""
    description: str = ""
    inverse: str | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"field name {self.name!r} must be snake_case ([a-z][a-z0-9_]*)")
        if self.kind not in KINDS:
            raise ValueError(f"field {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if (self.kind in ("ref", "refs")) != (self.target is not None):
            raise ValueError(f"field {self.name!r}: a target type goes with kind ref/refs only")
        if self.inverse is not None and self.target is None:
            raise ValueError(f"field {self.name!r}: an inverse goes with kind ref/refs only")
        if self.places is not None and self.kind != "decimal":
            raise ValueError(f"field {self.name!r}: places goes with kind decimal only")
        if self.kind == "refs" and self.required:
            # A list is never missing: an absent list is the empty list.
            object.__setattr__(self, "required", False)
        if not self.graphql_name:
            object.__setattr__(self, "graphql_name", _camel(self.name))

    @property
    def is_reference(self) -> bool:
        return KIND_OF[self.kind].is_reference

    def coerce(self, value: Any) -> Any:
        """Return ``value`` as this field's Python type, or raise :class:`ValidationError`.

        >>> Field("amount", "decimal", places=2).coerce("12.5")
        Decimal('12.50')
        >>> Field("at", "datetime").coerce("2024-01-02T03:04:05Z")
        datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
        >>> Field("n", "int").coerce("x")
        Traceback (most recent call last):
        ...
        efs_sqlite.errors.ValidationError: n: expected an integer, got 'x'
        """
        if value is None:
            if self.required:
                raise ValidationError(f"{self.name}: a value is required")
            return None
        kind = KIND_OF[self.kind]
        try:
            return kind.coerce(self, value)
        except ValidationError:
            raise
        except (TypeError, ValueError, InvalidOperation, OverflowError):
            raise ValidationError(f"{self.name}: expected {kind.expected}, got {value!r}"[:300]) from None


@dataclass(frozen=True)
class NodeType:
    """A node type: a name (``Claim``) and its fields; its shards are ``claim_<field>``."""

    name: str
    fields: tuple[Field, ...]
    description: str = ""
    _by_name: Mapping[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _TYPE_NAME.match(self.name):
            raise ValueError(f"type name {self.name!r} must be CapitalizedWords")
        object.__setattr__(self, "fields", tuple(self.fields))
        by_name = {f.name: f for f in self.fields}
        if len(by_name) != len(self.fields):
            raise ValueError(f"type {self.name}: duplicate field names")
        # A reference list is also paged as a connection, <name>Connection, beside it.
        gql = [f.graphql_name for f in self.fields]
        gql += [f"{f.graphql_name}Connection" for f in self.fields if f.kind == "refs"]
        if len(set(gql)) != len(gql) or "id" in gql:
            raise ValueError(
                f"type {self.name}: GraphQL field names (with each list's <name>Connection) "
                "must be unique and not 'id'"
            )
        object.__setattr__(self, "_by_name", by_name)

    @property
    def key(self) -> str:
        """The shard prefix: the type name in lowercase."""
        return self.name.lower()

    def field(self, name: str) -> Field:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"type {self.name} has no field {name!r}") from None

    def shard(self, field_name: str) -> str:
        return f"{self.key}_{self.field(field_name).name}"


class Inverse(NamedTuple):
    """The other side of an inverse pair: a field of a type."""

    type: NodeType
    field: Field


class Model:
    """A validated set of node types, with the shard names derived from them and their inverse
    pairs checked: each field names the other, and they are two lists or a list and a reference."""

    def __init__(self, types: Sequence[NodeType]) -> None:
        self.types: dict[str, NodeType] = {}
        for t in types:
            if t.name in self.types or any(o.key == t.key for o in self.types.values()):
                raise ValueError(f"duplicate type {t.name}")
            self.types[t.name] = t
        self._shards: dict[str, tuple[NodeType, Field]] = {}
        for t in self.types.values():
            for f in t.fields:
                if f.target is not None and f.target not in self.types:
                    raise ValueError(f"{t.name}.{f.name}: unknown target type {f.target!r}")
                shard = t.shard(f.name)
                if shard in self._shards or len(shard) > 63:
                    raise ValueError(f"shard name {shard!r} is taken or too long")
                self._shards[shard] = (t, f)
        self._inverses: dict[tuple[str, str], Inverse] = {}
        for t in self.types.values():
            for f in t.fields:
                if f.inverse is not None:
                    self._inverses[t.name, f.name] = self._check_inverse(t, f)

    def _check_inverse(self, t: NodeType, f: Field) -> Inverse:
        assert f.target is not None and f.inverse is not None
        where = f"{t.name}.{f.name}"
        other = self.types[f.target]
        try:
            g = other.field(f.inverse)
        except KeyError:
            raise ValueError(f"{where}: its inverse {f.target}.{f.inverse} does not exist") from None
        if g.target != t.name or g.inverse != f.name:
            raise ValueError(
                f"{where}: its inverse {f.target}.{g.name} must point back"
                f" (target {t.name}, inverse {f.name})"
            )
        if f.kind == g.kind == "ref":
            raise ValueError(
                f"{where}: an inverse pair is two lists, or a list and a reference; not two references"
            )
        if g is f:
            raise ValueError(f"{where}: a field cannot be its own inverse")
        return Inverse(other, g)

    def __repr__(self) -> str:
        return f"Model({list(self.types)})"

    def type(self, name: str) -> NodeType:
        try:
            return self.types[name]
        except KeyError:
            raise KeyError(f"unknown node type {name!r}") from None

    def shards(self) -> list[str]:
        """Every shard name: the type shard and one per field, sorted."""
        return sorted([TYPE_SHARD, *self._shards])

    def field_for_shard(self, shard: str) -> Field:
        return self.owner_of_shard(shard)[1]

    def owner_of_shard(self, shard: str) -> tuple[NodeType, Field]:
        try:
            return self._shards[shard]
        except KeyError:
            raise KeyError(f"no field is stored in shard {shard!r}") from None

    def inverse(self, t: NodeType, f: Field) -> Inverse | None:
        """The other side of ``t.f``'s inverse pair, or ``None`` if it has none."""
        return self._inverses.get((t.name, f.name))

    def pairs(self) -> list[tuple[Inverse, Inverse]]:
        """Every inverse pair once, its list side first (of two lists, the one declared first)."""
        seen: set[tuple[str, str]] = set()
        out = []
        for (type_name, field_name), other in self._inverses.items():
            if (other.type.name, other.field.name) in seen:
                continue
            seen.add((type_name, field_name))
            mine = Inverse(self.types[type_name], self.types[type_name].field(field_name))
            out.append((other, mine) if mine.field.kind == "ref" else (mine, other))
        return out

    def coerce_node(
        self, type_name: str, values: Mapping[str, Any], *, partial: bool = False
    ) -> dict[str, Any]:
        """Validate a node's field values (by field name); return them coerced.

        Unknown fields and, unless ``partial``, missing required fields are errors; every problem
        is reported at once.

        >>> INSURANCE.coerce_node("Party", {"identifier": 7, "timestamp": "2024-05-01T00:00:00"})
        {'identifier': 7, 'timestamp': datetime.datetime(2024, 5, 1, 0, 0, tzinfo=datetime.timezone.utc)}
        """
        t = self.type(type_name)
        problems = [f"{type_name}: unknown field {k!r}" for k in values if k not in t._by_name]
        out: dict[str, Any] = {}
        for f in t.fields:
            if f.name not in values:
                if f.required and not partial:
                    problems.append(f"{f.name}: a value is required")
                continue
            try:
                out[f.name] = f.coerce(values[f.name])
            except ValidationError as exc:
                problems.append(str(exc))
        if problems:
            raise ValidationError("; ".join(problems))
        return out


#: The insurance domain of the earlier system: 3 types, 14 field shards.
INSURANCE = Model(
    [
        NodeType(
            "Claim",
            (
                Field("identifier", "int", graphql_name="claimIdentifier"),
                Field("type_code", "str", graphql_name="claimTypeCode"),
                Field("timestamp", "datetime"),
                Field("transactions", "refs", target="Transaction", inverse="claim"),
                Field("parties", "refs", target="Party", inverse="claims"),
            ),
            description="An insurance claim.",
        ),
        NodeType(
            "Party",
            (
                Field("identifier", "int", graphql_name="partyIdentifier"),
                Field("timestamp", "datetime"),
                Field("claims", "refs", target="Claim", inverse="parties"),
            ),
            description="A person or company involved in claims.",
        ),
        NodeType(
            "Transaction",
            (
                Field("identifier", "str", graphql_name="financialTransactionIdentifier"),
                Field("timestamp", "datetime"),
                Field("claim", "ref", target="Claim", inverse="transactions"),
                Field("amount", "decimal", places=2),
                Field("source_system_code", "str", required=False),
                Field("service_type_code", "str", required=False),
            ),
            description="A financial transaction booked against a claim.",
        ),
    ]
)
