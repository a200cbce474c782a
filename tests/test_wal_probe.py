"""The VFS without the ``-wal`` probe: it answers that probe alone, and a store opened through it
still reads what another process, on the default unix VFS, committed in WAL mode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import apsw

from efs_sqlite.store import ShardStore
from efs_sqlite.wal_probe import NAME, _registered, vfs_name

REPO = Path(__file__).resolve().parent.parent


def test_only_the_wal_probe_is_answered_without_looking(tmp_path):
    assert vfs_name() == vfs_name() == NAME and apsw.vfs_names().count(NAME) == 1
    (shim,) = _registered
    db = tmp_path / "x.sqlite"
    for suffix in ("-wal", "-journal"):
        (tmp_path / f"x.sqlite{suffix}").write_bytes(b"x")  # the unix VFS counts an empty file absent
    assert shim.xAccess(f"{db}-wal", apsw.SQLITE_ACCESS_EXISTS) is False
    assert shim.xAccess(f"{db}-journal", apsw.SQLITE_ACCESS_EXISTS) is True
    assert shim.xAccess(str(tmp_path / "absent-journal"), apsw.SQLITE_ACCESS_EXISTS) is False


# Another process turns the shard to WAL through the default unix VFS, commits, and dies before any
# checkpoint: the new value is only in the -wal file.
_WAL_WRITER = """
import os, sys
from efs_sqlite.store import ShardStore
store = ShardStore(sys.argv[1], journal_mode="wal")
store.put("name", int(sys.argv[2]), "after")
os._exit(0)
"""


def test_a_store_without_the_probe_reads_a_wal_commit_of_another_process(tmp_path):
    store = ShardStore(tmp_path)
    store.put("name", 7, "before")
    assert store.get("name", 7) == "before"
    subprocess.run(
        [sys.executable, "-c", _WAL_WRITER, str(tmp_path), "7"],
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert (tmp_path / "name.sqlite-wal").stat().st_size > 0
    assert store.get("name", 7) == "after"
    store.close()
