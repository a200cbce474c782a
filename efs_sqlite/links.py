"""Inverse consistency: both sides of every inverse pair of a model agree.

A link of a pair (:meth:`~efs_sqlite.model.Model.pairs`) is held twice: claim ``c`` lists party
``p`` in ``claim_parties`` and ``p`` lists ``c`` in ``party_claims``; claim ``c`` lists transaction
``t`` in ``claim_transactions`` and ``t``'s ``transaction_claim`` is ``c``. :func:`check_links`
reads records (``{"shard", "uid", "value"}``, as the loader takes them) and compares the two sides
of each pair as multisets of links, in memory that does not grow with the data set: each side's
links are summed into :data:`BUCKETS` buckets by a 64-bit hash, so buckets that agree hold the same
links (but for a 2^-64 chance), and only when some disagree are the records read a second time to
gather the links of those buckets and name them. The loader refuses a data set that disagrees
(:func:`efs_sqlite.loader.load_path`); :func:`store_records` reads a store's pairs as records, to
check a graph after writes.

>>> records = [{"shard": "claim_parties", "uid": 1, "value": [2, 3]},
...            {"shard": "party_claims", "uid": 2, "value": [1]}]
>>> [str(m) for m in check_links(lambda: records)]
['claim_parties of 1 lists 3, but party_claims of 3 does not list 1']
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

from efs_sqlite.model import INSURANCE, TYPE_SHARD, Model
from efs_sqlite.store import ShardStore

__all__ = ["BUCKETS", "LinkMismatch", "check_links", "store_records"]

#: Buckets per pair: each holds a count and a sum of hashes of its links, per side.
BUCKETS = 4096
_MASK = BUCKETS - 1


class LinkMismatch(NamedTuple):
    """A link one side holds ``times`` more often than the other holds it back: ``shard`` of
    ``uid`` lists (or, ``single``, is) ``target``, and ``missing``, the other side's shard, of
    ``target`` does not hold ``uid`` back."""

    shard: str
    uid: int
    target: int
    missing: str
    single: bool  # shard holds one reference, not a list
    missing_single: bool
    times: int = 1

    def __str__(self) -> str:
        held = "is" if self.single else "lists"
        lacks = "is not" if self.missing_single else "does not list"
        more = f" ({self.times} times more than the other side)" if self.times > 1 else ""
        return (
            f"{self.shard} of {self.uid} {held} {self.target}, "
            f"but {self.missing} of {self.target} {lacks} {self.uid}{more}"
        )


class _Side(NamedTuple):
    pair: int
    first: bool  # the pair's first side (its list side): links are (this node, target)
    other: str  # the other side's shard
    single: bool  # this side is a single reference


def _sides(model: Model) -> dict[str, _Side]:
    sides = {}
    for i, (a, b) in enumerate(model.pairs()):
        sa, sb = a.type.shard(a.field.name), b.type.shard(b.field.name)
        sides[sa] = _Side(i, True, sb, a.field.kind == "ref")
        sides[sb] = _Side(i, False, sa, b.field.kind == "ref")
    return sides


def _links(sides: dict[str, _Side], records: Iterable[Any]) -> Iterator[tuple[_Side, int, int, int]]:
    """``(side, a, b, sign)`` per link entry of the pairs' records: ``(a, b)`` the link as the
    first side holds it, ``sign`` +1 from the first side and -1 from the second. Records that do
    not fit (the loader names those) hold no link."""
    for record in records:
        side = sides.get(record.get("shard")) if isinstance(record, dict) else None
        if side is None:
            continue
        uid, value = record.get("uid"), record.get("value")
        if type(uid) is not int:
            continue
        targets = value if isinstance(value, list) else [value]
        for target in targets:
            if type(target) is int:
                yield (side, uid, target, 1) if side.first else (side, target, uid, -1)


def check_links(records: Callable[[], Iterable[Any]], model: Model = INSURANCE) -> list[LinkMismatch]:
    """The links of ``model``'s inverse pairs that the two sides of the records disagree on
    (none: they agree). ``records()`` returns the records afresh: a second pass over them, only
    when some bucket disagrees, gathers the links to name."""
    sides = _sides(model)
    if not sides:
        return []
    pairs = len(model.pairs())
    counts = [[0] * BUCKETS for _ in range(pairs)]
    sums = [[0] * BUCKETS for _ in range(pairs)]
    for side, a, b, sign in _links(sides, records()):
        h = hash((a, b))  # ints and tuples of ints hash alike in every process
        counts[side.pair][h & _MASK] += sign
        sums[side.pair][h & _MASK] += sign * h
    bad = [{i for i in range(BUCKETS) if counts[p][i] or sums[p][i]} for p in range(pairs)]
    if not any(bad):
        return []
    held: Counter[tuple[int, int, int]] = Counter()
    by_pair = {(side.pair, side.first): (shard, side) for shard, side in sides.items()}
    for side, a, b, sign in _links(sides, records()):
        if hash((a, b)) & _MASK in bad[side.pair]:
            held[side.pair, a, b] += sign
    out = []
    for (pair, a, b), n in sorted(held.items()):
        if n:
            shard, side = by_pair[pair, n > 0]
            holder, target = (a, b) if n > 0 else (b, a)
            missing = sides[side.other].single
            out.append(LinkMismatch(shard, holder, target, side.other, side.single, missing, abs(n)))
    return out


def store_records(store: ShardStore, model: Model = INSURANCE) -> Iterator[dict[str, Any]]:
    """The values of ``store``'s inverse-pair shards as records (a list whole, one record each),
    node by node of the ``_type`` shard: what :func:`check_links` checks."""
    after = None
    while page := store.scan(TYPE_SHARD, after=after, limit=1000):
        after = page[-1][0]
        by_type: dict[str, list[int]] = {}
        for uid, type_name in page:
            by_type.setdefault(type_name, []).append(uid)
        for type_name, ids in by_type.items():
            t = model.type(type_name)
            for f in t.fields:
                if model.inverse(t, f) is None:
                    continue
                shard = t.shard(f.name)
                if f.kind == "ref":
                    for uid, value in store.get_many(shard, ids).items():
                        yield {"shard": shard, "uid": uid, "value": int(value)}
                    continue
                counts = store.list_count_many(shard, ids)
                for uid in ids:
                    if counts.get(uid):
                        yield {
                            "shard": shard,
                            "uid": uid,
                            "value": store.list_page(shard, uid, 0, counts[uid]),
                        }
