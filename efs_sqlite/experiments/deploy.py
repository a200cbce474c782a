"""The local server of notebook 03: the real GraphQL server (``efs-sqlite serve``) on 127.0.0.1.

:func:`serve_local` starts it on a free port over a loaded store, waits until it answers its
health check, and stops it on exit; the :class:`LocalServer` it yields sends requests to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple


class Reply(NamedTuple):
    """An HTTP answer to a GraphQL request: its status, its decoded JSON body, and the time it took."""

    status: int
    body: Any
    elapsed_ms: float


@dataclass(frozen=True)
class LocalServer:
    """A running server: ``url`` (``http://127.0.0.1:<port>``), ``health`` (what ``GET /healthz``
    answered once it was up) and its ``process``."""

    url: str
    health: Mapping[str, Any]
    process: subprocess.Popen[bytes]

    def graphql(
        self, query: str, variables: Mapping[str, Any] | None = None, *, timeout_s: float = 10
    ) -> Reply:
        """``POST /graphql``; an error status (a bad query is a 400) is a reply too, not an exception."""
        request = urllib.request.Request(
            f"{self.url}/graphql",
            json.dumps({"query": query, "variables": dict(variables or {})}).encode(),
            # The GraphQL-over-HTTP media type first, as the spec recommends: a refused query is a 400.
            {"content-type": "application/json", "accept": _ACCEPT},
        )
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as r:
                status, body = r.status, json.load(r)
        except urllib.error.HTTPError as exc:
            status, body = exc.code, json.load(exc)
        return Reply(status, body, (time.perf_counter() - start) * 1000)

    def get_text(self, path: str, *, timeout_s: float = 10) -> str:
        """The body of ``GET <path>`` (e.g. ``/schema.graphql``) as text."""
        with urllib.request.urlopen(f"{self.url}{path}", timeout=timeout_s) as r:
            return r.read().decode()


_ACCEPT = "application/graphql-response+json, application/json;q=0.9"


def _free_port() -> int:
    # The port is released before the server binds it: another process could take it meanwhile,
    # which the health check then reports as a server that did not start.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(process: subprocess.Popen[bytes], timeout_s: float = 10) -> None:
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def serve_local(
    root: str | os.PathLike[str], *, log_level: str = "warning", start_timeout_s: float = 30
) -> Iterator[LocalServer]:
    """Serve the store at ``root`` (it must exist) on ``127.0.0.1`` for the ``with`` block.

    The server is ``efs-sqlite serve`` in a child process of this interpreter, as a user runs it.
    It is up when ``GET /healthz`` answers; if it exits first, or is not up within
    ``start_timeout_s``, RuntimeError carries its output. On exit the server is stopped and waited for.
    """
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "efs_sqlite.cli", "serve", "--root", os.fspath(root)]
    command += ["--port", str(port), "--log-level", log_level]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1) as r:
                    health = json.load(r)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    _stop(process)
                    assert process.stdout is not None
                    output = process.stdout.read().decode(errors="replace")
                    raise RuntimeError(f"the server did not start: {output}") from None
                time.sleep(0.1)
        yield LocalServer(url, health, process)
    finally:
        if process.poll() is None:
            _stop(process)
        if process.stdout is not None:
            process.stdout.close()
