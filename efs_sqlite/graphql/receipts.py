"""Idempotent mutations: the receipt of a ``clientMutationId``, written with the mutation's effect,
and the first answer kept with it.

A mutation sent with a ``clientMutationId`` (the Relay convention, docs/SOURCES.md#relay-mutations:
any string the client picks, unique per mutation it means to make once) writes a *receipt* in the
same grouped write as its effect, so the two land together or not at all: in the shard
:data:`RECEIPTS`, keyed by a 63-bit hash of the id, the id itself, a fingerprint of the mutation
(its field and arguments), its result (the id of the node it created, changed or deleted) and when
it was made. A retry with the same id finds the receipt and writes nothing, however the first
attempt ended: also when its commit landed and its answer was lost (an I/O error after the commit
point, a timeout, a dropped connection). Two attempts racing with the same id: the receipt is an
insert, so the second's grouped write collides and writes nothing, and it answers as a retry. An id
sent again with another mutation (another field, other arguments) is refused
(:class:`MutationIdReused`).

What a retry answers: once the first attempt has computed its answer (the mutation field's value,
with no error in it), a second, small write puts it in the receipt (:func:`keep_answer`, one
``put``, with the *selection* it answers: the field as written, its fragments and variables). A
retry with the same selection returns that answer as it was, byte for byte, even if the node has
changed since. The answer is not kept, and a retry answers with the node the receipt names as it
is *now* (read again: the first answer unless the node changed since), when the first attempt never
computed it (the commit landed but the attempt failed after it), when that second write failed or
the process died before it, when the answer held an error or is larger than :data:`MAX_ANSWER`,
and for a retry that asks another selection. On DynamoDB, whose reads are eventually consistent, a
retry on another connection within a second of the first attempt may read the receipt without its
answer (then it reads the node again) or not at all (then its write collides, and it answers as a
retry).

Receipts, with their answers, are kept :data:`RETENTION_S` (24 hours), then swept: each receipt's
key is also listed under the hour it was made (shard :data:`BY_HOUR`), and every grouped write of a
receipt deletes up to :data:`SWEEP` receipts of the oldest hour past the retention, in the same
write. A retry later than that is a new mutation: it is made again. Only the store interface
(:class:`~efs_sqlite.backend.StoreBackend`: get, put, list_count_many, list_page and a grouped
write) is used, so every backend keeps the same guarantee.

>>> import tempfile
>>> from efs_sqlite.store import ShardStore
>>> store = ShardStore(tempfile.mkdtemp())
>>> made = []
>>> def create(record):
...     with store.write() as w:
...         made.append(len(made) + 1)
...         record(w, made[-1])
...     return made[-1]
>>> once = [mutate_once(store, "abc-1", "createParty", {"n": 1}, create).result for _ in range(3)]
>>> once, made
([1, 1, 1], [1])
>>> first = mutate_once(store, "abc-2", "createParty", {"n": 2}, create)
>>> keep_answer(store, Pending(first.receipt, "{ id }"), {"id": "first"})
True
>>> retry = mutate_once(store, "abc-2", "createParty", {"n": 2}, create)
>>> retry.retry, retry.receipt.answer_for("{ id }"), retry.receipt.answer_for("{ name }"), made
(True, Answer(selection='{ id }', value={'id': 'first'}), None, [1, 2])
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from efs_sqlite.backend import BatchWriter, StoreBackend
from efs_sqlite.errors import MutationIdReused, UIDCollision

__all__ = [
    "BY_HOUR",
    "MAX_ANSWER",
    "RECEIPTS",
    "RETENTION_S",
    "SWEEP",
    "Answer",
    "Outcome",
    "Pending",
    "Receipt",
    "keep_answer",
    "mutate_once",
]

log = logging.getLogger(__name__)

#: The receipts, by key; and the keys made in each hour (a list at the hour's number), swept in order.
RECEIPTS = "_mutations"
BY_HOUR = "_mutations_by_hour"
#: How long a receipt (and its answer) is kept: a retry within it writes nothing.
RETENTION_S = 24 * 3600
#: At most this many receipts are swept by one write.
SWEEP = 256
#: The largest receipt, its answer in it, that is kept (characters of JSON): a larger answer is
#: not kept (a retry reads the node again), so a receipt stays a small item on every backend.
MAX_ANSWER = 64 * 1024
_HOUR = 3600
_SWEPT = 1  # the key, in BY_HOUR, of the sweep's progress: [hour, offset] (an hour number is far larger)
_LOOK = 48  # hours whose lists are looked for at once when the sweep skips empty ones
#: A write of a receipt calls this with the batch and the mutation's result.
Record = Callable[[BatchWriter, Any], None]


class Answer(NamedTuple):
    """The first answer of a mutation: its field's value, JSON-ready, for this ``selection``."""

    selection: str
    value: Any


class Receipt(NamedTuple):
    """What a ``clientMutationId`` recorded: the mutation's fingerprint and result, when, and
    (once :func:`keep_answer` has put it) its first answer."""

    client_id: str
    fingerprint: str
    result: Any
    at: float
    answer: Answer | None = None

    def answer_for(self, selection: str) -> Answer | None:
        """The kept answer, if there is one for ``selection``."""
        if self.answer is None or self.answer.selection != selection:
            return None
        return self.answer


class Outcome(NamedTuple):
    """A mutation made once: its ``result``; the ``receipt`` of its ``clientMutationId`` (None
    without one); ``retry``, whether the receipt was there already (nothing was written)."""

    result: Any
    receipt: Receipt | None = None
    retry: bool = False


class Pending(NamedTuple):
    """A receipt this attempt wrote, waiting for the answer to ``selection``."""

    receipt: Receipt
    selection: str


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


def _receipt(stored: str) -> Receipt:
    receipt = Receipt(*json.loads(stored))
    if receipt.answer is None:
        return receipt
    return receipt._replace(answer=Answer(*receipt.answer))


def _found(store: StoreBackend, client_id: str, digest: str, now: float) -> Receipt | None:
    """The live receipt of ``client_id``, or ``None``; MutationIdReused if it is another mutation's."""
    stored = store.get(RECEIPTS, key_of(client_id))
    if stored is None:
        return None
    receipt = _receipt(stored)
    if now - receipt.at > RETENTION_S:
        return None  # expired: the sweep has not reached it yet
    if receipt.client_id != client_id or receipt.fingerprint != digest:
        raise MutationIdReused(
            f"clientMutationId {client_id!r} was already used, less than {RETENTION_S // 3600} h ago, "
            "for another mutation (other field or arguments); a retry must send the same mutation"
        )
    return receipt


def _sweep(store: StoreBackend, w: BatchWriter, now: float) -> None:
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


def mutate_once(
    store: StoreBackend,
    client_id: str | None,
    field: str,
    args: Mapping[str, Any],
    write: Callable[[Record | None], Any],
    *,
    clock: Callable[[], float] = time.time,
) -> Outcome:
    """``write(record)``, made once per ``client_id``: ``write`` makes the mutation in one
    grouped write and calls ``record(batch, result)`` inside it, which adds the receipt (and a
    sweep) to that write. A retry returns the first attempt's result and receipt and calls
    nothing. Without a ``client_id``, ``write(None)``. ``clock`` is the time in seconds since the
    epoch."""
    if client_id is None:
        return Outcome(write(None))
    digest, now = fingerprint(field, args), clock()
    found = _found(store, client_id, digest, now)
    if found is not None:
        return Outcome(found.result, found, retry=True)
    written: list[Receipt] = []

    def record(w: BatchWriter, result: Any) -> None:
        key = key_of(client_id)
        stored = store.get(RECEIPTS, key)
        if stored is not None and now - _receipt(stored).at > RETENTION_S:
            w.delete(RECEIPTS, key)  # an expired receipt of this id, not swept yet: replaced
        written.append(Receipt(client_id, digest, result, now))
        w.insert(RECEIPTS, key, json.dumps(written[-1]))
        w.list_extend(BY_HOUR, int(now) // _HOUR, [key])
        _sweep(store, w, now)

    try:
        result = write(record)
    except UIDCollision as exc:
        if exc.shard != RECEIPTS:
            raise
        # Another attempt with this id committed first: this one wrote nothing; answer as a retry.
        found = _found(store, client_id, digest, clock())
        if found is None:
            raise
        return Outcome(found.result, found, retry=True)
    return Outcome(result, written[-1])


def keep_answer(store: StoreBackend, pending: Pending, value: Any) -> bool:
    """Put ``value``, the first answer to ``pending.selection``, in the receipt this attempt wrote
    (one ``put``, after the mutation's commit); True if it was kept. Not kept: an answer whose
    receipt would pass :data:`MAX_ANSWER` (nothing is written), or a write that failed (logged).
    Either way a retry reads the node again instead."""
    receipt = pending.receipt._replace(answer=Answer(pending.selection, value))
    text = json.dumps(receipt, separators=(",", ":"))
    if len(text) > MAX_ANSWER:
        return False
    try:
        store.put(RECEIPTS, key_of(receipt.client_id), text)
    except Exception:  # the mutation committed and its answer is on its way: never fail it now
        log.warning("the answer of clientMutationId %r was not kept", receipt.client_id, exc_info=True)
        return False
    return True
