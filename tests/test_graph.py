"""Graph: whole-node create/read/update/delete and reference lists, validated before writing."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from efs_sqlite.errors import NodeNotFound, UIDCollision, ValidationError
from efs_sqlite.graph import Graph, parse_id
from efs_sqlite.store import Ref, ShardStore
from efs_sqlite.uid import encode


def digest(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.glob("*.sqlite*"))}


def test_create_then_read_back(insurance: Any) -> None:
    g, claim = insurance.graph, insurance.claim
    tx = g.create_node(
        "Transaction",
        {"identifier": "T9", "timestamp": "2024-01-01T12:00:00+01:00", "claim": encode(claim), "amount": 3.1},
    )
    assert g.type_of(tx) == "Transaction" and g.type_of(encode(tx)) == "Transaction"
    node = g.get_node(tx)
    assert node == {
        "id": tx,
        "type": "Transaction",
        "identifier": "T9",
        "timestamp": datetime(2024, 1, 1, 11, tzinfo=UTC),
        "claim": claim,
        "amount": Decimal("3.10"),
    }
    assert type(node["claim"]) is int  # a Ref reads back as a plain id
    assert insurance.store.get("transaction_claim", tx) == Ref(claim)
    assert g.get_node(tx, fields=["amount"]) == {"id": tx, "type": "Transaction", "amount": Decimal("3.10")}
    assert g.get_node(12345) is None
    with pytest.raises(NodeNotFound, match="is a Transaction, not a Claim"):
        g.get_node(tx, "Claim")


@pytest.mark.parametrize(
    ("type_name", "values", "message"),
    [
        ("Claim", {"identifier": 1, "type_code": "X"}, "timestamp: a value is required"),
        ("Claim", {"identifier": "one", "type_code": "X", "timestamp": "2024-01-01"}, "expected an integer"),
        (
            "Claim",
            {"identifier": 1, "type_code": "X", "timestamp": "2024-01-01", "colour": "red"},
            "unknown field",
        ),
        ("Claim", {"identifier": 1, "type_code": "X", "timestamp": "2024-01-01", "parties": "abc"}, "list"),
        (
            "Claim",
            {"identifier": 1, "type_code": "X", "timestamp": "2024-01-01", "parties": [7]},
            "no node has",
        ),
        ("Pet", {}, "unknown node type 'Pet'"),
    ],
)
def test_invalid_creates_write_nothing(
    insurance: Any, type_name: str, values: dict[str, Any], message: str
) -> None:
    before = digest(insurance.root)
    with pytest.raises(ValidationError, match=message):
        insurance.graph.create_node(type_name, values)
    assert digest(insurance.root) == before


def test_reference_targets_are_type_checked_together(insurance: Any) -> None:
    g = insurance.graph
    party, tx = insurance.parties[0], insurance.transactions[0]
    with pytest.raises(ValidationError) as caught:
        g.create_node(
            "Claim",
            {
                "identifier": 1,
                "type_code": "X",
                "timestamp": "2024-01-01",
                "parties": [party, tx, 99],
                "transactions": [party],
            },
        )
    message = str(caught.value)
    assert f"parties: node {encode(tx)} is a Transaction, not a Party" in message
    assert f"parties: no node has the id {encode(99)}" in message
    assert f"transactions: node {encode(party)} is a Party, not a Transaction" in message


def test_update_and_delete(insurance: Any) -> None:
    g, tx = insurance.graph, insurance.transactions[0]
    assert g.update_node(tx, {"amount": "7", "source_system_code": None}) == "Transaction"
    node = g.get_node(tx)
    assert (
        node["amount"] == Decimal("7.00")
        and "source_system_code" not in node
        and node["identifier"] == "FT-0"
    )
    with pytest.raises(ValidationError, match="amount: a value is required"):
        g.update_node(tx, {"amount": None})
    with pytest.raises(NodeNotFound, match="no node has the id"):
        g.update_node(424242, {"amount": "1"})
    g.update_node(insurance.claim, {"parties": []})
    assert g.list_count(insurance.claim, "parties") == 0

    assert g.delete_node(tx, "Transaction") == "Transaction"
    assert g.get_node(tx) is None
    assert all(insurance.store.get(s, tx) is None for s in insurance.store.shards())
    with pytest.raises(NodeNotFound):
        g.delete_node(tx)


def test_delete_creates_no_shard_files(tmp_path: Path) -> None:
    with ShardStore(tmp_path) as store:
        g = Graph(store)
        party = g.create_node("Party", {"identifier": 1, "timestamp": "2024-01-01"})
        files = sorted(p.name for p in tmp_path.glob("*.sqlite"))
        assert "party_claims.sqlite" not in files  # an empty list writes nothing
        g.delete_node(party)
        assert sorted(p.name for p in tmp_path.glob("*.sqlite")) == files


def test_lists(insurance: Any) -> None:
    g, claim = insurance.graph, insurance.claim
    extra = g.create_node("Party", {"identifier": 1, "timestamp": "2024-01-01"})
    g.list_add(claim, "parties", [extra, extra])
    assert g.list_count(claim, "parties") == 12
    assert g.list_page(claim, "parties", 10, 5) == [extra, extra]
    assert g.list_remove(encode(claim), "parties", [encode(extra)]) == 2
    assert g.list_page(claim, "parties", 0, 100) == insurance.parties
    with pytest.raises(ValidationError, match="is not a reference list"):
        g.list_add(claim, "type_code", [extra])
    with pytest.raises(ValidationError, match="is a Transaction, not a Party"):
        g.list_add(claim, "parties", [insurance.transactions[0]])
    with pytest.raises(NodeNotFound, match="is a Claim, not a Party"):
        g.list_add(claim, "claims", [claim], "Party")


class Replay:
    """Ids from a list, then fresh ones: forces collisions with existing nodes."""

    def __init__(self, ids: list[int]) -> None:
        self.ids: Iterator[int] = iter(ids)

    def __call__(self) -> int:
        from efs_sqlite.uid import generate

        return next(self.ids, None) or generate()


def test_id_collisions_are_retried_and_never_overwrite(insurance: Any) -> None:
    taken = insurance.parties[:2]
    g = Graph(insurance.store, new_id=Replay(taken))
    new = g.create_node("Party", {"identifier": 555, "timestamp": "2024-01-01"})
    assert new not in taken
    assert [insurance.graph.get_node(p)["identifier"] for p in taken] == [100, 101]
    assert insurance.graph.get_node(new)["identifier"] == 555

    stubborn = Graph(insurance.store, new_id=Replay(taken * 2), retries=2)
    with pytest.raises(UIDCollision):
        stubborn.create_node("Party", {"identifier": 556, "timestamp": "2024-01-01"})
    with pytest.raises(UIDCollision):
        insurance.graph.create_node("Party", {"identifier": 557, "timestamp": "2024-01-01"}, uid=taken[0])
    assert insurance.graph.get_node(taken[0])["identifier"] == 100


@pytest.mark.parametrize("bad", [0, -1, 2**63, True, 1.5, "short", "0000000000!", None])
def test_parse_id_refuses_non_ids(bad: Any) -> None:
    with pytest.raises(ValidationError):
        parse_id(bad)
