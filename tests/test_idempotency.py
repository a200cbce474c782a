"""Idempotent mutations: a clientMutationId's receipt lands with the mutation, and a retry writes
nothing, even when the first answer was lost after the commit; it returns the first answer, kept
with the receipt, or (when that was never kept) the node as it is now (efs_sqlite.graphql.receipts).
The tests of the kept answer run on both backends."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from efs_sqlite.backend import StoreBackend
from efs_sqlite.errors import MutationIdReused
from efs_sqlite.graphql import GraphQLAPI
from efs_sqlite.graphql.receipts import (
    BY_HOUR,
    MAX_ANSWER,
    RECEIPTS,
    RETENTION_S,
    SWEEP,
    Answer,
    Outcome,
    Pending,
    keep_answer,
    key_of,
    mutate_once,
)
from efs_sqlite.hooks import StoreOp
from efs_sqlite.store import ShardStore

CREATE = """mutation($id: String) {
  createParty(input: {partyIdentifier: 5, timestamp: "2024-01-01"}, clientMutationId: $id) {
    id partyIdentifier
  }
}"""


class LoseTheAnswer:
    """A store hook that fails the first grouped write *after* it committed (the caller sees an
    I/O error, as if the connection dropped past the commit point), and counts the grouped writes."""

    def __init__(self) -> None:
        self.writes = 0
        self.armed = True

    @contextlib.contextmanager
    def observe(self, op: StoreOp) -> Iterator[None]:
        yield
        if op.name == "write" and op.error is None:
            self.writes += 1
            if self.armed:
                self.armed = False
                raise OSError("connection reset after the commit")


def party_count(store: ShardStore) -> int:
    return sum(1 for _, t in store.scan("_type", limit=10**6) if t == "Party")


def test_a_retry_after_a_lost_answer_returns_the_node_and_writes_nothing(tmp_path: Path) -> None:
    hook = LoseTheAnswer()
    api = GraphQLAPI(ShardStore(tmp_path / "store", hook=hook))
    first = api.execute(CREATE, {"id": "retry-1"})
    assert first["data"] == {"createParty": None}
    assert [e["message"] for e in first["errors"]] == ["internal error"]  # the answer was lost
    assert hook.writes == 1 and party_count(api.store) == 1  # ... but the commit landed
    retried = api.execute(CREATE, {"id": "retry-1"})
    assert hook.writes == 1 and party_count(api.store) == 1  # the retry wrote nothing
    party = retried["data"]["createParty"]
    assert party["partyIdentifier"] == 5 and api.store.get("_type", _decode(party["id"])) == "Party"
    assert retried["extensions"] == {"clientMutationIds": {"createParty": "retry-1"}}
    assert api.execute(CREATE, {"id": "retry-1"}) == retried  # and again
    assert api.execute(CREATE, {"id": None})["data"]["createParty"]["id"] != party["id"]  # without: new
    assert party_count(api.store) == 2


def test_without_a_client_mutation_id_nothing_is_recorded(tmp_path: Path) -> None:
    api = GraphQLAPI(ShardStore(tmp_path / "store"))
    answer = api.execute(CREATE)
    assert "extensions" not in answer and RECEIPTS not in api.store.shards()


def test_every_kind_of_mutation_is_idempotent(insurance: Any) -> None:
    api = GraphQLAPI(insurance.store)
    claim, party = insurance.ids[insurance.claim], insurance.ids[insurance.parties[0]]
    with_id = 'clientMutationId: "{}"'
    mutations = [
        f'mutation {{ updateParty(id: "{party}", input: {{partyIdentifier: 9}}, {with_id.format("u")}) '
        "{ id } }",
        f'mutation {{ removeClaimParties(id: "{claim}", ids: ["{party}"], {with_id.format("r")}) {{ id }} }}',
        f'mutation {{ addClaimParties(id: "{claim}", ids: ["{party}"], {with_id.format("a")}) {{ id }} }}',
        f'mutation {{ deleteClaim(id: "{claim}", cascade: true, {with_id.format("d")}) }}',
    ]
    for mutation in mutations:
        first = api.execute(mutation)
        assert "errors" not in first, first
        before = _digest(insurance.root)
        if "deleteClaim" in mutation:
            assert api.execute(mutation) == first  # the node is gone: the answer is the first one
        else:
            assert api.execute(mutation)["data"] == first["data"]
        assert _digest(insurance.root) == before  # the retry wrote nothing
    assert insurance.store.list_count("claim_parties", insurance.claim) == 0  # deleted


def test_an_id_sent_again_with_another_mutation_is_refused(tmp_path: Path) -> None:
    api = GraphQLAPI(ShardStore(tmp_path / "store"))
    api.execute(CREATE, {"id": "k"})
    other = CREATE.replace("partyIdentifier: 5", "partyIdentifier: 6")
    refused = api.execute(other, {"id": "k"})
    assert refused["data"] == {"createParty": None}
    assert "clientMutationId 'k' was already used" in refused["errors"][0]["message"]
    assert party_count(api.store) == 1


def test_racing_attempts_with_one_id_write_once(tmp_path: Path) -> None:
    """The receipt is an insert: an attempt that finds no receipt, then loses the race to another
    attempt's commit, collides, writes nothing and answers as a retry."""
    store = ShardStore(tmp_path / "store")
    made: list[int] = []

    def create(record: Any, racing: bool) -> int:
        if racing:  # the other attempt commits while this one is between its check and its write
            mutate_once(store, "race", "create", {}, lambda r: create(r, False))
        with store.write() as w:
            w.insert("party_identifier", len(made) + 1, 5)
            record(w, len(made) + 1)
        made.append(len(made) + 1)
        return made[-1]

    assert mutate_once(store, "race", "create", {}, lambda r: create(r, True)).result == 1
    assert made == [1] and store.count("party_identifier") == 1


def test_receipts_are_kept_24_hours_then_swept_on_write(tmp_path: Path) -> None:
    store = ShardStore(tmp_path / "store", synchronous="off")
    now = [1_800_000_000.0]
    count = [0]

    def write(record: Any) -> int:
        count[0] += 1
        with store.write() as w:
            w.put("party_identifier", count[0], count[0])
            record(w, count[0])
        return count[0]

    def run(client_id: str) -> int:
        return mutate_once(store, client_id, "create", {}, write, clock=lambda: now[0]).result

    old = [run(f"old-{i}") for i in range(SWEEP + 10)]
    now[0] += RETENTION_S - 60
    assert run("old-3") == old[3] and count[0] == SWEEP + 10  # within 24 h: the first result
    now[0] += 2 * 3600  # 24 h and more: the old hour is swept by the next writes with a receipt
    run("new-1")
    assert store.list_count(BY_HOUR, int(old_hour(1_800_000_000.0))) == SWEEP + 10  # SWEEP at a time
    swept = sum(store.get(RECEIPTS, key_of(f"old-{i}")) is None for i in range(SWEEP + 10))
    assert swept == SWEEP
    run("new-2")
    assert all(store.get(RECEIPTS, key_of(f"old-{i}")) is None for i in range(SWEEP + 10))
    assert store.list_count(BY_HOUR, int(old_hour(1_800_000_000.0))) == 0
    assert run("old-3") == count[0]  # past 24 h: a new mutation
    receipt = json.loads(store.get(RECEIPTS, key_of("new-1")))
    assert receipt[0] == "new-1" and receipt[3] == now[0]


def old_hour(t: float) -> int:
    return int(t) // 3600


def test_the_fingerprint_ignores_the_selection_not_the_arguments(tmp_path: Path) -> None:
    api = GraphQLAPI(ShardStore(tmp_path / "store"))
    first = api.execute(CREATE, {"id": "s"})["data"]["createParty"]
    other_selection = CREATE.replace("id partyIdentifier", "id timestamp")
    again = api.execute(other_selection, {"id": "s"})["data"]["createParty"]
    assert again == {"id": first["id"], "timestamp": "2024-01-01T00:00:00+00:00"}
    with pytest.raises(MutationIdReused):
        mutate_once(api.store, "s", "createParty", {"input": {}}, lambda r: None)


def _decode(text: str) -> int:
    from efs_sqlite.uid import decode

    return decode(text)


def _digest(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(Path(root).glob("*.sqlite"))}


# -- the first answer, kept with the receipt: on both backends (the ``backend`` fixture) -----------

PARTY = 'mutation { createParty(input: {partyIdentifier: 1, timestamp: "2024-01-01"}) { id } }'
CLAIM = """mutation($parties: [ID!]) {
  createClaim(input: {claimIdentifier: 1, claimTypeCode: "A", timestamp: "2024-01-01", parties: $parties}) {
    id
  }
}"""
PAGE = "partiesConnection { totalCount edges { node { id partyIdentifier } } }"


class Retried(NamedTuple):
    """A mutation with a clientMutationId; someone else's change, in between, to the node its
    answer names (``$n``); and a query of that node now, with the answer's selection."""

    mutation: str
    elsewhere: str
    now: str


RETRIED = {
    "create": Retried(
        """mutation($id: String, $claim: ID!) {
          createParty(input: {partyIdentifier: 5, timestamp: "2024-01-01", claims: [$claim]},
                      clientMutationId: $id) { id partyIdentifier claims { id } }
        }""",
        "mutation($n: ID!) { updateParty(id: $n, input: {partyIdentifier: 9}) { id } }",
        "query($n: ID!) { party(id: $n) { id partyIdentifier claims { id } } }",
    ),
    "update": Retried(
        """mutation($id: String, $party: ID!) {
          updateParty(id: $party, input: {partyIdentifier: 6}, clientMutationId: $id) { id partyIdentifier }
        }""",
        "mutation($n: ID!) { updateParty(id: $n, input: {partyIdentifier: 9}) { id } }",
        "query($n: ID!) { party(id: $n) { id partyIdentifier } }",
    ),
    "list edit": Retried(
        f"""mutation($id: String, $claim: ID!, $party: ID!) {{
          removeClaimParties(id: $claim, ids: [$party], clientMutationId: $id) {{ id {PAGE} }}
        }}""",
        "mutation($n: ID!, $other: ID!) { addClaimParties(id: $n, ids: [$other]) { id } }",
        f"query($n: ID!) {{ claim(id: $n) {{ id {PAGE} }} }}",
    ),
}
DYNAMODB_READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan"})


@contextlib.contextmanager
def writes_nothing(store: StoreBackend) -> Iterator[None]:
    """Fails unless the block writes nothing at all to ``store``, not even a value it held already:
    no SQLite file changes (every commit changes its file's header), no DynamoDB write call."""
    if isinstance(store, ShardStore):
        before = _digest(store.root)
        yield
        assert _digest(store.root) == before
        return
    with store.accounting() as calls:  # type: ignore[attr-defined]
        yield
    assert set(calls.counts) <= DYNAMODB_READS, calls.counts


def small_graph(api: GraphQLAPI) -> dict[str, str]:
    """A claim listing two parties (and they it): the variables of RETRIED."""
    party, other = (api.execute(PARTY)["data"]["createParty"]["id"] for _ in range(2))
    claim = api.execute(CLAIM, {"parties": [party]})["data"]["createClaim"]["id"]
    return {"claim": claim, "party": party, "other": other}


@pytest.mark.parametrize("mutation", RETRIED)
def test_a_retry_returns_the_first_answer_byte_for_byte_after_the_node_changed(
    backend: StoreBackend, mutation: str
) -> None:
    """The first response was lost after its answer was computed (and kept): the retry, after
    someone else changed the node, answers the first answer, not the node as it is now."""
    api, case = GraphQLAPI(backend), RETRIED[mutation]
    nodes = small_graph(api)
    variables = {"id": f"first-{mutation}", **nodes}
    first = api.execute(case.mutation, variables)
    assert "errors" not in first, first
    [answer] = first["data"].values()
    assert "errors" not in api.execute(case.elsewhere, {"n": answer["id"], "other": nodes["other"]})
    [now] = api.execute(case.now, {"n": answer["id"]})["data"].values()
    assert now != answer  # the node did change
    with writes_nothing(backend):
        retried = api.execute(case.mutation, variables)
    assert json.dumps(retried) == json.dumps(first)


def test_a_retry_with_another_mutation_under_the_same_id_is_refused(backend: StoreBackend) -> None:
    api = GraphQLAPI(backend)
    nodes = small_graph(api)
    variables = {"id": "once", **nodes}
    assert "errors" not in api.execute(RETRIED["update"].mutation, variables)
    other = RETRIED["update"].mutation.replace("partyIdentifier: 6", "partyIdentifier: 7")
    with writes_nothing(backend):
        refused = api.execute(other, variables)
        elsewhere = api.execute(RETRIED["create"].mutation, variables)  # another field altogether
    for answer, field in ((refused, "updateParty"), (elsewhere, "createParty")):
        assert answer["data"] == {field: None}
        assert "clientMutationId 'once' was already used" in answer["errors"][0]["message"]
    node = api.execute("query($p: ID!) { party(id: $p) { partyIdentifier } }", {"p": nodes["party"]})
    assert node["data"] == {"party": {"partyIdentifier": 6}}


def test_a_kept_answer_expires_with_its_receipt(backend: StoreBackend) -> None:
    now = [1_800_000_000.0]
    made: list[int] = []

    def write(record: Any) -> int:
        made.append(len(made) + 1)
        with backend.write() as w:
            w.put("party_identifier", made[-1], made[-1])
            record(w, made[-1])
        return made[-1]

    def attempt() -> Outcome:
        return mutate_once(backend, "kept", "create", {}, write, clock=lambda: now[0])

    first = attempt()
    assert first.receipt is not None and not first.retry
    assert keep_answer(backend, Pending(first.receipt, "{ id }"), {"id": "one"})
    now[0] += RETENTION_S - 1
    with writes_nothing(backend):
        retry = attempt()
    assert retry.retry and retry.result == 1 and retry.receipt is not None
    assert retry.receipt.answer_for("{ id }") == Answer("{ id }", {"id": "one"})
    now[0] += 2  # past 24 h: a new mutation, made again, without the old answer
    again = attempt()
    assert (again.retry, again.result, made) == (False, 2, [1, 2])
    assert again.receipt is not None and again.receipt.answer is None
    assert attempt().receipt.answer_for("{ id }") is None  # type: ignore[union-attr]


def test_an_answer_too_large_for_a_receipt_is_not_kept(backend: StoreBackend) -> None:
    first = mutate_once(backend, "big", "create", {}, lambda record: _receipt_only(backend, record))
    assert first.receipt is not None
    with writes_nothing(backend):
        assert not keep_answer(backend, Pending(first.receipt, ""), "x" * MAX_ANSWER)
    assert keep_answer(backend, Pending(first.receipt, ""), "x" * (MAX_ANSWER // 2))


def _receipt_only(store: StoreBackend, record: Any) -> int:
    with store.write() as w:
        record(w, 1)
    return 1


# -- the answer's own write failing: the retry falls back to the node as it is now ---------------


class FailTheAnswer:
    """A store hook that fails the put of an answer into its receipt with an I/O error, ``before``
    it is made or ``after`` it committed, and counts every write made."""

    def __init__(self, when: str) -> None:
        self.when = when
        self.writes = 0

    @contextlib.contextmanager
    def observe(self, op: StoreOp) -> Iterator[None]:
        answer = op.name == "put" and op.shard == RECEIPTS
        if answer and self.when == "before":
            raise OSError("connection reset before the answer was kept")
        yield
        if op.name in ("write", "put") and op.error is None:
            self.writes += 1
            if answer:
                raise OSError("connection reset after the answer was kept")


@pytest.mark.parametrize(("when", "retry_answers"), [("before", 9), ("after", 6)])
def test_an_io_error_keeping_the_answer(tmp_path: Path, when: str, retry_answers: int) -> None:
    """The first response is whole either way. Failed before its commit, the answer is not kept:
    the retry reads the node as it is now; failed after it, it is: the retry returns it."""
    hook = FailTheAnswer(when)
    api = GraphQLAPI(ShardStore(tmp_path / "store", hook=hook))
    nodes = small_graph(api)
    variables = {"id": f"io-{when}", **nodes}
    update = RETRIED["update"]
    first = api.execute(update.mutation, variables)
    assert first == {
        "data": {"updateParty": {"id": nodes["party"], "partyIdentifier": 6}},
        "extensions": {"clientMutationIds": {"updateParty": f"io-{when}"}},
    }
    api.execute(update.elsewhere, {"n": nodes["party"]})
    writes = hook.writes
    with writes_nothing(api.store):
        retried = api.execute(update.mutation, variables)
    assert hook.writes == writes  # nothing, not even the answer again
    assert retried["data"] == {"updateParty": {"id": nodes["party"], "partyIdentifier": retry_answers}}
