"""Store hooks: an object told of every read and write a store makes, able to watch, gate or fail it.

A hook has one method, ``observe(op)``, that returns a context manager around one call: the store
enters it before the call (a hook may raise there to inject a fault, or block to hold the calling
thread back), makes the call, sets ``op.result`` or ``op.error``, and exits it afterwards. The
exit always runs normally (the call's error is in ``op.error``); the store raises the error once
the hook has exited. A hook is called on the thread that makes the call, so it may keep
per-thread state, and calls the store makes to itself (``list_count`` asks ``list_count_many``,
a :meth:`~efs_sqlite.store.ShardStore.read` block ends with ``end_reads``) are observed too,
nested inside the outer one.

>>> import contextlib
>>> class Log:
...     def __init__(self) -> None:
...         self.ops: list[StoreOp] = []
...     @contextlib.contextmanager
...     def observe(self, op: StoreOp):
...         yield
...         self.ops.append(op)
>>> log = Log()
>>> get_many = observed(log, "get_many", lambda shard, uids: {u: u * 2 for u in uids})
>>> get_many("claim_amount", iter([1, 2]))
{1: 2, 2: 4}
>>> [(op.name, op.shard, op.keys, op.result) for op in log.ops]
[('get_many', 'claim_amount', (1, 2), {1: 2, 2: 4})]
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["StoreHook", "StoreOp", "observed"]


@dataclass
class StoreOp:
    """One call a hook observes.

    ``name`` is the method's; ``shard`` the shard it names (None for a call of several, or of
    none); ``keys`` the ids it names (its ``uid``, its ``uids``, or the first item of each of its
    ``rows``); ``args`` its other arguments by name, defaults included (``offset``, ``limit`` ...);
    ``shards`` the shards it touches when known (the shard; for ``end_reads`` the shards it lets
    go). Once the call is made, ``result`` is what it returned (for a ``read`` or ``write`` block,
    what the block was given: None, the ``WriteBatch``) or ``error`` what it raised.
    """

    name: str
    shard: str | None
    keys: tuple[Any, ...]
    args: dict[str, Any] = field(default_factory=dict)
    shards: tuple[str, ...] = ()
    result: Any = None
    error: BaseException | None = None


class StoreHook(Protocol):
    """What a store calls around every read and write (see the module's documentation)."""

    def observe(self, op: StoreOp) -> AbstractContextManager[None]: ...


#: Arguments that name ids: one id, ids, or rows whose first item is an id.
_KEY_ARGUMENTS = ("uid", "uids", "rows")


def observed(
    hook: StoreHook,
    name: str,
    method: Callable[..., Any],
    *,
    block: bool = False,
    shards: Callable[[], tuple[str, ...]] | None = None,
) -> Callable[..., Any]:
    """``method`` (a bound method, or any callable), with each call observed by ``hook`` as a
    :class:`StoreOp` named ``name``. A ``block`` method returns a context manager: the call is then
    the whole ``with`` block. ``shards()``, if given, says which shards the call touches (called
    just before it is made).

    An argument given as an iterator (ids, rows, refs) is read into a list first, so that both the
    hook and the method see all of it.
    """
    signature = inspect.signature(method)

    def operation(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[StoreOp, inspect.BoundArguments]:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        given = bound.arguments
        for argument, value in given.items():
            if isinstance(value, Iterator):  # read once: by the hook, or by the method
                given[argument] = list(value)
        keys: tuple[Any, ...] = ()
        if "uid" in given:
            keys = (given["uid"],)
        elif "uids" in given:
            keys = tuple(given["uids"])
        elif "rows" in given:
            keys = tuple(row[0] for row in given["rows"])
        shard = given.get("shard")
        rest = {k: v for k, v in given.items() if k != "shard" and k not in _KEY_ARGUMENTS}
        touched = shards() if shards is not None else (shard,) if isinstance(shard, str) else ()
        return StoreOp(name, shard, keys, rest, touched), bound

    def call(*args: Any, **kwargs: Any) -> Any:
        op, bound = operation(args, kwargs)
        with hook.observe(op):
            try:
                op.result = method(*bound.args, **bound.kwargs)
            except BaseException as exc:
                op.error = exc
        if op.error is not None:
            raise op.error
        return op.result

    @contextlib.contextmanager
    def in_block(*args: Any, **kwargs: Any) -> Iterator[Any]:
        op, bound = operation(args, kwargs)
        with hook.observe(op):
            try:
                with method(*bound.args, **bound.kwargs) as given:
                    op.result = given
                    yield given
            except BaseException as exc:
                op.error = exc
        if op.error is not None:
            raise op.error

    return functools.update_wrapper(in_block if block else call, method)
