"""Hostile input through HTTP (in process, and a real ``efs-sqlite serve``) and the Lambda handlers.

Every hostile request must get a 4xx, or a GraphQL error in a 200 next to ``data``, as a JSON
object of error messages: never a 5xx, never a stack trace, a source path or the store's path,
never a masked ``internal error`` (hostile input is the client's fault and must be named as such),
and the shard files must be byte-for-byte unchanged (sha256 of every file under the root).

One list of hostile requests, :data:`HOSTILE`, goes through each transport; ``@CLAIM@`` and
``@PARTY@`` in a request stand for the ids of real nodes of the ``insurance`` fixture, so the
hostile part is the only thing wrong with it.

Every request accepts the spec's media type, ``application/graphql-response+json``, where the
status code tells a refused request from one that ran; a legacy client (``application/json``) gets
the same answers, except that a refused request is a 200 (``test_legacy_clients_get_the_same_answers``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from test_app import server  # noqa: F401  (the fixture: `efs-sqlite serve` on 127.0.0.1)

from efs_sqlite.app import GRAPHQL_RESPONSE, MAX_BODY_BYTES, create_app
from efs_sqlite.app import JSON as JSON_TYPE
from efs_sqlite.aws.fakes import LambdaContext, function_url_event, import_handler

ROOT = Path(__file__).resolve().parents[1]
JSON = {"content-type": "application/json"}
ACCEPT = {"accept": GRAPHQL_RESPONSE}


@dataclass(frozen=True)
class Hostile:
    """One hostile request; ``status`` is the exact status expected, when the request as a whole
    is at fault (otherwise a 200 carrying GraphQL errors)."""

    label: str
    body: bytes = b""
    method: str = "POST"
    path: str = "/graphql"
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=lambda: {**JSON, **ACCEPT})
    status: int = 200

    def bound(self, ids: dict[str, str]) -> Hostile:
        def fill(text: str) -> str:
            for key, value in ids.items():
                text = text.replace(key, value)
            return text

        body = self.body
        for key, value in ids.items():
            body = body.replace(key.encode(), value.encode())
        return replace(self, body=body, params={k: fill(v) for k, v in self.params.items()})


def post(label: str, payload: Any, status: int = 200) -> Hostile:
    return Hostile(label, json.dumps(payload).encode(), status=status)


def raw(label: str, body: bytes, status: int = 400, **headers: str) -> Hostile:
    return Hostile(label, body, headers={**JSON, **ACCEPT, **headers}, status=status)


def query(label: str, text: str, status: int = 200, **extra: Any) -> Hostile:
    return post(label, {"query": text, **extra}, status)


def get(label: str, status: int = 200, **params: str) -> Hostile:
    return Hostile(label, method="GET", params=params, headers=dict(ACCEPT), status=status)


def nested(levels: int) -> str:
    """A query ``levels`` list hops deep: claim -> parties -> node -> claims -> node -> ..."""
    inner, hops = "id", itertools.cycle(["claims", "parties"])
    for _ in range(levels):
        inner = f"{next(hops)}Connection(first: 2) {{ edges {{ node {{ id {inner} }} }} }}"
    return f'{{ claim(id: "@CLAIM@") {{ {inner} }} }}'


def fragment_bomb(levels: int) -> str:
    """Each fragment spreads the next one twice: 2**levels fields once expanded."""
    defs = [
        f"fragment F{i} on Query {{ a{i}: __typename ...F{i + 1} b{i}: __typename ...F{i + 1} }}"
        for i in range(levels)
    ]
    return "{ ...F0 } " + " ".join(defs) + f" fragment F{levels} on Query {{ __typename }}"


def cursor(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def page(args: str) -> str:
    return (
        f'{{ claim(id: "@CLAIM@") {{ parties: partiesConnection({args}) '
        "{ totalCount edges { cursor node { id } } } } }"
    )


def create_claim(extra: str = "", identifier: int = 2, stamp: str = "2024-01-01") -> str:
    fields = f'claimIdentifier: {identifier}, claimTypeCode: "x", timestamp: "{stamp}"{extra}'
    return "mutation { createClaim(input: {" + fields + "}) { id } }"


def create_transaction(claim: str = "@CLAIM@", amount: str = "1.00") -> str:
    fields = (
        f'financialTransactionIdentifier: "x", timestamp: "2024-01-01", claim: "{claim}", amount: "{amount}"'
    )
    return "mutation { createTransaction(input: {" + fields + "}) { id } }"


#: Text an attacker hopes reaches SQL, a path or a shell.
SQL_AND_PATHS = [
    "'; DROP TABLE items; --",
    '" OR 1=1 --',
    "1; ATTACH DATABASE '/tmp/x.sqlite' AS x; --",
    "../../../../etc/passwd",
    "/mnt/efs-sqlite/_type.sqlite",
    "..\\..\\windows\\win.ini",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "$(rm -rf /)",
    "`id`",
    "\x00",
    "claim_type_code.sqlite-journal",
]

BAD_IDS = [
    "",
    "abc",
    "0000000000",  # 10 characters
    "000000000000",  # 12
    "0000000000!",
    "0000000000_",
    "zzzzzzzzzzz",  # > 2**63
    "AzL8n0Y58m8",  # exactly 2**63
    "-0000000001",
    "00000000000",  # zero is no node id
    "１２３４５６７８９０１",  # fullwidth digits
    "\u0000" * 11,
    "0" * 100_000,
    *SQL_AND_PATHS,
]

HOSTILE: list[Hostile] = [
    # -- not JSON, not an object, no query
    raw("truncated JSON", b'{"query": '),
    raw("not UTF-8", b"\xff\xfe\xfd"),
    raw("empty body", b""),
    raw("JSON nesting bomb", b"[" * 100_000),
    raw("blank body", b"   \n"),
    raw("single quotes", b"{'query': '{ __typename }'}"),
    raw("trailing garbage", b'{"query": "{ __typename }"} x'),
    raw("NUL byte", b"\x00"),
    raw("bare NaN", b"NaN"),
    raw("a list", b'[{"query": "{ __typename }"}]'),
    raw("a string", b'"{ __typename }"'),
    raw("a number", b"42"),
    raw("null", b"null"),
    raw("true", b"true"),
    post("no query", {}, 400),
    post("only variables", {"variables": {}}, 400),
    post("null query", {"query": None}, 400),
    post("empty query", {"query": ""}, 400),
    post("blank query", {"query": " \n\t "}, 400),
    post("numeric query", {"query": 5}, 400),
    post("query as a list", {"query": ["{ __typename }"]}, 400),
    post("query as an object", {"query": {"$ne": ""}}, 400),
    query("variables as a string", "{ __typename }", 400, variables="x"),
    query("variables as a list", "{ __typename }", 400, variables=[1]),
    query("operationName as a number", "{ __typename }", 400, operationName=5),
    query("operationName as a path", "query A { __typename }", 400, operationName="../../etc/passwd"),
    query("operationName as SQL", "query A { __typename }", 400, operationName="'; DROP TABLE items; --"),
    query("two anonymous operations", "{ a: __typename } { b: __typename }", 400),
    # -- syntax
    query("open brace", "{", 400),
    query("open selection", "query {", 400),
    query("closing braces", "}}}", 400),
    query("missing argument value", "{ claim(id: ) { id } }", 400),
    query("unterminated", "query Q($id: ID!) { claim(id: $id) { id } ", 400),
    query("extra brace", "{ __typename } }", 400),
    query("NUL in the document", "{ __typename \u0000 }", 400),
    query("bare keyword", "mutation", 400),
    query("unterminated string", '{ claim(id: "@CLAIM@) { id } }', 400),
    # -- unknown names
    query("unknown root field", "{ nope }", 400),
    query("unknown field", '{ claim(id: "@CLAIM@") { secret } }', 400),
    query("unknown argument", '{ claim(id: "@CLAIM@", sql: "SELECT 1") { id } }', 400),
    query("the table's names", "{ items { uid value kind } }", 400),
    query("unknown introspection field", "{ __schema { nope } }", 400),
    query("unknown mutation", "mutation { dropTable }", 400),
    query("unknown fragment type", '{ claim(id: "@CLAIM@") { ... on Nope { id } } }', 400),
    query("subscription", "subscription { claim }", 400),
    query("undefined fragment", "{ ...F }", 400),
    query("fragment cycle", "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }", 400),
    # -- depth, alias, fragment and token bombs
    query("depth bomb", nested(12), 400),
    query(
        "introspection depth bomb",
        "{ __schema { types { " + "ofType { " * 20 + "name" + " }" * 20 + " } } }",
        400,
    ),
    query("alias bomb", "{ " + " ".join(f"a{i}: __typename" for i in range(5000)) + " }", 400),
    query(
        "alias bomb of reads",
        "{ " + " ".join(f'a{i}: claim(id: "@CLAIM@") {{ id }}' for i in range(1200)) + " }",
        400,
    ),
    query("fragment bomb", fragment_bomb(24), 400),
    query("directive bomb", "{ __typename" + " @include(if: true)" * 5000 + " }", 400),
    query("token bomb", "{ " + "__typename " * 30_000 + "}", 400),
    query("nesting bomb", "{" * 50_000, 400),
    query(
        "amplification bomb: 110 aliases x 1,000 ids",
        "query($ids: [ID!]!) { " + " ".join(f"a{i}: nodes(ids: $ids) {{ id }}" for i in range(110)) + " }",
        400,
        variables={"ids": ["@CLAIM@"] * 1000},
    ),
    query("deep list literal", "{ nodes(ids: " + "[" * 5000 + '"x"' + "]" * 5000 + ") { id } }", 400),
    # -- pages
    query("huge first", page("first: 2147483647")),
    query("first over the limit", page("first: 1001")),
    query("negative first", page("first: -1")),
    query("negative last", page("last: -5")),
    query("first beyond 32 bits", page("first: 2147483648"), 400),
    query("first as a float", page("first: 1.5"), 400),
    query("first as a string", page('first: "10"'), 400),
    query("garbage cursor", page('after: "garbage"')),
    query("negative cursor", page(f'after: "{cursor("arrayconnection:-5")}"')),
    query("SQL cursor", page(f'after: "{cursor("arrayconnection:1; DROP TABLE refs")}"')),
    query("path cursor", page(f'before: "{cursor("../../etc/passwd")}", last: 2')),
    query("SQL as a cursor", page('after: "\'; DROP TABLE refs; --"')),
    query("cursor beyond 64 bits", page(f'after: "{cursor("arrayconnection:99999999999999999999")}"')),
    query("too many ids", "{ nodes(ids: [" + ", ".join(['"@CLAIM@"'] * 1001) + "]) { id } }", 400),
    # -- bad ids, as literals, in lists and as variables
    *(query(f"bad id {bad[:24]!r}", f"{{ claim(id: {json.dumps(bad)}) {{ id }} }}") for bad in BAD_IDS),
    *(
        query(f"bad id in node() {bad[:24]!r}", f"{{ node(id: {json.dumps(bad)}) {{ id }} }}")
        for bad in BAD_IDS[:8]
    ),
    query("bad ids among good", '{ nodes(ids: ["@CLAIM@", "../etc", "zzzzzzzzzzz"]) { id } }'),
    query("integer id literal", "{ claim(id: 123) { id } }"),
    query("negative id literal", "{ claim(id: -1) { id } }"),
    query("id of the wrong type", '{ party(id: "@CLAIM@") { id } }'),
    *(
        query(
            f"id variable {value!r:.24}", "query($id: ID!) { claim(id: $id) { id } }", variables={"id": value}
        )
        for value in [2**70, -1, 0, "zzzzzzzzzzz", "../../etc/passwd"]
    ),
    # -- variables of the wrong type
    *(
        query(
            f"id variable of type {type(value).__name__} {value!r:.16}",
            "query($id: ID!) { claim(id: $id) { id } }",
            400,
            variables={"id": value},
        )
        for value in [1.5, True, {"a": 1}, [1], None]
    ),
    query("missing variable", "query($id: ID!) { claim(id: $id) { id } }", 400, variables={}),
    query("undeclared variable", "{ claim(id: $id) { id } }", 400, variables={"id": "@CLAIM@"}),
    *(
        query(
            f"first variable {value!r}",
            page("first: $n").replace("{ claim", "query($n: Int) { claim", 1),
            400,
            variables={"n": value},
        )
        for value in ["10", 2**40, 1.5, [10]]
    ),
    # -- mutations that must be refused and write nothing
    query("reference to a path", create_claim(', parties: ["../../etc/passwd"]')),
    query("reference of the wrong type", create_transaction(claim="@PARTY@")),
    query("reference to nothing", create_transaction(claim="00000000001")),
    *(
        query(f"amount {amount[:16]}", create_transaction(amount=amount))
        for amount in ["1e999999", "NaN", "Infinity", "-Infinity", "0.001", "1" * 5000]
    ),
    *(
        query(f"timestamp {stamp!r}", create_claim(stamp=stamp), 400)
        for stamp in ["not a date", "2024-13-01", "'; DROP TABLE items; --", ""]
    ),
    query(
        "timestamp out of range in UTC",
        create_claim(stamp="9999-12-31T23:59:59-23:59"),
    ),
    query("identifier beyond 32 bits", create_claim(identifier=99_999_999_999), 400),
    query("missing required input", 'mutation { createClaim(input: {claimTypeCode: "x"}) { id } }', 400),
    query("unknown input field", create_claim(", uid: 5"), 400),
    query(
        "clearing a required field",
        'mutation { updateClaim(id: "@CLAIM@", input: {claimIdentifier: null}) { id } }',
    ),
    query("update of a bad id", 'mutation { updateClaim(id: "../etc", input: {claimTypeCode: "x"}) { id } }'),
    query(
        "update of the wrong type",
        'mutation { updateParty(id: "@CLAIM@", input: {partyIdentifier: 1}) { id } }',
    ),
    query("delete of id zero", 'mutation { deleteClaim(id: "00000000000") }'),
    query("delete of an overflowing id", 'mutation { deleteClaim(id: "zzzzzzzzzzz") }'),
    query("delete of the wrong type", 'mutation { deleteParty(id: "@CLAIM@") }'),
    query(
        "list edit with the wrong type",
        'mutation { addClaimParties(id: "@CLAIM@", ids: ["@CLAIM@"]) { id } }',
    ),
    query(
        "list edit with a bad id",
        'mutation { removeClaimParties(id: "@CLAIM@", ids: ["\'; DROP TABLE refs; --"]) { id } }',
    ),
    # -- size, content type, method, route
    post("oversized body", {"query": "{ __typename }", "variables": {"pad": "x" * MAX_BODY_BYTES}}, 413),
    raw("plain text", b"{ __typename }", 415, **{"content-type": "text/plain"}),
    raw("form", b"query=%7B__typename%7D", 415, **{"content-type": "application/x-www-form-urlencoded"}),
    raw("application/graphql", b"{ __typename }", 415, **{"content-type": "application/graphql"}),
    raw("multipart", b"--x\r\n\r\n{}\r\n--x--", 415, **{"content-type": "multipart/form-data; boundary=x"}),
    Hostile("PUT", json.dumps({"query": "{ __typename }"}).encode(), method="PUT", status=405),
    Hostile("DELETE", method="DELETE", status=405),
    Hostile("unknown route", method="GET", path="/nowhere", status=404, headers=dict(ACCEPT)),
    # -- GET
    get("GET without a query", 400),
    get("GET mutation", 405, query='mutation { deleteClaim(id: "@CLAIM@") }'),
    get("GET with variables not JSON", 400, query="{ __typename }", variables="{oops"),
    get("GET variables nesting bomb", 400, query="{ __typename }", variables="[" * 5000),
    get("GET with variables as a list", 400, query="{ __typename }", variables="[1, 2]"),
    get("GET with a bad id", query='{ claim(id: "\'; DROP TABLE items; --") { id } }'),
    get("GET depth bomb", 400, query=nested(12)),
]


# -- checks ----------------------------------------------------------------------------------------


def checksums(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


_TRACE = re.compile(r"Traceback|File \"[^\"]*\", line \d+|site-packages|\.py\b")


def check_answer(case: Hostile, status: int, content_type: str, text: str, root: Path) -> None:
    where = f"{case.label}: {status} {text[:300]}"
    assert status < 500, where
    if case.status != 200:
        assert status == case.status, where
    # The spec's media type for a GraphQL response; plain JSON for what is no GraphQL request.
    assert content_type.split(";")[0] in (JSON_TYPE, GRAPHQL_RESPONSE), where
    assert not _TRACE.search(text), where
    assert str(root) not in text and str(ROOT) not in text, where
    body = json.loads(text)
    assert isinstance(body, dict), where
    messages = [e.get("message") for e in body.get("errors", [])]
    assert messages and all(isinstance(m, str) and m for m in messages), where
    assert "internal error" not in messages, where  # hostile input must be named the client's fault
    assert ("data" in body) == (status == 200), where


def ids_of(insurance: Any) -> dict[str, str]:
    return {"@CLAIM@": insurance.ids[insurance.claim], "@PARTY@": insurance.ids[insurance.parties[0]]}


def in_process(app: Any, case: Hostile) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await send(client, case)

    return asyncio.run(go())


def send(client: httpx.AsyncClient | httpx.Client, case: Hostile) -> Any:
    return client.request(
        case.method, case.path, content=case.body or None, params=case.params, headers=case.headers
    )


def test_hostile_requests_through_the_app(insurance: Any) -> None:
    app, before, ids = create_app(insurance.store), checksums(insurance.root), ids_of(insurance)
    for case in HOSTILE:
        case = case.bound(ids)
        r = in_process(app, case)
        check_answer(case, r.status_code, r.headers.get("content-type", ""), r.text, insurance.root)
    assert checksums(insurance.root) == before
    print(f"\n{len(HOSTILE)} hostile requests through the app: none answered 5xx, files unchanged")


def test_legacy_clients_get_the_same_answers(insurance: Any) -> None:
    """Under ``Accept: application/json`` every answer is the same body in ``application/json``,
    with the same status, except a refused GraphQL request: a 200 instead of a 4xx."""
    app, ids = create_app(insurance.store), ids_of(insurance)
    for case in HOSTILE:
        case = case.bound(ids)
        spec = in_process(app, case)
        legacy = in_process(app, replace(case, headers={**case.headers, "accept": JSON_TYPE}))
        where = f"{case.label}: {spec.status_code} {spec.text[:300]}"
        assert legacy.headers["content-type"] == JSON_TYPE, where
        refused = spec.headers["content-type"].startswith(GRAPHQL_RESPONSE) and spec.status_code != 200
        assert legacy.status_code == (200 if refused else spec.status_code), where
        assert legacy.json() == spec.json(), where


def test_hostile_requests_through_a_real_server(server: str, insurance: Any) -> None:  # noqa: F811
    before, ids = checksums(insurance.root), ids_of(insurance)
    with httpx.Client(base_url=server, timeout=60) as client:
        for case in HOSTILE:
            case = case.bound(ids)
            r = send(client, case)
            check_answer(case, r.status_code, r.headers.get("content-type", ""), r.text, insurance.root)
        # A body sent in chunks, with no length to check up front, is counted as it arrives.
        chunks = (b"x" * 65536 for _ in range(MAX_BODY_BYTES // 65536 + 2))
        r = client.post("/graphql", content=chunks, headers=JSON)
        check_answer(
            raw("chunked oversized body", b"", 413),
            r.status_code,
            r.headers["content-type"],
            r.text,
            insurance.root,
        )
    # A Content-Length over the limit is refused before the body is read.
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {MAX_BODY_BYTES * 50}\r\nConnection: close\r\n\r\n".encode()
            + b'{"query": '
        )
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, text = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert b"over the limit" in text
    assert checksums(insurance.root) == before


# -- the Lambda handlers, called in process with real events ----------------------------------------


def lambda_event(case: Hostile) -> dict[str, Any]:
    """The Function URL event (payload 2.0) Lambda builds for ``case``; a body that is not UTF-8
    arrives base64-encoded, as Lambda sends it."""
    return function_url_event(
        case.body or None, method=case.method, path=case.path, headers=case.headers, query=case.params
    )


@pytest.fixture
def graphql_lambda(insurance: Any) -> Iterator[ModuleType]:
    module = import_handler("graphql", insurance.root)
    yield module
    module.store.close()


def test_hostile_requests_through_the_graphql_lambda(graphql_lambda: ModuleType, insurance: Any) -> None:
    before, ids = checksums(insurance.root), ids_of(insurance)
    for case in HOSTILE:
        case = case.bound(ids)
        answer = graphql_lambda.handler(lambda_event(case), LambdaContext("efs-sqlite-test-graphql"))
        body = base64.b64decode(answer["body"]).decode() if answer.get("isBase64Encoded") else answer["body"]
        headers = {k.lower(): v for k, v in answer["headers"].items()}
        check_answer(case, answer["statusCode"], headers.get("content-type", ""), body, insurance.root)
    assert checksums(insurance.root) == before


def test_sql_and_path_text_is_stored_as_plain_data(graphql_lambda: ModuleType, insurance: Any) -> None:
    """Text that looks like SQL or a path, sent as values, is written verbatim and read back
    verbatim: no statement runs, no file appears, no other node changes."""
    files = set(checksums(insurance.root))
    claim = insurance.ids[insurance.claim]

    def ask(text: str, variables: dict[str, Any]) -> dict[str, Any]:
        answer = graphql_lambda.handler(
            lambda_event(post("q", {"query": text, "variables": variables})),
            LambdaContext("efs-sqlite-test-graphql"),
        )
        assert answer["statusCode"] == 200, answer["body"]
        return json.loads(answer["body"])

    read = (
        "query($id: ID!) { claim(id: $id) { claimIdentifier claimTypeCode "
        "parties: partiesConnection { totalCount } } }"
    )
    original = ask(read, {"id": claim})
    fields = 'claimIdentifier: 7, claimTypeCode: $code, timestamp: "2024-01-01"'
    create = "mutation($code: String!) { createClaim(input: {" + fields + "}) { id claimTypeCode } }"
    for text in SQL_AND_PATHS:
        created = ask(create, {"code": text})["data"]["createClaim"]
        assert created["claimTypeCode"] == text
        assert ask(read, {"id": created["id"]})["data"]["claim"]["claimTypeCode"] == text
    assert ask(read, {"id": claim}) == original
    assert set(checksums(insurance.root)) == files  # the same files: no new shard, no stray file
    for shard in insurance.store.shards():
        assert insurance.store.integrity_check(shard) == "ok"
    assert insurance.store.count("_type") == 1 + 10 + 3 + len(SQL_AND_PATHS)


# -- the loader Lambda: path-like shard names ------------------------------------------------------

PATH_LIKE = [
    "..",
    ".",
    "/",
    "claim_type_code/../_type",
    "./claim_type_code",
    "/mnt/efs-sqlite/claim_type_code",
    "claim_type_code.sqlite",
    "claim_type_code.sqlite-journal",
    "claim_type_code\x00",
    "claim_type_code\n",
    " claim_type_code",
    "CLAIM_TYPE_CODE",
    "сlaim_type_code",  # a Cyrillic 'с'
    "..\\claim_type_code",
    "%2e%2e%2fclaim_type_code",
    "sqlite_master",
    "items",
    "a" * 64,
]


@pytest.mark.parametrize("name", PATH_LIKE, ids=[repr(n)[:30] for n in PATH_LIKE])
def test_the_loader_refuses_path_like_shard_names(tmp_path: Path, name: str) -> None:
    mount = tmp_path / "efs-sqlite"
    loader = import_handler("loader", mount)
    try:
        assert loader.handler(
            {"action": "load", "records": [{"shard": "_type", "uid": 1, "value": "Claim"}]}, None
        )["ok"]
        before = checksums(tmp_path)  # the mount and everything beside it
        for event in (
            {"action": "load", "records": [{"shard": name, "uid": 2, "value": "x"}]},
            {"action": "vacuum", "shard": name},
            {"action": "clear", "confirm": name},
        ):
            answer = loader.handler(event, None)
            json.dumps(answer)
            assert answer["ok"] is False and not _TRACE.search(answer["error"]), answer
        assert checksums(tmp_path) == before
    finally:
        loader.STORE.close()
