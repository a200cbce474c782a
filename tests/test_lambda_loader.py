"""The loader Lambda, called in-process with real event dicts: valid batches, malformed events,
hostile records (nothing written, files unchanged), maintenance actions, never a traceback."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from efs_sqlite.aws.fakes import import_handler
from efs_sqlite.data import generate_records
from efs_sqlite.model import INSURANCE
from efs_sqlite.store import ShardStore


@pytest.fixture
def mount(tmp_path: Path) -> Path:
    return tmp_path / "efs-mount"


@pytest.fixture
def lam(mount: Path) -> Iterator[ModuleType]:
    """A fresh import of the handler module with ``MOUNT_PATH`` pointing at a temporary folder."""
    module = import_handler("loader", mount)
    yield module
    module.STORE.close()


def call(lam: ModuleType, event: Any) -> dict[str, Any]:
    answer = lam.handler(event, None)
    json.dumps(answer)  # every answer is JSON
    assert isinstance(answer, dict) and isinstance(answer["ok"], bool)
    if not answer["ok"]:
        assert isinstance(answer["error"], str) and "Traceback" not in answer["error"]
    return answer


def checksums(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*")}


RECORDS = list(itertools.islice(generate_records("small", seed=21), 3000))


def test_store_is_opened_at_import_under_mount_path(lam: ModuleType, mount: Path) -> None:
    assert lam.STORE.root == mount and mount.is_dir()


def test_a_valid_batch_loads_and_a_resend_is_skipped(lam: ModuleType, mount: Path) -> None:
    answer = call(lam, {"action": "load", "records": RECORDS})
    assert answer["ok"] and answer["loaded"] == len(RECORDS) and answer["skipped"] == 0
    assert sum(answer["shards"].values()) == len(RECORDS)
    with ShardStore(mount) as store:
        for r in RECORDS:
            if r["shard"] == "_type":
                assert store.get("_type", r["uid"]) == r["value"]
            elif not isinstance(r["value"], list):
                assert store.get(r["shard"], r["uid"]) == INSURANCE.field_for_shard(r["shard"]).coerce(
                    r["value"]
                )
        claim = next(r for r in RECORDS if r["shard"] == "claim_parties")
        assert store.list_page("claim_parties", claim["uid"], 0, 1000) == claim["value"]
        amount = next(r for r in RECORDS if r["shard"] == "transaction_amount")
        assert str(store.get("transaction_amount", amount["uid"])) == amount["value"]
    again = call(lam, {"action": "load", "records": RECORDS})
    assert again["loaded"] == again["skipped"] == len(RECORDS)


@pytest.mark.parametrize(
    "event",
    [
        None,
        "load",
        ["action", "load"],
        42,
        {},
        {"action": None},
        {"action": 5},
        {"action": "LOAD"},
        {"action": "sql", "query": "SELECT 1"},
        {"action": "exec", "sql": "DROP TABLE items"},
        {"action": "load"},
        {"action": "load", "records": None},
        {"action": "load", "records": []},
        {"action": "load", "records": "[{}]"},
        {"action": "load", "records": {"shard": "_type", "uid": 1, "value": "Claim"}},
        {"action": "load", "records": RECORDS[:2], "sql": "DROP TABLE items"},
        {"action": "stats", "root": "/"},
        {"action": "clear"},
        {"action": "clear", "confirm": "yes"},
        {"action": "clear", "confirm": ["efs-mount"]},
        {"action": "vacuum", "shard": "../x"},
        {"action": "vacuum", "shard": "claim_type_code; DROP TABLE items"},
    ],
)
def test_malformed_events_answer_an_error_and_change_nothing(
    lam: ModuleType, mount: Path, event: Any
) -> None:
    call(lam, {"action": "load", "records": RECORDS[:500]})
    before = checksums(mount)
    answer = call(lam, event)
    assert answer["ok"] is False
    assert checksums(mount) == before


def test_a_batch_with_hostile_records_is_rejected_whole(lam: ModuleType, mount: Path) -> None:
    call(lam, {"action": "load", "records": RECORDS[:500]})
    before = checksums(mount)
    hostile = [
        {"shard": "../x", "uid": 1, "value": "Claim"},
        {"shard": "../../etc/passwd", "uid": 1, "value": "x"},
        {"shard": "/tmp/evil", "uid": 1, "value": "x"},
        {"shard": "claim_type_code; DROP TABLE items", "uid": 1, "value": "x"},
        {"shard": "claim_type_code", "uid": 2**70, "value": "x"},
        {"shard": "claim_type_code", "uid": -1, "value": "x"},
        {"shard": "claim_type_code", "uid": "1 OR 1=1", "value": "x"},
        {"shard": "claim_type_code", "uid": 1, "value": {"$gt": ""}},
        {"shard": "claim_timestamp", "uid": 1, "value": "'; DROP TABLE items; --"},
        {"shard": "transaction_amount", "uid": 1, "value": "1e999999"},
        {"shard": "claim_parties", "uid": 1, "value": [1, 2**64]},
        {"shard": "_type", "uid": 1, "value": "__import__('os')"},
        ["claim_type_code", 1, "x"],
        "x" * 10_000,
    ]
    batch = [*RECORDS[500:1000], *hostile, *RECORDS[1000:1200]]
    answer = call(lam, {"action": "load", "records": batch})
    assert answer["ok"] is False and "nothing was written" in answer["error"]
    assert [bad["index"] for bad in answer["invalid"]] == list(range(500, 500 + len(hostile)))
    assert all(isinstance(bad["error"], str) and len(bad["error"]) < 400 for bad in answer["invalid"])
    assert checksums(mount) == before  # not even the valid records around them
    assert not list(mount.parent.rglob("x.sqlite")) and not Path("/tmp/evil.sqlite").exists()


def test_invalid_records_are_counted_and_listed_up_to_a_limit(lam: ModuleType) -> None:
    bad = [{"shard": "claim_type_code", "uid": 0, "value": "x"}] * (lam.MAX_LISTED + 20)
    answer = call(lam, {"action": "load", "records": bad})
    assert answer["error"].startswith(f"{len(bad)} of {len(bad)} records are invalid")
    assert len(answer["invalid"]) == lam.MAX_LISTED


def test_too_many_records_are_refused(lam: ModuleType, mount: Path) -> None:
    records = [{"shard": "_type", "uid": n, "value": "Claim"} for n in range(1, lam.MAX_RECORDS + 2)]
    answer = call(lam, {"action": "load", "records": records})
    assert "at most" in answer["error"] and not list(mount.iterdir())


def test_a_conflicting_value_is_refused_and_not_written(lam: ModuleType, mount: Path) -> None:
    call(lam, {"action": "load", "records": RECORDS})
    original = next(r for r in RECORDS if r["shard"] == "claim_type_code")
    changed = {**original, "value": "CHANGED"}
    answer = call(lam, {"action": "load", "records": [changed]})
    assert answer["ok"] is False and "already holds" in answer["error"]
    assert answer["shard"] == "claim_type_code" and answer["index"] == 0
    with ShardStore(mount) as store:
        assert store.get("claim_type_code", original["uid"]) == original["value"]


def test_maintenance_actions(lam: ModuleType, mount: Path) -> None:
    call(lam, {"action": "load", "records": RECORDS})
    integrity = call(lam, {"action": "integrity"})
    assert integrity["ok"] and set(integrity["shards"].values()) == {"ok"}
    assert set(integrity["shards"]) == {p.stem for p in mount.glob("*.sqlite")}
    stats = call(lam, {"action": "stats"})
    shards_of = {r["shard"] for r in RECORDS}
    assert stats["ok"] and set(stats["shards"]) == shards_of
    assert stats["shards"]["_type"]["rows"] == sum(r["shard"] == "_type" for r in RECORDS)
    assert call(lam, {"action": "vacuum", "shard": "claim_type_code"})["vacuumed"] == ["claim_type_code"]
    assert set(call(lam, {"action": "vacuum"})["vacuumed"]) == shards_of
    assert call(lam, {"action": "clear", "confirm": "wrong"})["ok"] is False
    assert len(list(mount.glob("*.sqlite"))) == len(shards_of)
    cleared = call(lam, {"action": "clear", "confirm": mount.name})
    assert cleared == {"ok": True, "removed": len(shards_of)} and not list(mount.glob("*.sqlite"))
    # The warm function keeps working after a clear.
    assert call(lam, {"action": "load", "records": RECORDS[:100]})["loaded"] == 100


def test_a_damaged_shard_answers_an_error_not_a_traceback(lam: ModuleType, mount: Path) -> None:
    call(lam, {"action": "load", "records": RECORDS[:200]})
    lam.STORE.close()
    (mount / "claim_type_code.sqlite").write_bytes(b"not a database at all" * 300)
    answer = call(lam, {"action": "integrity"})
    assert answer["ok"] is False and "['claim_type_code']" in answer["error"]
    assert "NotADBError" in answer["shards"]["claim_type_code"] and answer["shards"]["_type"] == "ok"
    answer = call(lam, {"action": "load", "records": RECORDS[:200]})
    assert answer["ok"] is False and answer["shard"] == "claim_type_code"
    assert "NotADBError" in answer["error"]


def test_loads_do_not_leak_open_files(lam: ModuleType) -> None:
    fds = Path(f"/proc/{os.getpid()}/fd")
    call(lam, {"action": "load", "records": RECORDS[:300]})
    opened = len(list(fds.iterdir()))
    for _ in range(5):
        call(lam, {"action": "load", "records": RECORDS[:300]})
    assert len(list(fds.iterdir())) <= opened
