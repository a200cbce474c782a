"""Idempotent mutations: a clientMutationId's receipt lands with the mutation, and a retry writes
nothing, even when the first answer was lost after the commit (efs_sqlite.graphql.receipts)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from efs_sqlite.errors import MutationIdReused
from efs_sqlite.graphql import GraphQLAPI
from efs_sqlite.graphql.receipts import BY_HOUR, RECEIPTS, RETENTION_S, SWEEP, idempotent, key_of
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
            idempotent(store, "race", "create", {}, lambda r: create(r, False))
        with store.write() as w:
            w.insert("party_identifier", len(made) + 1, 5)
            record(w, len(made) + 1)
        made.append(len(made) + 1)
        return made[-1]

    assert idempotent(store, "race", "create", {}, lambda r: create(r, True)) == 1
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
        return idempotent(store, client_id, "create", {}, write, clock=lambda: now[0])

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
        idempotent(api.store, "s", "createParty", {"input": {}}, lambda r: None)


def _decode(text: str) -> int:
    from efs_sqlite.uid import decode

    return decode(text)


def _digest(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(Path(root).glob("*.sqlite"))}
