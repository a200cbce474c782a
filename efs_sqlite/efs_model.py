"""A model of Amazon EFS under SQLite: an apsw VFS that counts, delays and breaks file operations.

:class:`EFSModel` registers an apsw VFS that inherits SQLite's default ("unix") VFS — every byte
still goes to the real local file — and wraps each call SQLite makes to it. Open a store on it
with ``ShardStore(root, vfs=model.name)``; nothing else changes. It then

* **counts** every operation by kind (``open``, ``close``, ``read``, ``write``, ``sync``,
  ``truncate``, ``file_size``, ``lock``, ``unlock``, ``check_reserved``, ``has_moved``,
  ``access``, ``delete``, ``full_pathname``, ``file_control``, ``sector_size``,
  ``device_characteristics``), with bytes, per file (a shard, its ``-journal``, a super-journal
  ``-mj*``), inside an :meth:`EFSModel.accounting` scope;
* **translates** each into the NFS requests a Linux client sends to EFS (``translation``: see
  :mod:`efs_sqlite.nfs_client`) and classifies them as EFS meters them: metadata (read or
  write), data read, data write (see *Per-operation model*);
* **delays** each request by a latency profile (:data:`PROFILES`): the delay is always accounted
  (``ops.modelled_latency_s``) and, with ``sleep=True``, really slept (``ops.injected_s``) — a
  sleep releases the GIL, so threads overlap their waits as they would on the network;
* **fails** on demand: :meth:`EFSModel.inject` raises EIO, ENOLCK or ESTALE on the Nth operation
  of a kind, and :meth:`EFSModel.crash_at` kills the "process" at operation N.

>>> import tempfile, apsw
>>> model = EFSModel("efs-doctest", profile="elastic")
>>> path = tempfile.mkdtemp() + "/t.sqlite"
>>> db = apsw.Connection(path, vfs=model.name)
>>> db.execute("CREATE TABLE t(x)").fetchall()
[]
>>> with model.accounting() as ops:
...     db.execute("SELECT count(*) FROM t").fetchall()
[(0,)]
>>> ops.counts["lock"], ops.counts["unlock"], ops.counts["open"]
(1, 1, 0)
>>> dict(ops.nfs)  # the lock's 3 fcntl() and the unlock's 1; the lock dropped the cached attributes
{'LOCK': 3, 'GETATTR': 1, 'READ': 1, 'LOCKU': 1}
>>> ops.metadata_ops, ops.data_read_ops, round(ops.modelled_latency_s, 4)
(5, 1, 0.006)
>>> db.close(); model.close()

Per-operation model
-------------------
The default translation, ``"linux_nfs"``, follows the Linux NFSv4.1 client (its caches, write-back
and the folder open after a new journal's first sync: :class:`~efs_sqlite.nfs_client.LinuxNFS`).
``"worst_case"`` (:class:`~efs_sqlite.nfs_client.WorstCase`), the model's first accounting, kept as
an upper bound, turns one VFS call into ``requests`` NFS round trips of one EFS class:

=========================  ==============================  ==============  ========
VFS call                   NFS request(s)                  EFS class       requests
=========================  ==============================  ==============  ========
xOpen (file exists)        OPEN (+LOOKUP/GETATTR compound) metadata read   1
xOpen (creates the file)   GETATTR of the db, OPEN/CREATE  metadata write  2
xClose                     CLOSE                           metadata read   1
xRead                      READ                            data read       1
xWrite                     WRITE                           data write      1
xSync                      COMMIT                          metadata write  1
xTruncate                  SETATTR                         metadata write  1
xFileSize                  GETATTR                         metadata read   1
xLock / xUnlock            LOCK / LOCKU, one per fcntl()   metadata read   0–3
xCheckReservedLock         LOCKT                           metadata read   1
file control HAS_MOVED     stat(): LOOKUP/GETATTR          metadata read   1
xAccess                    LOOKUP/ACCESS                   metadata read   1
xDelete                    REMOVE                          metadata write  1
xFullPathname, other file  none (local)                    —               0
controls, xSectorSize,
xDeviceCharacteristics
=========================  ==============================  ==============  ========

The worst case's assumptions, each chosen to err towards more round trips, not fewer (the Linux
translation drops the first three):

* Every xRead reaches the server, even a page the client has cached since the last lock.
* Every xAccess/xFileSize/HAS_MOVED is a round trip, even a stat of a name known to be missing.
* Each xWrite is its own synchronous WRITE at the published write latency, and each xSync a
  COMMIT, an upper bound on write latency and on the number of metered write requests.

Common to both:

* A lock transition costs one LOCK/LOCKU round trip per ``fcntl()`` that os_unix.c makes for it
  (``unixLock``/``posixUnlock``): NONE→SHARED 3 (take PENDING, take SHARED, drop PENDING),
  SHARED→RESERVED 1, →EXCLUSIVE 2 (PENDING then EXCLUSIVE; 1 if PENDING is already held),
  SHARED→NONE 1, RESERVED/EXCLUSIVE→SHARED or →NONE 2. That reproduces the counts strace sees
  (point read 4 lock calls, 1-row commit 9: docs/SOURCES.md#sqlite-locks). os_unix.c skips the
  fcntl() when another connection of the same process already holds the file SHARED; the model
  does not, so it counts the worst case.
* Metadata requests are metered as reads unless they change the file system (create, remove,
  setattr, commit); locks are metadata reads. AWS does not publish the split.
* Files SQLite opens outside the database folder (temp databases, statement journals) live on the
  function's local disk: counted, but no EFS request. WAL's shared-memory calls are not visible
  to a Python VFS (and WAL cannot work on EFS anyway).

Crash semantics
---------------
``crash_at(n)`` numbers every call the shim sees from that moment (the same calls
``sum(ops.counts.values())`` counts). Call ``n`` and every call after it fail with an IOError
*without touching the disk*: the files stay exactly as they were after call ``n - 1``, as if the
process died there (a killed Lambda; a power cut in which every write already handed to the server
survived). Only the calls SQLite makes to close a connection (xClose, xUnlock, and the local or
read-only checks around them) still run, since the operating system closes a dead process's files
and so releases its locks; closing the connection may still raise (SQLite's attempted rollback
fails), but its files are closed. After :meth:`EFSModel.recover` the model is healthy again;
handles opened before the crash stay dead forever (a dead process never writes again), so open a
fresh connection, and SQLite's hot-journal recovery runs on what the disk holds.

Not modelled: losing writes made *before* call ``n`` that were never synced (still in the NFS
client's page cache when the machine dies). SQLite's fsync ordering guards against that; testing
it would need a copy of every unsynced byte.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import apsw

from efs_sqlite.nfs_client import LATENCY_CLASSES, Request, Translation, translation_named

__all__ = [
    "EFS_CLASSES",
    "FAULT_KINDS",
    "LOW_PROFILES",
    "PROFILES",
    "EFSFile",
    "EFSModel",
    "Fault",
    "LatencyProfile",
    "Ops",
    "Traced",
]

MS = 1e-3

#: The EFS classes an operation can be metered as (``None``: not an EFS request).
EFS_CLASSES = ("metadata_read", "metadata_write", "data_read", "data_write")
_MR, _MW, _DR, _DW = EFS_CLASSES

ErrorKind = Literal["eio", "enolck", "estale"]


@dataclass(frozen=True)
class LatencyProfile:
    """Per-request delays of one EFS configuration, in seconds, with their source.

    ``metadata_s`` prices every request without data; ``lock_s``, ``getattr_s``, ``commit_s`` and
    ``state_s`` (OPEN, CLOSE, REMOVE, SETATTR) override it for their class
    (:data:`~efs_sqlite.nfs_client.LATENCY_CLASSES`).

    >>> PROFILES["elastic"].latency_s(metadata_ops=8, data_read_ops=1, data_write_ops=0)
    0.009
    >>> PROFILES["elastic"].rounds_s({"lock": 4, "getattr": 1, "read": 1, "write": 1})
    0.0087
    """

    name: str
    metadata_s: float
    read_s: float
    write_s: float
    source: str
    lock_s: float | None = None
    getattr_s: float | None = None
    commit_s: float | None = None
    state_s: float | None = None

    def class_s(self, latency_class: str) -> float:
        """The delay of one request of ``latency_class``."""
        if latency_class == "read":
            return self.read_s
        if latency_class == "write":
            return self.write_s
        if latency_class not in LATENCY_CLASSES:
            raise ValueError(f"unknown latency class {latency_class!r}; expected one of {LATENCY_CLASSES}")
        own = getattr(self, f"{latency_class}_s")
        return self.metadata_s if own is None else own

    def rounds_s(self, rounds: Mapping[str, int]) -> float:
        """Total delay of that many sequential round trips per latency class."""
        return round(sum(n * self.class_s(c) for c, n in rounds.items()), 9)

    def latency_s(self, metadata_ops: int, data_read_ops: int, data_write_ops: int) -> float:
        """Total delay of that many sequential round trips, every metadata one at ``metadata_s``."""
        total = metadata_ops * self.metadata_s + data_read_ops * self.read_s + data_write_ops * self.write_s
        return round(total, 9)  # keep sums of 1e-3 steps printable

    def delay_s(self, requests: Sequence[Request]) -> float:
        """How long a call waits for its requests (parallel ones overlap)."""
        return sum(r.rounds * self.class_s(r.latency_class) for r in requests)

    def scaled(self, factor: float, name: str, source: str) -> LatencyProfile:
        """Every delay times ``factor``.

        >>> PROFILES["elastic"].scaled(2, "x2", "test").class_s("write")
        0.0054
        """
        per_class = {f"{c}_s": self.class_s(c) * factor for c in LATENCY_CLASSES}
        per_class["metadata_s"] = self.metadata_s * factor
        return dataclasses.replace(self, name=name, source=source, **per_class)


_AWS_PERF = "AWS, Amazon EFS performance specifications (docs/SOURCES.md#efs-latency)"
_REGIONAL = (
    f"{_AWS_PERF}: Regional file systems, every throughput mode: read ~1 ms, write ~2.7 ms. "
    "A metadata request is a round trip without data: taken as the read latency."
)

#: The typical latency profile of each EFS configuration, by name: AWS's stated figures. ``local``
#: adds nothing (the local disk's own time is in wall time). :data:`LOW_PROFILES` holds the best
#: cases; the high end is fitted to a measurement (:mod:`efs_sqlite.experiments.latency`).
PROFILES: dict[str, LatencyProfile] = {
    "local": LatencyProfile("local", 0.0, 0.0, 0.0, "no network: nothing is added"),
    "elastic": LatencyProfile("elastic", 1 * MS, 1 * MS, 2.7 * MS, _REGIONAL),
    "bursting": LatencyProfile("bursting", 1 * MS, 1 * MS, 2.7 * MS, _REGIONAL),
    "provisioned": LatencyProfile("provisioned", 1 * MS, 1 * MS, 2.7 * MS, _REGIONAL),
    "one_zone": LatencyProfile(
        "one_zone",
        1 * MS,
        1 * MS,
        1.6 * MS,
        f"{_AWS_PERF}: One Zone row, write 'as low as 1.6 ms' (Regional: 2.7 ms). Assumption: "
        "read and metadata as Regional (~1 ms), since the page gives both types the same read figure.",
    ),
}


_BEST_CASE = (
    f"{_AWS_PERF}: the best case, reads 'as low as 250 µs' ('under optimal conditions'), taken for "
    "every request without data too"
)

#: The best case of each configuration (named ``<name>-low``): AWS's lowest published figures.
LOW_PROFILES: dict[str, LatencyProfile] = {
    "local": dataclasses.replace(PROFILES["local"], name="local-low"),
    **{
        mode: LatencyProfile(
            f"{mode}-low",
            0.25 * MS,
            0.25 * MS,
            2.7 * MS,
            f"{_BEST_CASE}; writes ~2.7 ms (no lower figure is published for Regional file systems)",
        )
        for mode in ("elastic", "bursting", "provisioned")
    },
    "one_zone": LatencyProfile(
        "one_zone-low", 0.25 * MS, 0.25 * MS, 1.6 * MS, f"{_BEST_CASE}; writes 'as low as 1.6 ms'"
    ),
}


class Traced(NamedTuple):
    """One request of a traced scope: the VFS call that made it, on which file."""

    call: str
    file: str
    request: Request


@dataclass(eq=False)  # scopes are told apart by identity; compare as_dict() for equal counts
class Ops:
    """Operation counts of one :meth:`EFSModel.accounting` scope.

    ``counts``/``requests``: VFS calls / NFS requests by kind of VFS call; ``nfs``: NFS requests by
    operation (``READ``, ``LOCK``, ...); ``rounds``: the round trips waited for, by latency class
    (requests sent at once count once); ``bytes``: bytes read and written by SQLite; ``by_file``:
    kinds per file name (plus ``bytes_read``/``bytes_written``), super-journals as ``<db>-mj*``,
    temp files as ``(temp)``. The ``*_ops`` fields count NFS requests by EFS class (what EFS
    meters). ``modelled_latency_s`` adds up the rounds' delays as if made one after another;
    requests that several threads make at once overlap (a ``sleep=True`` model shows by how much).
    ``injected_s`` is the delay actually slept (0 unless ``sleep=True``). ``trace``: every request
    in order, when the scope was opened with ``trace=True``.
    """

    profile: LatencyProfile
    counts: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    nfs: Counter[str] = field(default_factory=Counter)
    rounds: Counter[str] = field(default_factory=Counter)
    bytes: Counter[str] = field(default_factory=Counter)
    by_file: dict[str, Counter[str]] = field(default_factory=dict)
    metadata_read_ops: int = 0
    metadata_write_ops: int = 0
    data_read_ops: int = 0
    data_read_bytes: int = 0
    data_write_ops: int = 0
    data_write_bytes: int = 0
    injected_s: float = 0.0
    trace: list[Traced] | None = None

    @property
    def metadata_ops(self) -> int:
        return self.metadata_read_ops + self.metadata_write_ops

    @property
    def modelled_latency_s(self) -> float:
        """Sum of the round trips' delays under the model's profile."""
        return self.latency_s(self.profile)

    def latency_s(self, profile: str | LatencyProfile) -> float:
        """The same round trips' delay under another profile (they do not depend on it)."""
        p = PROFILES[profile] if isinstance(profile, str) else profile
        return p.rounds_s(self.rounds)

    def _add(self, kind: str, key: str, nbytes: int, requests: Sequence[Request]) -> None:
        self.counts[kind] += 1
        per_file = self.by_file.setdefault(key, Counter())
        per_file[kind] += 1
        for r in requests:
            self.requests[kind] += r.count
            self.nfs[r.op] += r.count
            self.rounds[r.latency_class] += r.rounds
            if r.efs_class == _MR:
                self.metadata_read_ops += r.count
            elif r.efs_class == _MW:
                self.metadata_write_ops += r.count
            elif r.efs_class == _DR:
                self.data_read_ops += r.count
                self.data_read_bytes += r.nbytes
            else:
                self.data_write_ops += r.count
                self.data_write_bytes += r.nbytes
            if self.trace is not None:
                self.trace.append(Traced(kind, key, r))
        if kind in ("read", "write") and nbytes:
            self.bytes[kind] += nbytes
            per_file["bytes_read" if kind == "read" else "bytes_written"] += nbytes

    def as_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready form (what :func:`efs_sqlite.costs.RequestProfile.from_ops` reads)."""
        return {
            "profile": self.profile.name,
            "counts": dict(sorted(self.counts.items())),
            "requests": dict(sorted(self.requests.items())),
            "nfs": dict(sorted(self.nfs.items())),
            "rounds": dict(sorted(self.rounds.items())),
            "bytes": dict(sorted(self.bytes.items())),
            "by_file": {k: dict(sorted(v.items())) for k, v in sorted(self.by_file.items())},
            "metadata_ops": self.metadata_ops,
            "metadata_read_ops": self.metadata_read_ops,
            "metadata_write_ops": self.metadata_write_ops,
            "data_read_ops": self.data_read_ops,
            "data_read_bytes": self.data_read_bytes,
            "data_write_ops": self.data_write_ops,
            "data_write_bytes": self.data_write_bytes,
            "modelled_latency_s": self.modelled_latency_s,
            "injected_s": self.injected_s,
            "latency_s": {name: self.latency_s(p) for name, p in PROFILES.items()},
        }


@dataclass
class Fault:
    """An armed fault (see :meth:`EFSModel.inject`); ``fired`` counts the errors it raised."""

    kind: str
    nth: int
    error: ErrorKind
    times: int = 1
    file: str | None = None
    seen: int = 0
    fired: int = 0

    def _matches(self, kind: str, key: str) -> bool:
        return kind == self.kind and (self.file is None or self.file in key)


# The error each kind of call reports, as os_unix.c would for an I/O failure of that call.
_IOERR = {
    "open": apsw.SQLITE_CANTOPEN,
    "close": apsw.SQLITE_IOERR_CLOSE,
    "read": apsw.SQLITE_IOERR_READ,
    "write": apsw.SQLITE_IOERR_WRITE,
    "sync": apsw.SQLITE_IOERR_FSYNC,
    "truncate": apsw.SQLITE_IOERR_TRUNCATE,
    "file_size": apsw.SQLITE_IOERR_FSTAT,
    "lock": apsw.SQLITE_IOERR_LOCK,
    "unlock": apsw.SQLITE_IOERR_UNLOCK,
    "check_reserved": apsw.SQLITE_IOERR_CHECKRESERVEDLOCK,
    "access": apsw.SQLITE_IOERR_ACCESS,
    "delete": apsw.SQLITE_IOERR_DELETE,
}
_LOCAL_KINDS = ("full_pathname", "file_control", "sector_size", "device_characteristics")
#: Kinds a fault can be injected into (the calls that reach the file system).
FAULT_KINDS = (*_IOERR, "has_moved")
_LOCK_KINDS = ("lock", "unlock", "check_reserved")
_CLOSING_KINDS = ("close", "unlock", "has_moved", *_LOCAL_KINDS)

_ON_EFS = (
    apsw.SQLITE_OPEN_MAIN_DB
    | apsw.SQLITE_OPEN_MAIN_JOURNAL
    | apsw.SQLITE_OPEN_SUPER_JOURNAL
    | apsw.SQLITE_OPEN_WAL
)
_SYNCS_FOLDER = apsw.SQLITE_OPEN_MAIN_JOURNAL | apsw.SQLITE_OPEN_SUPER_JOURNAL | apsw.SQLITE_OPEN_WAL
_SUPER_JOURNAL = re.compile(r"-mj[0-9A-F]{6}9[0-9A-F]{2}$")
_NONE, _SHARED, _RESERVED, _PENDING, _EXCLUSIVE = range(5)


def _file_key(path: str | None) -> str:
    """The name a file is counted under: its base name, super-journals' random suffix folded."""
    if path is None:
        return "(temp)"
    return _SUPER_JOURNAL.sub("-mj*", os.path.basename(path))


def _lock_requests(held: int, level: int) -> int:
    """fcntl() calls os_unix.c's unixLock makes to go from ``held`` up to ``level``."""
    if level <= held:
        return 0
    if level == _SHARED:
        return 3
    if level == _EXCLUSIVE:
        return 1 if held == _PENDING else 2
    return 1


def _unlock_requests(held: int, level: int) -> int:
    """fcntl() calls os_unix.c's posixUnlock makes to go from ``held`` down to ``level``."""
    if level >= held:
        return 0
    return 2 if held > _SHARED else 1


def _error(code: int, message: str) -> apsw.Error:
    exc = apsw.exception_for(code)
    exc.args = (message,)
    return exc


class EFSModel(apsw.VFS):
    """An apsw VFS named ``name`` that models EFS under the default unix VFS.

    ``profile``: a key of :data:`PROFILES` or a :class:`LatencyProfile`. ``sleep=True`` really
    waits each request's delay (for concurrency benchmarks); otherwise delays are only accounted.
    ``translation``: how VFS calls become NFS requests, ``"linux_nfs"`` (the Linux client, see
    :mod:`efs_sqlite.nfs_client`), ``"worst_case"`` (a round trip for every call that could need
    one) or a :class:`~efs_sqlite.nfs_client.Translation` (e.g. ``LinuxNFS(lookupcache="none")``).
    Registering a second model under the same name replaces the first; :meth:`close` unregisters.
    """

    def __init__(
        self,
        name: str = "efs",
        profile: str | LatencyProfile = "local",
        *,
        sleep: bool = False,
        translation: str | Translation = "linux_nfs",
    ) -> None:
        if isinstance(profile, str):
            if profile not in PROFILES:
                raise ValueError(f"unknown profile {profile!r}; expected one of {sorted(PROFILES)}")
            profile = PROFILES[profile]
        self.name = name
        self.profile = profile
        self.sleep = sleep
        self.translation = translation_named(translation)
        self._lock = threading.Lock()
        self._scopes: list[tuple[Ops, int | None]] = []
        self._faults: list[Fault] = []
        self._crash_at: int | None = None
        self._calls = 0  # calls seen since crash_at() armed
        self.crashed = False
        self._epoch = 0
        super().__init__(name, "")

    def __repr__(self) -> str:
        return (
            f"EFSModel({self.name!r}, profile={self.profile.name!r}, sleep={self.sleep}, "
            f"translation={self.translation.name!r})"
        )

    def new_process(self) -> None:
        """Start the NFS client afresh, as a new process (a cold Lambda) would: no cached
        attributes, pages or names. Files already open keep their lock levels."""
        with self._lock:
            self.translation = self.translation.fresh()

    def close(self) -> None:
        """Unregister the VFS (connections already open keep working)."""
        self.unregister()

    def __enter__(self) -> EFSModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- accounting ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def accounting(self, *, current_thread: bool = False, trace: bool = False) -> Iterator[Ops]:
        """Count the operations done inside the block (in every thread, or only this one).

        Scopes nest and overlap freely: each sees every operation made while it is open.
        ``trace=True`` also keeps every request in order (``ops.trace``).
        """
        ops = Ops(self.profile, trace=[] if trace else None)
        entry = (ops, threading.get_ident() if current_thread else None)
        with self._lock:
            self._scopes.append(entry)
        try:
            yield ops
        finally:
            with self._lock:
                self._scopes.remove(entry)

    # -- faults ----------------------------------------------------------------------------------

    def inject(
        self,
        kind: str,
        nth: int = 1,
        error: ErrorKind = "eio",
        *,
        times: int = 1,
        file: str | None = None,
    ) -> Fault:
        """Fail the ``nth`` (and the next ``times - 1``) calls of ``kind`` from now on.

        ``file`` restricts the count to files whose name contains it (e.g. ``"-journal"``). The
        failing call does nothing but raise, as when the server returns the error:

        * ``"eio"``: an :class:`apsw.IOError` with the extended code os_unix.c reports for that
          call (``SQLITE_IOERR_WRITE`` for a write, ...; an open fails with CANTOPEN);
        * ``"enolck"`` (lock calls only): what os_unix.c makes of ENOLCK, "a random NFS retry
          error" — :class:`apsw.BusyError` for xLock, so SQLite's busy handler retries it;
          IOERR_UNLOCK / IOERR_CHECKRESERVEDLOCK for the others;
        * ``"estale"``: the file handle goes stale: this call and every later call on that handle
          fail with an IOError until it is closed (a new connection reopens the file fine). On
          path calls (access, delete) it fails once.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"cannot inject into {kind!r}; expected one of {FAULT_KINDS}")
        if error not in ("eio", "enolck", "estale"):
            raise ValueError(f"error must be 'eio', 'enolck' or 'estale', not {error!r}")
        if error == "enolck" and kind not in _LOCK_KINDS:
            raise ValueError(f"'enolck' applies to {_LOCK_KINDS}, not {kind!r}")
        if nth < 1 or times < 1:
            raise ValueError("nth and times must be >= 1")
        fault = Fault(kind, nth, error, times, file)
        with self._lock:
            self._faults.append(fault)
        return fault

    def crash_at(self, n: int) -> None:
        """Kill the simulated process at the ``n``-th call from now (see *Crash semantics*)."""
        if n < 1:
            raise ValueError("n must be >= 1")
        with self._lock:
            self._crash_at, self._calls = n, 0

    def recover(self) -> None:
        """Back to a healthy file system: disarm faults and crash; pre-crash handles stay dead."""
        with self._lock:
            self._faults.clear()
            self._crash_at = None
            if self.crashed:
                self.crashed = False
                self._epoch += 1

    # -- the shared path of every call ----------------------------------------------------------

    def _op(
        self,
        kind: str,
        path: str | None,
        translate: Callable[[Translation], list[Request]] | None,
        nbytes: int = 0,
        handle: EFSFile | None = None,
    ) -> None:
        """Check faults and crash for one call, account its requests, wait their delay if sleeping.

        ``translate`` gives the call's NFS requests (``None``: a local call, no request). Raises
        instead of returning when the call must fail; the caller then does nothing.
        """
        key = _file_key(path)
        code = _IOERR.get(kind, apsw.SQLITE_IOERR)
        with self._lock:
            if self._crash_at is not None and not self.crashed:
                self._calls += 1
                self.crashed = self._calls >= self._crash_at
            dead = self.crashed or (handle is not None and handle.epoch != self._epoch)
            stale = handle is not None and handle.stale
            if dead or stale:
                # Let through, unaccounted, the calls SQLite makes to close a connection, so that
                # closing it works: the OS lets go of a dead process's (or a stale) handle too.
                if kind in _CLOSING_KINDS:
                    return
                if not dead:
                    raise _error(code, f"EFS model: ESTALE on {key} (stale handle)")
                raise _error(
                    code,
                    f"EFS model: {kind} on {key} after the simulated crash; "
                    "call recover() and open a new connection",
                )
            fault = self._fire(kind, key)
            requests = translate(self.translation) if translate is not None else []
            delay = self.profile.delay_s(requests)
            for ops, thread in self._scopes:
                if thread is None or thread == threading.get_ident():
                    ops._add(kind, key, nbytes, requests)
                    if self.sleep:
                        ops.injected_s += delay
        if fault is not None:
            if fault.error == "estale" and handle is not None:
                handle.stale = True
            raise self._fault_error(fault, kind, key)
        if self.sleep and delay:
            time.sleep(delay)

    def _fire(self, kind: str, key: str) -> Fault | None:
        for fault in self._faults:
            if fault._matches(kind, key):
                fault.seen += 1
                if fault.nth <= fault.seen < fault.nth + fault.times:
                    fault.fired += 1
                    return fault
        return None

    @staticmethod
    def _fault_error(fault: Fault, kind: str, key: str) -> apsw.Error:
        where = f"{kind} #{fault.seen} on {key}"
        if fault.error == "enolck":
            code = apsw.SQLITE_BUSY if kind == "lock" else _IOERR[kind]
            return _error(code, f"EFS model: injected ENOLCK on {where}")
        name = "ESTALE" if fault.error == "estale" else "EIO"
        return _error(_IOERR.get(kind, apsw.SQLITE_IOERR), f"EFS model: injected {name} on {where}")

    # -- VFS methods -----------------------------------------------------------------------------

    def xOpen(self, name: str | apsw.URIFilename | None, flags: list[int]) -> EFSFile:
        return EFSFile(self, name, flags)

    def xAccess(self, pathname: str, flags: int) -> bool:
        exists = os.path.exists(pathname)  # the answer the server gives (a local stat, not counted)
        self._op("access", pathname, lambda t: t.access(pathname, exists=exists))
        return super().xAccess(pathname, flags)

    def xDelete(self, filename: str, syncdir: bool) -> None:
        self._op("delete", filename, lambda t: t.delete(filename))
        super().xDelete(filename, syncdir)

    def xFullPathname(self, name: str) -> str:
        self._op("full_pathname", name, None)
        return super().xFullPathname(name)


class EFSFile(apsw.VFSFile):
    """One file opened through an :class:`EFSModel`; tracks its lock level to price lock calls."""

    def __init__(self, model: EFSModel, name: str | apsw.URIFilename | None, flags: list[int]) -> None:
        self.model = model
        self.path = name.filename() if isinstance(name, apsw.URIFilename) else name
        self.on_efs = self.path is not None and bool(flags[0] & _ON_EFS)
        self.level = _NONE
        self.stale = False
        self.epoch = model._epoch
        creates = self.path is None or (
            bool(flags[0] & apsw.SQLITE_OPEN_CREATE) and not os.path.exists(self.path)
        )
        # os_unix.c fsyncs the folder at the first sync of a journal it created.
        syncs_folder = bool(flags[0] & _SYNCS_FOLDER)
        self._op("open", lambda t, p: t.open(p, creates=creates, syncs_folder=syncs_folder), handle=False)
        super().__init__("", name, flags)

    def _op(
        self,
        kind: str,
        translate: Callable[[Translation, str], list[Request]] | None,
        nbytes: int = 0,
        handle: bool = True,
    ) -> None:
        path = self.path
        on_efs = self.on_efs and translate is not None and path is not None
        self.model._op(
            kind,
            path,
            (lambda t: translate(t, path)) if on_efs else None,  # type: ignore[misc, arg-type]
            nbytes,
            self if handle else None,
        )

    def xRead(self, amount: int, offset: int) -> bytes:
        self._op("read", lambda t, p: t.read(p, offset, amount, os.path.getsize(p)), nbytes=amount)
        return super().xRead(amount, offset)

    def xWrite(self, data: Any, offset: int) -> None:
        size = len(data)
        self._op("write", lambda t, p: t.write(p, offset, size), nbytes=size)
        super().xWrite(data, offset)

    def xSync(self, flags: int) -> None:
        self._op("sync", lambda t, p: t.sync(p))
        super().xSync(flags)

    def xTruncate(self, newsize: int) -> None:
        self._op("truncate", lambda t, p: t.truncate(p, newsize))
        super().xTruncate(newsize)

    def xFileSize(self) -> int:
        self._op("file_size", lambda t, p: t.file_size(p))
        return super().xFileSize()

    def xLock(self, level: int) -> None:
        calls = _lock_requests(self.level, level)
        self._op("lock", lambda t, p: t.lock(p, calls))
        try:
            super().xLock(level)
        except apsw.BusyError:
            # unixLock keeps the PENDING byte when only the EXCLUSIVE step was refused.
            if level == _EXCLUSIVE and self.level >= _SHARED:
                self.level = _PENDING
            raise
        self.level = max(self.level, level)

    def xUnlock(self, level: int) -> None:
        calls = _unlock_requests(self.level, level)
        self._op("unlock", lambda t, p: t.unlock(p, calls))
        super().xUnlock(level)
        self.level = min(self.level, level)

    def xCheckReservedLock(self) -> bool:
        self._op("check_reserved", lambda t, p: t.check_reserved(p))
        return super().xCheckReservedLock()

    def xFileControl(self, op: int, ptr: int) -> bool:
        if op == apsw.SQLITE_FCNTL_HAS_MOVED:  # os_unix.c answers it with a stat() of the path
            self._op("has_moved", lambda t, p: t.has_moved(p))
        else:
            self._op("file_control", None)
        return super().xFileControl(op, ptr)

    def xSectorSize(self) -> int:
        self._op("sector_size", None)
        return super().xSectorSize()

    def xDeviceCharacteristics(self) -> int:
        self._op("device_characteristics", None)
        return super().xDeviceCharacteristics()

    def xClose(self) -> None:
        try:
            self._op("close", lambda t, p: t.close(p))
        finally:  # the handle goes away even when closing it fails
            super().xClose()
