"""The bulk loader: records into a :class:`~efs_sqlite.store.ShardStore`, one worker thread per shard.

The caller's thread reads and validates the records (shard in the model, id in range, value coerces
to the field's type) and hands them, a batch per shard at a time, to the worker that owns the shard
through a bounded queue: a full queue blocks the reader, so memory stays bounded whatever the input
size. Each worker writes from its own thread, through its own connections, one commit per batch.

Failure never hangs: there is no ``Queue.join`` to wait on. A failing worker records the error and
sets a shared stop event; the reader's ``put`` and the workers' ``get`` poll that event, so every
thread ends within a poll interval and the caller gets a :class:`LoadError` naming the shard and
the record. Batches committed before the failure stay committed.

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
efs_sqlite.loader.LoadError: shard '../x', record #0 (uid 5): unknown shard '../x'
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from efs_sqlite.data import read_manifest, read_records
from efs_sqlite.model import INSURANCE, TYPE_SHARD, Model, ValidationError
from efs_sqlite.store import ShardStore

__all__ = ["LoadError", "LoadSummary", "RecordError", "load", "load_path", "validate_record"]

_POLL_S = 0.05
_DONE = object()
_MISSING = object()

Row = tuple[int, int, Any]  # (record index, uid, coerced value)


class RecordError(ValueError):
    """A record that does not fit the model; the message says what is wrong."""


class LoadError(RuntimeError):
    """A load stopped: ``shard``, ``index`` (the record's position in the input) and ``uid`` say where."""

    def __init__(self, shard: Any, index: int, uid: Any, reason: str) -> None:
        super().__init__(f"shard {str(shard)[:80]!r}, record #{index} (uid {str(uid)[:40]}): {reason}")
        self.shard, self.index, self.uid, self.reason = shard, index, uid, reason


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
        self.coerce: dict[str, Callable[[Any], Any]] = {TYPE_SHARD: self._type_name}
        self.lists: set[str] = set()
        for shard in model.shards():
            if shard != TYPE_SHARD:
                f = model.field_for_shard(shard)
                self.coerce[shard] = f.coerce
                if f.kind == "refs":
                    self.lists.add(shard)

    def _type_name(self, value: Any) -> str:
        if not isinstance(value, str) or value not in self.types:
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
        if type(uid) is not int or not 0 < uid < 2**63:
            raise RecordError(f"uid must be an integer in 1 .. 2^63-1, not {str(uid)[:40]!r}")
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
    efs_sqlite.loader.RecordError: uid must be an integer in 1 .. 2^63-1, not '18446744073709551616'
    """
    return _validator(model)(record)


def _same(a: Any, b: Any) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def _conflict(shard: str, row: Row, stored: Any) -> LoadError:
    index, uid, value = row
    return LoadError(
        shard,
        index,
        uid,
        f"already holds {stored!r:.100} but the record says {value!r:.100}; nothing was overwritten",
    )


def _write(store: ShardStore, shard: str, rows: list[Row], is_list: bool) -> int:
    """Write one batch in one commit; return how many records were already there (and equal)."""
    if not is_list:
        written = store.bulk_insert(shard, [(uid, value) for _, uid, value in rows], on_conflict="ignore")
        if written < len(rows):
            stored = store.get_many(shard, [uid for _, uid, _ in rows])
            for row in rows:
                if not _same(stored.get(row[1], _MISSING), row[2]):
                    raise _conflict(shard, row, stored.get(row[1]))
        return len(rows) - written
    pending: dict[int, Row] = {}
    for row in rows:
        if row[1] in pending and pending[row[1]][2] != row[2]:
            raise _conflict(shard, row, pending[row[1]][2])
        pending[row[1]] = row
    counts = store.list_count_many(shard, pending)
    present = [uid for uid, n in counts.items() if n]
    if present:
        longest = max(len(pending[uid][2]) for uid in present)
        stored_lists = store.list_page_many(shard, present, 0, longest + 1)
        for uid in present:
            if stored_lists[uid] != pending[uid][2]:
                raise _conflict(shard, pending[uid], stored_lists[uid])
    store.bulk_lists(shard, [(uid, row[2]) for uid, row in pending.items() if not counts[uid]])
    return len(rows) - len(pending) + len(present)


def _put(q: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    """Put ``item``, waiting while the queue is full; False if the load was stopped meanwhile."""
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


class _Worker(threading.Thread):
    def __init__(
        self, n: int, maxsize: int, store: ShardStore, lists: set[str], stop: threading.Event, tick: Any
    ) -> None:
        super().__init__(name=f"efs-sqlite-loader-{n}", daemon=True)
        self.queue: queue.Queue[Any] = queue.Queue(maxsize)
        self.store, self.lists, self.stop, self.tick = store, lists, stop, tick
        self.records: dict[str, int] = {}
        self.skipped = 0
        self.error: LoadError | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                item = self.queue.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if item is _DONE:
                return
            shard, rows = item
            try:
                self.skipped += _write(self.store, shard, rows, shard in self.lists)
            except LoadError as exc:
                self.error = exc
            except Exception as exc:
                self.error = LoadError(shard, rows[0][0], rows[0][1], f"{type(exc).__name__}: {exc}")
                self.error.__cause__ = exc
            if self.error is not None:
                self.stop.set()
                return
            self.records[shard] = self.records.get(shard, 0) + len(rows)
            self.tick(len(rows))


def _worker_store(store: ShardStore) -> ShardStore:
    # The workers' connections belong to threads that end with the load; a store of their own is
    # closed afterwards, so repeated loads (a warm Lambda) do not pile up open files.
    return ShardStore(
        store.root,
        journal_mode=store.journal_mode,
        busy_timeout_ms=store.busy_timeout_ms,
        vfs=store.vfs,
        synchronous=store.synchronous,
    )


def _assign(shards: list[str], workers: list[_Worker]) -> dict[str, _Worker]:
    """Deal shards to workers, each to the least loaded one. ``_type`` holds a row for every node,
    about twice a field shard's, so it counts double: with fewer workers than shards it gets a
    worker of its own, which keeps the slowest worker's share (the load's wall time) smallest."""
    weights = [0] * len(workers)
    owner = {}
    for shard in sorted(shards, key=lambda s: s != TYPE_SHARD):
        k = weights.index(min(weights))
        owner[shard] = workers[k]
        weights[k] += 2 if shard == TYPE_SHARD else 1
    return owner


def load(
    store: ShardStore,
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

    ``threads`` caps the worker threads (default: one per shard of ``model``; with fewer, each
    worker owns several shards). About ``batch`` rows of one shard (a list counts one row per entry) make
    one commit; each worker queues at most ``queue_batches`` batches, so at most about
    ``(shards + threads * queue_batches) * batch`` rows are in memory. ``total`` sizes the progress
    bar. Raises :class:`LoadError`.
    """
    if batch < 1 or queue_batches < 1:
        raise ValueError("batch and queue_batches must be >= 1")
    if threads is not None and threads < 1:
        raise ValueError("threads must be >= 1")
    from tqdm import tqdm

    validate = _validator(model)
    shards = model.shards()
    n = min(threads or len(shards), len(shards))
    stop = threading.Event()
    lock = threading.Lock()
    bar = tqdm(total=total, desc="load", unit="rec", unit_scale=True, disable=not progress)

    def tick(k: int) -> None:
        with lock:
            bar.update(k)

    start = time.perf_counter()
    with _worker_store(store) as own:
        workers = [_Worker(k, queue_batches, own, validate.lists, stop, tick) for k in range(n)]
        for w in workers:
            w.start()
        owner = _assign(shards, workers)
        buffers: dict[str, list[Row]] = {shard: [] for shard in shards}
        sizes = dict.fromkeys(shards, 0)
        failure: LoadError | None = None
        fed = False
        try:
            for index, record in enumerate(records):
                try:
                    shard, uid, value = validate(record)
                except RecordError as exc:
                    get = record.get if isinstance(record, Mapping) else {}.get
                    failure = LoadError(get("shard"), index, get("uid"), str(exc))
                    break
                buf = buffers[shard]
                buf.append((index, uid, value))
                # A list costs a row per entry: count entries, so a batch of hub lists stays small.
                sizes[shard] += max(1, len(value)) if shard in validate.lists else 1
                if sizes[shard] >= batch:
                    if not _put(owner[shard].queue, (shard, buf), stop):
                        break
                    buffers[shard], sizes[shard] = [], 0
            else:
                fed = all(
                    _put(owner[shard].queue, (shard, buf), stop) for shard, buf in buffers.items() if buf
                )
        finally:
            # Whatever ended the feed early (a bad record, a failed worker, an exception or ^C while
            # reading), the workers abandon their queues; otherwise they drain them and stop.
            if not (fed and all(_put(w.queue, _DONE, stop) for w in workers)):
                stop.set()
            for w in workers:
                w.join()
            bar.close()
    errors = [w.error for w in workers if w.error is not None]
    if failure is not None or errors:
        raise failure or errors[0]
    per_shard: dict[str, int] = {}
    for w in workers:
        per_shard.update(w.records)
    return LoadSummary(
        records=sum(per_shard.values()),
        shards=dict(sorted(per_shard.items())),
        skipped=sum(w.skipped for w in workers),
        seconds=time.perf_counter() - start,
        threads=n,
    )


def load_path(store: ShardStore, path: str | os.PathLike[str], **options: Any) -> LoadSummary:
    """Load a data set folder (see :mod:`efs_sqlite.data`) or one ``.jsonl`` / ``.jsonl.gz`` file."""
    manifest = read_manifest(path)
    total = manifest["records"] if manifest else None
    return load(store, read_records(path), total=total, **options)
