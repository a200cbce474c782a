"""Small UIDs: generation (threads, fake clocks, fork), the sortable string, the Mediagone form."""

from __future__ import annotations

import heapq
import json
import os
import select
import signal
import string
import threading
import traceback
from array import array
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from itertools import pairwise, repeat, starmap
from operator import lt

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from efs_sqlite.errors import ValidationError
from efs_sqlite.uid import (
    LENGTH,
    MAX_UID,
    SEQ_BITS,
    Generator,
    are_ids,
    check_id,
    decode,
    encode,
    from_mediagone,
    from_timestamp,
    generate,
    timestamp,
    to_mediagone,
)

MASK = (1 << SEQ_BITS) - 1
LAST_MS = MAX_UID >> SEQ_BITS  # the last millisecond that fits: 2248-09-26
DIGITS = string.digits + string.ascii_uppercase + string.ascii_lowercase
uids = st.integers(min_value=0, max_value=MAX_UID)
FORK_FROM_THREADS = pytest.mark.filterwarnings(  # Python >= 3.12 warns on fork with threads alive
    "ignore:This process .* is multi-threaded:DeprecationWarning"
)


def base62(n: int) -> str:
    """Plain repeated division, to check the table-driven encoder against."""
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = DIGITS[r] + out
    return out or "0"


def reverse_nibbles(n: int) -> int:
    out = 0
    for i in range(16):
        out = out << 4 | (n >> 4 * i) & 0xF
    return out


class FakeClock:
    """Returns the given milliseconds in turn (as nanoseconds), then repeats the last one."""

    def __init__(self, *ms: int, max_reads: int = 10_000) -> None:
        self.ms = ms
        self.reads = 0
        self.max_reads = max_reads

    def __call__(self) -> int:
        self.reads += 1
        if self.reads > self.max_reads:  # a generator waiting for a clock that will not move
            raise AssertionError(f"the clock was read {self.reads} times")
        return self.ms[min(self.reads, len(self.ms)) - 1] * 1_000_000


def fixed(start: int) -> Callable[[], int]:
    return lambda: start


class Child:
    """``fn()`` run in a forked child; ``result()`` is what it returned (JSON), or its error."""

    def __init__(self, fn: Callable[[], object]) -> None:
        read_fd, write_fd = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            status = 1
            try:
                os.close(read_fd)
                try:
                    payload, status = {"ok": fn()}, 0
                except BaseException:
                    payload = {"error": traceback.format_exc()}
                os.write(write_fd, json.dumps(payload).encode())
            finally:
                os._exit(status)
        os.close(write_fd)
        self.fd = read_fd

    def result(self, timeout: float = 60) -> object:
        chunks = []
        try:
            while select.select([self.fd], [], [], timeout)[0]:
                chunk = os.read(self.fd, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
            else:
                os.kill(self.pid, signal.SIGKILL)
                pytest.fail(f"the child did not answer within {timeout} s (deadlocked?)")
        finally:
            os.close(self.fd)
            os.waitpid(self.pid, 0)
        payload = json.loads(b"".join(chunks))
        assert "error" not in payload, payload["error"]
        return payload["ok"]


# --- encode / decode ------------------------------------------------------------------------


@pytest.mark.parametrize("uid", [0, 1, 61, 62, 0x1234567890ABCDEF, MAX_UID])
def test_encode_vectors_are_base62_padded_to_11(uid: int) -> None:
    assert encode(uid) == base62(uid).rjust(LENGTH, "0")
    assert decode(encode(uid)) == uid


@given(uids, uids)
@example(0, MAX_UID)
@example(61, 62)
def test_encode_preserves_order(a: int, b: int) -> None:
    sa, sb = encode(a), encode(b)
    assert len(sa) == len(sb) == LENGTH
    assert (sa < sb) == (a < b)
    assert (sa == sb) == (a == b)


@given(uids)
def test_decode_inverts_encode(uid: int) -> None:
    assert decode(encode(uid)) == uid
    assert encode(uid) == base62(uid).rjust(LENGTH, "0")


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("", ValueError, "has 0 characters; an encoded uid has 11"),
        ("0000000001", ValueError, "has 10 characters"),
        ("000000000001", ValueError, "has 12 characters"),
        ("0000000000-", ValueError, r"character '-' at position 10 is not in 0-9A-Za-z"),
        ("00000 00000", ValueError, r"character ' ' at position 5"),
        ("é0000000000", ValueError, r"character 'é' at position 0"),
        ("AzL8n0Y58m8", ValueError, "decodes to 9223372036854775808, not below 2\\*\\*63"),
        ("zzzzzzzzzzz", ValueError, "not below 2\\*\\*63"),
        (b"00000000001", TypeError, "expected a str, not bytes"),
        (1, TypeError, "expected a str, not int"),
    ],
)
def test_decode_names_the_problem(text: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        decode(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (-1, ValueError, r"uid -1 is outside \[0, 2\*\*63\)"),
        (MAX_UID + 1, ValueError, "outside"),
        (True, TypeError, "a uid is an int, not bool"),
        (1.0, TypeError, "not float"),
        ("1", TypeError, "not str"),
        (None, TypeError, "not NoneType"),
    ],
)
@pytest.mark.parametrize("fn", [encode, to_mediagone, timestamp])
def test_functions_taking_a_uid_reject_bad_ones(
    fn: Callable[[int], object], value: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        fn(value)  # type: ignore[arg-type]


# --- node ids ------------------------------------------------------------------------------


class Ref(int):
    """An int subclass, as the store's reference values are."""


@pytest.mark.parametrize("value", [1, 2**40, MAX_UID, Ref(7)])
def test_check_id_returns_a_node_id_itself(value: int) -> None:
    assert check_id(value) is value


@pytest.mark.parametrize("value", [0, -1, MAX_UID + 1, True, False, 1.0, "1", None])
def test_check_id_refuses_what_names_no_node(value: object) -> None:
    with pytest.raises(ValidationError, match=rf"^owner: {value!r} is not a node id$") as raised:
        check_id(value, "owner")
    assert isinstance(raised.value, ValueError)


@given(st.lists(st.one_of(st.integers(min_value=-2, max_value=MAX_UID + 2), st.booleans(), st.none())))
@example([0])
@example([MAX_UID, MAX_UID + 1])
def test_are_ids_agrees_with_check_id(values: list[object]) -> None:
    def taken(value: object) -> bool:
        try:
            check_id(value)
        except ValidationError:
            return False
        return True

    assert are_ids(values) == all(map(taken, values))


# --- timestamps -----------------------------------------------------------------------------


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 1),
        max_value=datetime(2248, 9, 26),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
    )
)
def test_from_timestamp_is_the_lowest_id_of_that_millisecond(dt: datetime) -> None:
    uid = from_timestamp(dt)
    assert uid & MASK == 0
    back = timestamp(uid)
    assert back.tzinfo is UTC
    assert back == dt.replace(microsecond=dt.microsecond // 1000 * 1000)
    assert timestamp(uid | MASK) == back  # the sequence part does not move the time


def test_timestamp_is_millisecond_utc() -> None:
    assert timestamp(1_700_000_000_123 << SEQ_BITS | 99) == datetime(
        2023, 11, 14, 22, 13, 20, 123_000, tzinfo=UTC
    )
    assert timestamp(0) == datetime(1970, 1, 1, tzinfo=UTC)
    assert timestamp(MAX_UID) == datetime(2248, 9, 26, 15, 10, 22, 207_000, tzinfo=UTC)


def test_generated_ids_carry_the_current_time() -> None:
    before = datetime.now(UTC)
    uid = generate()
    after = datetime.now(UTC)
    assert from_timestamp(before) <= uid
    assert timestamp(uid) <= after


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (datetime(2024, 1, 1), ValueError, "is naive"),
        (datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), ValueError, "outside the uid range"),
        (datetime(2248, 9, 26, 15, 10, 22, 208_000, tzinfo=UTC), ValueError, "outside the uid range"),
        (date(2024, 1, 1), TypeError, "expected a datetime, not date"),
        (1_700_000_000, TypeError, "not int"),
    ],
)
def test_from_timestamp_rejects(value: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        from_timestamp(value)  # type: ignore[arg-type]


# --- generation: fake clocks ----------------------------------------------------------------


def test_counts_up_from_the_start_within_a_millisecond() -> None:
    g = Generator(clock=FakeClock(100, 100, 100, 101), start=fixed(5))
    assert [g.generate() for _ in range(4)] == [
        100 << SEQ_BITS | 5,
        100 << SEQ_BITS | 6,
        100 << SEQ_BITS | 7,
        101 << SEQ_BITS | 5,
    ]


def test_clock_stepping_back_keeps_issuing_from_the_last_millisecond() -> None:
    g = Generator(clock=FakeClock(100, 100, 40, 40, 99, 100, 101), start=fixed(9))
    ids = [g.generate() for _ in range(7)]
    assert all(starmap(lt, pairwise(ids)))
    assert [uid >> SEQ_BITS for uid in ids] == [100] * 6 + [101]
    assert [uid & MASK for uid in ids[:6]] == list(range(9, 15))


def test_sequence_overflow_waits_for_the_next_millisecond() -> None:
    clock = FakeClock(100, 100, 100, 100, 100, 100, 101)
    g = Generator(clock=clock, start=fixed(MASK - 1))
    assert g.generate() == 100 << SEQ_BITS | MASK - 1
    assert g.generate() == 100 << SEQ_BITS | MASK
    assert g.generate() == 101 << SEQ_BITS | MASK - 1
    assert clock.reads == 7  # kept reading until the clock left millisecond 100


def test_overflow_after_the_clock_stepped_back_borrows_the_next_millisecond() -> None:
    clock = FakeClock(100, 40)  # stuck 60 ms in the past: waiting for it would hang
    g = Generator(clock=clock, start=fixed(MASK - 1))
    ids = [g.generate() for _ in range(3)]
    assert ids == [100 << SEQ_BITS | MASK - 1, 100 << SEQ_BITS | MASK, 101 << SEQ_BITS | MASK - 1]
    assert clock.reads == 4  # one read per id, and one after the overflow: no waiting


def test_raises_instead_of_passing_2_63() -> None:
    g = Generator(clock=FakeClock(LAST_MS, LAST_MS, LAST_MS + 1), start=fixed(MASK))
    assert g.generate() == MAX_UID
    for _ in range(2):  # and keeps raising, without issuing anything
        with pytest.raises(OverflowError, match=r"2248-09-26 15:10:22\.207"):
            g.generate()


def test_a_clock_already_past_2248_raises() -> None:
    with pytest.raises(OverflowError, match="no longer fit 63 bits"):
        Generator(clock=FakeClock(LAST_MS + 1), start=fixed(0)).generate()


@pytest.mark.parametrize("start", [-1, MASK + 1])
def test_a_start_outside_the_sequence_part_is_refused(start: int) -> None:
    with pytest.raises(ValueError, match=r"outside \[0, 2\*\*20\)"):
        Generator(clock=FakeClock(100), start=fixed(start)).generate()


def test_default_start_is_random() -> None:
    g = Generator(clock=FakeClock(*range(100, 164)))
    starts = {g.generate() & MASK for _ in range(64)}
    assert len(starts) > 32  # 64 draws from 2**20 values: repeats are rare, not the rule


# --- generation: threads --------------------------------------------------------------------


@pytest.mark.slow
def test_eight_threads_make_ten_million_distinct_ids() -> None:
    threads, per_thread = 8, 1_250_000
    results: list[array[int]] = []
    barrier = threading.Barrier(threads)

    def work() -> None:
        ids: array[int] = array("q")
        append, make = ids.append, generate
        barrier.wait()
        for _ in repeat(None, per_thread):
            append(make())
        results.append(ids)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert [len(ids) for ids in results] == [per_thread] * threads
    for ids in results:
        assert all(starmap(lt, pairwise(ids))), "not strictly increasing within a thread"
    # Each list is sorted, so a merge that is strictly increasing proves all 10M are distinct.
    assert all(starmap(lt, pairwise(heapq.merge(*results)))), "an id was issued twice"


# --- generation: fork -----------------------------------------------------------------------


@FORK_FROM_THREADS
def test_forked_child_does_not_repeat_the_parents_sequence() -> None:
    g = Generator(clock=FakeClock(500), start=fixed(0))  # a frozen clock: the worst case
    before = [g.generate() for _ in range(3)]
    child = Child(lambda: [g.generate() for _ in range(100)])
    parent = [g.generate() for _ in range(100)]
    in_child = child.result()
    assert isinstance(in_child, list)
    assert all(starmap(lt, pairwise(before + in_child)))  # monotonic across the fork
    assert all(starmap(lt, pairwise(before + parent)))
    assert not set(in_child) & set(parent)


@FORK_FROM_THREADS
def test_default_generator_stays_monotonic_across_fork() -> None:
    last = generate()
    in_child = Child(lambda: [generate() for _ in range(1000)]).result()
    assert isinstance(in_child, list)
    assert all(starmap(lt, pairwise([last, *in_child])))


@FORK_FROM_THREADS
def test_fork_while_another_thread_holds_the_lock() -> None:
    entered, release = threading.Event(), threading.Event()
    first_read = [True]

    def clock() -> int:
        if first_read[0]:  # the thread below stops here, inside generate(), holding the lock
            first_read[0] = False
            entered.set()
            release.wait()
        return 700 * 1_000_000

    g = Generator(clock=clock, start=fixed(0))
    holder = threading.Thread(target=g.generate)
    holder.start()
    assert entered.wait(10)
    try:
        child = Child(lambda: [g.generate(), g.generate()])
    finally:
        release.set()
        holder.join()
    in_child = child.result(timeout=30)
    assert in_child == [700 << SEQ_BITS | 0, 700 << SEQ_BITS | 1]


# --- Mediagone ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uid", "text"),
    [
        (0x1234567890ABCDEF, "LscmjzUyKLR"),  # Mediagone/small-uid's own test vector
        (0, "0"),  # nil
        (0x7000000000000000, "7"),  # trailing zero digits become leading ones, then dropped
    ],
)
def test_mediagone_vectors(uid: int, text: str) -> None:
    assert to_mediagone(uid) == text
    assert from_mediagone(text) == uid


@given(uids)
@example(0x1234567890AB0000)
@example(MAX_UID)
def test_mediagone_round_trip(uid: int) -> None:
    text = to_mediagone(uid)
    assert text == base62(reverse_nibbles(uid))
    assert from_mediagone(text) == uid


def test_mediagone_accepts_leading_zeros_as_mediagone_does() -> None:
    assert from_mediagone("00LscmjzUyKLR") == 0x1234567890ABCDEF


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("", ValueError, "empty string"),
        ("Lscmj-UyKLR", ValueError, r"character '-' at position 5"),
        ("LscmjzUyKLRaaaaaaaaaaaaaa", ValueError, "more than 16 hex digits"),  # Mediagone's test
        ("8", ValueError, "0x8000000000000000, not below 2\\*\\*63"),
        (0, TypeError, "expected a str, not int"),
    ],
)
def test_from_mediagone_names_the_problem(text: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        from_mediagone(text)  # type: ignore[arg-type]
