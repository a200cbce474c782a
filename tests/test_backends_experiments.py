"""efs_sqlite.experiments.backends: the benchmark request and the query mix's kinds on DynamoDB
(the in-process moto server) beside EFS (the EFS model)."""

from __future__ import annotations

import pytest

from efs_sqlite.experiments.backends import REQUESTS, backend_comparison
from efs_sqlite.experiments.queries import MIX_DOCUMENTS

READS = ("benchmark", "point_read", "nested", "list_page")


@pytest.fixture(scope="module")
def table() -> dict[str, dict]:
    return {row["request"]: row for row in backend_comparison()}


def test_every_request_has_a_row_of_both_backends(table: dict[str, dict]) -> None:
    assert list(table) == ["benchmark", *MIX_DOCUMENTS] == list(REQUESTS)
    for row in table.values():
        assert row["dynamodb_calls"] >= 1 and row["efs_nfs_requests"] >= 1, row
        assert 0 < row["dynamodb_p50_ms"] < row["dynamodb_p99_ms"], row
        assert 0 < row["efs_latency_low_ms"] <= row["efs_latency_ms"] <= row["efs_latency_high_ms"], row
        by_operation = dict(part.rsplit(" ", 1) for part in row["dynamodb_calls_by_operation"].split(", "))
        assert sum(map(int, by_operation.values())) == row["dynamodb_calls"]


def test_reads_write_nothing_and_writes_are_one_grouped_call(table: dict[str, dict]) -> None:
    for kind in READS:
        row = table[kind]
        assert row["dynamodb_wru"] == 0 and row["dynamodb_rru"] > 0, row
        assert set(row["dynamodb_calls_by_operation"].split(", ")) <= {
            f"{op} {n}" for op in ("BatchGetItem", "Query") for n in range(1, 20)
        }, row
    # The benchmark request: two levels of BatchGetItem (the claim, then its parties) and the page.
    assert table["benchmark"]["dynamodb_calls_by_operation"] == "BatchGetItem 2, Query 1"
    assert table["point_read"]["dynamodb_calls_by_operation"] == "BatchGetItem 1"
    # A create writes the node and both sides of its inverse pair in one TransactWriteItems.
    assert "TransactWriteItems 1" in table["create"]["dynamodb_calls_by_operation"]
    assert table["create"]["dynamodb_wru"] > table["update"]["dynamodb_wru"] > 0


def test_strongly_consistent_reads_cost_twice_the_read_units(table: dict[str, dict]) -> None:
    (consistent,) = backend_comparison(["point_read"], consistent_reads=True)
    assert consistent["dynamodb_rru"] == 2 * table["point_read"]["dynamodb_rru"]
    assert consistent["dynamodb_calls"] == table["point_read"]["dynamodb_calls"]


def test_an_unknown_request_is_refused() -> None:
    with pytest.raises(ValueError, match="no request"):
        backend_comparison(["point_read", "teleport"])
