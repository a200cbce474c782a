"""Modelled latency: DeBrie's measured figures, interpolated by items, and the named parameter for reads."""

from __future__ import annotations

import itertools

import pytest

from efs_sqlite.dynamodb.latency import MEASURED, READS_TIMED_AS, Latency, latency


def test_the_measured_figures_are_debries() -> None:
    assert latency("PutItem") == Latency(7.55, 11.3, 16.2)
    assert latency("BatchWriteItem", 5) == Latency(8.14, 13.3, 25.5)
    assert latency("BatchWriteItem", 25) == Latency(10.2, 16.0, 27.6)
    assert latency("TransactWriteItems", 5) == Latency(25.3, 30.7, 92.5)
    assert latency("TransactWriteItems", 25) == Latency(32.1, 40.5, 97.5)


def test_between_and_beyond_the_measured_sizes() -> None:
    assert latency("BatchWriteItem", 3).p50 == pytest.approx((7.55 + 8.14) / 2)
    assert latency("TransactWriteItems", 15) == Latency(28.7, 35.6, 95.0)
    assert latency("TransactWriteItems", 1) == latency("TransactWriteItems", 5)  # two phases: a fixed cost
    assert latency("TransactWriteItems", 100).p50 > latency("TransactWriteItems", 25).p50
    for op in MEASURED:
        sizes = [latency(op, n) for n in (1, 5, 10, 25, 50, 100)]
        assert all(a.p50 <= b.p50 for a, b in itertools.pairwise(sizes)), op


def test_reads_are_timed_by_the_named_parameter() -> None:
    assert READS_TIMED_AS["GetItem"] == "PutItem" and latency("GetItem") == latency("PutItem")
    assert latency("BatchGetItem", 25) == latency("BatchWriteItem", 25)
    assert latency("Query") == latency("PutItem")
    with pytest.raises(KeyError):
        latency("NoSuchCall")


def test_quantiles() -> None:
    d = Latency(10.0, 20.0, 40.0)
    assert [d.quantile(q) for q in (0.1, 0.5, 0.7, 0.9, 0.99, 0.999)] == [10.0, 10.0, 15.0, 20.0, 40.0, 40.0]
    for op in MEASURED:
        for n in (1, 25):
            p = latency(op, n)
            assert p.p50 <= p.p90 <= p.p99
