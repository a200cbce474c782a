"""The latency range of each EFS configuration: low, typical and high profiles.

* ``low``: AWS's best case (:data:`~efs_sqlite.efs_model.LOW_PROFILES`);
* ``typical``: AWS's stated ~1 ms read, ~2.7 ms write (:data:`~efs_sqlite.efs_model.PROFILES`);
* ``high``: the typical profile scaled until Petrou's workload, run through the model with the
  Linux client's translation, waits what his measurement shows EFS added
  (:mod:`efs_sqlite.experiments.petrou`); the factor is computed on first use.

>>> r = latency_range("elastic")
>>> (r.low.name, r.typical.name, r.high.name)
('elastic-low', 'elastic', 'elastic-high')
>>> r.low.read_s < r.typical.read_s < r.high.read_s
True
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from efs_sqlite.efs_model import LOW_PROFILES, PROFILES, LatencyProfile, Ops
from efs_sqlite.experiments.petrou import PETROU, fit_scale, workload_ops
from efs_sqlite.experiments.tables import Row

__all__ = ["LEVELS", "LatencyRange", "high_scale", "latency_range", "petrou_rows", "range_ms"]

#: The three ends of a range, in order.
LEVELS = ("low", "typical", "high")


class LatencyRange(NamedTuple):
    """Three latency profiles of one EFS configuration."""

    low: LatencyProfile
    typical: LatencyProfile
    high: LatencyProfile


@functools.cache
def high_scale() -> float:
    """How much slower than typical EFS was under Petrou's workload (fitted on Elastic's profile)."""
    return fit_scale(workload_ops(), PROFILES["elastic"], PETROU.efs_wait_s)


@functools.cache
def latency_range(mode: str) -> LatencyRange:
    """The low, typical and high profiles of ``mode`` (a key of :data:`PROFILES`)."""
    if mode not in PROFILES:
        raise ValueError(f"unknown profile {mode!r}; expected one of {sorted(PROFILES)}")
    typical = PROFILES[mode]
    scale = high_scale()
    high = typical.scaled(
        scale,
        f"{mode}-high",
        f"{typical.name} x {scale:.2f}: fitted to Petrou's measurement ({PETROU.source})",
    )
    return LatencyRange(LOW_PROFILES[mode], typical, high)


def range_ms(ops: Ops, mode: str) -> dict[str, float]:
    """``ops``' modelled wait under ``mode``'s low and high profiles, in ms (the range columns).

    The typical wait is the ``latency_ms`` column the tables already carry.
    """
    r = latency_range(mode)
    return {
        "latency_low_ms": round(ops.latency_s(r.low) * 1000, 6),
        "latency_high_ms": round(ops.latency_s(r.high) * 1000, 6),
    }


def petrou_rows(mode: str = "elastic") -> list[Row]:
    """Petrou's workload under each translation and each profile of ``mode``'s range.

    Columns: ``translation``, ``level``, ``profile``, ``nfs_requests``, ``round_trips``,
    ``efs_wait_ms`` (modelled), ``invocation_ms`` (that wait plus his local time, the midpoint)
    and ``measured_ms`` (his Lambda figure).
    """
    local_ms = sum(PETROU.local_ms) / len(PETROU.local_ms)
    rows: list[Row] = []
    for translation in ("linux_nfs", "worst_case"):
        ops = workload_ops(translation=translation)
        for level, profile in zip(LEVELS, latency_range(mode), strict=True):
            wait_ms = round(ops.latency_s(profile) * 1000, 3)
            rows.append(
                {
                    "translation": translation,
                    "level": level,
                    "profile": profile.name,
                    "nfs_requests": sum(ops.nfs.values()),
                    "round_trips": sum(ops.rounds.values()),
                    "efs_wait_ms": wait_ms,
                    "invocation_ms": round(wait_ms + local_ms, 3),
                    "measured_ms": PETROU.lambda_ms,
                }
            )
    return rows
