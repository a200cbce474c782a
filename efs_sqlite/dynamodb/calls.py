"""Every DynamoDB call a store makes, counted by operation with the capacity units it consumes.

A :class:`CallLog` is told of each call (:meth:`CallLog.record`) and hands it to every
:meth:`CallLog.accounting` scope open at the time, as the EFS model does with its operations.
The calls a store sends together (the BatchGetItems of one ``get_many``, the Queries of one
``list_window_many``) share a ``wave``: their modelled latency is the slowest of them, not the sum.

>>> log = CallLog()
>>> with log.accounting() as calls:
...     log.record(Call("BatchGetItem", items=3, read_units=1.5, wave=log.wave()))
...     log.record(Call("PutItem", items=1, write_units=1.0, wave=log.wave()))
>>> calls.as_dict()["calls"], calls.read_units, calls.write_units
({'BatchGetItem': 1, 'PutItem': 1}, 1.5, 1.0)
>>> calls.latency_ms(0.5)  # two waves one after the other: BatchGetItem of 3, then PutItem
15.395
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from efs_sqlite.dynamodb.latency import latency

__all__ = ["Call", "CallLog", "Calls"]


@dataclass(frozen=True)
class Call:
    """One call: its ``operation``, the ``items`` it read or wrote (keys asked for, for a
    BatchGetItem), the units it consumed, the attempts botocore retried (throttling), and its
    ``wave``."""

    operation: str
    items: int = 1
    read_units: float = 0.0
    write_units: float = 0.0
    retries: int = 0
    wave: int = 0

    def latency_ms(self, q: float = 0.5) -> float:
        return latency(self.operation, self.items).quantile(q)


@dataclass
class Calls:
    """The calls of one :meth:`CallLog.accounting` scope."""

    calls: list[Call] = field(default_factory=list)

    @property
    def counts(self) -> Counter[str]:
        return Counter(c.operation for c in self.calls)

    @property
    def read_units(self) -> float:
        return sum(c.read_units for c in self.calls)

    @property
    def write_units(self) -> float:
        return sum(c.write_units for c in self.calls)

    def latency_ms(self, q: float = 0.5) -> float:
        """The modelled latency of the calls at quantile ``q``: per wave its slowest call, the
        waves one after another (each quantile taken per call: an upper bound of the sum's)."""
        waves: dict[int, float] = {}
        for c in self.calls:
            waves[c.wave] = max(waves.get(c.wave, 0.0), c.latency_ms(q))
        return round(sum(waves.values()), 6)

    def as_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready form (what the app's ``x-efs-ops`` header reports)."""
        items: Counter[str] = Counter()
        for c in self.calls:
            items[c.operation] += c.items
        return {
            "backend": "dynamodb",
            "calls": dict(sorted(self.counts.items())),
            "items": dict(sorted(items.items())),
            "read_units": self.read_units,
            "write_units": self.write_units,
            "retries": sum(c.retries for c in self.calls),
            "waves": len({c.wave for c in self.calls}),
            "latency_ms": {f"p{round(q * 100)}": self.latency_ms(q) for q in (0.5, 0.9, 0.99)},
        }


class CallLog:
    """Where a store records its calls; open scopes see every call made while they are open."""

    def __init__(self) -> None:
        self._scopes: list[tuple[Calls, int | None]] = []
        self._lock = threading.Lock()
        self._waves = itertools.count(1)

    def wave(self) -> int:
        """A new wave number: the calls sent together take the same one."""
        return next(self._waves)

    def record(self, call: Call) -> None:
        me = threading.get_ident()
        with self._lock:
            for calls, thread in self._scopes:
                if thread is None or thread == me:
                    calls.calls.append(call)

    @contextlib.contextmanager
    def accounting(self, *, current_thread: bool = False) -> Iterator[Calls]:
        """Count the calls made inside the block (in every thread, or only this one)."""
        calls = Calls()
        entry = (calls, threading.get_ident() if current_thread else None)
        with self._lock:
            self._scopes.append(entry)
        try:
            yield calls
        finally:
            with self._lock:
                self._scopes.remove(entry)
