"""The GraphQL API over real shard files: schema, reads, paging, batching, mutations, limits."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _workers as wk
import apsw
import pytest

from efs_sqlite.cli import main
from efs_sqlite.efs_model import EFSModel
from efs_sqlite.errors import OperationNotAllowed
from efs_sqlite.graphql import GraphQLAPI, Limits, build_schema, measure, schema_sdl
from efs_sqlite.hooks import StoreOp
from efs_sqlite.loader import dump, load
from efs_sqlite.model import INSURANCE, Field, Model, NodeType
from efs_sqlite.store import ShardStore
from efs_sqlite.uid import encode

DOCS_SCHEMA = Path(__file__).resolve().parent.parent / "docs" / "schema.graphql"

CLAIM_WITH_PARTIES = """
query($id: ID!) {
  claim(id: $id) {
    id claimIdentifier claimTypeCode timestamp
    parties: partiesConnection(first: 10) { totalCount edges { node { id partyIdentifier timestamp } } }
  }
}"""


#: The batched reads the GraphQL layer makes.
BATCHED_READS = ("get_many", "list_count_many", "list_page_many", "list_window_many")


class Counting:
    """A store hook that counts the batched reads a store is asked for, per (method, shard), the ids
    each asks for, the rows asked of each list page, and the grouped writes."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()
        self.keys: Counter[tuple[str, str]] = Counter()
        self.page_rows: list[int] = []
        self.writes = 0
        self._lock = threading.Lock()  # reads made in parallel count at once

    @contextlib.contextmanager
    def observe(self, op: StoreOp) -> Iterator[None]:
        with self._lock:
            if op.name in BATCHED_READS:
                assert op.shard is not None
                self.calls[op.name, op.shard] += 1
                if op.name == "get_many":
                    self.keys[op.name, op.shard] += len(op.keys)
                elif op.name != "list_count_many":
                    self.page_rows.extend([op.args["limit"]] * len(op.keys))
            elif op.name == "write":
                self.writes += 1
        yield


def shard_digest(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.glob("*.sqlite"))}


@pytest.fixture
def api(insurance: Any) -> GraphQLAPI:
    return GraphQLAPI(insurance.store)


def run(api: GraphQLAPI, query: str, **variables: Any) -> dict[str, Any]:
    return api.execute(query, variables or None)


def vanish(insurance: Any, uid: int) -> None:
    """Remove a node straight from the store, behind the graph's back (as a delete of an earlier
    version left it): the lists that held it still do, so their entries dangle."""
    t = INSURANCE.type(insurance.graph.type_of(uid))
    for f in t.fields:
        insurance.store.delete(t.shard(f.name), uid)
    insurance.store.delete("_type", uid)


# -- schema --------------------------------------------------------------------------------------


def test_schema_keeps_the_earlier_field_names_and_types() -> None:
    sdl = schema_sdl()
    for line in [
        "type Claim implements Node",
        "claimIdentifier: Int!",
        "claimTypeCode: String!",
        "timestamp: DateTime!",
        "partyIdentifier: Int!",
        "financialTransactionIdentifier: String!",
        "claim: Claim!",
        "amount: Decimal!",
        "sourceSystemCode: String\n",
        "serviceTypeCode: String\n",
        "transactions: [Transaction]\n",
        "transactionsConnection(before: String, after: String, first: Int, last: Int): TransactionConnection",
        "parties: [Party]\n",
        "partiesConnection(before: String, after: String, first: Int, last: Int): PartyConnection",
        "claims: [Claim]\n",
        "claimsConnection(before: String, after: String, first: Int, last: Int): ClaimConnection",
        "interface Node",
        "nodes(ids: [ID!]!): [Node]!",
        "createTransaction(input: TransactionInput!, clientMutationId: String): Transaction",
        "addPartyClaims(id: ID!, ids: [ID!]!, clientMutationId: String): Party",
    ]:
        assert line in sdl, line
    for root_field in ("claim", "party", "transaction", "node"):
        assert f"  {root_field}(\n" in sdl


def test_schema_is_derived_from_any_model() -> None:
    pets = Model(
        [
            NodeType(
                "Pet",
                (
                    Field("name", "str"),
                    Field("weight", "float", required=False),
                    Field("vaccinated", "bool"),
                    Field("friends", "refs", target="Pet"),
                ),
            )
        ]
    )
    sdl = str(build_schema(pets))
    for line in [
        "type Pet implements Node",
        "weight: Float\n",
        "vaccinated: Boolean!",
        "friends: [Pet]\n",
        "friendsConnection(before: String, after: String, first: Int, last: Int): PetConnection",
        "createPet(input: PetInput!, clientMutationId: String): Pet",
        "removePetFriends(id: ID!, ids: [ID!]!, clientMutationId: String): Pet",
    ]:
        assert line in sdl, line
    assert "Claim" not in sdl


def test_reserved_type_names_are_refused() -> None:
    with pytest.raises(ValueError, match="Query"):
        build_schema(Model([NodeType("Query", (Field("x", "str"),))]))


def test_checked_in_sdl_matches_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    printed = capsys.readouterr().out
    assert printed == schema_sdl()
    assert DOCS_SCHEMA.read_text(encoding="utf-8") == printed, (
        "regenerate: efs-sqlite schema > docs/schema.graphql"
    )


# -- reads ---------------------------------------------------------------------------------------


def test_claim_fields_with_datetimes_and_decimals(api: GraphQLAPI, insurance: Any) -> None:
    t0 = insurance.ids[insurance.transactions[0]]
    result = run(
        api,
        """query($id: ID!) { transaction(id: $id) { id financialTransactionIdentifier timestamp amount
              sourceSystemCode serviceTypeCode claim { id claimIdentifier claimTypeCode timestamp } } }""",
        id=t0,
    )
    assert "errors" not in result  # a missing optional field is null, not an error
    assert result["data"]["transaction"] == {
        "id": t0,
        "financialTransactionIdentifier": "FT-0",
        "timestamp": "2024-03-01T09:30:00+00:00",
        "amount": "10.50",
        "sourceSystemCode": "SAP",
        "serviceTypeCode": None,
        "claim": {
            "id": insurance.ids[insurance.claim],
            "claimIdentifier": 4242,
            "claimTypeCode": "MOTOR",
            "timestamp": "2024-03-01T09:30:00+00:00",
        },
    }
    assert len(t0) == 11


def test_missing_node_is_null_with_an_error(api: GraphQLAPI) -> None:
    result = run(api, '{ claim(id: "00000000042") { claimIdentifier } }')
    assert result["data"] == {"claim": None}
    assert result["errors"][0]["message"] == "no node has the id 00000000042"
    assert result["errors"][0]["path"] == ["claim"]


@pytest.mark.parametrize(
    "selection", ["id", "claimIdentifier", "transactions: transactionsConnection { totalCount }"]
)
def test_an_id_of_another_type_is_null_with_an_error(api: GraphQLAPI, insurance: Any, selection: str) -> None:
    party = insurance.ids[insurance.parties[0]]
    result = run(api, f"query($id: ID!) {{ claim(id: $id) {{ {selection} }} }}", id=party)
    assert result["data"] == {"claim": None}
    assert result["errors"][0]["message"] == f"node {party} is a Party, not a Claim"


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("short", "has 5 characters"),
        ("0000000000!", "not in 0-9A-Za-z"),
        ("zzzzzzzzzzz", "not below 2**63"),
        ("00000000000", "0 is not a node id"),
    ],
)
def test_malformed_ids_are_errors(api: GraphQLAPI, bad: str, why: str) -> None:
    result = run(api, "query($id: ID!) { node(id: $id) { id } }", id=bad)
    assert result["data"] == {"node": None}
    assert why in result["errors"][0]["message"]


def test_node_and_nodes_resolve_any_type(api: GraphQLAPI, insurance: Any) -> None:
    party, tx = insurance.ids[insurance.parties[3]], insurance.ids[insurance.transactions[1]]
    result = run(
        api,
        """query($p: ID!, $ids: [ID!]!) {
             node(id: $p) { id __typename ... on Party { partyIdentifier } }
             nodes(ids: $ids) { id __typename ... on Transaction { amount } ... on Party { partyIdentifier } }
           }""",
        p=party,
        ids=[tx, "00000000007", party],
    )
    assert result["data"]["node"] == {"id": party, "__typename": "Party", "partyIdentifier": 103}
    assert result["data"]["nodes"] == [
        {"id": tx, "__typename": "Transaction", "amount": "110.50"},
        None,
        {"id": party, "__typename": "Party", "partyIdentifier": 103},
    ]
    assert [e["path"] for e in result["errors"]] == [["nodes", 1]]


# -- connections ---------------------------------------------------------------------------------

PAGE = """query($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
  claim(id: $id) { parties: partiesConnection(first: $first, after: $after, last: $last, before: $before) {
    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { partyIdentifier } } } } }"""


def page(api: GraphQLAPI, claim: str, **args: Any) -> dict[str, Any]:
    result = api.execute(PAGE, {"id": claim, **args})
    assert "errors" not in result, result
    return result["data"]["claim"]["parties"]


def test_forward_paging_walks_the_whole_list(api: GraphQLAPI, insurance: Any) -> None:
    claim, seen, after = insurance.ids[insurance.claim], [], None
    while True:
        p = page(api, claim, first=3, after=after)
        assert p["totalCount"] == 10
        seen += [e["node"]["partyIdentifier"] for e in p["edges"]]
        if not p["pageInfo"]["hasNextPage"]:
            break
        after = p["pageInfo"]["endCursor"]
    assert seen == list(range(100, 110))


def test_backward_paging_and_defaults(api: GraphQLAPI, insurance: Any) -> None:
    claim = insurance.ids[insurance.claim]
    tail = page(api, claim, last=4)
    assert [e["node"]["partyIdentifier"] for e in tail["edges"]] == [106, 107, 108, 109]
    assert tail["pageInfo"]["hasPreviousPage"] is True
    before = page(api, claim, last=2, before=tail["pageInfo"]["startCursor"])
    assert [e["node"]["partyIdentifier"] for e in before["edges"]] == [104, 105]
    small = GraphQLAPI(insurance.store, limits=Limits(default_page=4))
    first = small.execute(PAGE, {"id": claim})["data"]["claim"]["parties"]
    assert [e["node"]["partyIdentifier"] for e in first["edges"]] == [100, 101, 102, 103]
    assert first["pageInfo"]["hasNextPage"] is True


def test_counts_and_cursors_need_no_node_reads(insurance: Any) -> None:
    counts = Counting()
    store = ShardStore(insurance.root, hook=counts)
    api = GraphQLAPI(store)
    result = api.execute(
        "query($id: ID!) { claim(id: $id) { parties: partiesConnection(first: 2) "
        "{ totalCount edges { cursor } } } }",
        {"id": insurance.ids[insurance.claim]},
    )
    assert result["data"]["claim"]["parties"]["totalCount"] == 10
    assert len(result["data"]["claim"]["parties"]["edges"]) == 2
    assert not any(method == "get_many" and shard.startswith("party_") for method, shard in counts.calls)
    assert counts.page_rows == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"first": 1001}, "first must be between 0 and 1000"),
        ({"last": -1}, "last must be between 0 and 1000"),
        ({"first": 1, "after": "bm9wZQ=="}, "is not a cursor of this list"),
        ({"last": 1, "before": "YXJyYXljb25uZWN0aW9uOjkyMjMzNzIwMzY4NTQ3NzU4MDg="}, "is not a cursor"),
    ],
)
def test_page_arguments_are_checked(
    api: GraphQLAPI, insurance: Any, args: dict[str, Any], message: str
) -> None:
    result = api.execute(PAGE, {"id": insurance.ids[insurance.claim], **args})
    assert message in result["errors"][0]["message"]
    assert result["data"] == {"claim": {"parties": None}}


def test_a_25000_entry_list_pages_without_being_loaded(insurance: Any) -> None:
    store, n = insurance.store, 25_000
    first_id = 1 << 40
    claims = list(range(first_id, first_id + n))
    store.bulk_insert("_type", [(c, "Claim") for c in claims])
    store.bulk_insert("claim_identifier", [(c, i) for i, c in enumerate(claims)])
    hub = insurance.graph.create_node("Party", {"identifier": 1, "timestamp": "2024-01-01"})
    store.bulk_lists("party_claims", [(hub, claims)])

    counts = Counting()
    counting = ShardStore(insurance.root, hook=counts)
    api = GraphQLAPI(counting)
    query = """query($id: ID!, $after: String) { party(id: $id) { claims: claimsConnection(first: 5,
      after: $after) {
                 totalCount pageInfo { hasNextPage } edges { node { claimIdentifier } } } } }"""
    after = api.execute(query, {"id": encode(hub)})["data"]["party"]["claims"]
    assert after["totalCount"] == n
    cursor = "YXJyYXljb25uZWN0aW9uOjE5OTk5"  # base64("arrayconnection:19999")
    result = api.execute(query, {"id": encode(hub), "after": cursor})["data"]["party"]["claims"]
    assert [e["node"]["claimIdentifier"] for e in result["edges"]] == [20000, 20001, 20002, 20003, 20004]
    assert result["pageInfo"]["hasNextPage"] is True
    assert counts.page_rows == [5, 5]  # the rows asked of the list: one page each time
    assert counts.keys["get_many", "claim_identifier"] == 10


def test_dangling_references_read_as_missing_nodes(api: GraphQLAPI, insurance: Any) -> None:
    gone = insurance.parties[1]
    vanish(insurance, gone)
    for selection in ("partyIdentifier", "id"):  # a required field, or only the id (read via _type)
        result = api.execute(
            "query($id: ID!) { claim(id: $id) { parties: partiesConnection(first: 3) "
            "{ edges { node { SEL } } } } }".replace("SEL", selection),
            {"id": insurance.ids[insurance.claim]},
        )
        edges = result["data"]["claim"]["parties"]["edges"]
        assert edges[1] == {"node": None} and edges[0]["node"] is not None and edges[2]["node"] is not None
        assert (
            result["errors"][0]["message"] == f"node {encode(gone)} no longer exists (a dangling reference)"
        )
        assert result["errors"][0]["path"] == ["claim", "parties", "edges", 1, "node"]


# -- batching ------------------------------------------------------------------------------------


def test_one_read_per_shard_for_a_claim_and_its_ten_parties(insurance: Any) -> None:
    counts = Counting()
    store = ShardStore(insurance.root, hook=counts)
    api = GraphQLAPI(store)
    result = api.execute(CLAIM_WITH_PARTIES, {"id": insurance.ids[insurance.claim]})
    assert "errors" not in result
    edges = result["data"]["claim"]["parties"]["edges"]
    assert [e["node"]["partyIdentifier"] for e in edges] == list(range(100, 110))
    assert dict(counts.calls) == {
        ("get_many", "claim_identifier"): 1,
        ("get_many", "claim_type_code"): 1,
        ("get_many", "claim_timestamp"): 1,
        ("list_window_many", "claim_parties"): 1,  # the length and the page: one statement
        ("get_many", "party_identifier"): 1,
        ("get_many", "party_timestamp"): 1,
    }
    assert counts.keys["get_many", "party_identifier"] == 10


def test_sibling_connections_are_batched_too(insurance: Any) -> None:
    counts = Counting()
    store = ShardStore(insurance.root, hook=counts)
    api = GraphQLAPI(store)
    result = api.execute(
        """query($id: ID!) { claim(id: $id) { parties: partiesConnection(first: 10) { edges { node {
             claims: claimsConnection(first: 5) { edges { node { claimIdentifier } } } } } } } }""",
        {"id": insurance.ids[insurance.claim]},
    )
    assert "errors" not in result
    for edge in result["data"]["claim"]["parties"]["edges"]:
        assert edge["node"]["claims"]["edges"] == [{"node": {"claimIdentifier": 4242}}]
    # ten parties' lists: their lengths and pages in one read; the claim's identifier read once (cached)
    assert counts.calls["list_window_many", "party_claims"] == 1
    assert counts.calls["list_count_many", "party_claims"] == 0
    assert counts.calls["list_page_many", "party_claims"] == 0
    assert counts.calls["get_many", "claim_identifier"] == 1
    counts.calls.clear()
    result = api.execute(
        """query($id: ID!) { claim(id: $id) { parties: partiesConnection(first: 10) { edges { node {
             claims: claimsConnection(last: 1) { edges { node { claimTypeCode } } } } } } } }""",
        {"id": insurance.ids[insurance.claim]},
    )
    assert all(
        e["node"]["claims"]["edges"] == [{"node": {"claimTypeCode": "MOTOR"}}]
        for e in result["data"]["claim"]["parties"]["edges"]
    )
    # `last` needs the lengths before the pages: still one read of each for the ten lists
    assert counts.calls["list_count_many", "party_claims"] == 1
    assert counts.calls["list_page_many", "party_claims"] == 1


def test_references_are_followed_level_by_level(insurance: Any) -> None:
    counts = Counting()
    store = ShardStore(insurance.root, hook=counts)
    result = GraphQLAPI(store).execute(
        """query($id: ID!) { claim(id: $id) { transactions: transactionsConnection(first: 3) { edges {
          node { amount
             claim { claimTypeCode parties: partiesConnection(last: 2) { edges { node { partyIdentifier
               } } } } } } } } }""",
        {"id": insurance.ids[insurance.claim]},
    )
    assert "errors" not in result
    edges = result["data"]["claim"]["transactions"]["edges"]
    assert [e["node"]["amount"] for e in edges] == ["10.50", "110.50", "210.50"]
    for e in edges:
        parties = e["node"]["claim"]["parties"]["edges"]
        assert [p["node"]["partyIdentifier"] for p in parties] == [108, 109]
    # three transactions point back at one claim: read once; its last two parties: the length is
    # read first (the claim's parties were counted in the first level already), then the page
    assert counts.calls["get_many", "transaction_claim"] == 1
    assert counts.calls["get_many", "claim_type_code"] == 1
    assert counts.calls["list_count_many", "claim_parties"] == 1
    assert counts.calls["list_page_many", "claim_parties"] == 1
    assert counts.page_rows == [3, 2]
    assert counts.calls["get_many", "party_identifier"] == 1


def test_lookahead_follows_directives_aliases_and_fragments(api: GraphQLAPI, insurance: Any) -> None:
    query = """query($id: ID!, $more: Boolean!) { claim(id: $id) { ...Head
                 a: partiesConnection(first: 2) { edges { node { partyIdentifier } } }
                 b: partiesConnection(first: 2, after: "YXJyYXljb25uZWN0aW9uOjE=") { edges { node { ...P } } }
                 c: partiesConnection(first: 1) @include(if: $more) { edges { node { timestamp } } } } }
               fragment Head on Claim { claimTypeCode }
               fragment P on Party { id partyIdentifier }"""
    claim = insurance.ids[insurance.claim]
    for more in (False, True):
        result = api.execute(query, {"id": claim, "more": more})
        assert "errors" not in result, result
        data = result["data"]["claim"]
        assert data["claimTypeCode"] == "MOTOR"
        assert [e["node"]["partyIdentifier"] for e in data["a"]["edges"]] == [100, 101]
        assert [e["node"] for e in data["b"]["edges"]] == [
            {"id": insurance.ids[insurance.parties[i]], "partyIdentifier": 100 + i} for i in (2, 3)
        ]
        assert ("c" in data) is more
    assert data["c"] == {"edges": [{"node": {"timestamp": "2024-03-01T09:30:00+00:00"}}]}


def test_nodes_reports_each_bad_entry_in_place(api: GraphQLAPI, insurance: Any) -> None:
    claim = insurance.ids[insurance.claim]
    result = api.execute(
        "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": [claim, "bad", claim, "00000000003"]}
    )
    assert result["data"]["nodes"] == [{"id": claim}, None, {"id": claim}, None]
    assert [(e["path"], e["message"][:10]) for e in result["errors"]] == [
        (["nodes", 1], "invalid id"),
        (["nodes", 3], "no node ha"),
    ]


def test_lookahead_plans_follow_the_variables_below_the_root(api: GraphQLAPI, insurance: Any) -> None:
    # One document, run with variables that change what is read below the root: each answer must
    # be the one a fresh API gives (the plan of one set of variables never serves another).
    query = """query($id: ID!, $n: Int, $after: String, $ts: Boolean!) { claim(id: $id) {
                 parties: partiesConnection(first: $n, after: $after) { edges { node {
                   partyIdentifier timestamp @include(if: $ts) } } } } }"""
    cases = [
        {"n": 2, "after": None, "ts": False},
        {"n": 3, "after": "YXJyYXljb25uZWN0aW9uOjE=", "ts": True},
        {"n": 2, "after": None, "ts": True},
        {"n": 2, "after": None, "ts": False},
    ]
    for variables in cases * 2:
        variables = {"id": insurance.ids[insurance.claim], **variables}
        result = api.execute(query, variables)
        assert result == GraphQLAPI(insurance.store).execute(query, variables)
        edges = result["data"]["claim"]["parties"]["edges"]
        first = 2 if variables["after"] else 0
        assert [e["node"]["partyIdentifier"] for e in edges] == list(
            range(100 + first, 100 + first + variables["n"])
        )
        assert all(("timestamp" in e["node"]) is variables["ts"] for e in edges)
    # the plan is per document, so another node's id reuses it and still reads that node
    other = api.execute(query, {"id": insurance.ids[insurance.parties[0]], "n": 2, "ts": False})
    assert (
        other["errors"][0]["message"] == f"node {insurance.ids[insurance.parties[0]]} is a Party, not a Claim"
    )


def test_a_missing_required_value_nulls_its_node_with_an_error(
    api: GraphQLAPI, insurance: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # A half-written node (its type is known, a required field is not there) is the server's
    # fault: graphql-core's null propagation up to the nearest nullable position, its wording in
    # the log, and a masked error for the client.
    broken = insurance.transactions[1]
    insurance.store.delete("transaction_amount", broken)
    with caplog.at_level(logging.ERROR, logger="efs_sqlite.graphql"):
        result = api.execute(
            "query($ids: [ID!]!) { nodes(ids: $ids) { id ... on Transaction { amount } } }",
            {"ids": [encode(broken), insurance.ids[insurance.transactions[0]]]},
        )
    first = {"id": insurance.ids[insurance.transactions[0]], "amount": "10.50"}
    assert result["data"]["nodes"] == [None, first]
    assert [(e["message"], e["path"]) for e in result["errors"]] == [
        ("internal error", ["nodes", 0, "amount"])
    ]
    assert "Cannot return null for non-nullable field Transaction.amount." in caplog.text


# -- compiled execution ----------------------------------------------------------------------------

#: Queries of every shape the compiled execution answers or hands back to graphql-core, with the
#: variables to run them with (``CLAIM``/``PARTY``/``TX``/``BROKEN`` stand for ids of the fixture).
CORPUS = [
    (CLAIM_WITH_PARTIES, {"id": "CLAIM"}),
    (
        "query($id: ID!) { claim(id: $id) { __typename id "
        "transactions: transactionsConnection { totalCount __typename } } }",
        {"id": "CLAIM"},
    ),
    (
        """query($id: ID!, $more: Boolean!) { claim(id: $id) { ...Head
             a: partiesConnection(first: 2) { pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
                                    edges { cursor node { partyIdentifier } } }
             b: partiesConnection(last: 3, before: "YXJyYXljb25uZWN0aW9uOjU=") { edges { node { ...P } } }
             c: partiesConnection(first: 1) @include(if: $more) { edges { node { timestamp } } } } }
           fragment Head on Claim { claimTypeCode claimIdentifier }
           fragment P on Party { id partyIdentifier claims: claimsConnection(last: 1) { edges { node {
             id } } } }""",
        {"id": "CLAIM", "more": True},
    ),
    (
        """query($id: ID!) { transaction(id: $id) { amount timestamp sourceSystemCode serviceTypeCode
             claim { claimTypeCode parties: partiesConnection(first: 2) { totalCount edges { node {
               partyIdentifier } } } }
           } }""",
        {"id": "TX"},
    ),
    (
        "query($a: ID!, $b: ID!) { x: claim(id: $a) { id } y: party(id: $b) { id } }",
        {"a": "CLAIM", "b": "PARTY"},
    ),
    ("query($id: ID!) { claim(id: $id) { id } }", {"id": "PARTY"}),  # a node of another type
    ("query($id: ID!) { claim(id: $id) { id } }", {"id": "00000000003"}),  # no node
    ("query($id: ID!) { claim(id: $id) { id } }", {"id": "not an id"}),
    ("query($id: ID!) { transaction(id: $id) { amount } }", {"id": "BROKEN"}),  # a required value missing
    (
        "query($id: ID!) { claim(id: $id) { parties: partiesConnection(first: 1001) { totalCount } } }",
        {"id": "CLAIM"},
    ),
    # plain lists, as the earlier system's queries read them, nested, beside connections
    (
        """query($id: ID!) { claim(id: $id) { id claimIdentifier claimTypeCode parties { id partyIdentifier }
             transactions { id amount financialTransactionIdentifier } } }""",
        {"id": "CLAIM"},
    ),
    (
        """query($id: ID!) { party(id: $id) { claims { __typename claimTypeCode
             parties { timestamp claims { id } } transactionsConnection(first: 1) { totalCount }
             transactions { claim { claimIdentifier } } } } }""",
        {"id": "PARTY"},
    ),
    ("query($id: ID!) { claim(id: $id) { transactions { id amount } } }", {"id": "CLAIM"}),  # BROKEN
    ("query($id: ID!) { node(id: $id) { id ... on Claim { claimTypeCode } } }", {"id": "CLAIM"}),
    ("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ["CLAIM", "bad", "TX"]}),
    ("{ __typename }", {}),
    ("query { __schema { queryType { name } } }", {}),
]


def test_compiled_execution_answers_exactly_as_graphql_core(insurance: Any) -> None:
    broken = insurance.transactions[1]
    insurance.store.delete("transaction_amount", broken)
    names = {
        "CLAIM": insurance.ids[insurance.claim],
        "PARTY": insurance.ids[insurance.parties[0]],
        "TX": insurance.ids[insurance.transactions[0]],
        "BROKEN": encode(broken),
    }

    def bind(value: Any) -> Any:
        return [bind(v) for v in value] if isinstance(value, list) else names.get(value, value)

    compiled, reference = GraphQLAPI(insurance.store), GraphQLAPI(insurance.store, compiled=False)
    left_to_graphql_core = ("node(", "nodes(", "__schema")  # abstract types, introspection
    for query, variables in CORPUS * 2:  # twice: the second time from the cached plans
        bound = {k: bind(v) for k, v in variables.items()}
        expected = reference.execute(query, bound)
        before = compiled.cache_info()["fallbacks"]
        got = compiled.execute(query, bound)
        assert got == expected, query
        assert json.dumps(got) == json.dumps(expected)  # the order of the keys too
        # It answers every error-free query of the shapes it knows; the others go to graphql-core.
        fell_back = compiled.cache_info()["fallbacks"] - before
        assert fell_back == ("errors" in expected or any(s in query for s in left_to_graphql_core)), query
    assert reference.cache_info()["fallbacks"] == 0


def test_the_corpus_answers_byte_for_byte_alike_on_dynamodb(insurance: Any, dynamo_store: Any) -> None:
    broken = insurance.transactions[1]
    insurance.store.delete("transaction_amount", broken)
    load(dynamo_store, dump(insurance.store), progress=False)
    names = {
        "CLAIM": insurance.ids[insurance.claim],
        "PARTY": insurance.ids[insurance.parties[0]],
        "TX": insurance.ids[insurance.transactions[0]],
        "BROKEN": encode(broken),
    }
    efs, dynamodb = GraphQLAPI(insurance.store), GraphQLAPI(dynamo_store)
    assert dynamodb.parallel_reads
    for query, variables in CORPUS:
        bound = {
            k: [names.get(v, v) for v in value] if isinstance(value, list) else names.get(value, value)
            for k, value in variables.items()
        }
        assert json.dumps(dynamodb.execute(query, bound)) == json.dumps(efs.execute(query, bound)), query


def test_compiled_execution_is_used_for_the_benchmark_shape(insurance: Any) -> None:
    api = GraphQLAPI(insurance.store)
    for _ in range(3):
        assert "errors" not in api.execute(CLAIM_WITH_PARTIES, {"id": insurance.ids[insurance.claim]})
    assert api.cache_info()["fallbacks"] == 0


# -- parallel reads ------------------------------------------------------------------------------


class ReadSpy:
    """A store hook that records every batched read as ``(shard, thread, start, end)``. The first
    read of a shard named in ``meet`` waits at that barrier, so reads meant to run at once must
    meet there (made one after another, the first would wait in vain and fail the request)."""

    def __init__(self) -> None:
        self.reads: list[tuple[str, int, float, float]] = []
        self.meet: dict[str, threading.Barrier] = {}

    @contextlib.contextmanager
    def observe(self, op: StoreOp) -> Iterator[None]:
        if op.name not in BATCHED_READS:
            yield
            return
        assert op.shard is not None
        start = time.perf_counter()
        barrier = self.meet.pop(op.shard, None)
        if barrier is not None:
            barrier.wait(timeout=20)
        yield
        self.reads.append((op.shard, threading.get_ident(), start, time.perf_counter()))


#: The shards of each level of CLAIM_WITH_PARTIES: the claim's fields and its parties' list, then
#: the parties' fields.
LEVELS = (
    ("claim_identifier", "claim_type_code", "claim_timestamp", "claim_parties"),
    ("party_identifier", "party_timestamp"),
)


def meet_per_level(spy: ReadSpy) -> None:
    for shards in LEVELS:
        barrier = threading.Barrier(len(shards))
        spy.meet.update(dict.fromkeys(shards, barrier))


def test_parallel_reads_default_follows_the_file_system(insurance: Any) -> None:
    assert GraphQLAPI(insurance.store).parallel_reads is False  # local disk
    assert GraphQLAPI(insurance.store, parallel_reads=True).parallel_reads is True
    with EFSModel(f"efs-test-auto-{uuid.uuid4().hex[:8]}") as model:
        on_vfs = ShardStore(insurance.root, vfs=model.name)
        assert GraphQLAPI(on_vfs).parallel_reads is True
        assert GraphQLAPI(on_vfs, parallel_reads=False).parallel_reads is False
        on_vfs.close()


def test_parallel_reads_read_each_level_at_once(insurance: Any) -> None:
    spy = ReadSpy()
    store = ShardStore(insurance.root, hook=spy)
    api = GraphQLAPI(store, parallel_reads=True)
    expected = GraphQLAPI(insurance.store, parallel_reads=False).execute(
        CLAIM_WITH_PARTIES, {"id": insurance.ids[insurance.claim]}
    )
    threads = []
    for _ in range(2):
        meet_per_level(spy)
        spy.reads.clear()
        result = api.execute(CLAIM_WITH_PARTIES, {"id": insurance.ids[insurance.claim]})
        assert result == expected and "errors" not in result
        assert not spy.meet  # every shard of both levels met its level's others
        by_shard = {shard: thread for shard, thread, _, _ in spy.reads}
        assert sorted(by_shard) == sorted(s for level in LEVELS for s in level)
        for level in LEVELS:
            assert len({by_shard[s] for s in level}) == len(level)  # a thread per shard
        assert threading.get_ident() not in by_shard.values()
        threads.append(by_shard)
    assert threads[0] == threads[1]  # the same thread (and its warm connection) keeps its shard
    api.close()
    store.close()


def test_parallel_reads_overlap_under_the_efs_model(insurance: Any) -> None:
    variables = {"id": insurance.ids[insurance.claim]}
    with EFSModel(f"efs-test-parallel-{uuid.uuid4().hex[:8]}", profile="elastic", sleep=True) as model:
        spy = ReadSpy()
        store = ShardStore(insurance.root, vfs=model.name, hook=spy)
        plain = ShardStore(insurance.root, vfs=model.name)
        parallel, sequential = GraphQLAPI(store), GraphQLAPI(plain, parallel_reads=False)
        assert parallel.parallel_reads
        expected = sequential.execute(CLAIM_WITH_PARTIES, variables)
        meet_per_level(spy)
        assert parallel.execute(CLAIM_WITH_PARTIES, variables) == expected  # warm: connections open
        with model.accounting() as one_by_one:
            assert sequential.execute(CLAIM_WITH_PARTIES, variables) == expected
        meet_per_level(spy)
        spy.reads.clear()
        with model.accounting() as at_once:
            assert parallel.execute(CLAIM_WITH_PARTIES, variables) == expected
        # the same file-system operations (one lock cycle per shard per level, no open) ...
        assert at_once.counts == one_by_one.counts
        assert at_once.counts["open"] == 0 and at_once.counts["lock"] == sum(map(len, LEVELS))
        # ... made on a thread per shard, the reads of a level overlapping
        for level in LEVELS:
            starts = [min(r[2] for r in spy.reads if r[0] == shard) for shard in level]
            ends = [max(r[3] for r in spy.reads if r[0] == shard) for shard in level]
            assert max(starts) < min(ends)
        parallel.close()
        store.close()
        plain.close()


def test_parallel_reads_survive_a_fork(insurance: Any) -> None:
    api = GraphQLAPI(insurance.store, parallel_reads=True)
    expected = api.execute(CLAIM_WITH_PARTIES, {"id": insurance.ids[insurance.claim]})  # threads started
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its parent's reader threads do not exist here
        try:
            result = api.execute(CLAIM_WITH_PARTIES, {"id": insurance.ids[insurance.claim]})
            os.write(write_end, b"same" if result == expected else repr(result).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    deadline = time.monotonic() + 30
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("a request in a forked child hung")
        time.sleep(0.01)
    with os.fdopen(read_end, "rb") as answer:
        assert answer.read() == b"same"
    api.close()


# -- lock-ahead ----------------------------------------------------------------------------------

#: From a party: its claims, and their parties: the party shards are read at two levels.
PARTY_CLAIMS_PARTIES = """query($id: ID!) { party(id: $id) { partyIdentifier
  claims: claimsConnection { edges { node { claimTypeCode parties: partiesConnection(first: 10) { edges
    { node { partyIdentifier } } } } } } } }"""

#: Documents of several shapes, each with the name of the node its ``$id`` is.
DOCUMENTS = [
    (CLAIM_WITH_PARTIES, "claim"),
    (PARTY_CLAIMS_PARTIES, "party"),
    (
        """query($id: ID!) { claim(id: $id) { transactions: transactionsConnection(first: 3) { edges {
          node { amount
             claim { claimTypeCode parties: partiesConnection(last: 2) { edges { node { partyIdentifier
               } } } } } } } } }""",
        "claim",
    ),
    (
        """query($id: ID!) { node(id: $id) { id ... on Party { timestamp
             claims: claimsConnection { totalCount edges { node { id claimTypeCode transactions:
               transactionsConnection { totalCount } } } } } } }""",
        "party",
    ),
    (
        """query($id: ID!) { transaction(id: $id) { amount sourceSystemCode claim { claimIdentifier
             a: partiesConnection(first: 2) { edges { node { partyIdentifier } } }
             b: partiesConnection(first: 2, after: "YXJyYXljb25uZWN0aW9uOjE=") { edges { node { id } } }
               } } }""",
        "transaction",
    ),
    (
        """query($id: ID!) { party(id: $id) { claims { claimTypeCode parties { partyIdentifier }
             transactions { amount } } } }""",
        "party",
    ),
    ("query($id: ID!) { claim(id: $id) { claimTypeCode } }", "party"),  # a node of another type
    (
        "query($id: ID!) { claim(id: $id) { parties: partiesConnection { edges { node { id } } } } }",
        "missing",
    ),
]


def document_variables(insurance: Any, kind: str) -> dict[str, str]:
    node = {
        "claim": insurance.claim,
        "party": insurance.parties[0],
        "transaction": insurance.transactions[0],
        "missing": 12345,
    }[kind]
    return {"id": encode(node)}


def test_lock_ahead_answers_as_reading_level_by_level(insurance: Any) -> None:
    vanish(insurance, insurance.parties[1])  # a dangling reference too
    ahead, plain = GraphQLAPI(insurance.store, parallel_reads=True), GraphQLAPI(insurance.store)
    nodes = (
        "query($ids: [ID!]!) { nodes(ids: $ids) { id "
        "... on Party { claims: claimsConnection { edges { node { id } } } } } }"
    )
    ids = [insurance.ids[insurance.claim], insurance.ids[insurance.parties[2]], "bad", encode(999)]
    for query, variables in [
        *((q, document_variables(insurance, kind)) for q, kind in DOCUMENTS),
        (nodes, {"ids": ids}),
    ]:
        expected = plain.execute(query, variables)
        assert ahead.execute(query, variables) == expected
        assert ahead.execute(query, variables) == expected  # warm
    ahead.close()


def test_each_shard_is_locked_once_per_request_even_when_read_at_two_levels(insurance: Any) -> None:
    variables = {"id": insurance.ids[insurance.parties[0]]}
    with EFSModel(f"efs-test-ahead-{uuid.uuid4().hex[:8]}", profile="elastic") as model:
        spy = ReadSpy()
        store = ShardStore(insurance.root, vfs=model.name, hook=spy)
        plain = ShardStore(insurance.root, vfs=model.name)
        ahead, level_by_level = GraphQLAPI(store), GraphQLAPI(plain, parallel_reads=False)
        expected = level_by_level.execute(PARTY_CLAIMS_PARTIES, variables)
        assert "errors" not in expected and ahead.execute(PARTY_CLAIMS_PARTIES, variables) == expected
        with model.accounting() as once:
            assert ahead.execute(PARTY_CLAIMS_PARTIES, variables) == expected
        with model.accounting() as per_level:
            assert level_by_level.execute(PARTY_CLAIMS_PARTIES, variables) == expected
        shards = ("party_identifier", "party_claims", "claim_type_code", "claim_parties")
        locks = {f: c["lock"] for f, c in once.by_file.items() if f.endswith(".sqlite")}
        assert locks == {f"{s}.sqlite": 1 for s in shards}
        assert per_level.by_file["party_identifier.sqlite"]["lock"] == 2  # the party, then its peers
        # a query of one level reads without locking ahead (it would save nothing): on this thread
        spy.reads.clear()
        ahead.execute("query($id: ID!) { party(id: $id) { partyIdentifier } }", variables)
        assert [(shard, thread) for shard, thread, _, _ in spy.reads] == [
            ("party_identifier", threading.get_ident())
        ]
        ahead.close()
        store.close()
        plain.close()


#: A grouped write across two shards, as the store makes one: ATTACH, one transaction, one commit.
GROUP_WRITER = """
import sys, apsw
conn = apsw.Connection(sys.argv[1])
conn.set_busy_timeout(60_000)
conn.execute("ATTACH ? AS other", (sys.argv[2],))
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT OR REPLACE INTO main.items VALUES (999999, 1, 0)")
conn.execute("INSERT OR REPLACE INTO other.items VALUES (999999, 1, 0)")
conn.execute("COMMIT")
print("committed", flush=True)
"""


def group_writer(store: ShardStore, main: str, other: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", GROUP_WRITER, str(store.path(main)), str(store.path(other))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Gated:
    """A store hook that tells when a read of ``shard`` begins (``entered``), and can hold back
    the lock-ahead of ``shard`` until ``go`` is set (``held_back``), recording each lock-ahead's
    answer in ``began``."""

    def __init__(self, shard: str) -> None:
        self.shard = shard
        self.entered, self.waiting, self.go = threading.Event(), threading.Event(), threading.Event()
        self.hold_back = False
        self.began: dict[str, bool] = {}

    @contextlib.contextmanager
    def observe(self, op: StoreOp) -> Iterator[None]:
        if op.name == "get_many" and op.shard == self.shard:
            self.entered.set()
        if op.name == "begin_read" and self.hold_back and op.shard == self.shard:
            self.waiting.set()
            assert self.go.wait(timeout=60)
        yield
        if op.name == "begin_read" and op.error is None:
            assert op.shard is not None
            self.began[op.shard] = op.result


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds; a hang guard, not a measurement."""
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.005)


def test_a_busy_shard_makes_the_request_wait_holding_no_other(insurance: Any) -> None:
    variables = {"id": insurance.ids[insurance.claim]}
    expected = GraphQLAPI(insurance.store).execute(CLAIM_WITH_PARTIES, variables)
    gate = Gated("claim_type_code")
    store = ShardStore(insurance.root, busy_timeout_ms=60_000, hook=gate)
    api = GraphQLAPI(store, parallel_reads=True)
    assert api.execute(CLAIM_WITH_PARTIES, variables) == expected  # warm
    gate.entered.clear()
    with wk.ExclusiveLock(store.path("claim_type_code")) as lock, ThreadPoolExecutor(1) as pool:
        request = pool.submit(api.execute, CLAIM_WITH_PARTIES, variables)
        # The lock-ahead found claim_type_code busy, let go of the rest, and now the request
        # waits for it level by level, which it cannot get before the locker lets go ...
        assert gate.entered.wait(timeout=60)
        assert gate.began["claim_type_code"] is False
        # ... holding no other shard meanwhile: a grouped writer in another process commits to a
        # shard of each level (one the lock-ahead would have held) without waiting for it.
        writer = group_writer(store, "claim_identifier", "party_identifier")
        out, err = writer.communicate(timeout=120)
        assert out == "committed\n", err
        assert not request.done()
        lock.release()
        assert request.result(timeout=120) == expected
    assert api.execute(CLAIM_WITH_PARTIES, variables) == expected
    assert gate.began["claim_type_code"] is True  # locked ahead again
    api.close()
    store.close()


def test_a_grouped_writer_waiting_for_a_held_shard_never_deadlocks_a_request(insurance: Any) -> None:
    variables = {"id": insurance.ids[insurance.claim]}
    expected = GraphQLAPI(insurance.store).execute(CLAIM_WITH_PARTIES, variables)
    gate = Gated("claim_identifier")
    store = ShardStore(insurance.root, busy_timeout_ms=60_000, hook=gate)
    api = GraphQLAPI(store, parallel_reads=True)
    assert api.execute(CLAIM_WITH_PARTIES, variables) == expected  # warm
    gate.hold_back = True
    probe = apsw.Connection(str(store.path("claim_identifier")))  # busy timeout 0

    def writer_commits() -> bool:
        try:
            probe.execute("SELECT count(*) FROM items").fetchall()
        except apsw.BusyError:
            return True
        return False

    with ThreadPoolExecutor(1) as pool:
        request = pool.submit(api.execute, CLAIM_WITH_PARTIES, variables)
        # The request holds claim_type_code (and the others) and has yet to lock claim_identifier ...
        assert gate.waiting.wait(timeout=60)
        wait_for(lambda: gate.began.get("claim_type_code") is True, "claim_type_code locked ahead")
        # ... when a grouped writer of both starts its commit: EXCLUSIVE on claim_identifier (its main
        # database, first), then it waits for the request's lock on claim_type_code.
        writer = group_writer(store, "claim_identifier", "claim_type_code")
        try:
            wait_for(writer_commits, "the writer holds claim_identifier")
            gate.go.set()
            # Waiting for claim_identifier now would wait for the writer, which waits for this request:
            # the lock-ahead does not wait, lets go of everything, and both go through.
            out, err = writer.communicate(timeout=120)
            assert out == "committed\n", err
            assert request.result(timeout=120) == expected
        finally:
            writer.kill()
            writer.wait()
    assert gate.began["claim_identifier"] is False
    probe.close()
    api.close()
    store.close()


QUERY_SHARDS = ("claim_identifier", "claim_type_code", "claim_timestamp", "claim_parties", "party_identifier")


@pytest.mark.parametrize(
    ("kind", "nth", "error"),
    [
        ("lock", 1, "eio"),
        ("lock", 4, "eio"),
        ("lock", 2, "enolck"),
        ("access", 5, "eio"),
        ("file_size", 6, "eio"),
        ("read", 3, "estale"),
        ("unlock", 1, "eio"),
        ("unlock", 6, "eio"),
    ],
)
def test_a_failure_while_locked_ahead_lets_go_of_every_lock(
    insurance: Any, kind: str, nth: int, error: Any
) -> None:
    variables = {"id": insurance.ids[insurance.claim]}
    expected = GraphQLAPI(insurance.store).execute(CLAIM_WITH_PARTIES, variables)
    with EFSModel(f"efs-test-fault-{uuid.uuid4().hex[:8]}", profile="elastic") as model:
        store = ShardStore(insurance.root, vfs=model.name)
        api = GraphQLAPI(store)
        assert api.execute(CLAIM_WITH_PARTIES, variables) == expected  # warm
        fault = model.inject(kind, nth, error)
        result = api.execute(CLAIM_WITH_PARTIES, variables)
        assert fault.fired == 1
        if error == "enolck":  # a lock refused as busy: read level by level instead
            assert result == expected
        else:
            assert result["data"] == {"claim": None} and result["errors"][0]["message"] == "internal error"
        # Every lock was let go: a writer commits to every shard at once without waiting ...
        with ShardStore(insurance.root, busy_timeout_ms=0) as writer:
            with writer.write() as w:
                for shard in QUERY_SHARDS:
                    w.put(shard, 999_999, 1)
            assert {writer.integrity_check(shard) for shard in QUERY_SHARDS} == {"ok"}
        # ... and the API keeps working.
        model.recover()
        assert api.execute(CLAIM_WITH_PARTIES, variables) == expected
        api.close()
        store.close()


def test_concurrent_requests_read_on_lanes_of_their_own(insurance: Any) -> None:
    variables = {"id": insurance.ids[insurance.parties[0]]}
    api = GraphQLAPI(insurance.store, parallel_reads=True)
    expected = GraphQLAPI(insurance.store).execute(PARTY_CLAIMS_PARTIES, variables)
    start = threading.Barrier(4)

    def client() -> list[dict[str, Any]]:
        start.wait(timeout=60)
        return [api.execute(PARTY_CLAIMS_PARTIES, variables) for _ in range(20)]

    with ThreadPoolExecutor(4) as pool:
        answers = [a for future in [pool.submit(client) for _ in range(4)] for a in future.result(120)]
    assert answers == [expected] * 80
    assert 1 <= len(api._lanes) <= 4  # idle now, kept warm
    with ShardStore(insurance.root, busy_timeout_ms=0) as writer, writer.write() as w:
        for shard in QUERY_SHARDS:  # no lock left behind
            w.put(shard, 999_999, 1)
    api.close()


# -- documents and limits ------------------------------------------------------------------------


def test_repeated_documents_skip_parse_and_validate(api: GraphQLAPI, insurance: Any) -> None:
    for claim in (insurance.claim, insurance.claim, insurance.parties[0]):
        api.execute(CLAIM_WITH_PARTIES, {"id": insurance.ids[claim]})
    info = api.cache_info()
    assert (info["parsed"], info["validated"], info["hits"], info["misses"]) == (1, 1, 2, 1)


def test_document_cache_is_bounded(insurance: Any) -> None:
    api = GraphQLAPI(insurance.store, cache_size=2)
    for i in range(5):
        api.execute(f"{{ a{i}: __typename }}")
    assert api.cache_info()["size"] == 2
    api.execute("{ a4: __typename }")
    api.execute("{ a0: __typename }")
    assert api.cache_info()["hits"] == 1 and api.cache_info()["parsed"] == 6


def nested(depth: int) -> str:
    """party -> claims -> parties -> claims ... ``depth`` fields deep (depth = 2 + 3k)."""
    hops = (depth - 2) // 3
    inner = "id"
    for i in reversed(range(hops)):
        hop = "claims" if i % 2 == 0 else "parties"
        inner = f"{hop}Connection(first: 1) {{ edges {{ node {{ {inner} }} }} }}"
    return f'{{ party(id: "00000000001") {{ {inner} }} }}'


def test_depth_limit(api: GraphQLAPI) -> None:
    assert measure_depth(nested(11)) == 11
    result = api.execute(nested(11))
    assert "data" not in result
    assert result["errors"][0]["message"] == "the query is 11 fields deep; the limit is 10"
    assert "errors" in api.execute(nested(8)) and "data" in api.execute(nested(8))


def measure_depth(query: str) -> int:
    from graphql import parse

    return measure(parse(query))[0]


def test_field_and_alias_bombs_are_refused(api: GraphQLAPI) -> None:
    aliases = " ".join(f"a{i}: __typename" for i in range(1001))
    result = api.execute(f"{{ {aliases} }}")
    assert "data" not in result and "selects 1001 fields" in result["errors"][0]["message"]
    # each fragment spreads the previous one twice: 2**30 fields, measured in linear time
    fragments = ["fragment F0 on Query { __typename }"] + [
        f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, 31)
    ]
    bomb = "{ ...F30 } " + " ".join(fragments)
    result = api.execute(bomb)
    assert "data" not in result and "limit is 1000" in result["errors"][0]["message"]


def test_introspection_has_its_own_depth_limit(api: GraphQLAPI) -> None:
    from graphql import get_introspection_query

    result = api.execute(get_introspection_query())
    assert "errors" not in result and result["data"]["__schema"]["queryType"]["name"] == "Query"
    inner = "name"
    for i in range(13):  # __schema types (fields type)... name: 16 deep
        inner = f"{'type' if i % 2 else 'fields'} {{ {inner} }}"
    deep = f"{{ __schema {{ types {{ {inner} }} }} }}"
    assert "introspection query is 16 fields deep" in api.execute(deep)["errors"][0]["message"]


def test_absurd_nesting_and_size_are_errors_not_crashes(api: GraphQLAPI) -> None:
    deep = "{ " + "a { " * 3000 + "b" + " }" * 3000 + " }"
    result = api.execute(deep)
    assert "data" not in result and "nested too deeply" in result["errors"][0]["message"]
    huge = "{ " + "__typename " * 30_000 + "}"
    assert "Document contains more than 20000 tokens" in api.execute(huge)["errors"][0]["message"]


def test_node_budget(insurance: Any) -> None:
    api = GraphQLAPI(insurance.store, limits=Limits(max_nodes=5))
    result = api.execute(CLAIM_WITH_PARTIES, {"id": insurance.ids[insurance.claim]})
    assert "reads more than 5 nodes" in result["errors"][0]["message"]
    assert len(GraphQLAPI(insurance.store).execute("{ nodes(ids: []) { id } }")["data"]["nodes"]) == 0
    ids = ["00000000001"] * 1001
    assert (
        "at most 1000 ids"
        in api.execute("query($i: [ID!]!) { nodes(ids: $i) { id } }", {"i": ids})["errors"][0]["message"]
    )


@pytest.mark.parametrize(
    ("query", "variables", "operation", "message"),
    [
        ("{ claim(id: 1) { nope } }", None, None, "Cannot query field 'nope'"),
        ("{ claim(", None, None, "Syntax Error"),
        ("query($id: ID!) { claim(id: $id) { id } }", {}, None, "Variable '$id' of required type 'ID!'"),
        (
            'query($n: Int) { claim(id: "x") { parties: partiesConnection(first: $n) { totalCount } } }',
            {"n": "ten"},
            None,
            "Int cannot represent non-integer value",
        ),
        ("query A { __typename } query B { __typename }", None, None, "Must provide operation name"),
        ("query A { __typename }", None, "B", "Unknown operation named 'B'"),
        ("", None, None, "the request has no query"),
        (42, None, None, "the request has no query"),
        ("{ __typename }", [1], None, "variables must be a JSON object"),
        ("{ __typename }", None, 7, "operationName must be a string"),
    ],
)
def test_request_errors_have_no_data(
    api: GraphQLAPI, query: Any, variables: Any, operation: Any, message: str
) -> None:
    result = api.execute(query, variables, operation)
    assert "data" not in result
    assert message in result["errors"][0]["message"]


def test_mutations_can_be_refused(api: GraphQLAPI) -> None:
    mutation = 'mutation { deleteParty(id: "00000000001") }'
    with pytest.raises(OperationNotAllowed, match="mutation must be sent with POST"):
        api.execute(mutation, allow_mutations=False)
    assert api.execute("{ __typename }", allow_mutations=False) == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize("parallel_reads", [False, True])
def test_unexpected_errors_are_masked_and_logged(
    insurance: Any, caplog: pytest.LogCaptureFixture, parallel_reads: bool
) -> None:
    class Broken:
        """A store hook that fails every get_many, as a broken disk would."""

        @contextlib.contextmanager
        def observe(self, op: StoreOp) -> Iterator[None]:
            if op.name == "get_many":
                raise RuntimeError(f"disk on fire at {insurance.root}/secret")
            yield

    api = GraphQLAPI(ShardStore(insurance.root, hook=Broken()), parallel_reads=parallel_reads)
    with caplog.at_level(logging.ERROR, logger="efs_sqlite.graphql"):
        result = api.execute(CLAIM_WITH_PARTIES, {"id": insurance.ids[insurance.claim]})
    assert result["data"] == {"claim": None}
    assert result["errors"][0]["message"] == "internal error"
    assert "secret" not in str(result)
    assert "disk on fire" in caplog.text


def test_execute_works_inside_a_running_event_loop(api: GraphQLAPI, insurance: Any) -> None:
    async def notebook_cell() -> dict[str, Any]:  # Jupyter runs cells inside its event loop
        return api.execute(CLAIM_WITH_PARTIES, {"id": insurance.ids[insurance.claim]})

    result = asyncio.run(notebook_cell())
    assert result["data"]["claim"]["claimIdentifier"] == 4242


def test_32_bit_int_fields(api: GraphQLAPI, insurance: Any) -> None:
    big = insurance.graph.create_node("Party", {"identifier": 2**40, "timestamp": "2024-01-01"})
    result = run(api, "query($id: ID!) { party(id: $id) { partyIdentifier } }", id=encode(big))
    assert (
        "Int cannot represent non 32-bit signed integer value: 1099511627776"
        in result["errors"][0]["message"]
    )
    before = shard_digest(insurance.root)
    created = api.execute(
        "mutation { createParty(input: {partyIdentifier: 1099511627776, "
        'timestamp: "2024-01-01T00:00:00Z"}) { id } }'
    )
    assert "data" not in created and "non 32-bit" in created["errors"][0]["message"]
    assert shard_digest(insurance.root) == before


# -- mutations -----------------------------------------------------------------------------------

CREATE_TX = """mutation($input: TransactionInput!) { createTransaction(input: $input) {
  id financialTransactionIdentifier timestamp amount sourceSystemCode serviceTypeCode
  claim { claimIdentifier } } }"""


def test_create_writes_every_field_in_one_grouped_write(insurance: Any) -> None:
    counts = Counting()
    store = ShardStore(insurance.root, hook=counts)
    api = GraphQLAPI(store)
    result = api.execute(
        CREATE_TX,
        {
            "input": {
                "financialTransactionIdentifier": "FT-new",
                "timestamp": "2024-06-01T10:00:00+02:00",
                "claim": insurance.ids[insurance.claim],
                "amount": "99.9",
                "serviceTypeCode": "TOW",
            }
        },
    )
    assert "errors" not in result, result
    tx = result["data"]["createTransaction"]
    assert tx == {
        "id": tx["id"],
        "financialTransactionIdentifier": "FT-new",
        "timestamp": "2024-06-01T08:00:00+00:00",
        "amount": "99.90",
        "sourceSystemCode": None,
        "serviceTypeCode": "TOW",
        "claim": {"claimIdentifier": 4242},
    }
    assert counts.writes == 1
    stored = insurance.graph.get_node(tx["id"])
    assert stored is not None and stored["type"] == "Transaction" and stored["claim"] == insurance.claim
    assert stored["timestamp"] == datetime(2024, 6, 1, 8, tzinfo=UTC)
    assert "source_system_code" not in stored


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"amount": "1.234"}, "has more than 2 decimal places"),
        ({"claim": "00000000042"}, "claim: no node has the id 00000000042"),
        ({"claim": "party"}, "is a Party, not a Claim"),
        ({"claim": "bad"}, "claim: 'bad' has 3 characters"),
        ({"timestamp": "yesterday"}, "DateTime cannot represent value"),
        ({"amount": None}, "Expected non-nullable type 'Decimal!' not to be None"),
    ],
)
def test_invalid_input_writes_nothing(
    insurance: Any, api: GraphQLAPI, change: dict[str, Any], message: str
) -> None:
    if change.get("claim") == "party":
        change = {"claim": insurance.ids[insurance.parties[0]]}
    before = shard_digest(insurance.root)
    base = {
        "financialTransactionIdentifier": "X",
        "timestamp": "2024-01-01T00:00:00Z",
        "claim": insurance.ids[insurance.claim],
        "amount": "1.00",
    }
    result = api.execute(CREATE_TX, {"input": {**base, **change}})
    assert message in result["errors"][0]["message"]
    assert not result.get("data") or result["data"] == {"createTransaction": None}
    assert shard_digest(insurance.root) == before


def test_update_is_partial_and_null_clears_optional_fields(api: GraphQLAPI, insurance: Any) -> None:
    tx = insurance.ids[insurance.transactions[0]]
    update = """mutation($id: ID!, $input: TransactionPatch!) { updateTransaction(id: $id, input: $input) {
                  financialTransactionIdentifier amount sourceSystemCode serviceTypeCode } }"""
    result = api.execute(update, {"id": tx, "input": {"amount": "5", "serviceTypeCode": "TOW"}})
    assert result == {
        "data": {
            "updateTransaction": {
                "financialTransactionIdentifier": "FT-0",
                "amount": "5.00",
                "sourceSystemCode": "SAP",
                "serviceTypeCode": "TOW",
            }
        }
    }
    result = api.execute(update, {"id": tx, "input": {"sourceSystemCode": None}})
    assert result["data"]["updateTransaction"]["sourceSystemCode"] is None
    assert "source_system_code" not in insurance.graph.get_node(tx)

    before = shard_digest(insurance.root)
    result = api.execute(update, {"id": tx, "input": {"amount": None}})
    assert result["errors"][0]["message"] == "amount: a value is required"
    wrong = api.execute(update, {"id": insurance.ids[insurance.claim], "input": {"amount": "1"}})
    assert (
        wrong["errors"][0]["message"]
        == f"node {insurance.ids[insurance.claim]} is a Claim, not a Transaction"
    )
    assert shard_digest(insurance.root) == before


def test_delete_removes_every_shard_value(api: GraphQLAPI, insurance: Any) -> None:
    tx = insurance.transactions[2]
    result = api.execute("mutation($id: ID!) { deleteTransaction(id: $id) }", {"id": encode(tx)})
    assert result == {"data": {"deleteTransaction": encode(tx)}}
    for shard in [*insurance.store.shards()]:
        assert insurance.store.get(shard, tx) is None, shard
    gone = api.execute("query($id: ID!) { transaction(id: $id) { id } }", {"id": encode(tx)})
    assert gone["errors"][0]["message"] == f"no node has the id {encode(tx)}"
    again = api.execute("mutation($id: ID!) { deleteTransaction(id: $id) }", {"id": encode(tx)})
    assert again["data"] == {"deleteTransaction": None}
    assert again["errors"][0]["message"] == f"no node has the id {encode(tx)}"


def test_reference_list_add_and_remove(api: GraphQLAPI, insurance: Any) -> None:
    claim = insurance.ids[insurance.claim]
    extra = insurance.graph.create_node("Party", {"identifier": 999, "timestamp": "2024-01-01"})
    add = """mutation($id: ID!, $ids: [ID!]!) { addClaimParties(id: $id, ids: $ids) {
               parties: partiesConnection(last: 1) { totalCount edges { node { partyIdentifier } } } } }"""
    result = api.execute(add, {"id": claim, "ids": [encode(extra)]})
    assert result["data"]["addClaimParties"]["parties"] == {
        "totalCount": 11,
        "edges": [{"node": {"partyIdentifier": 999}}],
    }
    remove = """mutation($id: ID!, $ids: [ID!]!) { removeClaimParties(id: $id, ids: $ids) {
                  parties: partiesConnection(first: 20) { totalCount edges { node { partyIdentifier } }
                    } } }"""
    result = api.execute(remove, {"id": claim, "ids": [encode(extra), insurance.ids[insurance.parties[0]]]})
    parties = result["data"]["removeClaimParties"]["parties"]
    assert parties["totalCount"] == 9
    assert [e["node"]["partyIdentifier"] for e in parties["edges"]] == list(range(101, 110))

    before = shard_digest(insurance.root)
    wrong = api.execute(add, {"id": claim, "ids": [insurance.ids[insurance.transactions[0]]]})
    assert "is a Transaction, not a Party" in wrong["errors"][0]["message"]
    assert shard_digest(insurance.root) == before


def test_a_mutation_sees_its_own_writes(api: GraphQLAPI, insurance: Any) -> None:
    claim = insurance.ids[insurance.claim]
    result = api.execute(
        """mutation($id: ID!) {
             before: updateClaim(id: $id, input: {claimTypeCode: "HOME"}) { claimTypeCode }
             after: updateClaim(id: $id, input: {claimIdentifier: 7}) { claimIdentifier claimTypeCode }
           }""",
        {"id": claim},
    )
    assert result == {
        "data": {
            "before": {"claimTypeCode": "HOME"},
            "after": {"claimIdentifier": 7, "claimTypeCode": "HOME"},
        }
    }


@pytest.mark.parametrize("parallel_reads", [False, True])
def test_a_busy_shard_is_waited_for_once_and_reported_where_it_was_read(
    insurance: Any, parallel_reads: bool
) -> None:
    # The compiled execution gives up on the busy shard and graphql-core runs the query again:
    # the failed read is reported at its field, not made (and waited for) a second time.
    counts = Counting()
    store = ShardStore(insurance.root, busy_timeout_ms=50, hook=counts)
    api = GraphQLAPI(store, parallel_reads=parallel_reads)
    variables = {"id": insurance.ids[insurance.claim]}
    expected = GraphQLAPI(insurance.store).execute(CLAIM_WITH_PARTIES, variables)
    assert api.execute(CLAIM_WITH_PARTIES, variables) == expected
    with wk.ExclusiveLock(store.path("party_timestamp")) as lock:
        counts.calls.clear()
        result = api.execute(CLAIM_WITH_PARTIES, variables)
        lock.release()
    assert result["data"] == {"claim": None}
    [error] = result["errors"]
    assert error["path"] == ["claim"] and "party_timestamp" in error["message"], error
    assert "stayed locked" in error["message"]
    assert counts.calls["get_many", "party_timestamp"] <= 1  # read once (or never: locked ahead)
    assert counts.calls["get_many", "claim_identifier"] == 1  # the level before: not read again
    assert api.cache_info()["fallbacks"] == 1
    assert api.execute(CLAIM_WITH_PARTIES, variables) == expected  # and then it answers again
    api.close()
    store.close()
