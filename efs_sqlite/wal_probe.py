"""The unix VFS without its ``-wal`` probe, for stores that never use WAL.

At the start of every read transaction SQLite's pager asks the VFS whether ``<db>-wal`` exists (one
``stat()`` here, one NFS request on EFS), in case another connection has turned the database to
WAL. A store in a rollback-journal mode never makes one, and the probe is not what keeps a reader
right if another process does: a database in WAL mode says so in its header (file format version
2, bytes 18 and 19), turning it to WAL rewrites that header in a rollback transaction that changes
the file change counter every read checks, and on reading the header SQLite opens the WAL itself
(docs/SOURCES.md#sqlite-wal-header). :func:`vfs_name` registers, once per process, a VFS that
answers the probe "no" without a system call and leaves every other call to the unix VFS.

>>> import apsw, tempfile, os
>>> db = apsw.Connection(os.path.join(tempfile.mkdtemp(), "x.sqlite"), vfs=vfs_name())
>>> db.execute("CREATE TABLE t(x); INSERT INTO t VALUES (1)").fetchall()
[]
>>> db.execute("SELECT x FROM t").fetchall()
[(1,)]
"""

from __future__ import annotations

import threading

import apsw

NAME = "efs-sqlite-no-wal-probe"
_registered: list[apsw.VFS] = []  # apsw unregisters a VFS when its object is collected
_lock = threading.Lock()


class NoWalProbe(apsw.VFS):
    """The unix VFS, but ``xAccess`` of a ``-wal`` name is "absent" without a system call."""

    def __init__(self) -> None:
        super().__init__(NAME, "unix")

    def xAccess(self, pathname: str, flags: int) -> bool:
        if pathname.endswith("-wal"):
            return False
        return super().xAccess(pathname, flags)


def vfs_name() -> str:
    """The name of the VFS, registered on first call."""
    with _lock:
        if not _registered:
            _registered.append(NoWalProbe())
    return NAME
