"""Small UIDs: 64-bit ids ``(ms << 20) | seq20`` and their strings.

An id is 44 bits of Unix-epoch milliseconds followed by a 20-bit sequence part. It stays below
2^63, so it fits a signed SQLite ``INTEGER``, until 2248-09-26.

Within one process :func:`generate` is strictly increasing and thread-safe: inside one millisecond
the sequence part counts up from a random start (so two processes rarely meet), and a clock that
steps backwards does not make it go back. Across processes ids are unique only with high
probability, as with any Small UID.

:func:`encode` gives a fixed-width, order-preserving base-62 string (string order is id order);
:func:`to_mediagone` gives the string form of the PHP library Mediagone/small-uid, which reverses the
hex digits first and is therefore neither fixed-width nor sortable (docs/SOURCES.md#small-uid).

>>> uid = 0x1234567890ABCDEF
>>> encode(uid), to_mediagone(uid)
('1YtudTvcYvP', 'LscmjzUyKLR')
>>> decode('1YtudTvcYvP') == from_mediagone('LscmjzUyKLR') == uid
True
"""

from __future__ import annotations

import os
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from efs_sqlite.errors import ValidationError

__all__ = [
    "ALPHABET",
    "EPOCH",
    "LENGTH",
    "MAX_UID",
    "SEQ_BITS",
    "Generator",
    "are_ids",
    "check_id",
    "decode",
    "encode",
    "from_mediagone",
    "from_timestamp",
    "generate",
    "timestamp",
    "to_mediagone",
]

SEQ_BITS = 20
MAX_UID = (1 << 63) - 1
LENGTH = 11  # 62**11 > 2**64: every 64-bit value fits, so Mediagone's reversed values do too
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # ASCII order

_SEQ_MASK = (1 << SEQ_BITS) - 1
_NS_PER_MS = 1_000_000
#: The Unix epoch, from which an id counts its milliseconds (and a stored datetime its microseconds).
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_VALUES = {c: i for i, c in enumerate(ALPHABET)}
# Two digits per table lookup halve the divmod steps of encode(), its whole cost.
_PAIRS = [a + b for a in ALPHABET for b in ALPHABET]
_PAIR = len(_PAIRS)
_POLITE_TRIES = 10  # sleep(0) takes ~0.1 ms on Linux (timer slack): about 1 ms of yielding


def _random_start() -> int:
    # From the OS, not the `random` module: a seeded `random` (test data, Faker) must not make two
    # processes start their sequences at the same place.
    return secrets.randbits(SEQ_BITS)


def _acquire_contended(lock: threading.Lock) -> None:
    # A plain blocking acquire hands a released lock to a sleeping thread, which must then win the
    # GIL back while the others queue behind it: a convoy that cut 8-thread throughput from about
    # 2M to 0.25M ids/s. Yielding the GIL and retrying lets the running thread finish its turn.
    # A holder that stays longer (the wait after a sequence overflow) gets a real blocking wait.
    for _ in range(_POLITE_TRIES):
        time.sleep(0)
        if lock.acquire(False):
            return
    lock.acquire()


class Generator:
    """A monotonic, thread-safe source of ids; :func:`generate` is the default one's method.

    ``clock`` returns nanoseconds since the Unix epoch (like :func:`time.time_ns`) and ``start``
    the random start of each millisecond's sequence, in ``[0, 2**20)``; both are parameters so that
    tests can drive a clock backwards, exhaust a millisecond or reach the year 2248.

    >>> ms = 1_700_000_000_000
    >>> g = Generator(clock=lambda: ms * 1_000_000, start=lambda: 7)
    >>> first, second = g.generate(), g.generate()
    >>> first == (ms << 20) | 7, second == first + 1
    (True, True)
    """

    __slots__ = ("__weakref__", "_clock", "_last", "_lock", "_start")

    def __init__(
        self,
        clock: Callable[[], int] = time.time_ns,
        start: Callable[[], int] = _random_start,
    ) -> None:
        self._clock = clock
        self._start = start
        self._lock = threading.Lock()
        self._last = -1  # the last id issued; -1 before the first
        _generators.add(self)

    def generate(self) -> int:
        """A new id, greater than every id this generator issued before.

        Raises :class:`OverflowError` instead of passing 2^63 (in 2248).

        >>> a, b = generate(), generate()
        >>> 0 < a < b <= MAX_UID
        True
        """
        lock = self._lock
        if not lock.acquire(False):
            _acquire_contended(lock)
        try:
            now = self._clock() // _NS_PER_MS << SEQ_BITS
            last = self._last
            if now > last:
                uid = self._begin(now)
            else:
                # Same millisecond, or the clock stepped back: keep counting in the last one.
                uid = last + 1
                if not uid & _SEQ_MASK:
                    uid = self._after_overflow(last >> SEQ_BITS)
            self._last = uid
            return uid
        finally:
            lock.release()

    def _begin(self, base: int) -> int:
        start = self._start()
        if not 0 <= start <= _SEQ_MASK:
            raise ValueError(f"start() returned {start!r}, outside [0, 2**{SEQ_BITS})")
        uid = base | start
        if uid > MAX_UID:
            raise OverflowError(f"the clock reached {timestamp(MAX_UID)}: ids would no longer fit 63 bits")
        return uid

    def _after_overflow(self, last_ms: int) -> int:
        # The sequence of `last_ms` is used up: wait for the clock to leave that millisecond.
        # A clock behind it stepped back, and waiting could take as long as the step did, so the
        # next millisecond is borrowed instead; ids then run ahead of the clock, as they already do.
        ms = self._clock() // _NS_PER_MS
        while ms == last_ms:
            ms = self._clock() // _NS_PER_MS
        return self._begin(max(ms, last_ms + 1) << SEQ_BITS)

    def _after_fork_in_child(self) -> None:
        # A thread of the parent may have held the lock at the fork; it does not exist here.
        self._lock = threading.Lock()
        if self._last >= 0:
            # The parent goes on counting in its millisecond; the child moves to the next one
            # with a fresh start, so it neither repeats the parent's ids nor goes back.
            # At most MASK - 1, so the next id does not wrap into the overflow path.
            base = ((self._last >> SEQ_BITS) + 1) << SEQ_BITS
            self._last = min(base | self._start() % _SEQ_MASK, MAX_UID)


_generators: weakref.WeakSet[Generator] = weakref.WeakSet()


def _reseed_after_fork() -> None:
    for generator in list(_generators):
        generator._after_fork_in_child()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork either
    os.register_at_fork(after_in_child=_reseed_after_fork)

_default = Generator()
generate = _default.generate


def _uid(value: object) -> int:
    """``value`` as an id, or the error that says why it is not one."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"a uid is an int, not {type(value).__name__}")
    if not 0 <= value <= MAX_UID:
        raise ValueError(f"uid {value} is outside [0, 2**63)")
    return int(value)


def check_id(value: object, what: str = "id") -> int:
    """``value`` itself if it is a node id, an int in ``1 .. MAX_UID`` (0 is a uid but names no
    node), else a :class:`~efs_sqlite.errors.ValidationError` naming ``what``.

    >>> check_id(5)
    5
    >>> check_id(2**63, "owner")
    Traceback (most recent call last):
    ...
    efs_sqlite.errors.ValidationError: owner: 9223372036854775808 is not a node id
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_UID:
        raise ValidationError(f"{what}: {value!r} is not a node id")
    return value


_INTS = frozenset({int})


def are_ids(values: list[Any]) -> bool:
    """Whether every one of ``values`` is a plain int node id (as :func:`check_id` would take it),
    tested by C loops over the list, with no Python call per value: a column of a whole load.

    >>> are_ids([1, MAX_UID]), are_ids([]), are_ids([1, 0]), are_ids([1, True])
    (True, True, False, False)
    """
    return not values or (set(map(type, values)) == _INTS and min(values) > 0 and max(values) <= MAX_UID)


def _base62(n: int) -> str:
    """``n`` in [0, 2**64) as exactly 11 base-62 digits."""
    # ``//`` and ``%`` rather than divmod(), and one f-string: twice as fast (a GraphQL response
    # encodes every id it shows).
    e = _PAIRS[n % _PAIR]
    n //= _PAIR
    d = _PAIRS[n % _PAIR]
    n //= _PAIR
    c = _PAIRS[n % _PAIR]
    n //= _PAIR
    b = _PAIRS[n % _PAIR]
    n //= _PAIR
    a = _PAIRS[n % _PAIR]
    return f"{ALPHABET[n // _PAIR]}{a}{b}{c}{d}{e}"


def _parse_base62(s: str) -> int:
    n = 0
    try:
        for c in s:
            n = n * 62 + _VALUES[c]
    except KeyError:
        pos = next(i for i, c in enumerate(s) if c not in _VALUES)
        raise ValueError(f"{s!r}: character {s[pos]!r} at position {pos} is not in 0-9A-Za-z") from None
    return n


def _text(s: object) -> str:
    if not isinstance(s, str):
        raise TypeError(f"expected a str, not {type(s).__name__}")
    return s


def encode(uid: int) -> str:
    """The 11-character base-62 string of ``uid``; ``encode(a) < encode(b)`` iff ``a < b``.

    >>> encode(0), encode(1), encode(MAX_UID)
    ('00000000000', '00000000001', 'AzL8n0Y58m7')
    """
    if type(uid) is int and 0 <= uid <= MAX_UID:  # the usual case, without _uid's calls
        return _base62(uid)
    return _base62(_uid(uid))


def decode(s: str) -> int:
    """The id of an :func:`encode` string; a :class:`ValueError` says what is wrong with a bad one.

    >>> decode('00000000001')
    1
    >>> decode('AzL8n0Y58m8')
    Traceback (most recent call last):
    ...
    ValueError: 'AzL8n0Y58m8' decodes to 9223372036854775808, not below 2**63
    """
    if len(_text(s)) != LENGTH:
        raise ValueError(f"{s!r} has {len(s)} characters; an encoded uid has {LENGTH}")
    n = _parse_base62(s)
    if n > MAX_UID:
        raise ValueError(f"{s!r} decodes to {n}, not below 2**63")
    return n


def timestamp(uid: int) -> datetime:
    """When ``uid`` was made: an aware UTC datetime, to the millisecond.

    >>> timestamp(1_700_000_000_123 << 20 | 99)
    datetime.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=datetime.timezone.utc)
    """
    return EPOCH + timedelta(milliseconds=_uid(uid) >> SEQ_BITS)


def from_timestamp(dt: datetime) -> int:
    """The lowest id of the millisecond of ``dt`` (an aware datetime): a bound for range scans.

    >>> uid = 1_700_000_000_123 << 20 | 99
    >>> from_timestamp(timestamp(uid)) <= uid < from_timestamp(timestamp(uid) + timedelta(milliseconds=1))
    True
    """
    if not isinstance(dt, datetime):
        raise TypeError(f"expected a datetime, not {type(dt).__name__}")
    if dt.utcoffset() is None:
        raise ValueError(f"{dt!r} is naive; give it a tzinfo (e.g. datetime.UTC)")
    ms = (dt - EPOCH) // _ONE_MS
    if not 0 <= ms <= MAX_UID >> SEQ_BITS:
        raise ValueError(f"{dt.isoformat()} is outside the uid range 1970 .. {timestamp(MAX_UID)}")
    return ms << SEQ_BITS


def _reverse_hex(n: int) -> int:
    return int(f"{n:016x}"[::-1], 16)


def to_mediagone(uid: int) -> str:
    """The Mediagone/small-uid string of ``uid``: its 16 hex digits reversed, in base 62, unpadded.

    >>> to_mediagone(0x1234567890ABCDEF), to_mediagone(0)
    ('LscmjzUyKLR', '0')
    """
    return _base62(_reverse_hex(_uid(uid))).lstrip("0") or "0"


def from_mediagone(s: str) -> int:
    """The id of a Mediagone/small-uid string (leading zeros are accepted, as Mediagone does).

    >>> from_mediagone('LscmjzUyKLR') == 0x1234567890ABCDEF, from_mediagone('0')
    (True, 0)
    """
    if not _text(s):
        raise ValueError("an empty string is not a Mediagone uid")
    reversed_hex = _parse_base62(s)
    if reversed_hex >> 64:
        raise ValueError(f"{s!r} is more than 16 hex digits, too long for a Mediagone uid")
    uid = _reverse_hex(reversed_hex)
    if uid > MAX_UID:
        raise ValueError(f"{s!r} is the Mediagone uid {uid:#018x}, not below 2**63")
    return uid
