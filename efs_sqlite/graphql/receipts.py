"""Idempotent mutations: the receipt of a ``clientMutationId``, written with the mutation's effect.

A mutation sent with a ``clientMutationId`` (the Relay convention, docs/SOURCES.md#relay-mutations:
any string the client picks, unique per mutation it means to make once) writes a *receipt* in the
same grouped write as its effect, so the two land together or not at all: in the shard
:data:`RECEIPTS`, keyed by a 63-bit hash of the id, the id itself, a fingerprint of the mutation
(its field and arguments), its result (the id of the node it created, changed or deleted) and when
it was made. A retry with the same id finds the receipt and writes nothing, however the first
attempt ended: also when its commit landed and its answer was lost (an I/O error after the commit
point, a timeout, a dropped connection). It answers with the node the receipt names, read now: a
delete's answer is exactly the first; a create's or an update's is the node as it is (the same as
the first answer unless it changed since). Two attempts racing with the same id: the receipt is an
insert, so the second's grouped write collides and writes nothing, and it answers as a retry. An id
sent again with another mutation (another field, other arguments) is refused
(:class:`MutationIdReused`).

Receipts are kept :data:`RETENTION_S` (24 hours), then swept: each receipt's key is also listed
under the hour it was made (shard :data:`BY_HOUR`), and every grouped write of a receipt deletes
up to :data:`SWEEP` receipts of the oldest hour past the retention, in the same write (a retry
later than that is a new mutation). Only the store's own methods are used (get, list_count_many,
list_page and a grouped write), so any backend of the store keeps the same guarantee.

>>> import tempfile
>>> from efs_sqlite.store import ShardStore
>>> store = ShardStore(tempfile.mkdtemp())
>>> made = []
>>> def create(record):
...     with store.write() as w:
...         made.append(len(made) + 1)
...         record(w, made[-1])
...     return made[-1]
>>> once = [idempotent(store, "abc-1", "createParty", {"n": 1}, create) for _ in range(3)]
>>> once, made
([1, 1, 1], [1])
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from efs_sqlite.errors import MutationIdReused, UIDCollision
from efs_sqlite.store import ShardStore, WriteBatch

__all__ = ["BY_HOUR", "RECEIPTS", "RETENTION_S", "SWEEP", "Receipt", "idempotent"]

#: The receipts, by key; and the keys made in each hour (a list at the hour's number), swept in order.
RECEIPTS = "_mutations"
BY_HOUR = "_mutations_by_hour"
#: How long a receipt is kept: a retry within it writes nothing.
RETENTION_S = 24 * 3600
#: At most this many receipts are swept by one write.
SWEEP = 256
_HOUR = 3600
_SWEPT = 1  # the key, in BY_HOUR, of the sweep's progress: [hour, offset] (an hour number is far larger)
_LOOK = 48  # hours whose lists are looked for at once when the sweep skips empty ones
#: A write of a receipt calls this with the batch and the mutation's result.
Record = Callable[[WriteBatch, Any], None]


class Receipt(NamedTuple):
    """What a ``clientMutationId`` recorded: the mutation's fingerprint and result, and when."""

    client_id: str
    fingerprint: str
    result: Any
    at: float


def key_of(client_id: str) -> int:
    """The receipt's key: 63 bits of the id's SHA-256, never 0.

    >>> key_of("abc-1")
    3646997811236732278
    """
    return int.from_bytes(hashlib.sha256(client_id.encode()).digest()[:8], "big") >> 1 or 1


def fingerprint(field: str, args: Mapping[str, Any]) -> str:
    """A digest of the mutation: its field and its arguments (``clientMutationId`` aside)."""
    text = json.dumps([field, args], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _found(store: ShardStore, client_id: str, digest: str, now: float) -> Receipt | None:
    """The live receipt of ``client_id``, or ``None``; MutationIdReused if it is another mutation's."""
    stored = store.get(RECEIPTS, key_of(client_id))
    if stored is None:
        return None
    receipt = Receipt(*json.loads(stored))
    if now - receipt.at > RETENTION_S:
        return None  # expired: the sweep has not reached it yet
    if receipt.client_id != client_id or receipt.fingerprint != digest:
        raise MutationIdReused(
            f"clientMutationId {client_id!r} was already used, less than {RETENTION_S // 3600} h ago, "
            "for another mutation (other field or arguments); a retry must send the same mutation"
        )
    return receipt


def _sweep(store: ShardStore, w: WriteBatch, now: float) -> None:
    """Add to ``w`` the deletion of up to :data:`SWEEP` expired receipts, oldest hour first."""
    last = int(now - RETENTION_S) // _HOUR - 1  # the newest hour whose receipts have all expired
    progress = store.get(BY_HOUR, _SWEPT)
    hour, offset = json.loads(progress) if progress is not None else (last, 0)
    if hour > last:
        return
    if offset == 0:  # skip the hours without receipts, up to _LOOK at a time
        hours = list(range(hour, min(hour + _LOOK, last + 1)))
        counts = store.list_count_many(BY_HOUR, hours)
        hour = next((h for h in hours if counts.get(h)), hours[-1] + 1)
        if hour > last:
            w.put(BY_HOUR, _SWEPT, json.dumps([hour, 0]))
            return
    keys = store.list_page(BY_HOUR, hour, offset, SWEEP)
    for key in keys:
        w.delete(RECEIPTS, key)
    if len(keys) < SWEEP:  # the hour is done
        w.delete(BY_HOUR, hour)
        hour, offset = hour + 1, 0
    else:
        offset += SWEEP
    w.put(BY_HOUR, _SWEPT, json.dumps([hour, offset]))


def idempotent(
    store: ShardStore,
    client_id: str | None,
    field: str,
    args: Mapping[str, Any],
    write: Callable[[Record | None], Any],
    *,
    clock: Callable[[], float] = time.time,
) -> Any:
    """``write(record)``'s result, made once per ``client_id``: ``write`` makes the mutation in one
    grouped write and calls ``record(batch, result)`` inside it, which adds the receipt (and a
    sweep) to that write. A retry returns the first attempt's result and calls nothing. Without a
    ``client_id``, ``write(None)``. ``clock`` is the time in seconds since the epoch."""
    if client_id is None:
        return write(None)
    digest, now = fingerprint(field, args), clock()
    found = _found(store, client_id, digest, now)
    if found is not None:
        return found.result

    def record(w: WriteBatch, result: Any) -> None:
        key = key_of(client_id)
        stored = store.get(RECEIPTS, key)
        if stored is not None and now - Receipt(*json.loads(stored)).at > RETENTION_S:
            w.delete(RECEIPTS, key)  # an expired receipt of this id, not swept yet: replaced
        w.insert(RECEIPTS, key, json.dumps(Receipt(client_id, digest, result, now)))
        w.list_extend(BY_HOUR, int(now) // _HOUR, [key])
        _sweep(store, w, now)

    try:
        return write(record)
    except UIDCollision as exc:
        if exc.shard != RECEIPTS:
            raise
        # Another attempt with this id committed first: this one wrote nothing; answer as a retry.
        found = _found(store, client_id, digest, clock())
        if found is None:
            raise
        return found.result
