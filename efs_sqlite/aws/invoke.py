"""Talk to a deployed stack: load records through the loader function, calibrate the EFS model on
its mount, query the GraphQL Function URL with SigV4-signed requests.

>>> events = list(load_events([("claim_type_code", 1, "AUTO"), ("claim_type_code", 2, "HOME")]))
>>> [(e.count, json.loads(e.payload)["records"][1]) for e in events]
[(2, {'shard': 'claim_type_code', 'uid': 2, 'value': 'HOME'})]
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from efs_sqlite.aws import loader_protocol
from efs_sqlite.aws.config import Stack
from efs_sqlite.aws.target import MAX_EVENT_BYTES
from efs_sqlite.errors import AwsError, CalibrationError, RemoteLoadError

__all__ = ["LoadEvent", "LoadSummary", "load_events", "remote_calibrate", "remote_load", "signed_query"]


class LoadEvent(NamedTuple):
    """One loader invocation: the JSON payload and how many records it carries."""

    payload: bytes
    count: int


@dataclass(frozen=True)
class LoadSummary:
    """What :func:`remote_load` sent: records, invocations, and the loader's answers."""

    records: int
    invocations: int
    responses: tuple[Any, ...]


def load_events(
    records: Iterable[Mapping[str, Any] | Sequence[Any]],
    *,
    max_bytes: int = 5 * 2**20,
    max_records: int = 10_000,
) -> Iterator[LoadEvent]:
    """Group records into loader events (see :mod:`~efs_sqlite.aws.loader_protocol`).

    Each record is ``{"shard": str, "uid": int, "value": <JSON value>}`` (a mapping, or a
    ``(shard, uid, value)`` triple). Every payload stays under *max_bytes* (Lambda accepts 6 MB)
    and *max_records*; order is kept.
    """
    if max_bytes > MAX_EVENT_BYTES or max_bytes < 1024:
        raise ValueError(f"max_bytes must be 1 KiB..{MAX_EVENT_BYTES} bytes")
    overhead = loader_protocol.EVENT_OVERHEAD
    batch: list[bytes] = []
    size = overhead
    for index, record in enumerate(records):
        encoded = loader_protocol.encode_record(index, record)
        if overhead + len(encoded) > max_bytes:
            raise ValueError(f"record {index} alone is {len(encoded):,} bytes: over max_bytes")
        if batch and (size + 1 + len(encoded) > max_bytes or len(batch) >= max_records):
            yield LoadEvent(loader_protocol.event_payload(batch), len(batch))
            batch, size = [], overhead
        size += len(encoded) + (1 if batch else 0)
        batch.append(encoded)
    if batch:
        yield LoadEvent(loader_protocol.event_payload(batch), len(batch))


def remote_load(
    stack: Stack,
    records: Iterable[Mapping[str, Any] | Sequence[Any]],
    *,
    session: boto3.Session | None = None,
    client: Any = None,
    total: int | None = None,
    progress: bool = True,
    max_bytes: int = 5 * 2**20,
    max_records: int = 10_000,
) -> LoadSummary:
    """Send *records* to the stack's loader function, batch by batch (see :func:`load_events`).

    Each invocation is synchronous and must answer ``{"ok": true, "loaded": <records in the
    event>, ...}`` (records already present count as loaded: the loader skips equal values).
    Anything else (a function error, a rejected batch, a stand-in's canned reply) raises
    :class:`RemoteLoadError` naming the batch and the loader's reason; the batches before it stay
    loaded and a re-run is safe. *client* is a Lambda client (default: from *session*).
    """
    from tqdm.auto import tqdm

    if stack.backend == "dynamodb":
        raise RemoteLoadError(
            f"stack {stack.name!r} keeps its data in DynamoDB and has no loader function: load from "
            f"here, efs-sqlite load --backend dynamodb --table {stack.table_name} --region {stack.region}"
        )
    if client is None:
        client = (session or boto3.Session()).client("lambda", region_name=stack.region)
    responses = []
    sent = 0
    with tqdm(total=total, unit="rec", desc=f"load {stack.name}", disable=not progress) as bar:
        for number, event in enumerate(load_events(records, max_bytes=max_bytes, max_records=max_records)):
            reply = client.invoke(
                FunctionName=stack.loader_function,
                InvocationType="RequestResponse",
                Payload=event.payload,
            )
            body = reply["Payload"].read()
            where = f"batch {number} (records {sent}..{sent + event.count - 1})"
            if reply.get("FunctionError"):
                raise RemoteLoadError(f"{where}: the loader failed: {body[:2000].decode(errors='replace')}")
            try:
                answer = loader_protocol.read_answer(body, event.count, first=sent)
            except ValueError as error:
                raise RemoteLoadError(f"{where}: {error}") from None
            responses.append(answer)
            sent += event.count
            bar.update(event.count)
    return LoadSummary(records=sent, invocations=len(responses), responses=tuple(responses))


def remote_calibrate(
    stack: Stack, *, rounds: int = 20, session: boto3.Session | None = None, client: Any = None
) -> dict[str, Any]:
    """Run the calibration workload in the stack's loader function, on its EFS mount.

    Returns the loader's answer (see :mod:`~efs_sqlite.aws.loader_protocol`): the
    ``/proc/self/mountstats`` deltas per NFS operation, which
    ``efs_sqlite.calibration.Calibration.from_answer(answer).profile()`` turns into a latency
    profile. Raises :class:`CalibrationError` if the function fails or refuses.
    """
    if client is None:
        client = (session or boto3.Session()).client("lambda", region_name=stack.region)
    reply = client.invoke(
        FunctionName=stack.loader_function,
        InvocationType="RequestResponse",
        Payload=loader_protocol.calibration_event(rounds),
    )
    body = reply["Payload"].read()
    if reply.get("FunctionError"):
        raise CalibrationError(f"the loader failed: {body[:2000].decode(errors='replace')}")
    try:
        return loader_protocol.read_calibration(body)
    except ValueError as error:
        raise CalibrationError(str(error)) from None


def signed_query(
    url: str,
    query: str,
    variables: Mapping[str, Any] | None = None,
    *,
    session: boto3.Session | None = None,
    region: str | None = None,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """POST a GraphQL query to an ``AWS_IAM`` Function URL, signed with SigV4 (service ``lambda``).

    Credentials come from *session* (default: the usual boto3 chain). *region* defaults to the one
    in a ``*.lambda-url.<region>.on.aws`` URL, else the session's. Returns the GraphQL response
    (``data`` and/or ``errors``); raises :class:`AwsError` for any other answer (e.g. 403).
    """
    session = session or boto3.Session()
    match = re.search(r"\.lambda-url\.([a-z0-9-]+)\.on\.aws", url)
    region = region or (match[1] if match else None) or session.region_name
    if not region:
        raise ValueError("no region for signing: pass region=")
    credentials = session.get_credentials()
    if credentials is None:
        raise AwsError("no AWS credentials found (set AWS_PROFILE or the AWS_* variables)")
    body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
    request = AWSRequest("POST", url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(credentials.get_frozen_credentials(), "lambda", region).add_auth(request)
    prepared = request.prepare()
    http = urllib.request.Request(prepared.url, data=body, headers=dict(prepared.headers), method="POST")
    try:
        with urllib.request.urlopen(http, timeout=timeout) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and ("data" in answer or "errors" in answer):
        return answer
    raise AwsError(f"HTTP {status} from {url}: {text[:500].decode(errors='replace')}")
