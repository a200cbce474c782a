"""DynamoStore on the in-process moto server: the calls it makes and their capacity, unprocessed
keys and items, throttling, DynamoDB's limits, optimistic list writes. Faults are injected through
botocore's event system on the store's own client; every other request reaches moto over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import fresh_dynamo_store

from efs_sqlite.backend import LevelReader
from efs_sqlite.dynamodb import DynamoStore, make_client
from efs_sqlite.dynamodb.calls import Calls
from efs_sqlite.errors import GroupTooLarge, ItemTooLarge, StoreBusy, StoreError, UIDCollision
from efs_sqlite.graph import Graph


def on(store: DynamoStore, event: str, handler: Callable[..., Any]) -> None:
    store.client.meta.events.register(event, handler)


def operations(calls: Calls) -> list[tuple[str, int]]:
    return [(c.operation, c.items) for c in calls.calls]


# -- reads ---------------------------------------------------------------------------------------


def test_get_many_is_one_batch_get_per_100_keys_sent_at_once(dynamo_store: DynamoStore) -> None:
    dynamo_store.bulk_insert("claim_type_code", [(i, "MOTOR") for i in range(250)])
    dynamo_store.read_your_writes_s = 0  # eventually consistent reads right away
    with dynamo_store.accounting() as calls:
        found = dynamo_store.get_many("claim_type_code", range(250))
    assert len(found) == 250
    assert sorted(operations(calls)) == [("BatchGetItem", 50), ("BatchGetItem", 100), ("BatchGetItem", 100)]
    assert len({c.wave for c in calls.calls}) == 1  # sent together: one wave
    # Each item is 2 + (1-3 digit id: 2-3) + 1 + 15 + 1 + 5 bytes, under 4 KB: half a unit each (eventual).
    assert calls.read_units == 125.0


def test_consistent_reads_cost_twice(dynamo_store: DynamoStore) -> None:
    dynamo_store.insert("s", 1, "x")
    dynamo_store.read_your_writes_s = 0
    strong = DynamoStore(dynamo_store.table, client=dynamo_store.client, consistent_reads=True)
    with dynamo_store.accounting() as eventual, strong.accounting() as consistent:
        dynamo_store.get("s", 1)
        strong.get("s", 1)
    assert (eventual.read_units, consistent.read_units) == (0.5, 1.0)
    strong.close()


def test_a_list_page_is_one_query_with_a_limit_and_a_deep_page_costs_the_same(
    dynamo_store: DynamoStore,
) -> None:
    dynamo_store.bulk_lists("claim_parties", [(1, list(range(2000)))])
    seen: list[dict[str, Any]] = []
    on(dynamo_store, "provide-client-params.dynamodb.Query", lambda params, **_: seen.append(dict(params)))
    with dynamo_store.accounting() as first:
        assert dynamo_store.list_window_many("claim_parties", [1], 0, 20) == ({1: 2000}, {1: list(range(20))})
    with dynamo_store.accounting() as deep:
        assert dynamo_store.list_page("claim_parties", 1, 1500, 20) == list(range(1500, 1520))
    assert operations(first) == [("BatchGetItem", 1), ("Query", 20)] or operations(first) == [
        ("Query", 20),
        ("BatchGetItem", 1),
    ]
    assert operations(deep) == [("Query", 20)]
    assert [p["Limit"] for p in seen] == [20, 20]
    assert [c.read_units for c in deep.calls] == [c.read_units for c in first.calls if c.operation == "Query"]


def test_unprocessed_keys_are_asked_again_until_none_is_left(dynamo_store: DynamoStore) -> None:
    dynamo_store.bulk_insert("s", [(i, i) for i in range(10)])
    dynamo_store.read_your_writes_s = 0
    rounds = iter([6, 3])  # keys DynamoDB "leaves unprocessed" in the first two answers

    def leave_some(parsed: dict[str, Any], **_: Any) -> None:
        n = next(rounds, 0)
        items = parsed["Responses"][dynamo_store.table]
        kept, left = items[n:], items[:n]
        parsed["Responses"][dynamo_store.table] = kept
        if left:
            keys = [{"id": i["id"], "f": i["f"]} for i in left]
            parsed["UnprocessedKeys"] = {dynamo_store.table: {"Keys": keys, "ConsistentRead": False}}

    on(dynamo_store, "after-call.dynamodb.BatchGetItem", leave_some)
    with dynamo_store.accounting() as calls:
        assert dynamo_store.get_many("s", range(10)) == {i: i for i in range(10)}
    assert operations(calls) == [("BatchGetItem", 10), ("BatchGetItem", 6), ("BatchGetItem", 3)]
    assert calls.read_units == 5.0  # each key charged once, when it was read
    assert len({c.wave for c in calls.calls}) == 3  # the rounds follow one another


def test_keys_left_unprocessed_for_good_raise_store_busy() -> None:
    store = fresh_dynamo_store(attempts=3, backoff_s=0.001)
    store.insert("s", 1, "x")

    def leave_all(parsed: dict[str, Any], **_: Any) -> None:
        items = parsed["Responses"].pop(store.table, [])
        parsed["Responses"][store.table] = []
        parsed["UnprocessedKeys"] = {store.table: {"Keys": [{"id": i["id"], "f": i["f"]} for i in items]}}

    on(store, "after-call.dynamodb.BatchGetItem", leave_all)
    with pytest.raises(StoreBusy, match=r"unprocessed .* after 3 attempts"):
        store.get_many("s", [1])
    store.close()


def test_a_thread_reads_its_own_writes_strongly_consistent_for_a_while(dynamo_store: DynamoStore) -> None:
    seen: list[bool] = []
    on(
        dynamo_store,
        "provide-client-params.dynamodb.GetItem",
        lambda params, **_: seen.append(params["ConsistentRead"]),
    )
    dynamo_store.put("s", 1, "x")
    assert dynamo_store.get("s", 1) == "x"  # right after its write: strongly consistent
    dynamo_store.read_your_writes_s = 0
    dynamo_store.get("s", 1)
    assert seen == [True, False]


# -- throttling ----------------------------------------------------------------------------------


def _throttled(times: int) -> Callable[..., Any]:
    """A before-send handler answering the first ``times`` requests with DynamoDB's throttling
    error (botocore's retry loop sees a real 400 answer), then letting requests through to moto."""
    from botocore.awsrequest import AWSResponse

    left = [times]

    class Raw:
        def __init__(self, body: bytes) -> None:
            self.body = body

        def stream(self, **_: Any) -> Iterator[bytes]:
            yield self.body

    def handler(request: Any, **_: Any) -> Any:
        if left[0] <= 0:
            return None
        left[0] -= 1
        body = json.dumps(
            {
                "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "message": "The level of configured provisioned throughput for the table was exceeded",
            }
        ).encode()
        response = AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.0"}, Raw(body))
        response._content = body
        return response

    return handler


def test_a_throttled_call_is_retried_by_botocore_and_counted(dynamo_store: DynamoStore) -> None:
    dynamo_store.insert("s", 1, "x")
    on(dynamo_store, "before-send.dynamodb.GetItem", _throttled(1))
    with dynamo_store.accounting() as calls:
        assert dynamo_store.get("s", 1) == "x"
    assert [(c.operation, c.retries) for c in calls.calls] == [("GetItem", 1)]


def test_a_call_throttled_past_the_retries_raises_store_busy(dynamo_store: DynamoStore) -> None:
    client = make_client(
        dynamo_store.client.meta.endpoint_url, "us-east-1", credentials=("t", "t"), max_attempts=2
    )
    store = DynamoStore(dynamo_store.table, client=client)
    store.insert("s", 1, "x")
    on(store, "before-send.dynamodb.BatchWriteItem", _throttled(10))
    with pytest.raises(StoreBusy, match=r"throttled BatchWriteItem .*ProvisionedThroughputExceeded"):
        store.bulk_insert("s", [(2, "y")], on_conflict="replace")
    assert dynamo_store.get("s", 2) is None
    store.close()


# -- writes --------------------------------------------------------------------------------------


def test_a_grouped_write_is_one_transaction_at_twice_the_units(dynamo_store: DynamoStore) -> None:
    with dynamo_store.accounting() as calls:
        Graph(dynamo_store).create_node(
            "Claim", {"identifier": 1, "type_code": "MOTOR", "timestamp": "2024-01-01"}
        )
    assert operations(calls) == [("TransactWriteItems", 4)]  # _type and three fields
    assert calls.write_units == 8.0  # four small items, 2 units each in a transaction
    with dynamo_store.accounting() as single:
        dynamo_store.put("s", 1, "x")
    assert operations(single) == [("PutItem", 1)] and single.write_units == 1.0


def test_unprocessed_items_are_sent_again(dynamo_store: DynamoStore) -> None:
    sent: list[int] = []
    held_back: list[dict[str, Any]] = []

    def hold_back(params: dict[str, Any], **_: Any) -> None:
        requests = params["RequestItems"][dynamo_store.table]
        sent.append(len(requests))
        if len(sent) == 1:  # the first call: 5 of its items "not processed" (not sent to moto at all)
            held_back[:] = requests[:5]
            params["RequestItems"][dynamo_store.table] = requests[5:]

    def report(parsed: dict[str, Any], **_: Any) -> None:
        if held_back:
            parsed["UnprocessedItems"] = {dynamo_store.table: list(held_back)}
            held_back.clear()

    on(dynamo_store, "provide-client-params.dynamodb.BatchWriteItem", hold_back)
    on(dynamo_store, "after-call.dynamodb.BatchWriteItem", report)
    with dynamo_store.accounting() as calls:
        dynamo_store.bulk_insert("s", [(i, i) for i in range(30)], on_conflict="replace")
    assert sent == [25, 5, 5]  # 25, the 5 unprocessed again, then the last 5 of the 30
    assert dynamo_store.get_many("s", range(30)) == {i: i for i in range(30)}
    assert calls.write_units == 30.0  # every item charged once, when it was written


def test_an_item_over_400_kb_is_refused_before_sending(dynamo_store: DynamoStore) -> None:
    big = "x" * (400 * 1024)
    with dynamo_store.accounting() as calls:
        with pytest.raises(ItemTooLarge, match="400 KB"):
            dynamo_store.insert("s", 1, big)
        with pytest.raises(ItemTooLarge), dynamo_store.write() as w:
            w.insert("s", 2, "small")
            w.insert("t", 2, big)
        with pytest.raises(ItemTooLarge):
            dynamo_store.bulk_insert("s", [(3, "small"), (4, big)])
    assert calls.calls == []  # nothing sent, not even a read
    assert dynamo_store.get_many("s", [1, 2, 3, 4]) == {}
    assert isinstance(ItemTooLarge("x"), ValueError) and isinstance(ItemTooLarge("x"), StoreError)
    # Under the limit (moto's own is 405,000 bytes, a little under AWS's 409,600).
    dynamo_store.insert("s", 5, "x" * 404_000)
    assert len(dynamo_store.get("s", 5)) == 404_000


def test_a_group_over_100_items_is_refused_not_split(dynamo_store: DynamoStore) -> None:
    with (
        dynamo_store.accounting() as calls,
        pytest.raises(GroupTooLarge, match="at most 100"),
        dynamo_store.write() as w,
    ):
        for uid in range(101):
            w.insert("s", uid, "x")
    assert calls.calls == [] and dynamo_store.count("s") == 0
    with pytest.raises(GroupTooLarge):  # a list of 100 entries is 100 items and a count item
        dynamo_store.list_extend("l", 1, range(100))
    assert dynamo_store.list_count("l", 1) == 0
    dynamo_store.list_extend("l", 1, range(99))
    assert dynamo_store.list_count("l", 1) == 99


def test_a_list_changed_meanwhile_fails_the_later_writer(dynamo_store: DynamoStore) -> None:
    dynamo_store.list_extend("l", 1, [1])
    other = DynamoStore(
        dynamo_store.table,
        client=make_client(dynamo_store.client.meta.endpoint_url, "us-east-1", credentials=("t", "t")),
    )
    first = [True]

    def write_meanwhile(**_: Any) -> None:  # after this writer read the list's count
        if first[0]:
            first[0] = False
            other.list_extend("l", 1, [2])

    on(dynamo_store, "after-call.dynamodb.BatchGetItem", write_meanwhile)
    with pytest.raises(StoreBusy, match="changed while it was being written"), dynamo_store.write() as w:
        w.list_extend("l", 1, [3])
        w.put("v", 1, "with it")
    assert dynamo_store.list_page("l", 1) == [1, 2] and dynamo_store.get("v", 1) is None
    other.close()


def test_an_insert_is_a_conditional_put(dynamo_store: DynamoStore) -> None:
    seen: list[dict[str, Any]] = []
    on(dynamo_store, "provide-client-params.dynamodb.PutItem", lambda params, **_: seen.append(dict(params)))
    dynamo_store.insert("s", 1, "x")
    with pytest.raises(UIDCollision):
        dynamo_store.insert("s", 1, "y")
    assert [p.get("ConditionExpression") for p in seen] == ["attribute_not_exists(id)"] * 2


# -- the table, the client, imports --------------------------------------------------------------


def test_a_missing_table_says_so_and_create_makes_it(dynamo_store: DynamoStore) -> None:
    missing = DynamoStore("no-such-table", client=dynamo_store.client)
    with pytest.raises(StoreError, match="'no-such-table' does not exist"):
        missing.get("s", 1)
    assert missing.healthy() is False
    assert missing.create_table() is True and missing.create_table() is False
    assert missing.healthy() is True
    dynamo_store.client.delete_table(TableName="no-such-table")
    missing.close()


@pytest.mark.usefixtures("no_aws_credentials")
def test_no_credentials_and_no_endpoint_say_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(StoreError, match=r"needs AWS credentials .*--endpoint-url"):
        make_client(None, "us-east-1")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(StoreError, match="needs a region"):
        make_client("http://127.0.0.1:1", None)


def test_boto3_is_not_imported_by_the_package_or_the_efs_path() -> None:
    code = (
        "import sys, efs_sqlite, efs_sqlite.app, efs_sqlite.graphql, efs_sqlite.loader, efs_sqlite.dynamodb\n"
        "print(sorted(m for m in ('boto3', 'botocore', 'moto') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "[]"


# -- the GraphQL layer's reads -------------------------------------------------------------------


def test_a_query_level_is_one_batch_get_and_its_pages_sent_at_once(
    insurance: Any, dynamo_store: DynamoStore
) -> None:
    from test_graphql import CLAIM_WITH_PARTIES

    from efs_sqlite.graphql import GraphQLAPI
    from efs_sqlite.loader import dump, load

    load(dynamo_store, dump(insurance.store), progress=False)
    assert isinstance(dynamo_store, LevelReader) and not isinstance(insurance.store, LevelReader)
    api = GraphQLAPI(dynamo_store)
    with dynamo_store.accounting() as calls:
        result = api.execute(CLAIM_WITH_PARTIES, {"id": insurance.ids[insurance.claim]})
    assert result == GraphQLAPI(insurance.store).execute(
        CLAIM_WITH_PARTIES, {"id": insurance.ids[insurance.claim]}
    )
    waves: dict[int, list[tuple[str, int]]] = {}
    for c in calls.calls:
        waves.setdefault(c.wave, []).append((c.operation, c.items))
    # The claim's three fields and its list's length in one BatchGetItem, with the page's Query;
    # then the ten parties' two fields in one BatchGetItem.
    assert [sorted(w) for w in waves.values()] == [
        [("BatchGetItem", 4), ("Query", 10)],
        [("BatchGetItem", 20)],
    ]
    assert calls.as_dict()["waves"] == 2
