"""The cost model against worked examples computed by hand from the price tables."""

from __future__ import annotations

import dataclasses

import pytest

from efs_sqlite import costs
from efs_sqlite.costs import (
    RequestProfile,
    cost_per_million,
    dynamodb_cost,
    efs_cost,
    efs_metered_bytes,
    lambda_cost,
    max_requests_per_second,
)
from efs_sqlite.efs_model import EFSModel
from efs_sqlite.store import ShardStore

KiB, MiB, GiB = 1024, 1024**2, 1024**3
MONTH = 730 * 3600

# A warm point read as the EFS model counts it: lock 3 + unlock 1 + access 2 + file_size 1
# metadata requests, one 16-byte read of the change counter.
POINT_READ = RequestProfile(
    metadata_read_ops=7, data_read_ops=1, data_read_bytes=16, compute_s=0.002, items_read=1
)
# A commit: 19 metadata requests (9 of them writes), 2 reads, 10 writes of 17,000 bytes.
COMMIT = RequestProfile(
    metadata_read_ops=10,
    metadata_write_ops=9,
    data_read_ops=2,
    data_read_bytes=24,
    data_write_ops=10,
    data_write_bytes=17_000,
    compute_s=0.003,
    items_written=6,
)


def lambda_per_million(billed_ms: int, memory_gb: float) -> float:
    return 0.20 + billed_ms * 0.001 * memory_gb * 0.0000166667 * 1e6


def test_point_read_on_elastic_by_hand():
    # Elastic: the data read is billed as 32 KiB, each metadata request as 4 KiB, at $0.03/GB.
    metered = 1 * 32 * KiB + 7 * 4 * KiB
    storage = metered / GiB * 0.03 * 1e6
    latency = 7 * 0.001 + 1 * 0.001  # every request ~1 ms
    lam = lambda_per_million(billed_ms=10, memory_gb=1)  # 2 ms compute + 8 ms waiting
    cost = efs_cost(POINT_READ, "elastic")
    assert efs_metered_bytes(POINT_READ, "elastic") == (metered, 0)
    assert cost.storage_usd == pytest.approx(storage)
    assert cost.latency_s == pytest.approx(latency)
    assert cost.lambda_usd == pytest.approx(lam)
    assert cost.total_usd == pytest.approx(storage + lam)
    assert storage == pytest.approx(1.7166, abs=1e-4)


def test_commit_on_every_efs_mode_by_hand():
    # Elastic: 10 writes billed at 32 KiB each (> 17,000 bytes), metadata at 4 KiB, reads 32 KiB.
    read = 2 * 32 * KiB + 10 * 4 * KiB
    write = 10 * 32 * KiB + 9 * 4 * KiB
    elastic = (read * 0.03 + write * 0.06) / GiB * 1e6
    latency = 19 * 0.001 + 2 * 0.001 + 10 * 0.0027
    lam = lambda_per_million(billed_ms=3 + 48, memory_gb=1)
    got = efs_cost(COMMIT, "elastic")
    assert got.storage_usd == pytest.approx(elastic)
    assert got.latency_s == pytest.approx(latency)
    assert got.lambda_usd == pytest.approx(lam)

    # Bursting/Provisioned: every request >= 4 KiB, reads at a third; metadata at full rate.
    metered = (2 * 4 * KiB) / 3 + 10 * 4 * KiB + 19 * 4 * KiB
    assert sum(efs_metered_bytes(COMMIT, "bursting")) == pytest.approx(metered)
    assert efs_cost(COMMIT, "bursting").storage_usd == 0
    # $6 per MiB/s-month: one request per second all month needs metered/MiB MiB/s.
    provisioned = metered / MiB * 6 / MONTH * 1e6
    assert efs_cost(COMMIT, "provisioned").storage_usd == pytest.approx(provisioned)
    half_used = efs_cost(COMMIT, "provisioned", utilisation=0.5).storage_usd
    assert half_used == pytest.approx(2 * provisioned)


def test_dynamodb_reads_and_writes_by_hand():
    # claim + 5 fields + its 10 parties x 3 fields: 6 items (5 fields + the party list), then 30.
    claim = RequestProfile(items_read=36, compute_s=0.004, dynamodb_calls=2)
    strong, eventual = 36 * 0.125, 36 * 0.125 / 2  # 1 RRU per item <= 4 KB; eventual = half
    lam = lambda_per_million(billed_ms=4 + 2 * 10, memory_gb=1.5)
    assert dynamodb_cost(claim, memory_mb=1536).storage_usd == pytest.approx(strong)
    assert dynamodb_cost(claim, strong=False).storage_usd == pytest.approx(eventual)
    assert dynamodb_cost(claim, memory_mb=1536).lambda_usd == pytest.approx(lam)
    assert dynamodb_cost(claim).latency_s == pytest.approx(0.020)

    big = dataclasses.replace(claim, item_bytes=5000)  # 2 RRU per item: ceil(5000 / 4096)
    assert dynamodb_cost(big).storage_usd == pytest.approx(36 * 2 * 0.125)

    # A 6-field node create: 1 WRU per item <= 1 KB, doubled by TransactWriteItems.
    assert dynamodb_cost(COMMIT).storage_usd == pytest.approx(6 * 2 * 0.625)
    assert dynamodb_cost(COMMIT, atomic=False).storage_usd == pytest.approx(6 * 0.625)
    wide = dataclasses.replace(COMMIT, item_bytes=2500)  # ceil(2500 / 1024) = 3 WRU per item
    assert dynamodb_cost(wide, atomic=False).storage_usd == pytest.approx(6 * 3 * 0.625)


def test_a_request_mix_weights_each_design():
    read_elastic = (32 * KiB + 7 * 4 * KiB) / GiB * 0.03 * 1e6 + lambda_per_million(10, 1)
    commit_elastic = (
        (2 * 32 * KiB + 10 * 4 * KiB) * 0.03 + (10 * 32 * KiB + 9 * 4 * KiB) * 0.06
    ) / GiB * 1e6 + lambda_per_million(51, 1)
    read_dynamo = 0.125 + lambda_per_million(2 + 10, 1)
    commit_dynamo = 6 * 2 * 0.625 + lambda_per_million(3 + 10, 1)
    table = cost_per_million([(POINT_READ, 9), (COMMIT, 1)])
    assert table["efs_elastic"] == pytest.approx(0.9 * read_elastic + 0.1 * commit_elastic)
    assert table["dynamodb"] == pytest.approx(0.9 * read_dynamo + 0.1 * commit_dynamo)
    bursting = 0.9 * lambda_per_million(10, 1) + 0.1 * lambda_per_million(51, 1)
    assert table["efs_bursting"] == pytest.approx(bursting)
    assert set(table) == {"efs_elastic", "efs_bursting", "efs_provisioned", "dynamodb"}


def test_lambda_bills_every_started_millisecond():
    assert lambda_cost(0.0101, 1024) * 1e6 == pytest.approx(lambda_per_million(11, 1))
    assert lambda_cost(0.010, 2048) * 1e6 == pytest.approx(lambda_per_million(10, 2))
    assert lambda_cost(0.0, 128) * 1e6 == pytest.approx(0.20)


def test_sustainable_request_rates_by_hand():
    per_request = 4 * KiB / 3 + 7 * 4 * KiB  # bursting-metered bytes of a point read
    # Bursting, 100 GiB stored: baseline 50 KiB/s per GiB = 5,000 KiB/s; IOPS allow 35,000/8.
    baseline = 50 * KiB * 100
    assert baseline / per_request < 35_000 / 8
    assert max_requests_per_second(POINT_READ, "bursting", stored_gib=100) == pytest.approx(
        baseline / per_request
    )
    # 1 GiB stored: the 1 MiB/s floor applies.
    assert max_requests_per_second(POINT_READ, "bursting", stored_gib=1) == pytest.approx(MiB / per_request)
    # Provisioned 10 MiB/s beats the 5,000 KiB/s baseline.
    assert max_requests_per_second(
        POINT_READ, "provisioned", stored_gib=100, provisioned_mibps=10
    ) == pytest.approx(10 * MiB / per_request)
    # Elastic is limited by IOPS only: 8 reads per request against 900,000 read IOPS.
    assert max_requests_per_second(POINT_READ, "elastic") == pytest.approx(900_000 / 8)
    # The commit mix is write-bound on Bursting's 7,000 write IOPS at a large size: 19 writes.
    mix = [(POINT_READ, 1), (COMMIT, 1)]
    writes = 0.5 * 0 + 0.5 * (9 + 10)
    assert max_requests_per_second(mix, "bursting", stored_gib=10**6) == pytest.approx(7_000 / writes)
    assert max_requests_per_second(COMMIT, "one_zone") == pytest.approx(7_000 / 19)


def test_tables_carry_their_source_and_date():
    tables = [costs.EFS_PRICES, costs.EFS_METERING, costs.BURSTING, costs.DYNAMODB, costs.LAMBDA]
    for table in [*tables, *costs.EFS_IOPS.values()]:
        assert table.source and table.as_of
    assert costs.EFS_PRICES.storage_gb_month == 0.30 and costs.DYNAMODB.write_request_unit == 0.625e-6


def test_a_measured_request_prices_from_its_own_counts(tmp_path):
    with (
        EFSModel("efs-costs-test", profile="elastic") as model,
        ShardStore(tmp_path, vfs=model.name) as store,
    ):
        store.insert("claim_type_code", 1, "MOTOR")
        store.get("claim_type_code", 1)
        with model.accounting() as ops:
            store.get("claim_type_code", 1)
    profile = RequestProfile.from_ops(ops, compute_s=0.001, items_read=1)
    assert profile == RequestProfile.from_ops(ops.as_dict(), compute_s=0.001, items_read=1)
    assert (profile.metadata_ops, profile.data_read_ops) == (ops.metadata_ops, ops.data_read_ops)
    metered = ops.data_read_ops * 32 * KiB + ops.metadata_read_ops * 4 * KiB
    assert efs_cost(profile, "elastic").storage_usd == pytest.approx(metered / GiB * 0.03 * 1e6)
    assert profile.efs_latency_s("elastic") == pytest.approx(ops.modelled_latency_s)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: efs_cost(POINT_READ, "one_zone"), "throughput mode must be one of"),
        (lambda: efs_cost(POINT_READ, "provisioned", utilisation=0), "utilisation"),
        (lambda: max_requests_per_second(POINT_READ, "max_io"), "mode must be one of"),
        (lambda: RequestProfile(data_read_ops=-1), "data_read_ops must be >= 0"),
        (lambda: RequestProfile(items_read=150), "need at least 2 BatchGetItem calls"),
        (lambda: cost_per_million([]), "weights"),
        (lambda: cost_per_million([(POINT_READ, -1), (COMMIT, 2)]), "weights"),
    ],
)
def test_bad_input_is_refused_clearly(call, message):
    with pytest.raises(ValueError, match=message):
        call()
