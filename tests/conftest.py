"""Shared pytest fixtures. Each section belongs to one concern; keep them delimited."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# -- AWS: a moto server on 127.0.0.1, a tiny Lambda zip (efs_sqlite.aws) ----------------------


@pytest.fixture
def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS credentials, profile, endpoint or instance metadata anywhere boto3 looks."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server for the whole session; boto3 reaches it through ``AWS_ENDPOINT_URL``.

    The environment (endpoint, fake credentials, region us-east-1) is set for the session and
    restored after it, so notebook kernels started meanwhile inherit it too.
    """
    from efs_sqlite.aws.fakes import moto_server

    with moto_server("us-east-1") as url:
        yield url


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A source tree with the project's layout and the tiny handlers of ``_tiny_project``."""
    from _tiny_project import TINY_HANDLERS, make_project

    # boto3 is the only dependency, and the runtime provides it: pip has nothing to install.
    return make_project(tmp_path_factory.mktemp("tiny"), TINY_HANDLERS, ["boto3>=1.34"])


@pytest.fixture(scope="session")
def tiny_zip(tiny_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A deployable zip (Python 3.13, the stack's architecture) without dependencies."""
    from efs_sqlite import aws

    return aws.build_zip(tmp_path_factory.mktemp("tiny-zip"), project_root=tiny_project)


# -- end AWS -----------------------------------------------------------------------------------


# -- GraphQL: a small insurance graph (efs_sqlite.graphql, efs_sqlite.app, the graphql Lambda) ---


@pytest.fixture(scope="session")
def _insurance_template(tmp_path_factory):
    """The shard files of the ``insurance`` graph, built once per session (no fsync: a template)."""
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace

    from efs_sqlite.graph import Graph
    from efs_sqlite.store import ShardStore

    root = tmp_path_factory.mktemp("insurance") / "store"
    with ShardStore(root, synchronous="off") as store:
        graph = Graph(store)
        day = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
        claim = graph.create_node("Claim", {"identifier": 4242, "type_code": "MOTOR", "timestamp": day})
        parties = [
            graph.create_node(
                "Party", {"identifier": 100 + i, "timestamp": day + timedelta(days=i), "claims": [claim]}
            )
            for i in range(10)
        ]
        transactions = [
            graph.create_node(
                "Transaction",
                {
                    "identifier": f"FT-{i}",
                    "timestamp": day + timedelta(hours=i),
                    "claim": claim,
                    "amount": f"{i}10.5",
                    **({"source_system_code": "SAP"} if i == 0 else {}),
                },
            )
            for i in range(3)
        ]
        graph.update_node(claim, {"parties": parties, "transactions": transactions})
    return SimpleNamespace(root=root, claim=claim, parties=parties, transactions=transactions)


@pytest.fixture
def insurance(_insurance_template, tmp_path):
    """A fresh store holding one claim with 10 parties (each listing the claim back) and 3
    transactions; a namespace of ``root``, ``store``, ``graph``, ``claim``, ``parties``,
    ``transactions`` (int ids) and ``ids`` (int id -> its 11-character string)."""
    import shutil
    from types import SimpleNamespace

    from efs_sqlite.graph import Graph
    from efs_sqlite.store import ShardStore
    from efs_sqlite.uid import encode

    t = _insurance_template
    root = shutil.copytree(t.root, tmp_path / "store")
    store = ShardStore(root)
    ids = {uid: encode(uid) for uid in [t.claim, *t.parties, *t.transactions]}
    yield SimpleNamespace(
        root=root,
        store=store,
        graph=Graph(store),
        claim=t.claim,
        parties=t.parties,
        transactions=t.transactions,
        ids=ids,
    )
    store.close()


# -- end GraphQL -------------------------------------------------------------------------------


# -- store backends: a ShardStore and a DynamoStore (efs_sqlite.backend, efs_sqlite.dynamodb) ----

_tables = iter(range(1, 10**9))


def fresh_dynamo_store(**options: Any) -> Any:
    """A DynamoStore on a new table of the in-process moto server (efs_sqlite.dynamodb.local)."""
    from efs_sqlite.dynamodb import local_store

    return local_store(f"test-{os.getpid()}-{next(_tables)}", **options)


@pytest.fixture
def dynamo_store() -> Iterator[Any]:
    """A DynamoStore on a fresh table of the local moto server; the table is dropped afterwards."""
    store = fresh_dynamo_store()
    yield store
    store.client.delete_table(TableName=store.table)
    store.close()


@pytest.fixture(params=["efs", "dynamodb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Each store backend in turn: a ShardStore on ``tmp_path``, a DynamoStore on a fresh table."""
    if request.param == "efs":
        from efs_sqlite.store import ShardStore

        with ShardStore(tmp_path / "store") as store:
            yield store
    else:
        yield request.getfixturevalue("dynamo_store")


# -- end store backends --------------------------------------------------------------------------
