"""The loader Lambda: batches of records into the store on the EFS mount, and its maintenance.

Invoked directly with the Lambda API, never through a URL. Events:

- ``{"action": "load", "records": [{"shard": ..., "uid": ..., "value": ...}, ...]}``: every record
  is validated against the model first (shard exists, id in range, value of the field's type); if
  any is invalid nothing is written and the answer lists the bad records (index and reason).
  Otherwise the batch is loaded (see :mod:`efs_sqlite.loader`: a re-sent batch is skipped, an id
  that already holds a different value is refused and never overwritten) and the answer counts it:
  ``{"ok": true, "loaded": n, "skipped": k, "shards": {...}, "seconds": s}``. This event and its
  answers are the contract :mod:`efs_sqlite.aws.loader_protocol` defines for both sides.
- ``{"action": "integrity"}``: SQLite's integrity check of every shard.
- ``{"action": "stats"}``: rows, list entries and bytes per shard.
- ``{"action": "vacuum"}`` (optionally ``"shard": name``): rebuild the shard files.
- ``{"action": "clear", "confirm": "<the store root's folder name>"}``: delete every shard file.
- ``{"action": "calibrate"}`` (optionally ``"rounds": n``, default 20): run the calibration
  workload in a scratch folder on the mount and answer the ``/proc/self/mountstats`` deltas of
  the EFS mount (:mod:`efs_sqlite.calibration`); refused, saying so, where the store is on no NFS
  mount.

There is no action that runs SQL. Every answer is a JSON object with ``ok``; a failure answers
``{"ok": false, "error": "..."}`` and never a traceback (that goes to the function's log).

The store lives at ``$MOUNT_PATH`` (default ``/mnt/efs-sqlite``), opened once per execution
environment at import so a warm function reuses it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import apsw

from efs_sqlite.aws.loader_protocol import ACTION, CALIBRATE, MAX_RECORDS, RECORDS, Answer, loaded, refusal
from efs_sqlite.calibration import MAX_ROUNDS, calibrate
from efs_sqlite.errors import CalibrationError, LoadError, RecordError
from efs_sqlite.loader import load, validate_record
from efs_sqlite.store import ShardStore

MOUNT_PATH = os.environ.get("MOUNT_PATH", "/mnt/efs-sqlite")
#: How many invalid records a rejection lists (it always counts all of them).
MAX_LISTED = 100

STORE = ShardStore(MOUNT_PATH)
log = logging.getLogger("efs_sqlite.lambdas.loader")


def _load(event: dict[str, Any]) -> Answer:
    records = event.get(RECORDS)
    if not isinstance(records, list) or not records:
        return refusal("'records' must be a non-empty list of {shard, uid, value} objects")
    if len(records) > MAX_RECORDS:
        return refusal(f"{len(records)} records in one event; send at most {MAX_RECORDS}")
    invalid = []
    for index, record in enumerate(records):
        try:
            validate_record(record)
        except RecordError as exc:
            invalid.append({"index": index, "error": str(exc)})
    if invalid:
        return refusal(
            f"{len(invalid)} of {len(records)} records are invalid; nothing was written",
            invalid=invalid[:MAX_LISTED],
        )
    try:
        summary = load(STORE, records, progress=False)
    except LoadError as exc:
        return refusal(str(exc), shard=str(exc.shard), index=exc.index)
    log.info(
        "loaded %d records (%d already present) in %.3f s", summary.records, summary.skipped, summary.seconds
    )
    return loaded(summary.records, summary.skipped, summary.shards, summary.seconds)


def _check(shard: str) -> str:
    try:
        return STORE.integrity_check(shard)
    except apsw.Error as exc:  # a file SQLite cannot even open as a database
        return f"{type(exc).__name__}: {exc}"


def _integrity(event: dict[str, Any]) -> Answer:
    results = {shard: _check(shard) for shard in STORE.shards()}
    bad = sorted(shard for shard, result in results.items() if result != "ok")
    if bad:
        return refusal(f"integrity check failed for {bad}", shards=results)
    return {"ok": True, "shards": results}


def _stats(event: dict[str, Any]) -> Answer:
    return {"ok": True, **STORE.stats(integrity=False)}


def _vacuum(event: dict[str, Any]) -> Answer:
    shard = event.get("shard")
    existing = STORE.shards()
    if shard is not None and shard not in existing:
        return refusal(f"no shard {str(shard)[:80]!r} in the store")
    STORE.vacuum(shard)
    return {"ok": True, "vacuumed": [shard] if shard is not None else existing}


def _clear(event: dict[str, Any]) -> Answer:
    confirm = event.get("confirm")
    if confirm != STORE.root.name:
        return refusal("clearing deletes every shard: pass 'confirm' equal to the store root's folder name")
    return {"ok": True, "removed": STORE.clear(confirm)}


def _calibrate(event: dict[str, Any]) -> Answer:
    rounds = event.get("rounds", 20)
    if not isinstance(rounds, int) or isinstance(rounds, bool) or not 1 <= rounds <= MAX_ROUNDS:
        return refusal(f"'rounds' must be an integer from 1 to {MAX_ROUNDS}")
    try:
        result = calibrate(MOUNT_PATH, rounds=rounds)
    except CalibrationError as exc:
        return refusal(str(exc))
    log.info("calibrated %s: %d rounds in %.3f s", result.mount, result.rounds, result.seconds)
    return result.as_answer()


#: action -> (handler, the event keys it accepts besides "action")
_ACTIONS: dict[str, tuple[Callable[[dict[str, Any]], Answer], frozenset[str]]] = {
    ACTION: (_load, frozenset({RECORDS})),
    "integrity": (_integrity, frozenset()),
    "stats": (_stats, frozenset()),
    "vacuum": (_vacuum, frozenset({"shard"})),
    "clear": (_clear, frozenset({"confirm"})),
    CALIBRATE: (_calibrate, frozenset({"rounds"})),
}


def handler(event: Any, context: Any) -> Answer:
    """The Lambda entry point: dispatch ``event["action"]``; always answer a JSON object."""
    if not isinstance(event, dict):
        return refusal(f"the event must be a JSON object, not {type(event).__name__}")
    action = event.get("action")
    entry = _ACTIONS.get(action) if isinstance(action, str) else None
    if entry is None:
        return refusal(f"unknown action {str(action)[:40]!r}; expected one of {sorted(_ACTIONS)}")
    run, accepted = entry
    unexpected = sorted(str(k)[:40] for k in event if k != "action" and k not in accepted)
    if unexpected:
        return refusal(f"action {action!r} does not take {unexpected}")
    try:
        return run(event)
    except Exception:
        log.exception("action %s failed", action)
        return refusal(f"action {action!r} failed on the server; see the function's log")
