"""The EFS model: exact operation counts, accounted latency, injected faults, crash at every step."""

from __future__ import annotations

import contextlib
import itertools
import re
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import apsw
import pytest

from efs_sqlite.efs_model import FAULT_KINDS, PROFILES, EFSModel, LatencyProfile, Ops
from efs_sqlite.store import ShardStore

_names = (f"efs-test-{i}" for i in itertools.count())


@pytest.fixture
def model():
    # Today's counts are pinned on the worst-case translation; tests/test_nfs_client.py pins the
    # Linux client's.
    with EFSModel(next(_names), profile="elastic", translation="worst_case") as m:
        yield m


@pytest.fixture
def store(tmp_path, model):
    with ShardStore(tmp_path / "store", vfs=model.name) as s:
        s.insert("claim_type_code", 1, "MOTOR")
        s.get("claim_type_code", 1)  # warm: the connection is open
        yield s


def measure(model: EFSModel, work) -> Ops:
    with model.accounting() as ops:
        work()
    return ops


def make_db(path: Path, rows: int = 1) -> Path:
    with contextlib.closing(apsw.Connection(str(path))) as db:
        db.execute("PRAGMA journal_mode=delete").fetchall()
        db.execute("CREATE TABLE t(x INTEGER PRIMARY KEY, v)")
        db.executemany("INSERT INTO t VALUES (?, 'old')", [(i,) for i in range(1, rows + 1)])
    return path


def connect(path: Path, model: EFSModel, busy_ms: int = 0) -> apsw.Connection:
    db = apsw.Connection(str(path), vfs=model.name)
    db.set_busy_timeout(busy_ms)
    db.execute("PRAGMA journal_mode=delete; PRAGMA synchronous=full").fetchall()
    return db


def close_quietly(db: apsw.Connection) -> None:
    """Close a connection whose process 'died': SQLite's rollback attempts fail, files still close."""
    with contextlib.suppress(apsw.Error):
        db.close()


def check(path: Path) -> int:
    """Rows of t after a plain (non-model) connection ran any hot-journal recovery; integrity ok."""
    with contextlib.closing(apsw.Connection(str(path))) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return db.execute("SELECT count(*) FROM t").fetchone()[0]


# -- counts ----------------------------------------------------------------------------------------


def test_warm_point_read_counts_are_exact_and_repeatable(store, model):
    runs = [measure(model, lambda: store.get("claim_type_code", 1)).as_dict() for _ in range(5)]
    assert all(run == runs[0] for run in runs)
    counts = runs[0]["counts"]
    assert counts.get("open", 0) == 0
    assert counts["lock"] == counts["unlock"] == 1  # one lock cycle for the shard touched
    assert counts["read"] == 1  # SQLite re-reads only the change counter; its page cache does the rest
    assert runs[0]["data_write_ops"] == 0 and counts.get("sync", 0) == 0
    assert runs[0]["bytes"] == {"read": 16}
    assert set(runs[0]["by_file"]) <= {
        "claim_type_code.sqlite",
        "claim_type_code.sqlite-journal",
        "claim_type_code.sqlite-wal",
    }


def test_warm_store_performs_zero_opens(store, model):
    for shard in ("claim_identifier", "claim_timestamp"):
        store.insert(shard, 1, 7)

    def reads() -> None:
        for shard in ("claim_type_code", "claim_identifier", "claim_timestamp"):
            store.get_many(shard, [1, 2, 3])
            store.get(shard, 1)

    ops = measure(model, reads)
    assert ops.counts["open"] == 0 and ops.counts["close"] == 0
    assert ops.counts["lock"] == 6  # one per statement: autocommit reads


def test_a_read_block_costs_one_lock_cycle_per_shard(store, model):
    store.insert("party_identifier", 5, 55)

    def reads() -> None:
        with store.read():
            for _ in range(10):
                store.get("claim_type_code", 1)
                store.get("party_identifier", 5)

    ops = measure(model, reads)
    assert ops.counts["lock"] == ops.counts["unlock"] == 2
    assert ops.by_file["claim_type_code.sqlite"]["lock"] == 1


def test_a_commit_adds_syncs_writes_and_a_journal(store, model):
    read = measure(model, lambda: store.get("claim_type_code", 1))
    commits = [measure(model, lambda i=i: store.put("claim_type_code", 10 + i, "HOME")) for i in range(3)]
    assert all(c.as_dict() == commits[0].as_dict() for c in commits)
    commit = commits[0]
    assert read.counts["sync"] == 0
    assert commit.counts["sync"] == 3  # synchronous=FULL in DELETE mode: journal twice, database once
    assert commit.data_write_ops == commit.counts["write"] > 0
    assert commit.data_write_bytes >= 4096  # at least one whole page
    journal = commit.by_file["claim_type_code.sqlite-journal"]
    assert journal["open"] == journal["close"] == journal["delete"] == 1
    assert commit.metadata_write_ops > read.metadata_write_ops == 0
    assert commit.modelled_latency_s > read.modelled_latency_s


def test_requests_follow_the_documented_model(store, model):
    ops = measure(model, lambda: store.put("claim_type_code", 2, "HOME"))
    # Every call but the local ones is a request; lock calls cost one per fcntl().
    assert ops.requests["read"] == ops.counts["read"] and ops.requests["write"] == ops.counts["write"]
    assert "file_control" not in ops.requests and "device_characteristics" not in ops.requests
    assert ops.requests["lock"] == 3 + 1 + 2  # NONE->SHARED, ->RESERVED, ->EXCLUSIVE
    assert ops.requests["unlock"] == 2 + 1  # EXCLUSIVE->SHARED, SHARED->NONE
    total = ops.metadata_ops + ops.data_read_ops + ops.data_write_ops
    assert sum(ops.requests.values()) == total


_STRACE_SCRIPT = """
import apsw, os, sys
db = apsw.Connection(sys.argv[1])
db.execute("PRAGMA journal_mode=delete; PRAGMA synchronous=full").fetchall()
db.execute("SELECT * FROM t WHERE x = 1").fetchall()
os.path.exists("/efs-model-mark-" + "read")  # not in argv
db.execute("SELECT * FROM t WHERE x = 1").fetchall()
os.path.exists("/efs-model-mark-" + "commit")  # not in argv
db.execute("INSERT INTO t VALUES (2, 'new')")
os.path.exists("/efs-model-mark-" + "end")  # not in argv
"""


def _syscalls(trace: str, start: str, end: str) -> Counter[str]:
    window = trace.split(f'"/efs-model-mark-{start}"', 1)[1].split(f'"/efs-model-mark-{end}"', 1)[0]
    calls: Counter[str] = Counter()
    for line in window.splitlines()[1:-1]:  # not the two marker lines
        m = re.match(r"\d+\s+(\w+)\((.*)", line)
        if m is None:
            continue
        name, args = m.groups()
        if name == "fcntl" and "F_SETLK" in args:
            calls["lock"] += 1
        elif name in ("stat", "newfstatat", "fstat", "lstat", "access", "faccessat", "faccessat2"):
            calls["stat"] += 1
        elif name in ("fsync", "fdatasync"):
            calls["sync"] += 1
        elif name in ("pread64", "pwrite64", "openat", "unlink", "close", "ftruncate"):
            calls[name] += 1
    return calls


def test_request_counts_match_the_system_calls_of_the_unix_vfs(tmp_path, model):
    """The model's lock requests are the fcntl() calls strace sees (4 and 9: docs/SOURCES.md#sqlite-locks)."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    traced = make_db(tmp_path / "traced.sqlite")
    out = tmp_path / "trace.txt"
    proc = subprocess.run(
        ["strace", "-f", "-o", str(out), sys.executable, "-c", _STRACE_SCRIPT, str(traced)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"strace cannot trace here: {proc.stderr.strip()[:200]}")
    trace = out.read_text()
    sys_read = _syscalls(trace, "read", "commit")
    sys_commit = _syscalls(trace, "commit", "end")

    db = connect(make_db(tmp_path / "model.sqlite"), model)
    db.execute("SELECT * FROM t WHERE x = 1").fetchall()
    read = measure(model, lambda: db.execute("SELECT * FROM t WHERE x = 1").fetchall())
    commit = measure(model, lambda: db.execute("INSERT INTO t VALUES (2, 'new')"))
    db.close()

    for ops, calls in ((read, sys_read), (commit, sys_commit)):
        r = ops.requests
        assert r["lock"] + r["unlock"] == calls["lock"]
        assert r["read"] == calls["pread64"] and r["write"] == calls["pwrite64"]
        assert r["delete"] == calls["unlink"]
        # An open costs a stat of the database (for the journal's permissions) and an OPEN whose
        # reply carries the attributes the fstat() after openat() asks for.
        assert r["access"] + r["file_size"] + r["has_moved"] + r["open"] == calls["stat"]
        # After creating a journal os_unix.c also fsyncs the directory: not an NFS request, since
        # NFS directory operations are synchronous already.
        assert r["sync"] + ops.counts["open"] == calls["sync"]
    assert sys_read["lock"] == 4 and sys_commit["lock"] == 9


# -- accounting scopes -----------------------------------------------------------------------------


def test_scopes_nest_and_see_exactly_their_own_work(store, model):
    with model.accounting() as outer:
        with model.accounting() as first:
            store.get("claim_type_code", 1)
        with model.accounting() as second:
            store.get("claim_type_code", 1)
    assert first.as_dict() == second.as_dict()
    assert outer.counts == first.counts + second.counts
    assert outer.metadata_ops == 2 * first.metadata_ops


def test_scopes_are_thread_safe_and_can_follow_one_thread(tmp_path, model):
    shared = ShardStore(tmp_path / "s", vfs=model.name)
    shared.insert("claim_identifier", 1, 1)
    shared.get("claim_identifier", 1)
    one = measure(model, lambda: shared.get("claim_identifier", 1))
    warm, go = threading.Barrier(5), threading.Barrier(5)

    def worker() -> None:
        shared.get("claim_identifier", 1)  # opens this thread's own connection
        warm.wait()
        go.wait()
        for _ in range(50):
            shared.get("claim_identifier", 1)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    warm.wait()
    with model.accounting() as everyone, model.accounting(current_thread=True) as mine:
        go.wait()
        for t in threads:
            t.join()
    shared.close()
    assert sum(mine.counts.values()) == 0  # the main thread did no I/O itself
    assert everyone.counts == Counter({k: 200 * v for k, v in one.counts.items()})
    assert everyone.requests == Counter({k: 200 * v for k, v in one.requests.items()})


# -- latency ---------------------------------------------------------------------------------------


def test_modelled_latency_is_the_requests_times_the_profile(store, model):
    ops = measure(model, lambda: store.put("claim_type_code", 3, "HOME"))
    expected = ops.metadata_ops * 0.001 + ops.data_read_ops * 0.001 + ops.data_write_ops * 0.0027
    assert ops.modelled_latency_s == pytest.approx(expected)
    assert ops.injected_s == 0  # not sleeping: accounted only
    one_zone = ops.metadata_ops * 0.001 + ops.data_read_ops * 0.001 + ops.data_write_ops * 0.0016
    assert ops.latency_s("one_zone") == pytest.approx(one_zone)
    assert ops.as_dict()["latency_s"]["local"] == 0


def test_sleeping_model_injects_exactly_the_accounted_delay(tmp_path):
    custom = LatencyProfile("test", metadata_s=0.0002, read_s=0.0003, write_s=0.0005, source="test")
    with EFSModel(next(_names), profile=custom, sleep=True, translation="worst_case") as m:
        db = connect(make_db(tmp_path / "s.sqlite"), m)
        with m.accounting() as ops:
            db.execute("INSERT INTO t VALUES (9, 'x')")
        db.close()
    expected = ops.metadata_ops * 0.0002 + ops.data_read_ops * 0.0003 + ops.data_write_ops * 0.0005
    assert ops.injected_s == pytest.approx(expected)
    assert ops.modelled_latency_s == pytest.approx(expected)


def test_local_profile_adds_nothing_and_bad_profiles_are_refused(tmp_path):
    with EFSModel(next(_names)) as m:
        assert m.profile is PROFILES["local"]
        db = connect(make_db(tmp_path / "l.sqlite"), m)
        ops = measure(m, lambda: db.execute("SELECT * FROM t").fetchall())
        db.close()
    assert ops.modelled_latency_s == 0 and ops.metadata_ops > 0
    with pytest.raises(ValueError, match="unknown profile 'efs'"):
        EFSModel(next(_names), profile="efs")


# -- faults ----------------------------------------------------------------------------------------


def _fault_db(path: Path, model: EFSModel, kind: str) -> tuple[apsw.Connection, int]:
    """A warm connection for a 1-row commit that makes calls of ``kind``; rows before it."""
    # TRUNCATE mode truncates the journal; PERSIST leaves it, so reads check the reserved lock.
    mode = {"truncate": "truncate", "check_reserved": "persist"}.get(kind, "delete")
    make_db(path)
    db = connect(path, model)
    db.execute(f"PRAGMA journal_mode={mode}").fetchall()
    db.execute("INSERT INTO t VALUES (100, 'warm')")
    return db, 2


def _fault_cases():
    for kind in FAULT_KINDS:
        for error in ("eio", "estale", "enolck"):
            if error != "enolck" or kind in ("lock", "unlock", "check_reserved"):
                yield kind, error


@pytest.mark.parametrize(("kind", "error"), list(_fault_cases()))
def test_every_injected_fault_surfaces_and_leaves_the_shard_intact(tmp_path, model, kind, error):
    db, before = _fault_db(tmp_path / "dry.sqlite", model, kind)
    calls = measure(model, lambda: db.execute("INSERT INTO t VALUES (2, 'new')")).counts[kind]
    db.close()
    assert calls > 0, f"the workload makes no {kind} call"
    for nth in range(1, calls + 1):
        path = tmp_path / f"{nth}.sqlite"
        db, before = _fault_db(path, model, kind)
        fault = model.inject(kind, nth, error)
        with pytest.raises(apsw.Error) as info:
            db.execute("INSERT INTO t VALUES (2, 'new')")
        assert fault.fired == 1
        if error == "enolck" and kind == "lock":
            assert isinstance(info.value, apsw.BusyError)  # os_unix.c: ENOLCK is SQLITE_BUSY
        else:
            assert isinstance(info.value, apsw.IOError | apsw.CantOpenError)
            # ESTALE: SQLite reports the last of the errors the now-stale handle gave.
            expected = "ESTALE" if error == "estale" else f"injected {error.upper()} on {kind} #{nth}"
            assert expected in str(info.value)
        model.recover()
        close_quietly(db)
        assert check(path) in (before, before + 1)  # all or nothing, never a corrupt file


def test_enolck_on_a_lock_is_retried_by_the_busy_handler(tmp_path, model):
    path = make_db(tmp_path / "b.sqlite")
    db = connect(path, model, busy_ms=2000)
    fault = model.inject("lock", 1, "enolck", times=2)
    db.execute("INSERT INTO t VALUES (2, 'new')")
    db.close()
    assert fault.fired == 2 and check(path) == 2


def test_a_stale_handle_stays_stale_until_reopened(tmp_path, model):
    path = make_db(tmp_path / "s.sqlite")
    db = connect(path, model)
    model.inject("read", 1, "estale")
    with pytest.raises(apsw.IOError, match="ESTALE"):
        db.execute("SELECT * FROM t").fetchall()
    with pytest.raises(apsw.IOError, match="stale handle"):
        db.execute("SELECT * FROM t").fetchall()
    db.close()
    fresh = connect(path, model)
    assert fresh.execute("SELECT count(*) FROM t").fetchone() == (1,)
    fresh.close()


def test_faults_can_target_one_file(tmp_path, model):
    path = make_db(tmp_path / "j.sqlite")
    db = connect(path, model)
    model.inject("write", 1, file="-journal")
    with pytest.raises(apsw.IOError, match=r"write #1 on j\.sqlite-journal"):
        db.execute("INSERT INTO t VALUES (2, 'new')")
    db.close()
    assert check(path) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("fsync",), "cannot inject into 'fsync'"),
        (("write", 1, "enolck"), "'enolck' applies to"),
        (("write", 1, "eperm"), "error must be"),
        (("write", 0), "nth and times must be >= 1"),
    ],
)
def test_bad_fault_requests_are_refused(model, args, message):
    with pytest.raises(ValueError, match=message):
        model.inject(*args)


# -- crash at every operation ----------------------------------------------------------------------

_GROUP = ("a", "b", "c")


def _group_connection(folder: Path, model: EFSModel) -> apsw.Connection:
    db = connect(folder / "a.sqlite", model)
    for name in _GROUP[1:]:
        db.execute(f"ATTACH ? AS {name}", (str(folder / f"{name}.sqlite"),))
        db.execute(f"PRAGMA {name}.journal_mode=delete; PRAGMA {name}.synchronous=full").fetchall()
    return db


def _grouped_write(db: apsw.Connection) -> None:
    db.execute(
        "BEGIN IMMEDIATE; INSERT INTO main.t VALUES (2, 'new'); INSERT INTO b.t VALUES (2, 'new');"
        " INSERT INTO c.t VALUES (2, 'new'); COMMIT"
    )


def _fresh_group(base: Path, folder: Path) -> Path:
    folder.mkdir()
    for name in _GROUP:
        shutil.copy(base / f"{name}.sqlite", folder)
    return folder


def test_crash_at_every_operation_of_a_grouped_write_is_all_or_nothing(tmp_path, model):
    base = tmp_path / "base"
    base.mkdir()
    for name in _GROUP:
        make_db(base / f"{name}.sqlite")
    db = _group_connection(_fresh_group(base, tmp_path / "dry"), model)
    total = sum(measure(model, lambda: _grouped_write(db)).counts.values())
    db.close()
    assert total > 100

    outcomes = Counter()
    for n in range(1, total + 2):
        folder = _fresh_group(base, tmp_path / f"n{n}")
        db = _group_connection(folder, model)
        model.crash_at(n)
        with contextlib.suppress(apsw.Error):
            _grouped_write(db)
        assert model.crashed == (n <= total)
        close_quietly(db)
        model.recover()
        rows = tuple(check(folder / f"{name}.sqlite") for name in _GROUP)
        assert rows in ((1, 1, 1), (2, 2, 2)), f"crash at operation {n} left {rows}"
        outcomes[rows] += 1
    assert outcomes[(1, 1, 1)] > 0 and outcomes[(2, 2, 2)] > 0


def test_a_crashed_process_cannot_touch_the_disk_again(tmp_path, model):
    path = make_db(tmp_path / "d.sqlite")
    db = connect(path, model)
    db.execute("BEGIN IMMEDIATE; INSERT INTO t VALUES (2, 'new')")
    model.crash_at(1)
    with pytest.raises(apsw.IOError, match="after the simulated crash"):
        db.execute("COMMIT")
    model.recover()
    with pytest.raises(apsw.Error):  # pre-crash handles stay dead after recover()
        db.execute("INSERT INTO t VALUES (3, 'new')")
    close_quietly(db)
    assert check(path) == 1
    fresh = connect(path, model)
    fresh.execute("INSERT INTO t VALUES (3, 'new')")
    fresh.close()
    assert check(path) == 2


def test_crash_at_every_operation_of_a_store_grouped_write(tmp_path, model):
    base = tmp_path / "base"
    with ShardStore(base) as s:
        for shard in ("claim_type_code", "claim_identifier", "claim_timestamp"):
            s.insert(shard, 1, "old")

    def write(store: ShardStore) -> None:
        with store.write() as w:
            w.insert("claim_type_code", 2, "MOTOR")
            w.insert("claim_identifier", 2, 42)
            w.put("claim_timestamp", 2, "2024-01-01")

    def run(n: int | None) -> tuple[int, ...]:
        root = tmp_path / f"run{n}"
        shutil.copytree(base, root)
        store = ShardStore(root, vfs=model.name)
        if n is not None:
            model.crash_at(n)
        with contextlib.suppress(apsw.Error):
            write(store)
        with contextlib.suppress(apsw.Error):
            store.close()
        model.recover()
        with ShardStore(root) as plain:
            for shard in plain.shards():
                assert plain.integrity_check(shard) == "ok"
            return tuple(plain.count(s) for s in sorted(plain.shards()))

    with model.accounting() as ops:
        assert run(None) == (2, 2, 2)
    total = sum(ops.counts.values())
    outcomes = Counter(run(n) for n in range(1, total + 1))
    assert set(outcomes) == {(1, 1, 1), (2, 2, 2)}
