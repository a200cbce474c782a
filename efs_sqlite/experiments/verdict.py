"""The verdict of notebook 05: EFS or DynamoDB for a request mix, decided from the measured tables.

* :func:`decisions` — per request kind and for the mix, which side wins on p50, on p99 and on $
  per million, and whether that holds across EFS's latency range [low, high] or flips;
* :func:`efs_wins_map` — "when does EFS win": the cheaper side over read share x request rate x
  stored GB, from the mix's rows;
* :func:`verdict` — the headline numbers, the conclusion in Markdown (the decisions' table in it),
  and which side it comes down on.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from efs_sqlite.costs import DYNAMODB, EFS_PRICES, MONTH_S
from efs_sqlite.experiments.queries import DESIGNS, MIX_DOCUMENTS, MIX_WEIGHTS, mix_summary
from efs_sqlite.experiments.tables import Row, markdown_table

#: The request rate :func:`verdict` asks of EFS Bursting: what sizes of data sustain it.
BURSTING_TARGET_PER_S = 100


class Verdict(NamedTuple):
    """What notebook 05 concludes: ``numbers`` (the headline figures, for its ``summary.json``),
    ``conclusion`` (Markdown) and ``efs_wins`` (whether EFS, on Provisioned throughput, serves
    the whole mix for less than DynamoDB: the conclusion's last paragraph says which way)."""

    numbers: dict[str, Any]
    conclusion: str
    efs_wins: bool


#: What :func:`decisions` compares: a :func:`mix_summary` column each, lower is better.
MEASURES = {"p50": "median_ms", "p99": "p99_ms", "usd_per_million": "usd_per_million"}
#: Not compared on $ per million: DynamoDB is the other side, and Bursting's price is Lambda alone
#: at a rate its data stored caps (:func:`efs_wins_map` weighs that).
UNPRICED_PER_REQUEST = frozenset({"dynamodb", "efs_bursting"})
#: The EFS design whose latency is compared (Elastic, Bursting and Provisioned share one profile).
LATENCY_DESIGN = "efs_elastic"


class Decision(NamedTuple):
    """Who wins one measure for one kind: ``winner`` (``"efs"`` or ``"dynamodb"``) at EFS's
    typical latency, ``holds`` whether it is the same at both ends of EFS's range (else it flips
    within it), ``efs_design`` the EFS design compared (for $, the cheapest priced one), and
    the figures: EFS at ``efs_low``, ``efs`` (typical), ``efs_high``, and ``dynamodb``."""

    kind: str
    measure: str
    winner: str
    holds: bool
    efs_design: str
    efs_low: float
    efs: float
    efs_high: float
    dynamodb: float


def _side(efs: float, dynamodb: float) -> str:
    return "efs" if efs < dynamodb else "dynamodb"


def decisions(costs: Sequence[Row]) -> list[Decision]:
    """Per kind of ``costs`` (a :func:`mix_summary` table, ``"mix"`` included) and per measure of
    :data:`MEASURES`, who wins, and whether it holds across EFS's latency range.

    Latency compares :data:`LATENCY_DESIGN` with DynamoDB; $ per million the cheapest priced EFS
    design but Bursting (at typical latency; :data:`UNPRICED_PER_REQUEST`) with DynamoDB, each
    end at its own Lambda time. A tie goes to
    DynamoDB (EFS must be strictly better).

    >>> row = lambda kind, design, ms, usd, low=None, high=None: {
    ...     "kind": kind, "design": design, "median_ms": ms, "p99_ms": 2 * ms,
    ...     "median_low_ms": low, "median_high_ms": high, "p99_low_ms": low and 2 * low,
    ...     "p99_high_ms": high and 2 * high, "usd_per_million": usd,
    ...     "usd_per_million_low": usd, "usd_per_million_high": usd}
    >>> table = [row("mix", "efs_elastic", 5, 3.0, 2, 12), row("mix", "dynamodb", 8, 2.0)]
    >>> [(d.measure, d.winner, d.holds) for d in decisions(table)]
    [('p50', 'efs', False), ('p99', 'efs', False), ('usd_per_million', 'dynamodb', True)]
    """
    table: Mapping[tuple[str, str], Row] = {(r["kind"], r["design"]): r for r in costs}
    kinds = list(dict.fromkeys(r["kind"] for r in costs))
    out = []
    for kind in kinds:
        dynamo = table[kind, "dynamodb"]
        priced = [
            d
            for d in DESIGNS
            if d not in UNPRICED_PER_REQUEST and table.get((kind, d), {}).get("usd_per_million") is not None
        ]
        for measure, column in MEASURES.items():
            if measure == "usd_per_million":
                design = min(priced, key=lambda d: table[kind, d][column])
                ends = (f"{column}_low", f"{column}_high")
            else:
                design = LATENCY_DESIGN
                ends = (column.replace("_ms", "_low_ms"), column.replace("_ms", "_high_ms"))
            efs = table[kind, design]
            typical, low, high = efs[column], efs[ends[0]], efs[ends[1]]
            winner = _side(typical, dynamo[column])
            holds = _side(low, dynamo[column]) == winner == _side(high, dynamo[column])
            out.append(Decision(kind, measure, winner, holds, design, low, typical, high, dynamo[column]))
    return out


def decisions_table(found: Sequence[Decision]) -> list[Row]:
    """:func:`decisions` as one row per kind: the winner of each measure, with ``(flips)`` when
    it changes within EFS's latency range (the conclusion's table)."""
    rows: dict[str, Row] = {}
    for d in found:
        rows.setdefault(d.kind, {"kind": d.kind})[d.measure] = d.winner + ("" if d.holds else " (flips)")
    return list(rows.values())


class MapPoint(NamedTuple):
    """One point of :func:`efs_wins_map`: the monthly cost of each side at that load, the EFS
    design that serves it for least (``None`` if none sustains the rate), and ``efs_wins``."""

    read_share: float
    requests_per_s: float
    stored_gib: float
    efs_design: str | None
    efs_usd_month: float | None
    dynamodb_usd_month: float
    efs_wins: bool


def _weights_at(read_share: float, weights: Mapping[str, float]) -> dict[str, float]:
    """``weights`` rescaled so that reads (the queries) make ``read_share`` of the mix."""
    writes = {k for k in weights if not MIX_DOCUMENTS[k].lstrip().startswith("query")}
    total = {w: sum(v for k, v in weights.items() if (k in writes) == w) for w in (False, True)}
    share = {False: read_share, True: 1 - read_share}
    return {k: share[k in writes] * v / total[k in writes] for k, v in weights.items() if total[k in writes]}


def efs_wins_map(
    rows: Sequence[Row],
    read_shares: Sequence[float],
    rates_per_s: Sequence[float],
    sizes_gib: Sequence[float],
    *,
    weights: Mapping[str, float] | None = None,
    memory_mb: int = 1024,
) -> list[MapPoint]:
    """When EFS wins: for each read share x request rate x stored GiB, the monthly cost of
    serving the mix of :func:`~efs_sqlite.experiments.queries.query_mix` ``rows`` on DynamoDB (its
    $ per million at that rate, plus its storage) and on the cheapest EFS design that sustains
    the rate (:func:`mix_summary`'s ``max_requests_per_s`` at that size; Provisioned bought for the
    load, as the cost model prices it; plus EFS storage). ``weights`` (default
    :data:`MIX_WEIGHTS`) set the proportions within the reads and within the writes."""
    weights = dict(weights or MIX_WEIGHTS)
    points = []
    for share, gib in itertools.product(read_shares, sizes_gib):
        mix = {
            r["design"]: r
            for r in mix_summary(
                rows, weights=_weights_at(share, weights), stored_gib=gib, memory_mb=memory_mb
            )
            if r["kind"] == "mix"
        }
        for rate in rates_per_s:
            per_month = rate * MONTH_S / 1e6
            dynamo = mix["dynamodb"]["usd_per_million"] * per_month + gib * DYNAMODB.storage_gb_month
            options = {
                d: r["usd_per_million"] * per_month + gib * EFS_PRICES.storage_gb_month
                for d, r in mix.items()
                if d != "dynamodb" and r["usd_per_million"] is not None and r["max_requests_per_s"] >= rate
            }
            best = min(options, key=options.__getitem__, default=None)
            efs = options.get(best) if best else None
            points.append(MapPoint(share, rate, gib, best, efs, dynamo, efs is not None and efs < dynamo))
    return points


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
    for, and ends with the table of :func:`decisions` (``numbers["winners"]``). A kind or design
    missing from ``costs`` raises KeyError.
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
    per_measure = decisions_table(decisions(costs))
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
        "winners": per_measure,
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
        + "\n\n**Who wins each measure** (EFS Elastic's latency; $ per million on the cheaper of "
        "Elastic and Provisioned; *(flips)*: the other side wins somewhere in EFS's latency "
        "range [low, high]):\n\n" + markdown_table(per_measure)
    )
    return Verdict(numbers, conclusion, efs_wins)
