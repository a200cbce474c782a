"""The seeded data set: determinism, a consistent graph with hubs, the files and their manifest."""

from __future__ import annotations

import gzip
import json
import tracemalloc
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from efs_sqlite.data import (
    GENERATOR_VERSION,
    SCALES,
    Scale,
    generate_dataset,
    generate_records,
    read_manifest,
    read_records,
)
from efs_sqlite.errors import DataSetError
from efs_sqlite.links import check_links
from efs_sqlite.loader import validate_record
from efs_sqlite.model import INSURANCE


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def check_graph(records: list[dict[str, Any]], scale: Scale) -> None:
    """Both sides of every link agree, every node is typed and complete, the skew is there."""
    by_shard: dict[str, dict[int, Any]] = defaultdict(dict)
    for r in records:
        assert r["uid"] not in by_shard[r["shard"]], f"two values for {r['uid']} in {r['shard']}"
        by_shard[r["shard"]][r["uid"]] = r["value"]
    types = by_shard["_type"]
    nodes = {t: {uid for uid, v in types.items() if v == t} for t in INSURANCE.types}
    assert len(nodes["Claim"]) == scale.claims and len(nodes["Party"]) == scale.parties
    # Every value belongs to a node of the shard's type, and every required field is present.
    for shard, values in by_shard.items():
        if shard != "_type":
            node_type, field = INSURANCE.owner_of_shard(shard)
            assert set(values) <= nodes[node_type.name], shard
            if field.required:
                assert set(values) == nodes[node_type.name], shard
    claim_parties = {(c, p) for c, ps in by_shard["claim_parties"].items() for p in ps}
    party_claims = {(c, p) for p, cs in by_shard["party_claims"].items() for c in cs}
    assert claim_parties == party_claims
    assert sum(map(len, by_shard["claim_parties"].values())) == len(claim_parties)  # no duplicates
    assert {p for _, p in claim_parties} <= nodes["Party"] and {c for c, _ in claim_parties} <= nodes["Claim"]
    claim_tx = {(c, t) for c, ts in by_shard["claim_transactions"].items() for t in ts}
    assert claim_tx == {(c, t) for t, c in by_shard["transaction_claim"].items()}
    assert set(by_shard["claim_parties"]) == nodes["Claim"]  # every claim has a party
    sizes = Counter(len(cs) for cs in by_shard["party_claims"].values())
    assert sizes[scale.hub_claims] >= scale.hubs
    regular = [n for n in sizes.elements() if n != scale.hub_claims]
    assert max(regular) <= 12 and sorted(regular)[len(regular) // 2] <= 2  # most have a few


def test_small_scale_is_a_consistent_skewed_graph() -> None:
    records = list(generate_records("small", seed=11))
    check_graph(records, SCALES["small"])
    assert SCALES["small"].hub_claims == SCALES["small"].claims // 4


@pytest.mark.parametrize("seed", [0, 11, 12345])
def test_the_generated_inverse_pairs_agree(seed: int) -> None:
    """What the loader checks before loading (efs_sqlite.links): every link is held by both sides."""
    assert check_links(lambda: generate_records("small", seed=seed)) == []


@pytest.mark.slow
def test_default_scale_size_and_hubs() -> None:
    records = list(generate_records("default", seed=0))
    check_graph(records, SCALES["default"])
    nodes = sum(r["shard"] == "_type" for r in records)
    assert 10_000 <= nodes < 100_000  # tens of thousands of nodes
    assert 400_000 <= len(records) <= 700_000  # about half a million field values
    hubs = [r for r in records if r["shard"] == "party_claims" and len(r["value"]) >= 25_000]
    assert len(hubs) == SCALES["default"].hubs


def test_every_record_fits_the_model() -> None:
    for record in generate_records("small", seed=5):
        shard, uid, value = validate_record(record)
        assert 0 < uid < 2**63
        if shard == "transaction_amount":
            assert value.as_tuple().exponent == -2
        if shard in ("claim_identifier", "party_identifier"):
            assert 0 < value < 2**31  # GraphQL's Int


def test_values_look_real() -> None:
    records = list(generate_records("small", seed=2))
    codes = Counter(r["value"] for r in records if r["shard"] == "claim_type_code")
    assert codes.most_common(1)[0][0] == "MOTOR" and len(codes) >= 5
    stamps = [r["value"] for r in records if r["shard"].endswith("_timestamp")]
    assert all(s.endswith("Z") and "2015" < s < "2026" for s in stamps)
    amounts = [float(r["value"]) for r in records if r["shard"] == "transaction_amount"]
    assert any(a < 0 for a in amounts) and max(amounts) > 1000
    identifiers = [r["value"] for r in records if r["shard"] == "transaction_identifier"]
    assert len(set(identifiers)) == len(identifiers)
    shards = Counter(r["shard"] for r in records)
    tx = shards["transaction_amount"]
    assert 0 < shards["transaction_service_type_code"] < tx  # optional fields are sometimes absent
    # A transaction happens after its claim was opened.
    by = {(r["shard"], r["uid"]): r["value"] for r in records}
    for (shard, uid), claim in list(by.items()):
        if shard == "transaction_claim":
            assert by[("transaction_timestamp", uid)] >= by[("claim_timestamp", claim)]


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a, b, c = (tmp_path / n for n in "abc")
    generate_dataset(a, "small", seed=42, part_records=4000)
    generate_dataset(b, "small", seed=42, part_records=4000)
    generate_dataset(c, "small", seed=43, part_records=4000)
    assert files_of(a) == files_of(b)
    assert len(files_of(a)) >= 5  # several parts plus the manifest
    differing = [name for name in files_of(a) if files_of(a)[name] != files_of(c).get(name)]
    assert "part-0000.jsonl.gz" in differing and "manifest.json" in differing


def test_manifest_matches_the_files(tmp_path: Path) -> None:
    manifest = generate_dataset(tmp_path / "d", "small", seed=1, part_records=5000)
    assert manifest == read_manifest(tmp_path / "d")
    assert manifest["generator_version"] == GENERATOR_VERSION and manifest["seed"] == 1
    assert manifest["scale"]["name"] == "small"
    records = list(read_records(tmp_path / "d"))
    assert len(records) == manifest["records"] == sum(p["records"] for p in manifest["parts"])
    assert records == list(generate_records("small", seed=1))
    assert Counter(r["shard"] for r in records) == {s: v["records"] for s, v in manifest["shards"].items()}
    assert Counter(r["value"] for r in records if r["shard"] == "_type") == manifest["types"]
    rows = sum(len(r["value"]) if isinstance(r["value"], list) else 1 for r in records)
    assert rows == manifest["rows"]
    # Parts are plain gzip'd JSON Lines, no name or time in the header.
    part = tmp_path / "d" / "part-0000.jsonl.gz"
    header = part.read_bytes()[:10]
    assert header[3] & 0x08 == 0 and header[4:8] == b"\0\0\0\0"  # no FNAME flag, mtime 0
    first = json.loads(gzip.decompress(part.read_bytes()).splitlines()[0])
    assert list(first) == ["shard", "uid", "value"]


def test_damaged_or_incomplete_data_sets_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    generate_dataset(folder, "small", seed=1)
    part = folder / "part-0000.jsonl.gz"
    data = bytearray(part.read_bytes())
    # Re-compress with one record changed: valid gzip, valid JSON, wrong checksum.
    lines = gzip.decompress(bytes(data)).splitlines(keepends=True)
    lines[3] = lines[3].replace(b"Z", b"+00:00", 1)
    part.write_bytes(gzip.compress(b"".join(lines), mtime=0))
    with pytest.raises(DataSetError, match="damaged"):
        list(read_records(folder))
    assert len(list(read_records(folder, verify=False))) == read_manifest(folder)["records"]
    (folder / "manifest.json").unlink()
    with pytest.raises(DataSetError, match=r"no manifest\.json"):
        list(read_records(folder))
    with pytest.raises(FileNotFoundError, match="no data set"):
        list(read_records(tmp_path / "nowhere"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"shard": "_type", "uid": 1, "value": "Claim"}\nnot json\n')
    with pytest.raises(DataSetError, match="line 2"):
        list(read_records(bad))


def test_single_files_read_plain_and_gzipped(tmp_path: Path) -> None:
    records = list(generate_records("small", seed=4))[:50]
    text = "".join(json.dumps(r) + "\n" for r in records)
    (tmp_path / "r.jsonl").write_text(text + "\n")  # blank lines are skipped
    (tmp_path / "r.jsonl.gz").write_bytes(gzip.compress(text.encode()))
    assert list(read_records(tmp_path / "r.jsonl")) == records
    assert list(read_records(tmp_path / "r.jsonl.gz")) == records
    assert read_manifest(tmp_path / "r.jsonl") is None


def test_generation_refuses_to_clobber(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    generate_dataset(folder, "small", seed=1, part_records=3000)
    with pytest.raises(FileExistsError, match="not empty"):
        generate_dataset(folder, "small", seed=2)
    # overwrite replaces the data set, leaving no stale part behind.
    manifest = generate_dataset(folder, "small", seed=2, overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "part-0000.jsonl.gz"]
    assert manifest["seed"] == 2
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a data set"):
        generate_dataset(folder, "small", seed=3, overwrite=True)
    assert (folder / "notes.txt").read_text() == "mine" and read_manifest(folder)["seed"] == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"claims": 0, "parties": 40, "hubs": 1, "hub_claims": 1},
        {"claims": 100, "parties": 40, "hubs": 40, "hub_claims": 10},
        {"claims": 100, "parties": 40, "hubs": 1, "hub_claims": 101},
        {"claims": 1000, "parties": 40, "hubs": 1, "hub_claims": 10},  # too few regular parties
        {"claims": 100, "parties": 400, "hubs": 1, "hub_claims": 10},  # too many
    ],
)
def test_bad_scales_are_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        Scale("x", **kwargs)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown scale"):
        next(generate_records("huge"))
    with pytest.raises(ValueError, match="seed"):
        next(generate_records("small", seed=-1))


@pytest.mark.slow
def test_generator_memory_stays_flat() -> None:
    def peak(claims: int) -> tuple[int, int]:
        scale = Scale("flat", claims=claims, parties=claims * 2 // 5, hubs=2, hub_claims=500)
        tracemalloc.start()
        try:
            count = sum(1 for _ in generate_records(scale, seed=1))
            return count, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak(600)  # imports and caches out of the way
    small_count, small_peak = peak(1_000)
    big_count, big_peak = peak(4_000)
    assert big_count > 3.5 * small_count
    # Collecting one side of the links (a few ints per extra claim) would exceed this.
    assert big_peak < small_peak + 100_000, (small_peak, big_peak)
