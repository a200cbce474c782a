"""``LockQuota``: the EFS lock quotas, and how many shard files one process may lock at once.

EFS allows 512 locks per file across all clients and, per mount, 8,192 locks over at most 256
file-process pairs (`docs/SOURCES.md#efs-limits`); a Lambda execution environment is one process
on one mount. SQLite's unix VFS holds at most three byte-range locks of a file at once in one
process, whatever number of connections it has to it (the pending byte, the reserved byte and the
shared range: its locks are kept per file, not per connection). So:

- one process may hold locks on at most 256 shard files at once (the pairs, not the 8,192 locks,
  are the bound: 256 x 3 = 768). The most one process locks at once is a request's lock-ahead,
  a read transaction on every shard its query may read, or a grouped write, every shard of a node
  and of its inverse lists: at most every shard of the model. A model with more shards than that
  is refused (:meth:`LockQuota.check_files`), as is a grouped write over more.
- at most 170 processes (512 // 3) may hold locks on one shard at once: the functions' reserved
  concurrency together (:meth:`LockQuota.check_processes`). Without a reserved concurrency a
  function scales to the account's concurrency, which may pass it.

>>> EFS.files_per_process, EFS.processes_per_file
(256, 170)
>>> EFS.check_files(300, "a model")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
efs_sqlite.errors.LockQuotaExceeded: a model: 300 files, but one process may hold locks on at most 256 ...
"""

from __future__ import annotations

from dataclasses import dataclass

from efs_sqlite.errors import LockQuotaExceeded

__all__ = ["EFS", "LOCKS_PER_FILE", "LockQuota"]

#: The byte-range locks SQLite's unix VFS holds of one file at once, in one process.
LOCKS_PER_FILE = 3


@dataclass(frozen=True)
class LockQuota:
    """Lock quotas of a network file system: per file across all clients, per mount."""

    locks_per_file: int = 512
    locks_per_mount: int = 8_192
    file_process_pairs: int = 256

    @property
    def files_per_process(self) -> int:
        """Files one process (one per mount: a Lambda environment) may hold locks on at once."""
        return min(self.file_process_pairs, self.locks_per_mount // LOCKS_PER_FILE)

    @property
    def processes_per_file(self) -> int:
        """Processes that may hold locks on one file at once."""
        return self.locks_per_file // LOCKS_PER_FILE

    def check_files(self, files: int, what: str) -> None:
        """Raise :class:`LockQuotaExceeded` if one process could lock ``files`` files at once."""
        if files > self.files_per_process:
            raise LockQuotaExceeded(
                f"{what}: {files} files, but one process may hold locks on at most "
                f"{self.files_per_process} files of an EFS mount at once ({self.file_process_pairs} "
                f"file-process pairs, {self.locks_per_mount:,} locks, {LOCKS_PER_FILE} locks per file); "
                "see docs/SOURCES.md#efs-limits"
            )

    def check_processes(self, processes: int, what: str) -> None:
        """Raise :class:`LockQuotaExceeded` if ``processes`` could all lock one file at once.

        >>> EFS.check_processes(200, "reserved concurrency")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        efs_sqlite.errors.LockQuotaExceeded: reserved concurrency: 200 processes, but at most 170 may ...
        """
        if processes > self.processes_per_file:
            raise LockQuotaExceeded(
                f"{what}: {processes} processes, but at most {self.processes_per_file} may hold locks "
                f"on one file at once ({self.locks_per_file} locks per file, {LOCKS_PER_FILE} per "
                "process); see docs/SOURCES.md#efs-limits"
            )


#: Amazon EFS's quotas.
EFS = LockQuota()
