"""What the NFS client sends to EFS for each file-system call SQLite makes: two translations.

A translation turns one VFS call into the NFS :class:`Request` s it costs. :class:`LinuxNFS` (the
default of :class:`efs_sqlite.efs_model.EFSModel`) follows the Linux NFSv4.1 client Lambda mounts
EFS with (docs/SOURCES.md#nfs-client); :class:`WorstCase` charges a round trip for every call that
could need one, the model's first accounting, kept as an upper bound.

The Linux client keeps, per file, its attributes, its cached pages and its dirty (written, not yet
sent) byte ranges, and per folder the names it knows to be missing:

* a lock (each ``fcntl`` F_SETLK: one LOCK or LOCKU) first sends the file's dirty ranges, then, since
  EFS grants no delegation, drops its attributes and pages: the next read costs GETATTR + READ, and
  a later fstat in the same window is answered from the fresh attributes;
* a stat of a missing ``-journal``/``-wal`` is answered by the negative lookup cache while the
  folder's attributes are fresh (``lookupcache="all"``, and no other client changing the folder);
* a pwrite costs nothing until a sync, a close, a lock change or an fstat: then one WRITE per
  contiguous dirty run (up to ``wsize``, 1 MiB on EFS), all runs at once, and a COMMIT only when
  the server answers UNSTABLE (``unstable_writes``);
* creating a journal is one OPEN; SQLite's unix VFS then opens the folder at the journal's first
  sync to fsync it: a GETATTR (an fsync of an NFS folder sends nothing);
* an unlink is REMOVE (the name is then known missing), a close CLOSE, a truncate SETATTR.

Not modelled: time (attributes age out after acregmin/acdirmin, 3/30 s: the model assumes every
call of a workload falls in one window), read-ahead beyond the pages asked for, and the read a
partial-page write to an uncached page can cause (SQLite writes whole pages).

>>> nfs = LinuxNFS()
>>> [r.op for r in nfs.lock("db", 3) + nfs.read("db", 24, 16, size=8192) + nfs.file_size("db")]
['LOCK', 'GETATTR', 'READ']
>>> nfs.write("db", 0, 4096) + nfs.write("db", 8192, 4096)
[]
>>> nfs.sync("db")
[Request(op='WRITE', efs_class='data_write', count=2, parallel=True, nbytes=8192)]
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

__all__ = [
    "LATENCY_CLASSES",
    "NFS_OPS",
    "TRANSLATIONS",
    "LinuxNFS",
    "Request",
    "Translation",
    "WorstCase",
    "translation_named",
]

MiB = 2**20
PAGE = 4096

#: The classes a request's latency is priced by (see :class:`efs_sqlite.efs_model.LatencyProfile`):
#: locks, attribute and name lookups, data reads, data writes, COMMIT, and other state changes
#: (OPEN, CLOSE, REMOVE, SETATTR).
LATENCY_CLASSES = ("lock", "getattr", "read", "write", "commit", "state")

#: Each NFS operation's latency class.
NFS_OPS: dict[str, str] = {
    "LOCK": "lock",
    "LOCKU": "lock",
    "LOCKT": "lock",
    "GETATTR": "getattr",
    "LOOKUP": "getattr",
    "READ": "read",
    "WRITE": "write",
    "COMMIT": "commit",
    "OPEN": "state",
    "CLOSE": "state",
    "REMOVE": "state",
    "SETATTR": "state",
}

_MR, _MW, _DR, _DW = "metadata_read", "metadata_write", "data_read", "data_write"


class Request(NamedTuple):
    """``count`` NFS requests of one operation, metered as ``efs_class``.

    ``parallel``: they go out at once (one round trip of waiting), else one after another.
    ``nbytes``: the data they carry (READ, WRITE).
    """

    op: str
    efs_class: str
    count: int = 1
    parallel: bool = False
    nbytes: int = 0

    @property
    def latency_class(self) -> str:
        return NFS_OPS[self.op]

    @property
    def rounds(self) -> int:
        """Sequential round trips the caller waits for."""
        return min(self.count, 1) if self.parallel else self.count


class Translation(Protocol):
    """The requests each VFS call costs; ``path`` is the file's full path."""

    name: str

    def fresh(self) -> Translation:
        """The same translation for a new process: no cached state."""
        ...

    def open(self, path: str, *, creates: bool, syncs_folder: bool) -> list[Request]: ...
    def close(self, path: str) -> list[Request]: ...
    def read(self, path: str, offset: int, amount: int, size: int) -> list[Request]: ...
    def write(self, path: str, offset: int, amount: int) -> list[Request]: ...
    def sync(self, path: str) -> list[Request]: ...
    def truncate(self, path: str, size: int) -> list[Request]: ...
    def file_size(self, path: str) -> list[Request]: ...
    def lock(self, path: str, fcntl_calls: int) -> list[Request]: ...
    def unlock(self, path: str, fcntl_calls: int) -> list[Request]: ...
    def check_reserved(self, path: str) -> list[Request]: ...
    def has_moved(self, path: str) -> list[Request]: ...
    def access(self, path: str, *, exists: bool) -> list[Request]: ...
    def delete(self, path: str) -> list[Request]: ...


def _some(op: str, efs_class: str, count: int) -> list[Request]:
    return [Request(op, efs_class, count)] if count else []


class WorstCase:
    """A round trip for every call that could need one; each pwrite a synchronous WRITE.

    The model's first accounting, an upper bound: no cached attribute or name is trusted, and a
    create costs a GETATTR of the database (os_unix.c copies its permissions) besides the OPEN.
    """

    name = "worst_case"

    def fresh(self) -> WorstCase:
        return self  # it keeps no state

    def open(self, path: str, *, creates: bool, syncs_folder: bool) -> list[Request]:
        if creates:
            return [Request("GETATTR", _MW), Request("OPEN", _MW)]
        return [Request("OPEN", _MR)]

    def close(self, path: str) -> list[Request]:
        return [Request("CLOSE", _MR)]

    def read(self, path: str, offset: int, amount: int, size: int) -> list[Request]:
        return [Request("READ", _DR, nbytes=amount)]

    def write(self, path: str, offset: int, amount: int) -> list[Request]:
        return [Request("WRITE", _DW, nbytes=amount)]

    def sync(self, path: str) -> list[Request]:
        return [Request("COMMIT", _MW)]

    def truncate(self, path: str, size: int) -> list[Request]:
        return [Request("SETATTR", _MW)]

    def file_size(self, path: str) -> list[Request]:
        return [Request("GETATTR", _MR)]

    def lock(self, path: str, fcntl_calls: int) -> list[Request]:
        return _some("LOCK", _MR, fcntl_calls)

    def unlock(self, path: str, fcntl_calls: int) -> list[Request]:
        return _some("LOCKU", _MR, fcntl_calls)

    def check_reserved(self, path: str) -> list[Request]:
        return [Request("LOCKT", _MR)]

    def has_moved(self, path: str) -> list[Request]:
        return [Request("GETATTR", _MR)]

    def access(self, path: str, *, exists: bool) -> list[Request]:
        return [Request("LOOKUP", _MR)]

    def delete(self, path: str) -> list[Request]:
        return [Request("REMOVE", _MW)]


@dataclass
class _File:
    """What the client holds for one file (one inode: every handle of the process shares it)."""

    attrs_fresh: bool = False
    pages: set[int] = field(default_factory=set)
    dirty: list[tuple[int, int]] = field(default_factory=list)  # [start, end) ranges
    syncs_folder: bool = False  # a new journal: its first sync opens the folder


def _runs(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge byte ranges into the contiguous runs a flush sends."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _pages(offset: int, amount: int) -> range:
    return range(offset // PAGE, (offset + max(amount, 1) - 1) // PAGE + 1)


@dataclass
class LinuxNFS:
    """The Linux NFSv4.1 client on EFS (no delegations); one instance is one process's client.

    ``lookupcache``: the mount option (``"all"``, the default, caches missing names;
    ``"positive"`` and ``"none"`` do not, ``"none"`` revalidates every name). ``shared_folder``:
    another client keeps changing the folder, so its attributes are never fresh and every name
    is looked up again. ``unstable_writes``: the server answers WRITEs UNSTABLE, so each flush is
    followed by a COMMIT (EFS stores a write durably before answering: off by default).
    ``wsize``: the largest WRITE (1 MiB on EFS).
    """

    lookupcache: Literal["all", "positive", "none"] = "all"
    shared_folder: bool = False
    unstable_writes: bool = False
    wsize: int = MiB
    name: str = "linux_nfs"
    _files: dict[str, _File] = field(default_factory=dict, init=False, repr=False)
    _missing: set[str] = field(default_factory=set, init=False, repr=False)  # negative lookup cache

    def __post_init__(self) -> None:
        if self.lookupcache not in ("all", "positive", "none"):
            raise ValueError(f"lookupcache must be 'all', 'positive' or 'none', not {self.lookupcache!r}")
        if self.wsize < PAGE:
            raise ValueError(f"wsize must be >= {PAGE}")

    def fresh(self) -> LinuxNFS:
        """The same mount options, empty caches (another process, a cold Lambda)."""
        return dataclasses.replace(self)

    def _file(self, path: str) -> _File:
        return self._files.setdefault(path, _File())

    def _flush(self, path: str) -> list[Request]:
        """Send the file's dirty runs: one WRITE per run (split at wsize), all at once."""
        f = self._files.get(path)
        if f is None or not f.dirty:
            return []
        runs = _runs(f.dirty)
        f.dirty.clear()
        writes = sum(-(-(end - start) // self.wsize) for start, end in runs)
        nbytes = sum(end - start for start, end in runs)
        out = [Request("WRITE", _DW, writes, parallel=True, nbytes=nbytes)]
        if self.unstable_writes:
            out.append(Request("COMMIT", _MW))
        return out

    def _attrs(self, path: str) -> list[Request]:
        f = self._file(path)
        if f.attrs_fresh:
            return []
        f.attrs_fresh = True
        return [Request("GETATTR", _MR)]

    def open(self, path: str, *, creates: bool, syncs_folder: bool) -> list[Request]:
        self._missing.discard(path)
        f = self._file(path)
        f.attrs_fresh = True  # OPEN's reply carries the attributes
        f.syncs_folder = creates and syncs_folder
        return [Request("OPEN", _MW if creates else _MR)]

    def close(self, path: str) -> list[Request]:
        return [*self._flush(path), Request("CLOSE", _MR)]

    def read(self, path: str, offset: int, amount: int, size: int) -> list[Request]:
        """``size``: the file's size, which the client knows once its attributes are fresh."""
        out = self._attrs(path)
        f = self._file(path)
        # Pages past the end of the file are not asked for: the client fills them with zeros.
        end = min(offset + amount, size)
        wanted = _pages(offset, end - offset) if end > offset else range(0)
        missing = [p for p in wanted if p not in f.pages]
        if missing:
            runs = _runs([(p, p + 1) for p in missing])
            out.append(Request("READ", _DR, len(runs), parallel=True, nbytes=len(missing) * PAGE))
            f.pages.update(missing)
        return out

    def write(self, path: str, offset: int, amount: int) -> list[Request]:
        f = self._file(path)
        f.dirty.append((offset, offset + amount))
        # Pages the write covers whole are up to date in the cache; a partial page is not.
        first, last = -(-offset // PAGE), (offset + amount) // PAGE
        f.pages.update(range(first, last))
        return []

    def sync(self, path: str) -> list[Request]:
        out = self._flush(path)
        f = self._file(path)
        if f.syncs_folder:  # unixSync opens the folder to fsync it, once
            f.syncs_folder = False
            out.append(Request("GETATTR", _MR))
        return out

    def truncate(self, path: str, size: int) -> list[Request]:
        out = self._flush(path)
        f = self._file(path)
        f.pages = {p for p in f.pages if (p + 1) * PAGE <= size}
        f.attrs_fresh = True  # SETATTR's reply carries them
        return [*out, Request("SETATTR", _MW)]

    def file_size(self, path: str) -> list[Request]:
        # fstat flushes dirty pages first, so that the server's size and times are right.
        out = self._flush(path)
        if out:
            self._file(path).attrs_fresh = True  # the WRITE replies carry the new attributes
        return [*out, *self._attrs(path)]

    def lock(self, path: str, fcntl_calls: int) -> list[Request]:
        if not fcntl_calls:
            return []
        out = [*self._flush(path), Request("LOCK", _MR, fcntl_calls)]
        f = self._file(path)
        f.attrs_fresh = False  # a lock is a cache coherency point: no delegation on EFS
        f.pages.clear()
        return out

    def unlock(self, path: str, fcntl_calls: int) -> list[Request]:
        if not fcntl_calls:
            return []
        return [*self._flush(path), Request("LOCKU", _MR, fcntl_calls)]

    def check_reserved(self, path: str) -> list[Request]:
        return [Request("LOCKT", _MR)]

    def has_moved(self, path: str) -> list[Request]:
        return self._lookup(path, exists=True)

    def access(self, path: str, *, exists: bool) -> list[Request]:
        return self._lookup(path, exists=exists)

    def _lookup(self, path: str, *, exists: bool) -> list[Request]:
        """A stat() of ``path`` by name."""
        fresh_folder = not self.shared_folder and self.lookupcache != "none"
        if not exists:
            if fresh_folder and path in self._missing:
                return []
            if self.lookupcache == "all":
                self._missing.add(path)
            self._files.pop(path, None)
            return [Request("LOOKUP", _MR)]
        f = self._files.get(path)
        if fresh_folder and f is not None:
            return self._attrs(path)  # the name is known: only the attributes may be stale
        self._missing.discard(path)
        self._file(path).attrs_fresh = True  # LOOKUP's reply carries them
        return [Request("LOOKUP", _MR)]

    def delete(self, path: str) -> list[Request]:
        self._files.pop(path, None)
        if self.lookupcache == "all":
            self._missing.add(path)  # the client turns its own unlinked name into a negative entry
        return [Request("REMOVE", _MW)]


#: The translations by name (a fresh instance each: a Linux client has state).
TRANSLATIONS = {"linux_nfs": LinuxNFS, "worst_case": WorstCase}


def translation_named(name: str | Translation) -> Translation:
    """A fresh translation of that name, or ``name`` itself if it is one already.

    >>> translation_named("worst_case").name
    'worst_case'
    """
    if not isinstance(name, str):
        return name
    if name not in TRANSLATIONS:
        raise ValueError(f"unknown translation {name!r}; expected one of {sorted(TRANSLATIONS)}")
    return TRANSLATIONS[name]()
