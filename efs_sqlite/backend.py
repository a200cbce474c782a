"""The interface every store backend implements: what the GraphQL layer, the node operations and
the loader ask of a store.

:class:`~efs_sqlite.store.ShardStore` (SQLite shards on a file system) and
:class:`~efs_sqlite.dynamodb.DynamoStore` (one DynamoDB table) implement it, so
:class:`~efs_sqlite.graphql.GraphQLAPI`, :func:`~efs_sqlite.app.create_app`, the Lambda handler,
:class:`~efs_sqlite.graph.Graph` and :func:`~efs_sqlite.loader.load` run unchanged on either.

A store is addressed by ``(shard, uid)``: a shard is a field (``<type>_<field>``, or ``_type``),
a uid a signed 64-bit node id. Under a ``(shard, uid)`` a store keeps one value and one list of
references, whose positions are dense (``0 .. n-1``).

Two capabilities say how a store is read, so the GraphQL layer pays for neither where it does not
help:

- ``parallel_reads``: the reads of one level of a query are worth making at once (each waits on
  the network: EFS, the EFS model, DynamoDB), one reader thread per shard;
- ``read_locks``: :meth:`StoreBackend.begin_read` takes a lock worth taking ahead of a query of
  several levels (SQLite's read transactions). A store without locks (DynamoDB) answers
  ``begin_read`` with True and holds nothing, ``end_reads`` and :meth:`StoreBackend.read` do
  nothing, and the GraphQL layer does not lock ahead on it.

A store whose reads of several shards cost one call (DynamoDB: the keys of every shard go into one
BatchGetItem) also implements :class:`LevelReader`: the GraphQL layer then hands it all the reads
of a level at once (:class:`ValuesRead`, :class:`ListsRead`) instead of one read per shard.

>>> import tempfile
>>> from efs_sqlite.store import ShardStore
>>> store: StoreBackend = ShardStore(tempfile.mkdtemp())
>>> isinstance(store, StoreBackend), store.read_locks
(True, True)
>>> store.close()
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, runtime_checkable

if TYPE_CHECKING:
    from efs_sqlite.deadline import Deadline
    from efs_sqlite.lock_quota import LockQuota

__all__ = ["BatchWriter", "LevelReader", "ListsRead", "StoreBackend", "ValuesRead"]

OnConflict = Literal["error", "replace", "ignore", "skip_equal"]


class BatchWriter(Protocol):
    """What a :meth:`StoreBackend.write` block collects: writes committed together, all or none."""

    def insert(self, shard: str, uid: int, value: Any) -> None: ...
    def put(self, shard: str, uid: int, value: Any) -> None: ...
    def delete(self, shard: str, uid: int) -> None: ...
    def list_extend(self, shard: str, uid: int, refs: Iterable[int]) -> None: ...
    def list_remove(self, shard: str, uid: int, refs: Iterable[int]) -> None: ...
    def list_set(self, shard: str, uid: int, refs: Iterable[int]) -> None: ...


@runtime_checkable
class StoreBackend(Protocol):
    """A store of field values and reference lists by ``(shard, uid)`` (see the module)."""

    @property
    def parallel_reads(self) -> bool:
        """Whether a level's reads are worth making at once, one thread per shard."""
        ...

    #: The file-lock quotas the store's locks count against (None: a store that takes no locks).
    lock_quota: LockQuota | None

    @property
    def read_locks(self) -> bool:
        """Whether :meth:`begin_read` takes a lock worth taking ahead of a query's levels."""
        ...

    # -- reads -----------------------------------------------------------------------------------

    def get(self, shard: str, uid: int, default: Any = None) -> Any: ...
    def get_many(self, shard: str, uids: Iterable[int]) -> dict[int, Any]: ...
    def scan(self, shard: str, after: int | None = None, limit: int = 1000) -> list[tuple[int, Any]]: ...
    def count(self, shard: str) -> int: ...
    def list_count(self, shard: str, uid: int) -> int: ...
    def list_count_many(self, shard: str, uids: Iterable[int]) -> dict[int, int]: ...
    def list_page(self, shard: str, uid: int, offset: int = 0, limit: int = 100) -> list[int]: ...
    def list_page_many(
        self, shard: str, uids: Iterable[int], offset: int = 0, limit: int = 100
    ) -> dict[int, list[int]]: ...
    def list_window_many(
        self, shard: str, uids: Iterable[int], offset: int = 0, limit: int = 100
    ) -> tuple[dict[int, int], dict[int, list[int]]]: ...

    def read(self) -> AbstractContextManager[None]:
        """A block whose reads share one snapshot and lock cycle where the store has them."""
        ...

    def begin_read(self, shard: str, *, wait: bool = True) -> bool:
        """Hold a read of ``shard`` on this thread until :meth:`end_reads`; False if busy."""
        ...

    def end_reads(self) -> None: ...

    def within(self, deadline: Deadline | None) -> AbstractContextManager[None]:
        """Bound this thread's waits in the block by ``deadline``; no write begins after it."""
        ...

    # -- writes ----------------------------------------------------------------------------------

    def insert(self, shard: str, uid: int, value: Any) -> None:
        """Add a value; :class:`~efs_sqlite.errors.UIDCollision` if ``uid`` holds one already."""
        ...

    def put(self, shard: str, uid: int, value: Any) -> None: ...
    def delete(self, shard: str, uid: int) -> bool: ...
    def list_extend(self, shard: str, uid: int, refs: Iterable[int]) -> None: ...
    def list_remove(self, shard: str, uid: int, refs: Iterable[int]) -> int: ...

    def write(self) -> AbstractContextManager[BatchWriter]:
        """Group writes to any number of shards into one atomic commit."""
        ...

    def has_shard(self, shard: str) -> bool:
        """Whether writing a delete to ``shard`` may find anything (a store of files says whether
        the shard's file exists, so a delete never creates one)."""
        ...

    # -- bulk loads (the loader) -----------------------------------------------------------------

    def bulk_insert(
        self, shard: str, rows: Iterable[tuple[int, Any]], *, on_conflict: OnConflict = "error"
    ) -> int: ...
    def bulk_insert_stored(
        self,
        shard: str,
        kind: str,
        uids: Sequence[int],
        values: Sequence[Any],
        *,
        on_conflict: OnConflict = "error",
    ) -> int: ...
    def bulk_lists(
        self,
        shard: str,
        rows: Iterable[tuple[int, Sequence[int]]],
        *,
        on_conflict: Literal["replace", "skip_equal"] = "replace",
    ) -> int: ...

    # -- the rest ----------------------------------------------------------------------------------

    def healthy(self) -> bool:
        """Whether the store is reachable (the app's ``/healthz``)."""
        ...

    def stats(self, integrity: bool = True) -> dict[str, Any]: ...
    def close_thread(self) -> None: ...
    def close(self) -> None: ...


class ValuesRead(NamedTuple):
    """The values of ``ids`` in ``shard``: answered as :meth:`StoreBackend.get_many` answers."""

    shard: str
    ids: list[int]


class ListsRead(NamedTuple):
    """The lengths of the ``uncounted`` lists of ``shard`` and, per ``(offset, limit)`` window, the
    pages of the lists of its ids: answered ``(lengths, {window: {uid: page}})``."""

    shard: str
    uncounted: list[int]
    windows: dict[tuple[int, int], list[int]]


@runtime_checkable
class LevelReader(Protocol):
    """A store that reads several shards in one round (see the module)."""

    def read_level(self, reads: Sequence[ValuesRead | ListsRead]) -> list[Any]:
        """The answers to ``reads``, in order, read at once."""
        ...
