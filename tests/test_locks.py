"""No lock outlives a request, and the EFS lock quotas are respected.

A Lambda environment is frozen between invocations: a lock it still held would block every writer
of that shard until EFS expires its NFS lease. So after every kind of request — reads, the
lock-ahead of ``parallel_reads`` (on by default on EFS), mutations, errors, busy shards, deadlines
— the process must hold no fcntl lock, as ``/proc/locks`` shows (reader lanes are threads of the
same process). The other holder of a busy shard is a real process (``_workers.ExclusiveLock``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

import _workers as wk
import pytest
from _locks import held_locks

from efs_sqlite.deadline import Deadline
from efs_sqlite.errors import DeadlineExceeded, LockQuotaExceeded, StoreError
from efs_sqlite.graph import Graph
from efs_sqlite.graphql import GraphQLAPI
from efs_sqlite.hooks import StoreOp
from efs_sqlite.lock_quota import EFS, LockQuota
from efs_sqlite.model import INSURANCE, Field, Model, NodeType
from efs_sqlite.store import ShardStore

#: Two levels (a claim, its parties): with parallel_reads, locked ahead.
CLAIM_WITH_PARTIES = """query($id: ID!) { claim(id: $id) { claimIdentifier claimTypeCode
  parties: partiesConnection(first: 5) { totalCount edges { node { partyIdentifier timestamp } } } } }"""
BUSY_SHARD = "party_identifier"


class Sampler:
    """A store hook that, at each read of a value on a reader thread, notes the locks this process
    holds and each lock-ahead's answer: the test of "no lock afterwards" can fail."""

    def __init__(self) -> None:
        self.during: list[int] = []
        self.began: dict[str, bool] = {}
        self.fail: str | None = None

    @contextlib.contextmanager
    def observe(self, op: StoreOp) -> Iterator[None]:
        if op.name == "get_many" and threading.current_thread().name.startswith("efs-sqlite-read"):
            self.during.append(len(held_locks(os.getpid())))
        if op.name == "get_many" and op.shard == self.fail:
            raise RuntimeError(f"injected into a read of {op.shard}")
        yield
        if op.name == "begin_read" and op.error is None and op.shard is not None:
            self.began[op.shard] = op.result


@pytest.fixture
def sampler() -> Sampler:
    return Sampler()


def _api(request: Any, insurance: Any, sampler: Sampler, busy_timeout_ms: int) -> Iterator[GraphQLAPI]:
    insurance.store.close()
    store = ShardStore(insurance.root, busy_timeout_ms=busy_timeout_ms, hook=sampler)
    api = GraphQLAPI(store, parallel_reads=request.param)
    yield api
    api.close()
    store.close()


@pytest.fixture(params=[True, False], ids=["lock-ahead", "sequential"])
def api(request: Any, insurance: Any, sampler: Sampler) -> Iterator[GraphQLAPI]:
    yield from _api(request, insurance, sampler, busy_timeout_ms=200)


@pytest.fixture(params=[True, False], ids=["lock-ahead", "sequential"])
def patient_api(request: Any, insurance: Any, sampler: Sampler) -> Iterator[GraphQLAPI]:
    """A busy timeout far past the tests' deadlines: the deadline is what ends each wait."""
    yield from _api(request, insurance, sampler, busy_timeout_ms=60_000)


def assert_no_lock(api: GraphQLAPI) -> None:
    assert held_locks(os.getpid(), api.store.root) == []


def claim(insurance: Any) -> dict[str, Any]:
    return {"id": insurance.ids[insurance.claim]}


def test_reads_leave_no_lock(api: GraphQLAPI, insurance: Any, sampler: Sampler) -> None:
    for _ in range(2):  # cold, then warm
        result = api.execute(CLAIM_WITH_PARTIES, claim(insurance))
        assert result["data"]["claim"]["parties"]["totalCount"] == 10
        assert_no_lock(api)
    node = f'{{ node(id: "{insurance.ids[insurance.parties[0]]}") {{ id }} }}'
    assert "errors" not in api.execute(node)
    assert_no_lock(api)
    if api.parallel_reads:
        # The lock-ahead held every shard of the query while the levels read: locks were there.
        assert sampler.began and all(sampler.began.values())
        assert max(sampler.during) >= len(sampler.began)


def test_mutations_leave_no_lock(api: GraphQLAPI, insurance: Any) -> None:
    create = 'mutation { createParty(input: {partyIdentifier: 7, timestamp: "2024-01-01T00:00:00Z"}) { id } }'
    new = api.execute(create)["data"]["createParty"]["id"]
    assert_no_lock(api)
    claim_id = insurance.ids[insurance.claim]
    for mutation in (
        f'mutation {{ addClaimParties(id: "{claim_id}", ids: ["{new}"]) '
        "{ parties: partiesConnection { totalCount } } }",
        f'mutation {{ updateParty(id: "{new}", input: {{partyIdentifier: 8}}) {{ partyIdentifier }} }}',
        f'mutation {{ removeClaimParties(id: "{claim_id}", ids: ["{new}"]) {{ claimIdentifier }} }}',
        f'mutation {{ deleteParty(id: "{new}") }}',
    ):
        result = api.execute(mutation)
        assert "errors" not in result, result
        assert_no_lock(api)


def test_errors_leave_no_lock(api: GraphQLAPI, insurance: Any, sampler: Sampler) -> None:
    for query, variables in (
        (CLAIM_WITH_PARTIES, {"id": insurance.ids[insurance.parties[0]]}),  # a Party, not a Claim
        (CLAIM_WITH_PARTIES, {"id": "not-an-id"}),
        ("{ claim(id: 1) { nope } }", None),  # invalid: never executed
        ('mutation { updateParty(id: "0000000000A", input: {partyIdentifier: 1}) { id } }', None),
    ):
        assert "errors" in api.execute(query, variables)
        assert_no_lock(api)
    sampler.fail = "party_timestamp"  # a read failing while the lock-ahead holds every shard
    result = api.execute(CLAIM_WITH_PARTIES, claim(insurance))
    assert result["errors"][0]["message"] == "internal error"
    assert_no_lock(api)


def test_busy_shards_leave_no_lock(api: GraphQLAPI, insurance: Any, sampler: Sampler) -> None:
    party = insurance.ids[insurance.parties[0]]
    with wk.ExclusiveLock(api.store.path(BUSY_SHARD)):
        result = api.execute(CLAIM_WITH_PARTIES, claim(insurance))
        assert "stayed locked" in result["errors"][0]["message"]
        assert_no_lock(api)
        if api.parallel_reads:
            assert sampler.began[BUSY_SHARD] is False  # the lock-ahead found it busy and let go
        result = api.execute(
            f'mutation {{ updateParty(id: "{party}", input: {{partyIdentifier: 1}}) {{ id }} }}'
        )
        assert "stayed locked" in result["errors"][0]["message"]
        assert_no_lock(api)
    assert api.execute(CLAIM_WITH_PARTIES, claim(insurance))["data"]["claim"]["parties"]["totalCount"] == 10
    assert_no_lock(api)


def test_a_deadline_running_out_leaves_no_lock_and_no_write(patient_api: GraphQLAPI, insurance: Any) -> None:
    api = patient_api
    party = insurance.ids[insurance.parties[0]]
    with wk.ExclusiveLock(api.store.path(BUSY_SHARD)):
        with pytest.raises(DeadlineExceeded, match="until the request's deadline"):
            api.execute(CLAIM_WITH_PARTIES, claim(insurance), deadline=Deadline.after(0.3))
        assert_no_lock(api)
        update = f'mutation {{ updateParty(id: "{party}", input: {{partyIdentifier: 1}}) {{ id }} }}'
        with pytest.raises(DeadlineExceeded):
            api.execute(update, deadline=Deadline.after(0.3))
        assert_no_lock(api)
    with pytest.raises(DeadlineExceeded, match="before a write"):  # passed already: nothing begins
        api.execute(update, deadline=Deadline.after(-1))
    assert_no_lock(api)
    assert insurance.graph.get_node(insurance.parties[0])["identifier"] == 100  # nothing written


def test_a_deadline_after_a_committed_field_answers_it_with_an_error_for_the_rest(insurance: Any) -> None:
    """A mutation of two fields: the first commits, the second finds its shard locked until the
    deadline. The first is acknowledged (data), the second is an error: no 503 that would make the
    client retry (and repeat) the first."""
    first, second = insurance.ids[insurance.parties[0]], insurance.ids[insurance.transactions[0]]
    mutation = f"""mutation {{
      a: updateParty(id: "{first}", input: {{partyIdentifier: 1}}) {{ partyIdentifier }}
      b: updateTransaction(id: "{second}", input: {{amount: "1.00"}}) {{ id }} }}"""
    api = GraphQLAPI(ShardStore(insurance.root, busy_timeout_ms=60_000))
    with wk.ExclusiveLock(api.store.path("transaction_amount")):
        result = api.execute(mutation, deadline=Deadline.after(0.3))
    assert result["data"] == {"a": {"partyIdentifier": 1}, "b": None}
    assert "deadline" in result["errors"][0]["message"]
    assert_no_lock(api)
    api.store.close()


# -- EFS lock quotas -------------------------------------------------------------------------------


def wide_model(fields: int) -> Model:
    return Model([NodeType("Wide", [Field(f"f{i}", "str") for i in range(fields)])])


def test_the_store_knows_how_many_files_one_process_may_lock(tmp_path: Any) -> None:
    with ShardStore(tmp_path) as store:
        assert store.max_locked_files == EFS.files_per_process == 256
        assert EFS.processes_per_file == 170
    # The insurance model fits; every shard of it may be locked at once by one query or write.
    assert len(INSURANCE.shards()) <= EFS.files_per_process


def test_a_model_that_could_pass_the_lock_quota_is_refused(tmp_path: Any) -> None:
    with ShardStore(tmp_path) as store:
        Graph(store, wide_model(EFS.files_per_process - 1))  # + the _type shard: exactly at the quota
        with pytest.raises(
            LockQuotaExceeded, match="257 files, but one process may hold locks on at most 256"
        ):
            Graph(store, wide_model(EFS.files_per_process))
        with pytest.raises(LockQuotaExceeded):
            GraphQLAPI(store, wide_model(300))


def test_a_grouped_write_past_a_configured_quota_is_refused_and_writes_nothing(tmp_path: Any) -> None:
    small = LockQuota(file_process_pairs=4)
    with ShardStore(tmp_path, lock_quota=small) as store:
        assert store.max_locked_files == 4
        with pytest.raises(LockQuotaExceeded), store.write() as w:
            for i in range(5):
                w.insert(f"s{i}", 1, "x")
        assert store.shards() == []
        with store.write() as w:
            for i in range(4):
                w.insert(f"s{i}", 1, "x")
        assert len(store.shards()) == 4
        with pytest.raises(LockQuotaExceeded):
            Graph(store)  # the insurance model has more shards than 4
    assert issubclass(LockQuotaExceeded, StoreError)


def test_deploy_refuses_a_reserved_concurrency_past_the_per_file_quota(capsys: Any) -> None:
    from efs_sqlite.cli import main

    assert main(["deploy", "--stack", "demo", "--reserved-concurrency", "171", "--dry-run"]) == 1
    assert "reserved concurrency: 171 processes, but at most 170" in capsys.readouterr().err
