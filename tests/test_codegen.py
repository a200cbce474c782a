"""The code generator of compiled objects: its source, pinned by a snapshot, and its tracebacks."""

from __future__ import annotations

import linecache
import tempfile
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from efs_sqlite.graphql import GraphQLAPI, codegen
from efs_sqlite.graphql.codegen import Constant, NodeId, Step, StoredLeaf, compile_object, object_source
from efs_sqlite.model import INSURANCE
from efs_sqlite.store import ShardStore

SNAPSHOT = Path(__file__).resolve().parent / "snapshots" / "complete_Claim.txt"
CLAIM_QUERY = """query($id: ID!) {
  claim(id: $id) { __typename id claimIdentifier claimTypeCode timestamp parties:
    partiesConnection(first: 2) { totalCount } }
}"""


def _unused(ctx: Any, value: Any) -> Any:
    raise AssertionError("the source does not depend on the steps' functions")


def claim_steps() -> tuple[Any, ...]:
    """The steps the compiled execution makes of ``CLAIM_QUERY``'s claim selection."""
    claim = INSURANCE.type("Claim")

    def leaf(key: str, field: str, unchanged: type | None, iso: type | None) -> StoredLeaf:
        return StoredLeaf(key, claim.shard(field), _unused, _unused, unchanged, iso)

    return (
        Constant("__typename", "Claim"),
        NodeId("id"),
        leaf("claimIdentifier", "identifier", int, None),
        leaf("claimTypeCode", "type_code", str, None),
        leaf("timestamp", "timestamp", None, datetime),
        Step("parties", _unused, _unused),
    )


def test_object_source_matches_the_snapshot() -> None:
    assert object_source("Claim", claim_steps()) == SNAPSHOT.read_text(encoding="utf-8")


def test_the_executor_compiles_the_snapshot_source() -> None:
    api = GraphQLAPI(ShardStore(tempfile.mkdtemp()))
    created = api.execute(
        'mutation { createClaim(input: {claimIdentifier: 3, claimTypeCode: "c", '
        'timestamp: "2024-05-01T12:00:00Z"}) { id } }'
    )
    claim_id = created["data"]["createClaim"]["id"]
    before = api.cache_info()["fallbacks"]
    result = api.execute(CLAIM_QUERY, {"id": claim_id})
    assert result == {
        "data": {
            "claim": {
                "__typename": "Claim",
                "id": claim_id,
                "claimIdentifier": 3,
                "claimTypeCode": "c",
                "timestamp": "2024-05-01T12:00:00+00:00",
                "parties": {"totalCount": 0},
            }
        }
    }
    assert api.cache_info()["fallbacks"] == before  # answered by the compiled functions
    expected = SNAPSHOT.read_text(encoding="utf-8")
    sources = [
        "".join(linecache.getlines(name))
        for name in list(linecache.cache)
        if name.startswith("<efs_sqlite.graphql generated complete_Claim ")
    ]
    assert expected in sources


def boom(ctx: Any, source: Any) -> Any:
    raise ValueError("boom")


def test_an_error_in_generated_code_shows_the_generated_line() -> None:
    complete = compile_object("Party", (Constant("__typename", "Party"), Step("partyIdentifier", boom)))
    assert complete.__name__ == "complete_Party"
    filename = complete.__code__.co_filename
    assert filename.startswith("<efs_sqlite.graphql generated complete_Party ") and filename.endswith(">")
    with pytest.raises(ValueError, match="boom") as caught:
        complete(None, object())
    frames = traceback.extract_tb(caught.value.__traceback__)
    [frame] = [f for f in frames if f.filename == filename]
    assert frame.name == "complete_Party"
    assert linecache.getline(filename, frame.lineno) == "        'partyIdentifier': get1(ctx, source),\n"
    assert frame.line == "'partyIdentifier': get1(ctx, source),"
    linecache.checkcache()  # no file behind it, and it stays
    assert linecache.getline(filename, frame.lineno).strip() == frame.line


def test_the_same_source_is_one_entry_and_old_entries_are_evicted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codegen, "MAX_SOURCES", 3)
    first = compile_object("Evicted", (Constant("k", "first"),)).__code__.co_filename
    again = compile_object("Evicted", (Constant("k", "first"),)).__code__.co_filename
    assert again == first and first in linecache.cache
    names = [compile_object("Evicted", (Constant("k", f"v{i}"),)).__code__.co_filename for i in range(3)]
    assert len(set(names)) == 3 and first not in names
    assert first not in linecache.cache  # the oldest of this module's entries went first
    assert all(name in linecache.cache for name in names)
