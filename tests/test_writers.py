"""Writers on one shard: the estimate from the EFS model's hold times, and real processes under the
sleeping model lying within its documented bounds (no figure is compared with a fixed time)."""

from __future__ import annotations

import math

import pytest

from efs_sqlite.experiments.writers import (
    WRITER_BOUNDS,
    hold_times,
    read_wait_quantile,
    run_writers,
    write_limits,
)


def test_hold_times_grow_across_the_latency_range() -> None:
    holds = hold_times()
    assert list(holds) == ["low", "typical", "high"]
    assert holds["low"].hold_s < holds["typical"].hold_s < holds["high"].hold_s
    assert all(h.read_s < h.hold_s for h in holds.values())  # a commit makes more round trips than a read


def test_the_wait_is_zero_below_the_busy_share_and_grows_with_the_rate() -> None:
    hold = 0.02
    assert read_wait_quantile(0.7, rate=10, hold_s=hold) == 0.0  # 80 % of reads find the lock free
    tails = [read_wait_quantile(0.99, rate=r, hold_s=hold) for r in (5, 20, 40)]
    assert tails == sorted(tails) and tails[0] > 0
    assert read_wait_quantile(0.99, rate=50, hold_s=hold) == math.inf  # rho = 1: the queue grows
    # M/D/1 at rho 0.5: P(W <= hold) = (1 - rho) * e^(rho) (Erlang's formula's first term, t = hold)
    at_hold = 0.5 * math.exp(0.5)
    assert read_wait_quantile(at_hold, rate=25, hold_s=hold) == pytest.approx(hold, rel=1e-6)
    with pytest.raises(ValueError):
        read_wait_quantile(1.0, rate=1, hold_s=hold)


def test_write_limits_table() -> None:
    rows = write_limits([5, 1_000])
    assert [(r["level"], r["writes_per_s"]) for r in rows] == [
        (level, rate) for level in ("low", "typical", "high") for rate in (5, 1_000)
    ]
    for r in rows:
        assert r["max_writes_per_s"] == pytest.approx(1000 / r["hold_ms"], rel=1e-3)
        if r["writes_per_s"] < r["max_writes_per_s"]:
            assert r["read_p99_ms"] >= r["read_ms"]
        else:
            assert r["read_p99_ms"] is None  # past the shard's limit the wait is unbounded


def test_writers_on_one_shard_stay_under_the_lock_limit() -> None:
    """Two processes committing back to back: together no faster than one lock allows."""
    limit = 1 / hold_times()["typical"].hold_s
    run = run_writers(writers=2, duration_s=1.5)
    assert WRITER_BOUNDS.rate_low * limit <= run.writes_per_s <= WRITER_BOUNDS.rate_high * limit


def test_a_reader_under_a_write_stream_waits_within_the_estimate() -> None:
    """Half the lock's capacity written as a Poisson stream; a reader at random moments."""
    holds = hold_times()["typical"]
    rate = 0.5 / holds.hold_s
    run = run_writers(writers=1, write_rate=rate, reader=True, duration_s=2.0)
    assert len(run.reads_s) >= 20
    assert (
        run.writes_per_s <= WRITER_BOUNDS.rate_high * rate * 1.5
    )  # a Poisson stream's count over 2 s varies
    for q in (0.5, 0.9):
        estimate = holds.read_s + read_wait_quantile(q, rate=rate, hold_s=holds.hold_s)
        measured = run.read_quantile(q)
        assert holds.read_s <= measured <= WRITER_BOUNDS.tail_factor * estimate + WRITER_BOUNDS.tail_slack_s
