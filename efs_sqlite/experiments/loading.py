"""Load experiments (notebook 04): a loaded data set checked against its manifest, and the
loader's throughput by worker threads, locally and under modelled EFS latency.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from efs_sqlite.data import read_records
from efs_sqlite.efs_model import PROFILES, EFSModel, Ops
from efs_sqlite.experiments.tables import Row
from efs_sqlite.loader import load
from efs_sqlite.model import INSURANCE, Model
from efs_sqlite.nfs_client import LATENCY_CLASSES
from efs_sqlite.store import ShardStore


def check_load(store: ShardStore, manifest: Mapping[str, Any], model: Model = INSURANCE) -> list[Row]:
    """Every shard of a loaded data set against its manifest (:func:`efs_sqlite.data.generate_dataset`).

    Columns: ``shard``, ``expected_rows`` (the manifest's: values, or entries for a list shard),
    ``stored_rows``, ``integrity`` (SQLite's ``integrity_check``), ``ok``.
    """
    stats = store.stats(integrity=True)["shards"]
    expected = {shard: entry["rows"] for shard, entry in manifest["shards"].items()}
    rows = []
    for shard in sorted(expected.keys() | stats.keys()):
        found = stats.get(shard, {"rows": 0, "refs": 0, "integrity": "no such shard file"})
        try:
            is_list = model.field_for_shard(shard).kind == "refs"
        except KeyError:  # _type, or a shard the model does not know
            is_list = False
        stored = found["refs"] if is_list else found["rows"]
        want = expected.get(shard, 0)
        rows.append(
            {
                "shard": shard,
                "expected_rows": want,
                "stored_rows": stored,
                "integrity": found["integrity"],
                "ok": stored == want and found["integrity"] == "ok",
            }
        )
    return rows


def load_throughput(
    dataset: str | os.PathLike[str],
    *,
    threads: Sequence[int] = (1, 2, 4, 8, 15),
    profiles: Sequence[str] = tuple(PROFILES),
    records: int | None = None,
    batch: int = 5000,
    root: str | os.PathLike[str] | None = None,
) -> list[Row]:
    """Loader throughput by worker threads, on local disk and under each EFS latency profile.

    Loads the first ``records`` records of ``dataset`` (all if ``None``) into a new store per case.
    Under an EFS profile the store runs on an :class:`~efs_sqlite.efs_model.EFSModel` that *sleeps* each
    request's delay, so threads overlap their waits as they would on the network and the wall time
    is the measurement. Profiles with the same latencies (Elastic, Bursting and Provisioned share the
    published figures) are measured once, under a joint label; ``local`` uses the plain store.

    Columns: ``profile`` (label), ``threads``, ``records``, ``seconds``, ``records_per_s``,
    ``nfs_requests`` and ``modelled_s`` (the requests' delays summed as if sequential; ``None``
    locally), ``slept_s`` (delays actually slept, summed over threads).
    """
    if not threads or min(threads) < 1 or (records is not None and records < 1):
        raise ValueError("threads must be >= 1 and records >= 1")
    unknown = [p for p in profiles if p not in PROFILES]
    if unknown:
        raise ValueError(f"unknown profiles {unknown}; expected some of {list(PROFILES)}")
    groups: dict[tuple[float, ...], list[str]] = {}
    for name in profiles:
        p = PROFILES[name]
        groups.setdefault(tuple(p.class_s(c) for c in LATENCY_CLASSES), []).append(name)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="load-throughput-", dir=root) as base:
        for names in groups.values():
            for n in threads:
                folder = Path(base) / f"{names[0]}-{n}"
                data = itertools.islice(read_records(dataset, verify=records is None), records)
                with contextlib.ExitStack() as stack:
                    ops: Ops | None = None
                    vfs = None
                    if any(PROFILES[name].latency_s(1, 1, 1) for name in names):
                        model = stack.enter_context(
                            EFSModel(f"load-{uuid.uuid4().hex[:12]}", names[0], sleep=True)
                        )
                        vfs = model.name
                        ops = stack.enter_context(model.accounting())
                    store = stack.enter_context(ShardStore(folder, vfs=vfs))
                    summary = load(store, data, threads=n, batch=batch, progress=False)
                rows.append(
                    {
                        "profile": " / ".join(names),
                        "threads": summary.threads,
                        "records": summary.records,
                        "seconds": summary.seconds,
                        "records_per_s": summary.records_per_s,
                        "nfs_requests": None if ops is None else sum(ops.requests.values()),
                        "modelled_s": None if ops is None else ops.modelled_latency_s,
                        "slept_s": None if ops is None else ops.injected_s,
                    }
                )
    return rows
