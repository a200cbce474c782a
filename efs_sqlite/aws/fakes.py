"""Stand-ins for what AWS provides, shared by the tests, the benchmarks and the zip verifier.

A moto server for boto3, the Function URL event and the context object Lambda hands a handler,
and a fresh import of a handler as a new execution environment runs it. Only the standard
library is imported here at module level: the verifier loads this file by path into a clean
interpreter that has nothing else (moto is imported by :func:`moto_server` alone).

>>> context = LambdaContext("efs-sqlite-demo-graphql")
>>> context.invoked_function_arn, context.get_remaining_time_in_millis()
('arn:aws:lambda:us-east-1:123456789012:function:efs-sqlite-demo-graphql', 30000)
"""

from __future__ import annotations

import base64
import importlib.util
import itertools
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

__all__ = ["LambdaContext", "function_url_event", "import_handler", "moto_server"]

_ACCOUNT = "123456789012"
_REGION = "us-east-1"
_URL_ID = "abcdefghijklmnopqrstuvwxyz012345"
_REQUEST_ID = "00000000-0000-4000-8000-000000000000"
_imports = itertools.count()


@dataclass(frozen=True)
class LambdaContext:
    """The attributes of the context object the Lambda Python runtime passes to a handler."""

    function_name: str = "efs-sqlite-graphql"
    function_version: str = "$LATEST"
    #: A string, as the runtime reads it from the environment.
    memory_limit_in_mb: str = "1024"
    aws_request_id: str = _REQUEST_ID
    log_stream_name: str = "2026/11/28/[$LATEST]0123456789abcdef0123456789abcdef"
    remaining_ms: int = 30_000

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{_REGION}:{_ACCOUNT}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def function_url_event(
    body: Any = None,
    *,
    method: str = "POST",
    path: str = "/graphql",
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    base64_body: bool = False,
) -> dict[str, Any]:
    """A Lambda Function URL event (payload format 2.0, ``AWS_IAM`` auth) as Lambda hands it over.

    *body* None leaves the key out, as Lambda does for a request without one; a str is sent as
    it is, bytes as UTF-8 text or, when they are not UTF-8, base64-encoded (as Lambda sends
    binary), anything else JSON-encoded. ``base64_body=True`` base64-encodes any body.

    >>> event = function_url_event({"query": "{ __typename }"})
    >>> event["requestContext"]["http"]["method"], event["rawPath"], event["body"]
    ('POST', '/graphql', '{"query": "{ __typename }"}')
    >>> event = function_url_event(b"\\xff", method="PUT", query={"a": "1"})
    >>> event["body"], event["isBase64Encoded"], event["rawQueryString"], event["queryStringParameters"]
    ('/w==', True, 'a=1', {'a': '1'})
    """
    domain = f"{_URL_ID}.lambda-url.{_REGION}.on.aws"
    all_headers = {
        "content-type": "application/json",
        "host": domain,
        "user-agent": "efs-sqlite-fake",
        "x-forwarded-proto": "https",
        **{k.lower(): v for k, v in (headers or {}).items()},
    }
    pairs = list(query.items()) if isinstance(query, Mapping) else list(query)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": urlencode(pairs),
        "headers": all_headers,
        "requestContext": {
            "accountId": _ACCOUNT,
            "apiId": _URL_ID,
            "authorizer": {"iam": {"accessKey": "AKIAIOSFODNN7EXAMPLE", "accountId": _ACCOUNT}},
            "domainName": domain,
            "domainPrefix": _URL_ID,
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": all_headers["user-agent"],
            },
            "requestId": _REQUEST_ID,
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Jan/2025:00:00:00 +0000",
            "timeEpoch": 1735689600000,
        },
        "isBase64Encoded": False,
    }
    if pairs:
        # Lambda joins repeated parameters with commas here; rawQueryString keeps them apart.
        joined: dict[str, list[str]] = {}
        for key, value in pairs:
            joined.setdefault(key, []).append(value)
        event["queryStringParameters"] = {k: ",".join(v) for k, v in joined.items()}
    if body is None:
        return event
    data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    try:
        text = data.decode()
    except UnicodeDecodeError:
        base64_body = True
    if base64_body:
        text = base64.b64encode(data).decode()
    event |= {"body": text, "isBase64Encoded": base64_body}
    return event


def import_handler(function: str, mount: str | os.PathLike[str]) -> ModuleType:
    """A fresh import of *function*'s ``handler.py`` with ``MOUNT_PATH`` set to *mount*.

    As a new execution environment's init phase runs it: every call gives a new module (with its
    own store, opened at import). ``MOUNT_PATH`` is restored once the module is imported.
    """
    from efs_sqlite.aws.build import handler_file

    spec = importlib.util.spec_from_file_location(
        f"efs_sqlite_{function}_handler_{next(_imports)}", handler_file(function)
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with _environment({"MOUNT_PATH": os.fspath(mount)}):
        spec.loader.exec_module(module)
    return module


@contextmanager
def moto_server(region: str = _REGION) -> Iterator[str]:
    """Run a moto server on 127.0.0.1 and point boto3 at it until the block ends; yields its URL.

    Sets ``AWS_ENDPOINT_URL``, fake credentials and the region in ``os.environ`` (restored on exit),
    so unchanged boto3 code, including :func:`~efs_sqlite.aws.deploy`, talks to moto. moto records
    the configuration but runs nothing: never take its ``invoke`` answers for a handler's.
    Needs the ``moto[server]`` package (a development dependency).
    """
    from moto.server import ThreadedMotoServer

    settings = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        # moto knows AWS managed policies (the role attaches one) only when asked to.
        "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
        "AWS_PROFILE": None,
    }
    requests_log = logging.getLogger("werkzeug")
    saved_level = requests_log.level
    requests_log.setLevel(logging.WARNING)
    try:
        with _environment({**settings, "AWS_ENDPOINT_URL": None}):
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            try:
                host, port = server.get_host_and_port()
                os.environ["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
                yield os.environ["AWS_ENDPOINT_URL"]
            finally:
                server.stop()
    finally:
        requests_log.setLevel(saved_level)


@contextmanager
def _environment(changes: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, for None, remove) variables of ``os.environ`` for the block; then restore them."""
    saved = {name: os.environ.get(name) for name in changes}
    try:
        _set_environment(changes)
        yield
    finally:
        _set_environment(saved)


def _set_environment(values: Mapping[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
