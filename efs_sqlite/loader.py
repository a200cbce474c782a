"""The bulk loader: records into a store (a :class:`~efs_sqlite.store.ShardStore`, or any
:class:`~efs_sqlite.backend.StoreBackend`), checked against the model.

The caller's thread reads the records and routes each to its shard's buffer. Every record is checked
against the model (shard in the model, id in range, value of the field's type) a chunk of one shard
at a time, by a check compiled per shard that runs as C loops over the chunk (``map``, ``set``,
``min``): all strings for a string field, integers in range for an integer or an id, ISO 8601 times
parsed by ``datetime.fromisoformat`` straight to the stored microseconds, amounts already in the
canonical text of a 2-place decimal. A chunk with anything off that common shape is checked record
by record through :meth:`~efs_sqlite.model.Field.coerce`, which accepts exactly what the model
accepts and names the bad record. A checked chunk holds its values in their stored form, as
columns, which the store binds as they are
(:meth:`~efs_sqlite.store.ShardStore.bulk_insert_stored`): no Python call per row. Nothing per
record is allocated that the garbage collector tracks (see ``_Buffer``).

Writers (``threads``; by default :func:`default_threads`):

- one: the caller's thread writes each chunk as soon as it is checked, while its records are still
  in the CPU's caches, into a transaction per shard that commits every ``batch`` rows
  (:meth:`~efs_sqlite.store.ShardStore.transaction`). On local disk the load is CPU work and Python
  runs one thread at a time, so this is the fastest (654k rows, measured: 1.6 s; with 2 writer
  threads 2.1 s, one per shard 2.9 s: every hand-off of the interpreter lock costs, and
  executemany releases it around every row). So ``LOCAL_THREADS`` = 1.
- several: chunks are gathered into batches of ``batch`` rows per shard, which writer threads take
  from a shared dispatcher, one commit each. Never more than one writer per shard at a time (one
  SQLite file has one writer); a writer keeps to the shards it wrote before (warm connections and
  page cache) and, when none of them has work, takes the oldest batch of any other shard, so the
  work is shared out as it comes instead of dealt out in advance, and the last batches go out
  largest first. When the store waits on the network (on an NFS/EFS mount, or through a VFS such
  as the EFS model), a writer waiting on a round trip releases the interpreter, so one writer per
  shard overlaps the waits: that is the default there.

Memory stays bounded whatever the input size: at most ``threads * queue_batches`` batches wait;
a reader with more blocks until a writer takes one. Each writer opens its own connections, in its
own thread.

Failure never hangs: there is no ``Queue.join`` to wait on. A failing writer records the error and
aborts the dispatcher, which wakes every waiting thread at once; the caller gets a
:class:`LoadError` naming the shard and the record. Batches committed before the failure stay;
those not yet committed are rolled back.

Re-running a load is safe, and a rerun after an interruption finishes the rest:

- a value whose id is already present is compared with the record: the same value is skipped
  (counted in ``skipped``); a *different* value stops the load with a :class:`LoadError`, and the
  stored value is kept. A load never overwrites: an id that already holds another value is a
  collision or a changed data set, both of which a person should look at (the earlier system's
  ``REPLACE INTO`` silently overwrote colliding nodes). Delete the node first to change it.
- a reference list record is the whole list; it is set where no list exists and compared (same
  rules) where one does.

>>> import tempfile
>>> from efs_sqlite.store import ShardStore
>>> store = ShardStore(tempfile.mkdtemp())
>>> records = [{"shard": "_type", "uid": 5, "value": "Party"},
...            {"shard": "party_claims", "uid": 5, "value": [7, 8]}]
>>> summary = load(store, records, progress=False)
>>> summary.records, summary.skipped, store.list_page("party_claims", 5)
(2, 0, [7, 8])
>>> load(store, records, progress=False).skipped   # a rerun writes nothing
2
>>> load(store, [{"shard": "../x", "uid": 5, "value": 1}], progress=False)
Traceback (most recent call last):
...
efs_sqlite.errors.LoadError: shard '../x', record #0 (uid 5): unknown shard '../x'
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from efs_sqlite.backend import StoreBackend
from efs_sqlite.data import read_manifest, read_records
from efs_sqlite.errors import DataSetError, LoadError, RecordError, UIDCollision, ValidationError
from efs_sqlite.kinds import KIND_OF, Column
from efs_sqlite.links import check_links
from efs_sqlite.model import INSURANCE, TYPE_SHARD, Model
from efs_sqlite.store import STORED_KINDS, ShardStore, Transaction, stored_form
from efs_sqlite.uid import are_ids, check_id

__all__ = [
    "LOCAL_THREADS",
    "LoadSummary",
    "default_threads",
    "dump",
    "load",
    "load_path",
    "validate_record",
]

#: Writer threads by default on local disk (see the module docstring).
LOCAL_THREADS = 1
#: At most this many records of a shard are checked at a time (see _Buffer).
_CHUNK = 256
#: A refused data set's error names this many of the links its two sides disagree on.
_SHOWN = 10


@dataclass(frozen=True)
class LoadSummary:
    """What a load did: records per shard, how many were already present, and how fast."""

    records: int
    shards: dict[str, int]
    skipped: int
    seconds: float
    threads: int

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "records_per_s": round(self.records_per_s, 1)}


class _Validator:
    """The per-shard coercion functions of one model, looked up once."""

    def __init__(self, model: Model) -> None:
        self.types = frozenset(model.types)
        self.coerce: dict[str, Callable[[Any], Any]] = {TYPE_SHARD: self.type_name}
        for shard in model.shards():
            if shard != TYPE_SHARD:
                self.coerce[shard] = model.field_for_shard(shard).coerce

    def type_name(self, value: Any) -> str:
        if type(value) is not str or value not in self.types:
            raise ValidationError(
                f"expected a type name ({', '.join(sorted(self.types))}), got {value!r:.80}"
            )
        return value

    def __call__(self, record: Any) -> tuple[str, int, Any]:
        if type(record) is not dict and not isinstance(record, Mapping):
            raise RecordError(f"a record is an object with shard, uid and value, not {type(record).__name__}")
        if len(record) != 3 or "shard" not in record or "uid" not in record or "value" not in record:
            keys = sorted(map(str, record))[:5]
            raise RecordError(f"a record has exactly the keys shard, uid and value; got {keys}")
        shard, uid = record["shard"], record["uid"]
        coerce = self.coerce.get(shard) if type(shard) is str else None
        if coerce is None:
            raise RecordError(f"unknown shard {str(shard)[:80]!r}")
        try:
            check_id(uid if type(uid) is int else None, "uid")  # a plain int: no bool, no subclass
        except ValidationError:
            raise RecordError(f"uid must be an integer in 1 .. 2^63-1, not {str(uid)[:40]!r}") from None
        try:
            return shard, uid, coerce(record["value"])
        except ValidationError as exc:
            raise RecordError(str(exc)) from None


@lru_cache(maxsize=8)
def _validator(model: Model) -> _Validator:
    return _Validator(model)


def validate_record(record: Any, model: Model = INSURANCE) -> tuple[str, int, Any]:
    """Return ``(shard, uid, value)`` with the value coerced, or raise :class:`RecordError`.

    >>> validate_record({"shard": "transaction_amount", "uid": 9, "value": "3.5"})
    ('transaction_amount', 9, Decimal('3.50'))
    >>> validate_record({"shard": "claim_timestamp", "uid": 2**64, "value": "2024-01-01"})
    Traceback (most recent call last):
    ...
    efs_sqlite.errors.RecordError: uid must be an integer in 1 .. 2^63-1, not '18446744073709551616'
    """
    return _validator(model)(record)


# -- per-shard checks: a chunk of record values -> their stored forms ---------------------------------

_STRS = frozenset({str})


def _column(kind: str, places: int | None = None, names: frozenset[str] | None = None) -> Column:
    """The fast check of a shard: the stored forms of a whole chunk of values, computed by C loops
    (``map``, ``set``, ``min``), or ``None`` if any value is off the common shape; the chunk then
    takes the slow path, value by value through ``Field.coerce``, which names the bad record. For
    the values it takes, each returns exactly what the slow path would (the tests hold it to that).
    """
    if names is not None:  # the type shard: type names
        return lambda vs: vs if set(map(type, vs)) == _STRS and names.issuperset(vs) else None
    column = KIND_OF[kind].column
    return column(places) if column is not None else lambda vs: None  # floats, bools, bytes: one by one


@dataclass(frozen=True)
class _Plan:
    """How one shard's values are checked and written: ``kind`` is the field's (``str`` for the
    type shard), ``column`` the fast check of a chunk."""

    shard: str
    kind: str
    column: Column

    @property
    def is_list(self) -> bool:
        return self.kind == "refs"

    def stored(self, value: Any) -> Any:
        """A coerced value as the store takes it (the slow path)."""
        return stored_form(self.kind, value) if self.kind in STORED_KINDS else value


@lru_cache(maxsize=8)
def _plans(model: Model) -> dict[str, _Plan]:
    plans = {TYPE_SHARD: _Plan(TYPE_SHARD, "str", _column("str", names=frozenset(model.types)))}
    for shard in model.shards():
        if shard != TYPE_SHARD:
            f = model.field_for_shard(shard)
            plans[shard] = _Plan(shard, f.kind, _column(f.kind, f.places))
    return plans


def _encode(
    plan: _Plan, uids: list[Any], values: list[Any], indexes: list[int], validate: _Validator
) -> list[Any]:
    """The stored values of one shard's records (``uids``, ``values``, at ``indexes`` in the
    input), every record checked; raise :class:`LoadError` naming the first bad one."""
    if are_ids(uids):
        stored = plan.column(values)
        if stored is not None:
            return stored
    stored = []
    for index, uid, value in zip(indexes, uids, values, strict=True):
        try:
            _, _, value = validate({"shard": plan.shard, "uid": uid, "value": value})
        except RecordError as exc:
            raise LoadError(plan.shard, index, uid, str(exc)) from None
        stored.append(plan.stored(value))
    return stored


# -- writing rows --------------------------------------------------------------------------------


@dataclass
class _Batch:
    """One shard's rows as columns, in input order: ids, stored values, positions in the input
    (a checked chunk, or a batch of them)."""

    plan: _Plan
    uids: list[int]
    values: list[Any]
    indexes: list[int]

    @property
    def size(self) -> int:
        """Rows in the store: a list counts one per entry."""
        return sum(len(v) or 1 for v in self.values) if self.plan.is_list else len(self.uids)


def _write(store: StoreBackend, batch: _Batch) -> int:
    """Write the rows in one transaction (their own, or the shard's open one, which they join);
    return how many records were already there (and equal)."""
    plan = batch.plan
    try:
        if plan.is_list:
            rows = zip(batch.uids, batch.values, strict=True)
            written = store.bulk_lists(plan.shard, rows, on_conflict="skip_equal")
        elif plan.kind in STORED_KINDS:
            written = store.bulk_insert_stored(
                plan.shard, plan.kind, batch.uids, batch.values, on_conflict="skip_equal"
            )
        else:  # floats and bools: the store picks their kind tags
            rows = zip(batch.uids, batch.values, strict=True)
            written = store.bulk_insert(plan.shard, rows, on_conflict="skip_equal")
    except UIDCollision as exc:
        assert exc.row is not None
        raise LoadError(
            plan.shard,
            batch.indexes[exc.row],
            exc.uid,
            f"already holds {exc.held!r:.100} but the record says {exc.value!r:.100}; "
            "nothing was overwritten",
        ) from None
    return len(batch.uids) - written


# -- the dispatcher and the writers --------------------------------------------------------------


class _Dispatcher:
    """The batches waiting to be written, and which shards are being written.

    A writer takes the oldest waiting batch of a shard no other writer holds, preferring the shards
    it wrote before. ``put`` blocks while ``capacity`` batches wait (back-pressure on the reader);
    ``abort`` ends every wait at once, so no thread is ever left waiting on another that is gone.
    """

    def __init__(self, capacity: int) -> None:
        self._cond = threading.Condition()
        self._waiting: dict[str, deque[tuple[int, _Batch]]] = {}
        self._writing: set[str] = set()
        self._count = 0
        self._capacity = capacity
        self._seq = 0
        self._closed = False
        self.aborted = False
        self.error: LoadError | None = None
        self.records: Counter[str] = Counter()
        self.skipped = 0

    def put(self, batch: _Batch) -> bool:
        """Queue ``batch``; False if the load was aborted meanwhile."""
        with self._cond:
            while self._count >= self._capacity and not self.aborted:
                self._cond.wait()
            if self.aborted:
                return False
            self._waiting.setdefault(batch.plan.shard, deque()).append((self._seq, batch))
            self._seq += 1
            self._count += 1
            self._cond.notify_all()
            return True

    def take(self, mine: set[str]) -> _Batch | None:
        """The next batch for a writer that wrote the shards ``mine``; None when there is no more."""
        with self._cond:
            while not self.aborted:
                free = [s for s, q in self._waiting.items() if q and s not in self._writing]
                if free:
                    shard = min(free, key=lambda s: (s not in mine, self._waiting[s][0][0]))
                    _, batch = self._waiting[shard].popleft()
                    self._count -= 1
                    self._writing.add(shard)
                    mine.add(shard)
                    self._cond.notify_all()  # the reader may be waiting for room
                    return batch
                if self._closed and not self._count:
                    return None
                self._cond.wait()
            return None

    def done(self, batch: _Batch, skipped: int) -> None:
        with self._cond:
            self._writing.discard(batch.plan.shard)
            self.records[batch.plan.shard] += len(batch.uids)
            self.skipped += skipped
            self._cond.notify_all()

    def close(self) -> None:
        """No more batches will come: writers stop once the waiting ones are written."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def abort(self, error: LoadError | None = None) -> None:
        """Stop the load: waiting batches are abandoned; the first error is kept."""
        with self._cond:
            if self.error is None:
                self.error = error
            self.aborted = True
            self._cond.notify_all()


def _writer(store: StoreBackend, dispatcher: _Dispatcher, tick: Callable[[int], None]) -> None:
    mine: set[str] = set()
    try:
        while (batch := dispatcher.take(mine)) is not None:
            try:
                skipped = _write(store, batch)
                dispatcher.done(batch, skipped)
                tick(len(batch.uids))
            except BaseException as exc:  # whatever ends this thread ends the load, and is named
                dispatcher.abort(_failed(batch, exc))
                return
    finally:
        store.close_thread()  # the writers close their files at once, not one by one at the end


def _failed(batch: _Batch, exc: BaseException) -> LoadError:
    """``exc``, raised while writing ``batch``, as the load's error."""
    if isinstance(exc, LoadError):
        return exc
    error = LoadError(batch.plan.shard, batch.indexes[0], batch.uids[0], f"{type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


class _Inline:
    """One writer, the reader's own thread: each checked chunk is written at once, while its records
    are still in the CPU's caches, into a transaction per shard that commits every ``batch`` rows.
    No thread hands the interpreter lock to another."""

    def __init__(self, store: ShardStore, batch: int, tick: Callable[[int], None]) -> None:
        self.store, self.batch, self.tick = store, batch, tick
        self.open: dict[str, Transaction] = {}
        self.rows: Counter[str] = Counter()  # rows written in each open transaction
        self.last: dict[str, _Batch] = {}  # each shard's last chunk, to name a failed commit
        self.records: Counter[str] = Counter()
        self.skipped = 0
        self.error: LoadError | None = None

    def put(self, chunk: _Batch) -> bool:
        shard = chunk.plan.shard
        self.last[shard] = chunk
        try:
            if shard not in self.open:
                self.open[shard] = self.store.transaction(shard)
            self.skipped += _write(self.store, chunk)
        except LoadError:
            raise
        except Exception as exc:
            raise _failed(chunk, exc) from exc
        self.records[shard] += len(chunk.uids)
        self.tick(len(chunk.uids))
        self.rows[shard] += chunk.size
        if self.rows[shard] >= self.batch:
            self._commit(shard)
        return True

    def _commit(self, shard: str) -> None:
        self.rows[shard] = 0
        try:
            self.open.pop(shard).commit()
        except Exception as exc:
            raise _failed(self.last[shard], exc) from exc

    def finish(self) -> bool:
        for shard in list(self.open):
            self._commit(shard)
        return True

    def close(self, finished: bool) -> None:
        """Roll back the transactions still open (a load that stopped early)."""
        for tx in self.open.values():
            tx.rollback()
        self.open.clear()


class _Pool:
    """``threads`` writer threads: checked chunks are gathered into batches of ``batch`` rows per
    shard, which the writers take from a :class:`_Dispatcher`."""

    def __init__(
        self, store: StoreBackend, threads: int, batch: int, queue_batches: int, tick: Callable[[int], None]
    ) -> None:
        self.dispatcher = _Dispatcher(threads * queue_batches)
        self.batch = batch
        self.filling: dict[str, tuple[_Batch, list[int]]] = {}  # shard -> (batch, [rows])
        self.workers = [
            threading.Thread(
                target=_writer,
                args=(store, self.dispatcher, tick),
                name=f"efs-sqlite-loader-{k}",
                daemon=True,
            )
            for k in range(threads)
        ]
        for w in self.workers:
            w.start()

    @property
    def records(self) -> Counter[str]:
        return self.dispatcher.records

    @property
    def skipped(self) -> int:
        return self.dispatcher.skipped

    @property
    def error(self) -> LoadError | None:
        return self.dispatcher.error

    def put(self, chunk: _Batch) -> bool:
        """Add ``chunk`` to its shard's batch, and queue the batch once full; False if the load was
        aborted meanwhile."""
        shard = chunk.plan.shard
        if shard not in self.filling:
            self.filling[shard] = (chunk, [0])
        else:
            full = self.filling[shard][0]
            full.uids += chunk.uids
            full.values += chunk.values
            full.indexes += chunk.indexes
        batch, rows = self.filling[shard]
        rows[0] += chunk.size
        if rows[0] < self.batch:
            return True
        del self.filling[shard]
        return self.dispatcher.put(batch)

    def finish(self) -> bool:
        # Largest first: the writers then finish together (longest-processing-time order).
        rest = sorted(self.filling.values(), key=lambda entry: -entry[1][0])
        self.filling.clear()
        return all(self.dispatcher.put(batch) for batch, _ in rest)

    def close(self, finished: bool) -> None:
        """Let the writers write what is queued and stop, or abandon it (a load that stopped early)."""
        if finished:
            self.dispatcher.close()
        else:
            self.dispatcher.abort()
        for w in self.workers:
            w.join()


def _worker_store(store: StoreBackend) -> contextlib.AbstractContextManager[StoreBackend]:
    # The writers' connections belong to threads that end with the load; a store of their own is
    # closed afterwards, so repeated loads (a warm Lambda) do not pile up open files. Another
    # backend (DynamoDB: one thread-safe client, no files) is used as it is, and stays open.
    if not isinstance(store, ShardStore):
        return contextlib.nullcontext(store)
    return ShardStore(
        store.root,
        journal_mode=store.journal_mode,
        busy_timeout_ms=store.busy_timeout_ms,
        vfs=store.vfs,
        synchronous=store.synchronous,
        lock_quota=store.lock_quota,
    )


def default_threads(store: StoreBackend, shards: int) -> int:
    """Writer threads when the caller gives none: one per shard if the store waits on the network
    (its ``parallel_reads``: a network file system, any VFS — the EFS model sleeps —, DynamoDB),
    else ``min(shards, LOCAL_THREADS)``.

    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> default_threads(ShardStore(root), 15), default_threads(ShardStore(root, vfs="efs"), 15)
    (1, 15)
    """
    return shards if store.parallel_reads else min(shards, LOCAL_THREADS)


class _Buffer:
    """One shard's records read since its last chunk, as columns: ids, values, input positions.

    A chunk is checked (and, with one writer, written) as soon as it is full, while its records
    are still in the CPU's caches: a batch's worth of records of 15 shards spans megabytes. The
    lists hold references and ints only: no tuple per record for the garbage collector, whose full
    collections cost in proportion to everything the process holds.
    """

    __slots__ = ("entries", "indexes", "is_list", "plan", "uids", "values")

    def __init__(self, plan: _Plan) -> None:
        self.plan, self.is_list = plan, plan.is_list
        self.uids: list[Any] = []
        self.values: list[Any] = []
        self.indexes: list[int] = []
        self.entries = 0  # list entries read (a list shard's chunk also ends at a batch of entries)

    def take(self, validate: _Validator) -> _Batch:
        """The records read so far, checked, as a chunk (a :class:`_Batch`); raise :class:`LoadError`."""
        stored = _encode(self.plan, self.uids, self.values, self.indexes, validate)
        chunk = _Batch(self.plan, self.uids, stored, self.indexes)
        self.uids, self.values, self.indexes, self.entries = [], [], [], 0
        return chunk


def load(
    store: StoreBackend,
    records: Iterable[Any],
    *,
    model: Model = INSURANCE,
    threads: int | None = None,
    batch: int = 10_000,
    queue_batches: int = 2,
    progress: bool = True,
    total: int | None = None,
) -> LoadSummary:
    """Load ``records`` (``{"shard", "uid", "value"}`` mappings) into ``store``; return a summary.

    ``threads`` writers (default: :func:`default_threads`; never more than the model's shards); with
    one, the caller's thread writes. About ``batch`` rows of one shard (a list counts one row per
    entry) make one commit. With writer threads at most ``threads * queue_batches`` batches wait for a
    writer, so at most about ``(shards + threads * (queue_batches + 1)) * batch`` rows are in memory;
    with one writer, a chunk of at most 256 records per shard. ``total`` sizes the progress bar.
    Raises :class:`LoadError`, for a record that does not fit the model as soon as its chunk is
    checked (the batches of other shards committed by then stay; a rerun skips them).
    """
    if batch < 1 or queue_batches < 1:
        raise ValueError("batch and queue_batches must be >= 1")
    if threads is not None and threads < 1:
        raise ValueError("threads must be >= 1")
    from tqdm import tqdm

    validate = _validator(model)
    plans = _plans(model)
    chunk = math.ceil(batch / math.ceil(batch / _CHUNK))  # records checked at a time; divides batch
    n = min(threads or default_threads(store, len(plans)), len(plans))
    lock = threading.Lock()
    bar = tqdm(total=total, desc="load", unit="rec", unit_scale=True, disable=not progress)

    def tick(k: int) -> None:
        with lock:
            bar.update(k)

    start = time.perf_counter()
    with _worker_store(store) as own:
        # One writer writes inline through a shard's transaction, which only SQLite has.
        inline = n == 1 and isinstance(own, ShardStore)
        sink = _Inline(own, batch, tick) if inline else _Pool(own, n, batch, queue_batches, tick)
        buffers = {shard: _Buffer(plan) for shard, plan in plans.items()}
        failure: LoadError | None = None
        finished = False
        try:
            # Per record only what routes it to its shard; the checks run per chunk (_encode).
            for index, record in enumerate(records):
                buf = None
                if type(record) is dict and len(record) == 3:
                    shard = record.get("shard")
                    buf = buffers.get(shard) if type(shard) is str else None
                    try:
                        uid, value = record["uid"], record["value"]
                    except KeyError:
                        buf = None
                if buf is None:
                    try:
                        shard, _, _ = validate(record)  # words what is wrong (or passes a non-dict mapping)
                    except RecordError as exc:
                        get = record.get if isinstance(record, Mapping) else {}.get
                        failure = LoadError(get("shard"), index, get("uid"), str(exc))
                        break
                    buf, uid, value = buffers[shard], record["uid"], record["value"]
                buf.uids.append(uid)
                buf.values.append(value)
                buf.indexes.append(index)
                if buf.is_list:
                    # A list costs a row per entry: count entries, so a batch of hub lists stays small.
                    buf.entries += (len(value) or 1) if type(value) is list else 1
                    if buf.entries < batch and len(buf.uids) < chunk:
                        continue
                elif len(buf.uids) < chunk:
                    continue
                try:
                    if not sink.put(buf.take(validate)):
                        break
                except LoadError as exc:
                    failure = exc
                    break
            else:
                try:
                    finished = all(sink.put(b.take(validate)) for b in buffers.values() if b.uids)
                    finished = finished and sink.finish()
                except LoadError as exc:
                    failure = exc
        finally:
            # Whatever ended the feed early (a bad record, a failed writer, an exception or ^C while
            # reading), what was not committed is abandoned; otherwise it is written and committed.
            sink.close(finished)
            bar.close()
    error = failure or sink.error
    if error is not None:
        raise error
    return LoadSummary(
        records=sum(sink.records.values()),
        shards=dict(sorted(sink.records.items())),
        skipped=sink.skipped,
        seconds=time.perf_counter() - start,
        threads=n,
    )


def load_path(
    store: StoreBackend, path: str | os.PathLike[str], *, check: bool = True, **options: Any
) -> LoadSummary:
    """Load a data set folder (see :mod:`efs_sqlite.data`) or one ``.jsonl`` / ``.jsonl.gz`` file.

    With ``check`` (the default) the data set's inverse pairs are checked first, in a pass over
    its records that writes nothing (:func:`efs_sqlite.links.check_links`): a data set whose two
    sides disagree (a claim lists a party that does not list it back) is refused with a
    :class:`DataSetError` naming the records, before anything is loaded. (:func:`load` takes any
    records, a batch of a data set among them, which cannot be checked alone.)
    """
    manifest = read_manifest(path)
    total = manifest["records"] if manifest else None
    if check:
        wrong = check_links(lambda: read_records(path), options.get("model", INSURANCE))
        if wrong:
            shown = "; ".join(map(str, wrong[:_SHOWN]))
            more = f"; and {len(wrong) - _SHOWN} more" if len(wrong) > _SHOWN else ""
            raise DataSetError(
                f"{path}: the two sides of {len(wrong)} link(s) disagree, so nothing was loaded: "
                f"{shown}{more}"
            )
    return load(store, read_records(path), total=total, **options)


def dump(store: StoreBackend, model: Model = INSURANCE, *, page: int = 1000) -> Iterator[dict[str, Any]]:
    """Every node of ``store`` (of ``model``) as the records :func:`load` takes, a page of ``page``
    nodes at a time: ``load(other, dump(store))`` copies one backend into another. The nodes come
    from a scan of the ``_type`` shard (cheap on SQLite; a table scan per page on DynamoDB).

    >>> import tempfile
    >>> store = ShardStore(tempfile.mkdtemp())
    >>> _ = load(store, [{"shard": "_type", "uid": 5, "value": "Party"},
    ...                  {"shard": "party_claims", "uid": 5, "value": [7, 8]}], progress=False)
    >>> list(dump(store))
    [{'shard': '_type', 'uid': 5, 'value': 'Party'}, {'shard': 'party_claims', 'uid': 5, 'value': [7, 8]}]
    """
    after: int | None = None
    while rows := store.scan(TYPE_SHARD, after=after, limit=page):
        by_type: dict[str, list[int]] = {}
        for uid, type_name in rows:
            yield {"shard": TYPE_SHARD, "uid": uid, "value": type_name}
            by_type.setdefault(type_name, []).append(uid)
        for type_name, ids in by_type.items():
            node_type = model.type(type_name)
            for f in node_type.fields:
                shard = node_type.shard(f.name)
                if f.kind == "refs":
                    for uid, n in store.list_count_many(shard, ids).items():
                        if n:
                            yield {"shard": shard, "uid": uid, "value": store.list_page(shard, uid, 0, n)}
                else:
                    for uid, value in store.get_many(shard, ids).items():
                        if value is not None:
                            yield {"shard": shard, "uid": uid, "value": value}
        after = rows[-1][0]
