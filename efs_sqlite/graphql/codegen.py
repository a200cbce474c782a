"""The code generator of compiled objects: one Python function per object selection.

The compiled execution (:mod:`efs_sqlite.graphql.compiled`) turns each object selection into a
tuple of steps, one per response key; :func:`object_source` writes the function that completes
such an object as one dict display, where each field costs a call or two and a required stored
scalar (most of them) none: read from the request's cache and passed through as its type's
``serialize`` would, with the step's own function called only for what that does not cover (a
value not read yet, or not of the usual type). The same results as running the steps in order,
a few times faster. :func:`compile_object` compiles it under a filename of its own, registered
in :mod:`linecache`, so that tracebacks and pdb show the generated lines.

>>> print(object_source("Claim", (Constant("__typename", "Claim"), NodeId("id"))), end="")
def complete_Claim(ctx, source):
    if source is None:
        return None
    return {
        '__typename': 'Claim',
        'id': encode(source.id),
    }
>>> complete = compile_object("Claim", (Constant("__typename", "Claim"),))
>>> complete.__name__, complete(None, object()), complete(None, None)
('complete_Claim', {'__typename': 'Claim'}, None)
"""

from __future__ import annotations

import hashlib
import linecache
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

from efs_sqlite import uid as uids
from efs_sqlite.graphql.objects import Dangling

__all__ = [
    "Constant",
    "EdgeNode",
    "NodeId",
    "ObjectStep",
    "Step",
    "StoredLeaf",
    "compile_object",
    "object_source",
]

#: ``get(execution, parent)``: a field's value; ``complete(execution, value)``: it completed.
Getter = Callable[[Any, Any], Any]
Completer = Callable[[Any, Any], Any]

_UNREAD = object()  # a value not in the request's cache
_INT32 = 2**31
#: The generated sources kept in linecache, at most this many (the oldest are evicted first).
MAX_SOURCES = 1024


class Step(NamedTuple):
    """A field got by ``get`` and completed by ``complete`` (``None``: ``get`` returns it complete)."""

    key: str
    get: Getter
    complete: Completer | None = None


class Constant(NamedTuple):
    """A field whose value is known when compiling (``__typename``)."""

    key: str
    value: Any


class NodeId(NamedTuple):
    """The ``id`` of a node: its Small UID, encoded."""

    key: str


class EdgeNode(NamedTuple):
    """The ``node`` of an edge; ``get`` is called only for a dangling one (it raises)."""

    key: str
    get: Getter
    complete: Completer | None


class StoredLeaf(NamedTuple):
    """A required stored scalar: the value in ``shard`` of the request's cache, passed on as is
    when its Python type is ``unchanged`` (an ``int`` only within 32 bits), as ``isoformat()``
    when it is ``iso``, else through ``leaf(execution, value)``; ``get`` reads and serializes a
    value not read yet."""

    key: str
    shard: str
    get: Getter
    leaf: Completer
    unchanged: type | None
    iso: type | None


ObjectStep = Step | Constant | NodeId | EdgeNode | StoredLeaf


def _render(type_name: str, steps: tuple[ObjectStep, ...]) -> tuple[str, dict[str, Any]]:
    """The source of the completion of an object made of ``steps``, and the names it uses."""
    names: dict[str, Any] = {"UNREAD": _UNREAD, "EMPTY": {}, "encode": uids.encode, "Dangling": Dangling}
    reads, items = [], []
    for i, step in enumerate(steps):
        complete = None
        if isinstance(step, Constant):
            value = repr(step.value)
        elif isinstance(step, NodeId):
            value = "encode(source.id)"
        elif isinstance(step, EdgeNode):  # what get does, a dangling reference left to it (it raises)
            names[f"get{i}"], complete = step.get, step.complete
            value = f"get{i}(ctx, source) if type(source.node) is Dangling else source.node"
        elif isinstance(step, StoredLeaf):
            names[f"get{i}"], names[f"leaf{i}"] = step.get, step.leaf
            reads.append(f"    v{i} = values.get({step.shard!r}, EMPTY).get(source.id, UNREAD)")
            usual = f"leaf{i}(ctx, v{i})"
            if step.iso is not None:
                names[f"iso{i}"] = step.iso
                usual = f"v{i}.isoformat() if type(v{i}) is iso{i} else {usual}"
            if step.unchanged is not None:
                names[f"unchanged{i}"] = step.unchanged
                check = f"type(v{i}) is unchanged{i}"
                if step.unchanged is int:
                    check += f" and {-_INT32} <= v{i} < {_INT32}"
                usual = f"v{i} if {check} else {usual}"
            value = f"get{i}(ctx, source) if v{i} is UNREAD else {usual}"
        else:
            names[f"get{i}"], complete = step.get, step.complete
            value = f"get{i}(ctx, source)"
        if complete is not None:
            names[f"complete{i}"] = complete
            value = f"complete{i}(ctx, {value})"
        # Response keys are GraphQL names; repr() writes them as Python literals.
        items.append(f"        {step.key!r}: {value},")
    prelude = ["    values = ctx.context_value.values", *reads] if reads else []
    head = [f"def complete_{type_name}(ctx, source):", "    if source is None:", "        return None"]
    return "\n".join([*head, *prelude, "    return {", *items, "    }"]) + "\n", names


def object_source(type_name: str, steps: tuple[ObjectStep, ...]) -> str:
    """The source of ``complete_<type_name>(ctx, source)``, which completes an object of
    ``type_name`` made of ``steps`` (``None`` for a ``None`` source)."""
    return _render(type_name, steps)[0]


_registered: OrderedDict[str, None] = OrderedDict()  # the filenames this module put in linecache
_lock = threading.Lock()


def _register(filename: str, source: str) -> None:
    """Put ``source`` in linecache as ``filename`` (no file: its mtime is None, so checkcache
    keeps it), evicting the oldest of this module's entries beyond :data:`MAX_SOURCES`."""
    with _lock:
        linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
        _registered[filename] = None
        _registered.move_to_end(filename)
        while len(_registered) > MAX_SOURCES:
            linecache.cache.pop(_registered.popitem(last=False)[0], None)


def compile_object(
    type_name: str, steps: tuple[ObjectStep, ...]
) -> Callable[[Any, Any], dict[str, Any] | None]:
    """:func:`object_source` compiled, under the filename
    ``<efs_sqlite.graphql generated complete_<type_name> <hash of the source>>``."""
    source, names = _render(type_name, steps)
    digest = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()[:8]
    filename = f"<efs_sqlite.graphql generated complete_{type_name} {digest}>"
    exec(compile(source, filename, "exec"), names)  # the steps' own functions, as compiled
    _register(filename, source)
    return names[f"complete_{type_name}"]  # type: ignore[no-any-return]
