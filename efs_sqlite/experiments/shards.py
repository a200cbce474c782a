"""Workload experiments (notebook 02): the store's basic operations measured through the EFS model.

:func:`workloads` names them (point read, batched read, 1-row commit, multi-shard node create,
paginated list read; warm and cold); :func:`run_workloads` runs them under each journal mode and
locking choice: operations by kind, bytes, NFS requests, modelled latency per EFS profile,
$ per million against DynamoDB.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from efs_sqlite.costs import DYNAMODB
from efs_sqlite.efs_model import PROFILES
from efs_sqlite.experiments.ids import sample_ids
from efs_sqlite.experiments.measure import (
    LOCKING,
    WORKLOAD_JOURNAL_MODES,
    Workload,
    case_columns,
    case_rows,
    check_choices,
    measure,
    milliseconds,
    workspace,
)
from efs_sqlite.experiments.tables import Row
from efs_sqlite.model import INSURANCE, TYPE_SHARD, Model
from efs_sqlite.store import Ref, ShardStore

#: What a node create writes into a field of each kind (the op counts do not depend on it).
_SAMPLE_VALUES: dict[str, Any] = {
    "str": "FT-000001",
    "int": 4242,
    "float": 1.5,
    "decimal": Decimal("910.50"),
    "datetime": datetime(2024, 3, 1, 9, 30, tzinfo=UTC),
    "bool": True,
    "bytes": b"\x00\x01",
}


def workloads(
    *,
    rows: int = 10_000,
    batch: int = 10,
    list_entries: int = 25_000,
    list_offset: int = 0,
    node_type: str = "Transaction",
    model: Model = INSURANCE,
) -> dict[str, Workload]:
    """The named workloads of :func:`run_workloads`, each also as a ``<name>_cold`` variant.

    Shards hold ``rows`` values (ids made in time order, as Small UIDs are):

    * ``point_read``: one ``get`` from ``claim_type_code``;
    * ``batched_read``: one ``get_many`` of ``batch`` ids spread over ``party_identifier``;
    * ``commit``: one ``put`` replacing a value of ``claim_type_code`` (a 1-row commit);
    * ``node_create``: a ``node_type`` node written as :class:`~efs_sqlite.graph.Graph` writes it:
      one grouped ``store.write()`` into ``_type`` and each of its non-list field shards (the
      Graph also reads ``_type`` first to check references: not counted here);
    * ``list_page``: ``list_count`` and one 100-entry ``list_page`` at ``list_offset`` of a
      ``list_entries``-entry ``claim_transactions`` list, inside one ``store.read()``.

    >>> sorted(workloads(rows=10, list_entries=10))[:4]
    ['batched_read', 'batched_read_cold', 'commit', 'commit_cold']
    """
    if rows < max(2, batch) or batch < 1 or list_entries < 1 or list_offset < 0:
        raise ValueError("need rows >= max(2, batch), batch >= 1, list_entries >= 1, list_offset >= 0")
    t = model.type(node_type)
    ids = sample_ids(rows, 100_000, 0)
    mid = ids[rows // 2]

    def fill(shard: str, value: Callable[[int], Any]) -> Callable[[ShardStore], list[int]]:
        def prepare(store: ShardStore) -> list[int]:
            store.bulk_insert(shard, [(uid, value(i)) for i, uid in enumerate(ids)])
            return ids

        return prepare

    def codes(i: int) -> str:
        return f"CODE{i % 10}"

    # A new node of `t`: the value of each field it is created with (lists start empty).
    created = {
        t.shard(f.name): Ref(ids[0]) if f.kind == "ref" else _SAMPLE_VALUES[f.kind]
        for f in t.fields
        if f.kind != "refs"
    }
    created[TYPE_SHARD] = t.name
    new_uid = ids[-1] + 1  # the newest id: appended at the right edge of each B-tree, as in production

    def prepare_nodes(store: ShardStore) -> None:
        for shard, value in created.items():
            store.bulk_insert(shard, [(uid, value) for uid in ids])

    def create(store: ShardStore, _: object, i: int) -> None:
        with store.write() as w:
            for shard, value in created.items():
                w.insert(shard, new_uid, value)

    def uncreate(store: ShardStore, _: object, i: int) -> None:
        with store.write() as w:
            for shard in created:
                w.delete(shard, new_uid)

    lists = "claim_transactions"

    def prepare_list(store: ShardStore) -> int:
        store.bulk_lists(lists, [(ids[0], sample_ids(list_entries, 100_000, 1))])
        return ids[0]

    def page(store: ShardStore, claim: int, i: int) -> None:
        with store.read():
            store.list_count(lists, claim)
            store.list_page(lists, claim, list_offset, 100)

    warm = [
        Workload(
            "point_read",
            "get one value of claim_type_code",
            fill("claim_type_code", codes),
            lambda store, ids, i: store.get("claim_type_code", mid),
            dynamodb={"items_read": 1},
        ),
        Workload(
            "batched_read",
            f"get_many of {batch} ids of party_identifier",
            fill("party_identifier", int),
            lambda store, ids, i: store.get_many("party_identifier", ids[:: rows // batch][:batch]),
            dynamodb={"items_read": batch, "dynamodb_calls": math.ceil(batch / DYNAMODB.batch_get_max)},
        ),
        Workload(
            "commit",
            "put one value of claim_type_code (a 1-row commit)",
            fill("claim_type_code", codes),
            lambda store, ids, i: store.put("claim_type_code", mid, codes(i + 1)),
            dynamodb={"items_written": 1},
        ),
        Workload(
            "node_create",
            f"create a {t.name}: one grouped write into {len(created)} shards",
            prepare_nodes,
            create,
            uncreate,
            dynamodb={"items_written": len(created)},
            atomic=True,
        ),
        Workload(
            "list_page",
            f"list_count + 100 entries at offset {list_offset} of a {list_entries}-entry list, one read()",
            prepare_list,
            page,
            # A list item per entry and a counter item: GetItem of the counter and a Query of 100
            # entries of ~50 bytes (~5 KB: 2 read units), sent at once: 3 units, one round trip.
            dynamodb={"items_read": 3},
        ),
    ]
    out: dict[str, Workload] = {}
    for w in warm:
        out[w.name] = w
        out[f"{w.name}_cold"] = replace(
            w, name=f"{w.name}_cold", description=f"{w.description}, first request of a new store", cold=True
        )
    return out


def run_workloads(
    names: Iterable[str] | None = None,
    *,
    journal_modes: Sequence[str] = WORKLOAD_JOURNAL_MODES,
    locking: Sequence[str] = LOCKING,
    profiles: Sequence[str] = tuple(PROFILES),
    root: str | Path | None = None,
    repeats: int = 3,
    suite: Mapping[str, Workload] | None = None,
    wall_clock: bool = False,
    translation: str = "linux_nfs",
) -> list[Row]:
    """Run each workload of ``suite`` (default :func:`workloads`; only ``names`` if given) under
    each journal mode and locking choice through the EFS model; one row per
    (workload, journal_mode, locking, profile).

    Each case gets its own folder under ``root`` (default: a temporary one) and store. Every
    workload runs once unmeasured first; then ``repeats`` runs are measured one by one and must
    make identical operations (otherwise RuntimeError), so every count is exact and repeatable.
    (Only the bytes a grouped write puts in its super-journal vary with the length of ``root``'s
    path: that journal lists the other journals by full name.)

    ``locking="exclusive"`` is a what-if (``what_if`` column): SQLite's ``locking_mode=EXCLUSIVE``
    keeps every lock after the first use and so locks every other process (every other Lambda)
    out of the shard. The store has no option for it: the what-if sets the pragma on the store's
    own connections after the warm-up. Cold workloads run with normal locking only.
    ``translation``: how the model turns VFS calls into NFS requests (``"linux_nfs"`` or the
    upper bound ``"worst_case"``: :mod:`efs_sqlite.nfs_client`).

    Columns: ``workload``, ``journal_mode``, ``locking``, ``what_if``, ``cold``, ``repeats``,
    ``profile``, ``latency_ms`` (modelled under ``profile``: the sum of the round trips, no
    wall-clock), ``shards_touched``, ``max_lock_calls_per_shard`` (a read transaction makes one,
    a commit three), ``op_<kind>`` (VFS calls, :data:`OP_KINDS`), ``ops_total``, ``nfs_requests``,
    ``db_opens`` (shard files opened: journals not included), ``lock_requests`` (LOCK/LOCKU
    round trips), ``metadata_read_ops``, ``metadata_write_ops``, ``data_read_ops``,
    ``data_write_ops``, ``data_read_bytes``/``data_write_bytes`` (of EFS data requests),
    ``bytes_read``/``bytes_written`` (every file, local temporary files included),
    ``usd_per_million_<design>`` (:data:`COST_KEYS`; from :func:`efs_sqlite.costs.cost_per_million`
    of :func:`request_profile`, so the same in each profile's row; storage and Lambda compute
    time excluded), ``dynamodb_latency_ms``; with ``wall_clock=True`` also ``wall_ms`` (median
    wall time of the measured runs on this machine's disk: noisy, for orientation only).

    >>> rows = run_workloads(["point_read"], journal_modes=["delete"], locking=["normal"],
    ...                      profiles=["elastic"], suite=workloads(rows=100, list_entries=10))
    >>> [(r["workload"], r["op_open"], r["op_lock"], r["nfs_requests"], r["latency_ms"]) for r in rows]
    [('point_read', 0, 1, 6, 6.0)]
    """
    suite = workloads() if suite is None else suite
    chosen = list(suite) if names is None else list(names)
    unknown = [n for n in chosen if n not in suite]
    if unknown:
        raise ValueError(f"unknown workloads {unknown}; expected some of {list(suite)}")
    check_choices(journal_modes, profiles, repeats, locking)
    rows: list[Row] = []
    with workspace(root, "efs-workloads", translation) as (base, model):
        for name in chosen:
            w = suite[name]
            for journal_mode, lock in itertools.product(journal_modes, locking):
                if w.cold and lock != "normal":
                    continue
                folder = base / f"{name}-{journal_mode}-{lock}"
                ops, walls = measure(
                    w, model, folder, journal_mode=journal_mode, locking=lock, repeats=repeats
                )
                case = case_columns(name, journal_mode, lock, w.cold, repeats)
                wall = {"wall_ms": milliseconds(statistics.median(walls))} if wall_clock else None
                rows += case_rows(ops, case, profiles, w.dynamodb, w.atomic, extra=wall)
    return rows
