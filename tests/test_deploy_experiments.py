"""Notebook 03's local server: the real ``efs-sqlite serve`` on 127.0.0.1, answering GraphQL over
HTTP while the ``with`` block runs, and gone after it."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from efs_sqlite import ShardStore
from efs_sqlite.experiments import BENCHMARK_QUERY, LocalServer, benchmark_graph, serve_local

#: A store's root and the variables of the benchmark query on it.
Served = tuple[Path, dict[str, str]]


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Served:
    """A store holding the benchmark graph, and the benchmark query's variables."""
    root = tmp_path_factory.mktemp("served")
    with ShardStore(root) as store:
        return root, benchmark_graph(store, parties=4, transactions=2)


def assert_gone(server: LocalServer) -> None:
    assert server.process.poll() is not None, "the server process still runs"
    with pytest.raises(urllib.error.URLError):  # nothing listens on the port any more
        urllib.request.urlopen(f"{server.url}/healthz", timeout=2)


def test_the_server_answers_a_graphql_query_over_http_and_is_gone_after_exit(graph: Served) -> None:
    root, variables = graph
    with serve_local(root) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.health == {"status": "ok"}
        reply = server.graphql(BENCHMARK_QUERY, variables)
        assert server.process.poll() is None
    assert reply.status == 200 and "errors" not in reply.body
    claim = reply.body["data"]["claim"]
    assert claim["id"] == variables["id"] and claim["claimTypeCode"] == "MOTOR"
    assert (
        claim["partiesConnection"]["totalCount"] == 4 and claim["transactionsConnection"]["totalCount"] == 2
    )
    assert reply.elapsed_ms > 0
    assert_gone(server)


def test_an_invalid_query_is_an_error_reply_and_the_schema_is_served(graph: Served) -> None:
    root, _ = graph
    with serve_local(root) as server:
        bad = server.graphql("{ claim(id: 1) { noSuchField } }")
        sdl = server.get_text("/schema.graphql")
    assert bad.status == 400 and bad.body["errors"]
    assert "type Claim" in sdl
    assert_gone(server)


def test_the_server_stops_when_the_block_raises(graph: Served) -> None:
    with pytest.raises(ZeroDivisionError), serve_local(graph[0]) as server:
        _ = 1 / 0
    assert_gone(server)


def test_a_server_that_cannot_start_says_why(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="did not start") as raised, serve_local(tmp_path / "missing"):
        pass
    assert "missing" in str(raised.value)  # the server's own output names the folder
