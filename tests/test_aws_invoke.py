"""efs_sqlite.aws.invoke and .loader_protocol: loader events, loading through the real loader
handler in process, and SigV4-signed queries checked by a local server."""

from __future__ import annotations

import http.server
import io
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from efs_sqlite import aws
from efs_sqlite.aws.fakes import import_handler

# -- loading ----------------------------------------------------------------------------------


def test_load_events_stay_under_the_limit_and_keep_every_record() -> None:
    records = [{"shard": "claim_type_code", "uid": i, "value": "é" * (i % 700)} for i in range(3000)]
    events = list(aws.load_events(records, max_bytes=64 * 1024, max_records=500))
    assert len(events) > 6
    decoded = []
    for event in events:
        assert len(event.payload) <= 64 * 1024
        body = json.loads(event.payload)
        assert body["action"] == "load" and len(body["records"]) == event.count <= 500
        decoded += body["records"]
    assert decoded == records
    assert [json.loads(e.payload) for e in aws.load_events([("s", 1, [1, 2])])] == [
        {"action": "load", "records": [{"shard": "s", "uid": 1, "value": [1, 2]}]}
    ]


def test_load_events_reject_what_the_loader_could_not_take() -> None:
    for bad, match in (
        ([{"shard": "s", "uid": "1", "value": 1}], "uid an int"),
        ([{"shard": "s", "uid": True, "value": 1}], "uid an int"),
        ([{"shard": "s", "uid": 1}], "exactly shard, uid and value"),
        ([("s", 1, float("nan"))], "not JSON"),
        ([("s", 1, object())], "not JSON"),
        ([("s", 1, "x" * 5000)], "alone is"),
    ):
        with pytest.raises(ValueError, match=match):
            list(aws.load_events(bad, max_bytes=4096))


def test_load_through_the_real_loader_handler(tmp_path: Path) -> None:
    """load() against the loader's own handler, invoked in-process (moto cannot run it)."""
    module = import_handler("loader", tmp_path)

    class InProcessLambda:
        def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
            assert (FunctionName, InvocationType) == ("efs-sqlite-local-loader", "RequestResponse")
            answer = json.dumps(module.handler(json.loads(Payload), None)).encode()
            return {"StatusCode": 200, "Payload": io.BytesIO(answer)}

    stack = aws.Stack(
        "local", "us-east-1", "vpc", (), "sg-1", "sg-2", "fs", "fsap", "arn:ap", "arn:role",
        "efs-sqlite-local-graphql", "efs-sqlite-local-loader", "https://x", "AWS_IAM",
    )  # fmt: skip
    records = [("claim_type_code", n, f"T{n}") for n in range(1, 2001)]
    summary = aws.remote_load(stack, records, client=InProcessLambda(), max_records=300, progress=False)
    assert (summary.records, summary.invocations) == (2000, 7)
    assert sum(r["shards"]["claim_type_code"] for r in summary.responses) == 2000
    again = aws.remote_load(stack, records, client=InProcessLambda(), max_records=300, progress=False)
    assert sum(r["skipped"] for r in again.responses) == 2000  # a re-run is safe: nothing rewritten
    bad = [*records[:400], ("claim_type_code", 0, "T0")]
    with pytest.raises(
        aws.RemoteLoadError, match=r"batch 1 \(records 300\.\.400\): the loader refused it.*\n  record 400: "
    ):
        aws.remote_load(stack, bad, client=InProcessLambda(), max_records=300, progress=False)


# -- signed queries ---------------------------------------------------------------------------

KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


class SigV4CheckingServer(http.server.BaseHTTPRequestHandler):
    """Answers a GraphQL echo only when the request's SigV4 signature checks out for KEY/SECRET."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        auth = re.fullmatch(
            r"AWS4-HMAC-SHA256 Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request, "
            r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})",
            self.headers.get("Authorization", ""),
        )
        ok = False
        if auth and auth[1] == KEY and auth[3] == "lambda":
            signed = {h: self.headers[h] for h in auth[4].split(";")}
            request = AWSRequest(
                "POST", f"http://{self.headers['host']}{self.path}", data=body, headers=signed
            )
            request.context["timestamp"] = self.headers["X-Amz-Date"]
            signer = SigV4Auth(Credentials(KEY, SECRET), "lambda", auth[2])
            expected = signer.signature(
                signer.string_to_sign(request, signer.canonical_request(request)), request
            )
            ok = expected == auth[5]
        status, answer = (
            (200, {"data": {"echo": json.loads(body)}}) if ok else (403, {"Message": "Forbidden"})
        )
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def signing_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SigV4CheckingServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/graphql"
    server.shutdown()
    thread.join()


def test_signed_query_signs_with_sigv4_for_lambda(signing_server: str) -> None:
    good = boto3.Session(aws_access_key_id=KEY, aws_secret_access_key=SECRET)
    answer = aws.signed_query(signing_server, "{ claim { id } }", {"n": 1}, session=good, region="us-east-1")
    assert answer == {"data": {"echo": {"query": "{ claim { id } }", "variables": {"n": 1}}}}
    forged = boto3.Session(aws_access_key_id=KEY, aws_secret_access_key="not-the-secret")
    with pytest.raises(aws.AwsError, match="HTTP 403"):
        aws.signed_query(signing_server, "{ claim { id } }", session=forged, region="us-east-1")
