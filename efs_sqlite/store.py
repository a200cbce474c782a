"""The sharded store: one SQLite file per field name under a root folder.

Layout
------
Each shard is ``<root>/<shard>.sqlite`` holding two tables::

    items(uid INTEGER PRIMARY KEY, value, kind INTEGER NOT NULL)   -- one field value per node
    refs(uid INTEGER, pos INTEGER, ref INTEGER, PRIMARY KEY (uid, pos)) WITHOUT ROWID

``items`` keys on the node id itself, so a point read is one rowid B-tree descent and no
secondary index exists to keep up. ``kind`` tags the few types SQLite has no storage class for
(bool, Decimal, datetime, references) so every value reads back with the type it was written
with. Reference lists are *not* a value: the earlier system stored a 25,000-entry list as one
Python-repr string that had to be read whole. Here a list is one ``refs`` row per entry, clustered
by ``(uid, pos)``, so a page is a range scan of exactly the rows asked for and an append writes only
the new rows. Positions are kept dense (``0 .. n-1``; a removal renumbers the entries after it),
so the page at any offset is a B-tree seek to ``(uid, offset)`` — page 1,000 of a 25,000-entry list
costs what page 1 does — and a list's length is its last position plus one, one seek as well.

Journal and locking
-------------------
Rollback journal (``delete`` by default; ``truncate`` and ``persist`` selectable) because WAL needs
shared memory, which a network file system cannot give; asking for WAL on an NFS/EFS mount is
refused. ``synchronous=FULL``: a commit reaches the server before it is acknowledged.

Connections are opened once per (thread, shard) and reused, so a warm Lambda never reopens a
file. A read never creates a file: a missing shard reads as empty.

A connection that finds a lock taken waits in short jittered steps (1 ms doubling to 10 ms, each
a random half to all of it) up to ``busy_timeout_ms``, where SQLite's own busy timeout sleeps up
to 100 ms between tries once it has waited a while: a writer that has waited long then tries as
often as one that has just arrived, so none starves (measured in ``python -m benchmarks``, section
``writers``). Inside :meth:`ShardStore.within` the wait also ends at the thread's
:class:`~efs_sqlite.deadline.Deadline`, with :class:`~efs_sqlite.errors.DeadlineExceeded`, and no
write begins once it has passed.

Grouped writes
--------------
:meth:`ShardStore.write` groups writes to several shards into one commit through ``ATTACH`` and
SQLite's super-journal: after a crash at any point all of the group is visible or none of it.
SQLite uses no super-journal in WAL mode, so there a group is atomic per shard only (one more
reason WAL is for local experiments). A process killed while it wrote the super-journal
(``<main shard>.sqlite-mj<hex>``) leaves it behind with no journal naming it, which SQLite never
removes: :meth:`ShardStore.sweep_super_journals` does, safely (the GraphQL Lambda sweeps at init).

>>> import tempfile
>>> store = ShardStore(tempfile.mkdtemp())
>>> with store.write() as w:
...     w.insert("claim_type_code", 1, "MOTOR")
...     w.insert("claim_amount", 1, Decimal("12.50"))
>>> store.get_many("claim_type_code", [1, 2])
{1: 'MOTOR'}
>>> store.get("claim_amount", 1)
Decimal('12.50')
>>> store.get("no_such_shard", 1) is None and not store.path("no_such_shard").exists()
True
>>> store.close()
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import random
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from itertools import chain, repeat
from pathlib import Path
from typing import Any, Literal

import apsw

from efs_sqlite.deadline import Deadline
from efs_sqlite.errors import DeadlineExceeded, StoreBusy, StoreError, UIDCollision
from efs_sqlite.hooks import StoreHook, observed
from efs_sqlite.kinds import BOOL, DATETIME, DECIMAL, INT64, KIND_OF, MICROSECOND, NAN, PLAIN, REF, Stored
from efs_sqlite.lock_quota import EFS, LockQuota
from efs_sqlite.uid import EPOCH

__all__ = [
    "JOURNAL_MODES",
    "NETWORK_FILESYSTEMS",
    "OBSERVED_METHODS",
    "STORED_KINDS",
    "Ref",
    "ShardStore",
    "Transaction",
    "WriteBatch",
    "check_refs",
    "decode_value",
    "encode_value",
    "is_network_filesystem",
    "stored_form",
    "validate_shard",
]

SHARD_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
JOURNAL_MODES = ("delete", "truncate", "persist", "wal")
NETWORK_FILESYSTEMS = frozenset({"nfs", "nfs4", "efs", "cifs", "smb3", "smbfs", "9p", "fuse.sshfs"})
MOUNTS = "/proc/mounts"
#: The methods a hook observes: every read and write. The other public methods (``path``,
#: ``shards``, ``close``, ``close_thread``) read no data and are not observed.
OBSERVED_METHODS = (
    "get",
    "get_many",
    "scan",
    "count",
    "list_count",
    "list_count_many",
    "list_page",
    "list_page_many",
    "list_window_many",
    "begin_read",
    "end_reads",
    "insert",
    "put",
    "delete",
    "list_extend",
    "list_remove",
    "transaction",
    "bulk_insert",
    "bulk_insert_stored",
    "bulk_lists",
    "integrity_check",
    "stats",
    "vacuum",
    "clear",
)
#: Observed methods that return a context manager: the observed call is the whole block.
_OBSERVED_BLOCKS = ("read", "write")
#: The busy wait's steps (see the module's docstring): the first, and the longest.
_FIRST_WAIT_S = 0.001
_LONGEST_WAIT_S = 0.010
#: ATTACH is limited to 125 databases in apsw's SQLite; keep room for main.
MAX_GROUP_SHARDS = 120
_GROUP_CACHE = 8

_SCHEMA = """
CREATE TABLE IF NOT EXISTS {s}.items(uid INTEGER PRIMARY KEY, value, kind INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.refs(uid INTEGER NOT NULL, pos INTEGER NOT NULL, ref INTEGER NOT NULL,
                                    PRIMARY KEY (uid, pos)) WITHOUT ROWID;
"""

_MAX_POS = INT64[1]

#: The model kinds :meth:`ShardStore.bulk_insert_stored` takes (their stored forms: see
#: :func:`stored_form` and :mod:`efs_sqlite.kinds`). Floats and bools go through ``bulk_insert``: a
#: NaN float is stored under a kind tag of its own, so a float's tag is not the field's alone.
_STORED: dict[str, Stored] = {k.name: k.stored for k in KIND_OF.values() if k.stored is not None}
STORED_KINDS = tuple(_STORED)
_ON_CONFLICT = {
    "error": "INSERT",
    "replace": "INSERT OR REPLACE",
    "ignore": "INSERT OR IGNORE",
    "skip_equal": "INSERT OR IGNORE",
}
OnConflict = Literal["error", "replace", "ignore", "skip_equal"]
#: Up to this many ids, a read binds each as a parameter: 30-40% faster than one JSON array for a
#: level's usual 1-10 ids (SQLite's json_each costs a few µs to set up); more go as a JSON array.
_INLINE_IDS = 32
#: The length of the list at ``ids.id`` (positions are dense: the last one + 1), as SQL.
_LENGTH = "(SELECT r.pos + 1 FROM refs r WHERE r.uid = ids.id ORDER BY r.pos DESC LIMIT 1)"


@functools.lru_cache(maxsize=256)
def _with_ids(sql: str, n: int, first: int) -> str:
    """``sql``, written with ``IN ids`` and ``FROM ids`` (a table ``ids(id)``), for ``n`` ids bound
    from parameter ``first`` on: as a list of parameters (SQLite then seeks each id, with no
    temporary table), or, when ``n`` is 0, as the elements of one JSON array bound there (any
    number of ids).

    >>> _with_ids("SELECT id FROM ids WHERE id IN ids AND id > ?1", 2, 2)
    'SELECT id FROM (SELECT ?2 AS id UNION ALL SELECT ?3) AS ids WHERE id IN (?2, ?3) AND id > ?1'
    """
    if not n:
        return f"WITH ids(id) AS (SELECT value FROM json_each(?{first})) {sql}"
    numbers = range(first, first + n)
    rows = " UNION ALL ".join(f"SELECT ?{i}" + (" AS id" if i == first else "") for i in numbers)
    listed = ", ".join(f"?{i}" for i in numbers)
    return sql.replace("FROM ids", f"FROM ({rows}) AS ids").replace("IN ids", f"IN ({listed})")


#: Forks of this process so far, as counted in each child: a store made before the last fork
#: knows its connections are its parent's.
_forks = 0


def _count_fork() -> None:
    global _forks
    _forks += 1


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork either
    os.register_at_fork(after_in_child=_count_fork)


class Ref(int):
    """A reference value: a node id that reads back as a reference, not a plain integer.

    >>> Ref(5) == 5, repr(Ref(5))
    (True, 'Ref(5)')
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Ref({int(self)})"


def validate_shard(name: str) -> str:
    """Return ``name`` if it is a valid shard name, else raise ``ValueError``.

    >>> validate_shard("claim_type_code")
    'claim_type_code'
    >>> validate_shard("../etc")
    Traceback (most recent call last):
    ...
    ValueError: invalid shard name '../etc': expected ^[a-z_][a-z0-9_]{0,62}$
    """
    if not isinstance(name, str) or not SHARD_NAME.match(name):
        raise ValueError(f"invalid shard name {name!r}: expected {SHARD_NAME.pattern}")
    return name


def _mount_fstype(path: Path, mounts: str) -> str | None:
    path = path.resolve()
    best, fstype = -1, None
    with open(mounts, encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) < 3:
                continue
            # /proc/mounts escapes spaces in mount points as \040.
            point = parts[1].replace("\\040", " ")
            if (path == Path(point) or Path(point) in path.parents) and len(point) > best:
                best, fstype = len(point), parts[2]
    return fstype


def is_network_filesystem(path: str | os.PathLike[str], mounts: str | None = None) -> bool:
    """True if ``path`` lies on a network file system (NFS, EFS, SMB, ...) per the mount table."""
    try:
        fstype = _mount_fstype(Path(path), mounts or MOUNTS)
    except OSError:
        return False
    return fstype is not None and (fstype in NETWORK_FILESYSTEMS or fstype.startswith("nfs"))


def _encode(value: Any) -> tuple[Any, int]:
    if value is None or isinstance(value, str):
        return value, PLAIN
    if isinstance(value, bool):
        return int(value), BOOL
    if isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            raise ValueError(f"integer {value} does not fit SQLite's signed 64 bits")
        return int(value), REF if isinstance(value, Ref) else PLAIN
    if isinstance(value, float):
        return (None, NAN) if math.isnan(value) else (value, PLAIN)
    if isinstance(value, Decimal):
        return str(value), DECIMAL
    if isinstance(value, datetime):
        try:
            aware = value.astimezone(UTC) if value.utcoffset() is not None else value.replace(tzinfo=UTC)
        except OverflowError:
            # Stored, it could never be read back as a UTC datetime.
            raise ValueError(f"{value!r} falls outside the years 1-9999 in UTC") from None
        return (aware - EPOCH) // MICROSECOND, DATETIME
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value), PLAIN
    raise TypeError(f"cannot store a value of type {type(value).__name__}")


#: A value as the store keeps it, ``(stored form, kind tag)`` (see :mod:`efs_sqlite.kinds`), and back:
#: shared with the other backends, so every store keeps and refuses exactly the same values.
encode_value = _encode


def _verb(on_conflict: str) -> str:
    verb = _ON_CONFLICT.get(on_conflict) if isinstance(on_conflict, str) else None
    if verb is None:
        raise ValueError(f"on_conflict must be one of {', '.join(_ON_CONFLICT)}, not {on_conflict!r:.40}")
    return verb


def _stored(kind: str) -> Stored:
    stored = _STORED.get(kind) if isinstance(kind, str) else None
    if stored is None:
        raise ValueError(f"kind must be one of {', '.join(STORED_KINDS)}, not {kind!r:.40}")
    return stored


def stored_form(kind: str, value: Any) -> Any:
    """``value``, a Python value of the model kind ``kind`` (or ``None``), as the store keeps it: what
    :meth:`ShardStore.bulk_insert_stored` takes. A datetime is microseconds since the epoch (UTC;
    a naive one is taken as UTC), a Decimal its text, an id, an integer, a string or bytes itself.

    >>> stored_form("datetime", datetime(1970, 1, 2, tzinfo=UTC)), stored_form("decimal", Decimal("-3.10"))
    (86400000000, '-3.10')
    >>> stored_form("decimal", 3.1)
    Traceback (most recent call last):
    ...
    TypeError: 3.1 is not a decimal value
    """
    form = _stored(kind)
    if value is None:
        return None
    if form.tag == REF and type(value) is int:
        value = Ref(value)  # a plain int is an id too: a ref shard's tag comes from its kind
    stored, got = _encode(value)
    if got != form.tag or not form.fits(stored):  # not of the kind, or a Decimal NaN or infinity
        raise TypeError(f"{value!r:.80} is not a {kind} value")
    return stored


def _refused(kind: str, values: Sequence[Any]) -> None:
    """Raise for the first value that SQLite refused to store as ``kind``."""
    form = _STORED[kind]
    for value in values:
        if value is not None and not form.fits(value):
            raise TypeError(f"a stored {kind} value is {form.form} or None, not {value!r:.60}")


#: The last 8 bytes of a rollback journal that names a super-journal (SQLite's aJournalMagic).
_JOURNAL_MAGIC = bytes.fromhex("d9d505f920a163d7")


def _super_journal_of(journal: Path) -> str | None:
    """The file name of the super-journal a hot rollback journal names, or None (it names none, is
    gone, or is not hot). SQLite ends such a journal with the name, its length and checksum (4 bytes
    each, big-endian) and the journal magic, and reads it back the same way (pager.c,
    readSuperJournal). A journal whose first byte is 0 is not hot (its header was never synced, so
    its transaction never reached the database file): SQLite never rolls back from it (pager.c,
    hasHotJournal), so the super-journal it names decides nothing."""
    try:
        with open(journal, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(0)
            if size < 16 or fh.read(1) == b"\0":
                return None
            fh.seek(size - 16)
            tail = fh.read(16)
            length, checksum = int.from_bytes(tail[:4], "big"), int.from_bytes(tail[4:8], "big")
            if tail[8:] != _JOURNAL_MAGIC or not 0 < length <= size - 16:
                return None
            fh.seek(size - 16 - length)
            name = fh.read(length)
    except FileNotFoundError:
        return None
    if sum(name) & 0xFFFFFFFF != checksum:
        return None
    return Path(name.rstrip(b"\0").decode(errors="replace")).name


def _decode(value: Any, kind: int) -> Any:
    if kind == PLAIN:
        return value
    if kind == BOOL:
        return bool(value)
    if kind == DECIMAL:
        return Decimal(value)
    if kind == DATETIME:
        return EPOCH + value * MICROSECOND
    if kind == REF:
        return Ref(value)
    if kind == NAN:
        return math.nan
    raise StoreError(f"unknown value kind {kind}")


decode_value = _decode


class _busy:  # lowercase: it reads like the function it replaces
    """Turn SQLite's busy errors into :class:`StoreBusy`, and drop this thread's connections to a
    shard whose file failed with an I/O error, so the next call reopens it. (EFS answers ESTALE
    for a handle to a file replaced underneath it: without this a warm Lambda would stay broken.)
    A class rather than a ``@contextmanager`` generator, which would add ~2 µs to every read."""

    __slots__ = ("shards", "store")

    def __init__(self, store: ShardStore, shards: str) -> None:
        self.store, self.shards = store, shards

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is not None:
            _store_error(self.store, self.shards, exc)


def _store_error(store: ShardStore, shards: str, exc: BaseException) -> None:
    """What :class:`_busy` does with an error (it returns when the error stands as it is)."""
    if isinstance(exc, apsw.BusyError | apsw.LockedError):
        deadline = store._state().deadline
        if deadline is not None and deadline.expired:
            raise DeadlineExceeded(
                f"shard {shards!r} stayed locked by another connection until the request's "
                "deadline; nothing was written — retry later"
            ) from exc
        raise StoreBusy(
            f"shard {shards!r} stayed locked by another connection for "
            f"{store.busy_timeout_ms} ms; nothing was written — retry later"
        ) from exc
    if isinstance(exc, apsw.IOError):
        store._forget(shards.split(","))


@dataclass
class _Op:
    verb: Literal["insert", "put", "delete", "list_extend", "list_remove", "list_set"]
    shard: str
    uid: int
    arg: Any = None


@dataclass
class WriteBatch:
    """Writes collected by :meth:`ShardStore.write`, committed together when the block ends."""

    ops: list[_Op] = field(default_factory=list)

    def _add(self, verb: Any, shard: str, uid: int, arg: Any = None) -> None:
        validate_shard(shard)
        if verb in ("insert", "put"):
            _encode(arg)  # fail now, at the caller's line, not at commit
        self.ops.append(_Op(verb, shard, _check_uid(uid), arg))

    def insert(self, shard: str, uid: int, value: Any) -> None:
        self._add("insert", shard, uid, value)

    def put(self, shard: str, uid: int, value: Any) -> None:
        self._add("put", shard, uid, value)

    def delete(self, shard: str, uid: int) -> None:
        self._add("delete", shard, uid)

    def list_extend(self, shard: str, uid: int, refs: Iterable[int]) -> None:
        self._add("list_extend", shard, uid, _check_refs(refs))

    def list_remove(self, shard: str, uid: int, refs: Iterable[int]) -> None:
        self._add("list_remove", shard, uid, _check_refs(refs))

    def list_set(self, shard: str, uid: int, refs: Iterable[int]) -> None:
        self._add("list_set", shard, uid, _check_refs(refs))


def _check_uid(uid: Any) -> int:
    if isinstance(uid, bool) or not isinstance(uid, int) or not INT64[0] <= uid <= INT64[1]:
        raise ValueError(f"id {uid!r} is not a signed 64-bit integer")
    return int(uid)


def _check_ids(ids: list[Any]) -> list[int]:
    """``ids`` itself if every one is a plain 64-bit int (checked by C loops over the list, not a
    call per id: every list a load writes), else a checked copy (``ValueError`` for a non-id)."""
    if ids and (set(map(type, ids)) != {int} or min(ids) < INT64[0] or max(ids) > INT64[1]):
        return [_check_uid(r) for r in ids]
    return ids


def _check_refs(refs: Iterable[int]) -> list[int]:
    return _check_ids(list(refs))  # a copy: the caller's list may change before the commit


check_refs = _check_refs


class Transaction:
    """A write transaction on one shard, from :meth:`ShardStore.transaction`."""

    def __init__(self, store: ShardStore, shard: str) -> None:
        store._check_not_reading()
        conn = store._conn(shard, create=True)
        assert conn is not None
        self.store, self.shard, self._conn = store, shard, conn
        with _busy(store, shard):
            conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        """Keep the writes made in the transaction (if the commit fails, none of them)."""
        try:
            with _busy(self.store, self.shard):
                self._conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise

    def rollback(self) -> None:
        """Drop the writes made in the transaction."""
        with contextlib.suppress(apsw.Error):  # a failed connection keeps the error that failed it
            if not self._conn.getautocommit():
                self._conn.execute("ROLLBACK")

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if kind is None:
            self.commit()
        else:
            self.rollback()


class _Local(threading.local):
    def __init__(self) -> None:
        self.conns: dict[str, apsw.Connection] = {}
        self.ready: set[str] = set()
        self.groups: OrderedDict[tuple[str, ...], apsw.Connection] = OrderedDict()
        # The read transactions this thread holds (read() or begin_read()), by shard; None when it
        # holds none. A shard held while its file did not exist maps to None: it reads as empty.
        self.reading: dict[str, apsw.Connection | None] | None = None
        # The deadline of this thread's calls, inside within().
        self.deadline: Deadline | None = None


class ShardStore:
    """A folder of SQLite shards, one per field name.

    ``journal_mode`` is ``delete`` (default), ``truncate``, ``persist`` or ``wal`` (refused on a
    network file system, as the mount table ``mounts`` — ``/proc/mounts`` by default — says). ``vfs``
    names a registered apsw VFS (e.g. the EFS model's) used for every file the store opens.
    ``create=False`` requires ``root`` to exist. ``hook`` (see :mod:`efs_sqlite.hooks`) is told of
    every read and write, and may gate or fail it. ``lock_quota`` (EFS's by default) bounds how many
    shard files this process may lock at once (:attr:`max_locked_files`): a grouped write over more
    is refused with :class:`~efs_sqlite.errors.LockQuotaExceeded`.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        journal_mode: str = "delete",
        busy_timeout_ms: int = 5000,
        vfs: str | None = None,
        synchronous: str = "full",
        create: bool = True,
        mounts: str | None = None,
        hook: StoreHook | None = None,
        lock_quota: LockQuota = EFS,
    ) -> None:
        self.root = Path(root)
        journal_mode = journal_mode.lower()
        if journal_mode not in JOURNAL_MODES:
            raise ValueError(f"journal_mode must be one of {JOURNAL_MODES}, not {journal_mode!r}")
        if synchronous.lower() not in ("off", "normal", "full", "extra"):
            raise ValueError(f"synchronous must be off, normal, full or extra, not {synchronous!r}")
        if busy_timeout_ms < 0:
            raise ValueError("busy_timeout_ms must be >= 0")
        if journal_mode == "wal" and is_network_filesystem(self.root, mounts):
            raise StoreError(
                f"WAL refused: {self.root} is on a network file system. WAL needs shared memory "
                "between processes, which NFS/EFS cannot provide (sqlite.org/wal.html); "
                "use journal_mode='delete' or 'truncate'."
            )
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        elif not self.root.is_dir():
            raise FileNotFoundError(f"store root {self.root} does not exist")
        self.journal_mode = journal_mode
        self.synchronous = synchronous.lower()
        self.busy_timeout_ms = busy_timeout_ms
        self.lock_quota = lock_quota
        self.vfs = vfs
        self._local = _Local()
        self._forks = _forks
        self._all: list[apsw.Connection] = []
        self._all_lock = threading.Lock()
        if hook is not None:
            self._observe_with(hook)

    def _observe_with(self, hook: StoreHook) -> None:
        """Shadow each read and write method of this store with one observed by ``hook``. A store
        with no hook runs the class's methods as they are: it pays nothing for hooks."""
        # end_reads lets go of the shards this thread holds: the hook is told which.
        shards = {"end_reads": lambda: tuple(self._state().reading or ())}
        for name in OBSERVED_METHODS:
            setattr(self, name, observed(hook, name, getattr(self, name), shards=shards.get(name)))
        for name in _OBSERVED_BLOCKS:
            setattr(self, name, observed(hook, name, getattr(self, name), block=True))

    def __repr__(self) -> str:
        return f"ShardStore({str(self.root)!r}, journal_mode={self.journal_mode!r})"

    def __enter__(self) -> ShardStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connections ---------------------------------------------------------------------------

    def path(self, shard: str) -> Path:
        """The file of ``shard`` (which may not exist)."""
        return self.root / f"{validate_shard(shard)}.sqlite"

    def shards(self) -> list[str]:
        """The shards that exist on disk, sorted."""
        return sorted(p.stem for p in self.root.glob("*.sqlite") if SHARD_NAME.match(p.stem))

    def has_shard(self, shard: str) -> bool:
        """Whether ``shard``'s file exists (a delete must not create an empty one)."""
        return self.path(shard).exists()

    def healthy(self) -> bool:
        """Whether the store's root is reachable."""
        return self.root.is_dir()

    #: A read transaction holds a lock worth taking ahead of a query's levels (see
    #: :mod:`efs_sqlite.backend`).
    read_locks = True

    @property
    def parallel_reads(self) -> bool:
        """Whether reads wait on the network: the root on a network file system, or a VFS (the EFS
        model sleeps), so a level's reads are worth making at once."""
        return self.vfs is not None or is_network_filesystem(self.root)

    @property
    def max_locked_files(self) -> int:
        """How many shard files this process may hold locks on at once (see :mod:`efs_sqlite.lock_quota`)."""
        return self.lock_quota.files_per_process

    @property
    def open_connections(self) -> int:
        """How many connections to shard files this store holds open, in every thread."""
        self._state()
        with self._all_lock:
            return len(self._all)

    def _state(self) -> _Local:
        if self._forks != _forks:  # not os.getpid(): a system call, and this runs for every read
            # A forked child must not use its parent's SQLite connections (sqlite.org/howtocorrupt):
            # abandon them unclosed, since closing could release locks the parent still relies on.
            self._forks = _forks
            self._local = _Local()
            self._all = []
            self._all_lock = threading.Lock()
        return self._local

    def _open(self, path: Path, create: bool, wait: bool = True) -> apsw.Connection:
        """A new connection to ``path``; its pragmas, which may need a lock, wait only if ``wait``."""
        flags = apsw.SQLITE_OPEN_READWRITE | (apsw.SQLITE_OPEN_CREATE if create else 0)
        # Reads prepare one statement per number of ids (up to _INLINE_IDS) and kind of read:
        # apsw's default cache of 100 prepared statements would evict some of them.
        conn = apsw.Connection(str(path), flags=flags, vfs=self.vfs or None, statementcachesize=256)
        self._set_waiting(conn, wait)
        try:
            self._pragmas(conn, "main")
        except BaseException:
            conn.close(True)
            raise
        if not wait:
            self._set_waiting(conn, True)
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _set_waiting(self, conn: apsw.Connection, wait: bool) -> None:
        """Give ``conn`` the jittered busy wait (``wait``, and a busy timeout above 0), or none."""
        conn.set_busy_handler(self._busy_handler() if wait and self.busy_timeout_ms else None)

    def _busy_handler(self) -> Callable[[int], bool]:
        """SQLite's busy handler for one connection: called with the number of tries so far while
        a lock is taken, it sleeps a jittered step and answers True to try again, or False to give
        up (SQLite then raises the busy error) at the busy timeout or this thread's deadline."""
        timeout = self.busy_timeout_ms / 1000
        started = [0.0]

        def handler(tries: int) -> bool:
            now = time.monotonic()
            if tries == 0:
                started[0] = now
            left = timeout - (now - started[0])
            deadline = self._local.deadline
            if deadline is not None:
                left = min(left, deadline.at - now)
            if left <= 0:
                return False
            step = min(_LONGEST_WAIT_S, _FIRST_WAIT_S * 2 ** min(tries, 8))
            # Jitter: writers that collided do not all wake at the same moment again.
            time.sleep(min(left, step * random.uniform(0.5, 1.0)))
            return True

        return handler

    def _pragmas(self, conn: apsw.Connection, schema: str) -> None:
        conn.execute(
            f"PRAGMA {schema}.journal_mode={self.journal_mode}; "
            f"PRAGMA {schema}.synchronous={self.synchronous}"
        ).fetchall()

    def _conn(self, shard: str, *, create: bool, wait: bool = True) -> apsw.Connection | None:
        """This thread's connection to ``shard``; ``None`` if it does not exist and not ``create``.
        Without ``wait``, opening it raises :class:`StoreBusy` at once if it needs a lock that is taken."""
        st = self._state()
        # Only names that passed path() are cached; anything else (even unhashable) goes there to fail.
        conn = st.conns.get(shard) if isinstance(shard, str) else None
        if conn is None:
            path = self.path(shard)
            if not create and not path.exists():
                return None
            with _busy(self, shard):
                conn = self._open(path, create, wait)
            st.conns[shard] = conn
        if create and shard not in st.ready:
            with _busy(self, shard), conn:  # both tables in one commit: half the round trips on EFS
                conn.execute(_SCHEMA.format(s="main"))
            st.ready.add(shard)
        return conn

    def _query(self, shard: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read; a missing shard (or one whose tables do not exist yet) reads as empty."""
        st = self._state()
        conn = st.conns.get(shard) if type(shard) is str else None
        if conn is None or st.reading is not None:  # not the usual warm read: open, or hold
            conn = self._reading_conn(st, shard)
            if conn is None:
                return []
        try:  # _busy's work, inlined: this runs for every read
            return conn.execute(sql, params).fetchall()
        except apsw.SQLError as exc:
            if "no such table" in str(exc):
                return []
            raise
        except apsw.Error as exc:
            _store_error(self, shard, exc)
            raise

    def _reading_conn(self, st: _Local, shard: str) -> apsw.Connection | None:
        """The connection a read of ``shard`` uses, opened if need be and, inside a hold
        (:meth:`read`, :meth:`begin_read`), in its read transaction; None if it reads as empty."""
        if st.reading is not None and shard in st.reading and st.reading[shard] is None:
            return None  # held as missing (begin_read): it stays empty for the whole hold
        conn = self._conn(shard, create=False)
        if conn is not None and st.reading is not None and shard not in st.reading:
            with _busy(self, shard):
                conn.execute("BEGIN")
            st.reading[shard] = conn
        return conn

    def _query_ids(
        self, shard: str, sql: str, ids: list[int], params: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]:
        """Run a read whose ``sql`` uses the table ``ids(id)`` of these ``ids`` and its own
        ``params`` as ``?1``, ``?2``... (see :func:`_with_ids`)."""
        first = len(params) + 1
        if len(ids) <= _INLINE_IDS:  # one prepared statement per count, no JSON to parse
            try:
                return self._query(shard, _with_ids(sql, len(ids), first), [*params, *ids])
            except OverflowError:  # an id past 64 bits: no row has it, as the JSON form finds
                pass
        return self._query(shard, _with_ids(sql, 0, first), [*params, json.dumps(ids)])

    @contextlib.contextmanager
    def within(self, deadline: Deadline | None) -> Iterator[None]:
        """Bound this thread's calls in the block by ``deadline`` (``None``: no bound): a wait for a
        lock ends at it with :class:`DeadlineExceeded`, and no write begins after it. Nested, the
        earlier deadline holds. Another thread (a reader lane's) needs a block of its own.

        >>> import tempfile
        >>> store = ShardStore(tempfile.mkdtemp())
        >>> with store.within(Deadline.after(-1)):
        ...     store.get("claim_type_code", 1), store.put("claim_type_code", 1, "MOTOR")
        Traceback (most recent call last):
        ...
        efs_sqlite.errors.DeadlineExceeded: the request's deadline passed before a write — retry later
        >>> store.put("claim_type_code", 1, "MOTOR")
        >>> store.close()
        """
        st = self._state()
        outer = st.deadline
        st.deadline = Deadline.sooner(outer, deadline)
        try:
            yield
        finally:
            st.deadline = outer

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        """Hold one read transaction per shard touched for the whole block (this thread).

        Several reads of one shard then cost one lock cycle, and see one consistent snapshot.
        Inside a hold this thread already has (an outer block, or :meth:`begin_read`) the block
        is a no-op: the outer hold owns the transactions.
        """
        st = self._state()
        if st.reading is not None:  # nested: the outer block owns the transactions
            yield
            return
        st.reading = {}
        try:
            yield
        finally:
            self.end_reads()

    def begin_read(self, shard: str, *, wait: bool = True) -> bool:
        """Begin a read transaction on ``shard`` that this thread holds until :meth:`end_reads`,
        across any number of calls (tasks of one worker thread, say): its reads of ``shard``
        meanwhile take no lock (SQLite's page cache stays valid, so warm pages cost nothing) and
        see one snapshot. The lock is taken now, by a statement that reads the schema.

        ``wait=False`` takes it only if it is free at once: when a writer holds or is about to take
        it (PENDING/EXCLUSIVE), or a hot journal needs a recovery that another connection prevents,
        nothing is held on ``shard`` and the answer is False, instead of waiting up to the busy
        timeout. A caller holding other shards must not wait: a grouped writer may hold this one
        while it waits for theirs. With ``wait=True`` that case raises :class:`StoreBusy` after
        the timeout. A shard whose file does not exist is held as missing: it reads as empty
        until :meth:`end_reads`, and its file is not created. Writes on this thread are refused
        while it holds a read (as inside :meth:`read`).

        >>> import tempfile
        >>> store = ShardStore(tempfile.mkdtemp())
        >>> store.insert("claim_type_code", 1, "MOTOR")
        >>> store.begin_read("claim_type_code", wait=False), store.begin_read("no_such_shard")
        (True, True)
        >>> store.get("claim_type_code", 1), store.get("no_such_shard", 1)
        ('MOTOR', None)
        >>> store.end_reads()
        >>> store.close()
        """
        st = self._state()
        if st.reading is not None and shard in st.reading:
            return True
        held = False
        reading = st.reading = {} if st.reading is None else st.reading
        try:
            conn = self._conn(shard, create=False, wait=wait)
            if conn is None:
                reading[shard] = None
            elif self._begin(conn, shard, wait):
                reading[shard] = conn
            held = shard in reading
        except StoreBusy:
            if wait:
                raise
            # Opening it (cold) needed a lock another connection holds: not held, as when busy.
        finally:
            if not held and not reading:  # holds nothing: the thread is left as it was
                st.reading = None
        return held

    def _begin(self, conn: apsw.Connection, shard: str, wait: bool) -> bool:
        """BEGIN and take the SHARED lock on ``conn`` (see :meth:`begin_read`); False if busy."""
        with _busy(self, shard):
            if not wait:
                self._set_waiting(conn, False)
            try:
                conn.execute("BEGIN")
                try:
                    conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
                except apsw.BusyError:
                    conn.execute("ROLLBACK")  # it took no lock: the transaction is only open
                    if wait:
                        raise
                    return False
                except BaseException:
                    if not conn.getautocommit():
                        with contextlib.suppress(apsw.Error):  # keep the first error
                            conn.execute("ROLLBACK")
                    raise
            finally:
                if not wait:
                    self._set_waiting(conn, True)
        return True

    def end_reads(self) -> None:
        """End every read transaction this thread holds (:meth:`begin_read`, or those of a
        :meth:`read` block, which calls it). Each is ended even if another fails to: a connection
        whose commit failed is closed, which lets go of its lock; the first error is raised."""
        st = self._state()
        reading, st.reading = st.reading, None
        error: BaseException | None = None
        for shard, conn in (reading or {}).items():
            if conn is None or conn.getautocommit():
                continue
            try:
                with _busy(self, shard):  # an I/O error drops the connection there
                    conn.execute("COMMIT")
            except BaseException as exc:  # raised below, once the others have ended
                self._forget([shard])
                error = error or exc
        if error is not None:
            raise error

    # -- reads -----------------------------------------------------------------------------------

    def get(self, shard: str, uid: int, default: Any = None) -> Any:
        """The value of ``uid`` in ``shard``, or ``default``."""
        rows = self._query(shard, "SELECT value, kind FROM items WHERE uid = ?", (uid,))
        return _decode(*rows[0]) if rows else default

    def get_many(self, shard: str, uids: Iterable[int]) -> dict[int, Any]:
        """The values of those ``uids`` present in ``shard``: one statement, one read transaction."""
        ids = list(uids)
        if not ids:
            return {}
        rows = self._query_ids(shard, "SELECT uid, value, kind FROM items WHERE uid IN ids", ids)
        return {
            uid: value
            if kind == PLAIN
            else EPOCH + value * MICROSECOND
            if kind == DATETIME
            else _decode(value, kind)
            for uid, value, kind in rows
        }

    def scan(self, shard: str, after: int | None = None, limit: int = 1000) -> list[tuple[int, Any]]:
        """Up to ``limit`` ``(uid, value)`` pairs in id order, starting after ``after``."""
        # No `uid > min` default: -2**63 is a valid id.
        where, params = ("", (limit,)) if after is None else ("WHERE uid > ? ", (after, limit))
        rows = self._query(shard, f"SELECT uid, value, kind FROM items {where}ORDER BY uid LIMIT ?", params)
        return [(uid, _decode(value, kind)) for uid, value, kind in rows]

    def count(self, shard: str) -> int:
        """How many values ``shard`` holds."""
        return (self._query(shard, "SELECT count(*) FROM items") or [(0,)])[0][0]

    def _exists(self, shard: str) -> bool:
        return (isinstance(shard, str) and shard in self._state().conns) or self.path(shard).exists()

    def list_count(self, shard: str, uid: int) -> int:
        """The length of the reference list at ``uid``."""
        return self.list_count_many(shard, [uid]).get(uid, 0)

    def list_count_many(self, shard: str, uids: Iterable[int]) -> dict[int, int]:
        """The lengths of several reference lists, one statement (absent lists count 0)."""
        ids = list(uids)
        # Dense positions: the length is the last position + 1, one seek per list, not a count.
        rows = self._query_ids(shard, f"SELECT id, {_LENGTH} FROM ids", ids)
        counts = dict.fromkeys(ids, 0)
        counts.update((uid, n) for uid, n in rows if n)
        return counts

    def list_page(self, shard: str, uid: int, offset: int = 0, limit: int = 100) -> list[int]:
        """Entries ``offset .. offset+limit`` of the list at ``uid``, reading only those rows."""
        return self.list_page_many(shard, [uid], offset, limit)[uid]

    def list_page_many(
        self, shard: str, uids: Iterable[int], offset: int = 0, limit: int = 100
    ) -> dict[int, list[int]]:
        """The same page of several lists: one statement, one seek per list."""
        if offset < 0 or limit < 0:
            raise ValueError("offset and limit must be >= 0")
        pages: dict[int, list[int]] = {uid: [] for uid in uids}
        if offset >= _MAX_POS:  # past any list SQLite can hold: an empty page, not an OverflowError
            return pages
        rows = self._query_ids(
            shard,
            "SELECT uid, ref FROM refs WHERE uid IN ids AND pos >= ?1 AND pos < ?2 ORDER BY uid, pos",
            list(pages),
            (offset, min(offset + limit, _MAX_POS)),
        )
        for uid, ref in rows:
            pages[uid].append(ref)
        return pages

    def list_window_many(
        self, shard: str, uids: Iterable[int], offset: int = 0, limit: int = 100
    ) -> tuple[dict[int, int], dict[int, list[int]]]:
        """The lengths of several lists and the same page of each, from one statement: one lock
        cycle and one snapshot, where :meth:`list_count_many` and :meth:`list_page_many` in a
        :meth:`read` block take four statements.

        >>> import tempfile
        >>> store = ShardStore(tempfile.mkdtemp())
        >>> store.list_extend("claim_parties", 1, [30, 10, 20])
        >>> store.list_window_many("claim_parties", [1, 2], offset=1, limit=5)
        ({1: 3, 2: 0}, {1: [10, 20], 2: []})
        """
        if offset < 0 or limit < 0:
            raise ValueError("offset and limit must be >= 0")
        pages: dict[int, list[int]] = {uid: [] for uid in uids}
        counts = dict.fromkeys(pages, 0)
        end = min(offset + limit, _MAX_POS) if offset < _MAX_POS else offset
        rows = self._query_ids(
            shard,
            # The lengths (position -1 marks them: no entry has it), then the page's entries.
            f"SELECT id, -1, {_LENGTH} FROM ids UNION ALL"
            " SELECT uid, pos, ref FROM refs WHERE uid IN ids AND pos >= ?1 AND pos < ?2",
            list(pages),
            (min(offset, _MAX_POS), end),
        )
        counts.update((uid, value or 0) for uid, pos, value in rows if pos < 0)
        entries = sorted(row for row in rows if row[1] >= 0)  # by list, then position
        if len(pages) == 1:  # a level of one node, the usual case: no per-row appends
            pages = {uid: [ref for _, _, ref in entries] for uid in pages}
        else:
            for uid, _, ref in entries:
                pages[uid].append(ref)
        return counts, pages

    # -- writes ----------------------------------------------------------------------------------

    def _write_one(self, verb: str, shard: str, uid: int, arg: Any = None) -> int:
        batch = WriteBatch()
        batch._add(verb, shard, uid, arg)
        return self._commit(batch.ops)

    def insert(self, shard: str, uid: int, value: Any) -> None:
        """Add a value; raise :class:`UIDCollision` if ``uid`` is present (never overwrite)."""
        self._write_one("insert", shard, uid, value)

    def put(self, shard: str, uid: int, value: Any) -> None:
        """Insert or replace a value (an explicit upsert)."""
        self._write_one("put", shard, uid, value)

    def delete(self, shard: str, uid: int) -> bool:
        """Remove ``uid``'s value and list from ``shard``; True if anything was there."""
        return self._exists(shard) and self._write_one("delete", shard, uid) > 0

    def list_extend(self, shard: str, uid: int, refs: Iterable[int]) -> None:
        """Append ``refs`` to the list at ``uid``."""
        self._write_one("list_extend", shard, uid, _check_refs(refs))

    def list_remove(self, shard: str, uid: int, refs: Iterable[int]) -> int:
        """Remove every occurrence of ``refs`` from the list at ``uid``; return how many."""
        if not self._exists(shard):
            return 0
        return self._write_one("list_remove", shard, uid, _check_refs(refs))

    @contextlib.contextmanager
    def write(self) -> Iterator[WriteBatch]:
        """Group writes to any number of shards into one atomic commit.

        The writes are collected and applied when the block ends without an exception; if any
        fails (a :class:`UIDCollision`, a busy timeout, an I/O error) none of them is kept.
        A crash mid-commit keeps all or none, except under WAL (atomic per shard only).
        """
        self._check_not_reading()
        batch = WriteBatch()
        yield batch
        if batch.ops:
            self._commit(batch.ops)

    def transaction(self, shard: str) -> Transaction:
        """Begin one write transaction on ``shard`` that this thread's bulk writes to it
        (:meth:`bulk_insert`, :meth:`bulk_insert_stored`, :meth:`bulk_lists`) join until it commits:
        a loader's batch, written a chunk at a time. As a ``with`` block it commits at the end, or
        keeps none of the writes if the block raises.

        >>> import tempfile
        >>> store = ShardStore(tempfile.mkdtemp())
        >>> with store.transaction("party_identifier"):
        ...     store.bulk_insert_stored("party_identifier", "int", [1, 2], [10, 20])
        ...     store.bulk_insert_stored("party_identifier", "int", [3], [30])
        2
        1
        >>> tx = store.transaction("party_identifier")
        >>> store.bulk_insert_stored("party_identifier", "int", [4], [40])
        1
        >>> tx.rollback()
        >>> store.count("party_identifier")
        3
        >>> store.close()
        """
        return Transaction(self, shard)

    def _check_not_reading(self) -> None:
        if self._state().reading is not None:
            raise StoreError("cannot write inside store.read(): end the read block first")

    def _commit(self, ops: list[_Op]) -> int:
        self._check_not_reading()
        deadline = self._state().deadline
        if deadline is not None:
            deadline.check("a write")
        shards = sorted({op.shard for op in ops})
        if len(shards) > MAX_GROUP_SHARDS:
            raise StoreError(f"a grouped write may touch at most {MAX_GROUP_SHARDS} shards")
        self.lock_quota.check_files(len(shards), "a grouped write")
        if len(shards) == 1:
            conn, schemas = self._conn(shards[0], create=True), {shards[0]: "main"}
        else:
            conn, schemas = self._group(tuple(shards))
        assert conn is not None
        with _busy(self, ",".join(shards)):
            conn.execute("BEGIN IMMEDIATE")
            try:
                changes = sum(self._apply(conn, schemas[op.shard], op) for op in ops)
                conn.execute("COMMIT")
            except BaseException:
                if not conn.getautocommit():
                    with contextlib.suppress(apsw.Error):  # keep the first error, not the rollback's
                        conn.execute("ROLLBACK")
                raise
        return changes

    def _group(self, shards: tuple[str, ...]) -> tuple[apsw.Connection, dict[str, str]]:
        """A connection with ``shards[0]`` as main and the others attached, cached per thread."""
        schemas = {s: ("main" if i == 0 else f"s{i}") for i, s in enumerate(shards)}
        st = self._state()
        conn = st.groups.get(shards)
        if conn is not None:
            st.groups.move_to_end(shards)
            return conn, schemas
        with _busy(self, shards[0]):
            conn = self._open(self.path(shards[0]), create=True)
            for shard in shards[1:]:
                conn.execute("ATTACH ? AS " + schemas[shard], (str(self.path(shard)),))
                self._pragmas(conn, schemas[shard])
            # Tables through this connection too, so a cold grouped write opens each file once.
            for schema in schemas.values():
                conn.execute(_SCHEMA.format(s=schema))
        st.groups[shards] = conn
        if len(st.groups) > _GROUP_CACHE:
            _, old = st.groups.popitem(last=False)
            self._close(old)
        return conn, schemas

    def _apply(self, conn: apsw.Connection, s: str, op: _Op) -> int:
        if op.verb == "insert":
            try:
                conn.execute(f"INSERT INTO {s}.items VALUES (?, ?, ?)", (op.uid, *_encode(op.arg)))
            except apsw.ConstraintError:
                raise UIDCollision(op.shard, op.uid) from None
        elif op.verb == "put":
            conn.execute(f"INSERT OR REPLACE INTO {s}.items VALUES (?, ?, ?)", (op.uid, *_encode(op.arg)))
        elif op.verb == "delete":
            conn.execute(f"DELETE FROM {s}.items WHERE uid = ?", (op.uid,))
            n = conn.changes()
            conn.execute(f"DELETE FROM {s}.refs WHERE uid = ?", (op.uid,))
            return n + conn.changes()
        elif op.verb == "list_remove":
            return self._list_remove(conn, s, op.uid, op.arg)
        else:
            if op.verb == "list_set":
                conn.execute(f"DELETE FROM {s}.refs WHERE uid = ?", (op.uid,))
            (start,) = conn.execute(
                f"SELECT coalesce((SELECT pos + 1 FROM {s}.refs WHERE uid = ? ORDER BY pos DESC LIMIT 1), 0)",
                (op.uid,),
            ).fetchone()
            self._list_insert(conn, s, op.uid, start, op.arg)
        return conn.changes()

    @staticmethod
    def _list_insert(conn: apsw.Connection, s: str, uid: int, start: int, refs: Sequence[int]) -> None:
        conn.executemany(
            f"INSERT INTO {s}.refs VALUES (?, ?, ?)", ((uid, start + i, r) for i, r in enumerate(refs))
        )

    def _list_remove(self, conn: apsw.Connection, s: str, uid: int, refs: Sequence[int]) -> int:
        """Delete entries, then renumber the tail so positions stay dense (removal is the rare op)."""
        match = f"FROM {s}.refs WHERE uid = ? AND ref IN (SELECT value FROM json_each(?))"
        (first,) = conn.execute(f"SELECT min(pos) {match}", (uid, json.dumps(refs))).fetchone()
        if first is None:
            return 0
        conn.execute(f"DELETE {match}", (uid, json.dumps(refs)))
        removed = conn.changes()
        tail = [
            r
            for (r,) in conn.execute(
                f"SELECT ref FROM {s}.refs WHERE uid = ? AND pos > ? ORDER BY pos", (uid, first)
            )
        ]
        conn.execute(f"DELETE FROM {s}.refs WHERE uid = ? AND pos > ?", (uid, first))
        self._list_insert(conn, s, uid, first, tail)
        return removed

    def bulk_insert(
        self,
        shard: str,
        rows: Iterable[tuple[int, Any]],
        *,
        on_conflict: OnConflict = "error",
    ) -> int:
        """Insert many ``(uid, value)`` rows in one transaction; return rows written.

        ``on_conflict="error"`` raises :class:`UIDCollision` and writes nothing; ``"replace"``
        upserts; ``"ignore"`` keeps what is there; ``"skip_equal"`` skips a row whose id already
        holds the same value (stored identically: a load run again) and, if an id holds another
        value, raises :class:`UIDCollision` naming the first such row and writes nothing.
        """
        verb = _verb(on_conflict)

        def encoded() -> Iterator[tuple[Any, ...]]:
            # The common row (an int id, a str value) skips both calls: they were a third of the
            # time a 100k-row load spent per row, raw executemany included.
            for uid, value in rows:
                if type(uid) is not int or not INT64[0] <= uid <= INT64[1]:
                    uid = _check_uid(uid)
                if type(value) is str:
                    yield uid, value, PLAIN
                else:
                    stored, kind = _encode(value)
                    yield uid, stored, kind

        if on_conflict != "skip_equal":
            return self._insert_items(shard, f"{verb} INTO items VALUES (?, ?, ?)", encoded(), on_conflict)
        items = list(encoded())

        def check(conn: apsw.Connection, written: int) -> None:
            if written < len(items):
                self._refuse_different(conn, shard, items)

        return self._insert_items(shard, f"{verb} INTO items VALUES (?, ?, ?)", items, on_conflict, check)

    def bulk_insert_stored(
        self,
        shard: str,
        kind: str,
        uids: Sequence[int],
        values: Sequence[Any],
        *,
        on_conflict: OnConflict = "error",
    ) -> int:
        """:meth:`bulk_insert` for a column of ids and a column of values already in the stored form
        of ``kind``, a model field kind of :data:`STORED_KINDS` (see :func:`stored_form`): a bulk
        load's fast path. Columns, the way a loader holds them, so no tuple is made per row.

        Every row gets the kind tag of ``kind`` (``None`` is stored as a missing value), never one
        the caller picks. The ids must be 64-bit ints (else ``ValueError``); SQLite checks each value
        as it binds it (so every value reads back as a ``kind``): one that is not of ``kind``'s stored
        form fails the batch with a ``TypeError`` naming it, and nothing is written.

        >>> import tempfile
        >>> store = ShardStore(tempfile.mkdtemp())
        >>> store.bulk_insert_stored("claim_timestamp", "datetime", [1, 2], [0, 86_400_000_000])
        2
        >>> store.get("claim_timestamp", 2)
        datetime.datetime(1970, 1, 2, 0, 0, tzinfo=datetime.timezone.utc)
        >>> store.bulk_insert_stored("claim_timestamp", "datetime", [3], ["1970-01-01"])
        Traceback (most recent call last):
        ...
        TypeError: a stored datetime value is an int (microseconds, years 1-9999) or None, not '1970-01-01'
        >>> store.close()
        """
        verb = _verb(on_conflict)
        uids = _check_ids(uids if isinstance(uids, list) else list(uids))
        values = values if isinstance(values, list | tuple) else list(values)
        if len(uids) != len(values):
            raise ValueError(f"{len(uids)} ids but {len(values)} values")
        form = _stored(kind)
        tag = form.tag

        def refused() -> None:
            _refused(kind, values)

        def check(conn: apsw.Connection, written: int) -> None:
            if written < len(uids):  # rows refused (then this raises), or ids already present
                refused()
                if on_conflict == "skip_equal":
                    tags = [PLAIN if v is None else tag for v in values]
                    self._refuse_different(conn, shard, list(zip(uids, values, tags, strict=True)))

        # A value that fails the check gets a NULL tag, which the NOT NULL constraint refuses.
        guard = f"CASE WHEN {form.sql} THEN {tag} WHEN ?2 IS NULL THEN {PLAIN} END"
        sql = f"{verb} INTO items VALUES (?1, ?2, {guard})"
        # zip() hands executemany one reused tuple: nothing per row for the garbage collector.
        return self._insert_items(shard, sql, zip(uids, values, strict=True), on_conflict, check, refused)

    def _insert_items(
        self,
        shard: str,
        sql: str,
        rows: Iterable[tuple[Any, ...]],
        on_conflict: str,
        check: Callable[[apsw.Connection, int], None] | None = None,
        refused: Callable[[], None] | None = None,
    ) -> int:
        """Run one bulk ``INSERT`` of ``rows`` (``uid`` first) in one transaction; ``check(conn,
        written)`` runs inside it, before the commit (``skip_equal``'s comparison); ``refused()``
        raises the error for a row the NOT NULL constraint refused."""
        conn = self._conn(shard, create=True)
        assert conn is not None
        last = [0]

        def tracked() -> Iterator[tuple[Any, ...]]:
            for row in rows:
                last[0] = row[0]
                yield row

        with _busy(self, shard):
            before = conn.total_changes()
            try:
                with conn:
                    # Only "error" needs to know the row that failed; the others bind from the rows as given.
                    conn.executemany(sql, tracked() if on_conflict == "error" else rows)
                    written = conn.total_changes() - before
                    if check is not None:
                        check(conn, written)
            except apsw.ConstraintError as exc:
                if refused is not None and exc.extendedresult == apsw.SQLITE_CONSTRAINT_NOTNULL:
                    refused()
                raise UIDCollision(shard, last[0]) from None
        return written

    @staticmethod
    def _refuse_different(conn: apsw.Connection, shard: str, rows: Sequence[tuple[int, Any, int]]) -> None:
        """Raise :class:`UIDCollision` for the first ``(uid, value, kind)`` row whose id holds another
        value than the row's (run after ``INSERT OR IGNORE``, in its transaction: every id is there)."""
        held = {
            uid: (value, kind)
            for uid, value, kind in conn.execute(
                "SELECT uid, value, kind FROM items WHERE uid IN (SELECT value FROM json_each(?))",
                (json.dumps([row[0] for row in rows]),),
            )
        }
        for n, (uid, value, kind) in enumerate(rows):
            if held[uid] != (value, kind):
                raise UIDCollision(shard, uid, row=n, held=_decode(*held[uid]), value=_decode(value, kind))

    def bulk_lists(
        self,
        shard: str,
        rows: Iterable[tuple[int, Sequence[int]]],
        *,
        on_conflict: Literal["replace", "skip_equal"] = "replace",
    ) -> int:
        """Set whole reference lists (``(uid, refs)`` rows) in one transaction; return lists written.

        ``"replace"`` sets each list whatever was there (of two rows for one id the later wins), so
        it is idempotent. ``"skip_equal"`` skips a list that is already there with the same entries
        and, for an id that holds another list (or two rows of one id with different lists), raises
        :class:`UIDCollision` naming a row of that id, and writes nothing.
        """
        if on_conflict not in ("replace", "skip_equal"):
            raise ValueError(f"on_conflict must be replace or skip_equal, not {on_conflict!r:.40}")
        conn = self._conn(shard, create=True)
        assert conn is not None
        ids: list[Any] = []
        lists: list[list[int]] = []
        # No tuple or copy per row (from a zip() of columns): bursts of new containers would set
        # off the garbage collector, whose full passes cost as much as everything the process holds.
        for uid, refs in rows:
            ids.append(uid)
            lists.append(refs if type(refs) is list else list(refs))
        uids = _check_ids(ids)
        _check_refs(chain.from_iterable(lists))  # every entry an id (C loops over the batch's entries)
        row_of = dict(zip(uids, range(len(uids)), strict=True))  # an id's last row
        if len(row_of) < len(uids) and on_conflict == "skip_equal":
            first: dict[int, int] = {}
            for n, uid in enumerate(uids):
                k = first.setdefault(uid, n)
                if lists[k] != lists[n]:
                    raise UIDCollision(shard, uid, row=n, held=lists[k], value=lists[n])
        with _busy(self, shard), conn:
            if on_conflict == "replace":
                conn.execute(
                    "DELETE FROM refs WHERE uid IN (SELECT value FROM json_each(?))",
                    (json.dumps(list(row_of)),),
                )
            else:
                for uid, held in self._lists_held(conn, list(row_of)).items():
                    n = row_of.pop(uid)
                    if held != lists[n]:
                        raise UIDCollision(shard, uid, row=n, held=held, value=lists[n])
            # Every entry of every list bound by C iterators, one reused tuple: (uid, pos, ref) with
            # pos = 0 .. n-1; no Python call per entry.
            new = list(map(lists.__getitem__, row_of.values()))
            lengths = list(map(len, new))
            conn.executemany(
                "INSERT INTO refs VALUES (?, ?, ?)",
                zip(
                    chain.from_iterable(map(repeat, row_of, lengths)),
                    chain.from_iterable(map(range, lengths)),
                    chain.from_iterable(new),
                    strict=True,
                ),
            )
        return len(row_of)

    @staticmethod
    def _lists_held(conn: apsw.Connection, uids: list[int]) -> dict[int, list[int]]:
        """The lists already there among those of ``uids``: one seek per id, then their entries."""
        held: dict[int, list[int]] = {}
        if not uids:
            return held
        # A new load's batch finds nothing in its id range: one seek, not one per list.
        probe = "SELECT 1 FROM refs WHERE uid BETWEEN ? AND ? LIMIT 1"
        if not conn.execute(probe, (min(uids), max(uids))).fetchall():
            return held
        for uid, ref in conn.execute(
            "SELECT r.uid, r.ref FROM (SELECT value AS uid FROM json_each(?1)"
            " WHERE EXISTS (SELECT 1 FROM refs WHERE refs.uid = value)) j JOIN refs r ON r.uid = j.uid"
            " ORDER BY r.uid, r.pos",
            (json.dumps(uids),),
        ):
            held.setdefault(uid, []).append(ref)
        return held

    # -- maintenance -----------------------------------------------------------------------------

    def integrity_check(self, shard: str) -> str:
        """``"ok"``, or SQLite's description of what is wrong with ``shard``."""
        try:
            rows = self._query(shard, "PRAGMA integrity_check")
        except (apsw.CorruptError, apsw.NotADBError) as exc:  # too damaged for the check to run
            return f"{type(exc).__name__}: {exc}"
        return "\n".join(str(r[0]) for r in rows) if rows else "ok"

    def stats(self, integrity: bool = True) -> dict[str, Any]:
        """Rows, list entries and bytes per shard (and ``integrity_check`` unless told not to)."""
        shards: dict[str, dict[str, Any]] = {}
        for shard in self.shards():
            with self.read():
                entry = {
                    "rows": self.count(shard),
                    "refs": (self._query(shard, "SELECT count(*) FROM refs") or [(0,)])[0][0],
                    "bytes": self.path(shard).stat().st_size,
                }
                if integrity:
                    entry["integrity"] = self.integrity_check(shard)
            shards[shard] = entry
        return {
            "root": str(self.root),
            "journal_mode": self.journal_mode,
            "shards": shards,
            "total_rows": sum(s["rows"] for s in shards.values()),
            "total_refs": sum(s["refs"] for s in shards.values()),
            "total_bytes": sum(s["bytes"] for s in shards.values()),
        }

    def vacuum(self, shard: str | None = None) -> None:
        """Rebuild ``shard`` (or every shard) to reclaim free pages."""
        for name in [validate_shard(shard)] if shard is not None else self.shards():
            conn = self._conn(name, create=False)
            if conn is not None:
                with _busy(self, name):
                    conn.execute("VACUUM")

    def sweep_super_journals(self) -> list[str]:
        """Remove the super-journals no hot rollback journal names; return their file names.

        A grouped write's super-journal (``<main>.sqlite-mj<hex>``) decides, while any journal of
        the group names it, that the group rolls back: removing it then would make a half-written
        group look committed. So, for each one: take the RESERVED lock of its main shard without
        waiting (a live writer of the group holds it until its commit ends: then skip it); that
        lock rolls back the main shard's hot journal. Then roll back the hot journals of the other
        shards that name it (a read does, each lock taken without waiting: SQLite removes the
        super-journal itself once the last is done), and remove it only if no journal names it.
        """
        swept = []
        for leftover in sorted(self.root.glob("*.sqlite-mj*")):
            main = leftover.name.split(".sqlite-mj")[0]
            if not SHARD_NAME.match(main):
                continue
            with self._probe(main, "BEGIN IMMEDIATE") as held:
                if not held:
                    continue
                journals = self.root.glob("*.sqlite-journal")
                for journal in [j for j in journals if _super_journal_of(j) == leftover.name]:
                    with self._probe(journal.name.removesuffix(".sqlite-journal"), "BEGIN"):
                        pass  # the read's lock rolled the hot journal back (or it was busy)
                journals = self.root.glob("*.sqlite-journal")
                if leftover.exists() and all(_super_journal_of(j) != leftover.name for j in journals):
                    leftover.unlink(missing_ok=True)
                    swept.append(leftover.name)
        return swept

    @contextlib.contextmanager
    def _probe(self, shard: str, begin: str) -> Iterator[bool]:
        """A connection of its own to ``shard`` in a transaction (``begin``) whose lock is taken
        without waiting (which rolls back a hot journal): True while held, False if it was busy."""
        try:
            conn = self._open(self.path(shard), create=False, wait=False)
        except (apsw.BusyError, apsw.CantOpenError):
            yield False
            return
        self._set_waiting(conn, False)
        try:
            try:
                conn.execute(begin)
                conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            except apsw.BusyError:
                held = False
            else:
                held = True
            yield held
        finally:
            with contextlib.suppress(apsw.Error):
                if not conn.getautocommit():
                    conn.execute("ROLLBACK")
            self._close(conn)

    def clear(self, confirm: str) -> int:
        """Delete every shard file. ``confirm`` must equal the root folder's name."""
        if confirm != self.root.name:
            raise ValueError(
                f"refusing to clear {self.root}: pass confirm={self.root.name!r} to delete every shard"
            )
        self.close()
        removed = 0
        for shard in self.shards():
            for suffix in ("", "-journal"):
                p = self.root / f"{shard}.sqlite{suffix}"
                if p.exists():
                    p.unlink()
                    removed += suffix == ""
        return removed

    def _forget(self, shards: Iterable[str]) -> None:
        """Close and drop this thread's connections touching ``shards`` (a failed file handle)."""
        st, gone = self._state(), set(shards)
        doomed = [st.conns.pop(s) for s in gone if s in st.conns]
        st.ready -= gone
        for key in [k for k in st.groups if gone.intersection(k)]:
            doomed.append(st.groups.pop(key))
        if st.reading is not None:
            st.reading = {s: c for s, c in st.reading.items() if s not in gone}
        with self._all_lock:
            self._all = [c for c in self._all if c not in doomed]
        for conn in doomed:
            with contextlib.suppress(apsw.Error):
                conn.close(True)  # force: a failed statement may still hold a cursor

    def _close(self, conn: apsw.Connection) -> None:
        with self._all_lock:
            if conn in self._all:
                self._all.remove(conn)
        conn.close()

    def close_thread(self) -> None:
        """Close the connections this thread opened, now: a worker thread about to end. Threads
        then close theirs at the same time (on EFS each close is a round trip), where :meth:`close`
        closes them one after another. One that fails to close is left for :meth:`close` to report."""
        st = self._state()
        conns = [*st.conns.values(), *st.groups.values()]
        st.conns.clear()
        st.groups.clear()
        st.ready.clear()
        for conn in conns:
            try:
                conn.close()
            except apsw.Error:
                continue
            with self._all_lock:
                self._all.remove(conn)

    def close(self) -> None:
        """Close every connection this store opened (in any thread)."""
        self._state()
        with self._all_lock:
            conns, self._all = self._all, []
        self._local = _Local()
        errors = []
        for conn in conns:
            # Close them all even if one fails (e.g. after a simulated crash), then report.
            try:
                conn.close()
            except apsw.Error as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
