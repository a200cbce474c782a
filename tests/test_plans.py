"""Look-ahead plans: what a selection reads, named, and the shards a prefetch locks ahead."""

from __future__ import annotations

from graphql import GraphQLResolveInfo, parse

from efs_sqlite.graphql import build_schema
from efs_sqlite.graphql.limits import Limits
from efs_sqlite.graphql.paging import NO_ROWS, Window
from efs_sqlite.graphql.plans import Batch, Plan, SelectedList
from efs_sqlite.model import INSURANCE, TYPE_SHARD

SCHEMA = build_schema().graphql_schema
DEEP = """query($n: Int) {
  claim(id: "x") {
    id claimIdentifier
    parties: partiesConnection(first: $n) { totalCount edges { node { partyIdentifier claims:
      claimsConnection(last: 2) { totalCount } } } }
    transactions: transactionsConnection { totalCount }
  }
}"""


def root_info(query: str, variables: dict[str, object]) -> GraphQLResolveInfo:
    """The resolve info graphql-core gives the resolver of the one root field of ``query``."""
    operation = parse(query).definitions[0]
    [field] = operation.selection_set.selections  # type: ignore[attr-defined]
    claim, root = SCHEMA.get_type("Claim"), SCHEMA.query_type
    return GraphQLResolveInfo(
        "claim", [field], claim, root, None, SCHEMA, {}, None, operation, variables, None, lambda _: False
    )  # type: ignore[arg-type]


def test_a_selection_names_its_shards_references_and_lists() -> None:
    info, plan = root_info(DEEP, {"n": 3}), Plan(INSURANCE, Limits(default_page=7))
    claim = plan.selection(info, "Claim", info.field_nodes)
    assert plan.selection(info, "Claim", info.field_nodes) is claim  # worked out once per plan
    assert claim.shards == claim.required == claim.reads == ("claim_identifier",)
    assert claim.refs == ()
    parties, transactions = claim.lists
    assert isinstance(parties, SelectedList)
    assert (parties.shard, parties.target, parties.args, parties.window) == (
        "claim_parties",
        "Party",
        {"first": 3},
        Window(0, 3),
    )
    assert [node.name.value for node in parties.nodes] == ["node"]
    # Only totalCount: no node selected, so only the length is read, of a default page.
    assert (transactions.args, transactions.nodes, transactions.window) == ({"first": 7}, [], NO_ROWS)
    party = plan.selection(info, "Party", parties.nodes)
    assert party.reads == ("party_identifier",)
    [claims] = party.lists
    assert (claims.shard, claims.args, claims.window) == ("party_claims", {"last": 2}, NO_ROWS)


def test_a_selection_without_required_fields_reads_the_type_shard() -> None:
    info, plan = root_info('{ claim(id: "x") { id __typename } }', {}), Plan(INSURANCE, Limits())
    selection = plan.selection(info, "Claim", info.field_nodes)
    assert (selection.shards, selection.required, selection.reads) == ((), (), (TYPE_SHARD,))


def test_lock_ahead_names_every_shard_of_a_deep_query_and_none_of_a_shallow_one() -> None:
    info, plan = root_info(DEEP, {"n": 3}), Plan(INSURANCE, Limits())
    ahead = plan.ahead(info, [Batch("Claim", [1], info.field_nodes)])
    assert set(ahead) == {
        "claim_identifier",
        "claim_parties",
        "claim_transactions",
        "party_identifier",
        "party_claims",
    }
    assert plan.ahead(info, [Batch("Claim", [], info.field_nodes)]) == ()  # no node: nothing to read
    shallow = root_info(
        '{ claim(id: "x") { claimIdentifier transactions: transactionsConnection { totalCount } } }', {}
    )
    assert plan.ahead(shallow, [Batch("Claim", [1], shallow.field_nodes)]) == ()  # one level
