"""``Deadline``: the moment by which a request must have answered, passed down to the store's waits.

A Lambda function is killed at its timeout, mid-commit if it is writing. So the handler gives each
request a deadline (the invocation's remaining time minus a margin) and every wait on the way
respects it: the store's busy waits stop in time and raise
:class:`~efs_sqlite.errors.DeadlineExceeded`, a write does not begin once it has passed, and the
request is answered ``503`` with ``Retry-After`` before Lambda cuts it off. A deadline is a value,
handed explicitly from the app to the API to the store (which keeps it for the calling thread while
a block runs: :meth:`~efs_sqlite.store.ShardStore.within`); there is no process-wide one.

>>> d = Deadline.after(30.0)
>>> 29.0 < d.remaining() <= 30.0, d.expired
(True, False)
>>> Deadline.after(-1).expired
True
>>> Deadline.after(-1).check("a write")
Traceback (most recent call last):
...
efs_sqlite.errors.DeadlineExceeded: the request's deadline passed before a write — retry later
"""

from __future__ import annotations

import time
from typing import NamedTuple

from efs_sqlite.errors import DeadlineExceeded

__all__ = ["Deadline"]


class Deadline(NamedTuple):
    """A point on the :func:`time.monotonic` clock, in seconds."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """The deadline ``seconds`` from now (a negative figure: already passed)."""
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        """Seconds left; 0 or less once it has passed."""
        return self.at - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    @staticmethod
    def sooner(held: Deadline | None, given: Deadline | None) -> Deadline | None:
        """The deadline a nested block runs under: the earlier of the one already held and the
        one given (``None``: no bound).

        >>> Deadline.sooner(Deadline(5.0), Deadline(3.0)), Deadline.sooner(Deadline(5.0), None)
        (Deadline(at=3.0), Deadline(at=5.0))
        """
        if given is None or (held is not None and held.at <= given.at):
            return held
        return given

    def check(self, what: str) -> None:
        """Raise :class:`DeadlineExceeded` if the deadline has passed before ``what`` begins."""
        if self.expired:
            raise DeadlineExceeded(f"the request's deadline passed before {what} — retry later")
