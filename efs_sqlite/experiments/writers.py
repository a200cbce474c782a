"""Writers on one shard (notebook 05): a commit holds the shard's exclusive lock for its duration.

* :func:`hold_times` — a warm one-row commit and a warm point read of one shard, measured through
  the EFS model: the commit's modelled latency is how long it holds the shard's lock (``hold_s``);
* :func:`write_limits` — from them, per profile: the most commits per second one shard sustains
  (``1 / hold_s``) and a read's latency quantile under a given write rate;
* :func:`run_writers` — the same measured with real processes under the sleeping model: writers
  that really hold the lock while the model sleeps their round trips, a reader timing its reads.

The queueing estimate (:func:`read_wait_quantile`): commits arrive at one shard as a Poisson
stream of ``rate`` per second and each holds the lock a fixed ``hold_s``; the lock serves them one
at a time, an M/D/1 queue of utilisation ``rho = rate * hold_s``, stable only while ``rho < 1``. A
read arriving at a random moment (Poisson arrivals see time averages) waits for the writer holding
the lock and for those queued behind it (a waiting writer's PENDING lock keeps new readers out):
the M/D/1 waiting time ``W``, whose distribution is Erlang's: with ``u_k = rate * (k * hold_s - t)``,
``P(W <= t) = (1 - rho) * sum(u_k**k / k! * exp(-u_k) for k in 0 .. floor(t / hold_s))``
(``docs/SOURCES.md#writers-queue``, with SQLite's lock states).
A read's ``q``-quantile latency is its own latency plus ``W``'s ``q``-quantile. It overstates the
wait (a commit's first round trips hold only a RESERVED lock that readers pass) and ignores a
writer waiting for readers to leave.

:data:`WRITER_BOUNDS` are the documented bounds a measured run lies within: the lock can never serve more
commits than ``1 / hold_s`` (timer slack aside) but may serve far fewer (the writer's own compute
and local disk, and the busy wait's steps of up to 10 ms idle it); a read's measured tail may also
exceed the estimate by the busy wait's overshoot (a blocked reader retries in steps of up to
10 ms) and the sleeping model's timer slack.

>>> round(read_wait_quantile(0.5, rate=10, hold_s=0.02), 6)  # rho 0.2: most reads never wait
0.0
>>> 0 < read_wait_quantile(0.99, rate=10, hold_s=0.02) < 0.04
True
"""

from __future__ import annotations

import math
import multiprocessing
import random
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from efs_sqlite.efs_model import EFSModel
from efs_sqlite.experiments.latency import LEVELS, latency_range
from efs_sqlite.experiments.measure import milliseconds
from efs_sqlite.experiments.tables import Row
from efs_sqlite.store import ShardStore

__all__ = [
    "WRITER_BOUNDS",
    "Bounds",
    "Holds",
    "WritersRun",
    "hold_times",
    "read_wait_quantile",
    "run_writers",
    "write_limits",
]

#: The shard the writers and the reader share.
_SHARD = "claim_type_code"


class Bounds(NamedTuple):
    """How far a measured run may lie from the estimate: the sustained commit rate between
    ``rate_low`` and ``rate_high`` times ``1 / hold_s``; a read's tail at most ``tail_factor``
    times the estimate plus ``tail_slack_s``, and at least the read's own modelled latency."""

    rate_low: float
    rate_high: float
    tail_factor: float
    tail_slack_s: float


#: The bounds of :func:`run_writers`' figures against the estimate (see the module's docstring).
WRITER_BOUNDS = Bounds(rate_low=0.2, rate_high=1.1, tail_factor=2.0, tail_slack_s=0.03)


class Holds(NamedTuple):
    """A warm one-row commit (``hold_s``, the lock's hold time) and a warm point read
    (``read_s``) of one shard, modelled under one latency profile."""

    profile: str
    hold_s: float
    read_s: float


def _profiles(mode: str) -> dict[str, Any]:
    return dict(zip(LEVELS, latency_range(mode), strict=True))


def hold_times(mode: str = "elastic", *, translation: str = "linux_nfs") -> dict[str, Holds]:
    """A warm one-row commit and point read of one shard through the EFS model, under the low,
    typical and high profiles of ``mode`` (keys of :data:`~efs_sqlite.experiments.latency.LEVELS`)."""
    with (
        tempfile.TemporaryDirectory() as root,
        EFSModel(f"writers-{uuid.uuid4().hex[:12]}", translation=translation) as model,
        ShardStore(root, vfs=model.name) as store,
    ):
        store.put(_SHARD, 1, "A")  # the file, its table and the connection: warm
        store.get(_SHARD, 1)
        with model.accounting() as commit:
            store.put(_SHARD, 1, "B")
        with model.accounting() as read:
            store.get(_SHARD, 1)
    return {
        level: Holds(profile.name, commit.latency_s(profile), read.latency_s(profile))
        for level, profile in _profiles(mode).items()
    }


def read_wait_quantile(q: float, *, rate: float, hold_s: float) -> float:
    """The ``q``-quantile of a read's wait for the lock (seconds) when commits of ``hold_s``
    arrive at ``rate`` per second: Erlang's M/D/1 waiting time (module docstring). ``inf`` when
    the shard cannot keep up (``rate * hold_s >= 1``)."""
    if not 0 < q < 1 or rate < 0 or hold_s <= 0:
        raise ValueError("q in (0, 1), rate >= 0 and hold_s > 0")
    rho = rate * hold_s
    if rho >= 1:
        return math.inf
    if q <= 1 - rho:  # the lock is free at the read's arrival
        return 0.0

    def cdf(t: float) -> float:
        return (1 - rho) * sum(
            (rate * (k * hold_s - t)) ** k / math.factorial(k) * math.exp(-rate * (k * hold_s - t))
            for k in range(int(t / hold_s) + 1)
        )

    low, high = 0.0, hold_s
    while cdf(high) < q:  # the wait's tail is exponential: doubling finds an upper end quickly
        low, high = high, 2 * high
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if cdf(mid) < q else (low, mid)
    return high


def write_limits(
    write_rates: Sequence[float],
    *,
    mode: str = "elastic",
    q: float = 0.99,
    translation: str = "linux_nfs",
) -> list[Row]:
    """Per profile of ``mode``'s range and per write rate (commits per second to one shard):
    ``level``, ``profile``, ``hold_ms`` (a commit's hold of the lock), ``max_writes_per_s``
    (``1 / hold``), ``writes_per_s``, ``utilisation``, ``read_ms`` (a point read alone) and
    ``read_p<q>_ms`` (the read's ``q``-quantile under that write rate; ``None`` past the limit)."""
    label = f"read_p{round(q * 100)}_ms"
    rows = []
    for level, holds in hold_times(mode, translation=translation).items():
        for rate in write_rates:
            wait = read_wait_quantile(q, rate=rate, hold_s=holds.hold_s)
            rows.append(
                {
                    "level": level,
                    "profile": holds.profile,
                    "hold_ms": milliseconds(holds.hold_s),
                    "max_writes_per_s": round(1 / holds.hold_s, 2),
                    "writes_per_s": rate,
                    "utilisation": round(rate * holds.hold_s, 3),
                    "read_ms": milliseconds(holds.read_s),
                    label: None if math.isinf(wait) else milliseconds(holds.read_s + wait),
                }
            )
    return rows


class WritersRun(NamedTuple):
    """What :func:`run_writers` measured: the commits per second all writers made together, and
    the reader's latencies (seconds, sorted)."""

    writes_per_s: float
    reads_s: list[float]

    def read_quantile(self, q: float) -> float:
        return self.reads_s[min(len(self.reads_s) - 1, math.ceil(q * len(self.reads_s)) - 1)]


_CTX = multiprocessing.get_context("fork")


def _open(root: str, profile: str, translation: str) -> tuple[EFSModel, ShardStore]:
    level, mode = profile.split(":")
    model = EFSModel(
        f"writers-{uuid.uuid4().hex[:12]}",
        profile=_profiles(mode)[level],
        sleep=True,
        translation=translation,
    )
    return model, ShardStore(root, vfs=model.name)


def _writer(args: tuple[Any, ...]) -> tuple[int, float]:
    root, profile, translation, slot, rate, duration_s, start = args
    model, store = _open(root, profile, translation)
    with model, store:
        store.put(_SHARD, slot, 0)
        rng = random.Random(slot)
        start.wait()
        t0 = time.perf_counter()
        due, commits = t0, 0
        while (now := time.perf_counter()) - t0 < duration_s:
            if rate:  # a Poisson stream of commits; a late one goes at once
                due += rng.expovariate(rate)
                time.sleep(max(0.0, due - now))
            store.put(_SHARD, slot, commits)
            commits += 1
        return commits, time.perf_counter() - t0


def _reader(args: tuple[Any, ...]) -> list[float]:
    root, profile, translation, think_s, duration_s, start = args
    model, store = _open(root, profile, translation)
    with model, store:
        store.get(_SHARD, 0)
        rng = random.Random("reader")
        start.wait()
        t0, reads = time.perf_counter(), []
        while time.perf_counter() - t0 < duration_s:
            time.sleep(rng.expovariate(1 / think_s))  # reads at random moments
            t = time.perf_counter()
            store.get(_SHARD, 0)
            reads.append(time.perf_counter() - t)
        return reads


def run_writers(
    *,
    writers: int = 2,
    write_rate: float = 0.0,
    reader: bool = False,
    duration_s: float = 2.0,
    mode: str = "elastic",
    level: str = "typical",
    translation: str = "linux_nfs",
    root: str | Path | None = None,
) -> WritersRun:
    """Real processes on one shard under the sleeping EFS model (``mode``'s ``level`` profile):
    ``writers`` writers, each committing one-row updates back to back (``write_rate`` 0) or as a
    Poisson stream of ``write_rate`` commits per second, and, with ``reader``, one process
    reading the shard at random moments, for ``duration_s`` seconds."""
    if writers < 1 or write_rate < 0 or duration_s <= 0 or level not in LEVELS:
        raise ValueError(f"writers >= 1, write_rate >= 0, duration_s > 0, level in {LEVELS}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = str(root or tmp)
        with ShardStore(folder) as store:  # the shard exists before anyone starts
            store.put(_SHARD, 0, "A")
        profile = f"{level}:{mode}"
        start = _CTX.Manager().Barrier(writers + reader)
        hold = hold_times(mode, translation=translation)[level].hold_s
        jobs = [
            (folder, profile, translation, slot + 1, write_rate, duration_s, start) for slot in range(writers)
        ]
        with _CTX.Pool(writers + reader) as pool:
            # The reader reads about once per hold time: enough samples, and a fair share of the lock.
            reads = (
                pool.apply_async(_reader, ((folder, profile, translation, hold, duration_s, start),))
                if reader
                else None
            )
            done = pool.map(_writer, jobs)
            reads_s = sorted(reads.get()) if reads is not None else []
    commits = sum(c for c, _ in done)
    wall = max(w for _, w in done)
    return WritersRun(commits / wall, reads_s)
