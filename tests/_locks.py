"""The fcntl (POSIX) locks a process holds, read from ``/proc/locks``.

A line there is ``<n>: POSIX ADVISORY <READ|WRITE> <pid> <major>:<minor>:<inode> <start> <end>``;
a lock waited for is marked ``->`` and is not held. Threads of one process share its pid (the
reader lanes), so "the process holds no lock" covers every thread.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

PROC_LOCKS = Path("/proc/locks")


class HeldLock(NamedTuple):
    """One lock held: its ``access`` (READ or WRITE), the holder's ``pid``, the ``file`` (its name
    under the root asked about, else ``<device>:<inode>``) and its byte range."""

    access: str
    pid: int
    file: str
    start: str
    end: str


def _inode_key(path: Path) -> str:
    st = path.stat()
    return f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"


def held_locks(pid: int, root: Path | None = None) -> list[HeldLock]:
    """The POSIX locks ``pid`` holds; files under ``root`` are named."""
    names = {}
    if root is not None:
        names = {_inode_key(p): p.name for p in Path(root).iterdir() if p.is_file()}
    held = []
    for line in PROC_LOCKS.read_text().splitlines():
        words = line.split()
        if len(words) < 8 or words[1] == "->" or words[1] != "POSIX" or int(words[4]) != pid:
            continue
        held.append(HeldLock(words[3], pid, names.get(words[5], words[5]), words[6], words[7]))
    return held
