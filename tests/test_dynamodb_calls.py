"""Call accounting: scopes that nest and overlap, per-thread scopes, waves and their latency."""

from __future__ import annotations

import threading

from efs_sqlite.dynamodb.calls import Call, CallLog
from efs_sqlite.dynamodb.latency import latency


def test_scopes_nest_and_see_every_call_made_while_open() -> None:
    log = CallLog()
    with log.accounting() as outer:
        log.record(Call("GetItem", read_units=0.5))
        with log.accounting() as inner:
            log.record(Call("PutItem", write_units=1.0))
    log.record(Call("GetItem"))  # no scope open: counted nowhere
    assert outer.counts == {"GetItem": 1, "PutItem": 1} and inner.counts == {"PutItem": 1}
    assert (outer.read_units, outer.write_units) == (0.5, 1.0)


def test_a_current_thread_scope_sees_only_its_thread() -> None:
    log = CallLog()
    with log.accounting(current_thread=True) as mine, log.accounting() as every:
        worker = threading.Thread(target=log.record, args=(Call("Query"),))
        worker.start()
        worker.join()
        log.record(Call("GetItem"))
    assert mine.counts == {"GetItem": 1} and every.counts == {"GetItem": 1, "Query": 1}


def test_calls_of_one_wave_cost_the_slowest_waves_add_up() -> None:
    log = CallLog()
    wave = log.wave()
    with log.accounting() as calls:
        log.record(Call("BatchGetItem", items=100, wave=wave))
        log.record(Call("Query", items=20, wave=wave))
        log.record(Call("TransactWriteItems", items=5, wave=log.wave()))
    slowest = max(latency("BatchGetItem", 100).p99, latency("Query").p99)
    assert calls.latency_ms(0.99) == round(slowest + latency("TransactWriteItems", 5).p99, 6)
    report = calls.as_dict()
    assert report["backend"] == "dynamodb" and report["waves"] == 2
    assert report["items"] == {"BatchGetItem": 100, "Query": 20, "TransactWriteItems": 5}
    assert report["latency_ms"]["p50"] <= report["latency_ms"]["p90"] <= report["latency_ms"]["p99"]
