"""Capacity units against hand-worked examples of AWS's documented rules (docs/SOURCES.md#dynamodb-capacity,
#dynamodb-item-size): sizes by attribute, 4 KB read units per item or per Query, 1 KB write units,
eventual reads at half, transactions at twice."""

from __future__ import annotations

import pytest

from efs_sqlite.dynamodb import layout
from efs_sqlite.dynamodb.capacity import item_size, number_size, query_units, read_units, write_units


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 1),  # no significant digit: the 1 byte alone
        ("7", 2),  # 1 digit: 1 + 1
        ("12345", 4),  # 5 digits: 3 + 1
        ("1000", 2),  # trailing zeros trimmed: 1 digit
        ("-0.0120", 2),  # leading zeros, sign and point: the digits "12"
        ("9223372036854775807", 11),  # 2**63 - 1, 19 digits: 10 + 1
        ("1E+5", 2),
    ],
)
def test_number_sizes(text: str, size: int) -> None:
    assert number_size(text) == size


def test_a_value_item_worked_by_hand() -> None:
    item = layout.value_item("claim_type_code", 1234567890123, "MOTOR")
    # "id" 2 + 13 digits (7 + 1) 8 = 10; "f" 1 + "claim_type_code" 15 = 16; "v" 1 + "MOTOR" 5 = 6.
    assert item_size(item) == 32
    assert read_units([item]) == 1.0 and read_units([item], consistent=False) == 0.5
    assert write_units(item) == 1.0 and write_units(item, transactional=True) == 2.0


def test_strings_binaries_nulls_and_booleans() -> None:
    assert item_size({"v": {"S": "é"}}) == 1 + 2  # UTF-8 bytes
    assert item_size({"v": {"B": b"\x00\x01\x02"}}) == 1 + 3  # raw bytes, not base64
    assert item_size({"v": {"NULL": True}, "bb": {"BOOL": False}}) == (1 + 1) + (2 + 1)
    with pytest.raises(ValueError, match="no size rule"):
        item_size({"v": {"SS": ["a"]}})


def test_read_units_round_up_to_4_kb_per_item() -> None:
    exactly = {"v": {"S": "x" * 4095}}  # 1 + 4095 = 4096 bytes
    over = {"v": {"S": "x" * 4096}}  # 4097 bytes
    assert (item_size(exactly), item_size(over)) == (4096, 4097)
    assert read_units([exactly]) == 1.0 and read_units([over]) == 2.0


def test_a_batch_get_rounds_each_item_a_query_the_sum() -> None:
    kb = {"v": {"S": "x" * 1023}}  # 1,024 bytes each
    # BatchGetItem of 3 such items and a key not found: 1 + 1 + 1 + 1 = 4 units (eventual: 2).
    assert read_units([kb, kb, kb, None]) == 4.0
    assert read_units([kb, kb, kb, None], consistent=False) == 2.0
    # A Query returning the same 3 items: 3,072 bytes, one 4 KB unit.
    assert query_units([kb, kb, kb]) == 1.0 and query_units([kb, kb, kb], consistent=False) == 0.5
    assert query_units([]) == 1.0  # a Query that finds nothing is still charged a unit


def test_a_page_of_list_entries_worked_by_hand() -> None:
    entry = layout.entry_item("claim_parties", 7, 3, 123456789)
    # "id" 2 + 2 = 4; "f" 1 + 13 + 1 + 19 = 34; "r" 1 + 9 digits (5 + 1) = 7: 45 bytes.
    assert item_size(entry) == 45
    assert query_units([entry] * 91) == 1.0  # 4,095 bytes
    assert query_units([entry] * 92) == 2.0  # 4,140 bytes
    assert read_units([entry] * 91) == 91.0  # the same entries read one by one


def test_write_units_round_up_to_1_kb() -> None:
    assert write_units({"v": {"S": "x" * 1023}}) == 1.0  # 1,024 bytes
    assert write_units({"v": {"S": "x" * 1024}}) == 2.0  # 1,025 bytes
    assert write_units({"v": {"S": "x" * 1024}}, transactional=True) == 4.0


def test_the_store_charges_what_the_rules_say(dynamo_store) -> None:
    dynamo_store.put("s", 1, "x" * 5000)  # 2 + 2 + 1 + 1 + 1 + 5000 = 5,007 bytes: 5 write units
    dynamo_store.read_your_writes_s = 0  # eventually consistent reads right away
    with dynamo_store.accounting() as calls:
        dynamo_store.get("s", 1)  # 2 read units, eventual: 1.0
        dynamo_store.get("s", 2)  # not found: half a unit
        dynamo_store.put("s", 3, "y")
    assert [(c.operation, c.read_units, c.write_units) for c in calls.calls] == [
        ("GetItem", 1.0, 0.0),
        ("GetItem", 0.5, 0.0),
        ("PutItem", 0.0, 1.0),
    ]
