"""The ASGI app (Starlette) serving the GraphQL API, locally under uvicorn and on Lambda via Mangum.

Routes:

- ``POST /graphql``: a JSON object ``{"query", "variables", "operationName"}``;
- ``GET /graphql?query=...&variables=...&operationName=...``: queries only, as GraphQL-over-HTTP
  says (a mutation gets 405 with ``Allow: POST``, since a GET must not change anything); a browser
  (``Accept: text/html`` preferred) gets the GraphiQL IDE instead (:mod:`efs_sqlite.graphiql`), its
  assets at ``/graphiql/``;
- ``GET /schema.graphql``: the SDL; ``GET /healthz``: ``{"status": "ok"}`` while the store is
  reachable.

The response's media type follows ``Accept`` (GraphQL over HTTP, ``docs/SOURCES.md#graphql-over-http``):
``application/graphql-response+json`` when the client prefers it, where the status code tells a
request the server refused to run (a document that does not parse, validate or fit the limits,
variables that do not coerce: 400) from one it ran (200, with ``data``, errors beside it);
``application/json`` for ``*/*``, a missing ``Accept`` and legacy clients, where those requests are
a 200 with ``errors`` and no ``data``. Nothing else is acceptable: 406.

A request that is not a GraphQL request at all is a 4xx with a JSON ``{"errors": [{"message": ...}]}``
in ``application/json``, whatever ``Accept`` says: malformed JSON, a body that is not an object,
parameters of the wrong JSON types or no query (400), a body over ``max_body_bytes`` (413), a
missing content type or one other than JSON (415). Nothing ever answers with a stack trace.

A request can be given a deadline (``deadline``: on Lambda, :func:`lambda_deadline`, the
invocation's remaining time minus a margin): if it runs out waiting for a lock, or before a write,
having written nothing, the answer is ``503`` with ``Retry-After``, and no lock is left held —
instead of Lambda killing the process mid-commit at its timeout.

Execution is synchronous and runs on the event loop's thread: on Lambda one request runs at a time
anyway, and a store read is far shorter than a thread hand-off would cost.

Debugging: with ``accounting`` (a context-manager factory whose value has ``as_dict()``, such as
the EFS model's per-request operation counter, or a DynamoDB store's ``accounting``: its calls,
read and write units and modelled latency), a request carrying the header ``x-efs-ops: 1`` gets
the accounting of its own execution in ``extensions.ops``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from efs_sqlite.accept import negotiate
from efs_sqlite.backend import StoreBackend
from efs_sqlite.deadline import Deadline
from efs_sqlite.errors import DeadlineExceeded, OperationNotAllowed
from efs_sqlite.graphiql import ASSETS, ASSETS_PATH, PAGE
from efs_sqlite.graphql import GraphQLAPI, Limits
from efs_sqlite.graphql.api import request_error
from efs_sqlite.model import INSURANCE, Model

__all__ = [
    "DEBUG_HEADER",
    "GRAPHQL_RESPONSE",
    "JSON",
    "LAMBDA_MARGIN_S",
    "MAX_BODY_BYTES",
    "Accounting",
    "DeadlineOf",
    "create_app",
    "lambda_deadline",
]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000
DEBUG_HEADER = "x-efs-ops"
JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"
#: What a GraphQL response may be sent as, the server's choice first: ``application/json``, which
#: ``*/*`` and a missing ``Accept`` get, as the spec's audits want for legacy clients.
RESPONSE_TYPES = (JSON, GRAPHQL_RESPONSE)
#: A GET may also be a browser asking for the IDE.
GET_TYPES = (*RESPONSE_TYPES, "text/html")
#: The header value a GraphQL response is sent with, by media type (JSON is UTF-8 by definition,
#: RFC 8259; the spec's own type names its charset).
CONTENT_TYPES = {JSON: JSON, GRAPHQL_RESPONSE: f"{GRAPHQL_RESPONSE}; charset=utf-8"}

#: Time kept back from a Lambda invocation's remaining time: a commit that began just before the
#: deadline, and the answer, fit in it (a grouped commit is tens of milliseconds on EFS).
LAMBDA_MARGIN_S = 1.0

#: A request's deadline, from its ASGI scope; ``None``: no deadline.
DeadlineOf = Callable[[Scope], Deadline | None]


def lambda_deadline(margin_s: float = LAMBDA_MARGIN_S) -> DeadlineOf:
    """Deadlines from the Lambda context that Mangum puts in the scope (``aws.context``): the
    invocation's remaining time less ``margin_s``; ``None`` outside Lambda.

    >>> from efs_sqlite.aws.fakes import LambdaContext
    >>> of = lambda_deadline(1.0)
    >>> 28.9 < of({"aws.context": LambdaContext(remaining_ms=30_000)}).remaining() <= 29.0
    True
    >>> of({}) is None
    True
    """

    def deadline(scope: Scope) -> Deadline | None:
        context = scope.get("aws.context")
        if context is None:
            return None
        return Deadline.after(context.get_remaining_time_in_millis() / 1000 - margin_s)

    return deadline


class Accounting(Protocol):
    """What an ``accounting`` context manager yields: counts it can report as a JSON object."""

    def as_dict(self) -> dict[str, Any]: ...


class _ClientError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def _errors(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message}]}, status_code=status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    too_big = _ClientError(413, f"the request body is over the limit of {limit:,} bytes")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():  # a body without (or lying about) its length is counted
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def _json(text: str | bytes, what: str) -> Any:
    try:
        return json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _ClientError(400, f"{what} is not valid JSON: {exc}") from None
    except RecursionError:  # "[[[[..." nested past the interpreter's limit, well under the size cap
        raise _ClientError(400, f"{what} nests too deeply") from None


def _payload_from_body(body: bytes) -> dict[str, Any]:
    payload = _json(body, "the request body")
    if not isinstance(payload, dict):
        raise _ClientError(400, 'the request body must be a JSON object {"query": ...}')
    return payload


def _payload_from_params(request: Request) -> dict[str, Any]:
    params = request.query_params
    # An empty optional parameter is as good as none (GraphQL over HTTP, GET).
    payload: dict[str, Any] = {
        "query": params.get("query"),
        "operationName": params.get("operationName") or None,
    }
    for name in ("variables", "extensions"):
        if value := params.get(name):
            payload[name] = _json(value, f"the {name} parameter")
    return payload


def create_app(
    store: StoreBackend,
    *,
    model: Model = INSURANCE,
    limits: Limits | None = None,
    accounting: Callable[[], contextlib.AbstractContextManager[Accounting]] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    deadline: DeadlineOf | None = None,
) -> Starlette:
    """The app over ``store``; its :class:`~efs_sqlite.graphql.GraphQLAPI` is ``app.state.api``.
    ``deadline`` gives each request its deadline (see :func:`lambda_deadline`)."""
    if max_body_bytes < 1:
        raise ValueError("max_body_bytes must be >= 1")
    api = GraphQLAPI(store, model, limits=limits)

    def run(request: Request, payload: dict[str, Any], media_type: str, allow_mutations: bool) -> Response:
        args = (payload.get("query"), payload.get("variables"), payload.get("operationName"))
        extensions = payload.get("extensions")  # reserved for the server; this one reads none
        problem = request_error(*args)
        if problem is None and extensions is not None and not isinstance(extensions, dict):
            problem = "extensions must be a JSON object"
        if problem is not None:  # not a GraphQL request: no GraphQL response either
            raise _ClientError(400, problem)
        execute = partial(
            api.execute,
            *args,
            allow_mutations=allow_mutations,
            deadline=None if deadline is None else deadline(request.scope),
        )
        try:
            if accounting is not None and request.headers.get(DEBUG_HEADER) == "1":
                with accounting() as ops:
                    result = execute()
                result.setdefault("extensions", {})["ops"] = ops.as_dict()
            else:
                result = execute()
        except OperationNotAllowed as exc:
            raise _ClientError(405, str(exc), {"Allow": "POST"}) from None
        except DeadlineExceeded as exc:
            raise _ClientError(503, str(exc), {"Retry-After": str(exc.retry_after)}) from None
        # No `data`: the request was refused before execution, which only the spec's own media
        # type tells with a 4xx; a legacy client reads every GraphQL response from a 200.
        refused = "data" not in result and media_type == GRAPHQL_RESPONSE
        return JSONResponse(result, status_code=400 if refused else 200, media_type=CONTENT_TYPES[media_type])

    def accepted(request: Request, offered: tuple[str, ...]) -> str:
        media_type = negotiate(request.headers.get("accept"), offered)
        if media_type is None:
            raise _ClientError(406, f"this endpoint answers in {' or '.join(offered)}: none is acceptable")
        return media_type

    async def graphql_post(request: Request) -> Response:
        media_type = accepted(request, RESPONSE_TYPES)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != JSON:
            raise _ClientError(415, "send the request as Content-Type: application/json")
        payload = _payload_from_body(await _read_body(request, max_body_bytes))
        return run(request, payload, media_type, allow_mutations=True)

    async def graphql_get(request: Request) -> Response:
        media_type = accepted(request, GET_TYPES)
        if media_type not in RESPONSE_TYPES:
            return HTMLResponse(PAGE)
        return run(request, _payload_from_params(request), media_type, allow_mutations=False)

    async def graphql(request: Request) -> Response:
        handler = graphql_post if request.method == "POST" else graphql_get
        try:
            response = await handler(request)
        except _ClientError as exc:
            response = _errors(exc.status, exc.message, exc.headers)
        response.headers["Vary"] = "Accept"  # one URL, several representations: caches must key on it
        return response

    async def schema(request: Request) -> Response:
        return PlainTextResponse(api.sdl)

    async def healthz(request: Request) -> Response:
        if not store.healthy():
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _errors(exc.status_code, exc.detail, exc.headers)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("unhandled error serving %s %s", request.method, request.url.path, exc_info=exc)
        return _errors(500, "internal server error")

    app = Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            Route("/schema.graphql", schema, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Mount(ASSETS_PATH, StaticFiles(directory=ASSETS), name="graphiql"),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.state.api = api
    return app
