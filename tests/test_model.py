"""The declarative model: the insurance shards, GraphQL names, value coercion, invalid definitions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from efs_sqlite.errors import ValidationError
from efs_sqlite.model import INSURANCE, KINDS, TYPE_SHARD, Field, Model, NodeType
from efs_sqlite.store import validate_shard

# The 14 field shards of the earlier system (docs/SOURCES.md#earlier-system), with the kind each one stores.
EARLIER_SHARDS = {
    "transaction_identifier": "str",
    "transaction_timestamp": "datetime",
    "transaction_claim": "ref",
    "transaction_amount": "decimal",
    "transaction_source_system_code": "str",
    "transaction_service_type_code": "str",
    "claim_identifier": "int",
    "claim_type_code": "str",
    "claim_timestamp": "datetime",
    "claim_transactions": "refs",
    "claim_parties": "refs",
    "party_identifier": "int",
    "party_timestamp": "datetime",
    "party_claims": "refs",
}

# The field names of the earlier GraphQL schema, per type (without `id`).
EARLIER_GRAPHQL = {
    "Claim": {"claimIdentifier", "claimTypeCode", "timestamp", "transactions", "parties"},
    "Party": {"partyIdentifier", "timestamp", "claims"},
    "Transaction": {
        "financialTransactionIdentifier",
        "timestamp",
        "claim",
        "amount",
        "sourceSystemCode",
        "serviceTypeCode",
    },
}


# -- the insurance model -------------------------------------------------------------------------


def test_insurance_shards_are_the_earlier_systems_plus_the_type_shard() -> None:
    assert TYPE_SHARD == "_type"
    assert INSURANCE.shards() == sorted([*EARLIER_SHARDS, "_type"])
    for shard, kind in EARLIER_SHARDS.items():
        assert INSURANCE.field_for_shard(shard).kind == kind, shard


def test_every_shard_name_is_a_valid_store_shard() -> None:
    for shard in INSURANCE.shards():
        assert validate_shard(shard) == shard


def test_owner_of_shard_and_shard_of_field_agree() -> None:
    for shard in EARLIER_SHARDS:
        node_type, fld = INSURANCE.owner_of_shard(shard)
        assert node_type.shard(fld.name) == shard
        assert INSURANCE.type(node_type.name) is node_type
        assert node_type.field(fld.name) is fld


def test_graphql_names_match_the_earlier_schema() -> None:
    assert set(INSURANCE.types) == set(EARLIER_GRAPHQL)
    for name, expected in EARLIER_GRAPHQL.items():
        assert {f.graphql_name for f in INSURANCE.type(name).fields} == expected, name


def test_references_point_at_the_right_types_and_optional_fields_are_optional() -> None:
    targets = {
        shard: INSURANCE.field_for_shard(shard).target
        for shard, kind in EARLIER_SHARDS.items()
        if kind in ("ref", "refs")
    }
    assert targets == {
        "transaction_claim": "Claim",
        "claim_transactions": "Transaction",
        "claim_parties": "Party",
        "party_claims": "Claim",
    }
    optional = {s for s in EARLIER_SHARDS if not INSURANCE.field_for_shard(s).required}
    assert optional == {
        "transaction_source_system_code",
        "transaction_service_type_code",
        "claim_transactions",
        "claim_parties",
        "party_claims",
    }
    assert INSURANCE.field_for_shard("transaction_amount").places == 2
    assert all(
        f.is_reference == (f.kind in ("ref", "refs")) for t in INSURANCE.types.values() for f in t.fields
    )


def test_unknown_names_raise_key_errors_naming_them() -> None:
    with pytest.raises(KeyError, match="Policy"):
        INSURANCE.type("Policy")
    with pytest.raises(KeyError, match="colour"):
        INSURANCE.type("Claim").field("colour")
    with pytest.raises(KeyError, match="claim_colour"):
        INSURANCE.field_for_shard("claim_colour")
    with pytest.raises(KeyError, match="_type"):
        INSURANCE.field_for_shard(TYPE_SHARD)  # the type shard stores no field


# -- coercion ------------------------------------------------------------------------------------

PLUS_2 = timezone(timedelta(hours=2))

GOOD = [
    (Field("s", "str"), "MOTOR", "MOTOR"),
    (Field("s", "str"), "", ""),
    (Field("n", "int"), 7, 7),
    (Field("n", "int"), "42", 42),
    (Field("n", "int"), 3.0, 3),
    (Field("n", "int"), Decimal("12"), 12),
    (Field("n", "int"), 2**63 - 1, 2**63 - 1),
    (Field("n", "int"), -(2**63), -(2**63)),
    (Field("x", "float"), 1.5, 1.5),
    (Field("x", "float"), 2, 2.0),
    (Field("x", "float"), "2.25", 2.25),
    (Field("x", "float"), Decimal("0.5"), 0.5),
    (Field("a", "decimal", places=2), "12.5", Decimal("12.50")),
    (Field("a", "decimal", places=2), 12, Decimal("12.00")),
    (Field("a", "decimal", places=2), 0.1, Decimal("0.10")),  # from the float's repr, not its binary value
    (Field("a", "decimal", places=2), Decimal("-3.1"), Decimal("-3.10")),
    (Field("a", "decimal"), "1.000", Decimal("1.000")),
    (
        Field("a", "decimal"),
        "1234567890123456789012345678901234567890",
        Decimal("1234567890123456789012345678901234567890"),
    ),
    (Field("t", "datetime"), "2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
    (Field("t", "datetime"), "2024-01-02T03:04:05+02:00", datetime(2024, 1, 2, 1, 4, 5, tzinfo=UTC)),
    (Field("t", "datetime"), "2024-01-02T03:04:05.123", datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)),
    (Field("t", "datetime"), datetime(2024, 1, 2, 3, 4, 5), datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
    (Field("t", "datetime"), datetime(2024, 1, 2, 3, tzinfo=PLUS_2), datetime(2024, 1, 2, 1, tzinfo=UTC)),
    (Field("t", "datetime"), date(2024, 1, 2), datetime(2024, 1, 2, tzinfo=UTC)),
    (Field("b", "bool"), True, True),
    (Field("b", "bool"), False, False),
    (Field("y", "bytes"), b"\x00\xff", b"\x00\xff"),
    (Field("y", "bytes"), bytearray(b"ab"), b"ab"),
    (Field("r", "ref", target="T"), 5, 5),
    (Field("r", "ref", target="T"), 2**63 - 1, 2**63 - 1),
    (Field("rs", "refs", target="T"), [3, 1, 2], [3, 1, 2]),
    (Field("rs", "refs", target="T"), (1, 1), [1, 1]),
    (Field("rs", "refs", target="T"), iter([9]), [9]),
    (Field("rs", "refs", target="T"), [], []),
]


@pytest.mark.parametrize(("fld", "value", "expected"), GOOD, ids=lambda x: repr(x)[:40])
def test_coerce_good_values(fld: Field, value: object, expected: object) -> None:
    got = fld.coerce(value)
    assert got == expected
    assert type(got) is type(expected)
    if isinstance(expected, Decimal):
        assert str(got) == str(expected)  # the places, not just the number
    if isinstance(expected, datetime):
        assert got.utcoffset() == timedelta(0)


BAD = [
    (Field("code", "str"), 5),
    (Field("code", "str"), b"MOTOR"),
    (Field("count", "int"), "x"),
    (Field("count", "int"), "1.5"),
    (Field("count", "int"), 1.5),
    (Field("count", "int"), Decimal("1.5")),
    (Field("count", "int"), True),
    (Field("count", "int"), float("nan")),
    (Field("count", "int"), float("inf")),
    (Field("count", "int"), 2**63),
    (Field("count", "int"), -(2**63) - 1),
    (Field("count", "int"), [1]),
    (Field("ratio", "float"), "abc"),
    (Field("ratio", "float"), True),
    (Field("ratio", "float"), [1.0]),
    (Field("amount", "decimal", places=2), "12.505"),
    (Field("amount", "decimal", places=2), "abc"),
    (Field("amount", "decimal", places=2), "NaN"),
    (Field("amount", "decimal", places=2), float("inf")),
    (Field("amount", "decimal", places=2), Decimal("Infinity")),
    (Field("amount", "decimal", places=2), True),
    (Field("amount", "decimal", places=2), [1]),
    (Field("at", "datetime"), "yesterday"),
    (Field("at", "datetime"), 1_700_000_000),
    (Field("at", "datetime"), "2024-13-01"),
    (Field("flag", "bool"), 1),
    (Field("flag", "bool"), "true"),
    (Field("blob", "bytes"), "text"),
    (Field("owner", "ref", target="T"), 0),
    (Field("owner", "ref", target="T"), -1),
    (Field("owner", "ref", target="T"), 2**63),
    (Field("owner", "ref", target="T"), "5"),
    (Field("owner", "ref", target="T"), True),
    (Field("owner", "ref", target="T"), 5.0),
    (Field("members", "refs", target="T"), "12"),
    (Field("members", "refs", target="T"), b"12"),
    (Field("members", "refs", target="T"), 12),
    (Field("members", "refs", target="T"), [1, "x"]),
    (Field("members", "refs", target="T"), [1, 0]),
]


@pytest.mark.parametrize(("fld", "value"), BAD, ids=lambda x: repr(x)[:40])
def test_coerce_bad_values_raise_naming_the_field(fld: Field, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        fld.coerce(value)
    assert str(info.value).startswith(f"{fld.name}: ")
    assert isinstance(info.value, ValueError)


def test_none_is_refused_for_required_fields_and_kept_for_optional_ones() -> None:
    with pytest.raises(ValidationError, match=r"^code: a value is required$"):
        Field("code", "str").coerce(None)
    assert Field("code", "str", required=False).coerce(None) is None
    # A list is never required: an absent list is the empty list.
    assert Field("items", "refs", target="T").required is False


def test_error_message_is_bounded_for_huge_values() -> None:
    with pytest.raises(ValidationError) as info:
        Field("n", "int").coerce("x" * 10_000)
    assert len(str(info.value)) <= 300


def test_coerce_node_returns_coerced_values() -> None:
    got = INSURANCE.coerce_node(
        "Transaction",
        {
            "identifier": "TX-1",
            "timestamp": "2024-05-01T12:00:00+02:00",
            "claim": 99,
            "amount": "10.5",
        },
    )
    assert got == {
        "identifier": "TX-1",
        "timestamp": datetime(2024, 5, 1, 10, tzinfo=UTC),
        "claim": 99,
        "amount": Decimal("10.50"),
    }
    assert str(got["amount"]) == "10.50"


def test_coerce_node_reports_every_problem_at_once() -> None:
    with pytest.raises(ValidationError) as info:
        INSURANCE.coerce_node("Claim", {"identifier": "x", "colour": "red", "type_code": 5})
    message = str(info.value)
    for part in (
        "unknown field 'colour'",
        "identifier: expected an integer",
        "type_code: expected a string",
        "timestamp: a value is required",
    ):
        assert part in message, part
    # Lists are optional, so their absence is not a problem.
    assert "transactions" not in message and "parties" not in message


def test_coerce_node_partial_skips_missing_fields_but_not_unknown_ones() -> None:
    assert INSURANCE.coerce_node("Party", {"identifier": "3"}, partial=True) == {"identifier": 3}
    with pytest.raises(ValidationError, match="unknown field 'nickname'"):
        INSURANCE.coerce_node("Party", {"nickname": "x"}, partial=True)
    with pytest.raises(ValidationError, match="identifier: a value is required"):
        INSURANCE.coerce_node("Party", {"timestamp": "2024-01-01"})
    with pytest.raises(KeyError, match="Policy"):
        INSURANCE.coerce_node("Policy", {})


# -- definitions ---------------------------------------------------------------------------------


def test_a_custom_model_derives_its_shards_and_graphql_names() -> None:
    model = Model(
        [
            NodeType(
                "Pet", (Field("name", "str"), Field("best_friend", "ref", target="Pet", required=False))
            ),
            NodeType("Owner", (Field("pets", "refs", target="Pet"), Field("born_on", "datetime"))),
        ]
    )
    assert model.shards() == ["_type", "owner_born_on", "owner_pets", "pet_best_friend", "pet_name"]
    assert model.field_for_shard("pet_best_friend").graphql_name == "bestFriend"
    assert model.field_for_shard("owner_born_on").graphql_name == "bornOn"
    assert set(KINDS) == {"str", "int", "float", "decimal", "datetime", "bool", "bytes", "ref", "refs"}


@pytest.mark.parametrize("name", ["Name", "na-me", "_name", "name_", "na__me", "1name", "", "na me", "naïve"])
def test_bad_field_names_raise(name: str) -> None:
    with pytest.raises(ValueError, match="field name"):
        Field(name, "str")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "text"}, "kind"),
        ({"kind": "ref"}, "target"),
        ({"kind": "refs"}, "target"),
        ({"kind": "str", "target": "T"}, "target"),
        ({"kind": "int", "places": 2}, "places"),
    ],
)
def test_inconsistent_fields_raise(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Field("f", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["claim", "Claim_Type", "Claim-Type", "", "1Claim", "Clàim"])
def test_bad_type_names_raise(name: str) -> None:
    with pytest.raises(ValueError, match="type name"):
        NodeType(name, (Field("f", "str"),))


def test_duplicate_fields_within_a_type_raise() -> None:
    with pytest.raises(ValueError, match="duplicate field"):
        NodeType("T", (Field("f", "str"), Field("f", "int")))
    with pytest.raises(ValueError, match="GraphQL field names"):
        NodeType("T", (Field("a_b", "str"), Field("other", "str", graphql_name="aB")))
    with pytest.raises(ValueError, match="GraphQL field names"):
        NodeType("T", (Field("id", "str"),))  # `id` is the node id


def test_invalid_models_raise() -> None:
    pet = NodeType("Pet", (Field("name", "str"),))
    with pytest.raises(ValueError, match="duplicate type Pet"):
        Model([pet, NodeType("Pet", (Field("age", "int"),))])
    with pytest.raises(ValueError, match="duplicate type"):
        Model([pet, NodeType("PET", (Field("age", "int"),))])  # same shard prefix `pet_`
    with pytest.raises(ValueError, match="unknown target type 'Owner'"):
        Model([NodeType("Pet", (Field("owner", "ref", target="Owner"),))])
    with pytest.raises(ValueError, match="too long"):
        Model([NodeType("P" + "x" * 30, (Field("f" * 40, "str"),))])
    # 63 characters is the longest shard name the store accepts.
    longest = Model([NodeType("P" + "x" * 30, (Field("f" * 31, "str"),))])
    assert validate_shard(longest.shards()[1]) == "p" + "x" * 30 + "_" + "f" * 31


# -- inverse pairs ---------------------------------------------------------------------------------


def test_the_insurance_pairs_are_the_earlier_lists_and_their_way_back() -> None:
    pairs = [(a.type.name, a.field.name, b.type.name, b.field.name) for a, b in INSURANCE.pairs()]
    assert pairs == [
        ("Claim", "transactions", "Transaction", "claim"),
        ("Claim", "parties", "Party", "claims"),
    ]
    claim = INSURANCE.type("Claim")
    assert INSURANCE.inverse(claim, claim.field("identifier")) is None


def _pets(owner: Field, pets: Field) -> Model:
    return Model([NodeType("Person", (pets,)), NodeType("Pet", (owner,))])


@pytest.mark.parametrize(
    ("owner", "pets", "why"),
    [
        (
            Field("owner", "ref", target="Person", inverse="nope"),
            Field("pets", "refs", target="Pet"),
            "does not exist",
        ),
        (
            Field("owner", "ref", target="Person", inverse="pets"),
            Field("pets", "refs", target="Pet"),  # does not name owner back
            "must point back",
        ),
        (
            Field("owner", "ref", target="Person", inverse="pets"),
            Field("pets", "ref", target="Pet", inverse="owner"),
            "not two references",
        ),
    ],
)
def test_inverse_pairs_that_do_not_fit_are_refused(owner: Field, pets: Field, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        _pets(owner, pets)


def test_an_inverse_goes_with_references_only_and_never_with_itself() -> None:
    with pytest.raises(ValueError, match="an inverse goes with kind ref/refs only"):
        Field("name", "str", inverse="x")
    with pytest.raises(ValueError, match="its own inverse"):
        Model([NodeType("Pet", (Field("friends", "refs", target="Pet", inverse="friends"),))])
    with pytest.raises(ValueError, match="Connection"):
        NodeType(
            "Pet",
            (Field("friends", "refs", target="Pet"), Field("x", "str", graphql_name="friendsConnection")),
        )
