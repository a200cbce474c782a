"""The loader function's contract: the event :func:`~efs_sqlite.aws.remote_load` sends and the
answer ``efs_sqlite/lambdas/loader/handler.py`` gives, defined once for both sides.

The event is ``{"action": "load", "records": [{"shard": str, "uid": int, "value": <JSON>}, ...]}``.
The answer is ``{"ok": true, "loaded": n, "skipped": k, "shards": {shard: rows}, "seconds": s}``,
or ``{"ok": false, "error": "...", ...}`` (a rejected batch lists its bad records under
``invalid``, each ``{"index": i, "error": "..."}``, and nothing of it was written). Only the
standard library is imported: the loader imports this module on Lambda.

The calibration event is ``{"action": "calibrate", "rounds": n}``; its answer
``{"ok": true, "mount": str, "rounds": n, "seconds": s, "ops": {OP: [ops, trans, timeouts,
bytes_sent, bytes_recv, queue_ms, rtt_ms, execute_ms, errors]}, "fields": [...]}``: the
``/proc/self/mountstats`` deltas of the EFS mount over the calibration workload.

>>> json.loads(event_payload([encode_record(0, ("claim_type_code", 7, "AUTO"))]))
{'action': 'load', 'records': [{'shard': 'claim_type_code', 'uid': 7, 'value': 'AUTO'}]}
>>> read_answer(json.dumps(loaded(1, 0, {"claim_type_code": 1}, 0.01)).encode(), count=1, first=0)["ok"]
True
>>> calibration_event(5)
b'{"action": "calibrate", "rounds": 5}'
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "ACTION",
    "CALIBRATE",
    "EVENT_OVERHEAD",
    "MAX_RECORDS",
    "RECORDS",
    "Answer",
    "calibration_event",
    "encode_record",
    "event_payload",
    "loaded",
    "read_answer",
    "read_calibration",
    "refusal",
]

ACTION = "load"
CALIBRATE = "calibrate"
RECORDS = "records"
#: More records than this in one event are refused (Lambda's 6 MB payload holds ~60k small ones).
MAX_RECORDS = 50_000

Answer = dict[str, Any]

_HEAD = b'{"action":"' + ACTION.encode() + b'","' + RECORDS.encode() + b'":['
_TAIL = b"]}"
#: The bytes of an event besides its records and the commas between them.
EVENT_OVERHEAD = len(_HEAD) + len(_TAIL)


def encode_record(index: int, record: Mapping[str, Any] | Sequence[Any]) -> bytes:
    """One record as the event carries it; a mapping or a ``(shard, uid, value)`` triple.

    Raises ValueError, naming the record's *index*, for anything the loader could not take.
    """
    if isinstance(record, Mapping):
        if set(record) != {"shard", "uid", "value"}:
            raise ValueError(f"record {index} needs exactly shard, uid and value: {record!r}")
        shard, uid, value = record["shard"], record["uid"], record["value"]
    else:
        shard, uid, value = record
    if not isinstance(shard, str) or not isinstance(uid, int) or isinstance(uid, bool):
        raise ValueError(f"record {index}: shard must be a str and uid an int: {record!r}")
    try:
        return json.dumps(
            {"shard": shard, "uid": uid, "value": value},
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        ).encode()
    except (TypeError, ValueError) as error:
        raise ValueError(f"record {index}: value is not JSON ({error}): {record!r}") from None


def event_payload(records: Sequence[bytes]) -> bytes:
    """The load event holding *records*, each from :func:`encode_record`."""
    return _HEAD + b",".join(records) + _TAIL


def loaded(records: int, skipped: int, shards: Mapping[str, int], seconds: float) -> Answer:
    """The answer to a loaded batch: *records* loaded, *skipped* of them already present."""
    return {
        "ok": True,
        "loaded": records,
        "skipped": skipped,
        "shards": dict(shards),
        "seconds": round(seconds, 3),
    }


def refusal(error: str, **details: Any) -> Answer:
    """The answer to an event that was not carried out, saying why."""
    return {"ok": False, "error": error, **details}


def read_answer(body: bytes, count: int, first: int) -> Answer:
    """The loader's answer to an event of *count* records, the first of them record *first*.

    Raises ValueError saying what went wrong unless it is ``{"ok": true, "loaded": count}``
    (records already present count as loaded).
    """
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and answer.get("ok") is False:
        invalid = "".join(
            f"\n  record {first + int(i.get('index', 0))}: {i.get('error')}"
            for i in answer.get("invalid", [])
        )
        raise ValueError(f"the loader refused it: {answer.get('error')}{invalid}")
    if not isinstance(answer, dict) or (answer.get("ok"), answer.get("loaded")) != (True, count):
        raise ValueError(f"expected {{'ok': true, 'loaded': {count}}}, got {body[:2000]!r}")
    return answer


def calibration_event(rounds: int) -> bytes:
    """The event that runs ``rounds`` calibration rounds on the loader's mount."""
    return json.dumps({"action": CALIBRATE, "rounds": rounds}).encode()


def read_calibration(body: bytes) -> Answer:
    """The loader's answer to a calibration event; ValueError saying why unless it ran."""
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and answer.get("ok") is False:
        raise ValueError(f"the loader refused it: {answer.get('error')}")
    if (
        not isinstance(answer, dict)
        or answer.get("ok") is not True
        or not isinstance(answer.get("ops"), dict)
    ):
        raise ValueError(f"expected {{'ok': true, 'ops': {{...}}}}, got {body[:2000]!r}")
    return answer
