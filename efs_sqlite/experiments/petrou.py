"""Petrou's measurement of SQLite on EFS from Lambda, and his workload run through the EFS model.

Lambros Petrou timed, inside a warm Lambda, a connection opened at module load doing 100 INSERTs in
one transaction into ``users(name, age)`` (60 % named ``Lambros-<i>``, the rest ``Lambros``), then
``SELECT * FROM users WHERE name LIKE 'Lambros'`` (the first row) and the same with ``'Lambros%'``
(every row): about 140 ms per invocation on Lambda over EFS, 30-40 ms locally
(docs/SOURCES.md#petrou). :func:`invocation` is that handler's body; :func:`workload_ops` runs it
on a warm connection through the EFS model and returns one invocation's operations, which
:func:`fit_scale` fits to the measurement.

>>> from efs_sqlite.efs_model import PROFILES
>>> ops = workload_ops(warm_invocations=2)
>>> ops.counts["sync"], ops.nfs["WRITE"] > 0
(3, True)
>>> round(fit_scale(ops, PROFILES["elastic"], 0.105) * ops.latency_s("elastic"), 3)
0.105
"""

from __future__ import annotations

import random
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import apsw

from efs_sqlite.efs_model import EFSModel, LatencyProfile, Ops
from efs_sqlite.nfs_client import Translation

__all__ = ["PETROU", "PetrouMeasurement", "fit_scale", "invocation", "workload_ops"]


@dataclass(frozen=True)
class PetrouMeasurement:
    """What Petrou measured per warm invocation, in milliseconds."""

    lambda_ms: float = 140.0
    local_ms: tuple[float, float] = (30.0, 40.0)
    inserts: int = 100
    source: str = "docs/SOURCES.md#petrou"

    @property
    def efs_wait_s(self) -> float:
        """The time EFS added: Lambda's time less the same work on a local disk (its midpoint).

        The local time includes the local disk's own syncs, so this slightly understates the wait.

        >>> PETROU.efs_wait_s
        0.105
        """
        return round((self.lambda_ms - sum(self.local_ms) / len(self.local_ms)) / 1000, 9)


PETROU = PetrouMeasurement()


def invocation(db: apsw.Connection, rng: random.Random, inserts: int = PETROU.inserts) -> int:
    """One invocation of Petrou's handler on ``db``; the number of rows the last SELECT returned."""
    with db:  # one transaction, as better-sqlite3's db.transaction()
        for i in range(inserts):
            name = f"Lambros-{i}" if rng.random() < 0.6 else "Lambros"
            db.execute("INSERT INTO users (name, age) VALUES (?, ?)", (name, i))
    db.execute("SELECT * FROM users WHERE name LIKE ?", ("Lambros",)).fetchone()
    return len(db.execute("SELECT * FROM users WHERE name LIKE ?", ("Lambros%",)).fetchall())


def workload_ops(
    *,
    translation: str | Translation = "linux_nfs",
    warm_invocations: int = 10,
    seed: int = 0,
    root: str | Path | None = None,
) -> Ops:
    """The operations of one warm invocation, after ``warm_invocations`` on the same connection.

    The database lives in a temporary folder under ``root``; the connection uses the rollback
    journal (DELETE) and ``synchronous=FULL``, SQLite's defaults, as his did.
    """
    if warm_invocations < 1:
        raise ValueError("warm_invocations must be >= 1 (the measurement is of a warm Lambda)")
    rng = random.Random(seed)
    with (
        tempfile.TemporaryDirectory(prefix="petrou-", dir=root) as folder,
        EFSModel(f"petrou-{uuid.uuid4().hex[:12]}", translation=translation) as model,
    ):
        db = apsw.Connection(str(Path(folder) / "users.db"), vfs=model.name)
        try:
            db.execute("PRAGMA journal_mode=delete; PRAGMA synchronous=full").fetchall()
            db.execute("CREATE TABLE IF NOT EXISTS users (name TEXT, age INTEGER)")
            for _ in range(warm_invocations):
                invocation(db, rng)
            with model.accounting() as ops:
                invocation(db, rng)
        finally:
            db.close()
    return ops


def fit_scale(ops: Ops, base: LatencyProfile, target_s: float) -> float:
    """The factor ``s`` for which ``ops`` under ``base.scaled(s)`` waits ``target_s``.

    A workload's wait is linear in its profile's delays, so ``s`` is the target over the wait
    under ``base``.
    """
    at_base = ops.latency_s(base)
    if at_base <= 0 or target_s <= 0:
        raise ValueError(f"cannot fit a wait of {target_s} s to operations that wait {at_base} s")
    return target_s / at_base
