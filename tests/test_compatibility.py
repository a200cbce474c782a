"""The earlier system's schema and queries, unchanged, against this API (docs/SOURCES.md#earlier-system).

Its reference lists were plain GraphQL lists; they are again, with a Relay connection beside each
(``partiesConnection``) for lists too long to be one value.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from graphql import BreakingChangeType, GraphQLScalarType, find_breaking_changes, parse, validate
from graphql import build_schema as build_sdl
from test_graphql import Counting, vanish

from efs_sqlite.graphql import GraphQLAPI, Limits, build_schema
from efs_sqlite.store import ShardStore
from efs_sqlite.uid import encode

#: The earlier system's SDL as it was published (docs/SOURCES.md#earlier-system); it uses the
#: scalars DateTime and Decimal without declaring them, so they are declared before it (and its
#: longest line is broken in two).
EARLIER_SDL = """
interface Node { id: ID! }
type Claim implements Node { id: ID! claimIdentifier: Int! claimTypeCode: String! timestamp: DateTime!
                             transactions: [Transaction] parties: [Party] }
type Party implements Node { id: ID! partyIdentifier: Int! timestamp: DateTime! claims: [Claim] }
type Transaction implements Node { id: ID! financialTransactionIdentifier: String! timestamp: DateTime!
                                   claim: Claim! amount: Decimal! sourceSystemCode: String
                                   serviceTypeCode: String }
type Query { claim(id: ID!): Claim! party(id: ID!): Party! transaction(id: ID!): Transaction! }
"""
EARLIER = build_sdl("scalar DateTime scalar Decimal\n" + EARLIER_SDL)

#: The earlier system's measured request, as it was sent (with the id as a variable).
CLAIM = """query($id: ID!) { claim(id: $id){id claimIdentifier claimTypeCode parties{id partyIdentifier}
  transactions{id amount financialTransactionIdentifier}} }"""
PARTY = """query($id: ID!) { party(id: $id){id partyIdentifier timestamp
  claims{id claimIdentifier claimTypeCode}} }"""
TRANSACTION = """query($id: ID!) { transaction(id: $id){id financialTransactionIdentifier timestamp amount
  sourceSystemCode serviceTypeCode claim{id claimIdentifier parties{partyIdentifier}}} }"""
EARLIER_QUERIES = (CLAIM, PARTY, TRANSACTION)
AMOUNTS = ("10.50", "110.50", "210.50")  # the fixture's transactions


def test_the_earlier_queries_are_valid_in_both_schemas() -> None:
    ours = build_schema().graphql_schema
    for query in EARLIER_QUERIES:
        assert validate(EARLIER, parse(query)) == [], query
        assert validate(ours, parse(query)) == [], query


def test_the_only_breaking_changes_are_the_documented_nullable_roots() -> None:
    """Compared with the earlier SDL, this schema only adds (connections, node, mutations), except
    that its root fields are nullable: a missing node is null and an error instead of nulling the
    whole response."""
    changes = [
        c.description
        for c in find_breaking_changes(EARLIER, build_schema().graphql_schema)
        # graphene's scalars are other Python classes than graphql-core's: the same kind of type
        if not (
            c.type == BreakingChangeType.TYPE_CHANGED_KIND and c.description.endswith("to a Scalar type.")
        )
    ]
    assert changes == [
        "Query.claim changed type from Claim! to Claim.",
        "Query.party changed type from Party! to Party.",
        "Query.transaction changed type from Transaction! to Transaction.",
    ]
    assert all(isinstance(EARLIER.get_type(name), GraphQLScalarType) for name in ("DateTime", "Decimal"))


def test_the_earlier_queries_answer_unchanged(insurance: Any) -> None:
    api = GraphQLAPI(insurance.store)
    ids = insurance.ids
    claim, party, tx = ids[insurance.claim], ids[insurance.parties[0]], ids[insurance.transactions[0]]
    parties = [{"id": ids[p], "partyIdentifier": 100 + i} for i, p in enumerate(insurance.parties)]
    assert api.execute(CLAIM, {"id": claim}) == {
        "data": {
            "claim": {
                "id": claim,
                "claimIdentifier": 4242,
                "claimTypeCode": "MOTOR",
                "parties": parties,
                "transactions": [
                    {"id": ids[t], "amount": amount, "financialTransactionIdentifier": f"FT-{i}"}
                    for i, (t, amount) in enumerate(zip(insurance.transactions, AMOUNTS, strict=True))
                ],
            }
        }
    }
    assert api.execute(PARTY, {"id": party}) == {
        "data": {
            "party": {
                "id": party,
                "partyIdentifier": 100,
                "timestamp": "2024-03-01T09:30:00+00:00",
                "claims": [{"id": claim, "claimIdentifier": 4242, "claimTypeCode": "MOTOR"}],
            }
        }
    }
    answer = api.execute(TRANSACTION, {"id": tx})["data"]["transaction"]
    assert answer["claim"]["parties"] == [{"partyIdentifier": p["partyIdentifier"]} for p in parties]
    assert (answer["amount"], answer["sourceSystemCode"], answer["serviceTypeCode"]) == ("10.50", "SAP", None)


def test_plain_lists_answer_compiled_exactly_as_graphql_core(insurance: Any) -> None:
    compiled, reference = GraphQLAPI(insurance.store), GraphQLAPI(insurance.store, compiled=False)
    variables = [
        {"id": insurance.ids[insurance.claim]},
        {"id": insurance.ids[insurance.parties[0]]},
        {"id": insurance.ids[insurance.transactions[0]]},
    ]
    for _ in range(2):  # the second time from the cached plans
        for query, bound in zip(EARLIER_QUERIES, variables, strict=True):
            expected = reference.execute(query, bound)
            before = compiled.cache_info()["fallbacks"]
            assert json.dumps(compiled.execute(query, bound)) == json.dumps(expected)
            assert compiled.cache_info()["fallbacks"] == before  # answered compiled


def test_a_plain_list_is_read_in_one_batch_per_level(insurance: Any) -> None:
    counts = Counting()
    api = GraphQLAPI(ShardStore(insurance.root, hook=counts))
    assert "errors" not in api.execute(CLAIM, {"id": insurance.ids[insurance.claim]})
    assert dict(counts.calls) == {
        ("get_many", "claim_identifier"): 1,
        ("get_many", "claim_type_code"): 1,
        ("list_window_many", "claim_parties"): 1,  # its length and entries: one statement
        ("list_window_many", "claim_transactions"): 1,
        ("get_many", "party_identifier"): 1,
        ("get_many", "transaction_amount"): 1,
        ("get_many", "transaction_identifier"): 1,
    }
    assert counts.keys["get_many", "party_identifier"] == 10


def test_the_lock_ahead_plan_includes_the_plain_lists(insurance: Any) -> None:
    """With parallel reads, a query of several levels locks every shard it may read at once: the
    plain lists' shards and those of their entries too. Each shard is read once."""
    counts = Counting()
    api = GraphQLAPI(ShardStore(insurance.root, hook=counts), parallel_reads=True)
    try:
        answer = api.execute(PARTY, {"id": insurance.ids[insurance.parties[0]]})
        assert "errors" not in answer
        prepared = api._documents.get(PARTY)
        [ahead] = [shards for plan in prepared.plans.values() for shards in plan.ahead_shards.values()]
        assert set(ahead) == {
            "party_identifier",
            "party_timestamp",
            "party_claims",
            "claim_identifier",
            "claim_type_code",
        }
        assert all(n == 1 for n in counts.calls.values()), counts.calls
    finally:
        api.close()


def test_a_plain_list_past_the_limit_is_an_error_naming_the_connection(insurance: Any) -> None:
    for compiled in (True, False):
        api = GraphQLAPI(insurance.store, limits=Limits(max_list=5, default_page=5), compiled=compiled)
        result = api.execute(
            "query($id: ID!) { claim(id: $id) { claimIdentifier parties { id } transactions { id } } }",
            {"id": insurance.ids[insurance.claim]},
        )
        claim = result["data"]["claim"]
        assert (
            claim["parties"] is None and len(claim["transactions"]) == 3 and claim["claimIdentifier"] == 4242
        )
        assert result["errors"] == [
            {
                "message": "Claim.parties has 10 entries, more than the 5 a plain list returns; "
                "page through partiesConnection(first:, after:) instead",
                "locations": [{"line": 1, "column": 52}],
                "path": ["claim", "parties"],
            }
        ]


def test_a_connection_without_a_page_size_says_there_is_more(insurance: Any) -> None:
    """Without first/last a connection returns the default page (Limits.default_page, 100), and
    says so: hasNextPage is true and totalCount is the whole list's length."""
    hub = insurance.graph.create_node("Party", {"identifier": 1, "timestamp": "2024-01-01"})
    claims = [
        insurance.graph.create_node("Claim", {"identifier": i, "type_code": "X", "timestamp": "2024-01-01"})
        for i in range(250)
    ]
    insurance.graph.list_add(hub, "claims", claims)
    result = GraphQLAPI(insurance.store).execute(
        "query($id: ID!) { party(id: $id) { claimsConnection { totalCount pageInfo { hasNextPage } "
        "edges { node { claimIdentifier } } } } }",
        {"id": encode(hub)},
    )
    connection = result["data"]["party"]["claimsConnection"]
    assert connection["totalCount"] == 250 and connection["pageInfo"]["hasNextPage"] is True
    assert [e["node"]["claimIdentifier"] for e in connection["edges"]] == list(range(100))


@pytest.mark.parametrize("compiled", [True, False])
def test_a_vanished_entry_of_a_plain_list_is_null_with_an_error(insurance: Any, compiled: bool) -> None:
    """A node removed behind the graph's back (straight from the store) reads as a null entry
    and an error at its position; the rest of the list stands."""
    gone = insurance.parties[1]
    vanish(insurance, gone)
    result = GraphQLAPI(insurance.store, compiled=compiled).execute(
        "query($id: ID!) { claim(id: $id) { parties { partyIdentifier } } }",
        {"id": insurance.ids[insurance.claim]},
    )
    parties = result["data"]["claim"]["parties"]
    assert parties[1] is None and parties[0] == {"partyIdentifier": 100} and len(parties) == 10
    assert [(e["message"], e["path"]) for e in result["errors"]] == [
        (f"node {encode(gone)} no longer exists (a dangling reference)", ["claim", "parties", 1])
    ]


def test_nested_plain_lists_count_against_the_node_budget(insurance: Any) -> None:
    """A plain list of plain lists multiplies: the node budget refuses the request whole."""
    query = "query($id: ID!) { claim(id: $id) { parties { claims { parties { id } } } } }"
    variables = {"id": insurance.ids[insurance.claim]}
    assert "errors" not in GraphQLAPI(insurance.store, limits=Limits(max_nodes=200)).execute(query, variables)
    refused = GraphQLAPI(insurance.store, limits=Limits(max_nodes=100)).execute(query, variables)
    assert refused["data"] == {"claim": None}
    assert refused["errors"][0]["message"] == "the request reads more than 100 nodes; ask for smaller pages"
