"""The seeded insurance data set: claims, parties and transactions as a stream of records.

A record is one field value of one node, shaped as the loader (and the loader Lambda) takes it::

    {"shard": "claim_type_code", "uid": 1820000000000000000, "value": "MOTOR"}

with values encoded for JSON: datetimes as ISO 8601 with ``Z``, decimals as strings, reference lists
as lists of ids. ``Field.coerce`` of the model turns them back into Python values. Every node also has
a ``_type`` record whose value is its type name.

The graph has the skew that broke the DynamoDB version: most parties have a few claims (1 to 12), a
few *hub* parties each have ``hub_claims`` claims — a quarter of all claims at ``small`` scale,
25,000 at ``default``, 50,000 at ``large``. Both sides of every link are emitted and agree:
``claim.parties`` <-> ``party.claims`` and ``claim.transactions`` <-> ``transaction.claim``.

Memory stays flat at any scale because no side of a link is ever collected: links are arithmetic.
Regular party ``p`` owns a run of "link slots" (its claim count, from a fixed skewed pattern rotated
per block of 16 parties); the slots are dealt out evenly to claims through an invertible affine
permutation, so either side of a link is computed from the other in O(1). A hub's claims are those
whose image under another affine permutation of the claims falls below ``hub_claims``. The largest
object ever held is one hub's claim list.

Output is deterministic: values come from :class:`random.Random` seeded with strings (stable across
runs and platforms), Faker (seeded once) only makes the pool of source-system codes, ids are Small
UIDs laid out from a base millisecond derived from the seed, and gzip writes no timestamp or name.

>>> recs = list(generate_records("small", seed=7))
>>> recs[0]["shard"], recs[0]["value"]
('_type', 'Claim')
>>> recs == list(generate_records("small", seed=7))
True
>>> hub = next(r for r in recs if r["shard"] == "party_claims")
>>> len(hub["value"]) == SCALES["small"].hub_claims   # the first parties are the hubs
True
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import os
import random
import string
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from efs_sqlite.errors import DataSetError
from efs_sqlite.kinds import KIND_OF
from efs_sqlite.model import INSURANCE, TYPE_SHARD

__all__ = [
    "GENERATOR_VERSION",
    "SCALES",
    "Record",
    "Scale",
    "generate_dataset",
    "generate_records",
    "read_manifest",
    "read_records",
]

#: Bump when the same seed and scale would produce different records.
GENERATOR_VERSION = 1
MANIFEST = "manifest.json"
PART_RECORDS = 250_000

Record = dict[str, Any]


# How many claims each regular party of a block of 16 has: most a few, some a dozen.
_PATTERN = (1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 4, 5, 7, 12)
_BLOCK = len(_PATTERN)
_BLOCK_SLOTS = sum(_PATTERN)
_PREFIX = [sum(_PATTERN[: i % _BLOCK]) + _BLOCK_SLOTS * (i // _BLOCK) for i in range(2 * _BLOCK + 1)]
# A claim's (at most 3) slots are consecutive, so their images lie a and 2a (mod L) apart; with a
# near L/phi both are >= 0.236 L, far more than a party's run of <= 12 slots once L >= 100: no claim
# ever lists a party twice.
_PHI = (math.sqrt(5) - 1) / 2
_MIN_SLOTS = 100


def _slot_bounds(regular: int) -> tuple[int, int]:
    """The fewest and most link slots ``regular`` parties can have (the last block's rotation varies)."""
    full, rest = divmod(regular, _BLOCK)
    partial = [_PREFIX[rest + r] - _PREFIX[r] for r in range(_BLOCK)]
    return full * _BLOCK_SLOTS + min(partial), full * _BLOCK_SLOTS + max(partial)


@dataclass(frozen=True)
class Scale:
    """How big a data set is. ``parties`` includes the ``hubs``, each linked to ``hub_claims`` claims.

    Regular parties hold 3 claims on average (1 to 12); every claim gets 1 to 3 of them, so
    ``3 * (parties - hubs)`` must lie between ``claims`` and ``3 * claims`` (roughly).
    """

    name: str
    claims: int
    parties: int
    hubs: int
    hub_claims: int

    def __post_init__(self) -> None:
        if not 1 <= self.claims < 10_000_000:
            raise ValueError("claims must be between 1 and 9,999,999")
        if not 0 <= self.hubs < self.parties or not 1 <= self.hub_claims <= self.claims:
            raise ValueError("need 0 <= hubs < parties and 1 <= hub_claims <= claims")
        if self.parties >= 90_000_000:
            raise ValueError("parties must be below 90,000,000 (8-digit party identifiers)")
        low, high = _slot_bounds(self.parties - self.hubs)
        if low < max(self.claims, _MIN_SLOTS) or high > 3 * self.claims:
            raise ValueError(
                f"scale {self.name!r}: {self.parties - self.hubs} regular parties hold {low}..{high} claim "
                f"links; need between max(claims, {_MIN_SLOTS}) and 3 * claims ({self.claims} claims)"
            )


#: small: CI (1k claims, 2.8k nodes, 19k rows); default: 85k nodes, 0.5M records, 0.65M rows;
#: large: 1.1M nodes, 6.7M records, 7.7M rows (see data/README.md).
SCALES: dict[str, Scale] = {
    s.name: s
    for s in (
        Scale("small", claims=1_000, parties=400, hubs=2, hub_claims=250),
        Scale("default", claims=30_000, parties=12_000, hubs=2, hub_claims=25_000),
        Scale("large", claims=400_000, parties=150_000, hubs=4, hub_claims=50_000),
    )
}

_START = datetime(2019, 1, 1)
_SPAN_S = int((datetime(2025, 1, 1) - _START).total_seconds())
_BASE_MS = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)

_CLAIM_TYPES = ("MOTOR", "PROPERTY", "LIABILITY", "HEALTH", "TRAVEL", "MARINE", "CYBER")
_CLAIM_WEIGHTS = (40, 25, 12, 10, 7, 3, 3)
_SERVICES = ("REPAIR", "TOWING", "RENTAL", "GLASS", "MEDICAL", "LEGAL", "SALVAGE", "ASSESSMENT")
_SERVICE_WEIGHTS = (30, 12, 10, 10, 15, 8, 5, 10)
_TX_COUNTS = (0, 1, 1, 1, 2, 2, 3)  # transactions per claim, drawn uniformly


def _coprime_near(target: int, modulus: int) -> int:
    a = max(1, target % modulus)
    while math.gcd(a, modulus) != 1:
        a += 1
    return a


def _mix(x: int) -> int:
    """splitmix64's finaliser: a cheap, well-spread hash of an integer."""
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


class _Links:
    """Both sides of every claim-party link, computed on demand (see the module docstring)."""

    def __init__(self, scale: Scale, seed: int) -> None:
        rng = random.Random(f"efs-sqlite:{seed}:links")
        self.claims, self.hubs, self.hub_claims = scale.claims, scale.hubs, scale.hub_claims
        self.regular = scale.parties - scale.hubs
        self.salt = rng.getrandbits(64)
        full, rest = divmod(self.regular, _BLOCK)
        r = self._rotation(full)
        self.slots = full * _BLOCK_SLOTS + _PREFIX[rest + r] - _PREFIX[r]
        self.a = _coprime_near(round(self.slots * _PHI), self.slots)
        self.a_inv = pow(self.a, -1, self.slots)
        self.b = rng.randrange(self.slots)
        self.hub_perms = []
        for _ in range(self.hubs):
            a = _coprime_near(rng.randrange(1, max(2, self.claims)), self.claims)
            self.hub_perms.append((a, pow(a, -1, self.claims), rng.randrange(self.claims)))

    def _rotation(self, block: int) -> int:
        return _mix(self.salt ^ block) % _BLOCK

    def party_claims(self, p: int) -> list[int]:
        """The claims of party ``p`` (hubs are ``0 .. hubs-1``), sorted."""
        if p < self.hubs:
            _, a_inv, b = self.hub_perms[p]
            return sorted(a_inv * (r - b) % self.claims for r in range(self.hub_claims))
        block, i = divmod(p - self.hubs, _BLOCK)
        r = self._rotation(block)
        start = block * _BLOCK_SLOTS + _PREFIX[i + r] - _PREFIX[r]
        n_claims, n_slots = self.claims, self.slots
        # Claim c owns slots [c*L//C, (c+1)*L//C): slot s belongs to claim ((s+1)*C - 1) // L.
        return sorted(
            ((self.a_inv * (t - self.b) % n_slots + 1) * n_claims - 1) // n_slots
            for t in range(start, start + _PATTERN[(i + r) % _BLOCK])
        )

    def claim_parties(self, c: int) -> list[int]:
        """The parties of claim ``c``: the hubs it belongs to, then its regular parties."""
        parties = [
            j for j, (a, _, b) in enumerate(self.hub_perms) if (a * c + b) % self.claims < self.hub_claims
        ]
        for s in range(c * self.slots // self.claims, (c + 1) * self.slots // self.claims):
            block, offset = divmod((self.a * s + self.b) % self.slots, _BLOCK_SLOTS)
            r = self._rotation(block)
            parties.append(self.hubs + block * _BLOCK + bisect_right(_PREFIX, offset + _PREFIX[r]) - 1 - r)
        return parties


#: A datetime as a record carries it: ISO 8601 with ``Z``.
_iso = KIND_OF["datetime"].to_json


def _scale(scale: str | Scale) -> Scale:
    if isinstance(scale, Scale):
        return scale
    try:
        return SCALES[scale]
    except KeyError:
        raise ValueError(f"unknown scale {scale!r}: choose one of {', '.join(SCALES)}") from None


def _source_systems(seed: int) -> list[str]:
    from faker import Faker  # imported here: only generation needs it

    fake = Faker("en_US")
    fake.seed_instance(seed)
    return [fake.unique.bothify("???-##", letters=string.ascii_uppercase) for _ in range(12)]


def generate_records(scale: str | Scale = "small", seed: int = 0) -> Iterator[Record]:
    """Stream the records of the data set: each claim with its transactions, then the parties.

    Same ``scale`` and ``seed`` -> the same records in the same order, on any machine.
    """
    sc = _scale(scale)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    links = _Links(sc, seed)
    rng = random.Random(f"efs-sqlite:{seed}:values")
    systems = _source_systems(seed)
    system_weights = [1 / (i + 1) for i in range(len(systems))]
    base = (_BASE_MS + rng.randrange(365 * 86_400_000)) << 20
    step = max(1, _SPAN_S // sc.claims)
    n_claims, n_parties = sc.claims, sc.parties
    tx = 0

    def claim_start(c: int) -> datetime:
        return _START + timedelta(seconds=c * _SPAN_S // n_claims)

    for c in range(n_claims):
        uid = base + c
        at = claim_start(c) + timedelta(seconds=rng.randrange(step))
        n_tx = rng.choice(_TX_COUNTS)
        tx_ids = [base + n_claims + n_parties + tx + k for k in range(n_tx)]
        parties = links.claim_parties(c)
        yield {"shard": TYPE_SHARD, "uid": uid, "value": "Claim"}
        # yy + 7 digits stays below 2^31: GraphQL's Int is 32-bit.
        yield {"shard": "claim_identifier", "uid": uid, "value": int(f"{at.year % 100:02d}{c + 1:07d}")}
        yield {
            "shard": "claim_type_code",
            "uid": uid,
            "value": rng.choices(_CLAIM_TYPES, _CLAIM_WEIGHTS)[0],
        }
        yield {"shard": "claim_timestamp", "uid": uid, "value": _iso(at)}
        if tx_ids:
            yield {"shard": "claim_transactions", "uid": uid, "value": tx_ids}
        yield {"shard": "claim_parties", "uid": uid, "value": sorted(base + n_claims + p for p in parties)}
        for t_uid, offset in zip(tx_ids, sorted(rng.randrange(180 * 86_400) for _ in tx_ids), strict=True):
            t_at = at + timedelta(seconds=offset)
            cents = int(rng.lognormvariate(10.0, 1.3)) + 1
            sign = "-" if rng.random() < 0.08 else ""  # recoveries and refunds
            yield {"shard": TYPE_SHARD, "uid": t_uid, "value": "Transaction"}
            yield {
                "shard": "transaction_identifier",
                "uid": t_uid,
                "value": f"FT{t_at:%Y%m%d}-{t_uid - base - n_claims - n_parties + 1:08d}",
            }
            yield {"shard": "transaction_timestamp", "uid": t_uid, "value": _iso(t_at)}
            yield {"shard": "transaction_claim", "uid": t_uid, "value": uid}
            yield {
                "shard": "transaction_amount",
                "uid": t_uid,
                "value": f"{sign}{cents // 100}.{cents % 100:02d}",
            }
            if rng.random() < 0.9:
                yield {
                    "shard": "transaction_source_system_code",
                    "uid": t_uid,
                    "value": rng.choices(systems, system_weights)[0],
                }
            if rng.random() < 0.7:
                yield {
                    "shard": "transaction_service_type_code",
                    "uid": t_uid,
                    "value": rng.choices(_SERVICES, _SERVICE_WEIGHTS)[0],
                }
        tx += n_tx

    for p in range(n_parties):
        uid = base + n_claims + p
        claims = links.party_claims(p)
        joined = claim_start(claims[0]) - timedelta(seconds=rng.randrange(86_400, 3 * 365 * 86_400))
        yield {"shard": TYPE_SHARD, "uid": uid, "value": "Party"}
        yield {"shard": "party_identifier", "uid": uid, "value": 10_000_000 + (p * 7_919 + seed) % 90_000_000}
        yield {"shard": "party_timestamp", "uid": uid, "value": _iso(joined)}
        yield {"shard": "party_claims", "uid": uid, "value": [base + c for c in claims]}


def _line(record: Record) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


#: Shards whose record value is a list, stored as one ``refs`` row per entry.
_LIST_SHARDS = frozenset(s for s in INSURANCE.shards()[1:] if INSURANCE.field_for_shard(s).kind == "refs")


def generate_dataset(
    out: str | os.PathLike[str],
    scale: str | Scale = "small",
    seed: int = 0,
    *,
    part_records: int = PART_RECORDS,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Write the data set under ``out`` as gzip'd JSON Lines parts plus ``manifest.json``; return it.

    The manifest is written last, so a folder without one is an interrupted generation. ``out``
    must be empty unless ``overwrite`` (which removes only a previous data set's own files).
    """
    sc = _scale(scale)
    if part_records < 1:
        raise ValueError("part_records must be >= 1")
    root = Path(out)
    ours = [root / MANIFEST, *root.glob("part-*.jsonl.gz")]
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{root} is not empty; pass overwrite=True (--force) to replace a data set")
        others = set(root.iterdir()) - set(ours)
        if others:
            raise FileExistsError(
                f"{root} holds files that are not a data set's: {sorted(map(str, others))[:3]}"
            )
        for p in ours:
            p.unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)

    from tqdm import tqdm

    shards: Counter[str] = Counter()
    rows: Counter[str] = Counter()
    types: Counter[str] = Counter()
    parts: list[dict[str, Any]] = []
    writer: _PartWriter | None = None
    with tqdm(desc=f"generate {sc.name}", unit="rec", unit_scale=True, disable=not progress) as bar:
        for n, record in enumerate(generate_records(sc, seed), 1):
            if writer is None or writer.records == part_records:
                if writer is not None:
                    parts.append(writer.close())
                writer = _PartWriter(root / f"part-{len(parts):04d}.jsonl.gz")
            writer.write(_line(record))
            shard = record["shard"]
            shards[shard] += 1
            rows[shard] += len(record["value"]) if shard in _LIST_SHARDS else 1
            if shard == TYPE_SHARD:
                types[record["value"]] += 1
            if n % 10_000 == 0:
                bar.update(10_000)
        bar.update(sum(shards.values()) - bar.n)
        if writer is not None:
            parts.append(writer.close())
    manifest = {
        "format": "efs-sqlite-records",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "scale": asdict(sc),
        "records": sum(shards.values()),
        "rows": sum(rows.values()),
        "shards": {s: {"records": shards[s], "rows": rows[s]} for s in sorted(shards)},
        "types": dict(sorted(types.items())),
        "parts": parts,
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


class _PartWriter:
    """One deterministic gzip part (no name, mtime 0), hashed as it is written."""

    def __init__(self, path: Path) -> None:
        self.path, self.records = path, 0
        self._raw = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._hash = hashlib.sha256()
        self._gz = gzip.GzipFile(
            filename="", mode="wb", fileobj=_Hashing(self._raw, self._hash), mtime=0, compresslevel=6
        )
        self._buf = io.BufferedWriter(self._gz, buffer_size=1 << 20)

    def write(self, line: bytes) -> None:
        self._buf.write(line)
        self.records += 1

    def close(self) -> dict[str, Any]:
        self._buf.close()  # closes the gzip stream, which writes its trailer
        self._raw.close()
        return {"file": self.path.name, "records": self.records, "sha256": self._hash.hexdigest()}


class _Hashing(io.RawIOBase):
    """A write-through (or read-through) file that feeds every byte to a hash."""

    def __init__(self, fh: IO[bytes], digest: Any) -> None:
        self._fh, self._digest = fh, digest

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self._digest.update(b)
        return self._fh.write(b)

    def readinto(self, b: Any) -> int:
        n = self._fh.readinto(b)
        self._digest.update(memoryview(b)[:n])
        return n


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of the data set folder ``path`` (``None`` for a single file)."""
    p = Path(path)
    if p.is_file():
        return None
    if not p.exists():
        raise FileNotFoundError(f"no data set or records file at {p}")
    try:
        manifest: dict[str, Any] = json.loads((p / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataSetError(f"{p} has no {MANIFEST}: not a data set, or an interrupted generation") from None
    except json.JSONDecodeError as exc:
        raise DataSetError(f"{p / MANIFEST} is not valid JSON: {exc}") from None
    if manifest.get("format") != "efs-sqlite-records":
        raise DataSetError(f"{p / MANIFEST} is not an efs-sqlite data set manifest")
    return manifest


def _lines(fh: Iterable[bytes], where: str) -> Iterator[Record]:
    for n, line in enumerate(fh, 1):
        if line.strip():
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise DataSetError(f"{where}, line {n}: not JSON ({exc})") from None
            yield record


def read_records(path: str | os.PathLike[str], *, verify: bool = True) -> Iterator[Record]:
    """Stream the records of a data set folder (its parts, in order) or of one ``.jsonl[.gz]`` file.

    For a folder, each part's sha256 and record count are checked against the manifest as it is
    read (``verify``); a mismatch raises :class:`DataSetError` after that part's last record.
    """
    p = Path(path)
    manifest = read_manifest(p)
    if manifest is None:
        opener = gzip.open if p.name.endswith(".gz") else open
        with opener(p, "rb") as fh:
            yield from _lines(fh, str(p))
        return
    for part in manifest["parts"]:
        file = p / Path(part["file"]).name  # the manifest names files, never paths
        digest = hashlib.sha256()
        count = 0
        with open(file, "rb") as raw, gzip.GzipFile(fileobj=_Hashing(raw, digest), mode="rb") as fh:
            for record in _lines(io.BufferedReader(fh, 1 << 20), str(file)):
                count += 1
                yield record
        if verify and (digest.hexdigest() != part["sha256"] or count != part["records"]):
            raise DataSetError(
                f"{file}: expected {part['records']} records with sha256 {part['sha256']}, read {count} "
                f"with sha256 {digest.hexdigest()}: the data set is damaged; regenerate it"
            )
