"""The item layout: keys by node then field, list positions that sort as numbers, values that read
back with their types."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from efs_sqlite.dynamodb import layout
from efs_sqlite.store import Ref


def test_keys_put_a_nodes_fields_in_one_partition() -> None:
    a, b = layout.key("claim_type_code", 7), layout.key("claim_amount", 7)
    assert a["id"] == b["id"] == {"N": "7"} and a["f"] != b["f"]
    assert layout.key("s", Ref(7)) == layout.key("s", 7)  # a reference is keyed as its number


def test_positions_sort_as_numbers_and_the_count_item_after_them() -> None:
    keys = [layout.position("claim_parties", p) for p in (0, 9, 10, 99, 10**18)]
    assert keys == sorted(keys)
    assert layout.position("claim_parties", 10**18) < "claim_parties" + layout.COUNT
    low, high = layout.entry_range("claim_parties", 5, 3) or ("", "")
    assert (low, high) == (layout.position("claim_parties", 5), layout.position("claim_parties", 7))
    # No other shard's item falls in the range, even one whose name extends this one's.
    for other in ("claim_parties", "claim_parties_x", "claim_parties" + layout.COUNT, "claim_partie"):
        assert not low <= other <= high
    assert layout.entry_range("claim_parties", 0, 0) is None
    assert layout.entry_range("claim_parties", 10**19, 5) is None


@pytest.mark.parametrize(
    "value",
    [
        "MOTOR",
        "",
        7,
        -(2**63),
        2.5,
        -0.0,
        math.inf,
        True,
        Decimal("12.50"),
        Decimal("-7.25E-30"),
        datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        Ref(9),
        b"\x00\xff",
        None,
    ],
    ids=repr,
)
def test_values_read_back_with_their_types(value: object) -> None:
    got = layout.decode(layout.value_item("t_x", 1, value))
    assert type(got) is type(value) and (got == value or str(got) == str(value))
    if isinstance(value, float):
        assert math.copysign(1, got) == math.copysign(1, value)


def test_a_nan_and_a_float_keep_their_kinds() -> None:
    assert math.isnan(layout.decode(layout.value_item("t_x", 1, math.nan)))
    assert layout.value_item("t_x", 1, 2.5)["k"] == {"N": str(layout.FLOAT)}
    assert "k" not in layout.value_item("t_x", 1, "plain")


def test_the_table_is_on_demand_with_the_two_keys() -> None:
    table = layout.table_definition("t")
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["id", "f"]
