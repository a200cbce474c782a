"""The threaded bulk loader against real SQLite files: read-back, idempotence, resume, conflicts,
failures that must not hang, bounded memory, and the ``generate`` / ``load`` / ``stats`` commands."""

from __future__ import annotations

import itertools
import json
import threading
import tracemalloc
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

from efs_sqlite import cli
from efs_sqlite.data import generate_dataset, generate_records, read_manifest, read_records
from efs_sqlite.errors import DataSetError, LoadError, RecordError
from efs_sqlite.links import check_links, store_records
from efs_sqlite.loader import LOCAL_THREADS, load, load_path, validate_record
from efs_sqlite.model import INSURANCE
from efs_sqlite.store import ShardStore

#: A test that must not hang gives up after this long (the load itself takes well under a second).
TIMEOUT_S = 60


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data") / "small"
    generate_dataset(folder, "small", seed=3, part_records=6000)
    return folder


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ShardStore]:
    with ShardStore(tmp_path / "store") as s:
        yield s


def assert_reads_back(store: ShardStore, records: Iterable[dict[str, Any]]) -> None:
    """Every record's value reads back from the store equal to the record, with its Python type."""
    expected: dict[str, dict[int, Any]] = defaultdict(dict)
    for r in records:
        expected[r["shard"]][r["uid"]] = r["value"]
    for shard, values in expected.items():
        if shard == "_type":
            assert store.get_many(shard, values) == values
            continue
        field = INSURANCE.field_for_shard(shard)
        want = {uid: field.coerce(v) for uid, v in values.items()}
        if field.kind == "refs":
            got = store.list_page_many(shard, values, 0, 10**6)
        else:
            got = store.get_many(shard, values)
            assert all(type(got[u]) is type(want[u]) or field.kind == "ref" for u in want), shard
        assert got == want, shard


def run_bounded(target: Callable[[], Any]) -> Any:
    """Run ``target`` in a thread; fail (rather than hang the suite) if it has not ended in time."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = target()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(TIMEOUT_S)
    assert not thread.is_alive(), f"still running after {TIMEOUT_S} s: the load hangs"
    assert not [t for t in threading.enumerate() if t.name.startswith("efs-sqlite-loader")]
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_load_reads_back_and_matches_the_manifest(store: ShardStore, dataset: Path) -> None:
    manifest = read_manifest(dataset)
    summary = load_path(store, dataset, progress=False)
    assert summary.records == manifest["records"] and summary.skipped == 0
    assert summary.shards == {s: v["records"] for s, v in manifest["shards"].items()}
    assert summary.threads == LOCAL_THREADS and summary.records_per_s > 0  # a local store
    stats = store.stats()
    for shard, counts in manifest["shards"].items():
        entry = stats["shards"][shard]
        assert entry["rows"] + entry["refs"] == counts["rows"], shard
        assert entry["integrity"] == "ok"
    assert_reads_back(store, read_records(dataset))


def test_reload_is_idempotent(store: ShardStore, dataset: Path) -> None:
    first = load_path(store, dataset, progress=False, batch=700)
    before = store.stats()
    again = load_path(store, dataset, progress=False, batch=1500, threads=3)
    assert again.records == first.records == again.skipped
    assert store.stats() == before
    assert_reads_back(store, read_records(dataset))


def test_a_partial_load_resumes(store: ShardStore, dataset: Path) -> None:
    records = list(read_records(dataset))
    part = load(store, itertools.islice(records, 7000), progress=False, batch=500)
    assert part.records == 7000
    rest = load(store, records, progress=False, batch=500)
    assert rest.records == len(records) and rest.skipped == 7000
    assert_reads_back(store, records)


def test_thread_count_does_not_change_the_result(tmp_path: Path, dataset: Path) -> None:
    stats = []
    for threads in (1, 4):
        with ShardStore(tmp_path / f"t{threads}") as s:
            summary = load_path(s, dataset, threads=threads, batch=999, progress=False)
            assert summary.threads == threads
            stats.append({k: v for k, v in s.stats().items() if k != "root"})
            if threads == 4:
                assert_reads_back(s, read_records(dataset))
    assert stats[0] == stats[1]


def test_a_different_value_for_a_loaded_id_is_refused(store: ShardStore, dataset: Path) -> None:
    records = list(read_records(dataset))
    load(store, records, progress=False)
    scalar = next(r for r in records if r["shard"] == "claim_type_code")
    lst = next(r for r in records if r["shard"] == "party_claims")
    for changed in (
        {**scalar, "value": scalar["value"] + "X"},
        {**lst, "value": lst["value"][:-1]},
        {**lst, "value": []},
    ):
        with pytest.raises(LoadError, match="already holds") as info:
            load(store, [*records[:50], changed], progress=False)
        assert info.value.shard == changed["shard"] and info.value.uid == changed["uid"]
        assert info.value.index == 50
    assert_reads_back(store, records)  # nothing was overwritten


def test_two_values_for_one_id_in_one_load_are_refused(store: ShardStore) -> None:
    uid = 2**40
    for shard, a, b in (("claim_type_code", "MOTOR", "TRAVEL"), ("claim_parties", [1, 2], [1])):
        records = [{"shard": shard, "uid": uid, "value": a}, {"shard": shard, "uid": uid, "value": b}]
        with pytest.raises(LoadError, match="already holds"):
            load(store, records, progress=False)
    # The same value twice is no conflict.
    twice = [{"shard": "claim_type_code", "uid": uid + 1, "value": "MOTOR"}] * 2
    assert load(store, twice, progress=False).skipped == 1


@pytest.mark.parametrize("threads", [1, 4])  # the reader writing, and writer threads
def test_a_failing_worker_stops_the_load_without_hanging(tmp_path: Path, threads: int) -> None:
    root = tmp_path / "store"
    root.mkdir()
    (root / "transaction_amount.sqlite").write_bytes(b"this is not a database" * 500)

    def endless() -> Iterator[dict[str, Any]]:
        # Never ends by itself: only the failure can stop the load.
        for uid in itertools.count(1):
            yield {"shard": "transaction_identifier", "uid": uid, "value": f"T{uid}"}
            yield {"shard": "transaction_amount", "uid": uid, "value": "1.00"}

    with ShardStore(root) as s, pytest.raises(LoadError) as info:
        run_bounded(lambda: load(s, endless(), threads=threads, batch=50, queue_batches=1, progress=False))
    assert info.value.shard == "transaction_amount"
    assert "transaction_amount" in str(info.value) and "record #" in str(info.value)
    assert "NotADBError" in str(info.value) and info.value.__cause__ is not None


def test_resume_after_a_failed_load(tmp_path: Path, dataset: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    broken = root / "party_claims.sqlite"
    broken.write_bytes(b"garbage" * 1000)
    with ShardStore(root) as s:
        with pytest.raises(LoadError, match="party_claims"):
            run_bounded(lambda: load_path(s, dataset, batch=300, progress=False))
        broken.unlink()  # the operator fixes the cause and runs the same load again
        summary = run_bounded(lambda: load_path(s, dataset, batch=300, progress=False))
        assert summary.records == read_manifest(dataset)["records"]
        assert_reads_back(s, read_records(dataset))


def test_a_bad_record_stops_the_load_naming_it(store: ShardStore) -> None:
    records = [{"shard": "claim_type_code", "uid": n, "value": "MOTOR"} for n in range(1, 2000)]
    records.insert(1234, {"shard": "claim_timestamp", "uid": 77, "value": "yesterday"})
    with pytest.raises(LoadError) as info:
        run_bounded(lambda: load(store, records, batch=100, progress=False))
    assert (info.value.shard, info.value.index, info.value.uid) == ("claim_timestamp", 1234, 77)
    assert "ISO 8601" in str(info.value)


def test_an_error_in_the_input_ends_the_workers(store: ShardStore) -> None:
    def broken_input() -> Iterator[dict[str, Any]]:
        yield from ({"shard": "_type", "uid": n, "value": "Claim"} for n in range(1, 500))
        raise OSError("the input went away")

    with pytest.raises(OSError, match="went away"):
        run_bounded(lambda: load(store, broken_input(), batch=10, progress=False))


def test_memory_stays_bounded_on_a_long_stream(tmp_path: Path) -> None:
    def stream(n: int) -> Iterator[dict[str, Any]]:
        for uid in range(1, n + 1):
            yield {"shard": "transaction_identifier", "uid": uid, "value": f"FT-{uid:012d}-{'x' * 40}"}
            yield {"shard": "transaction_claim", "uid": uid, "value": uid + 7}

    def peak(n: int) -> int:
        with ShardStore(tmp_path / f"s{n}") as s:
            load(s, [], progress=False)  # thread and connection set-up out of the measurement
            tracemalloc.start()
            try:
                assert load(s, stream(n), batch=200, queue_batches=1, progress=False).records == 2 * n
                return tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()

    short, long = peak(2_000), peak(10_000)
    # 16,000 more records of ~150 bytes: holding even a tenth of them would exceed the margin.
    assert long < short + 150_000, (short, long)


def test_validate_record_rejects_what_does_not_fit() -> None:
    good = {"shard": "claim_timestamp", "uid": 5, "value": "2024-02-03T04:05:06Z"}
    assert validate_record(good)[2].year == 2024
    bad = [
        ("a list", ["claim_timestamp", 5, "x"], "object"),
        ("a missing key", {"shard": "claim_timestamp", "uid": 5}, "exactly the keys"),
        ("an extra key", {**good, "sql": "DROP TABLE items"}, "exactly the keys"),
        ("a path", {**good, "shard": "../x"}, "unknown shard"),
        ("a path", {**good, "shard": "/etc/passwd"}, "unknown shard"),
        ("a non-string shard", {**good, "shard": ["claim_timestamp"]}, "unknown shard"),
        ("a huge id", {**good, "uid": 2**64}, "uid"),
        ("a negative id", {**good, "uid": -5}, "uid"),
        ("a zero id", {**good, "uid": 0}, "uid"),
        ("a string id", {**good, "uid": "5"}, "uid"),
        ("a bool id", {**good, "uid": True}, "uid"),
        ("a wrong type", {**good, "value": 12}, "ISO 8601"),
        ("a type name", {"shard": "_type", "uid": 1, "value": "Admin"}, "type name"),
        ("a bad reference", {"shard": "claim_parties", "uid": 1, "value": [1, "2"]}, "node id"),
        ("a missing value", {"shard": "claim_type_code", "uid": 1, "value": None}, "required"),
    ]
    for what, record, message in bad:
        with pytest.raises(RecordError, match=message):
            validate_record(record)
            pytest.fail(f"{what} was accepted")


def test_cli_generate_load_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, root = tmp_path / "data", tmp_path / "store"
    assert cli.main(["generate", "--scale", "small", "--seed", "9", "--out", str(data), "--no-progress"]) == 0
    assert "records" in capsys.readouterr().out
    assert cli.main(["generate", "--scale", "small", "--out", str(data)]) == 2
    assert "--force" in capsys.readouterr().err
    args = ["load", "--root", str(root), str(data), "--threads", "3", "--batch", "400"]
    assert cli.main(args) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)
    manifest = read_manifest(data)
    assert summary["records"] == manifest["records"] and summary["threads"] == 3
    assert "rec/s" in err  # the progress bar
    assert cli.main(["stats", "--root", str(root)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["total_rows"] + stats["total_refs"] == manifest["rows"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"shard": "claim_type_code", "uid": -1, "value": "X"}) + "\n")
    assert cli.main(["load", "--root", str(root), str(bad), "--no-progress"]) == 1
    assert "record #0" in capsys.readouterr().err
    assert cli.main(["stats", "--root", str(tmp_path / "nowhere")]) == 2
    assert not (tmp_path / "nowhere").exists()


def test_generated_records_load_from_memory_too(store: ShardStore) -> None:
    records = list(generate_records("small", seed=8))
    summary = load(store, iter(records), threads=2, progress=False)
    assert summary.records == len(records)
    assert_reads_back(store, records)


def stored_rows(store: ShardStore) -> dict[str, tuple[list[Any], list[Any]]]:
    """Every shard's rows as SQLite holds them (values with their kind tags, list entries)."""
    out = {}
    for shard in store.shards():
        db = apsw.Connection(str(store.path(shard)), flags=apsw.SQLITE_OPEN_READONLY)
        out[shard] = (
            db.execute("SELECT uid, value, kind FROM items ORDER BY uid").fetchall(),
            db.execute("SELECT uid, pos, ref FROM refs ORDER BY uid, pos").fetchall(),
        )
        db.close()
    return out


#: (shard, the value as the generator writes it, the same value in other shapes Field.coerce takes)
SHAPES: list[tuple[str, Any, list[Any]]] = [
    (
        "claim_timestamp",
        "2024-01-02T03:04:05Z",
        ["2024-01-02T04:04:05+01:00", "2024-01-02T03:04:05", "2024-01-02 03:04:05Z"],
    ),
    ("party_timestamp", "2019-06-30T23:59:59.250000Z", ["2019-07-01T01:59:59.25+02:00"]),
    ("transaction_timestamp", "2024-03-01T00:00:00Z", ["2024-03-01", "2024-02-29T19:00:00-05:00"]),
    ("transaction_amount", "12.50", ["12.5", " 12.50 ", "1.25E1", 12.5, "012.50", "+12.50"]),
    ("transaction_amount", "-0.07", ["-.07", "-0.070"]),
    ("claim_identifier", 240000042, ["240000042", 240000042.0]),
    ("party_claims", [7, 8, 9], [(7, 8, 9)]),
    ("transaction_claim", 12345, []),
    ("_type", "Party", []),
]


@pytest.mark.parametrize("threads", [1, 3])
def test_every_record_shape_the_model_takes_is_stored_as_the_model_says(tmp_path: Path, threads: int) -> None:
    """The per-chunk fast checks (canonical strings, plain ints) store exactly what the slow path,
    Field.coerce then the store's stored form, stores for the same value in any other shape: each
    shape fills whole chunks (250 records at batch=1000), so each takes the path it would alone."""
    canonical, other = [], []
    for n, (shard, value, shapes) in enumerate(SHAPES):
        for k in range(250 * max(2, len(shapes))):
            uid = 10_000 * n + k + 1
            canonical.append({"shard": shard, "uid": uid, "value": value})
            shape = shapes[(k // 250) % len(shapes)] if shapes else value
            other.append({"shard": shard, "uid": uid, "value": shape})
    with ShardStore(tmp_path / "fast") as fast, ShardStore(tmp_path / "slow") as slow:
        assert load(fast, canonical, threads=threads, batch=1000, progress=False).records == len(canonical)
        assert load(slow, other, threads=threads, batch=1000, progress=False).records == len(other)
        assert stored_rows(fast) == stored_rows(slow)
        assert_reads_back(fast, canonical)
        assert_reads_back(slow, other)
        # And each store takes the other's records as already loaded.
        assert load(fast, other, threads=threads, progress=False).skipped == len(other)


def test_a_stopped_one_writer_load_keeps_only_committed_batches(store: ShardStore) -> None:
    records = []
    for uid in range(1, 2_001):
        records.append({"shard": "transaction_identifier", "uid": uid, "value": f"T{uid}"})
        records.append({"shard": "transaction_claim", "uid": uid, "value": uid + 10})
    records.insert(3_001, {"shard": "transaction_claim", "uid": 5_000, "value": "not an id"})
    with pytest.raises(LoadError, match="node id") as info:
        run_bounded(lambda: load(store, records, threads=1, batch=1_000, progress=False))
    assert info.value.index == 3_001
    # Batches of 1,000 rows were committed as they filled; the ones still open were rolled back.
    assert store.count("transaction_identifier") == 1_000
    assert store.count("transaction_claim") == 1_000
    summary = load(store, [r for r in records if r["uid"] != 5_000], threads=1, progress=False)
    assert summary.skipped == 2_000 and store.count("transaction_claim") == 2_000


# -- inverse consistency ---------------------------------------------------------------------------


def write_records(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_a_data_set_whose_inverse_pairs_disagree_is_refused_naming_the_records(
    store: ShardStore, tmp_path: Path
) -> None:
    records = list(generate_records("small", seed=3))
    claims = [r["uid"] for r in records if r["shard"] == "_type" and r["value"] == "Claim"]
    moved = next(r for r in records if r["shard"] == "transaction_claim")
    owner, moved["value"] = moved["value"], claims[-1]  # its claim still lists it; the new one does not
    listing = next(r for r in records if r["shard"] == "party_claims")
    listing["value"] = [*listing["value"], claims[7]]  # claims[7] does not list the party back
    path = write_records(tmp_path / "bad.jsonl", records)
    with pytest.raises(DataSetError) as refused:
        load_path(store, path, progress=False)
    message = str(refused.value)
    assert "the two sides of 3 link(s) disagree, so nothing was loaded" in message
    t = moved["uid"]
    assert f"claim_transactions of {owner} lists {t}, but transaction_claim of {t} is not {owner}" in message
    assert (
        f"transaction_claim of {t} is {claims[-1]}, but claim_transactions of {claims[-1]} does not list {t}"
        in (message)
    )
    party = listing["uid"]
    assert (
        f"party_claims of {party} lists {claims[7]}, but claim_parties of {claims[7]} does not list {party}"
        in (message)
    )
    assert store.shards() == []  # nothing was written
    assert load_path(store, path, check=False, progress=False).records == len(records)  # on request


def test_the_generated_data_set_is_consistent(store: ShardStore, dataset: Path) -> None:
    assert check_links(lambda: read_records(dataset)) == []
    load_path(store, dataset, progress=False)
    assert check_links(lambda: store_records(store)) == []
