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

from efs_sqlite.app import create_app
from efs_sqlite.efs_model import EFSModel
from efs_sqlite.graphql import schema_sdl
from efs_sqlite.store import ShardStore

QUERY = (
    "query($id: ID!) { claim(id: $id) { claimIdentifier "
    "parties: partiesConnection(first: 2) { totalCount } } }"
)
CREATE_PARTY = 'mutation { createParty(input: {partyIdentifier: 5, timestamp: "2024-01-01"}) { id } }'


def call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request to the ASGI app, in process; an exception the app re-raises after answering
    (as Starlette does for a 500, so that servers log it) is left to the app, as a server would."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


@pytest.fixture
def app(insurance: Any) -> Any:
    return create_app(insurance.store)


def assert_json_error(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
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
        ({"json": {"query": "{ claim(id: 1) { nope } }"}}, 400, "Cannot query field 'nope'"),
        ({"json": {"query": "{"}}, 400, "Syntax Error"),
        ({"json": {"query": "{ __typename }", "variables": "x"}}, 400, "variables must be a JSON object"),
        (
            {"content": b"query=x", "headers": {"content-type": "application/x-www-form-urlencoded"}},
            415,
            "application/json",
        ),
        (
            {"json": {"query": "{ " + " ".join(f"a{i}: __typename" for i in range(1001)) + " }"}},
            400,
            "the limit is 1000",
        ),
    ],
)
def test_client_errors_are_4xx_json(app: Any, kwargs: dict[str, Any], status: int, message: str) -> None:
    assert_json_error(call(app, "POST", "/graphql", **kwargs), status, message)


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
