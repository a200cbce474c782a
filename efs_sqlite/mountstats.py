r"""The kernel's NFS statistics (``/proc/self/mountstats``), and a latency profile measured from them.

For each NFS mount the kernel lists, under ``per-op statistics``, one line per NFS operation::

    OPNAME: ops trans timeouts bytes_sent bytes_recv queue rtt execute [errors]

cumulative since the mount: operations, transmissions, major timeouts, bytes sent and received,
and milliseconds spent queued, on the wire (``rtt``: request sent to reply received) and in all
(``execute``: from the call to its completion); ``errors`` since statistics version 1.1
(docs/SOURCES.md#mountstats). :func:`parse` reads every mount, :func:`delta` takes the difference
of two snapshots of one mount (what a workload cost), and :func:`measured_profile` turns it into
a :class:`~efs_sqlite.efs_model.LatencyProfile`: each latency class's mean execute time per
operation.

>>> head = "device 127.0.0.1:/ mounted on /mnt/efs with fstype nfs4 statvers=1.1\n\tper-op statistics\n"
>>> before = parse(head + "\t        LOCK: 10 10 0 2160 1040 0 30 32 0\n")
>>> after = parse(head + "\t        LOCK: 20 20 0 4320 2080 0 60 64 0\n")
>>> d = delta(before, after, "/mnt/efs")
>>> d["LOCK"].ops, d["LOCK"].execute_ms
(10, 32)
>>> measured_profile(d, name="measured").lock_s
0.0032
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from efs_sqlite.efs_model import PROFILES, LatencyProfile
from efs_sqlite.nfs_client import LATENCY_CLASSES

__all__ = [
    "MOUNTSTATS",
    "NFS_FSTYPES",
    "Mount",
    "OpStats",
    "class_of",
    "delta",
    "find_mount",
    "measured_profile",
    "parse",
    "read",
]

#: Where the kernel publishes the statistics of the calling process's mounts.
MOUNTSTATS = "/proc/self/mountstats"
NFS_FSTYPES = ("nfs", "nfs4")

#: NFSv4.1 operations by the latency class the model prices them in; any other operation (SEQUENCE,
#: RENEW, EXCHANGE_ID, ...: session upkeep) is left out of the profile.
_CLASS_OPS = {
    "lock": ("LOCK", "LOCKT", "LOCKU"),
    "getattr": ("GETATTR", "LOOKUP", "ACCESS", "LOOKUP_ROOT"),
    "read": ("READ",),
    "write": ("WRITE",),
    "commit": ("COMMIT",),
    "state": ("OPEN", "OPEN_NOATTR", "OPEN_DOWNGRADE", "CLOSE", "REMOVE", "SETATTR", "CREATE", "RENAME"),
}
_CLASS = {op: c for c, ops in _CLASS_OPS.items() for op in ops}


def class_of(op: str) -> str | None:
    """The latency class of an NFS operation, ``None`` for session upkeep.

    >>> class_of("LOCKU"), class_of("SEQUENCE")
    ('lock', None)
    """
    return _CLASS.get(op)


class OpStats(NamedTuple):
    """One ``per-op statistics`` line: counts, bytes and cumulative milliseconds."""

    ops: int
    trans: int
    timeouts: int
    bytes_sent: int
    bytes_recv: int
    queue_ms: int
    rtt_ms: int
    execute_ms: int
    errors: int = 0

    def __sub__(self, other: object) -> OpStats:
        if not isinstance(other, OpStats):
            return NotImplemented
        return OpStats(*(a - b for a, b in zip(self, other, strict=True)))


@dataclass
class Mount:
    """One mount of the statistics: ``device`` mounted on ``mountpoint``, its options and ops."""

    device: str
    mountpoint: str
    fstype: str
    options: dict[str, str] = field(default_factory=dict)
    ops: dict[str, OpStats] = field(default_factory=dict)

    @property
    def is_nfs(self) -> bool:
        return self.fstype in NFS_FSTYPES


def parse(text: str) -> dict[str, Mount]:
    """Every mount of a ``mountstats`` text, by mount point (the last one wins, as in the kernel)."""
    mounts: dict[str, Mount] = {}
    current: Mount | None = None
    in_ops = False
    for line in text.splitlines():
        words = line.split()
        if line.startswith("device "):
            # device <dev> mounted on <mountpoint> with fstype <type> [statvers=<v>]
            if len(words) < 8 or words[2:4] != ["mounted", "on"] or words[5:7] != ["with", "fstype"]:
                raise ValueError(f"not a mountstats device line: {line!r}")
            current = Mount(words[1], words[4], words[7])
            mounts[current.mountpoint] = current
            in_ops = False
        elif current is None or not words:
            continue
        elif words[0] == "opts:":
            pairs = (o.partition("=") for o in " ".join(words[1:]).split(","))
            current.options = {k: v for k, _, v in pairs}
        elif line.strip() == "per-op statistics":
            in_ops = True
        elif in_ops and words[0].endswith(":"):
            values = [int(v) for v in words[1:]]
            if len(values) not in (8, 9):
                raise ValueError(f"a per-op line has 8 or 9 numbers, not {len(values)}: {line!r}")
            current.ops[words[0][:-1]] = OpStats(*values)
    return mounts


def read(path: str | os.PathLike[str] = MOUNTSTATS) -> dict[str, Mount]:
    """The statistics of every mount, read now."""
    with open(path, encoding="utf-8") as f:
        return parse(f.read())


def find_mount(mounts: Mapping[str, Mount], path: str | os.PathLike[str]) -> Mount | None:
    """The NFS mount ``path`` lives on (the longest mount point above it), or ``None``."""
    target = os.path.realpath(path)
    best: Mount | None = None
    for point, mount in mounts.items():
        above = target == point or target.startswith(point.rstrip("/") + "/")
        if above and (best is None or len(point) > len(best.mountpoint)):
            best = mount
    return best if best is not None and best.is_nfs else None


def delta(before: Mapping[str, Mount], after: Mapping[str, Mount], mountpoint: str) -> dict[str, OpStats]:
    """What happened on ``mountpoint`` between two snapshots, per NFS operation."""
    if mountpoint not in before or mountpoint not in after:
        raise ValueError(f"{mountpoint!r} is not in both snapshots")
    old, new = before[mountpoint].ops, after[mountpoint].ops
    zero = OpStats(0, 0, 0, 0, 0, 0, 0, 0, 0)
    return {op: stats - old.get(op, zero) for op, stats in new.items()}


def measured_profile(
    ops: Mapping[str, OpStats],
    *,
    name: str = "measured",
    base: LatencyProfile = PROFILES["elastic"],
    source: str = "",
) -> LatencyProfile:
    """A latency profile from per-operation deltas: each class's mean execute time per operation.

    A class no operation of the delta fell in keeps ``base``'s delay (the source says which).
    ``metadata_s``, the delay of a request of unknown class, is the mean over every metadata
    operation measured.
    """
    totals: dict[str, list[int]] = {c: [0, 0] for c in LATENCY_CLASSES}
    for op, stats in ops.items():
        c = class_of(op)
        if c is not None:
            totals[c][0] += stats.ops
            totals[c][1] += stats.execute_ms
    per = {c: (ms / 1000 / n if n else None) for c, (n, ms) in totals.items()}
    kept = [c for c, v in per.items() if v is None]
    metadata = [totals[c] for c in ("lock", "getattr", "commit", "state")]
    count, ms = sum(n for n, _ in metadata), sum(t for _, t in metadata)
    fields: dict[str, Any] = {f"{c}_s": v if v is not None else base.class_s(c) for c, v in per.items()}
    note = f"; {', '.join(kept)} from {base.name}" if kept else ""
    return dataclasses.replace(
        base,
        name=name,
        metadata_s=ms / 1000 / count if count else base.metadata_s,
        source=(source or "measured: /proc/self/mountstats deltas, mean execute time per operation") + note,
        **fields,
    )
