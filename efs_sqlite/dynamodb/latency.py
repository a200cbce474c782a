"""Modelled latency of DynamoDB calls from Lambda, per call type, as distributions (p50, p90, p99).

The measured figures are DeBrie's (Python on Lambda, 400 invocations each;
``docs/SOURCES.md#debrie-latency``): PutItem, BatchWriteItem of 5 and 25 items, TransactWriteItems
of 5 and 25 items. Between two measured sizes of one call type the figures are interpolated
linearly in the number of items; past the largest they are extrapolated along the last segment;
below the smallest, a transaction costs what the 5-item one does (its two phases are a fixed
cost) and a batch write of one item what a PutItem does.

No measurement of a read from Lambda was found. :data:`READS_TIMED_AS` is the named parameter
that stands in for one (its reasoning is in ``docs/SOURCES.md#dynamodb-read-latency``): a read
is timed as the write of the same number of items.

>>> latency("PutItem").p50, latency("BatchWriteItem", 15).p50
(7.55, 9.17)
>>> latency("TransactWriteItems", 2) == latency("TransactWriteItems", 5)
True
>>> latency("GetItem") == latency("PutItem")
True
"""

from __future__ import annotations

import bisect
import itertools
from typing import NamedTuple

__all__ = ["MEASURED", "READS_TIMED_AS", "Latency", "latency"]


class Latency(NamedTuple):
    """A latency distribution by three percentiles, in milliseconds."""

    p50: float
    p90: float
    p99: float

    def quantile(self, q: float) -> float:
        """The ``q``-quantile (0.5, 0.9 or 0.99; between them, linear).

        >>> Latency(10, 20, 40).quantile(0.7)
        15.0
        """
        points = ((0.5, self.p50), (0.9, self.p90), (0.99, self.p99))
        if q <= 0.5:
            return self.p50
        for (q0, v0), (q1, v1) in itertools.pairwise(points):
            if q <= q1:
                return round(v0 + (v1 - v0) * (q - q0) / (q1 - q0), 6)
        return self.p99


#: DeBrie's measurements: call type -> {items: latency}.
MEASURED: dict[str, dict[int, Latency]] = {
    "PutItem": {1: Latency(7.55, 11.3, 16.2)},
    "BatchWriteItem": {
        1: Latency(7.55, 11.3, 16.2),
        5: Latency(8.14, 13.3, 25.5),
        25: Latency(10.2, 16.0, 27.6),
    },
    "TransactWriteItems": {5: Latency(25.3, 30.7, 92.5), 25: Latency(32.1, 40.5, 97.5)},
}

#: The named parameter for the calls nobody measured from Lambda: each is timed as the measured
#: call of the same number of items it stands beside (see ``docs/SOURCES.md#dynamodb-read-latency``).
READS_TIMED_AS: dict[str, str] = {
    "GetItem": "PutItem",
    "Query": "PutItem",
    "Scan": "PutItem",
    "DeleteItem": "PutItem",
    "DescribeTable": "PutItem",
    "CreateTable": "PutItem",
    "BatchGetItem": "BatchWriteItem",
}


def latency(operation: str, items: int = 1) -> Latency:
    """The modelled latency of one ``operation`` call of ``items`` items."""
    points = MEASURED[READS_TIMED_AS.get(operation, operation)]
    sizes = sorted(points)
    if items <= sizes[0] or len(sizes) == 1:
        return points[sizes[0]]
    i = min(bisect.bisect_left(sizes, items), len(sizes) - 1)
    lo, hi = sizes[i - 1], sizes[i]
    a, b = points[lo], points[hi]
    t = (items - lo) / (hi - lo)
    return Latency(*(round(x + (y - x) * t, 6) for x, y in zip(a, b, strict=True)))
