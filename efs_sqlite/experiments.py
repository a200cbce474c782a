"""Experiments: the measurements behind the notebooks, each returning a tidy table (a list of dicts).

A row is one measured case; its keys are the table's columns, so a notebook writes the rows to CSV
and plots them without computing anything itself.

Id experiments
--------------
* :func:`id_collisions` — ids generated at a simulated rate by the earlier system's decimal scheme,
  by plain random Small UIDs (Mediagone's generator), and by :class:`efs_sqlite.uid.Generator`
  (one, and several side by side as concurrent Lambda instances), with the duplicates counted.
* :func:`id_forms` — the printable forms of an id: length, whether string order is time order,
  whether a JavaScript client reads it exactly.
* :func:`rowid_benchmark` — an ``INTEGER PRIMARY KEY`` (SQLite's rowid) against ``TEXT`` keys:
  insert and lookup speed, file size, B-trees and cold EFS reads per lookup.

Results files
-------------
:func:`results_dir`, :func:`write_csv`, :func:`write_json` and :func:`markdown_table`: where a
notebook puts its tables and how it shows them.

Workload experiments
--------------------
* :func:`run_workloads` — the store's basic operations (:func:`workloads`: point read, batched
  read, 1-row commit, multi-shard node create, paginated list read; warm and cold) measured
  through the EFS model under each journal mode and locking choice: operations by kind, bytes,
  NFS requests, modelled latency per EFS profile, $ per million against DynamoDB.
* :func:`graphql_request_ops` — the same for one GraphQL request (by default
  :data:`BENCHMARK_QUERY`), with its latency both as if its round trips were made one after
  another and along its critical path as the API makes them on EFS (a level's shards at once,
  inside read transactions locked ahead).

>>> rows = id_collisions([100_000], duration_s=0.01, generators=2)
>>> [(r["scheme"], r["ids"]) for r in rows]
[('decimal', 1000), ('random20', 1000), ('small-uid', 1000), ('small-uid x2', 1000)]
>>> next(r["collisions"] for r in rows if r["scheme"] == "small-uid")
0
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import math
import os
import random
import statistics
import tempfile
import threading
import time
import uuid
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import apsw
from graphql_relay import offset_to_cursor

from efs_sqlite.costs import (
    DYNAMODB,
    RequestProfile,
    cost_per_million,
    dynamodb_cost,
    max_requests_per_second,
)
from efs_sqlite.data import read_records
from efs_sqlite.efs_model import FAULT_KINDS, PROFILES, EFSModel, Ops
from efs_sqlite.graph import Graph
from efs_sqlite.graphql import GraphQLAPI
from efs_sqlite.loader import load
from efs_sqlite.model import INSURANCE, TYPE_SHARD, Model
from efs_sqlite.store import Ref, ShardStore
from efs_sqlite.uid import SEQ_BITS, Generator, encode, to_mediagone

__all__ = [
    "BENCHMARK_QUERY",
    "COST_KEYS",
    "DESIGNS",
    "ID_SCHEMES",
    "KEY_FORMS",
    "LOCKING",
    "MIX_DOCUMENTS",
    "MIX_DYNAMODB_ROUNDS",
    "MIX_WEIGHTS",
    "OP_KINDS",
    "WORKLOAD_JOURNAL_MODES",
    "Workload",
    "benchmark_graph",
    "check_load",
    "graphql_request_ops",
    "id_collisions",
    "id_forms",
    "load_throughput",
    "markdown_table",
    "mix_summary",
    "query_mix",
    "request_profile",
    "results_dir",
    "rowid_benchmark",
    "run_workloads",
    "workloads",
    "write_csv",
    "write_json",
]

Row = dict[str, Any]


# -- results files -------------------------------------------------------------------------------


def results_dir(runs_dir: str | os.PathLike[str], name: str) -> Path:
    """``<runs_dir>/<name>/``, created if needed: where one notebook writes its figures and tables.

    A relative ``runs_dir`` starts at the project root, the nearest folder at or above the working
    directory that holds ``pyproject.toml`` (else at the working directory): a notebook's default
    ``runs`` is the project's ``runs/`` whether it runs from ``notebooks/`` (Jupyter, nbval) or
    from the root (``papermill notebooks/x.ipynb runs/x.ipynb``).
    """
    base = Path(runs_dir)
    if not base.is_absolute():
        here = Path.cwd()
        root = next((p for p in (here, *here.parents) if (p / "pyproject.toml").is_file()), here)
        base = root / base
    out = base / name
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_csv(rows: Sequence[Row], path: str | os.PathLike[str]) -> Path:
    """Write tidy rows as CSV (columns in first-seen order; a missing value is an empty cell).

    >>> import tempfile, pathlib
    >>> p = write_csv([{"a": 1, "b": 2.5}, {"a": 3, "c": "x"}], pathlib.Path(tempfile.mkdtemp()) / "t.csv")
    >>> p.read_text().splitlines()
    ['a,b,c', '1,2.5,', '3,,x']
    """
    columns = list(dict.fromkeys(key for row in rows for key in row))
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_json(data: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``data`` as indented JSON (datetimes, paths and decimals as strings)."""
    path = Path(path)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value).replace("|", "\\|")


def markdown_table(rows: Sequence[Row], columns: Sequence[str] | None = None) -> str:
    """Rows as a Markdown table (for ``IPython.display.Markdown``), numbers rounded for reading.

    >>> print(markdown_table([{"form": "integer", "lookup_us": 4.4372, "rows": 100000, "ok": True}]))
    | form | lookup_us | rows | ok |
    |---|---|---|---|
    | integer | 4.44 | 100,000 | yes |
    """
    columns = list(columns or dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


# -- id experiments ------------------------------------------------------------------------------

#: The id schemes :func:`id_collisions` compares (the multi-generator one is named ``small-uid xN``).
ID_SCHEMES = ("decimal", "random20", "small-uid")

_NS_PER_MS = 1_000_000
#: 2024-01-01T00:00:00Z: a fixed start, so a seed gives the same ids on every run.
_T0_MS = 1_704_067_200_000
_DECIMAL_BITS = 19  # the earlier system: ms * 10**6 + random(2**19)


def _expected_collisions(per_ms: Iterable[int], bits: int) -> float:
    """Expected duplicates when each millisecond's ids draw ``bits`` random bits independently.

    k draws among m values leave m(1 - (1 - 1/m)^k) distinct ones on average (birthday problem).

    >>> round(_expected_collisions([1024], 20), 2)   # ~0.5 at 1,024 ids in one millisecond
    0.5
    """
    m = 1 << bits
    return sum(k - m * (1 - (1 - 1 / m) ** k) for k in per_ms)


def _clock_ms(rate: float, count: int) -> list[int]:
    """The millisecond of each of ``count`` ids made at ``rate`` ids/s, evenly spaced from ``_T0_MS``."""
    return [_T0_MS + int(i * 1000 / rate) for i in range(count)]


def _decimal_ids(ms: Sequence[int], rng: random.Random) -> list[int]:
    bits = rng.getrandbits
    return [t * 10**6 + bits(_DECIMAL_BITS) for t in ms]


def _random20_ids(ms: Sequence[int], rng: random.Random) -> list[int]:
    bits = rng.getrandbits
    return [t << SEQ_BITS | bits(SEQ_BITS) for t in ms]


def _generator_ids(ms: Sequence[int], rng: random.Random, generators: int) -> list[int]:
    """Ids from ``generators`` :class:`Generator` instances taking turns, all on the simulated clock.

    Every read of the clock moves it 1 µs on, so a generator whose millisecond's sequence ran out
    (its random start lay near the top) waits for the next millisecond as the real one does.
    """
    now = [0]

    def clock() -> int:
        now[0] += 1000
        return now[0] - 1000

    def start() -> int:  # seeded, unlike the generator's default (the OS's randomness)
        return rng.getrandbits(SEQ_BITS)

    gens = [Generator(clock=clock, start=start).generate for _ in range(generators)]
    out = []
    for i, t in enumerate(ms):
        now[0] = t * _NS_PER_MS
        out.append(gens[i % generators]())
    return out


def id_collisions(
    rates: Sequence[float], *, duration_s: float = 1.0, generators: int = 4, seed: int = 0
) -> list[Row]:
    """Duplicates among ids generated for ``duration_s`` of simulated time at each rate (ids/s).

    The clock is simulated (id ``i`` is made at ``i / rate`` seconds), so a rate of millions of ids
    per second is measured exactly, whatever this machine's speed; the ids themselves come from the
    real code paths. Schemes, one row each per rate:

    * ``decimal``: the earlier system, ``ms * 10**6 + random(2**19)``;
    * ``random20``: ``(ms << 20) | random(2**20)``, Small UID as Mediagone's generator makes it;
    * ``small-uid``: one :class:`~efs_sqlite.uid.Generator` (monotonic within a process);
    * ``small-uid xN``: ``generators`` generators taking turns, as N Lambda instances would, each
      with its own random start per millisecond (shown only if ``generators > 1``).

    Columns: ``scheme``, ``rate_per_s``, ``ids``, ``ids_per_ms``, ``unique``, ``collisions`` (ids
    that repeat an earlier one), ``collisions_per_million``, ``expected`` (birthday-problem
    expectation for the random schemes, ``None`` where no closed form applies).
    """
    if duration_s <= 0 or generators < 1 or any(r <= 0 for r in rates):
        raise ValueError("rates and duration_s must be positive and generators >= 1")
    rows = []
    for rate in rates:
        count = max(1, round(rate * duration_s))
        ms = _clock_ms(rate, count)
        per_ms = list(Counter(ms).values())
        rng = random.Random(f"id_collisions:{seed}:{rate}")
        cases: list[tuple[str, list[int], float | None]] = [
            ("decimal", _decimal_ids(ms, rng), _expected_collisions(per_ms, _DECIMAL_BITS)),
            ("random20", _random20_ids(ms, rng), _expected_collisions(per_ms, SEQ_BITS)),
            ("small-uid", _generator_ids(ms, rng, 1), 0.0),
        ]
        if generators > 1:
            cases.append((f"small-uid x{generators}", _generator_ids(ms, rng, generators), None))
        for scheme, ids, expected in cases:
            unique = len(set(ids))
            rows.append(
                {
                    "scheme": scheme,
                    "rate_per_s": rate,
                    "ids": count,
                    "ids_per_ms": count / len(per_ms),
                    "unique": unique,
                    "collisions": count - unique,
                    "collisions_per_million": (count - unique) / count * 1e6,
                    "expected": None if expected is None else round(expected, 3),
                }
            )
    return rows


#: The key forms :func:`id_forms` and :func:`rowid_benchmark` compare.
KEY_FORMS = ("integer", "base62", "mediagone", "uuid4")

_JS_SAFE = 2**53  # Number.MAX_SAFE_INTEGER + 1


def _keys(form: str, ids: Sequence[int], rng: random.Random) -> list[Any]:
    if form == "integer":
        return list(ids)
    if form == "base62":
        return [encode(i) for i in ids]
    if form == "mediagone":
        return [to_mediagone(i) for i in ids]
    if form == "uuid4":
        return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in ids]
    raise ValueError(f"unknown key form {form!r}; expected one of {KEY_FORMS}")


def _sample_ids(count: int, rate: float, seed: int) -> list[int]:
    return _generator_ids(_clock_ms(rate, count), random.Random(f"ids:{seed}"), 1)


def id_forms(count: int = 10_000, *, rate: float = 100_000, seed: int = 0) -> list[Row]:
    """How each key form of ``count`` ids (made at ``rate`` ids/s) looks, sizes and sorts.

    Columns: ``form``, ``example``, ``min_chars``/``max_chars`` (of the printed form; the integer's
    decimal digits), ``stored_bytes`` (what SQLite stores for the key in a record: 8 for a 64-bit
    integer, the length for text), ``in_order`` (for ``count`` random pairs of ids made at different
    times, the fraction whose keys compare in time order: 1.0 is sortable, 0.5 is random order),
    ``js_exact`` (a JavaScript client reads every key exactly).

    >>> {r["form"]: r["in_order"] for r in id_forms(1000)}["base62"]
    1.0
    """
    ids = _sample_ids(count, rate, seed)
    rng = random.Random(f"pairs:{seed}")
    pairs = [sorted(rng.sample(range(count), 2)) for _ in range(count)] if count > 1 else []
    pairs = [(i, j) for i, j in pairs if ids[i] >> SEQ_BITS != ids[j] >> SEQ_BITS]
    rows = []
    for form in KEY_FORMS:
        keys = _keys(form, ids, random.Random(f"uuid:{seed}"))
        printed = [str(k) for k in keys]
        rows.append(
            {
                "form": form,
                "example": printed[0],
                "min_chars": min(map(len, printed)),
                "max_chars": max(map(len, printed)),
                "stored_bytes": 8 if form == "integer" else statistics.fmean(map(len, printed)),
                "in_order": sum(keys[i] < keys[j] for i, j in pairs) / max(1, len(pairs)),
                "js_exact": form != "integer" or max(ids) < _JS_SAFE,
            }
        )
    return rows


def _best_s(run: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _key_table(db: apsw.Connection, form: str) -> None:
    # TEXT PRIMARY KEY keeps a rowid table plus an automatic unique index: two B-trees to search.
    column = "uid INTEGER PRIMARY KEY" if form == "integer" else "uid TEXT PRIMARY KEY"
    db.execute(f"CREATE TABLE items({column}, value TEXT NOT NULL)")


def _cold_reads(path: Path, keys: Sequence[Any], vfs_name: str) -> float:
    """Mean EFS data reads of a point lookup on a fresh connection (nothing cached), via the EFS model."""
    reads = []
    with EFSModel(vfs_name, "elastic") as model:
        for key in keys:
            db = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY, vfs=vfs_name)
            with model.accounting() as ops:
                db.execute("SELECT value FROM items WHERE uid = ?", (key,)).fetchall()
            db.close()
            reads.append(ops.data_read_ops)
    return statistics.fmean(reads)


def rowid_benchmark(
    rows: int = 100_000,
    lookups: int = 20_000,
    *,
    seed: int = 0,
    repeat: int = 3,
    cold_lookups: int = 50,
    folder: str | Path | None = None,
) -> list[Row]:
    """The cost of the key: ``rows`` ids stored under each form of :data:`KEY_FORMS`.

    Each form gets its own database (apsw, local disk, in ``folder`` or a temporary one), filled
    in generation order in one transaction; then ``lookups`` random point reads run inside one read
    transaction. Times are the best of ``repeat`` runs. ``cold_reads_per_lookup`` counts, through
    the EFS model, the page reads a lookup on a fresh connection makes — each one a round trip on EFS.

    Columns: ``form``, ``key``, ``rows``, ``btrees``, ``insert_rows_per_s``, ``lookup_us``,
    ``file_bytes``, ``bytes_per_row``, ``cold_reads_per_lookup``.
    """
    if rows < 1 or lookups < 1 or repeat < 1 or cold_lookups < 1:
        raise ValueError("rows, lookups, repeat and cold_lookups must be >= 1")
    ids = _sample_ids(rows, 100_000, seed)
    out = []
    with tempfile.TemporaryDirectory(prefix="rowid-", dir=folder) as tmp:
        for form in KEY_FORMS:
            rng = random.Random(f"rowid:{seed}")
            keys = _keys(form, ids, rng)
            data = [(k, f"value {i}") for i, k in enumerate(keys)]
            probes = [keys[rng.randrange(rows)] for _ in range(lookups)]
            path = Path(tmp) / f"{form}.sqlite"

            def fill(path: Path = path, form: str = form, data: list[tuple[Any, str]] = data) -> None:
                path.unlink(missing_ok=True)
                db = apsw.Connection(str(path))
                # Measure the key's B-tree work, not the disk's fsync (the same for every form).
                db.execute("PRAGMA synchronous=OFF")
                _key_table(db, form)
                with db:
                    db.executemany("INSERT INTO items VALUES (?, ?)", data)
                db.close()

            insert_s = _best_s(fill, repeat)
            db = apsw.Connection(str(path))

            def lookup(db: apsw.Connection = db, probes: list[Any] = probes) -> None:
                with db:
                    for k in probes:
                        db.execute("SELECT value FROM items WHERE uid = ?", (k,)).fetchall()

            lookup_s = _best_s(lookup, repeat)
            (btrees,) = db.execute(
                "SELECT count(*) FROM sqlite_schema WHERE type IN ('table', 'index')"
            ).fetchone()
            db.close()
            size = path.stat().st_size
            out.append(
                {
                    "form": form,
                    "key": "INTEGER PRIMARY KEY" if form == "integer" else "TEXT PRIMARY KEY",
                    "rows": rows,
                    "btrees": btrees,
                    "insert_rows_per_s": rows / insert_s,
                    "lookup_us": lookup_s / lookups * 1e6,
                    "file_bytes": size,
                    "bytes_per_row": size / rows,
                    "cold_reads_per_lookup": _cold_reads(
                        path, probes[:cold_lookups], f"rowid-{form}-{id(out)}"
                    ),
                }
            )
    return out


# -- load experiments ----------------------------------------------------------------------------


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
    groups: dict[tuple[float, float, float], list[str]] = {}
    for name in profiles:
        p = PROFILES[name]
        groups.setdefault((p.metadata_s, p.read_s, p.write_s), []).append(name)
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


# -- workload experiments ------------------------------------------------------------------------

#: Journal modes the workloads run under (WAL cannot work on EFS: the store refuses it there).
WORKLOAD_JOURNAL_MODES = ("delete", "truncate", "persist")
#: ``normal``: the store as it runs; ``exclusive``: a what-if (see :func:`run_workloads`).
LOCKING = ("normal", "exclusive")
#: Every kind of VFS call the EFS model counts: one ``op_<kind>`` column each.
OP_KINDS = (*FAULT_KINDS, "full_pathname", "file_control", "sector_size", "device_characteristics")
#: The designs :func:`efs_sqlite.costs.cost_per_million` prices: one ``usd_per_million_<key>`` column each.
COST_KEYS = ("efs_elastic", "efs_bursting", "efs_provisioned", "dynamodb")

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
    ids = _sample_ids(rows, 100_000, 0)
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
        store.bulk_lists(lists, [(ids[0], _sample_ids(list_entries, 100_000, 1))])
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


def _hold_locks(vfs: str) -> None:
    """Put every connection open on ``vfs`` in ``locking_mode=EXCLUSIVE``.

    The store has no option for it, so the what-if sets it on the store's own connections
    (without a schema name the pragma covers every attached database too).
    """
    for conn in apsw.connections():
        if conn.open_vfs == vfs:
            conn.execute("PRAGMA locking_mode=EXCLUSIVE").fetchall()


def _measure(
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
        for i in range(repeats):
            if workload.cold:
                store.close()
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


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 6)


def _check_choices(
    journal_modes: Sequence[str], profiles: Sequence[str], repeats: int, locking: Sequence[str] = ()
) -> None:
    bad = [m for m in journal_modes if m not in WORKLOAD_JOURNAL_MODES]
    bad += [m for m in locking if m not in LOCKING]
    bad += [p for p in profiles if p not in PROFILES]
    if bad or repeats < 1:
        raise ValueError(
            f"unknown choices {bad} (journal modes {WORKLOAD_JOURNAL_MODES}: WAL cannot run on EFS; "
            f"locking {LOCKING}; profiles {tuple(PROFILES)}), or repeats < 1"
        )


@contextlib.contextmanager
def _workspace(root: str | Path | None, prefix: str) -> Iterator[tuple[Path, EFSModel]]:
    """The folder for the cases (``root``, or a temporary one) and a fresh EFS model."""
    with contextlib.ExitStack() as stack:
        base = Path(root) if root is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        yield base, stack.enter_context(EFSModel(f"{prefix}-{uuid.uuid4().hex[:12]}"))


def _case(workload: str, journal_mode: str, locking: str, cold: bool, repeats: int) -> Row:
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


def _ops_columns(ops: Ops) -> Row:
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
    }


def _case_rows(
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
        **_ops_columns(ops),
        "bytes_read": ops.bytes["read"],
        "bytes_written": ops.bytes["write"],
        **{f"usd_per_million_{key}": usd[key] for key in COST_KEYS},
        "dynamodb_latency_ms": _ms(dynamodb_cost(profile, atomic=atomic).latency_s),
        **(extra or {}),
    }
    return [
        {
            **case,
            "profile": p,
            "latency_ms": _ms(ops.latency_s(p)),
            **(per_profile(p) if per_profile is not None else {}),
            **tail,
        }
        for p in profiles
    ]


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
    [('point_read', 0, 1, 8, 8.0)]
    """
    suite = workloads() if suite is None else suite
    chosen = list(suite) if names is None else list(names)
    unknown = [n for n in chosen if n not in suite]
    if unknown:
        raise ValueError(f"unknown workloads {unknown}; expected some of {list(suite)}")
    _check_choices(journal_modes, profiles, repeats, locking)
    rows: list[Row] = []
    with _workspace(root, "efs-workloads") as (base, model):
        for name in chosen:
            w = suite[name]
            for journal_mode, lock in itertools.product(journal_modes, locking):
                if w.cold and lock != "normal":
                    continue
                folder = base / f"{name}-{journal_mode}-{lock}"
                ops, walls = _measure(
                    w, model, folder, journal_mode=journal_mode, locking=lock, repeats=repeats
                )
                case = _case(name, journal_mode, lock, w.cold, repeats)
                wall = {"wall_ms": _ms(statistics.median(walls))} if wall_clock else None
                rows += _case_rows(ops, case, profiles, w.dynamodb, w.atomic, extra=wall)
    return rows


# -- the GraphQL request experiment ------------------------------------------------------------

#: The benchmark request of issue 5: a claim with 5 fields and its 10 parties with 3 fields each.
#: It touches 8 shards: 3 claim values, 2 claim lists, 2 party values and 1 party list.
BENCHMARK_QUERY = """query Benchmark($id: ID!) {
  claim(id: $id) {
    id claimIdentifier claimTypeCode timestamp
    transactions { totalCount }
    parties(first: 10) { totalCount edges { node { id partyIdentifier timestamp claims { totalCount } } } }
  }
}"""


def benchmark_graph(store: ShardStore, *, parties: int = 10, transactions: int = 3) -> dict[str, str]:
    """Write the graph :data:`BENCHMARK_QUERY` reads: one claim, its ``parties`` parties (each
    listing the claim back) and ``transactions`` transactions. Returns the query's variables.

    >>> import tempfile
    >>> with ShardStore(tempfile.mkdtemp()) as store:
    ...     sorted(benchmark_graph(store, parties=2, transactions=1))
    ['id']
    """
    graph = Graph(store)
    day = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
    claim = graph.create_node("Claim", {"identifier": 4242, "type_code": "MOTOR", "timestamp": day})
    party_ids = [
        graph.create_node("Party", {"identifier": 100 + i, "timestamp": day, "claims": [claim]})
        for i in range(parties)
    ]
    tx_ids = [
        graph.create_node(
            "Transaction", {"identifier": f"FT-{i}", "timestamp": day, "claim": claim, "amount": "10.50"}
        )
        for i in range(transactions)
    ]
    graph.update_node(claim, {"parties": party_ids, "transactions": tx_ids})
    return {"id": encode(claim)}


@dataclass(eq=False)
class _Read:
    """One read the GraphQL layer made: a ``get_many``/``list_*_many`` call, or a ``read()`` block
    with every read inside it; the ids it asked for and the ids its results hold. A lock-ahead's
    ``begin_read`` and its ``end_reads`` are reads too, of no data (``data`` false). ``start`` and
    ``end`` are ticks of the store's trace clock: it ticks at every read's start and end, on any
    thread."""

    shards: set[str] = field(default_factory=set)
    keys: set[int] = field(default_factory=set)
    found: set[int] = field(default_factory=set)
    ops: Ops | None = None
    data: bool = True
    start: int = 0
    end: int = 0

    def needs(self, earlier: _Read) -> bool:
        """Whether this read could only start after ``earlier``: ``earlier`` had ended when this
        one started, and this one reads a shard ``earlier`` read (one thread and connection per
        shard: a shard's reads are serial), or asks for an id that ``earlier`` returned, or for a
        node whose type ``earlier`` looked up in ``_type``."""
        if earlier.end >= self.start:
            return False
        typed = TYPE_SHARD in earlier.shards and bool(self.keys & earlier.keys)
        return typed or bool(self.shards & earlier.shards) or bool(self.keys & earlier.found)


class _TracedStore(ShardStore):
    """A store that also accounts each read separately (``trace_reads``, on whichever thread
    makes it) and counts the values and lists read (``trace_items``: the DynamoDB items of the
    same request). Its own names all start with ``trace``/``_trac`` so that they cannot shadow
    the store's."""

    def __init__(self, root: str | Path, *, model: EFSModel, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.trace_model = model
        self.trace_items = 0
        self.trace_reads: list[_Read] = []
        self._tracing = threading.local()  # .read: the read this thread is inside, if any
        self._trace_lock = threading.Lock()
        self._trace_clock = 0

    def _trace_tick(self) -> int:
        with self._trace_lock:
            self._trace_clock += 1
            return self._trace_clock

    def _trace_count(self, items: int) -> None:
        with self._trace_lock:
            self.trace_items += items

    @contextlib.contextmanager
    def _traced(self, shards: Iterable[str], keys: Sequence[int], data: bool = True) -> Iterator[_Read]:
        read: _Read | None = getattr(self._tracing, "read", None)
        if read is not None:  # inside a read already: it is part of that one
            read.shards.update(shards)
            read.keys.update(keys)
            yield read
            return
        read = self._tracing.read = _Read(set(shards), set(keys), data=data, start=self._trace_tick())
        try:
            with self.trace_model.accounting(current_thread=True) as ops:
                yield read
        finally:
            self._tracing.read = None
            read.end = self._trace_tick()
        read.ops = ops
        with self._trace_lock:
            self.trace_reads.append(read)

    def get_many(self, shard: str, uids: Iterable[int]) -> dict[int, Any]:
        ids = list(uids)
        self._trace_count(len(ids))
        with self._traced([shard], ids) as read:
            values = super().get_many(shard, ids)
            read.found.update(v for v in values.values() if isinstance(v, int) and not isinstance(v, bool))
        return values

    def list_count_many(self, shard: str, uids: Iterable[int]) -> dict[int, int]:
        ids = list(uids)
        self._trace_count(len(ids))
        with self._traced([shard], ids):
            return super().list_count_many(shard, ids)

    def list_page_many(
        self, shard: str, uids: Iterable[int], offset: int = 0, limit: int = 100
    ) -> dict[int, list[int]]:
        ids = list(uids)
        with self._traced([shard], ids) as read:
            pages = super().list_page_many(shard, ids, offset, limit)
            read.found.update(uid for page in pages.values() for uid in page)
        return pages

    def list_window_many(
        self, shard: str, uids: Iterable[int], offset: int = 0, limit: int = 100
    ) -> tuple[dict[int, int], dict[int, list[int]]]:
        ids = list(uids)
        self._trace_count(len(ids))
        with self._traced([shard], ids) as read:
            counts, pages = super().list_window_many(shard, ids, offset, limit)
            read.found.update(uid for page in pages.values() for uid in page)
        return counts, pages

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        with self._traced((), ()), super().read():
            yield

    def begin_read(self, shard: str, *, wait: bool = True) -> bool:
        with self._traced([shard], (), data=False):
            return super().begin_read(shard, wait=wait)

    def end_reads(self) -> None:
        with self._traced(self._state().reading or (), (), data=False):
            super().end_reads()


def _critical_path(total: Ops, reads: Sequence[_Read], profile: str) -> tuple[float, int]:
    """Modelled latency, and rounds, if each read started as soon as the reads it needs ended.

    Reads that do not need each other overlap; a chain of reads that do is the critical path.
    ``rounds`` counts the reads of data on the longest such chain (a lock-ahead's BEGIN and
    COMMIT fetch nothing). Operations outside every read (none for a query) are added as if made
    one after another. The reads are taken in the order they started, whatever the order of
    ``reads`` (several threads append to it).
    """
    p = PROFILES[profile]
    ordered = sorted(reads, key=lambda r: r.start)
    finish: list[float] = []
    depth: list[int] = []
    for j, read in enumerate(ordered):
        assert read.ops is not None
        needed = [i for i in range(j) if read.needs(ordered[i])]
        finish.append(max((finish[i] for i in needed), default=0.0) + read.ops.latency_s(p))
        depth.append(read.data + max((depth[i] for i in needed), default=0))
    counted = [r.ops for r in reads if r.ops is not None]
    rest = p.latency_s(
        total.metadata_ops - sum(o.metadata_ops for o in counted),
        total.data_read_ops - sum(o.data_read_ops for o in counted),
        total.data_write_ops - sum(o.data_write_ops for o in counted),
    )
    return max(finish, default=0.0) + rest, max(depth, default=0)


def graphql_request_ops(
    query: str = BENCHMARK_QUERY,
    variables: Mapping[str, Any] | None = None,
    *,
    data: Callable[[ShardStore], Mapping[str, Any] | None] = benchmark_graph,
    journal_modes: Sequence[str] = ("delete",),
    cold: Sequence[bool] = (False, True),
    profiles: Sequence[str] = tuple(PROFILES),
    root: str | Path | None = None,
    repeats: int = 3,
    dynamodb: Mapping[str, int] | None = None,
    name: str = "graphql",
) -> list[Row]:
    """Run a GraphQL query against a store opened through the EFS model; one row per
    (journal_mode, cold, profile), with the columns of :func:`run_workloads` and:

    * ``latency_parallel_ms``: the modelled latency of the critical path through the request's
      reads as ``GraphQLAPI(parallel_reads=True)`` makes them (its default on EFS), each traced on
      the thread that makes it: a read waits for the reads it needs (its ids come from their
      results, or its node's type from a ``_type`` read) and for the earlier reads of its shard
      (one thread and connection per shard; a lock-ahead's BEGIN and final COMMIT are reads of
      their shard), the others overlapping. ``latency_ms`` is the sum, as if every round trip
      were made one after another;
    * ``rounds``: the reads of data on the longest chain (dependent rounds of reads);
    * ``dynamodb_items_read``: the items of the DynamoDB equivalent.

    ``data(store)`` writes the data (default :func:`benchmark_graph`) and may return the query's
    variables; ``variables`` overrides them. A warm request (``cold=False``) follows an unmeasured
    one on the same API and store; a cold one is the first request of a new store and API. The
    measured runs must make identical operations. The DynamoDB equivalent is, unless
    ``dynamodb`` says otherwise, one item per value and per list read, in one BatchGetItem call
    per round. A request that answers with errors raises RuntimeError.
    """
    _check_choices(journal_modes, profiles, repeats)
    apis: weakref.WeakKeyDictionary[ShardStore, GraphQLAPI] = weakref.WeakKeyDictionary()

    def run(store: ShardStore, state: Mapping[str, Any] | None, i: int) -> None:
        assert isinstance(store, _TracedStore)
        api = apis.get(store)
        if api is None:
            # The path EFS takes: a lock-ahead, then each level's shards at once on their threads.
            api = apis[store] = GraphQLAPI(store, parallel_reads=True)
        store.trace_items, store.trace_reads = 0, []
        given = variables if variables is not None else state
        response = api.execute(query, dict(given) if given is not None else None)
        if "errors" in response:
            raise RuntimeError(f"{name}: the request failed: {response['errors']}")

    def case(base: Path, model: EFSModel, journal_mode: str, is_cold: bool) -> list[Row]:
        folder = base / f"{name}-{journal_mode}-{'cold' if is_cold else 'warm'}"
        stores: list[_TracedStore] = []

        def open_store() -> ShardStore:
            stores.append(_TracedStore(folder, model=model, journal_mode=journal_mode, vfs=model.name))
            return stores[-1]

        workload = Workload(name, "a GraphQL request", data, run, cold=is_cold)
        try:
            ops, _ = _measure(
                workload,
                model,
                folder,
                journal_mode=journal_mode,
                locking="normal",
                repeats=repeats,
                open_store=open_store,
            )
        finally:
            for store in stores:  # their reader threads
                api = apis.pop(store, None)
                if api is not None:
                    api.close()
        last = stores[-1]  # its reads are those of the last measured run (all runs are alike)
        parallel = {p: _critical_path(ops, last.trace_reads, p)[0] for p in profiles}
        rounds = _critical_path(ops, last.trace_reads, "local")[1]
        equivalent = dynamodb or {
            "items_read": last.trace_items,
            "dynamodb_calls": max(rounds, math.ceil(last.trace_items / DYNAMODB.batch_get_max)),
        }
        return _case_rows(
            ops,
            _case(name, journal_mode, "normal", is_cold, repeats),
            profiles,
            equivalent,
            False,
            per_profile=lambda p: {"latency_parallel_ms": _ms(parallel[p]), "rounds": rounds},
            extra={"dynamodb_items_read": equivalent.get("items_read", 0)},
        )

    with _workspace(root, "efs-graphql") as (base, model):
        return [
            row
            for journal_mode, is_cold in itertools.product(journal_modes, cold)
            for row in case(base, model, journal_mode, bool(is_cold))
        ]


# -- query mix experiment (notebook 05) ----------------------------------------------------------

#: The requests of the mix: a GraphQL document each, run against a loaded insurance store.
MIX_DOCUMENTS: dict[str, str] = {
    "point_read": "query($id: ID!) { claim(id: $id) { id claimIdentifier claimTypeCode timestamp } }",
    "nested": (
        "query($id: ID!) { claim(id: $id) { id claimTypeCode parties(first: 10) { edges { node {"
        " id partyIdentifier claims(first: 10) { totalCount edges { node { id claimTypeCode } } } } } } } }"
    ),
    "list_page": (
        "query($id: ID!, $after: String) { party(id: $id) { claims(first: 100, after: $after) {"
        " totalCount pageInfo { hasNextPage endCursor } edges { node { id } } } } }"
    ),
    "create": (
        "mutation($claim: ID!, $number: String!, $at: DateTime!) { createTransaction(input: {"
        ' financialTransactionIdentifier: $number, timestamp: $at, claim: $claim, amount: "10.50",'
        ' serviceTypeCode: "REPAIR" }) { id } }'
    ),
    "update": (
        "mutation($id: ID!, $code: String!) { updateClaim(id: $id, input: {claimTypeCode: $code}) { id } }"
    ),
}
#: The share of each request in the mix: mostly reads, a few writes.
MIX_WEIGHTS: dict[str, float] = {
    "point_read": 0.5,
    "nested": 0.2,
    "list_page": 0.2,
    "create": 0.05,
    "update": 0.05,
}
#: Sequential DynamoDB round trips of each request in the equivalent design, where every read a
#: level of the query needs goes out in one BatchGetItem/Query round (parallel calls count once):
#: a node's fields (1); a claim, its parties' page, their fields and claim pages, those claims (3);
#: a list's counter and page, then the entries' nodes (2); a write checks the node it touches, then
#: one TransactWriteItems (2).
MIX_DYNAMODB_ROUNDS: dict[str, int] = {"point_read": 1, "nested": 3, "list_page": 2, "create": 2, "update": 2}
#: The designs :func:`mix_summary` compares.
DESIGNS = ("efs_elastic", "efs_bursting", "efs_provisioned", "efs_one_zone", "dynamodb")

_ENTRY_BYTES = 50  # one list entry as a DynamoDB item: key, position, target id


class _ItemCounter(ShardStore):
    """A store that also counts the items the DynamoDB design would read and write instead.

    That design keeps one item per field value and one per list entry, plus a counter item per
    list. A page of list entries is counted in 4 KB read units, as a Query is billed.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.items_read = self.items_written = 0

    def get_many(self, shard: str, uids: Iterable[int]) -> dict[int, Any]:
        ids = list(uids)
        self.items_read += len(ids)
        return super().get_many(shard, ids)

    def list_count_many(self, shard: str, uids: Iterable[int]) -> dict[int, int]:
        ids = list(uids)
        self.items_read += len(ids)
        return super().list_count_many(shard, ids)

    def list_page_many(
        self, shard: str, uids: Iterable[int], offset: int = 0, limit: int = 100
    ) -> dict[int, list[int]]:
        pages = super().list_page_many(shard, uids, offset, limit)
        self.items_read += sum(math.ceil(len(p) * _ENTRY_BYTES / 4096) for p in pages.values())
        return pages

    def list_window_many(
        self, shard: str, uids: Iterable[int], offset: int = 0, limit: int = 100
    ) -> tuple[dict[int, int], dict[int, list[int]]]:
        ids = list(uids)
        self.items_read += len(ids)
        counts, pages = super().list_window_many(shard, ids, offset, limit)
        self.items_read += sum(math.ceil(len(p) * _ENTRY_BYTES / 4096) for p in pages.values())
        return counts, pages

    @contextlib.contextmanager
    def write(self) -> Iterator[Any]:
        with super().write() as batch:
            yield batch
            self.items_written += len(batch.ops)


def _mix_targets(store: ShardStore, rng: random.Random, count: int) -> dict[str, list[int]]:
    """``count`` random claims and the parties with the longest claim lists (the hubs)."""
    by_type: dict[str, list[int]] = {}
    after = None
    while page := store.scan(TYPE_SHARD, after=after, limit=10_000):
        for uid, type_name in page:
            by_type.setdefault(type_name, []).append(uid)
        after = page[-1][0]
    claims, parties = by_type.get("Claim", []), by_type.get("Party", [])
    if not claims or not parties:
        raise ValueError(f"{store.root} holds no claims or no parties: load a data set first")
    lengths = store.list_count_many("party_claims", parties)
    longest = max(lengths.values())
    hubs = [p for p in parties if lengths[p] * 2 >= longest]  # the hubs: lists near the longest
    return {
        "claims": [rng.choice(claims) for _ in range(count)],
        "hubs": hubs,
        "hub_lengths": [lengths[h] for h in hubs],
    }


def _mix_requests(
    store: ShardStore, requests: int, weights: Mapping[str, float], seed: int
) -> list[tuple[str, dict[str, Any]]]:
    """The ``(kind, variables)`` of each request, drawn with ``weights``; the same for a seed."""
    rng = random.Random(f"query_mix:{seed}")
    targets = _mix_targets(store, rng, requests)
    kinds = rng.choices(list(weights), weights=list(weights.values()), k=requests)
    out = []
    for i, (kind, claim) in enumerate(zip(kinds, targets["claims"], strict=True)):
        if kind == "list_page":
            h = rng.randrange(len(targets["hubs"]))
            offset = rng.randrange(max(1, targets["hub_lengths"][h] - 100))
            variables: dict[str, Any] = {
                "id": encode(targets["hubs"][h]),
                "after": offset_to_cursor(offset - 1) if offset else None,
            }
        elif kind == "create":
            variables = {"claim": encode(claim), "number": f"MIX-{seed}-{i}", "at": "2025-01-02T03:04:05Z"}
        elif kind == "update":
            variables = {"id": encode(claim), "code": rng.choice(["MOTOR", "PROPERTY", "LIABILITY"])}
        else:
            variables = {"id": encode(claim)}
        out.append((kind, variables))
    return out


def query_mix(
    root: str | os.PathLike[str],
    *,
    requests: int = 1000,
    weights: Mapping[str, float] | None = None,
    seed: int = 0,
    profiles: Sequence[str] = ("elastic", "bursting", "provisioned", "one_zone"),
    journal_mode: str = "delete",
) -> list[Row]:
    """Run a mix of GraphQL requests (:data:`MIX_DOCUMENTS`) against the loaded store at ``root``.

    ``requests`` requests are drawn with ``weights`` (default :data:`MIX_WEIGHTS`) over random
    claims and, for list pages, random 100-entry windows of the longest lists (the hub parties'
    claims). The same sequence runs three times, each on a warm API (every kind runs once first,
    unmeasured, as on a warm Lambda): on the plain store for its wall time on this machine's disk;
    with ``synchronous=off`` for its compute time (the same work without waiting for the disk);
    and through the EFS model for its file-system operations, which are exact. The mutations
    change the store (each write request creates a transaction or updates a claim, three times).

    One row per request: ``i``, ``kind``, ``local_ms`` (wall time on local disk), ``compute_ms``,
    the operations (``ops_total``, ``nfs_requests``, ``db_opens``, ``lock_requests``,
    ``metadata_read_ops``, ``metadata_write_ops``, ``data_read_ops``, ``data_write_ops``,
    ``data_read_bytes``, ``data_write_bytes``), ``efs_<profile>_ms`` (``compute_ms`` plus the
    modelled waits of those requests under each of ``profiles``), the DynamoDB equivalent
    (``dynamodb_items_read``, ``dynamodb_items_written`` as counted on the same request,
    ``dynamodb_calls`` from :data:`MIX_DYNAMODB_ROUNDS`) and ``dynamodb_ms`` (``compute_ms``
    plus one ~10 ms round trip per call).
    """
    weights = dict(MIX_WEIGHTS if weights is None else weights)
    unknown = set(weights) - set(MIX_DOCUMENTS)
    if unknown or requests < 1 or not weights or min(weights.values()) < 0:
        raise ValueError(f"weights name kinds of {list(MIX_DOCUMENTS)} (>= 0) and requests >= 1")
    bad = [p for p in profiles if p not in PROFILES]
    if bad:
        raise ValueError(f"unknown profiles {bad}; expected some of {list(PROFILES)}")

    def run(api: GraphQLAPI, kind: str, variables: Mapping[str, Any]) -> None:
        response = api.execute(MIX_DOCUMENTS[kind], dict(variables))
        if "errors" in response:
            raise RuntimeError(f"{kind} request failed: {response['errors'][:2]}")

    def timed(store: ShardStore) -> list[float]:
        api = GraphQLAPI(store)
        for kind, variables in warmup.items():
            run(api, kind, variables)
        walls = []
        for kind, variables in plan:
            start = time.perf_counter()
            run(api, kind, variables)
            walls.append(time.perf_counter() - start)
        return walls

    with ShardStore(root, journal_mode=journal_mode, create=False) as store:
        plan = _mix_requests(store, requests, weights, seed)
        warmup = {kind: variables for kind, variables in reversed(plan)}
        local = timed(store)
    with ShardStore(root, journal_mode=journal_mode, synchronous="off", create=False) as store:
        compute = timed(store)
    rows = []
    with (
        EFSModel(f"query-mix-{uuid.uuid4().hex[:12]}") as model,
        _ItemCounter(root, journal_mode=journal_mode, vfs=model.name, create=False) as counted,
    ):
        api = GraphQLAPI(counted, parallel_reads=False)  # one thread: _ItemCounter counts unlocked
        for kind, variables in warmup.items():
            run(api, kind, variables)
        for i, (kind, variables) in enumerate(plan):
            counted.items_read = counted.items_written = 0
            with model.accounting() as ops:
                run(api, kind, variables)
            calls = MIX_DYNAMODB_ROUNDS[kind]
            rows.append(
                {
                    "i": i,
                    "kind": kind,
                    "local_ms": round(local[i] * 1000, 3),
                    "compute_ms": round(compute[i] * 1000, 3),
                    **_ops_columns(ops),
                    **{f"efs_{p}_ms": round((compute[i] + ops.latency_s(p)) * 1000, 3) for p in profiles},
                    "dynamodb_items_read": counted.items_read,
                    "dynamodb_items_written": counted.items_written,
                    "dynamodb_calls": calls,
                    "dynamodb_ms": round((compute[i] + calls * DYNAMODB.latency_s) * 1000, 3),
                }
            )
    return rows


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _mix_profile(row: Row) -> RequestProfile:
    return RequestProfile(
        metadata_read_ops=row["metadata_read_ops"],
        metadata_write_ops=row["metadata_write_ops"],
        data_read_ops=row["data_read_ops"],
        data_read_bytes=row["data_read_bytes"],
        data_write_ops=row["data_write_ops"],
        data_write_bytes=row["data_write_bytes"],
        compute_s=row["compute_ms"] / 1000,
        items_read=row["dynamodb_items_read"],
        items_written=row["dynamodb_items_written"],
        dynamodb_calls=row["dynamodb_calls"],
    )


def mix_summary(
    rows: Sequence[Row],
    *,
    weights: Mapping[str, float] | None = None,
    stored_gib: float = 1.0,
    provisioned_mibps: float = math.inf,
    memory_mb: int = 1024,
) -> list[Row]:
    """Latency, cost and capacity of each design, per request kind and for the whole mix.

    ``rows`` come from :func:`query_mix`. The mix weighs each kind by ``weights`` (default: as
    drawn). One row per (``kind``, ``design``) of :data:`DESIGNS`, ``kind`` ``"mix"`` for the
    whole: ``requests``, ``median_ms``, ``p95_ms`` and ``p99_ms`` (latency per request: local
    compute plus modelled storage waits), ``mean_nfs_requests``, ``usd_per_million`` (Lambda
    requests and duration plus storage requests: :func:`efs_sqlite.costs.cost_per_million`;
    storage at rest excluded; ``None`` for One Zone, which the cost model does not price) and
    ``max_requests_per_s`` (what the file system sustains for a month:
    :func:`efs_sqlite.costs.max_requests_per_second` with ``stored_gib`` of data and, for
    Provisioned, ``provisioned_mibps`` bought — by default as much as the IOPS limits can use, the
    cost being in ``usd_per_million``; ``None`` for DynamoDB on demand, which scales with the
    request rate).
    """
    if not rows:
        raise ValueError("no rows: run query_mix first")
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    drawn = Counter(r["kind"] for r in rows)
    weights = dict(weights or {k: drawn[k] for k in kinds})
    groups = {k: [r for r in rows if r["kind"] == k] for k in kinds}
    out = []
    for kind in [*kinds, "mix"]:
        members = rows if kind == "mix" else groups[kind]
        # Each request weighs its kind's share of the mix, split over that kind's requests.
        share = (lambda r: weights.get(r["kind"], 0) / drawn[r["kind"]]) if kind == "mix" else (lambda r: 1.0)
        mix = [(_mix_profile(r), share(r)) for r in members if share(r) > 0]
        usd = cost_per_million(mix, memory_mb=memory_mb)  # One Zone is not priced: None
        for design in DESIGNS:
            latencies = [r[f"{design}_ms"] for r in members if f"{design}_ms" in r]
            out.append(
                {
                    "kind": kind,
                    "design": design,
                    "requests": len(members),
                    "median_ms": statistics.median(latencies) if latencies else None,
                    "p95_ms": _percentile(latencies, 0.95) if latencies else None,
                    "p99_ms": _percentile(latencies, 0.99) if latencies else None,
                    "mean_nfs_requests": None
                    if design == "dynamodb"
                    else statistics.fmean(r["nfs_requests"] for r in members),
                    "usd_per_million": usd.get(design),
                    "max_requests_per_s": None
                    if design == "dynamodb"
                    else max_requests_per_second(
                        mix, design[4:], stored_gib=stored_gib, provisioned_mibps=provisioned_mibps
                    ),
                }
            )
    return out
