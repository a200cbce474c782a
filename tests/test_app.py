"""The Starlette app: GraphQL over HTTP, its errors, the schema and health routes, and
``efs-sqlite serve`` as a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from efs_sqlite.app import GRAPHQL_RESPONSE, JSON, create_app
from efs_sqlite.efs_model import EFSModel
from efs_sqlite.graphql import schema_sdl
from efs_sqlite.store import ShardStore

#: The Accept header the spec tells a client to send; and each media type's Content-Type.
SPEC_ACCEPT = {"accept": f"{GRAPHQL_RESPONSE}, {JSON};q=0.9"}
CONTENT_TYPE = {JSON: JSON, GRAPHQL_RESPONSE: f"{GRAPHQL_RESPONSE}; charset=utf-8"}
QUERY = (
    "query($id: ID!) { claim(id: $id) { claimIdentifier "
    "parties: partiesConnection(first: 2) { totalCount } } }"
)
CREATE_PARTY = 'mutation { createParty(input: {partyIdentifier: 5, timestamp: "2024-01-01"}) { id } }'


def call(app: Any, method: str, path: str, *, no_accept: bool = False, **kwargs: Any) -> httpx.Response:
    """One request to the ASGI app, in process; an exception the app re-raises after answering
    (as Starlette does for a 500, so that servers log it) is left to the app, as a server would.
    httpx sends ``Accept: */*`` unless ``no_accept``."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            if no_accept:
                del client.headers["accept"]
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


@pytest.fixture
def app(insurance: Any) -> Any:
    return create_app(insurance.store)


def assert_json_error(response: httpx.Response, status: int, message: str, media_type: str = JSON) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == CONTENT_TYPE[media_type]
    body = response.json()
    assert "data" not in body
    assert message in body["errors"][0]["message"], body
    assert "Traceback" not in response.text


def test_post_a_query(app: Any, insurance: Any) -> None:
    r = call(
        app, "POST", "/graphql", json={"query": QUERY, "variables": {"id": insurance.ids[insurance.claim]}}
    )
    assert r.status_code == 200
    assert r.json() == {"data": {"claim": {"claimIdentifier": 4242, "parties": {"totalCount": 10}}}}


def test_post_with_an_operation_name(app: Any, insurance: Any) -> None:
    body = {
        "query": "query A { __typename } query B($id: ID!) { party(id: $id) { partyIdentifier } }",
        "operationName": "B",
        "variables": {"id": insurance.ids[insurance.parties[2]]},
    }
    assert call(app, "POST", "/graphql", json=body).json() == {"data": {"party": {"partyIdentifier": 102}}}


def test_get_a_query(app: Any, insurance: Any) -> None:
    params = {"query": QUERY, "variables": json.dumps({"id": insurance.ids[insurance.claim]})}
    r = call(app, "GET", "/graphql", params=params)
    assert r.status_code == 200
    assert r.json()["data"]["claim"]["claimIdentifier"] == 4242


def test_get_refuses_mutations(app: Any, insurance: Any) -> None:
    mutation = f'mutation {{ deleteClaim(id: "{insurance.ids[insurance.claim]}", cascade: true) }}'
    r = call(app, "GET", "/graphql", params={"query": mutation})
    assert_json_error(r, 405, "a mutation must be sent with POST")
    assert r.headers["allow"] == "POST"
    r = call(app, "GET", "/graphql", params={"query": mutation}, headers=SPEC_ACCEPT)
    assert_json_error(r, 405, "a mutation must be sent with POST")
    assert r.headers["allow"] == "POST"
    assert insurance.graph.type_of(insurance.claim) == "Claim"
    r = call(app, "POST", "/graphql", json={"query": mutation})
    assert r.status_code == 200 and r.json() == {"data": {"deleteClaim": insurance.ids[insurance.claim]}}
    assert insurance.graph.type_of(insurance.claim) is None


def test_a_missing_node_is_a_graphql_error_in_a_200(app: Any) -> None:
    r = call(app, "POST", "/graphql", json={"query": '{ claim(id: "00000000009") { id } }'})
    assert r.status_code == 200
    assert r.json()["data"] == {"claim": None}
    assert r.json()["errors"][0]["message"] == "no node has the id 00000000009"


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
        ({"content": b"\xff\xfe", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
        ({"json": ["query"]}, 400, "must be a JSON object"),
        ({"json": {"variables": {}}}, 400, "the request has no query"),
        ({"json": {"query": "{ __typename }", "variables": "x"}}, 400, "variables must be a JSON object"),
        (
            {"content": b"query=x", "headers": {"content-type": "application/x-www-form-urlencoded"}},
            415,
            "application/json",
        ),
    ],
)
def test_client_errors_are_4xx_json(app: Any, kwargs: dict[str, Any], status: int, message: str) -> None:
    assert_json_error(call(app, "POST", "/graphql", **kwargs), status, message)
    # Not a GraphQL request, so no GraphQL response: the same answer whatever the client accepts.
    kwargs = {**kwargs, "headers": {**kwargs.get("headers", {}), **SPEC_ACCEPT}}
    assert_json_error(call(app, "POST", "/graphql", **kwargs), status, message)


REFUSED = [
    ("{ claim(id: 1) { nope } }", {}, "Cannot query field 'nope'"),
    ("{", {}, "Syntax Error"),
    ("{ " + " ".join(f"a{i}: __typename" for i in range(1001)) + " }", {}, "the limit is 1000"),
    ("query($id: ID!) { claim(id: $id) { id } }", {"id": None}, "must not be null"),
    ("query A { a: __typename } query B { b: __typename }", {}, "Must provide operation name"),
]


@pytest.mark.parametrize(("query", "variables", "message"), REFUSED)
def test_refused_documents_are_400_in_the_spec_media_type(
    app: Any, query: str, variables: dict[str, Any], message: str
) -> None:
    """A request the server refuses to run (parse, validation, limits, variables, no operation):
    400 for a client that accepts the spec's media type, a 200 without ``data`` for a legacy one."""
    body = {"query": query, "variables": variables}
    for headers in (SPEC_ACCEPT, {"accept": GRAPHQL_RESPONSE}):
        assert_json_error(
            call(app, "POST", "/graphql", json=body, headers=headers), 400, message, GRAPHQL_RESPONSE
        )
    for headers in ({"accept": JSON}, {"accept": "*/*"}):
        assert_json_error(call(app, "POST", "/graphql", json=body, headers=headers), 200, message)
    assert_json_error(call(app, "POST", "/graphql", json=body, no_accept=True), 200, message)


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}; charset=utf-8", GRAPHQL_RESPONSE),
        (SPEC_ACCEPT["accept"], GRAPHQL_RESPONSE),
        (f"{JSON};q=0.5, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        (f"text/html, {GRAPHQL_RESPONSE};q=0.2, */*;q=0.1", GRAPHQL_RESPONSE),
        (JSON, JSON),
        (f"{GRAPHQL_RESPONSE};q=0.5, {JSON}", JSON),
        (f"{JSON}, {GRAPHQL_RESPONSE}", JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        ("text/html, */*;q=0.8", JSON),
        (f"*/*, {JSON};q=0", GRAPHQL_RESPONSE),
    ],
)
def test_the_media_type_follows_accept(app: Any, accept: str, media_type: str) -> None:
    r = call(app, "POST", "/graphql", json={"query": "{ __typename }"}, headers={"accept": accept})
    assert r.status_code == 200 and r.json() == {"data": {"__typename": "Query"}}
    assert r.headers["content-type"] == CONTENT_TYPE[media_type]
    assert r.headers["vary"] == "Accept"
    r = call(app, "GET", "/graphql", params={"query": "{ __typename }"}, headers={"accept": accept})
    expected = "text/html; charset=utf-8" if "text/html" in accept else CONTENT_TYPE[media_type]
    assert r.status_code == 200 and r.headers["content-type"] == expected  # a browser gets the IDE


def test_no_accept_is_json(app: Any) -> None:
    r = call(app, "POST", "/graphql", json={"query": "{ __typename }"}, no_accept=True)
    assert "accept" not in r.request.headers
    assert r.status_code == 200 and r.headers["content-type"] == JSON


@pytest.mark.parametrize(
    "accept", ["text/html", "image/png, text/plain", f"{JSON};q=0, {GRAPHQL_RESPONSE};q=0"]
)
def test_unacceptable_is_406(app: Any, accept: str) -> None:
    r = call(app, "POST", "/graphql", json={"query": "{ __typename }"}, headers={"accept": accept})
    assert_json_error(r, 406, "none is acceptable")
    if "text/html" not in accept:  # a GET that accepts HTML gets the IDE
        r = call(app, "GET", "/graphql", params={"query": "{ __typename }"}, headers={"accept": accept})
        assert_json_error(r, 406, "none is acceptable")


def test_a_post_without_a_content_type_is_415(app: Any) -> None:
    r = call(app, "POST", "/graphql", content=json.dumps({"query": "{ __typename }"}).encode())
    assert "content-type" not in r.request.headers
    assert_json_error(r, 415, "Content-Type: application/json")


def test_field_errors_are_200_with_data_in_either_media_type(app: Any) -> None:
    body = {"query": '{ claim(id: "00000000009") { id } }'}
    for accept, media_type in ((GRAPHQL_RESPONSE, GRAPHQL_RESPONSE), (JSON, JSON)):
        r = call(app, "POST", "/graphql", json=body, headers={"accept": accept})
        assert r.status_code == 200 and r.headers["content-type"] == CONTENT_TYPE[media_type]
        assert r.json()["data"] == {"claim": None} and r.json()["errors"]


def test_get_with_empty_optional_parameters(app: Any) -> None:
    params = {"query": "{ __typename }", "operationName": "", "variables": "", "extensions": ""}
    assert call(app, "GET", "/graphql", params=params).json() == {"data": {"__typename": "Query"}}
    assert_json_error(
        call(app, "GET", "/graphql", params={**params, "extensions": "[1]"}), 400, "extensions must be"
    )


def test_get_client_errors(app: Any) -> None:
    assert_json_error(call(app, "GET", "/graphql"), 400, "the request has no query")
    bad = {"query": "{ __typename }", "variables": "{oops"}
    assert_json_error(call(app, "GET", "/graphql", params=bad), 400, "variables parameter is not valid JSON")


def test_oversized_bodies_are_413(insurance: Any) -> None:
    app = create_app(insurance.store, max_body_bytes=1000)
    body = json.dumps({"query": "{ __typename }", "variables": {"pad": "x" * 1000}}).encode()
    assert_json_error(
        call(app, "POST", "/graphql", content=body, headers={"content-type": "application/json"}),
        413,
        "1,000 bytes",
    )

    async def chunks() -> Any:  # no content-length: the body is counted as it streams in
        for i in range(0, len(body), 100):
            yield body[i : i + 100]

    r = call(app, "POST", "/graphql", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert_json_error(r, 413, "over the limit")
    default = create_app(insurance.store)
    big = json.dumps({"query": "{ __typename }", "variables": {"pad": "x" * 1_000_001}}).encode()
    r = call(default, "POST", "/graphql", content=big, headers={"content-type": "application/json"})
    assert_json_error(r, 413, "1,000,000 bytes")


def test_unknown_routes_and_methods_are_json(app: Any) -> None:
    assert_json_error(call(app, "GET", "/nope"), 404, "Not Found")
    r = call(app, "DELETE", "/graphql")
    assert_json_error(r, 405, "Method Not Allowed")
    assert set(r.headers["allow"].split(", ")) >= {"GET", "POST"}


def test_schema_and_health(app: Any, insurance: Any) -> None:
    r = call(app, "GET", "/schema.graphql")
    assert r.status_code == 200 and r.text == schema_sdl()
    assert r.headers["content-type"].startswith("text/plain")
    assert call(app, "GET", "/healthz").json() == {"status": "ok"}
    insurance.store.close()
    moved = insurance.root.rename(insurance.root.with_name("elsewhere"))
    r = call(app, "GET", "/healthz")
    assert r.status_code == 503 and r.json() == {"status": "unavailable"}
    moved.rename(insurance.root)


def test_debug_header_reports_efs_operations(insurance: Any) -> None:
    model = EFSModel("efs-test-app", profile="elastic")
    try:
        store = ShardStore(insurance.root, vfs=model.name)
        app = create_app(store, accounting=model.accounting)
        body = {"query": QUERY, "variables": {"id": insurance.ids[insurance.claim]}}
        plain = call(app, "POST", "/graphql", json=body).json()
        assert "extensions" not in plain
        debug = call(app, "POST", "/graphql", json=body, headers={"x-efs-ops": "1"}).json()
        assert debug["data"] == plain["data"]
        ops = debug["extensions"]["ops"]
        assert ops["profile"] == "elastic"
        assert ops["counts"]["lock"] >= 1 and ops["counts"]["unlock"] >= 1
        assert "claim_identifier.sqlite" in ops["by_file"]
        store.close()
    finally:
        model.close()


def test_debug_header_reports_dynamodb_calls_and_units(insurance: Any, dynamo_store: Any) -> None:
    from efs_sqlite.loader import dump, load

    load(dynamo_store, dump(insurance.store), progress=False)
    app = create_app(dynamo_store, accounting=dynamo_store.accounting)
    body = {"query": QUERY, "variables": {"id": insurance.ids[insurance.claim]}}
    plain = call(app, "POST", "/graphql", json=body).json()
    debug = call(app, "POST", "/graphql", json=body, headers={"x-efs-ops": "1"}).json()
    assert (
        debug["data"]
        == plain["data"]
        == call(create_app(insurance.store), "POST", "/graphql", json=body).json()["data"]
    )
    ops = debug["extensions"]["ops"]
    assert ops["backend"] == "dynamodb" and ops["calls"]["BatchGetItem"] >= 1
    assert ops["read_units"] > 0 and ops["write_units"] == 0
    assert ops["latency_ms"]["p50"] <= ops["latency_ms"]["p99"]
    assert call(app, "GET", "/healthz").json() == {"status": "ok"}


def test_internal_errors_are_500_json_without_details(
    insurance: Any, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def __enter__(self) -> Any:
            raise RuntimeError("secret detail")

        def __exit__(self, *exc: object) -> None:
            return None

    app = create_app(insurance.store, accounting=Broken)
    r = call(app, "POST", "/graphql", json={"query": "{ __typename }"}, headers={"x-efs-ops": "1"})
    assert_json_error(r, 500, "internal server error")
    assert "secret" not in r.text
    assert "secret detail" in caplog.text


# -- efs-sqlite serve: a real server -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(insurance: Any) -> Iterator[str]:
    port = free_port()
    script = Path(sys.executable).with_name("efs-sqlite")
    proc = subprocess.Popen(
        [str(script), "serve", "--root", str(insurance.root), "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"server did not start: {proc.stdout.read().decode() if proc.stdout else ''}"
                )
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_answers_over_http(server: str, insurance: Any) -> None:
    with httpx.Client(base_url=server, timeout=10) as client:
        body = {"query": QUERY, "variables": {"id": insurance.ids[insurance.claim]}}
        r = client.post("/graphql", json=body)
        assert r.status_code == 200
        assert r.json() == {"data": {"claim": {"claimIdentifier": 4242, "parties": {"totalCount": 10}}}}
        created = client.post(
            "/graphql",
            json={"query": CREATE_PARTY},
        ).json()["data"]["createParty"]["id"]
        found = client.get(
            "/graphql", params={"query": f'{{ party(id: "{created}") {{ partyIdentifier }} }}'}
        )
        assert found.json() == {"data": {"party": {"partyIdentifier": 5}}}
        assert client.get("/schema.graphql").text == schema_sdl()
        assert (
            client.post("/graphql", content=b"[", headers={"content-type": "application/json"}).status_code
            == 400
        )


def test_serve_refuses_a_missing_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from efs_sqlite.cli import main

    assert main(["serve", "--root", str(tmp_path / "absent")]) == 2
    assert "does not exist" in capsys.readouterr().err
