"""``efs-sqlite load|stats --backend efs|dynamodb``: the same data set, either store, from the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from efs_sqlite.cli import main
from efs_sqlite.data import Scale, generate_records
from efs_sqlite.dynamodb import local_endpoint


@pytest.fixture
def records(tmp_path: Path) -> Path:
    path = tmp_path / "part.jsonl"
    # A whole (tiny) data set: both sides of every link in it, as the loader's check wants.
    rows = list(generate_records(Scale("cli", claims=50, parties=40, hubs=1, hub_claims=10), seed=3))
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def stats(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["stats", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_load_and_stats_on_both_backends(
    records: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    efs = ["--root", str(tmp_path / "store")]
    dynamodb = [
        "--backend",
        "dynamodb",
        "--table",
        "cli-both",
        "--endpoint-url",
        local_endpoint(),
        "--region",
        "us-east-1",
    ]
    count = len(records.read_text(encoding="utf-8").splitlines())
    for store in (efs, dynamodb):
        assert main(["load", *store, str(records), "--no-progress"]) == 0
        assert json.loads(capsys.readouterr().out)["records"] == count
        assert main(["load", *store, str(records), "--no-progress"]) == 0  # a rerun skips everything
        assert json.loads(capsys.readouterr().out)["skipped"] == count
    on_efs, on_dynamodb = stats(capsys, *efs, "--quick"), stats(capsys, *dynamodb)
    assert on_dynamodb["table"] == "cli-both"
    assert {k: on_dynamodb[k] for k in ("total_rows", "total_refs")} == {
        k: on_efs[k] for k in ("total_rows", "total_refs")
    }
    assert {s: v["rows"] for s, v in on_dynamodb["shards"].items()} == {
        s: v["rows"] for s, v in on_efs["shards"].items()
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["stats"], "--backend efs needs --root"),
        (["stats", "--backend", "dynamodb"], "--backend dynamodb needs --table NAME"),
        (["stats", "--backend", "dynamodb", "--table", "t", "--endpoint-url", "LOCAL"], "does not exist"),
    ],
)
def test_what_is_missing_is_said(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = [local_endpoint() if a == "LOCAL" else a for a in argv]
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.usefixtures("no_aws_credentials")
def test_no_credentials_and_no_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", "--backend", "dynamodb", "--table", "t", "--region", "us-east-1"]) == 2
    err = capsys.readouterr().err
    assert "needs AWS credentials" in err and "--endpoint-url" in err
