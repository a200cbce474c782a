"""``DynamoStore``: the store interface (:class:`~efs_sqlite.backend.StoreBackend`) on one DynamoDB table.

Items are laid out by node, then by field (:mod:`efs_sqlite.dynamodb.layout`). Every call is
recorded with the capacity units it consumes (:mod:`efs_sqlite.dynamodb.capacity`,
:mod:`efs_sqlite.dynamodb.calls`): :meth:`DynamoStore.accounting` counts them for a block.

Reads
-----
``get_many`` (one shard of a GraphQL level) is one BatchGetItem per 100 keys, the batches sent at
once; the keys DynamoDB leaves unprocessed are asked again, after an exponential backoff with full
jitter. A list page is one Query of a range of sort keys with a limit; the pages of a level's
lists are sent at once, with the BatchGetItem of their count items. Reads are eventually
consistent unless ``consistent_reads`` (twice the read units), except for a short while after the
reading thread wrote (read your own writes: a mutation's answer). There are no locks and no
snapshots: ``read()`` blocks and ``begin_read`` hold nothing (``read_locks`` is False).

Writes
------
A grouped write (:meth:`DynamoStore.write`) is one TransactWriteItems: all of it or none. A group
of one item is a plain PutItem or DeleteItem (as atomic, at half the write units). A group over
DynamoDB's 100 items (or 4 MB) is refused with :class:`~efs_sqlite.errors.GroupTooLarge`, never
split; an item over 400 KB with :class:`~efs_sqlite.errors.ItemTooLarge`, before anything is sent.
An insert is a put on the condition that the item does not exist: a collision raises
:class:`~efs_sqlite.errors.UIDCollision`, as the SQLite store does. A list change reads the list's
count item (strongly consistent) first and writes it back on the condition that it is unchanged,
so two writers of one list never interleave: the later one fails with
:class:`~efs_sqlite.errors.StoreBusy` and wrote nothing.

Bulk writes (the loader) are BatchWriteItem of 25 items, the UnprocessedItems sent again with
backoff; they are not atomic (a load is rerun instead: reruns skip what is already there).

Throttling: botocore's standard retry mode retries a throttled call (counted in the call's
``retries``); a call still throttled after those raises :class:`~efs_sqlite.errors.StoreBusy`.

boto3 is imported when a store is made, never by ``import efs_sqlite``: the EFS path's Lambda cold
start does not pay for it.
"""

from __future__ import annotations

import contextlib
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Literal, TypeVar

from efs_sqlite.backend import ListsRead, ValuesRead
from efs_sqlite.deadline import Deadline
from efs_sqlite.dynamodb import layout, writes
from efs_sqlite.dynamodb.calls import Call, CallLog, Calls
from efs_sqlite.dynamodb.capacity import item_size, query_units, read_units, write_units
from efs_sqlite.errors import DeadlineExceeded, StoreBusy, StoreError, UIDCollision
from efs_sqlite.kinds import KIND_OF, PLAIN
from efs_sqlite.store import STORED_KINDS, WriteBatch, check_refs, validate_shard

__all__ = ["MAX_BATCH_GET", "MAX_BATCH_WRITE", "DynamoStore", "make_client"]

#: DynamoDB's limits of batches (``docs/SOURCES.md#dynamodb-limits``; those of writes: ``writes``).
MAX_BATCH_GET = 100
MAX_BATCH_WRITE = 25
#: The error codes of a throttled call.
#: Reads of a thread stay strongly consistent this long after it wrote (see
#: :meth:`DynamoStore._consistent`). DynamoDB says only that an eventually consistent read returns a
#: recent write "after a short time" (``docs/SOURCES.md#dynamodb-read-consistency``): a second is
#: this project's choice, a named parameter.
READ_YOUR_WRITES_S = 1.0
THROTTLED = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)
_ON_CONFLICT = ("error", "replace", "ignore", "skip_equal")

T = TypeVar("T")
Key = tuple[int, str]  # (uid, sort key) of an item


def _item_key(item: layout.Item) -> Key:
    return int(item["id"]["N"]), item["f"]["S"]


class DynamoStore:
    """The store on the DynamoDB table ``table`` (see the module).

    ``client`` is a boto3 DynamoDB client; without one, a client is made for ``endpoint_url``
    (e.g. the local moto server, :func:`efs_sqlite.dynamodb.local.local_endpoint`) and
    ``region_name``, which needs AWS credentials unless an endpoint is given. ``create`` creates
    the table (on demand) if it does not exist. ``consistent_reads`` reads strongly consistent
    (else only for ``read_your_writes_s`` after the reading thread wrote: a mutation reads back
    what it wrote).
    ``attempts`` bounds the rounds of unprocessed keys or items; ``backoff_s`` is the first
    backoff (doubled each round, fully jittered).
    """

    #: No read locks: begin_read holds nothing, so the GraphQL layer does not lock ahead.
    read_locks = False
    #: Every read is a network round trip: a level's reads are made at once.
    parallel_reads = True

    #: No file locks: no quota to count against (see :class:`~efs_sqlite.backend.StoreBackend`).
    lock_quota = None

    def __init__(
        self,
        table: str,
        *,
        client: Any = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        consistent_reads: bool = False,
        create: bool = False,
        max_workers: int = 16,
        attempts: int = 8,
        backoff_s: float = 0.025,
        read_your_writes_s: float = READ_YOUR_WRITES_S,
    ) -> None:
        if attempts < 1 or max_workers < 1:
            raise ValueError("attempts and max_workers must be >= 1")
        self.table = table
        self.client = client if client is not None else make_client(endpoint_url, region_name, max_workers)
        self.consistent_reads = consistent_reads
        self.attempts, self.backoff_s = attempts, backoff_s
        self.read_your_writes_s = read_your_writes_s
        self._wrote = threading.local()  # when this thread last wrote (monotonic seconds)
        self._bound = threading.local()  # .deadline: this thread's, set by within()
        self.log = CallLog()
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="efs-sqlite-dynamodb")
        if create:
            self.create_table()

    def __repr__(self) -> str:
        return f"DynamoStore({self.table!r}, consistent_reads={self.consistent_reads})"

    def __enter__(self) -> DynamoStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def accounting(self, *, current_thread: bool = False) -> contextlib.AbstractContextManager[Calls]:
        """Count the calls made inside the block (see :class:`~efs_sqlite.dynamodb.calls.CallLog`)."""
        return self.log.accounting(current_thread=current_thread)

    # -- calls -----------------------------------------------------------------------------------

    def _call(self, operation: str, call: Callable[..., dict[str, Any]], **params: Any) -> dict[str, Any]:
        """Make one call; a throttled or missing table becomes a store error that says so."""
        from botocore.exceptions import ClientError

        try:
            return call(**params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in THROTTLED:
                raise StoreBusy(
                    f"DynamoDB throttled {operation} on table {self.table!r} past botocore's retries "
                    f"({code}); retry later"
                ) from exc
            if code == "ResourceNotFoundException":
                raise StoreError(
                    f"DynamoDB table {self.table!r} does not exist: create it with "
                    "DynamoStore(..., create=True) or `efs-sqlite load --backend dynamodb`"
                ) from exc
            raise

    def _record(self, operation: str, response: dict[str, Any], wave: int, **figures: Any) -> None:
        retries = response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        self.log.record(Call(operation, retries=retries, wave=wave, **figures))

    @contextlib.contextmanager
    def within(self, deadline: Deadline | None) -> Iterator[None]:
        """Bound this thread's calls in the block by ``deadline`` (``None``: no bound): a backoff
        before unprocessed keys or items ends at it with :class:`DeadlineExceeded`, and no write
        begins after it. Nested, the earlier deadline holds."""
        outer: Deadline | None = getattr(self._bound, "deadline", None)
        self._bound.deadline = Deadline.sooner(outer, deadline)
        try:
            yield
        finally:
            self._bound.deadline = outer

    def _backoff(self, attempt: int, what: str) -> None:
        """Sleep before round ``attempt`` of unprocessed keys or items (full jitter); give up after
        ``attempts`` rounds, or at this thread's deadline."""
        if attempt >= self.attempts:
            raise StoreBusy(
                f"DynamoDB left {what} unprocessed on table {self.table!r} after {attempt} attempts; "
                "retry later"
            )
        pause = random.uniform(0, self.backoff_s * 2 ** (attempt - 1))
        deadline: Deadline | None = getattr(self._bound, "deadline", None)
        if deadline is not None and deadline.remaining() < pause:
            raise DeadlineExceeded(f"the request's deadline passed while DynamoDB left {what} unprocessed")
        time.sleep(pause)

    def _consistent(self) -> bool:
        """Whether this thread's reads are strongly consistent now: always with
        ``consistent_reads``, else for ``read_your_writes_s`` after this thread wrote (a mutation's
        answer reads what it just wrote, which an eventually consistent read may not see yet)."""
        if self.consistent_reads:
            return True
        return time.monotonic() - getattr(self._wrote, "at", -math.inf) < self.read_your_writes_s

    def _wrote_now(self) -> None:
        self._wrote.at = time.monotonic()

    def _at_once(self, tasks: Sequence[Callable[[], T]]) -> list[T]:
        """Run ``tasks`` at once on the store's threads (one alone on this thread); every task has
        ended before the first error is raised."""
        if len(tasks) == 1:
            return [tasks[0]()]
        futures = [self._pool.submit(task) for task in tasks]
        wait(futures)
        return [f.result() for f in futures]

    # -- table -----------------------------------------------------------------------------------

    def table_exists(self) -> bool:
        from botocore.exceptions import ClientError

        try:
            response = self.client.describe_table(TableName=self.table)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return False
            raise
        self._record("DescribeTable", response, self.log.wave())
        return True

    def create_table(self) -> bool:
        """Create the table (on-demand capacity) if it does not exist, and wait until it is
        active; True if it was created."""
        if self.table_exists():
            return False
        response = self._call("CreateTable", self.client.create_table, **layout.table_definition(self.table))
        self._record("CreateTable", response, self.log.wave())
        self.client.get_waiter("table_exists").wait(TableName=self.table, WaiterConfig={"Delay": 1})
        return True

    def healthy(self) -> bool:
        """Whether the table can be described (it exists and the endpoint answers)."""
        try:
            return self.table_exists()
        except Exception:
            return False

    # -- reads -----------------------------------------------------------------------------------

    def _batch_get(self, keys: list[layout.Item], consistent: bool) -> dict[Key, layout.Item]:
        """The items of ``keys`` (distinct) that exist: one BatchGetItem per 100, sent at once."""
        wave = self.log.wave()
        chunks = [keys[i : i + MAX_BATCH_GET] for i in range(0, len(keys), MAX_BATCH_GET)]
        found: dict[Key, layout.Item] = {}
        for part in self._at_once([lambda c=c: self._get_chunk(c, consistent, wave) for c in chunks]):
            found.update(part)
        return found

    def _get_chunk(self, keys: list[layout.Item], consistent: bool, wave: int) -> dict[Key, layout.Item]:
        found: dict[Key, layout.Item] = {}
        attempt = 0
        while keys:
            request = {self.table: {"Keys": keys, "ConsistentRead": consistent}}
            response = self._call("BatchGetItem", self.client.batch_get_item, RequestItems=request)
            items = response.get("Responses", {}).get(self.table, [])
            left = response.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])
            missing = len(keys) - len(left) - len(items)
            units = read_units([*items, *[None] * missing], consistent=consistent)
            self._record("BatchGetItem", response, wave, items=len(keys), read_units=units)
            found.update((_item_key(item), item) for item in items)
            keys = left
            if keys:
                attempt += 1
                self._backoff(attempt, f"{len(keys)} keys")
                wave = self.log.wave()
        return found

    def _query(
        self, uid: int, low: str, high: str, limit: int | None, consistent: bool, wave: int
    ) -> list[int]:
        """The entries of ``uid``'s list between the sort keys ``low`` and ``high``: one Query
        (more only past DynamoDB's 1 MB a page)."""
        params: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "id = :id AND f BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {":id": {"N": str(int(uid))}, ":lo": {"S": low}, ":hi": {"S": high}},
            "ConsistentRead": consistent,
        }
        if limit is not None:
            params["Limit"] = limit
        refs: list[int] = []
        while True:
            response = self._call("Query", self.client.query, **params)
            items = response.get("Items", [])
            self._record(
                "Query",
                response,
                wave,
                items=len(items),
                read_units=query_units(items, consistent=consistent),
            )
            refs += [int(item["r"]["N"]) for item in items]
            last = response.get("LastEvaluatedKey")
            if last is None or (limit is not None and len(refs) >= limit):
                return refs
            params["ExclusiveStartKey"] = last
            if limit is not None:
                params["Limit"] = limit - len(refs)
            wave = self.log.wave()

    def _whole_list(self, shard: str, uid: int, length: int, consistent: bool = True) -> list[int]:
        if not length:
            return []
        window = layout.entry_range(shard, 0, length)
        assert window is not None
        return self._query(uid, *window, None, consistent, self.log.wave())

    def get(self, shard: str, uid: int, default: Any = None) -> Any:
        """The value of ``uid`` in ``shard``, or ``default``: one GetItem."""
        validate_shard(shard)
        consistent = self._consistent()
        response = self._call(
            "GetItem",
            self.client.get_item,
            TableName=self.table,
            Key=layout.key(shard, uid),
            ConsistentRead=consistent,
        )
        item = response.get("Item")
        units = read_units([item], consistent=consistent)
        self._record("GetItem", response, self.log.wave(), read_units=units)
        return default if item is None else layout.decode(item)

    def get_many(self, shard: str, uids: Iterable[int]) -> dict[int, Any]:
        """The values of those ``uids`` present in ``shard``: one BatchGetItem per 100 ids, at once."""
        return self.read_level([ValuesRead(shard, list(dict.fromkeys(uids)))])[0]

    def list_count(self, shard: str, uid: int) -> int:
        """The length of the list at ``uid``: one read of its count item."""
        return self.list_count_many(shard, [uid])[uid]

    def list_count_many(self, shard: str, uids: Iterable[int]) -> dict[int, int]:
        """The lengths of several lists (absent lists count 0): their count items, batched."""
        return self.read_level([ListsRead(shard, list(dict.fromkeys(uids)), {})])[0][0]

    def list_page(self, shard: str, uid: int, offset: int = 0, limit: int = 100) -> list[int]:
        """Entries ``offset .. offset+limit`` of the list at ``uid``: one Query."""
        return self.list_page_many(shard, [uid], offset, limit)[uid]

    def list_page_many(
        self, shard: str, uids: Iterable[int], offset: int = 0, limit: int = 100
    ) -> dict[int, list[int]]:
        """The same page of several lists: one Query each, sent at once."""
        window = (offset, limit)
        return self.read_level([ListsRead(shard, [], {window: list(dict.fromkeys(uids))})])[0][1][window]

    def list_window_many(
        self, shard: str, uids: Iterable[int], offset: int = 0, limit: int = 100
    ) -> tuple[dict[int, int], dict[int, list[int]]]:
        """The lengths of several lists and the same page of each: the count items' BatchGetItem
        and one Query per list, all sent at once (one wave)."""
        ids, window = list(dict.fromkeys(uids)), (offset, limit)
        counts, pages = self.read_level([ListsRead(shard, ids, {window: ids})])[0]
        return counts, pages[window]

    def read_level(self, reads: Sequence[ValuesRead | ListsRead]) -> list[Any]:
        """The answers to ``reads`` (of any shards) in one round, every read of this store goes
        through: the values and list lengths of every shard in one BatchGetItem per 100 keys, and
        one Query per list page, all sent at once (one wave). The GraphQL layer hands it a whole
        level of a query (:class:`~efs_sqlite.backend.LevelReader`)."""
        keys: dict[Key, layout.Item] = {}
        pages: dict[tuple[int, str, int, int], None] = {}  # (uid, shard, offset, limit)
        for read in reads:
            validate_shard(read.shard)
            if isinstance(read, ValuesRead):
                keys.update(((u, read.shard), layout.key(read.shard, u)) for u in read.ids)
                continue
            counted = read.shard + layout.COUNT
            keys.update(((u, counted), layout.count_key(read.shard, u)) for u in read.uncounted)
            for (offset, limit), ids in read.windows.items():
                if offset < 0 or limit < 0:
                    raise ValueError("offset and limit must be >= 0")
                pages.update(((u, read.shard, offset, limit), None) for u in ids)
        wave, consistent = self.log.wave(), self._consistent()
        listed = list(keys.values())
        tasks: list[Callable[[], Any]] = [
            lambda c=listed[i : i + MAX_BATCH_GET]: self._get_chunk(c, consistent, wave)
            for i in range(0, len(listed), MAX_BATCH_GET)
        ]
        ranged = [(p, layout.entry_range(p[1], p[2], p[3])) for p in pages]
        queried = [(p, r) for p, r in ranged if r is not None]
        tasks += [lambda p=p, r=r: self._query(p[0], *r, p[3], consistent, wave) for p, r in queried]
        results = self._at_once(tasks) if tasks else []
        found: dict[Key, layout.Item] = {}
        for part in results[: len(results) - len(queried)]:
            found.update(part)
        entries = dict(zip((p for p, _ in queried), results[len(results) - len(queried) :], strict=True))
        answers: list[Any] = []
        for read in reads:
            if isinstance(read, ValuesRead):
                values = ((u, found.get((u, read.shard))) for u in read.ids)
                answers.append({u: layout.decode(item) for u, item in values if item is not None})
                continue
            counted = read.shard + layout.COUNT
            lengths = {
                u: int(found[(u, counted)]["n"]["N"]) if (u, counted) in found else 0 for u in read.uncounted
            }
            windows = {
                (offset, limit): {u: entries.get((u, read.shard, offset, limit), []) for u in ids}
                for (offset, limit), ids in read.windows.items()
            }
            answers.append((lengths, windows))
        return answers

    def _scan(self) -> Iterator[layout.Item]:
        """Every item of the table (maintenance: stats, scan, count), paged; a Scan is charged by
        every item it reads."""
        consistent = self._consistent()
        params: dict[str, Any] = {"TableName": self.table, "ConsistentRead": consistent}
        while True:
            response = self._call("Scan", self.client.scan, **params)
            items = response.get("Items", [])
            units = query_units(items, consistent=consistent)
            self._record("Scan", response, self.log.wave(), items=len(items), read_units=units)
            yield from items
            if "LastEvaluatedKey" not in response:
                return
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def scan(self, shard: str, after: int | None = None, limit: int = 1000) -> list[tuple[int, Any]]:
        """Up to ``limit`` ``(uid, value)`` pairs in id order, starting after ``after``. A shard's
        values lie in every partition: this scans the whole table (maintenance, not queries)."""
        validate_shard(shard)
        rows = sorted(
            (layout.uid_of(item), layout.decode(item))
            for item in self._scan()
            if item["f"]["S"] == shard and (after is None or layout.uid_of(item) > after)
        )
        return rows[:limit]

    def count(self, shard: str) -> int:
        """How many values ``shard`` holds (a scan of the table, as :meth:`scan`)."""
        validate_shard(shard)
        return sum(item["f"]["S"] == shard for item in self._scan())

    def stats(self, integrity: bool = True) -> dict[str, Any]:
        """Values, list entries and bytes (item sizes) per shard, from one scan of the table."""
        shards: dict[str, dict[str, int]] = {}
        for item in self._scan():
            sort_key = item["f"]["S"]
            shard, _, rest = sort_key.partition("#")
            entry = shards.setdefault(shard, {"rows": 0, "refs": 0, "bytes": 0})
            entry["bytes"] += item_size(item)
            if not rest:
                entry["rows"] += 1
            elif rest != layout.COUNT[1:]:
                entry["refs"] += 1
        shards = dict(sorted(shards.items()))
        return {
            "table": self.table,
            "shards": shards,
            "total_rows": sum(s["rows"] for s in shards.values()),
            "total_refs": sum(s["refs"] for s in shards.values()),
            "total_bytes": sum(s["bytes"] for s in shards.values()),
        }

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        """A block of reads: DynamoDB has no snapshot to hold, so it does nothing."""
        yield

    def begin_read(self, shard: str, *, wait: bool = True) -> bool:
        """Nothing to hold (no locks): always True."""
        validate_shard(shard)
        return True

    def end_reads(self) -> None:
        """Nothing is held: nothing to end."""

    def has_shard(self, shard: str) -> bool:
        """A shard is no file here: a delete may always find something."""
        validate_shard(shard)
        return True

    # -- writes ----------------------------------------------------------------------------------

    def _write_one(self, verb: str, shard: str, uid: int, arg: Any = None) -> int:
        batch = WriteBatch()
        batch._add(verb, shard, uid, arg)
        return self._commit(batch)

    def insert(self, shard: str, uid: int, value: Any) -> None:
        """Add a value; :class:`UIDCollision` if ``uid`` holds one (a conditional put)."""
        self._write_one("insert", shard, uid, value)

    def put(self, shard: str, uid: int, value: Any) -> None:
        """Insert or replace a value."""
        self._write_one("put", shard, uid, value)

    def delete(self, shard: str, uid: int) -> bool:
        """Remove ``uid``'s value and list from ``shard``; True if anything was there."""
        return self._write_one("delete", shard, uid) > 0

    def list_extend(self, shard: str, uid: int, refs: Iterable[int]) -> None:
        """Append ``refs`` to the list at ``uid``."""
        self._write_one("list_extend", shard, uid, check_refs(refs))

    def list_remove(self, shard: str, uid: int, refs: Iterable[int]) -> int:
        """Remove every occurrence of ``refs`` from the list at ``uid``; return how many."""
        return self._write_one("list_remove", shard, uid, check_refs(refs))

    @contextlib.contextmanager
    def write(self) -> Iterator[WriteBatch]:
        """Group writes into one TransactWriteItems, applied when the block ends without an
        exception: all of them, or (on any failure) none."""
        batch = WriteBatch()
        yield batch
        if batch.ops:
            self._commit(batch)

    def _commit(self, batch: WriteBatch) -> int:
        """Apply a group's writes: read what they depend on (strongly consistent), work out the
        items (:func:`~efs_sqlite.dynamodb.writes.plan`), send them as one call; return the values
        and entries changed."""
        deadline: Deadline | None = getattr(self._bound, "deadline", None)
        if deadline is not None:
            deadline.check("a write")
        needs = writes.needs(batch.ops)
        held = self._batch_get(needs.keys, consistent=True) if needs.keys else {}
        old = {(s, u): self._whole_list(s, u, writes.length(held, s, u)) for s, u in needs.removing}
        group = writes.plan(self.table, batch.ops, held, old)
        self._send(group.actions)
        return group.changed

    def _send(self, actions: list[writes.Action]) -> None:
        """One PutItem/DeleteItem for one item, else one TransactWriteItems; failed conditions
        become the store's errors."""
        from botocore.exceptions import ClientError

        if not actions:
            return
        self._wrote_now()
        if len(actions) == 1:
            [(verb, params)] = actions[0].request.items()
            operation, method = (
                ("PutItem", self.client.put_item)
                if verb == "Put"
                else ("DeleteItem", self.client.delete_item)
            )
            units = write_units(actions[0].item)
            try:
                response = self._call(operation, method, **params)
            except ClientError as exc:
                self.log.record(Call(operation, write_units=units, wave=self.log.wave()))
                if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                    raise writes.condition_failed(actions[0]) from None
                raise
            self._record(operation, response, self.log.wave(), write_units=units)
            return
        units = sum(write_units(a.item, transactional=True) for a in actions)
        try:
            response = self._call(
                "TransactWriteItems",
                self.client.transact_write_items,
                TransactItems=[a.request for a in actions],
            )
        except ClientError as exc:
            self.log.record(
                Call("TransactWriteItems", items=len(actions), write_units=units, wave=self.log.wave())
            )
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = exc.response.get("CancellationReasons") or []
            for action, reason in zip(actions, reasons, strict=False):
                if reason.get("Code") == "ConditionalCheckFailed":
                    raise writes.condition_failed(action) from None
            raise StoreBusy(f"DynamoDB cancelled the grouped write ({exc}); nothing was written") from None
        self._record("TransactWriteItems", response, self.log.wave(), items=len(actions), write_units=units)

    # -- bulk writes (the loader) -----------------------------------------------------------------

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        """BatchWriteItem of 25 requests at a time, the unprocessed ones sent again (with backoff).
        A delete is charged by its key's size (at least 1 unit: the entries it deletes are small)."""
        if requests:
            self._wrote_now()
        for start in range(0, len(requests), MAX_BATCH_WRITE):
            chunk = requests[start : start + MAX_BATCH_WRITE]
            attempt = 0
            while chunk:
                response = self._call(
                    "BatchWriteItem", self.client.batch_write_item, RequestItems={self.table: chunk}
                )
                left = response.get("UnprocessedItems", {}).get(self.table, [])
                units = sum(_request_units(r) for r in chunk if r not in left)
                self._record("BatchWriteItem", response, self.log.wave(), items=len(chunk), write_units=units)
                chunk = left
                if chunk:
                    attempt += 1
                    self._backoff(attempt, f"{len(chunk)} items")

    def _bulk_items(self, shard: str, uids: list[int], items: list[layout.Item], on_conflict: str) -> int:
        """Write value items (one per row, in row order) by ``on_conflict``; return rows written."""
        if on_conflict not in _ON_CONFLICT:
            raise ValueError(f"on_conflict must be one of {', '.join(_ON_CONFLICT)}, not {on_conflict!r:.40}")
        for uid, item in zip(uids, items, strict=True):
            writes.check_size(item, shard, uid)
        if on_conflict == "replace":
            last = dict(zip(uids, items, strict=True))  # of two rows of one id the later wins
            chosen = list(last.values())
        else:
            found = self._batch_get([layout.key(shard, u) for u in dict.fromkeys(uids)], consistent=True)
            held = {uid: item for (uid, _), item in found.items()}
            first: dict[int, int] = {}
            chosen = []
            for n, (uid, item) in enumerate(zip(uids, items, strict=True)):
                there = held.get(uid)
                if there is None and uid in first:
                    there = items[first[uid]]
                if there is None:
                    first[uid] = n
                    chosen.append(item)
                elif on_conflict == "error":
                    raise UIDCollision(shard, uid)
                elif on_conflict == "skip_equal" and _value(there) != _value(item):
                    raise UIDCollision(
                        shard, uid, row=n, held=layout.decode(there), value=layout.decode(item)
                    )
        self._batch_write([{"PutRequest": {"Item": item}} for item in chosen])
        return len(chosen)

    def bulk_insert(self, shard: str, rows: Iterable[tuple[int, Any]], *, on_conflict: str = "error") -> int:
        """Insert many ``(uid, value)`` rows (see :meth:`~efs_sqlite.store.ShardStore.bulk_insert`:
        the same ``on_conflict`` rules); every row is checked before anything is written, but the
        writes are BatchWriteItems, not one transaction."""
        validate_shard(shard)
        pairs = list(rows)
        uids = check_refs(uid for uid, _ in pairs)
        items = [layout.value_item(shard, uid, value) for uid, (_, value) in zip(uids, pairs, strict=True)]
        return self._bulk_items(shard, uids, items, on_conflict)

    def bulk_insert_stored(
        self,
        shard: str,
        kind: str,
        uids: Sequence[int],
        values: Sequence[Any],
        *,
        on_conflict: str = "error",
    ) -> int:
        """:meth:`bulk_insert` of a column of ids and a column of values in the stored form of
        ``kind`` (see :meth:`~efs_sqlite.store.ShardStore.bulk_insert_stored`)."""
        validate_shard(shard)
        if kind not in STORED_KINDS:
            raise ValueError(f"kind must be one of {', '.join(STORED_KINDS)}, not {kind!r:.40}")
        form = KIND_OF[kind].stored
        assert form is not None
        ids = check_refs(uids)
        values = list(values)
        if len(ids) != len(values):
            raise ValueError(f"{len(ids)} ids but {len(values)} values")
        items = []
        for uid, value in zip(ids, values, strict=True):
            if value is not None and not form.fits(value):
                raise TypeError(f"a stored {kind} value is {form.form} or None, not {value!r:.60}")
            item = layout.key(shard, uid)
            item["v"] = layout.attribute(value)
            if value is not None and form.tag != PLAIN:
                item["k"] = {"N": str(form.tag)}
            items.append(item)
        return self._bulk_items(shard, ids, items, on_conflict)

    def bulk_lists(
        self,
        shard: str,
        rows: Iterable[tuple[int, Sequence[int]]],
        *,
        on_conflict: Literal["replace", "skip_equal"] = "replace",
    ) -> int:
        """Set whole reference lists (see :meth:`~efs_sqlite.store.ShardStore.bulk_lists`: the same
        rules); return lists written."""
        validate_shard(shard)
        if on_conflict not in ("replace", "skip_equal"):
            raise ValueError(f"on_conflict must be replace or skip_equal, not {on_conflict!r:.40}")
        pairs = [(uid, check_refs(refs)) for uid, refs in rows]
        uids = check_refs(uid for uid, _ in pairs)
        row_of = dict(zip(uids, range(len(uids)), strict=True))  # an id's last row
        if on_conflict == "skip_equal":
            first: dict[int, int] = {}
            for n, uid in enumerate(uids):
                k = first.setdefault(uid, n)
                if pairs[k][1] != pairs[n][1]:
                    raise UIDCollision(shard, uid, row=n, held=pairs[k][1], value=pairs[n][1])
        found = self._batch_get([layout.count_key(shard, u) for u in row_of], consistent=True)
        lengths = {uid: int(item["n"]["N"]) for (uid, _), item in found.items()}
        if on_conflict == "skip_equal":
            for uid in [u for u in row_of if lengths.get(u)]:
                n = row_of[uid]
                there = self._whole_list(shard, uid, lengths[uid])
                if there != pairs[n][1]:
                    raise UIDCollision(shard, uid, row=n, held=there, value=pairs[n][1])
                del row_of[uid]
        requests: list[dict[str, Any]] = []
        for uid, n in row_of.items():
            refs = pairs[n][1]
            requests += [
                {"PutRequest": {"Item": layout.entry_item(shard, uid, p, r)}} for p, r in enumerate(refs)
            ]
            old = range(len(refs), lengths.get(uid, 0))
            requests += [{"DeleteRequest": {"Key": layout.entry_key(shard, uid, p)}} for p in old]
            if refs:
                requests.append({"PutRequest": {"Item": layout.count_item(shard, uid, len(refs))}})
            elif lengths.get(uid):
                requests.append({"DeleteRequest": {"Key": layout.count_key(shard, uid)}})
        self._batch_write(requests)
        return len(row_of)

    # -- the rest ----------------------------------------------------------------------------------

    def close_thread(self) -> None:
        """Nothing per thread to close (one client, shared)."""

    def close(self) -> None:
        """Stop the store's reader threads (the client needs no closing)."""
        self._pool.shutdown(wait=True)


def _request_units(request: dict[str, Any]) -> float:
    put = request.get("PutRequest")
    return write_units(put["Item"] if put is not None else request["DeleteRequest"]["Key"])


def _value(item: layout.Item) -> tuple[Any, Any]:
    return item["v"], item.get("k")


_clients_lock = threading.Lock()


def make_client(
    endpoint_url: str | None,
    region_name: str | None,
    max_workers: int = 16,
    *,
    credentials: tuple[str, str] | None = None,
    max_attempts: int = 5,
) -> Any:
    """A DynamoDB client (botocore's standard retries, a connection per reader thread); a clear
    :class:`StoreError` when it could not sign a request (no credentials, and no endpoint given)
    or has no region. ``credentials`` (a key id and secret) replace the environment's;
    ``max_attempts`` bounds botocore's attempts at a throttled call."""
    import boto3
    from botocore.config import Config

    keys = (
        {"aws_access_key_id": credentials[0], "aws_secret_access_key": credentials[1]} if credentials else {}
    )
    with _clients_lock:  # making sessions is not thread-safe in boto3
        session = boto3.session.Session(region_name=region_name, **keys)
    if session.region_name is None:
        raise StoreError("DynamoDB needs a region: pass --region (region_name=) or set AWS_DEFAULT_REGION")
    if not keys and session.get_credentials() is None:
        if endpoint_url is None:
            raise StoreError(
                "DynamoDB needs AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID ..., or a role), or an "
                "endpoint to talk to instead: --endpoint-url (endpoint_url=), e.g. a local moto server"
            )
        # An endpoint of one's own (moto, DynamoDB Local) checks no signature: sign with placeholders.
        session = boto3.session.Session(
            region_name=session.region_name, aws_access_key_id="local", aws_secret_access_key="local"
        )
    config = Config(
        retries={"mode": "standard", "max_attempts": max_attempts}, max_pool_connections=max_workers
    )
    return session.client("dynamodb", endpoint_url=endpoint_url, config=config)
