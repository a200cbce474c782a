"""Every error the package raises on purpose, in one tree under :class:`EfsSqliteError`.

Each class also derives from the built-in exception a caller would expect (a bad value is a
``ValueError``, a missing node a ``LookupError``), so ``except ValueError`` keeps working::

    EfsSqliteError
    ├── ValidationError      (ValueError)    a value does not fit its field
    │   ├── StillReferenced                  a required reference to the node would dangle
    │   └── MutationIdReused                 a clientMutationId sent again with another mutation
    ├── StoreError                           the shard store
    │   ├── UIDCollision     (KeyError)      an insert found its id taken; nothing was written
    │   ├── StoreBusy                        a lock held past the busy timeout; DynamoDB throttling
    │   │   └── DeadlineExceeded             ... or past the request's deadline
    │   ├── ItemTooLarge     (ValueError)    a DynamoDB item over 400 KB; nothing was written
    │   ├── GroupTooLarge    (ValueError)    a grouped write over DynamoDB's 100 items; refused
    │   └── LockQuotaExceeded                a model or setting could pass the EFS lock quotas
    ├── NodeNotFound         (LookupError)   no node with that id (or of that type)
    ├── OperationNotAllowed                  e.g. a mutation sent over HTTP GET
    ├── DataSetError         (ValueError)    a data set on disk that cannot be read as written
    ├── RecordError          (ValueError)    a record to load that does not fit the model
    ├── LoadError            (RuntimeError)  a load stopped; says where
    ├── CalibrationError     (RuntimeError)  no NFS mount to calibrate on, or a refused calibration
    └── AwsError             (RuntimeError)  building, verifying or deploying on AWS
        ├── BuildError                       the Lambda zip cannot be built
        ├── VerifyError                      a handler fails from the unpacked zip
        ├── DeployError                      a deploy or teardown cannot proceed
        └── RemoteLoadError                  the loader function rejected a batch

>>> issubclass(UIDCollision, StoreError) and issubclass(UIDCollision, KeyError)
True
>>> all(issubclass(e, EfsSqliteError) for e in (ValidationError, NodeNotFound, DeployError))
True
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AwsError",
    "BuildError",
    "CalibrationError",
    "DataSetError",
    "DeadlineExceeded",
    "DeployError",
    "EfsSqliteError",
    "GroupTooLarge",
    "ItemTooLarge",
    "LoadError",
    "LockQuotaExceeded",
    "MutationIdReused",
    "NodeNotFound",
    "OperationNotAllowed",
    "RecordError",
    "RemoteLoadError",
    "StillReferenced",
    "StoreBusy",
    "StoreError",
    "UIDCollision",
    "ValidationError",
    "VerifyError",
]

_NOTHING: Any = object()


class EfsSqliteError(Exception):
    """The base of every error this package raises on purpose."""


class _Plain:
    """Mixin: ``str()`` is the message, where ``KeyError``/``LookupError`` would ``repr()`` it."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""  # type: ignore[attr-defined]


class ValidationError(EfsSqliteError, ValueError):
    """A value that does not fit its field; the message names the field and the problem."""


class StillReferenced(ValidationError):
    """A delete or a list edit that would leave another node's required reference dangling;
    ``referrers`` are the ids of those nodes. Nothing was written.

    >>> str(StillReferenced("Claim 1 is the required claim of Transaction 2", [2]))
    'Claim 1 is the required claim of Transaction 2'
    """

    def __init__(self, message: str, referrers: list[int]) -> None:
        super().__init__(message)
        self.referrers = referrers


class MutationIdReused(ValidationError):
    """A ``clientMutationId`` already recorded for another mutation (other field or arguments)."""


class StoreError(EfsSqliteError):
    """Base class of the store's errors."""


class UIDCollision(_Plain, StoreError, KeyError):
    """An insert found the id already present: nothing was overwritten.

    A bulk insert with ``on_conflict="skip_equal"`` also says which of its rows collided (``row``,
    its position), the value the id ``held`` and the ``value`` the row had.

    >>> str(UIDCollision("claim_amount", 7))
    "id 7 already exists in shard 'claim_amount'; nothing was written"
    """

    def __init__(
        self, shard: str, uid: int, *, row: int | None = None, held: Any = _NOTHING, value: Any = _NOTHING
    ) -> None:
        if held is _NOTHING:
            message = f"id {uid} already exists in shard {shard!r}; nothing was written"
        else:
            message = (
                f"id {uid} in shard {shard!r} already holds {held!r:.100}, not {value!r:.100}; "
                "nothing was written"
            )
        super().__init__(message)
        self.shard, self.uid, self.row, self.held, self.value = shard, uid, row, held, value


class StoreBusy(StoreError):
    """Another connection held the lock for longer than the busy timeout, or DynamoDB throttled a
    call past its retries (or another writer changed a list meanwhile): retry later."""


class DeadlineExceeded(StoreBusy):
    """The request's deadline (:class:`~efs_sqlite.deadline.Deadline`) came before a lock was free,
    or before a write could begin: nothing was written. Retry after ``retry_after`` seconds
    (HTTP answers ``503`` with that ``Retry-After``)."""

    retry_after = 1


class LockQuotaExceeded(StoreError):
    """A model or a setting under which one process could lock more files than the EFS lock
    quotas allow (see :mod:`efs_sqlite.lock_quota`)."""


class NodeNotFound(_Plain, EfsSqliteError, LookupError):
    """No node has that id, or the node is of another type than the one asked for."""


class OperationNotAllowed(EfsSqliteError):
    """The operation is not allowed by the caller (a mutation sent over HTTP GET)."""


class DataSetError(EfsSqliteError, ValueError):
    """A data set that cannot be read as written: missing manifest, checksum mismatch, bad line."""


class RecordError(EfsSqliteError, ValueError):
    """A record that does not fit the model; the message says what is wrong."""


class LoadError(EfsSqliteError, RuntimeError):
    """A load stopped: ``shard``, ``index`` (the record's position in the input) and ``uid`` say where."""

    def __init__(self, shard: Any, index: int, uid: Any, reason: str) -> None:
        super().__init__(f"shard {str(shard)[:80]!r}, record #{index} (uid {str(uid)[:40]}): {reason}")
        self.shard, self.index, self.uid, self.reason = shard, index, uid, reason


class CalibrationError(EfsSqliteError, RuntimeError):
    """A calibration could not run: the folder is on no NFS mount, or the loader refused it."""


class AwsError(EfsSqliteError, RuntimeError):
    """Base of the errors of a failed build, verification, deploy or remote load."""


class BuildError(AwsError):
    """The Lambda zip could not be built, or breaks a Lambda limit."""


class VerifyError(AwsError):
    """A handler failed to import or to answer its event from the unpacked zip."""


class DeployError(AwsError):
    """A deploy or teardown cannot proceed (a resource in the way, a failed state, a timeout)."""


class RemoteLoadError(AwsError):
    """The loader function rejected a batch or answered something other than its contract."""


class ItemTooLarge(StoreError, ValueError):
    """A value that would make a DynamoDB item over its 400 KB limit; nothing was written."""


class GroupTooLarge(StoreError, ValueError):
    """A grouped write over DynamoDB's transaction limits (100 items, 4 MB): refused, never split."""
