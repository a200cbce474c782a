"""Calibration on a real EFS mount: the store's own operations, timed by the kernel.

:func:`calibrate` runs a small workload of the store (a 1-row commit and a warm point read, so
LOCK, GETATTR, READ, WRITE, OPEN, CLOSE and REMOVE all occur) in a scratch folder on the mount,
and returns the ``/proc/self/mountstats`` deltas of that mount (:mod:`efs_sqlite.mountstats`). The
loader Lambda runs it for ``{"action": "calibrate"}``; :meth:`Calibration.profile` turns the deltas
into the :class:`~efs_sqlite.efs_model.LatencyProfile` the model uses, which
:func:`save_profile`/:func:`load_profile` keep as JSON.

>>> p = Calibration.from_answer({"mount": "/mnt/efs", "rounds": 1, "seconds": 0.1,
...     "ops": {"READ": [2, 2, 0, 200, 8300, 0, 3, 4, 0]}}).profile("efs-here")
>>> p.read_s, p.name
(0.002, 'efs-here')
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from efs_sqlite.efs_model import PROFILES, LatencyProfile
from efs_sqlite.errors import CalibrationError
from efs_sqlite.mountstats import MOUNTSTATS, OpStats, delta, find_mount, measured_profile, read
from efs_sqlite.store import ShardStore

__all__ = ["Calibration", "calibrate", "load_profile", "save_profile"]

#: The most rounds one calibration runs (each is a commit and a read: a few tens of ms on EFS).
MAX_ROUNDS = 1000


@dataclass(frozen=True)
class Calibration:
    """What a calibration workload cost on ``mount``: per NFS operation, the kernel's deltas."""

    mount: str
    rounds: int
    seconds: float
    ops: dict[str, OpStats]

    def as_answer(self) -> dict[str, Any]:
        """The JSON form the loader answers with (operations that did not occur left out)."""
        return {
            "ok": True,
            "mount": self.mount,
            "rounds": self.rounds,
            "seconds": round(self.seconds, 3),
            "ops": {op: list(s) for op, s in sorted(self.ops.items()) if s.ops},
            "fields": list(OpStats._fields),
        }

    @classmethod
    def from_answer(cls, answer: Mapping[str, Any]) -> Calibration:
        """Back from :meth:`as_answer` (or the loader's answer)."""
        ops = {op: OpStats(*values) for op, values in answer["ops"].items()}
        return cls(str(answer["mount"]), int(answer["rounds"]), float(answer["seconds"]), ops)

    def profile(self, name: str = "measured", base: LatencyProfile = PROFILES["elastic"]) -> LatencyProfile:
        """The latency profile these deltas measure (classes not seen keep ``base``'s delays)."""
        source = (
            f"measured on {self.mount}: /proc/self/mountstats deltas of {self.rounds} calibration "
            "rounds, mean execute time per operation (docs/SOURCES.md#mountstats)"
        )
        return measured_profile(self.ops, name=name, base=base, source=source)


def _workload(folder: Path, rounds: int) -> None:
    with ShardStore(folder) as store:
        store.insert("claim_type_code", 1, "MOTOR")
        for i in range(rounds):
            store.put("claim_type_code", 2 + i, "HOME")  # a 1-row commit
            store.get("claim_type_code", 1)  # a warm point read


def calibrate(
    folder: str | os.PathLike[str], *, rounds: int = 20, mountstats: str | os.PathLike[str] = MOUNTSTATS
) -> Calibration:
    """Run the calibration workload in a scratch folder under ``folder``; the mount's deltas.

    Raises :class:`CalibrationError` when ``folder`` is on no NFS mount of ``mountstats`` (on a
    local disk there is nothing to calibrate) or ``rounds`` is out of range.
    """
    if not 1 <= rounds <= MAX_ROUNDS:
        raise CalibrationError(f"rounds must be between 1 and {MAX_ROUNDS}, not {rounds}")
    try:
        mounts = read(mountstats)
    except OSError as exc:
        raise CalibrationError(f"cannot read {mountstats}: {exc}") from None
    mount = find_mount(mounts, folder)
    if mount is None:
        raise CalibrationError(
            f"{folder} is on no NFS mount listed in {mountstats}: calibration needs the EFS mount "
            "(on a local disk the kernel keeps no NFS statistics)"
        )
    scratch = Path(folder) / f".calibration-{uuid.uuid4().hex[:12]}"
    before = read(mountstats)
    start = time.perf_counter()
    try:
        _workload(scratch, rounds)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    seconds = time.perf_counter() - start
    return Calibration(mount.mountpoint, rounds, seconds, delta(before, read(mountstats), mount.mountpoint))


def save_profile(profile: LatencyProfile, path: str | os.PathLike[str]) -> Path:
    """Write ``profile`` as JSON (for a notebook parameter); the path written."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dataclasses.asdict(profile), indent=2) + "\n")
    return out


def load_profile(path: str | os.PathLike[str]) -> LatencyProfile:
    """A profile :func:`save_profile` wrote."""
    return LatencyProfile(**json.loads(Path(path).read_text()))
