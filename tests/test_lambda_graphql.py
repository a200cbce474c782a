"""The GraphQL Lambda handler, called in process with real event payloads: Lambda Function URL,
API Gateway HTTP API (v2) and REST API (v1)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from _locks import held_locks
from _workers import ExclusiveLock

from efs_sqlite.app import GRAPHQL_RESPONSE, JSON
from efs_sqlite.aws.fakes import LambdaContext, function_url_event, import_handler

QUERY = (
    "query($id: ID!) { claim(id: $id) { claimIdentifier timestamp "
    "parties: partiesConnection(first: 2) { totalCount } } }"
)
EXPECTED = {
    "claim": {
        "claimIdentifier": 4242,
        "timestamp": "2024-03-01T09:30:00+00:00",
        "parties": {"totalCount": 10},
    }
}


@pytest.fixture
def lam(insurance: Any) -> Iterator[ModuleType]:
    insurance.store.close()
    module = import_handler("graphql", insurance.root)
    yield module
    module.store.close()


def http_api_event(
    body: str | None = None, *, method: str, query: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """An API Gateway HTTP API invocation (payload format 2.0, route ``ANY /graphql``)."""
    event = function_url_event(body, method=method, query=query or {})
    event["routeKey"] = "ANY /graphql"
    event["headers"]["host"] = "r4nd0m1d.execute-api.us-east-1.amazonaws.com"
    event["headers"]["content-length"] = str(len(body or ""))
    event["cookies"] = []
    event["requestContext"] = {
        "accountId": "123456789012",
        "apiId": "r4nd0m1d",
        "domainName": "r4nd0m1d.execute-api.us-east-1.amazonaws.com",
        "domainPrefix": "r4nd0m1d",
        "http": event["requestContext"]["http"],
        "requestId": "JKJaXmPLvHcESHA=",
        "routeKey": "ANY /graphql",
        "stage": "$default",
        "time": "28/Nov/2026:06:00:00 +0000",
        "timeEpoch": 1795759200000,
    }
    return event


def rest_api_event(
    body: str | None = None,
    *,
    method: str,
    query: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway REST API proxy invocation (payload format 1.0, stage ``prod``)."""
    headers = {
        "Accept": "application/json",
        **{k.title(): v for k, v in (headers or {}).items()},  # API Gateway's spelling: Accept
        "Content-Type": "application/json",
        "Host": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
        "User-Agent": "python-httpx/0.28.1",
        "X-Amzn-Trace-Id": "Root=1-6747f660-0d3e0ea06f5a9bd46e1d4a7b",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    }
    return {
        "resource": "/graphql",
        "path": "/graphql",
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": dict(query) if query else None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "a1b2c3d4e5",
            "domainName": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "a1b2c3d4e5",
            "extendedRequestId": "JKJaXmPLvHcESHA=",
            "httpMethod": method,
            "identity": {
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "sourceIp": "203.0.113.7",
                "user": None,
                "userAgent": "python-httpx/0.28.1",
                "userArn": None,
            },
            "path": "/prod/graphql",
            "protocol": "HTTP/1.1",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "requestTime": "28/Nov/2026:06:00:00 +0000",
            "requestTimeEpoch": 1795759200000,
            "resourceId": "x1y2z3",
            "resourcePath": "/graphql",
            "stage": "prod",
        },
        "body": body,
        "isBase64Encoded": False,
    }


def invoke(lam: ModuleType, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = lam.handler(event, LambdaContext("efs-sqlite-graphql"))
    accept = {k.lower(): v for k, v in event["headers"].items()}.get("accept", "")
    media_type = GRAPHQL_RESPONSE if accept.startswith(GRAPHQL_RESPONSE) else JSON
    assert response["headers"]["content-type"].startswith(media_type)
    body = base64.b64decode(response["body"]) if response["isBase64Encoded"] else response["body"].encode()
    return response["statusCode"], json.loads(body)


def post_body(insurance: Any) -> str:
    return json.dumps({"query": QUERY, "variables": {"id": insurance.ids[insurance.claim]}})


@pytest.mark.parametrize("make", [function_url_event, http_api_event, rest_api_event])
def test_post_query(lam: ModuleType, insurance: Any, make: Any) -> None:
    assert invoke(lam, make(post_body(insurance), method="POST")) == (200, {"data": EXPECTED})


@pytest.mark.parametrize("make", [function_url_event, http_api_event, rest_api_event])
def test_get_query_and_refused_mutation(lam: ModuleType, insurance: Any, make: Any) -> None:
    query = {"query": QUERY, "variables": json.dumps({"id": insurance.ids[insurance.claim]})}
    assert invoke(lam, make(method="GET", query=query)) == (200, {"data": EXPECTED})
    mutation = {"query": f'mutation {{ deleteClaim(id: "{insurance.ids[insurance.claim]}") }}'}
    status, body = invoke(lam, make(method="GET", query=mutation))
    assert status == 405 and "must be sent with POST" in body["errors"][0]["message"]


def test_base64_encoded_body(lam: ModuleType, insurance: Any) -> None:
    assert invoke(lam, function_url_event(post_body(insurance), base64_body=True)) == (
        200,
        {"data": EXPECTED},
    )


@pytest.mark.parametrize("make", [function_url_event, rest_api_event])
def test_client_errors(lam: ModuleType, make: Any) -> None:
    status, body = invoke(lam, make("{not json", method="POST"))
    assert status == 400 and "not valid JSON" in body["errors"][0]["message"]
    invalid = json.dumps({"query": "{ " + "a { " * 6 + "b" + " }" * 6 + " }"})
    status, body = invoke(lam, make(invalid, method="POST", headers={"accept": GRAPHQL_RESPONSE}))
    assert status == 400 and "Cannot query field 'a'" in body["errors"][0]["message"]
    # A legacy client (application/json, the default) reads the same errors from a 200.
    status, body = invoke(lam, make(invalid, method="POST"))
    assert status == 200 and "Cannot query field 'a'" in body["errors"][0]["message"] and "data" not in body
    oversized = json.dumps({"query": "{ __typename }", "variables": {"pad": "x" * 1_000_000}})
    status, body = invoke(lam, make(oversized, method="POST"))
    assert status == 413 and "over the limit" in body["errors"][0]["message"]


def test_mutation_then_query(lam: ModuleType, insurance: Any) -> None:
    create = (
        'mutation { createParty(input: {partyIdentifier: 77, timestamp: "2024-02-02T00:00:00Z"}) { id } }'
    )
    status, body = invoke(lam, function_url_event(json.dumps({"query": create})))
    assert status == 200
    new = body["data"]["createParty"]["id"]
    query = json.dumps({"query": f'{{ node(id: "{new}") {{ ... on Party {{ partyIdentifier }} }} }}'})
    assert invoke(lam, rest_api_event(query, method="POST")) == (
        200,
        {"data": {"node": {"partyIdentifier": 77}}},
    )


def test_warm_invocations_reuse_the_init_state(lam: ModuleType, insurance: Any) -> None:
    api = lam.app.state.api
    invoke(lam, function_url_event(post_body(insurance)))
    connections, info = lam.store.open_connections, api.cache_info()
    for _ in range(3):
        assert invoke(lam, function_url_event(post_body(insurance))) == (200, {"data": EXPECTED})
    assert lam.app.state.api is api
    assert lam.store.open_connections == connections  # no file is reopened
    after = api.cache_info()
    assert (after["hits"] - info["hits"], after["parsed"] - info["parsed"]) == (3, 0)


def test_a_missing_mount_fails_the_init(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        import_handler("graphql", tmp_path / "not-mounted")


def test_a_request_that_runs_out_of_time_answers_503_and_leaves_no_lock_nor_write(
    lam: ModuleType, insurance: Any
) -> None:
    """Another process holds the shards the requests need. The invocation has 1.5 s left, less the
    handler's margin: the request stops waiting at its deadline (well before the store's 5 s busy
    timeout), answers 503 with Retry-After, holds no lock and wrote nothing."""
    assert invoke(lam, function_url_event(post_body(insurance))) == (200, {"data": EXPECTED})  # warm
    create = (
        'mutation { createParty(input: {partyIdentifier: 77, timestamp: "2024-02-02T00:00:00Z"}) { id } }'
    )
    parties = lam.store.count("party_identifier")
    short = LambdaContext("efs-sqlite-graphql", remaining_ms=1_500)
    # Another process holds a shard the query reads, and one the mutation writes.
    with ExclusiveLock(lam.store.path("claim_identifier")), ExclusiveLock(lam.store.path("party_identifier")):
        for event in (
            function_url_event(post_body(insurance)),
            function_url_event(json.dumps({"query": create})),
        ):
            response = lam.handler(event, short)
            assert response["statusCode"] == 503 and response["headers"]["retry-after"] == "1"
            assert "until the request's deadline" in json.loads(response["body"])["errors"][0]["message"]
            assert held_locks(os.getpid(), insurance.root) == []
        # With no time left at all, a mutation does not begin.
        response = lam.handler(
            function_url_event(json.dumps({"query": create})), LambdaContext(remaining_ms=500)
        )
        assert response["statusCode"] == 503 and "before a write" in response["body"]
    assert lam.store.count("party_identifier") == parties == 10
    assert lam.store.count("_type") == 14
    assert held_locks(os.getpid(), insurance.root) == []
    assert invoke(lam, function_url_event(post_body(insurance))) == (200, {"data": EXPECTED})


def test_the_handler_serves_a_dynamodb_table(
    insurance: Any, dynamo_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from efs_sqlite.dynamodb import local_endpoint
    from efs_sqlite.loader import dump, load

    load(dynamo_store, dump(insurance.store), progress=False)
    for name, value in {
        "DYNAMODB_TABLE": dynamo_store.table,
        "AWS_ENDPOINT_URL": local_endpoint(),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    lam = import_handler("graphql", Path("/no/mount/needed"))
    try:
        assert type(lam.store).__name__ == "DynamoStore"
        assert invoke(lam, function_url_event(post_body(insurance), method="POST")) == (
            200,
            {"data": EXPECTED},
        )
        event = function_url_event(post_body(insurance), method="POST")
        event["headers"]["x-efs-ops"] = "1"
        # As on EFS, the Lambda handler reports no per-request operations (docs/SECURITY.md, row 14).
        assert invoke(lam, event) == (200, {"data": EXPECTED})
    finally:
        lam.store.close()
