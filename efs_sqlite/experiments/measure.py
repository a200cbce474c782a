"""Measured cases: a store operation (a :class:`Workload`) run through the EFS model until its
operations repeat exactly, and the row each measured case makes in a table.

One row carries the case's name columns (:func:`case_columns`), the VFS calls by kind
(:data:`OP_KINDS`), the EFS requests by class (:func:`ops_columns`), the modelled latency per
EFS profile and the $ per million of each design (:data:`COST_KEYS`) against DynamoDB
(:func:`case_rows`). Notebook 02's workloads (:mod:`efs_sqlite.experiments.shards`) and the
GraphQL request experiment (:mod:`efs_sqlite.experiments.queries`) both measure this way.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apsw

from efs_sqlite.costs import RequestProfile, cost_per_million, dynamodb_cost
from efs_sqlite.efs_model import FAULT_KINDS, PROFILES, EFSModel, Ops
from efs_sqlite.experiments.latency import range_ms
from efs_sqlite.experiments.tables import Row
from efs_sqlite.nfs_client import LATENCY_CLASSES
from efs_sqlite.store import ShardStore

#: Journal modes the workloads run under (WAL cannot work on EFS: the store refuses it there).
WORKLOAD_JOURNAL_MODES = ("delete", "truncate", "persist")
#: ``normal``: the store as it runs; ``exclusive``: a what-if (see :func:`run_workloads`).
LOCKING = ("normal", "exclusive")
#: Every kind of VFS call the EFS model counts: one ``op_<kind>`` column each.
OP_KINDS = (*FAULT_KINDS, "full_pathname", "file_control", "sector_size", "device_characteristics")
#: The designs :func:`efs_sqlite.costs.cost_per_million` prices: one ``usd_per_million_<key>`` column each.
COST_KEYS = ("efs_elastic", "efs_bursting", "efs_provisioned", "dynamodb")


@dataclass(frozen=True)
class Workload:
    """One named operation to measure, the data it needs, and its DynamoDB equivalent.

    ``prepare(store)`` writes the data (uncounted) and returns what ``run`` needs;
    ``run(store, state, i)`` is the measured operation (repetition ``i``); ``undo(store, state, i)``
    (uncounted) restores what ``run`` changed, so that every repetition starts from the same files.
    ``cold``: each repetition runs on a new store, as the first request of a new Lambda (its
    files are opened). ``dynamodb``: the :class:`~efs_sqlite.costs.RequestProfile` fields of the
    same request in the DynamoDB design; ``atomic``: there it is a TransactWriteItems.
    """

    name: str
    description: str
    prepare: Callable[[ShardStore], Any]
    run: Callable[[ShardStore, Any, int], object]
    undo: Callable[[ShardStore, Any, int], object] | None = None
    cold: bool = False
    dynamodb: Mapping[str, int] = field(default_factory=dict)
    atomic: bool = False


def _hold_locks(vfs: str) -> None:
    """Put every connection open on ``vfs`` in ``locking_mode=EXCLUSIVE``.

    The store has no option for it, so the what-if sets it on the store's own connections
    (without a schema name the pragma covers every attached database too).
    """
    for conn in apsw.connections():
        if conn.open_vfs == vfs:
            conn.execute("PRAGMA locking_mode=EXCLUSIVE").fetchall()


def measure(
    workload: Workload,
    model: EFSModel,
    folder: Path,
    *,
    journal_mode: str,
    locking: str,
    repeats: int,
    open_store: Callable[[], ShardStore] | None = None,
) -> tuple[Ops, list[float]]:
    """The operations of one run of ``workload`` (identical over ``repeats`` runs) and wall times.

    ``open_store`` opens the measured store (default: a :class:`ShardStore` on the model's VFS).
    """
    if workload.cold and locking != "normal":
        raise ValueError(f"{workload.name}: cold workloads run with normal locking only")
    with ShardStore(folder, journal_mode=journal_mode) as plain:  # the data, written without the model
        state = workload.prepare(plain)

    def step(store: ShardStore, i: int) -> None:
        workload.run(store, state, i)
        if workload.undo is not None:
            workload.undo(store, state, i)

    def fresh() -> ShardStore:
        if open_store is not None:
            return open_store()
        return ShardStore(folder, journal_mode=journal_mode, vfs=model.name)

    runs: list[Ops] = []
    walls: list[float] = []
    store = fresh()
    try:
        # Unmeasured: opens the connections, fills SQLite's page cache and leaves the files as
        # every later run finds them (a PERSIST journal, say, is cut to 0 bytes by a grouped commit).
        step(store, -1)
        if not workload.cold and locking == "exclusive":
            _hold_locks(model.name)
            step(store, -1)  # takes the locks it then keeps
            step(store, -1)  # no lock drops the client's cache now: it fills once more
        for i in range(repeats):
            if workload.cold:
                store.close()
                model.new_process()  # a new Lambda: the NFS client's caches start empty
                store = fresh()
            start = time.perf_counter()
            with model.accounting() as ops:
                workload.run(store, state, i)
            walls.append(time.perf_counter() - start)
            if workload.undo is not None:
                workload.undo(store, state, i)
            runs.append(ops)
    finally:
        store.close()
    first = runs[0].as_dict()
    for other in runs[1:]:
        if other.as_dict() != first:
            raise RuntimeError(
                f"{workload.name} ({journal_mode}, {locking}): repetitions made different operations: "
                f"{first['counts']} vs {other.as_dict()['counts']}"
            )
    return runs[0], walls


def request_profile(
    ops: Ops | Mapping[str, Any], *, dynamodb: Mapping[str, int] | None = None, compute_s: float = 0.0
) -> RequestProfile:
    """Measured operations (an :class:`~efs_sqlite.efs_model.Ops` or its ``as_dict()``) as a
    :class:`~efs_sqlite.costs.RequestProfile`, with the DynamoDB equivalent (e.g. a
    :attr:`Workload.dynamodb`) and ``compute_s`` of Lambda time besides storage waits.

    >>> request_profile({"metadata_read_ops": 7, "metadata_write_ops": 0, "data_read_ops": 1,
    ...                  "data_read_bytes": 16, "data_write_ops": 0, "data_write_bytes": 0},
    ...                 dynamodb={"items_read": 1}).efs_latency_s("elastic")
    0.008
    """
    return RequestProfile.from_ops(ops, compute_s=compute_s, **(dynamodb or {}))


def milliseconds(seconds: float) -> float:
    """Seconds as milliseconds, rounded to the nanosecond (a modelled latency is a sum of floats).

    >>> milliseconds(0.0123456789)
    12.345679
    """
    return round(seconds * 1000, 6)


def check_choices(
    journal_modes: Sequence[str], profiles: Sequence[str], repeats: int, locking: Sequence[str] = ()
) -> None:
    """Raise ValueError unless each journal mode, locking choice and profile is known and repeats >= 1."""
    bad = [m for m in journal_modes if m not in WORKLOAD_JOURNAL_MODES]
    bad += [m for m in locking if m not in LOCKING]
    bad += [p for p in profiles if p not in PROFILES]
    if bad or repeats < 1:
        raise ValueError(
            f"unknown choices {bad} (journal modes {WORKLOAD_JOURNAL_MODES}: WAL cannot run on EFS; "
            f"locking {LOCKING}; profiles {tuple(PROFILES)}), or repeats < 1"
        )


@contextlib.contextmanager
def workspace(
    root: str | Path | None, prefix: str, translation: str = "linux_nfs"
) -> Iterator[tuple[Path, EFSModel]]:
    """The folder for the cases (``root``, or a temporary one) and a fresh EFS model that
    translates VFS calls by ``translation`` (see :class:`~efs_sqlite.efs_model.EFSModel`)."""
    with contextlib.ExitStack() as stack:
        base = Path(root) if root is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        yield base, stack.enter_context(EFSModel(name, translation=translation))


def case_columns(workload: str, journal_mode: str, locking: str, cold: bool, repeats: int) -> Row:
    """The columns that name a measured case."""
    return {
        "workload": workload,
        "journal_mode": journal_mode,
        "locking": locking,
        "what_if": locking != "normal",
        "cold": cold,
        "repeats": repeats,
    }


def _shard_calls(ops: Ops) -> dict[str, Counter[str]]:
    """The VFS calls per shard file (journals and temp files left out)."""
    return {k: v for k, v in ops.by_file.items() if k.endswith(".sqlite")}


def ops_columns(ops: Ops) -> Row:
    """The operation columns every measured row carries, from one accounting scope."""
    return {
        "ops_total": sum(ops.counts.values()),
        "nfs_requests": sum(ops.requests.values()),
        "db_opens": sum(v.get("open", 0) for v in _shard_calls(ops).values()),
        "lock_requests": ops.requests["lock"] + ops.requests["unlock"],
        "metadata_read_ops": ops.metadata_read_ops,
        "metadata_write_ops": ops.metadata_write_ops,
        "data_read_ops": ops.data_read_ops,
        "data_write_ops": ops.data_write_ops,
        "data_read_bytes": ops.data_read_bytes,
        "data_write_bytes": ops.data_write_bytes,
        **{f"rounds_{c}": ops.rounds[c] for c in LATENCY_CLASSES},
    }


def rounds_of(row: Mapping[str, Any]) -> tuple[tuple[str, int], ...]:
    """The round trips by latency class of a row with :func:`ops_columns` (``RequestProfile.efs_rounds``)."""
    return tuple((c, row[f"rounds_{c}"]) for c in LATENCY_CLASSES if row.get(f"rounds_{c}"))


def case_rows(
    ops: Ops,
    case: Row,
    profiles: Sequence[str],
    dynamodb: Mapping[str, int],
    atomic: bool,
    per_profile: Callable[[str], Row] | None = None,
    extra: Row | None = None,
) -> list[Row]:
    """One row per profile for one measured case: ``case``'s columns, then latency, ops, costs."""
    shards = _shard_calls(ops)
    profile = request_profile(ops, dynamodb=dynamodb)
    usd = cost_per_million(profile, atomic=atomic)
    tail = {
        "shards_touched": len(shards),
        "max_lock_calls_per_shard": max((v.get("lock", 0) for v in shards.values()), default=0),
        **{f"op_{kind}": ops.counts[kind] for kind in OP_KINDS},
        **ops_columns(ops),
        "bytes_read": ops.bytes["read"],
        "bytes_written": ops.bytes["write"],
        **{f"usd_per_million_{key}": usd[key] for key in COST_KEYS},
        "dynamodb_latency_ms": milliseconds(dynamodb_cost(profile, atomic=atomic).latency_s),
        **(extra or {}),
    }
    return [
        {
            **case,
            "profile": p,
            "latency_ms": milliseconds(ops.latency_s(p)),
            **range_ms(ops, p),
            **(per_profile(p) if per_profile is not None else {}),
            **tail,
        }
        for p in profiles
    ]
