"""The caches of one request, filled level by level, and the reader lanes that fill them.

Reads are batched per shard and cached for the request. The resolver of a root field looks ahead
at its whole selection (its :class:`~efs_sqlite.graphql.plans.Plan`) and reads it level by level
(:meth:`Request.prefetch`): for all the nodes of one level, one ``get_many`` per shard of the
fields selected and one read per reference-list shard for the pages asked for, whose entries make
the next level. Every resolver then answers from the request's cache (reading on a miss, so an
answer never depends on the lookahead being complete). This is the DataLoader pattern with the
batch boundary at a level of the tree instead of a tick of an event loop: each shard is read once
per level however the nodes are spread over the response, and execution stays synchronous, which
took about 30% less CPU for the benchmark request than graphql-core's asynchronous execution with
a DataLoader per shard (and needs no event loop, so it runs as is in a notebook cell).

``parallel_reads``: the reads of one level do not depend on each other, so on a network file
system, where each costs a few round trips, they are made at once, one thread per shard (each
thread keeps its own warm connection to its shard); apsw releases the GIL while SQLite waits, so
the waits overlap and a level costs its slowest shard instead of the sum. The lists of a level are
read for all its ids together with their values, and the ids of nodes that turn out not to exist
are dropped afterwards, so that a level stays one round. Results are merged into the request's
caches on the request's own thread. A request has a :class:`Lane` of these threads to itself
while it reads (concurrent requests get lanes of their own; a warm Lambda, one request at a time,
keeps one).

A store that reads several shards in one round (a :class:`~efs_sqlite.backend.LevelReader`:
DynamoDB, whose BatchGetItem takes keys of every field) is handed all the reads of a level at once
instead, values, list lengths and pages together; it has no locks to take ahead (its
``read_locks`` is False).

On EFS most of a warm read's round trips are its lock cycle (7 of 8: taking the SHARED lock with
its probes and the change-counter read, then 1 to let go), not data, which SQLite's page cache
keeps. So a query of several levels *locks ahead*: the plan alone names every shard it may read at
any depth, and before reading anything each of those shards' threads begins a read transaction,
all at once; every level then reads inside them (warm pages cost no round trip) and they all
commit at once at the end. The benchmark request (two dependent levels) then waits for one lock
cycle, about 8 ms modelled on Elastic, instead of one per level (16 ms), each shard is locked once
per request even when two levels read it, and the request sees one snapshot of all its shards. A
request never waits for a lock while it holds one (a grouped writer holding that shard may be
waiting for one this request holds): the locks ahead are taken without waiting, and if any is
busy, every one is let go and the query reads level by level as above. A query of one level
reads without locking ahead (it would save nothing).

A node is taken to exist, as a ``T``, when the required fields of ``T`` that the selection reads are
present (each shard holds the values of one type only, and a node is written and deleted whole);
the ``_type`` shard is read only when the selection has no required field, for ``node(id:)``, or to
explain a failed lookup. A reference to a deleted node reads as ``null`` with an error.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import partial
from typing import Any, NamedTuple

from graphql import GraphQLError, GraphQLResolveInfo

from efs_sqlite.backend import ListsRead, StoreBackend, ValuesRead
from efs_sqlite.deadline import Deadline
from efs_sqlite.graph import Graph
from efs_sqlite.graphql.documents import Prepared
from efs_sqlite.graphql.limits import Limits
from efs_sqlite.graphql.objects import (
    Connection,
    Dangling,
    Missing,
    NodeRef,
    PageConnection,
    PageEdge,
    dangling_error,
    parse_id,
)
from efs_sqlite.graphql.paging import NO_ROWS, offsets, page_layout, window
from efs_sqlite.graphql.plans import Batch, ListShape, Plan, Selection
from efs_sqlite.graphql.receipts import Pending
from efs_sqlite.model import TYPE_SHARD

__all__ = ["Lane", "Lanes", "Page", "Request"]

log = logging.getLogger(__name__)

#: A window of one list in a request's list cache: ``(uid, offset, limit)``.
ListKey = tuple[int, int, int]
#: What :func:`fetch_lists` returns: the lengths read, and per window the pages read.
Lists = tuple[dict[int, int], dict[tuple[int, int], dict[int, list[int]]]]


class Page(NamedTuple):
    connection: PageConnection  # each edge's node its offset until Request.fill_page fills it in
    ids: list[int]  # the node ids of the edges (empty when no node is selected)


class _Read(NamedTuple):
    """Reads of one shard: ``fetch`` runs them (on any thread), ``merge`` files their result in
    the request's caches (on the request's thread); ``request`` says what they are, for a store
    that reads a whole level at once (a :class:`~efs_sqlite.backend.LevelReader`)."""

    shard: str
    fetch: Callable[[], Any]
    merge: Callable[[Any], None]
    request: ValuesRead | ListsRead


class _Work(NamedTuple):
    """A :class:`~efs_sqlite.graphql.plans.Batch` of a level with its selection worked out."""

    type_name: str
    ids: list[int]
    selection: Selection


def _merge_values(cache: dict[int, Any], ids: list[int], found: dict[int, Any]) -> None:
    if len(found) < len(ids):
        cache.update(dict.fromkeys(ids))  # the ids not found: None
    cache.update(found)


def _within(store: StoreBackend, deadline: Deadline, call: Callable[[], Any]) -> Any:
    """``call()`` with this thread's store calls bounded by ``deadline``."""
    with store.within(deadline):
        return call()


def fetch_lists(
    store: StoreBackend, shard: str, uncounted: list[int], windows: dict[tuple[int, int], list[int]]
) -> Lists:
    """The lengths of the ``uncounted`` lists and the ``(offset, limit)`` windows of lists, from
    one snapshot: one statement when one window is read of lists not counted yet (a level's
    usual case), else one statement each, in one read transaction."""
    if len(windows) == 1:
        [(rows, group)] = windows.items()
        if uncounted and set(uncounted) <= set(group):
            counts, pages = store.list_window_many(shard, group, *rows)
            return {uid: counts[uid] for uid in uncounted}, {rows: pages}
    with store.read() if bool(uncounted) + len(windows) > 1 else contextlib.nullcontext():
        counts = store.list_count_many(shard, uncounted) if uncounted else {}
        pages = {rows: store.list_page_many(shard, group, *rows) for rows, group in windows.items()}
    return counts, pages


class Lane:
    """Reader threads of ``parallel_reads``, one per shard, each keeping its own connection to
    its shard warm. One request uses a lane at a time, so none of its reads ever queues behind
    another request's read (which may be waiting for a lock) while it holds locks of its own."""

    __slots__ = ("generation", "name", "readers")

    def __init__(self, name: str, generation: int) -> None:
        self.name, self.generation = name, generation
        self.readers: dict[str, ThreadPoolExecutor] = {}

    def reader(self, shard: str) -> ThreadPoolExecutor:
        """The thread that reads ``shard`` in this lane (started on first use, then kept)."""
        reader = self.readers.get(shard)
        if reader is None:
            reader = self.readers[shard] = ThreadPoolExecutor(1, f"{self.name}-{shard}")
        return reader

    def shutdown(self, wait: bool = True) -> None:
        for reader in self.readers.values():
            reader.shutdown(wait=wait)


class Lanes:
    """The lanes of one API: ``len()`` is the number idle, kept warm for the next requests.

    >>> lanes = Lanes()
    >>> with lanes.lane() as lane:
    ...     lane.reader("claim_parties").submit(sum, [1, 2]).result()
    3
    >>> len(lanes), lanes.close(), len(lanes)
    (1, None, 0)
    """

    def __init__(self) -> None:
        self._idle: list[Lane] = []  # the last used last
        self._count = 0
        self._generation = 0  # close() and a fork start a new one
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._idle)

    @contextlib.contextmanager
    def lane(self) -> Iterator[Lane]:
        """A lane of reader threads, this request's alone until the block ends: the idle lane
        used last (its threads' connections are warm), else a new one. A warm Lambda, one
        request at a time, so keeps one lane, one thread per shard."""
        with self._lock:
            if self._pid != os.getpid():  # a forked child has none of its parent's threads
                self._idle, self._pid = [], os.getpid()
                self._generation += 1
            if self._idle:
                lane = self._idle.pop()
            else:
                lane = Lane(f"efs-sqlite-read{self._count or ''}", self._generation)
                self._count += 1
        try:
            yield lane
        finally:
            with self._lock:
                keep = lane.generation == self._generation and self._pid == os.getpid()
                if keep:
                    self._idle.append(lane)
            if not keep:
                lane.shutdown(wait=False)

    def close(self) -> None:
        """Stop the idle lanes' threads; a lane in use stops its own when its request ends."""
        with self._lock:
            lanes, self._idle = self._idle, []
            self._generation += 1
        for lane in lanes:
            lane.shutdown()


class Request:
    """The caches of one request (the resolvers' context): values, list lengths and list pages
    read, by shard; connections built. Also the request's node budget, its ``plan`` (set by the
    execution, before any resolver runs, from the ``prepared`` document: the lookahead it shares
    with the other requests of the same document and variables) and, during a prefetch with
    ``parallel_reads`` (``lanes`` given), its reader threads (``lane``) and the shards whose read
    transactions they hold (``held``: see :meth:`prefetch`).

    When the compiled execution gives up and graphql-core runs the operation again, the prefetches
    that were made are not made again (``prefetched``), and an error of the store that made it give
    up is raised again by the first read that is not in the caches (``replay``): the read that
    failed. So graphql-core reports that failure where it happened, once, instead of a retry
    quietly answering (or, for a busy shard, waiting for it a second time).

    ``deadline`` bounds the waits of the reads made on reader threads too (the request's own
    thread is bounded by the API); ``written`` says a mutation field committed."""

    __slots__ = (
        "answers",
        "budget",
        "client_ids",
        "counts",
        "deadline",
        "existing",
        "graph",
        "held",
        "lane",
        "lanes",
        "level_reader",
        "limits",
        "lists",
        "pages",
        "plan",
        "prefetched",
        "prepared",
        "replay",
        "store",
        "values",
        "written",
    )

    plan: Plan

    def __init__(
        self,
        store: StoreBackend,
        graph: Graph,
        limits: Limits,
        prepared: Prepared,
        lanes: Lanes | None,
        deadline: Deadline | None = None,
    ) -> None:
        self.store, self.graph, self.limits = store, graph, limits
        # A LevelReader's method, looked up by name: a Protocol check would cost every request.
        self.level_reader: Callable[[list[ValuesRead | ListsRead]], list[Any]] | None = getattr(
            store, "read_level", None
        )
        self.prepared, self.lanes, self.deadline = prepared, lanes, deadline
        self.written = False  # a mutation field committed
        self.budget = limits.max_nodes
        self.values: dict[str, dict[int, Any]] = {}
        self.lists: dict[str, dict[ListKey, list[int]]] = {}
        self.counts: dict[str, dict[int, int]] = {}
        self.pages: dict[tuple[Any, ...], Page] = {}
        self.lane: Lane | None = None
        self.held: set[str] | None = None
        self.prefetched: set[tuple[Any, ...]] = set()
        self.existing: dict[tuple[str, int], set[int]] = {}  # (type, id(selection)): nodes found
        self.replay: BaseException | None = None
        self.client_ids: dict[str, str] = {}  # response key -> the clientMutationId its mutation took
        self.answers: dict[str, Pending] = {}  # response key -> the receipt waiting for its answer

    def _replay(self) -> None:
        if self.replay is not None:
            error, self.replay = self.replay, None
            raise error

    # -- reads, cached ----------------------------------------------------------------------------

    def _values_read(self, shard: str, ids: Iterable[int]) -> _Read | None:
        """The read of the values of ``ids`` not read yet from ``shard`` (one ``get_many``)."""
        cache = self.values.setdefault(shard, {})
        missing = [uid for uid in dict.fromkeys(ids) if uid not in cache]
        if not missing:
            return None
        return _Read(
            shard,
            partial(self.store.get_many, shard, missing),
            partial(_merge_values, cache, missing),
            ValuesRead(shard, missing),
        )

    def _lists_read(self, shard: str, keys: Iterable[ListKey]) -> _Read | None:
        """The read of the ``(uid, offset, limit)`` windows of lists not read yet from ``shard``,
        and of the lengths not known yet: one count and one page read per window size."""
        cache, counts = self.lists.setdefault(shard, {}), self.counts.setdefault(shard, {})
        missing = [k for k in dict.fromkeys(keys) if k not in cache]
        if not missing:
            return None
        uncounted = list(dict.fromkeys(uid for uid, _, _ in missing if uid not in counts))
        windows: dict[tuple[int, int], list[int]] = {}
        for uid, offset, limit in missing:
            if limit:
                windows.setdefault((offset, limit), []).append(uid)
            else:
                cache[(uid, offset, limit)] = []  # only the length is asked for
        return _Read(
            shard,
            partial(fetch_lists, self.store, shard, uncounted, windows),
            partial(self._merge_lists, shard),
            ListsRead(shard, uncounted, windows),
        )

    def _merge_lists(self, shard: str, result: Lists) -> None:
        counts, pages = result
        self.counts[shard].update(counts)
        cache = self.lists[shard]
        for (offset, limit), found in pages.items():
            for uid, page in found.items():
                cache[(uid, offset, limit)] = page

    def _run(self, reads: Iterable[_Read | None]) -> None:
        """Make ``reads`` (of distinct shards) and keep their results: at once, one thread per
        shard, with ``parallel_reads``; else one after another. Inside a lock-ahead every read
        runs on the thread that holds its shard's read transaction (even a single one)."""
        todo = [r for r in reads if r is not None]
        if todo and self.replay is not None:
            self._replay()
        if self.level_reader is not None and todo:  # the store reads them all in one round
            for r, result in zip(todo, self.level_reader([r.request for r in todo]), strict=True):
                r.merge(result)
            return
        if self.held is not None and todo:
            if all(r.shard in self.held for r in todo):
                assert self.lane is not None
                self._on_readers(self.lane, todo)
                return
            # A shard the plan did not foresee: a writer may hold it while it waits for one held
            # here, so let go of every lock before reading it (and read on as without lock-ahead).
            self._release()
        if len(todo) > 1 and self.lanes is not None:
            if self.lane is not None:
                self._on_readers(self.lane, todo)
            else:
                with self.lanes.lane() as lane:
                    self._on_readers(lane, todo)
            return
        for r in todo:
            r.merge(r.fetch())

    def _on_reader(self, lane: Lane, shard: str, call: Callable[[], Any]) -> Future[Any]:
        """``call`` submitted to the reader thread of ``shard``, under the request's deadline."""
        if self.deadline is None:
            return lane.reader(shard).submit(call)
        return lane.reader(shard).submit(_within, self.store, self.deadline, call)

    def _on_readers(self, lane: Lane, todo: list[_Read]) -> None:
        """Run ``todo`` at once on the reader threads of their shards; merge here."""
        futures = [self._on_reader(lane, r.shard, r.fetch) for r in todo]
        wait(futures)  # every read has ended before an error surfaces: none outlives the request
        for r, future in zip(todo, futures, strict=True):
            r.merge(future.result())

    def read(self, shard: str, ids: Iterable[int]) -> None:
        """Read the values of ``ids`` not read yet from ``shard``: one ``get_many``."""
        self._run([self._values_read(shard, ids)])

    def value(self, shard: str, uid: int) -> Any:
        try:
            return self.values[shard][uid]
        except KeyError:
            self.read(shard, [uid])
            return self.values[shard][uid]

    def read_lists(self, shard: str, keys: Iterable[ListKey]) -> None:
        """Read the ``(uid, offset, limit)`` windows of lists not read yet from ``shard``, and the
        lengths not known yet: one count and one page read per window size, from one snapshot."""
        self._run([self._lists_read(shard, keys)])

    def list_window(self, shard: str, key: ListKey) -> tuple[int, list[int]]:
        """The length of the list at ``key[0]`` and the window ``key``."""
        cache = self.lists.get(shard)
        if cache is None or key not in cache:
            self.read_lists(shard, [key])
        return self.counts[shard][key[0]], self.lists[shard][key]

    def exists(self, type_name: str, uid: int, selection: Selection) -> bool:
        """Whether ``uid`` is a ``type_name`` node: its selected required fields are present, or
        else the ``_type`` shard says so."""
        if selection.required:
            values = self.values
            try:  # from the cache, without a call per field: this runs for every node
                return None not in [values[shard][uid] for shard in selection.required]
            except KeyError:
                return all(self.value(shard, uid) is not None for shard in selection.required)
        return self.value(TYPE_SHARD, uid) == type_name

    def _existing(self, type_name: str, ids: list[int], selection: Selection) -> list[int]:
        """Those of ``ids`` that are ``type_name`` nodes (:meth:`exists` for each, one pass per
        shard instead of a call per node)."""
        try:
            for shard in selection.required:
                values = self.values[shard]
                ids = [u for u in ids if values[u] is not None]
        except KeyError:  # not all read: one by one (exists reads what it lacks)
            pass
        else:
            if selection.required:
                return ids
        return [u for u in ids if self.exists(type_name, u, selection)]

    def page(
        self,
        shard: str,
        uid: int,
        args: dict[str, Any],
        connection_type: type[Connection],
        with_ids: bool,
        with_edges: bool = True,
    ) -> Page:
        """The page of the list at ``uid`` that ``args`` ask for (built once per request);
        without ``with_edges``, only its ``totalCount``."""
        arguments = tuple(sorted(args.items()))
        key = (shard, uid, connection_type, with_ids, with_edges, arguments)
        page = self.pages.get(key)
        if page is not None:
            return page
        start, limit = window(args) if with_ids else NO_ROWS
        count, rows = self.list_window(shard, (uid, start, limit))
        if not with_edges:  # the offsets and cursors of a page nobody reads are not worked out
            page = self.pages[key] = Page(PageConnection([], None, count), [])
            return page
        layout, page_info = page_layout(count, arguments)
        connection = PageConnection([PageEdge(offset, cursor) for offset, cursor in layout], page_info, count)
        ids: list[int] = []
        if with_ids and connection.edges:
            lo, hi = connection.edges[0].node, connection.edges[-1].node + 1
            if start <= lo and hi <= start + len(rows):
                ids = rows[lo - start : hi - start]
            else:  # the guess missed (``last`` without ``before``): read the exact window
                ids = self.list_window(shard, (uid, lo, hi - lo))[1]
                connection.edges = connection.edges[: len(ids)]  # the list shrank meanwhile
        page = self.pages[key] = Page(connection, ids)
        return page

    def fill_page(
        self,
        shard: str,
        target: str,
        connection_type: type[Connection],
        root: NodeRef,
        args: dict[str, Any],
        shape: ListShape,
    ) -> PageConnection:
        """The page of ``root``'s list in ``shard`` that the checked ``args`` ask for, each edge's
        node a :class:`NodeRef`, or :class:`Dangling` if it no longer exists."""
        page = self.page(shard, root.id, args, connection_type, bool(shape.node_nodes), shape.edges)
        if shape.selection is not None:
            exists, selection = self.exists, shape.selection
            known = self.existing.get((target, id(selection)), ())  # found by the prefetch
            for edge, uid in zip(page.connection.edges, page.ids, strict=True):
                found = uid in known or exists(target, uid, selection)
                edge.node = NodeRef(uid, target) if found else Dangling(uid)
        return page.connection

    def entries(self, shard: str, uid: int) -> list[int] | None:
        """Every entry of the list at ``uid``, or ``None`` if it has more than ``Limits.max_list``."""
        count, rows = self.list_window(shard, (uid, 0, self.limits.max_list))
        return rows if count <= self.limits.max_list else None

    def fill_list(self, shard: str, target: str, name: str, root: NodeRef, selection: Selection) -> list[Any]:
        """Every entry of ``root``'s plain list ``name`` (``Type.field``) in ``shard``, each a
        :class:`NodeRef`, or the error of a node that no longer exists (graphql-core reports it at
        that entry, which becomes null). A list longer than ``Limits.max_list`` is an error naming
        the connection that pages through it: a plain list is never cut short."""
        ids = self.entries(shard, root.id)
        if ids is None:
            count = self.counts[shard][root.id]
            raise GraphQLError(
                f"{name} has {count} entries, more than the {self.limits.max_list} a plain list returns; "
                f"page through {name.split('.')[1]}Connection(first:, after:) instead"
            )
        exists, known = self.exists, self.existing.get((target, id(selection)), ())
        return [
            NodeRef(uid, target) if uid in known or exists(target, uid, selection) else dangling_error(uid)
            for uid in ids
        ]

    def write(self, change: Callable[[Graph], Any]) -> Any:
        """Run a change through the Graph, then forget everything read so far in this request."""
        result = change(self.graph)
        self.written = True
        for cache in (self.values, self.lists, self.counts, self.pages, self.existing, self.prefetched):
            cache.clear()
        return result

    # -- prefetch ---------------------------------------------------------------------------------

    def prefetch(self, info: GraphQLResolveInfo, level: list[Batch]) -> None:
        """Read what the selections below these batches ask for, level by level: per level, one
        read per shard of values and one per shard of list pages.

        With ``parallel_reads`` the request takes a lane of reader threads for the prefetch and,
        when it reads more than one level, first locks ahead (:meth:`_lock_ahead`): a read
        transaction on every shard the plan says it may read, all at once; every level then reads
        inside them, and they all end, at once, before this returns (also on an error)."""
        key = tuple((b.type_name, tuple(b.ids), *map(id, b.nodes)) for b in level)
        if key in self.prefetched:  # before the compiled execution gave up: all in the caches
            return
        self._replay()
        budget = self.budget
        try:
            self._prefetch(info, level)
        except BaseException:
            self.budget = budget  # graphql-core may run it again: its nodes are not counted twice
            raise
        self.prefetched.add(key)

    def _prefetch(self, info: GraphQLResolveInfo, level: list[Batch]) -> None:
        if self.lanes is None or self.lane is not None:
            self._levels(info, level)
            return
        with self.lanes.lane() as lane:
            self.lane = lane
            try:
                self._lock_ahead(info, level)
                try:
                    self._levels(info, level)
                except BaseException:
                    self._release(quiet=True)  # the first error is the one to report
                    raise
                self._release()
            finally:
                self.lane = None

    def _lock_ahead(self, info: GraphQLResolveInfo, level: list[Batch]) -> None:
        """Begin a read transaction on each shard the plan says the prefetch may read
        (:meth:`~efs_sqlite.graphql.plans.Plan.ahead`), each on its reader thread, all at once:
        one lock cycle per shard for the whole prefetch however many levels read it, and every
        later level's warm pages come from SQLite's page cache, with no round trip.

        Never wait while holding: a grouped writer may hold one shard (PENDING or EXCLUSIVE) while
        it waits for another that this request would hold, a deadlock until a busy timeout. So
        the locks are taken without waiting; if any is busy (or fails), every one is let go and
        the prefetch reads as without lock-ahead, waiting for a lock only while holding none."""
        if not self.store.read_locks:  # nothing to hold (DynamoDB): each level just reads
            return
        shards = self.plan.ahead(info, level)
        if not shards:
            return
        assert self.lane is not None
        lane, store = self.lane, self.store
        futures = [
            self._on_reader(lane, shard, partial(store.begin_read, shard, wait=False)) for shard in shards
        ]
        self.held = set(shards)  # tried: each of these threads ends its reads in _release
        wait(futures)
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors or not all(f.result() for f in futures):
            self._release(quiet=bool(errors))
            if errors:
                raise errors[0]

    def _release(self, quiet: bool = False) -> None:
        """End the lock-ahead's read transactions, all at once on their threads, and wait for
        them: a request never returns while it holds a lock. A failure to end one still ends the
        others (the store closes a connection whose commit failed, which lets go of its lock); it
        is raised, or only logged when ``quiet`` (another error is on its way)."""
        held, self.held = self.held, None
        if not held:
            return
        assert self.lane is not None
        lane, store = self.lane, self.store
        futures = [lane.reader(shard).submit(store.end_reads) for shard in held]
        wait(futures)
        for future in futures:
            error = future.exception()
            if error is not None:
                if not quiet:
                    raise error
                log.warning("ending a lock-ahead read transaction failed", exc_info=error)

    def _levels(self, info: GraphQLResolveInfo, level: list[Batch]) -> None:
        """The reads of :meth:`prefetch`, level by level."""
        while level:
            work = [_Work(b.type_name, b.ids, self.plan.selection(info, b.type_name, b.nodes)) for b in level]
            for w in work:
                self.budget -= len(w.ids)
            if self.budget < 0:
                raise GraphQLError(
                    f"the request reads more than {self.limits.max_nodes} nodes; ask for smaller pages"
                )
            wanted: dict[str, list[int]] = {}
            windows: dict[str, list[ListKey]] = {}
            for w in work:
                for shard in w.selection.reads:
                    wanted[shard] = wanted.get(shard, []) + w.ids
                # Lists too are read for every id: filtering them by the values first would make
                # two rounds of a level.
                for lst in w.selection.lists:
                    start, limit = lst.window
                    windows[lst.shard] = windows.get(lst.shard, []) + [(u, start, limit) for u in w.ids]
            reads = [self._values_read(shard, ids) for shard, ids in wanted.items()]
            reads += [self._lists_read(shard, keys) for shard, keys in windows.items()]
            self._run(reads)
            work = [w._replace(ids=self._existing(w.type_name, w.ids, w.selection)) for w in work]
            if any(w.selection.lists for w in work):
                self._exact_pages(work)
            level = []
            for t, ids, sel in work:
                # fill_page then needs not ask again
                self.existing.setdefault((t, id(sel)), set()).update(ids)
                for ref in sel.refs:
                    targets = [v for v in (self.value(ref.shard, u) for u in ids) if v is not None]
                    if targets:
                        level.append(Batch(ref.target, targets, ref.nodes))
                for lst in sel.lists:
                    if lst.plain:  # a list past max_list reads nothing more: its resolver says why
                        found = [i for u in ids for i in self.entries(lst.shard, u) or ()]
                        if found:
                            level.append(Batch(lst.target, found, lst.nodes))
                    elif lst.nodes:
                        found = [
                            i
                            for u in ids
                            for i in self.page(lst.shard, u, lst.args, lst.connection, True).ids
                        ]
                        if found:
                            level.append(Batch(lst.target, found, lst.nodes))

    def _exact_pages(self, work: list[_Work]) -> None:
        """Read the pages of ``last`` without ``before`` of a level, which needed the lengths
        first: one more read per shard, for all of them."""
        exact: dict[str, list[ListKey]] = {}
        for w in work:
            for lst in w.selection.lists:
                if lst.nodes and lst.window == NO_ROWS:
                    for u in w.ids:
                        page = offsets(self.counts[lst.shard][u], lst.args)
                        if page:
                            exact.setdefault(lst.shard, []).append((u, page[0], len(page)))
        if exact:
            self._run([self._lists_read(shard, keys) for shard, keys in exact.items()])

    # -- root lookups -----------------------------------------------------------------------------

    def lookup(self, info: GraphQLResolveInfo, id: str, type_name: str | None) -> NodeRef:
        """The node with the string ``id`` (of ``type_name`` if given), its selection read."""
        uid = parse_id(id)
        if type_name is None:
            type_name = self.value(TYPE_SHARD, uid)
            if type_name is None:
                raise GraphQLError(f"no node has the id {id}")
        self.prefetch(info, [Batch(type_name, [uid], info.field_nodes)])
        if not self.exists(type_name, uid, self.plan.selection(info, type_name, info.field_nodes)):
            found = self.value(TYPE_SHARD, uid)
            if found is None or found == type_name:
                raise GraphQLError(f"no node has the id {id}")
            raise GraphQLError(f"node {id} is a {found}, not a {type_name}")
        return NodeRef(uid, type_name)

    def lookup_many(self, info: GraphQLResolveInfo, ids: list[str]) -> list[NodeRef | Missing]:
        """The nodes of ``nodes(ids:)``, whatever their types, read together."""
        parsed: list[int | Missing] = []
        for id in ids:
            try:
                parsed.append(parse_id(id))
            except GraphQLError as error:
                parsed.append(Missing(error.message))
        self.read(TYPE_SHARD, [u for u in parsed if isinstance(u, int)])
        by_type: defaultdict[str, list[int]] = defaultdict(list)
        for u in parsed:
            if isinstance(u, int) and self.value(TYPE_SHARD, u) is not None:
                by_type[self.value(TYPE_SHARD, u)].append(u)
        self.prefetch(info, [Batch(t, group, info.field_nodes) for t, group in by_type.items()])
        out: list[NodeRef | Missing] = []
        for id, u in zip(ids, parsed, strict=True):
            if isinstance(u, Missing):
                out.append(u)
            elif (t := self.value(TYPE_SHARD, u)) is None:
                out.append(Missing(f"no node has the id {id}"))
            else:
                out.append(NodeRef(u, t))
        return out
