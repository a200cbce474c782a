"""Latency per request class, the three profiles per EFS mode, and the fit to Petrou's measurement."""

from __future__ import annotations

import pytest

from efs_sqlite.efs_model import LOW_PROFILES, PROFILES, LatencyProfile
from efs_sqlite.experiments.latency import LEVELS, high_scale, latency_range, petrou_rows
from efs_sqlite.experiments.petrou import PETROU, fit_scale, workload_ops
from efs_sqlite.nfs_client import LATENCY_CLASSES


def test_each_class_has_its_own_delay_or_the_metadata_one():
    p = LatencyProfile("t", metadata_s=1.0, read_s=2.0, write_s=3.0, source="test", lock_s=4.0, commit_s=5.0)
    assert [p.class_s(c) for c in LATENCY_CLASSES] == [4.0, 1.0, 2.0, 3.0, 5.0, 1.0]
    assert p.rounds_s({"lock": 2, "write": 1, "state": 3}) == 2 * 4.0 + 3.0 + 3 * 1.0
    assert p.scaled(2, "t2", "test").rounds_s({"lock": 1, "getattr": 1}) == 2 * (4.0 + 1.0)
    with pytest.raises(ValueError, match="unknown latency class"):
        p.class_s("metadata")


@pytest.mark.parametrize("mode", sorted(PROFILES))
def test_every_mode_has_a_low_typical_and_high_profile_in_order(mode):
    r = latency_range(mode)
    assert r.typical is PROFILES[mode] and r.low is LOW_PROFILES[mode]
    for c in LATENCY_CLASSES:
        assert r.low.class_s(c) <= r.typical.class_s(c) <= r.high.class_s(c)
    if mode != "local":
        assert r.low.read_s == pytest.approx(0.00025)  # AWS's best case
        assert r.typical.read_s == pytest.approx(0.001)  # AWS's stated figure
        assert r.high.read_s > r.typical.read_s
    with pytest.raises(ValueError, match="unknown profile"):
        latency_range("efs")


def test_the_high_profile_is_fitted_to_petrous_measurement():
    ops = workload_ops()
    high = latency_range("elastic").high
    # Under the fitted profile his invocation waits what his measurement says EFS added.
    assert ops.latency_s(high) == pytest.approx(PETROU.efs_wait_s)
    assert PETROU.efs_wait_s == pytest.approx(0.140 - 0.035)
    assert high_scale() == pytest.approx(fit_scale(ops, PROFILES["elastic"], PETROU.efs_wait_s))
    assert 1 < high_scale() < 5  # slower than AWS's figures, as in 2020, but not wildly


def test_petrous_workload_is_a_warm_transaction_then_two_selects():
    ops = workload_ops(warm_invocations=3)
    # One transaction: one journal created and removed, three syncs (journal twice, database once).
    assert (ops.counts["open"], ops.counts["delete"], ops.counts["sync"]) == (1, 1, 3)
    # Three lock cycles: the transaction and the two SELECTs; the connection stays open.
    assert ops.nfs["OPEN"] == 1 and ops.counts["lock"] >= 3
    with pytest.raises(ValueError, match="warm"):
        workload_ops(warm_invocations=0)
    with pytest.raises(ValueError, match="cannot fit"):
        fit_scale(ops, PROFILES["local"], 0.1)


def test_petrou_rows_show_each_translation_under_each_level():
    rows = petrou_rows()
    assert [(r["translation"], r["level"]) for r in rows] == [
        (t, level) for t in ("linux_nfs", "worst_case") for level in LEVELS
    ]
    linux = {r["level"]: r for r in rows if r["translation"] == "linux_nfs"}
    assert linux["high"]["invocation_ms"] == pytest.approx(PETROU.lambda_ms)
    assert linux["low"]["efs_wait_ms"] < linux["typical"]["efs_wait_ms"] < linux["high"]["efs_wait_ms"]
    worst = {r["level"]: r for r in rows if r["translation"] == "worst_case"}
    assert worst["typical"]["nfs_requests"] > linux["typical"]["nfs_requests"]
