"""A consistent graph: random sequences of mutations leave no dangling reference, and both sides of
every inverse pair agree (efs_sqlite.graph, efs_sqlite.links)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from efs_sqlite.errors import StillReferenced
from efs_sqlite.graph import Graph
from efs_sqlite.graphql import GraphQLAPI
from efs_sqlite.links import check_links, store_records
from efs_sqlite.model import INSURANCE, TYPE_SHARD
from efs_sqlite.store import ShardStore

DAY = "2024-01-01T00:00:00Z"


def dangling(store: ShardStore) -> list[str]:
    """Every reference of the graph to a node that is missing, or of another type."""
    types = dict(store.scan(TYPE_SHARD, limit=10**6))
    problems = []
    for uid, type_name in types.items():
        t = INSURANCE.type(type_name)
        for f in t.fields:
            shard = t.shard(f.name)
            if f.kind == "ref":
                value = store.get(shard, uid)
                targets = [] if value is None else [int(value)]
            elif f.kind == "refs":
                targets = store.list_page(shard, uid, 0, 10**6)
            else:
                continue
            problems += [f"{shard} of {uid}: {v}" for v in targets if types.get(v) != f.target]
    return problems


def snapshot(store: ShardStore) -> list[tuple[str, list[Any]]]:
    """Everything the store holds, shard by shard (values and lists)."""
    out = []
    for shard in store.shards():
        rows = store.scan(shard, limit=10**6)
        ids = [uid for uid, _ in store.scan(TYPE_SHARD, limit=10**6)]
        lists = store.list_page_many(shard, ids, 0, 10**6) if ids and shard != TYPE_SHARD else {}
        out.append((shard, [rows, sorted(lists.items())]))
    return out


def assert_consistent(store: ShardStore) -> None:
    assert dangling(store) == []
    assert [str(m) for m in check_links(lambda: store_records(store))] == []


#: A mutation: a name, and what it does to a graph, given the nodes there are and a draw function.
Op = Callable[[Graph, dict[str, list[int]], Callable[..., Any]], Any]


def some(draw: Callable[..., Any], nodes: list[int], most: int = 3) -> list[int]:
    return draw(st.lists(st.sampled_from(nodes), max_size=most)) if nodes else []


def one(draw: Callable[..., Any], nodes: list[int]) -> int:
    return draw(st.sampled_from(nodes))


def create_claim(g: Graph, n: dict[str, list[int]], draw: Callable[..., Any]) -> None:
    values = {"identifier": 1, "type_code": "X", "timestamp": DAY, "parties": some(draw, n["Party"])}
    values["transactions"] = some(draw, n["Transaction"])
    n["Claim"].append(g.create_node("Claim", values))


def create_party(g: Graph, n: dict[str, list[int]], draw: Callable[..., Any]) -> None:
    n["Party"].append(
        g.create_node("Party", {"identifier": 2, "timestamp": DAY, "claims": some(draw, n["Claim"])})
    )


def create_transaction(g: Graph, n: dict[str, list[int]], draw: Callable[..., Any]) -> None:
    if n["Claim"]:
        values = {"identifier": "T", "timestamp": DAY, "amount": "1.00", "claim": one(draw, n["Claim"])}
        n["Transaction"].append(g.create_node("Transaction", values))


def update(g: Graph, n: dict[str, list[int]], draw: Callable[..., Any]) -> None:
    kind = draw(st.sampled_from(["claim parties", "claim transactions", "party claims", "transaction claim"]))
    owner, field = kind.split()
    nodes = n[owner.capitalize()]
    if not nodes:
        return
    target = INSURANCE.type(owner.capitalize()).field(field).target
    assert target is not None
    if field == "claim":
        if n["Claim"]:
            g.update_node(one(draw, nodes), {"claim": one(draw, n["Claim"])})
        return
    g.update_node(one(draw, nodes), {field: some(draw, n[target])})


def edit_list(g: Graph, n: dict[str, list[int]], draw: Callable[..., Any]) -> None:
    owner, field = draw(
        st.sampled_from([("Claim", "parties"), ("Claim", "transactions"), ("Party", "claims")])
    )
    target = INSURANCE.type(owner).field(field).target
    assert target is not None
    if n[owner]:
        edit = g.list_add if draw(st.booleans()) else g.list_remove
        edit(one(draw, n[owner]), field, some(draw, n[target]))


def delete(g: Graph, n: dict[str, list[int]], draw: Callable[..., Any]) -> None:
    type_name = draw(st.sampled_from(sorted(n)))
    if n[type_name]:
        uid = one(draw, n[type_name])
        cascade = draw(st.booleans())
        g.delete_node(uid, cascade=cascade)
        for nodes in n.values():  # a cascade deleted others too
            nodes[:] = [u for u in nodes if g.type_of(u) is not None]


OPS: list[Op] = [create_claim, create_party, create_transaction, update, edit_list, delete]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_mutation_sequences_keep_the_graph_consistent(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as root, ShardStore(root, synchronous="off") as store:
        g = Graph(store)
        nodes: dict[str, list[int]] = {"Claim": [], "Party": [], "Transaction": []}
        for op in data.draw(st.lists(st.sampled_from(OPS), min_size=1, max_size=30), label="ops"):
            before = snapshot(store)
            try:
                op(g, nodes, data.draw)
            except StillReferenced:
                assert snapshot(store) == before  # refused: nothing written
        assert_consistent(store)


# -- the rules, one by one -------------------------------------------------------------------------


@pytest.fixture
def graph(tmp_path: Any) -> Graph:
    return Graph(ShardStore(tmp_path / "store"))


def claim_of(g: Graph, **lists: Any) -> int:
    return g.create_node("Claim", {"identifier": 1, "type_code": "X", "timestamp": DAY, **lists})


def tx_of(g: Graph, claim: int) -> int:
    return g.create_node("Transaction", {"identifier": "T", "timestamp": DAY, "amount": "1", "claim": claim})


def test_adding_a_party_to_a_claim_adds_the_claim_to_the_party(graph: Graph) -> None:
    claim, party = claim_of(graph), graph.create_node("Party", {"identifier": 1, "timestamp": DAY})
    graph.list_add(claim, "parties", [party])
    assert graph.list_page(party, "claims") == [claim]
    graph.list_remove(party, "claims", [claim])
    assert graph.list_page(claim, "parties") == []


def test_a_transaction_joins_its_claims_list_and_moves_between_claims(graph: Graph) -> None:
    first, second = claim_of(graph), claim_of(graph)
    tx = tx_of(graph, first)
    assert graph.list_page(first, "transactions") == [tx]
    graph.update_node(tx, {"claim": second})
    assert (graph.list_page(first, "transactions"), graph.list_page(second, "transactions")) == ([], [tx])
    graph.list_add(first, "transactions", [tx, tx])  # moves it back, once
    assert (graph.list_page(first, "transactions"), graph.list_page(second, "transactions")) == ([tx], [])
    assert graph.get_node(tx)["claim"] == first


def test_deleting_a_party_takes_it_out_of_its_claims(graph: Graph) -> None:
    party = graph.create_node("Party", {"identifier": 1, "timestamp": DAY})
    claims = [claim_of(graph, parties=[party]) for _ in range(3)]
    assert graph.list_page(party, "claims") == claims
    graph.delete_node(party)
    assert [graph.list_page(c, "parties") for c in claims] == [[], [], []]
    assert_consistent(graph.store)


def test_a_required_reference_that_would_dangle_refuses_the_delete_naming_it(graph: Graph) -> None:
    party = graph.create_node("Party", {"identifier": 1, "timestamp": DAY})
    claim = claim_of(graph, parties=[party])
    txs = [tx_of(graph, claim) for _ in range(2)]
    with pytest.raises(StillReferenced) as refused:
        graph.delete_node(claim)
    assert refused.value.referrers == txs
    shown = ", ".join(map(graph_encode, txs))
    assert str(refused.value) == (
        f"Claim {graph_encode(claim)} is the required claim of 2 Transaction node(s) ({shown}): "
        "delete them first, or delete with cascade"
    )
    with pytest.raises(StillReferenced, match="must have a claim"):
        graph.list_remove(claim, "transactions", [txs[0]])
    assert graph.type_of(claim) == "Claim" and graph.list_page(claim, "transactions") == txs
    graph.delete_node(claim, cascade=True)
    assert [graph.type_of(u) for u in [claim, *txs]] == [None, None, None]
    assert graph.list_page(party, "claims") == []
    assert_consistent(graph.store)


def graph_encode(uid: int) -> str:
    from efs_sqlite.uid import encode

    return encode(uid)


# -- through the GraphQL mutations -----------------------------------------------------------------


def test_the_mutations_keep_both_sides(insurance: Any) -> None:
    api = GraphQLAPI(insurance.store)
    claim, ids = insurance.claim, insurance.ids
    party = api.execute(
        'mutation { createParty(input: {partyIdentifier: 1, timestamp: "2024-01-01"}) { id } }'
    )
    new = party["data"]["createParty"]["id"]
    added = api.execute(
        f'mutation {{ addClaimParties(id: "{ids[claim]}", ids: ["{new}"]) {{ parties {{ id }} }} }}'
    )
    assert added["data"]["addClaimParties"]["parties"][-1] == {"id": new}
    read = api.execute(f'{{ party(id: "{new}") {{ claims {{ id }} }} }}')
    assert read["data"]["party"]["claims"] == [{"id": ids[claim]}]
    tx = api.execute(
        'mutation { createTransaction(input: {financialTransactionIdentifier: "T", timestamp: "2024-01-01", '
        f'amount: "1.00", claim: "{ids[claim]}"}}) {{ id claim {{ transactions {{ id }} }} }} }}'
    )["data"]["createTransaction"]
    assert tx["claim"]["transactions"][-1] == {"id": tx["id"]}
    deleted = api.execute(f'mutation {{ deleteParty(id: "{new}") }}')
    assert deleted == {"data": {"deleteParty": new}}
    after = api.execute(f'{{ claim(id: "{ids[claim]}") {{ parties {{ id }} }} }}')
    assert "errors" not in after and {"id": new} not in after["data"]["claim"]["parties"]
    assert_consistent(insurance.store)


def test_deleting_a_claim_with_transactions_is_refused_unless_cascade(insurance: Any) -> None:
    api, claim = GraphQLAPI(insurance.store), insurance.ids[insurance.claim]
    refused = api.execute(f'mutation {{ deleteClaim(id: "{claim}") }}')
    assert refused["data"] == {"deleteClaim": None}
    message = refused["errors"][0]["message"]
    assert message.startswith(f"Claim {claim} is the required claim of 3 Transaction node(s) (")
    assert all(insurance.ids[t] in message for t in insurance.transactions)
    assert insurance.graph.type_of(insurance.claim) == "Claim"
    assert api.execute(f'mutation {{ deleteClaim(id: "{claim}", cascade: true) }}') == {
        "data": {"deleteClaim": claim}
    }
    assert [insurance.graph.type_of(t) for t in insurance.transactions] == [None, None, None]
    assert [insurance.graph.list_count(p, "claims") for p in insurance.parties] == [0] * 10
    assert_consistent(insurance.store)
