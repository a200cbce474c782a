"""The Linux NFS client translation: the requests of a warm read and of a commit, each explained."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import sys

import pytest

from efs_sqlite.efs_model import PROFILES, EFSModel, Ops
from efs_sqlite.nfs_client import LinuxNFS, Request, WorstCase, translation_named
from efs_sqlite.store import ShardStore

_names = (f"nfs-test-{i}" for i in itertools.count())
SHARD, JOURNAL = "claim_type_code.sqlite", "claim_type_code.sqlite-journal"
MiB = 2**20


def warm_store(tmp_path, model: EFSModel) -> ShardStore:
    store = ShardStore(tmp_path / "store", vfs=model.name)
    store.insert("claim_type_code", 1, "MOTOR")
    store.get("claim_type_code", 1)  # warm: the connection is open, the missing names are known
    return store


def traced(model: EFSModel, work) -> Ops:
    with model.accounting(trace=True) as ops:
        work()
    return ops


def requests(ops: Ops) -> list[tuple[str, str, str, int]]:
    assert ops.trace is not None
    return [(t.call, t.file, t.request.op, t.request.count) for t in ops.trace]


@pytest.fixture
def model():
    with EFSModel(next(_names), profile="elastic") as m:
        yield m


def test_a_warm_point_read_is_8_syscalls_and_6_requests(tmp_path, model):
    """strace of the store's warm point read (local disk): fcntl x3 (lock), stat(-journal),
    pread 16 B at offset 24, stat(-wal), fstat, fcntl (unlock): 8 system calls."""
    store = warm_store(tmp_path, model)
    ops = traced(model, lambda: store.get("claim_type_code", 1))
    store.close()
    # The 8 system calls are the VFS calls that reach the file system (device_characteristics is
    # answered locally) with the lock's 3 fcntl() counted one each.
    vfs = ops.counts
    assert vfs["lock"] * 3 + vfs["access"] + vfs["read"] + vfs["file_size"] + vfs["unlock"] == 8
    assert requests(ops) == [
        # fcntl x3: take PENDING, take SHARED, drop PENDING; the lock drops the cached attributes
        ("lock", SHARD, "LOCK", 3),
        # stat(-journal): answered by the negative lookup cache (no request)
        # pread of the change counter: the attributes are stale since the lock ...
        ("read", SHARD, "GETATTR", 1),
        # ... and so are the pages: one READ of the page
        ("read", SHARD, "READ", 1),
        # stat(-wal): negative lookup cache again; fstat: answered by the fresh attributes
        # fcntl: drop SHARED
        ("unlock", SHARD, "LOCKU", 1),
    ]
    assert sum(ops.nfs.values()) == 6
    assert ops.latency_s("elastic") == pytest.approx(0.006)


def test_a_one_row_delete_mode_commit_is_36_syscalls_and_19_requests(tmp_path, model):
    """strace of a 1-row DELETE-mode commit: 36 system calls, 9 of them fcntl, 10 pwrite, 4
    fdatasync (the journal twice, the database, the folder), the journal's create and unlink."""
    store = warm_store(tmp_path, model)
    ops = traced(model, lambda: store.put("claim_type_code", 2, "HOME"))
    store.close()
    vfs = ops.counts
    assert (vfs["write"], vfs["sync"], vfs["open"], vfs["delete"]) == (10, 3, 1, 1)
    assert requests(ops) == [
        # BEGIN: NONE -> SHARED, 3 fcntl; the cached attributes and pages are dropped
        ("lock", SHARD, "LOCK", 3),
        # stat(-journal), stat(-wal): negative lookup cache. The change counter: GETATTR + READ
        ("read", SHARD, "GETATTR", 1),
        ("read", SHARD, "READ", 1),
        # SHARED -> RESERVED: 1 fcntl, which drops the attributes again ...
        ("lock", SHARD, "LOCK", 1),
        # ... so SQLite's has-moved stat of the database fetches them
        ("has_moved", SHARD, "GETATTR", 1),
        # the journal's create: one OPEN (its reply carries the attributes); its pwrites are buffered
        ("open", JOURNAL, "OPEN", 1),
        # RESERVED -> EXCLUSIVE: PENDING, then EXCLUSIVE; the database has nothing dirty to send
        ("lock", SHARD, "LOCK", 2),
        # a read of the journal past its end: the client knows its size, no request
        # fdatasync(journal): its header and the page records are one contiguous run: one WRITE
        ("sync", JOURNAL, "WRITE", 1),
        # ... then os_unix.c opens the folder of the new journal to fsync it: a GETATTR (the
        # folder's fsync sends nothing)
        ("sync", JOURNAL, "GETATTR", 1),
        # fdatasync(journal) after the header's record count is written: one WRITE
        ("sync", JOURNAL, "WRITE", 1),
        # fdatasync(database): the changed pages, contiguous: one WRITE; EFS answers stably, no COMMIT
        ("sync", SHARD, "WRITE", 1),
        # close(journal), unlink(journal); the name becomes a negative entry again
        ("close", JOURNAL, "CLOSE", 1),
        ("delete", JOURNAL, "REMOVE", 1),
        # EXCLUSIVE -> SHARED (2 fcntl), SHARED -> NONE (1)
        ("unlock", SHARD, "LOCKU", 2),
        ("unlock", SHARD, "LOCKU", 1),
    ]
    assert sum(ops.nfs.values()) == 19
    assert ops.rounds == {"lock": 9, "getattr": 3, "read": 1, "write": 3, "state": 3}


_STRACE_STORE = """
import os, sys
from efs_sqlite.store import ShardStore
store = ShardStore(sys.argv[1])
store.insert("claim_type_code", 1, "MOTOR")
store.get("claim_type_code", 1)
os.path.exists("/nfs-test-mark-" + "read")  # not in argv
store.get("claim_type_code", 1)
os.path.exists("/nfs-test-mark-" + "commit")  # not in argv
store.put("claim_type_code", 2, "HOME")
os.path.exists("/nfs-test-mark-" + "end")  # not in argv
store.close()
"""
#: System calls that never reach the file system (fchown: os_unix.c gives a journal its
#: database's owner only when running as root, which a Lambda is not).
_LOCAL_SYSCALLS = {"getpid", "geteuid", "fchown"}


def test_the_strace_sequences_are_8_and_36_system_calls(tmp_path):
    """The store's own system calls, traced, are the sequences the two tests above translate."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    out = tmp_path / "trace.txt"
    proc = subprocess.run(
        ["strace", "-f", "-o", str(out), sys.executable, "-c", _STRACE_STORE, str(tmp_path / "store")],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"strace cannot trace here: {proc.stderr.strip()[:200]}")
    trace = out.read_text()

    def window(start: str, end: str) -> list[str]:
        text = trace.split(f'"/nfs-test-mark-{start}"', 1)[1].split(f'"/nfs-test-mark-{end}"', 1)[0]
        names = [re.match(r"\d+\s+(\w+)\(", line) for line in text.splitlines()[1:-1]]
        return [m.group(1) for m in names if m is not None and m.group(1) not in _LOCAL_SYSCALLS]

    read, commit = window("read", "commit"), window("commit", "end")
    assert read == ["fcntl"] * 3 + ["stat", "pread64", "stat", "fstat", "fcntl"]
    assert len(commit) == 36
    assert commit.count("fcntl") == 9 and commit.count("pwrite64") == 10 and commit.count("fdatasync") == 4
    assert commit.count("unlink") == 1 and commit.count("openat") == 2  # the journal and its folder


def test_unstable_writes_add_a_commit_per_flush(tmp_path):
    with EFSModel(next(_names), profile="elastic", translation=LinuxNFS(unstable_writes=True)) as m:
        store = warm_store(tmp_path, m)
        ops = traced(m, lambda: store.put("claim_type_code", 2, "HOME"))
        store.close()
    # One COMMIT after each of the three flushes: 22 requests, near the 23 estimated by hand.
    assert ops.nfs["COMMIT"] == 3 and sum(ops.nfs.values()) == 22


@pytest.mark.parametrize("translation", [LinuxNFS(lookupcache="none"), LinuxNFS(shared_folder=True)])
def test_without_fresh_folder_attributes_every_name_is_looked_up(tmp_path, translation):
    with EFSModel(next(_names), profile="elastic", translation=translation) as m:
        store = warm_store(tmp_path, m)
        ops = traced(m, lambda: store.get("claim_type_code", 1))
        store.close()
    # stat(-journal) and stat(-wal) each cost a LOOKUP: 6 + 2 requests.
    assert ops.nfs["LOOKUP"] == 2 and sum(ops.nfs.values()) == 8


def test_the_worst_case_is_kept_by_name_and_costs_more(tmp_path):
    counts = {}
    for name in ("linux_nfs", "worst_case"):
        with EFSModel(next(_names), profile="elastic", translation=name) as m:
            store = warm_store(tmp_path / name, m)
            read = traced(m, lambda s=store: s.get("claim_type_code", 1))
            commit = traced(m, lambda s=store: s.put("claim_type_code", 2, "HOME"))
            store.close()
            counts[name] = (sum(read.nfs.values()), sum(commit.nfs.values()))
    # The worst case: a request per lock fcntl() and per VFS call that reaches the file system.
    assert counts == {"linux_nfs": (6, 19), "worst_case": (8, 32)}
    assert m.translation.name == "worst_case"


def test_writes_go_at_the_flush_one_write_per_run_all_at_once():
    nfs = LinuxNFS()
    for offset in (0, 4096, 3 * 4096):  # two runs: [0, 8192) and [12288, 16384)
        assert nfs.write("db", offset, 4096) == []
    flush = nfs.sync("db")
    assert flush == [Request("WRITE", "data_write", 2, parallel=True, nbytes=3 * 4096)]
    # Sent at once, the two WRITEs are waited for as one round trip.
    assert PROFILES["elastic"].delay_s(flush) == pytest.approx(0.0027)
    assert nfs.sync("db") == []  # nothing dirty: an fsync sends nothing


def test_a_run_longer_than_wsize_is_split_and_a_lock_or_close_flushes():
    nfs = LinuxNFS()
    nfs.write("db", 0, 3 * MiB)
    (write, lock) = nfs.lock("db", 1)
    assert (write.op, write.count, lock.op) == ("WRITE", 3, "LOCK")
    nfs.write("j", 0, 512)
    assert [r.op for r in nfs.close("j")] == ["WRITE", "CLOSE"]
    assert [r.op for r in nfs.unlock("db", 1)] == ["LOCKU"]  # nothing left to send


def test_a_lock_drops_the_cache_and_the_next_fstat_is_free():
    nfs = LinuxNFS()
    nfs.open("db", creates=False, syncs_folder=False)
    assert nfs.file_size("db") == []  # OPEN's reply carried the attributes
    assert nfs.read("db", 0, 4096, size=8192)[0].op == "READ"
    assert nfs.read("db", 0, 100, size=8192) == []  # the page is cached
    nfs.lock("db", 3)
    assert [r.op for r in nfs.file_size("db")] == ["GETATTR"]
    assert [r.op for r in nfs.read("db", 0, 4096, size=8192)] == ["READ"]  # attributes fresh again
    assert nfs.read("db", 8192, 16, size=8192) == []  # past the end of the file


def test_an_unlinked_name_is_known_missing_and_an_unknown_one_is_looked_up():
    nfs = LinuxNFS()
    assert [r.op for r in nfs.access("db-journal", exists=False)] == ["LOOKUP"]
    assert nfs.access("db-journal", exists=False) == []
    nfs.open("db-journal", creates=True, syncs_folder=True)
    assert nfs.access("db-journal", exists=True) == []  # created here: name and attributes known
    nfs.delete("db-journal")
    assert nfs.access("db-journal", exists=False) == []
    assert [r.op for r in LinuxNFS(lookupcache="positive").access("x", exists=False) * 2] == ["LOOKUP"] * 2


def test_a_new_process_starts_with_empty_caches(tmp_path, model):
    store = warm_store(tmp_path, model)
    warm = traced(model, lambda: store.get("claim_type_code", 1))
    store.close()
    model.new_process()
    cold = ShardStore(tmp_path / "store", vfs=model.name)
    first = traced(model, lambda: cold.get("claim_type_code", 1))  # the first read of a new Lambda
    assert first.nfs["OPEN"] == 1 and first.nfs["LOOKUP"] == 2  # -journal and -wal: not known yet
    again = traced(model, lambda: cold.get("claim_type_code", 1))
    cold.close()
    assert requests(again) == requests(warm)  # warm again once the names are known
    fresh = LinuxNFS(lookupcache="none").fresh()
    assert fresh.lookupcache == "none" and fresh.access("x", exists=False) == [
        Request("LOOKUP", "metadata_read")
    ]
    assert WorstCase().fresh().name == "worst_case"


def test_translations_are_named_and_bad_knobs_refused():
    assert isinstance(translation_named("worst_case"), WorstCase)
    nfs = LinuxNFS()
    assert translation_named(nfs) is nfs
    with pytest.raises(ValueError, match="unknown translation"):
        translation_named("nfs3")
    with pytest.raises(ValueError, match="lookupcache"):
        LinuxNFS(lookupcache="some")  # type: ignore[arg-type]
