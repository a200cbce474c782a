"""Price tables and the cost model: $ per million requests on EFS (per throughput mode) vs DynamoDB.

The inputs are what :mod:`efs_sqlite.efs_model` measures for one request — NFS requests by EFS class and
bytes — wrapped in a :class:`RequestProfile` that also says what the same request would read and
write in the equivalent DynamoDB design (the earlier system's: one item per field value,
BatchGetItem of up to 100 keys per round trip). Each design's Lambda duration is the request's own
compute time plus its storage waits (modelled EFS latency, or DynamoDB round trips).

>>> read = RequestProfile(metadata_read_ops=7, data_read_ops=1, data_read_bytes=16,
...                       compute_s=0.002, items_read=1)
>>> table = cost_per_million(read)
>>> {k: round(v, 4) for k, v in table.items()}  # doctest: +NORMALIZE_WHITESPACE
{'efs_elastic': 2.0833, 'efs_bursting': 0.3667, 'efs_provisioned': 0.4321,
 'dynamodb': 0.525}
>>> round(max_requests_per_second(read, "bursting", stored_gib=100))
170

Every price and limit below names its section of ``docs/SOURCES.md`` in its ``source`` (us-east-1;
re-check a price before quoting it). Units: AWS bills "GB" of throughput and storage as 2**30 bytes; a
month is 730 hours, as on AWS's pricing pages.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from efs_sqlite.efs_model import PROFILES, Ops

__all__ = [
    "BURSTING",
    "DYNAMODB",
    "EFS_IOPS",
    "EFS_METERING",
    "EFS_PRICES",
    "LAMBDA",
    "BurstingModel",
    "Cost",
    "DynamoDBPrices",
    "EFSMetering",
    "EFSPrices",
    "IOPSLimits",
    "LambdaPrices",
    "RequestProfile",
    "cost_per_million",
    "dynamodb_cost",
    "efs_cost",
    "efs_metered_bytes",
    "lambda_cost",
    "max_requests_per_second",
    "monthly_storage_cost",
]

KiB, MiB, GiB = 2**10, 2**20, 2**30
MONTH_S = 730 * 3600
EFS_MODES = ("elastic", "bursting", "provisioned")


@dataclass(frozen=True)
class EFSPrices:
    """EFS prices, us-east-1 (Regional, Standard storage)."""

    storage_gb_month: float = 0.30
    elastic_read_gb: float = 0.03
    elastic_write_gb: float = 0.06
    provisioned_mibps_month: float = 6.0
    source: str = "docs/SOURCES.md#efs-prices"
    as_of: str = "2026"


@dataclass(frozen=True)
class EFSMetering:
    """How EFS meters requests for billing and for the Bursting/Provisioned throughput limit.

    Elastic bills each data request as at least ``elastic_data_min`` bytes and each metadata
    request as at least ``elastic_metadata_min``. Bursting and Provisioned count every NFS request
    as at least ``request_min`` bytes and reads at ``read_factor`` of their size.
    """

    elastic_data_min: int = 32 * KiB
    elastic_metadata_min: int = 4 * KiB
    request_min: int = 4 * KiB
    read_factor: float = 1 / 3
    source: str = "docs/SOURCES.md#efs-metering"
    as_of: str = "2026"


@dataclass(frozen=True)
class IOPSLimits:
    """Maximum read and write operations per second of one file system."""

    read: int
    write: int
    source: str = "docs/SOURCES.md#efs-iops"
    as_of: str = "2026"


@dataclass(frozen=True)
class BurstingModel:
    """Bursting throughput: a baseline that grows with storage, paid for with burst credits.

    Credits accrue at the baseline rate and are spent at the metered rate, so over a month a
    file system sustains its baseline (never less than ``floor_mibps``); it may run at up to
    ``burst_mibps`` only while credits last.
    """

    baseline_kibps_per_gib: float = 50.0
    burst_mibps: float = 100.0
    floor_mibps: float = 1.0
    source: str = "docs/SOURCES.md#efs-bursting"
    as_of: str = "2026"

    def baseline_bytes_s(self, stored_gib: float) -> float:
        """Sustainable metered bytes/s at ``stored_gib`` GiB stored.

        >>> BURSTING.baseline_bytes_s(100) / KiB, BURSTING.baseline_bytes_s(1) / MiB
        (5000.0, 1.0)
        """
        return max(self.baseline_kibps_per_gib * KiB * stored_gib, self.floor_mibps * MiB)


@dataclass(frozen=True)
class DynamoDBPrices:
    """DynamoDB on-demand, us-east-1 (after the 50 % cut of 2024-11-01)."""

    read_request_unit: float = 0.125e-6  # strongly consistent read of <= 4 KB; eventual = half
    write_request_unit: float = 0.625e-6  # write of <= 1 KB
    storage_gb_month: float = 0.25
    read_unit_bytes: int = 4 * KiB
    write_unit_bytes: int = 1 * KiB
    batch_get_max: int = 100  # docs/SOURCES.md#dynamodb-limits
    latency_s: float = 0.010  # per call from Lambda: docs/SOURCES.md#dynamodb-latency
    #: Transactional requests (TransactWriteItems, the atomic equivalent of a grouped write)
    #: cost two units per item: docs/SOURCES.md#dynamodb-capacity.
    transaction_factor: int = 2
    source: str = "docs/SOURCES.md#dynamodb-prices"
    as_of: str = "2026"


@dataclass(frozen=True)
class LambdaPrices:
    """Lambda, x86, us-east-1; duration is billed per started millisecond."""

    request: float = 0.20e-6
    gb_second: float = 0.0000166667
    billing_step_s: float = 0.001
    source: str = "docs/SOURCES.md#lambda-prices"
    as_of: str = "2026"


EFS_PRICES = EFSPrices()
EFS_METERING = EFSMetering()
#: IOPS limits by throughput mode (Regional) and for One Zone file systems (any mode). Elastic
#: allows 900k–2.5M reads; the low end is used (docs/SOURCES.md#efs-iops).
EFS_IOPS: dict[str, IOPSLimits] = {
    "elastic": IOPSLimits(900_000, 500_000),
    "provisioned": IOPSLimits(55_000, 25_000),
    "bursting": IOPSLimits(35_000, 7_000),
    "one_zone": IOPSLimits(35_000, 7_000),
}
BURSTING = BurstingModel()
DYNAMODB = DynamoDBPrices()
LAMBDA = LambdaPrices()


@dataclass(frozen=True)
class RequestProfile:
    """One request as the EFS model measured it, and as the DynamoDB design would serve it.

    EFS side: NFS requests by class and bytes (take them from an accounting scope with
    :meth:`from_ops`); ``compute_s``: the Lambda time that is not storage waiting. DynamoDB side:
    ``items_read``/``items_written`` field values of ``item_bytes`` each, fetched in
    ``dynamodb_calls`` sequential round trips (BatchGetItem takes at most 100 keys).
    ``efs_rounds``: the round trips waited for by latency class (``Ops.rounds``; requests sent at
    once count once), as ``(class, count)`` pairs; without them every request is waited for in
    turn, each metadata one at the profile's ``metadata_s``. ``efs_waits_s``: the wait measured
    per mode (``(mode, seconds)`` pairs: a critical path through reads made at once), when given
    used instead. A request measured on the DynamoDB backend gives its ``dynamodb_read_units``,
    ``dynamodb_write_units`` (as counted, transactions already doubled) and ``dynamodb_latency_s``
    (its calls' modelled latency), used instead of the estimates from items and calls.
    """

    metadata_read_ops: int = 0
    metadata_write_ops: int = 0
    data_read_ops: int = 0
    data_read_bytes: int = 0
    data_write_ops: int = 0
    data_write_bytes: int = 0
    compute_s: float = 0.0
    items_read: int = 0
    items_written: int = 0
    item_bytes: int = 100
    dynamodb_calls: int = 1
    efs_rounds: tuple[tuple[str, int], ...] = ()
    efs_waits_s: tuple[tuple[str, float], ...] = ()
    dynamodb_read_units: float | None = None
    dynamodb_write_units: float | None = None
    dynamodb_latency_s: float | None = None

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if name not in ("efs_rounds", "efs_waits_s") and value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0, not {value}")
        needed = math.ceil(self.items_read / DYNAMODB.batch_get_max)
        if self.dynamodb_calls < needed:
            raise ValueError(
                f"{self.items_read} items need at least {needed} BatchGetItem calls "
                f"(<= {DYNAMODB.batch_get_max} keys each), not {self.dynamodb_calls}"
            )

    @classmethod
    def from_ops(cls, ops: Ops | Mapping[str, Any], **dynamodb: Any) -> RequestProfile:
        """Build from an :class:`~efs_sqlite.efs_model.Ops` or its ``as_dict()``; other fields by name."""
        d = ops.as_dict() if isinstance(ops, Ops) else ops
        keys = ("metadata_read_ops", "metadata_write_ops", "data_read_ops", "data_read_bytes")
        keys += ("data_write_ops", "data_write_bytes")
        rounds = tuple(sorted(d.get("rounds", {}).items()))
        return cls(**{k: d[k] for k in keys}, efs_rounds=rounds, **dynamodb)

    @property
    def metadata_ops(self) -> int:
        return self.metadata_read_ops + self.metadata_write_ops

    def efs_latency_s(self, mode: str) -> float:
        """Modelled EFS wait of this request under ``mode``'s latency profile."""
        waits = dict(self.efs_waits_s)
        if mode in waits:
            return waits[mode]
        if self.efs_rounds:
            return PROFILES[mode].rounds_s(dict(self.efs_rounds))
        return PROFILES[mode].latency_s(self.metadata_ops, self.data_read_ops, self.data_write_ops)


@dataclass(frozen=True)
class Cost:
    """Cost of one design per million requests, split by service, and its latency per request."""

    storage_usd: float
    lambda_usd: float
    latency_s: float

    @property
    def total_usd(self) -> float:
        return self.storage_usd + self.lambda_usd


def _metered(ops: int, nbytes: int, minimum: int) -> int:
    # Exact when no single request exceeds the minimum (SQLite's pages of <= 4 KiB); otherwise a
    # lower bound, since the true figure is the sum of max(minimum, size) over requests.
    return max(ops * minimum, nbytes)


def efs_metered_bytes(profile: RequestProfile, mode: str) -> tuple[float, float]:
    """Metered (read, write) bytes of one request: what Elastic bills / Bursting budgets.

    For Bursting and Provisioned, reads are already scaled by the 1/3 read factor and metadata
    requests count as writes (they consume throughput at the full rate).

    >>> p = RequestProfile(metadata_read_ops=2, data_read_ops=1, data_read_bytes=100)
    >>> efs_metered_bytes(p, "elastic")
    (40960, 0)
    >>> efs_metered_bytes(p, "bursting")
    (1365.3333333333333, 8192)
    """
    m = EFS_METERING
    if mode == "elastic":
        read = _metered(profile.data_read_ops, profile.data_read_bytes, m.elastic_data_min)
        write = _metered(profile.data_write_ops, profile.data_write_bytes, m.elastic_data_min)
        return (
            read + profile.metadata_read_ops * m.elastic_metadata_min,
            write + profile.metadata_write_ops * m.elastic_metadata_min,
        )
    _check_mode(mode)
    read = _metered(profile.data_read_ops, profile.data_read_bytes, m.request_min) * m.read_factor
    write = _metered(profile.data_write_ops, profile.data_write_bytes, m.request_min)
    return read, write + profile.metadata_ops * m.request_min


def _check_mode(mode: str) -> None:
    if mode not in EFS_MODES:
        raise ValueError(f"EFS throughput mode must be one of {EFS_MODES}, not {mode!r}")


def lambda_cost(duration_s: float, memory_mb: int) -> float:
    """$ for one invocation of ``duration_s`` at ``memory_mb`` (duration billed per started ms).

    >>> round(lambda_cost(0.0101, 1024) * 1e6, 6)  # 11 ms at 1 GB, per million
    0.383334
    """
    steps = math.ceil(round(duration_s / LAMBDA.billing_step_s, 9))
    return LAMBDA.request + steps * LAMBDA.billing_step_s * memory_mb / 1024 * LAMBDA.gb_second


def efs_cost(profile: RequestProfile, mode: str, *, memory_mb: int = 1024, utilisation: float = 1.0) -> Cost:
    """Cost per million requests on EFS in ``mode`` (storage excluded: see monthly_storage_cost).

    Elastic pays per metered GB; Bursting pays nothing per request (its limit is throughput, see
    :func:`max_requests_per_second`); Provisioned pays for the MiB/s these requests need, assuming
    the provisioned throughput is used at ``utilisation`` (1.0: provisioned exactly for the load).
    """
    _check_mode(mode)
    if not 0 < utilisation <= 1:
        raise ValueError("utilisation must be in (0, 1]")
    read, write = efs_metered_bytes(profile, mode)
    if mode == "elastic":
        per_request = (read * EFS_PRICES.elastic_read_gb + write * EFS_PRICES.elastic_write_gb) / GiB
    elif mode == "provisioned":
        # A request every second needs (read + write) B/s all month, i.e. MONTH_S requests.
        per_request = (read + write) / MiB * EFS_PRICES.provisioned_mibps_month / MONTH_S
        per_request /= utilisation
    else:
        per_request = 0.0
    latency = profile.efs_latency_s(mode)
    duration = profile.compute_s + latency
    return Cost(per_request * 1e6, lambda_cost(duration, memory_mb) * 1e6, latency)


def dynamodb_cost(
    profile: RequestProfile, *, memory_mb: int = 1024, strong: bool = True, atomic: bool = True
) -> Cost:
    """Cost per million requests of the DynamoDB design (one item per field value).

    Reads: one read request unit per started 4 KB per item, half for eventually consistent reads
    (``strong=False``). Writes: one write unit per started 1 KB per item, doubled when ``atomic``
    (TransactWriteItems, the equivalent of the store's all-or-nothing grouped write).
    """
    d = DYNAMODB
    rru = profile.items_read * math.ceil(profile.item_bytes / d.read_unit_bytes)
    rru *= 1 if strong else 0.5
    wru = profile.items_written * math.ceil(profile.item_bytes / d.write_unit_bytes)
    wru *= d.transaction_factor if atomic else 1
    # Units counted on the backend itself replace the estimate (they already say how each call read).
    rru = rru if profile.dynamodb_read_units is None else profile.dynamodb_read_units
    wru = wru if profile.dynamodb_write_units is None else profile.dynamodb_write_units
    per_request = rru * d.read_request_unit + wru * d.write_request_unit
    latency = profile.dynamodb_calls * d.latency_s if profile.items_read + profile.items_written else 0.0
    latency = latency if profile.dynamodb_latency_s is None else profile.dynamodb_latency_s
    duration = profile.compute_s + latency
    return Cost(per_request * 1e6, lambda_cost(duration, memory_mb) * 1e6, latency)


Mix = RequestProfile | Sequence[tuple[RequestProfile, float]]


def _weights(mix: Mix) -> list[tuple[RequestProfile, float]]:
    pairs = [(mix, 1.0)] if isinstance(mix, RequestProfile) else list(mix)
    total = sum(w for _, w in pairs)
    if not pairs or total <= 0 or any(w < 0 for _, w in pairs):
        raise ValueError("a request mix needs weights >= 0 with a positive sum")
    return [(p, w / total) for p, w in pairs]


def cost_per_million(
    mix: Mix, *, memory_mb: int = 1024, strong: bool = True, atomic: bool = True
) -> dict[str, float]:
    """Total $ per million requests of ``mix`` (a profile, or ``(profile, weight)`` pairs).

    Keys: ``efs_elastic``, ``efs_bursting``, ``efs_provisioned``, ``dynamodb``; each includes
    the Lambda requests and the duration that design's storage waits add.
    """
    weighted = _weights(mix)
    out = {
        f"efs_{mode}": sum(w * efs_cost(p, mode, memory_mb=memory_mb).total_usd for p, w in weighted)
        for mode in EFS_MODES
    }
    out["dynamodb"] = sum(
        w * dynamodb_cost(p, memory_mb=memory_mb, strong=strong, atomic=atomic).total_usd for p, w in weighted
    )
    return out


def max_requests_per_second(
    mix: Mix, mode: str, *, stored_gib: float = 0.0, provisioned_mibps: float = 0.0
) -> float:
    """Highest request rate of ``mix`` that ``mode`` sustains for a month.

    Every mode is capped by its read and write IOPS (metadata reads count as reads, metadata
    writes as writes); ``one_zone`` only by its IOPS. Bursting is also capped by its baseline
    throughput at ``stored_gib`` (the burst-credit budget over a month); Provisioned by
    ``provisioned_mibps`` (or the Bursting baseline, if higher, as AWS grants).
    """
    if mode not in EFS_IOPS:
        raise ValueError(f"mode must be one of {tuple(EFS_IOPS)}, not {mode!r}")
    weighted = _weights(mix)
    reads = sum(w * (p.metadata_read_ops + p.data_read_ops) for p, w in weighted)
    writes = sum(w * (p.metadata_write_ops + p.data_write_ops) for p, w in weighted)
    limits = EFS_IOPS[mode]
    caps = [limits.read / reads if reads else math.inf, limits.write / writes if writes else math.inf]
    if mode in ("bursting", "provisioned"):
        metered = sum(w * sum(efs_metered_bytes(p, mode)) for p, w in weighted)
        throughput = BURSTING.baseline_bytes_s(stored_gib)
        if mode == "provisioned":
            throughput = max(throughput, provisioned_mibps * MiB)
        caps.append(throughput / metered if metered else math.inf)
    return min(caps)


def monthly_storage_cost(stored_gb: float) -> dict[str, float]:
    """$ per month to keep ``stored_gb`` GB on EFS Standard and in DynamoDB.

    >>> monthly_storage_cost(10)
    {'efs': 3.0, 'dynamodb': 2.5}
    """
    return {
        "efs": stored_gb * EFS_PRICES.storage_gb_month,
        "dynamodb": stored_gb * DYNAMODB.storage_gb_month,
    }
