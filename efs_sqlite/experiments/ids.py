"""Id experiments (notebook 01): collisions by id scheme, the printable forms of an id, the cost
of the key in SQLite.

* :func:`id_collisions` — ids generated at a simulated rate by the earlier system's decimal scheme,
  by plain random Small UIDs (Mediagone's generator), and by :class:`efs_sqlite.uid.Generator`
  (one, and several side by side as concurrent Lambda instances), with the duplicates counted.
* :func:`id_forms` — the printable forms of an id: length, whether string order is time order,
  whether a JavaScript client reads it exactly.
* :func:`rowid_benchmark` — an ``INTEGER PRIMARY KEY`` (SQLite's rowid) against ``TEXT`` keys:
  insert and lookup speed, file size, B-trees and cold EFS reads per lookup.

>>> rows = id_collisions([100_000], duration_s=0.01, generators=2)
>>> [(r["scheme"], r["ids"]) for r in rows]
[('decimal', 1000), ('random20', 1000), ('small-uid', 1000), ('small-uid x2', 1000)]
>>> next(r["collisions"] for r in rows if r["scheme"] == "small-uid")
0
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import apsw

from efs_sqlite.efs_model import EFSModel
from efs_sqlite.experiments.tables import Row
from efs_sqlite.uid import SEQ_BITS, Generator, encode, to_mediagone

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


def sample_ids(count: int, rate: float, seed: int) -> list[int]:
    """``count`` Small UIDs as one :class:`Generator` makes them at ``rate`` ids/s; the same for a seed.

    >>> ids = sample_ids(3, 1000, 0)
    >>> ids == sorted(ids) and ids == sample_ids(3, 1000, 0)
    True
    """
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
    ids = sample_ids(count, rate, seed)
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
    ids = sample_ids(rows, 100_000, seed)
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
