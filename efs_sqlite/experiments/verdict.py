"""The verdict of notebook 05: EFS or DynamoDB for a request mix, decided from the measured tables.

:func:`verdict` reads the tables of :func:`~efs_sqlite.experiments.queries.mix_summary` and
:func:`~efs_sqlite.experiments.queries.mix_capacity` and returns the headline numbers, the
conclusion in Markdown, and which side it comes down on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from efs_sqlite.experiments.queries import DESIGNS, MIX_DOCUMENTS
from efs_sqlite.experiments.tables import Row

#: The request rate :func:`verdict` asks of EFS Bursting: what sizes of data sustain it.
BURSTING_TARGET_PER_S = 100


class Verdict(NamedTuple):
    """What notebook 05 concludes: ``numbers`` (the headline figures, for its ``summary.json``),
    ``conclusion`` (Markdown) and ``efs_wins`` (whether EFS, on Provisioned throughput, serves
    the whole mix for less than DynamoDB: the conclusion's last paragraph says which way)."""

    numbers: dict[str, Any]
    conclusion: str
    efs_wins: bool


def _names(kinds: Sequence[str]) -> str:
    return ", ".join(kinds) if kinds else "no kind of request in this mix"


def verdict(
    costs: Sequence[Row], capacity: Sequence[Row], *, stored_bytes: int, scale: str, seed: int
) -> Verdict:
    """Decide between EFS and DynamoDB for the mix that ``costs`` summarises.

    ``costs`` come from :func:`~efs_sqlite.experiments.queries.mix_summary` (every kind of the
    mix and ``"mix"``, each for every design; the conclusion quotes the ``point_read`` and
    ``create`` kinds), ``capacity`` from :func:`~efs_sqlite.experiments.queries.mix_capacity`;
    ``stored_bytes`` is the size of the loaded store and ``scale``/``seed`` name the data set.
    EFS wins when Provisioned throughput serves the whole mix for less per million requests
    than DynamoDB; the conclusion also names the kinds of request each side is faster or cheaper
    for. A kind or design missing from ``costs`` raises KeyError.
    """
    table: Mapping[tuple[str, str], Row] = {(r["kind"], r["design"]): r for r in costs}
    # The kinds in the order the mix's documents are listed (MIX_WEIGHTS shares that order).
    kinds = sorted({kind for kind, _ in table} - {"mix"}, key=list(MIX_DOCUMENTS).index)

    def at(kind: str, design: str) -> Row:
        return table[kind, design]

    def cheaper(design: str, than: str = "dynamodb") -> list[str]:
        return [k for k in kinds if at(k, design)["usd_per_million"] < at(k, than)["usd_per_million"]]

    def usd(kind: str, design: str) -> str:
        return f"${at(kind, design)['usd_per_million']:,.2f}"

    priced = [d for d in DESIGNS if any(r["design"] == d and r["usd_per_million"] is not None for r in costs)]
    efs_faster = [k for k in kinds if at(k, "efs_elastic")["median_ms"] < at(k, "dynamodb")["median_ms"]]
    dynamo_faster = [k for k in kinds if k not in efs_faster]
    provisioned_cheaper, elastic_cheaper = cheaper("efs_provisioned"), cheaper("efs_elastic")
    dynamo_beats_elastic = [k for k in kinds if k not in elastic_cheaper]
    bursting_rate = at("mix", "efs_bursting")["max_requests_per_s"]
    provisioned_rate = at("mix", "efs_provisioned")["max_requests_per_s"]
    need_gib = next(
        (
            r["stored_gib"]
            for r in capacity
            if r["design"] == "efs_bursting" and r["max_requests_per_s"] >= BURSTING_TARGET_PER_S
        ),
        None,
    )
    mix_efs_ms, mix_dynamo_ms = at("mix", "efs_elastic")["median_ms"], at("mix", "dynamodb")["median_ms"]
    efs_wins = at("mix", "efs_provisioned")["usd_per_million"] < at("mix", "dynamodb")["usd_per_million"]
    requests = at("mix", "dynamodb")["requests"]
    stored_gib = stored_bytes / 2**30

    numbers = {
        "requests": requests,
        "stored_mib": round(stored_bytes / 2**20, 1),
        **{
            f"median_ms_{k}_efs_vs_dynamodb": [
                round(at(k, d)["median_ms"], 1) for d in ("efs_elastic", "dynamodb")
            ]
            for k in [*kinds, "mix"]
        },
        **{f"usd_per_million_mix_{d}": round(at("mix", d)["usd_per_million"], 3) for d in priced},
        **{
            f"max_requests_per_s_mix_{d}": round(at("mix", d)["max_requests_per_s"], 1)
            for d in DESIGNS
            if d != "dynamodb"
        },
        "mean_nfs_requests_per_request": round(at("mix", "efs_elastic")["mean_nfs_requests"], 1),
        "efs_provisioned_cheaper_for": provisioned_cheaper,
        "efs_elastic_cheaper_for": elastic_cheaper,
        "efs_faster_for": efs_faster,
    }
    conclusion = (
        f"**Conclusion ({scale} data set, {requests:,} requests, seed {seed}).** "
        f"A request of this mix makes {at('mix', 'efs_elastic')['mean_nfs_requests']:.0f} "
        "file-system round trips on "
        f"average; on EFS its median latency is {mix_efs_ms:.1f} "
        f"ms (p95 {at('mix', 'efs_elastic')['p95_ms']:.0f} ms), "
        f"against {mix_dynamo_ms:.1f} ms (p95 "
        f"{at('mix', 'dynamodb')['p95_ms']:.0f} ms) modelled for DynamoDB.\n\n"
        "**Where EFS wins.** Per request, EFS Provisioned is "
        f"cheaper than DynamoDB for {_names(provisioned_cheaper)} "
        f"(the mix: {usd('mix', 'efs_provisioned')} against "
        f"{usd('mix', 'dynamodb')} per million, with the throughput "
        f"bought kept busy; up to {provisioned_rate:,.0f} "
        "requests/s before its IOPS limit), and EFS Elastic for "
        f"{_names(elastic_cheaper)}. Bursting charges nothing per "
        f"request ({usd('mix', 'efs_bursting')} per million is "
        f"Lambda alone) but sustains only {bursting_rate:,.1f} requests/s of this mix with "
        f"{stored_gib * 1024:,.0f} MiB stored"
        + (
            f"; of the sizes in the capacity chart, {need_gib:,g} GiB is the first that sustains "
            f"{BURSTING_TARGET_PER_S} requests/s"
            if need_gib
            else ""
        )
        + f". EFS is faster for {_names(efs_faster)}.\n\n"
        "**Where DynamoDB wins.** It is faster for "
        f"{_names(dynamo_faster)}: every EFS round trip costs ~1 ms and a "
        f"SQLite read transaction makes several per shard, so a point read of 3 fields takes "
        f"{at('point_read', 'efs_elastic')['median_ms']:.0f} ms "
        f"against {at('point_read', 'dynamodb')['median_ms']:.0f} ms, "
        "and a node create (an atomic write to 7 shards) "
        f"{at('create', 'efs_elastic')['mean_nfs_requests']:.0f} round trips, "
        f"{at('create', 'efs_elastic')['median_ms']:.0f} ms "
        f"against {at('create', 'dynamodb')['median_ms']:.0f} ms. "
        "Against pay-per-use EFS Elastic it is cheaper "
        f"for {_names(dynamo_beats_elastic)} (the mix: "
        f"{usd('mix', 'dynamodb')} against {usd('mix', 'efs_elastic')} "
        "per million, since Elastic meters every metadata "
        f"round trip at 4 KiB), and it scales with the load with nothing to provision.\n\n"
        + (
            "**In short:** SQLite on EFS is the cheaper way to "
            "serve a steady, read-mostly load like this one — long "
            f"lists, up to {provisioned_rate:,.0f} requests/s "
            "on Provisioned throughput — when a median of "
            f"{mix_efs_ms:.0f} ms is acceptable; DynamoDB is the "
            "better choice when latency matters, for write-heavy "
            f"traffic, and for spiky or unpredictable rates."
            if efs_wins
            else "**In short:** for this mix DynamoDB is both cheaper "
            "and faster than every EFS configuration priced here; "
            "SQLite on EFS only makes sense where its other properties "
            "(SQL on the files, no per-item limits) matter."
        )
    )
    return Verdict(numbers, conclusion, efs_wins)
