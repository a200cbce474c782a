"""The GraphQL Lambda handler, called in process with real event payloads: Lambda Function URL,
API Gateway HTTP API (v2) and REST API (v1)."""

from __future__ import annotations

import base64
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import pytest

HANDLER = Path(__file__).resolve().parent.parent / "lambdas" / "graphql" / "handler.py"
QUERY = "query($id: ID!) { claim(id: $id) { claimIdentifier timestamp parties(first: 2) { totalCount } } }"
EXPECTED = {
    "claim": {
        "claimIdentifier": 4242,
        "timestamp": "2024-03-01T09:30:00+00:00",
        "parties": {"totalCount": 10},
    }
}


class LambdaContext:
    """The attributes of the context object the Lambda Python runtime passes to a handler."""

    function_name = "efs-sqlite-graphql"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:efs-sqlite-graphql"
    memory_limit_in_mb = "1024"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    log_group_name = "/aws/lambda/efs-sqlite-graphql"
    log_stream_name = "2026/11/28/[$LATEST]0123456789abcdef0123456789abcdef"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 29_000


def load_handler(monkeypatch: pytest.MonkeyPatch, root: Path) -> ModuleType:
    """Import the handler module afresh, as a new execution environment's init phase does."""
    monkeypatch.setenv("MOUNT_PATH", str(root))
    spec = importlib.util.spec_from_file_location("lambda_graphql_handler_under_test", HANDLER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def lam(monkeypatch: pytest.MonkeyPatch, insurance: Any) -> Iterator[ModuleType]:
    insurance.store.close()
    module = load_handler(monkeypatch, insurance.root)
    yield module
    module.store.close()


def function_url_event(
    method: str, body: str | None = None, query: dict[str, str] | None = None, *, b64: bool = False
) -> dict[str, Any]:
    """A Lambda Function URL invocation (payload format 2.0, AuthType AWS_IAM)."""
    raw_query = urlencode(query or {})
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/graphql",
        "rawQueryString": raw_query,
        **({"queryStringParameters": dict(query)} if query else {}),
        "headers": {
            "accept": "application/json",
            "content-type": "application/json",
            "host": "k3x7onmpmakxqs6xdlkpdl3bzq0ozvxr.lambda-url.us-east-1.on.aws",
            "user-agent": "python-httpx/0.28.1",
            "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
            "x-amz-date": "20261128T060000Z",
            "x-amzn-trace-id": "Root=1-6747f660-0d3e0ea06f5a9bd46e1d4a7b",
            "x-forwarded-for": "203.0.113.7",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "k3x7onmpmakxqs6xdlkpdl3bzq0ozvxr",
            "authorizer": {
                "iam": {
                    "accessKey": "AKIAIOSFODNN7EXAMPLE",
                    "accountId": "123456789012",
                    "callerId": "AIDAJQABLZS4A3QDU576Q",
                    "cognitoIdentity": None,
                    "principalOrgId": None,
                    "userArn": "arn:aws:iam::123456789012:user/notebook",
                    "userId": "AIDAJQABLZS4A3QDU576Q",
                }
            },
            "domainName": "k3x7onmpmakxqs6xdlkpdl3bzq0ozvxr.lambda-url.us-east-1.on.aws",
            "domainPrefix": "k3x7onmpmakxqs6xdlkpdl3bzq0ozvxr",
            "http": {
                "method": method,
                "path": "/graphql",
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "python-httpx/0.28.1",
            },
            "requestId": "5fb7c5a7-1c22-4a8e-9a27-5a7a4b3c2d1e",
            "routeKey": "$default",
            "stage": "$default",
            "time": "28/Nov/2026:06:00:00 +0000",
            "timeEpoch": 1795759200000,
        },
        **(
            {"body": base64.b64encode(body.encode()).decode() if b64 else body, "isBase64Encoded": b64}
            if body is not None
            else {"isBase64Encoded": False}
        ),
    }


def http_api_event(
    method: str, body: str | None = None, query: dict[str, str] | None = None
) -> dict[str, Any]:
    """An API Gateway HTTP API invocation (payload format 2.0, route ``ANY /graphql``)."""
    event = function_url_event(method, body, query)
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
    method: str, body: str | None = None, query: dict[str, str] | None = None
) -> dict[str, Any]:
    """An API Gateway REST API proxy invocation (payload format 1.0, stage ``prod``)."""
    headers = {
        "Accept": "application/json",
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
    response = lam.handler(event, LambdaContext())
    assert response["headers"]["content-type"].startswith("application/json")
    body = base64.b64decode(response["body"]) if response["isBase64Encoded"] else response["body"].encode()
    return response["statusCode"], json.loads(body)


def post_body(insurance: Any) -> str:
    return json.dumps({"query": QUERY, "variables": {"id": insurance.ids[insurance.claim]}})


@pytest.mark.parametrize("make", [function_url_event, http_api_event, rest_api_event])
def test_post_query(lam: ModuleType, insurance: Any, make: Any) -> None:
    assert invoke(lam, make("POST", post_body(insurance))) == (200, {"data": EXPECTED})


@pytest.mark.parametrize("make", [function_url_event, http_api_event, rest_api_event])
def test_get_query_and_refused_mutation(lam: ModuleType, insurance: Any, make: Any) -> None:
    query = {"query": QUERY, "variables": json.dumps({"id": insurance.ids[insurance.claim]})}
    assert invoke(lam, make("GET", None, query)) == (200, {"data": EXPECTED})
    mutation = {"query": f'mutation {{ deleteClaim(id: "{insurance.ids[insurance.claim]}") }}'}
    status, body = invoke(lam, make("GET", None, mutation))
    assert status == 405 and "must be sent with POST" in body["errors"][0]["message"]


def test_base64_encoded_body(lam: ModuleType, insurance: Any) -> None:
    assert invoke(lam, function_url_event("POST", post_body(insurance), b64=True)) == (
        200,
        {"data": EXPECTED},
    )


@pytest.mark.parametrize("make", [function_url_event, rest_api_event])
def test_client_errors(lam: ModuleType, make: Any) -> None:
    status, body = invoke(lam, make("POST", "{not json"))
    assert status == 400 and "not valid JSON" in body["errors"][0]["message"]
    status, body = invoke(lam, make("POST", json.dumps({"query": "{ " + "a { " * 6 + "b" + " }" * 6 + " }"})))
    assert status == 400 and "Cannot query field 'a'" in body["errors"][0]["message"]
    oversized = json.dumps({"query": "{ __typename }", "variables": {"pad": "x" * 1_000_000}})
    status, body = invoke(lam, make("POST", oversized))
    assert status == 413 and "over the limit" in body["errors"][0]["message"]


def test_mutation_then_query(lam: ModuleType, insurance: Any) -> None:
    create = (
        'mutation { createParty(input: {partyIdentifier: 77, timestamp: "2024-02-02T00:00:00Z"}) { id } }'
    )
    status, body = invoke(lam, function_url_event("POST", json.dumps({"query": create})))
    assert status == 200
    new = body["data"]["createParty"]["id"]
    query = json.dumps({"query": f'{{ node(id: "{new}") {{ ... on Party {{ partyIdentifier }} }} }}'})
    assert invoke(lam, rest_api_event("POST", query)) == (200, {"data": {"node": {"partyIdentifier": 77}}})


def test_warm_invocations_reuse_the_init_state(lam: ModuleType, insurance: Any) -> None:
    api = lam.app.state.api
    invoke(lam, function_url_event("POST", post_body(insurance)))
    connections, info = lam.store.open_connections, api.cache_info()
    for _ in range(3):
        assert invoke(lam, function_url_event("POST", post_body(insurance))) == (200, {"data": EXPECTED})
    assert lam.app.state.api is api
    assert lam.store.open_connections == connections  # no file is reopened
    after = api.cache_info()
    assert (after["hits"] - info["hits"], after["parsed"] - info["parsed"]) == (3, 0)


def test_a_missing_mount_fails_the_init(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_handler(monkeypatch, tmp_path / "not-mounted")
