"""The table of a DynamoDB stack (``StackConfig(backend="dynamodb")``): one on-demand table, tagged
with the stack, created from the arguments the DynamoDB backend defines for it.

Those arguments (``CreateTable``'s: the keys and the billing mode) are handed in by the caller,
from :func:`efs_sqlite.dynamodb.layout.table_definition`: ``aws`` imports none of the runtime
modules, and the backend's layout stays the one place the table's keys are written down.

>>> table_arn_parts("arn:aws:dynamodb:eu-west-1:123456789012:table/efs-sqlite-demo")
('eu-west-1', '123456789012')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from efs_sqlite.aws.calls import Calls, lookup
from efs_sqlite.errors import DeployError

__all__ = ["ON_DEMAND", "Table", "delete_table", "ensure_table", "find_table", "table_arn_parts"]

#: DynamoDB's name for on-demand capacity: paid per request, nothing provisioned.
ON_DEMAND = "PAY_PER_REQUEST"


class Table(NamedTuple):
    """The stack's table: its name and ARN (what the functions' role is allowed to touch)."""

    name: str
    arn: str


def table_arn_parts(arn: str) -> tuple[str, str]:
    """The region and account of a table's ARN (a dry run's placeholder stands for both)."""
    parts = arn.split(":")
    return (parts[3], parts[4]) if len(parts) >= 6 else (arn, arn)


def check_definition(calls: Calls, definition: Mapping[str, Any]) -> None:
    """Refuse a definition for another table, or one that is not on demand."""
    name = calls.config.table_name
    if definition.get("TableName") != name:
        raise DeployError(
            f"the table definition is for {definition.get('TableName')!r}, the stack's is {name!r}"
        )
    if definition.get("BillingMode") != ON_DEMAND:
        raise DeployError(f"the stack's table is on demand (BillingMode={ON_DEMAND}), not provisioned")


@lookup
def find_table(calls: Calls) -> dict[str, Any] | None:
    """The stack's table (``describe_table``'s ``Table``), or None; DeployError if not the stack's."""
    name = calls.config.table_name
    found = calls.read_if_found("dynamodb", "describe_table", "ResourceNotFoundException", TableName=name)
    if found is None:
        return None
    table = found["Table"]
    tags = calls.read("dynamodb", "list_tags_of_resource", ResourceArn=table["TableArn"]).get("Tags", [])
    if not calls.ours(tags):
        raise calls.refuse(f"DynamoDB table {name}")
    return table


def ensure_table(calls: Calls, definition: Mapping[str, Any]) -> Table:
    """Get or create the table, on demand, and wait until it is active."""
    check_definition(calls, definition)
    name = calls.config.table_name
    table = find_table(calls)
    if table is None:
        table = calls.write("dynamodb", "create_table", **definition, Tags=calls.tag_list("table"))[
            "TableDescription"
        ]
    elif table.get("BillingModeSummary", {}).get("BillingMode") != ON_DEMAND:
        # Someone switched it to provisioned capacity: the stack's table is on demand.
        calls.write("dynamodb", "update_table", TableName=name, BillingMode=ON_DEMAND)
    calls.wait(f"table {name}", lambda: _table_status(calls), "ACTIVE")
    return Table(name, table["TableArn"])


def delete_table(calls: Calls) -> None:
    """Delete the stack's table (with its data) and wait until it is gone; a namesake stays."""
    name = calls.config.table_name
    if not calls.owned(lambda: find_table(calls), f"DynamoDB table {name}"):
        return
    calls.write_ignoring(["ResourceNotFoundException"], "dynamodb", "delete_table", TableName=name)
    calls.wait(f"table {name}", lambda: _table_status(calls), None)


@lookup
def _table_status(calls: Calls) -> str | None:
    found = calls.read_if_found(
        "dynamodb", "describe_table", "ResourceNotFoundException", TableName=calls.config.table_name
    )
    return None if found is None else found["Table"]["TableStatus"]
