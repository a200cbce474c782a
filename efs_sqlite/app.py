"""The ASGI app (Starlette) serving the GraphQL API, locally under uvicorn and on Lambda via Mangum.

Routes:

- ``POST /graphql``: a JSON object ``{"query", "variables", "operationName"}``;
- ``GET /graphql?query=...&variables=...&operationName=...``: queries only, as GraphQL-over-HTTP
  says (a mutation gets 405, since a GET must not change anything);
- ``GET /schema.graphql``: the SDL; ``GET /healthz``: ``{"status": "ok"}`` while the store is
  reachable.

A request the client got wrong is a 4xx with a JSON ``{"errors": [{"message": ...}]}``: malformed
JSON, a body that is not an object, no query (400), a body over ``max_body_bytes`` (413), a
content type other than JSON (415), a document that does not parse, validate or fit the limits
(400). Errors while executing a valid request are GraphQL errors in a 200 response, next to the
data that could be read. Nothing ever answers with a stack trace.

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
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from efs_sqlite.backend import StoreBackend
from efs_sqlite.errors import OperationNotAllowed
from efs_sqlite.graphql import GraphQLAPI, Limits
from efs_sqlite.model import INSURANCE, Model

__all__ = ["DEBUG_HEADER", "MAX_BODY_BYTES", "Accounting", "create_app"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000
DEBUG_HEADER = "x-efs-ops"


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
    payload: dict[str, Any] = {"query": params.get("query"), "operationName": params.get("operationName")}
    variables = params.get("variables")
    if variables:
        payload["variables"] = _json(variables, "the variables parameter")
    return payload


def create_app(
    store: StoreBackend,
    *,
    model: Model = INSURANCE,
    limits: Limits | None = None,
    accounting: Callable[[], contextlib.AbstractContextManager[Accounting]] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> Starlette:
    """The app over ``store``; its :class:`~efs_sqlite.graphql.GraphQLAPI` is ``app.state.api``."""
    if max_body_bytes < 1:
        raise ValueError("max_body_bytes must be >= 1")
    api = GraphQLAPI(store, model, limits=limits)

    def run(request: Request, payload: dict[str, Any], allow_mutations: bool) -> Response:
        args = (payload.get("query"), payload.get("variables"), payload.get("operationName"))
        try:
            if accounting is not None and request.headers.get(DEBUG_HEADER) == "1":
                with accounting() as ops:
                    result = api.execute(*args, allow_mutations=allow_mutations)
                result.setdefault("extensions", {})["ops"] = ops.as_dict()
            else:
                result = api.execute(*args, allow_mutations=allow_mutations)
        except OperationNotAllowed as exc:
            raise _ClientError(405, str(exc), {"Allow": "POST"}) from None
        # No `data` means the request itself was at fault (GraphQL-over-HTTP: a 4xx).
        return JSONResponse(result, status_code=200 if "data" in result else 400)

    async def graphql_post(request: Request) -> Response:
        media_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if media_type != "application/json":
            raise _ClientError(415, "send the request as Content-Type: application/json")
        payload = _payload_from_body(await _read_body(request, max_body_bytes))
        return run(request, payload, allow_mutations=True)

    async def graphql_get(request: Request) -> Response:
        return run(request, _payload_from_params(request), allow_mutations=False)

    async def graphql(request: Request) -> Response:
        handler = graphql_post if request.method == "POST" else graphql_get
        try:
            return await handler(request)
        except _ClientError as exc:
            return _errors(exc.status, exc.message, exc.headers)

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
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.state.api = api
    return app
