"""Model-aware node operations over a store (:class:`~efs_sqlite.backend.StoreBackend`).

A :class:`Graph` creates, reads, updates and deletes whole nodes and edits their reference
lists, with every value checked against the model and every reference checked against the
``_type`` shard (it exists, and is of the field's target type) *before* anything is written. Each
create, update or delete is one grouped write (:meth:`ShardStore.write`): all of it lands or none.

Ids are the 64-bit Small UIDs; every method also accepts their 11-character strings.

>>> import tempfile
>>> from efs_sqlite.store import ShardStore
>>> g = Graph(ShardStore(tempfile.mkdtemp()))
>>> claim = g.create_node("Claim", {"identifier": 1, "type_code": "MOTOR", "timestamp": "2024-01-01"})
>>> party = g.create_node("Party", {"identifier": 7, "timestamp": "2024-01-01", "claims": [claim]})
>>> g.list_add(claim, "parties", [party])
>>> g.type_of(party), g.get_node(claim)["type_code"], g.list_page(claim, "parties") == [party]
('Party', 'MOTOR', True)
>>> g.create_node("Transaction", {"identifier": "T1", "timestamp": "2024-01-01", "claim": party,
...                               "amount": "9.99"})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
efs_sqlite.errors.ValidationError: claim: node ... is a Party, not a Claim
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from efs_sqlite import uid as uids
from efs_sqlite.backend import BatchWriter, StoreBackend
from efs_sqlite.errors import NodeNotFound, UIDCollision, ValidationError
from efs_sqlite.model import INSURANCE, TYPE_SHARD, Field, Model, NodeType
from efs_sqlite.store import Ref

__all__ = ["Graph", "NodeId", "parse_id"]

#: A node id: the 64-bit integer, or its 11-character string (:func:`efs_sqlite.uid.encode`).
NodeId = int | str


def parse_id(value: Any, what: str = "id") -> int:
    """``value`` (an int or an 11-character Small UID string) as a node id, or a ValidationError.

    >>> parse_id("00000000001"), parse_id(5)
    (1, 5)
    >>> parse_id("nope")
    Traceback (most recent call last):
    ...
    efs_sqlite.errors.ValidationError: id: 'nope' has 4 characters; an encoded uid has 11
    """
    if isinstance(value, str):
        try:
            value = uids.decode(value)
        except ValueError as exc:
            raise ValidationError(f"{what}: {exc}") from None
    return uids.check_id(value, what)


def _show(uid: int) -> str:
    return uids.encode(uid)


class Graph:
    """Nodes of ``model`` stored in ``store``.

    ``new_id`` makes the id of each created node (:func:`efs_sqlite.uid.generate` by default); a
    create that meets an id already present (:class:`~efs_sqlite.errors.UIDCollision`, e.g. two
    processes drawing the same id) wrote nothing and is retried with a new id, up to ``retries``
    times. A model with more shards than ``store`` may lock at once
    (:attr:`~efs_sqlite.store.ShardStore.max_locked_files`) is refused with
    :class:`~efs_sqlite.errors.LockQuotaExceeded`.
    """

    def __init__(
        self,
        store: StoreBackend,
        model: Model = INSURANCE,
        *,
        new_id: Callable[[], int] = uids.generate,
        retries: int = 3,
    ) -> None:
        if retries < 1:
            raise ValueError("retries must be >= 1")
        # A grouped write, or a query's lock-ahead, may lock every shard of the model at once.
        if store.lock_quota is not None:
            store.lock_quota.check_files(len(model.shards()), f"the shards of {model!r}")
        self.store = store
        self.model = model
        self.new_id = new_id
        self.retries = retries

    def __repr__(self) -> str:
        return f"Graph({self.store!r}, {self.model!r})"

    # -- types -----------------------------------------------------------------------------------

    def type_of(self, node: NodeId) -> str | None:
        """The type name of ``node``, or ``None`` if no node has that id."""
        return self.store.get(TYPE_SHARD, parse_id(node))

    def types_of(self, nodes: Iterable[NodeId]) -> dict[int, str]:
        """The type names of those ``nodes`` that exist, in one read."""
        return self.store.get_many(TYPE_SHARD, [parse_id(n) for n in nodes])

    def _node_type(self, node: NodeId, type_name: str | None) -> tuple[int, NodeType]:
        """``node``'s id and type; NodeNotFound if it is absent or not a ``type_name``."""
        uid = parse_id(node)
        found = self.store.get(TYPE_SHARD, uid)
        if found is None:
            raise NodeNotFound(f"no node has the id {_show(uid)}")
        if type_name is not None and found != type_name:
            raise NodeNotFound(f"node {_show(uid)} is a {found}, not a {type_name}")
        return uid, self.model.type(found)

    def _model_type(self, type_name: str) -> NodeType:
        try:
            return self.model.type(type_name)
        except KeyError as exc:
            raise ValidationError(str(exc.args[0])) from None

    def check_targets(self, t: NodeType, values: Mapping[str, Any]) -> None:
        """Raise ValidationError unless every reference in ``values`` (coerced field values of a
        ``t``) names an existing node of its field's target type; one read for all of them."""
        wanted: list[tuple[Field, int]] = []
        for name, value in values.items():
            f = t.field(name)
            if f.kind == "ref" and value is not None:
                wanted.append((f, value))
            elif f.kind == "refs" and value:  # an explicit null list is the empty list
                wanted.extend((f, v) for v in value)
        if not wanted:
            return
        found = self.store.get_many(TYPE_SHARD, {v for _, v in wanted})
        problems = []
        for f, v in wanted:
            if v not in found:
                problems.append(f"{f.name}: no node has the id {_show(v)}")
            elif found[v] != f.target:
                problems.append(f"{f.name}: node {_show(v)} is a {found[v]}, not a {f.target}")
        if problems:
            raise ValidationError("; ".join(dict.fromkeys(problems)))

    def _coerce(self, t: NodeType, values: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
        # References arrive as ids or id strings: make them ints before the model checks them.
        prepared = dict(values)
        fields = {f.name: f for f in t.fields}
        for name, value in values.items():
            f = fields.get(name)
            if f is None or value is None:
                continue
            if f.kind == "ref":
                prepared[name] = parse_id(value, name)
            elif f.kind == "refs" and not isinstance(value, str | bytes) and isinstance(value, Iterable):
                prepared[name] = [parse_id(v, name) for v in value]
        coerced = self.model.coerce_node(t.name, prepared, partial=partial)
        self.check_targets(t, coerced)
        return coerced

    # -- reads -----------------------------------------------------------------------------------

    def get_node(
        self, node: NodeId, type_name: str | None = None, fields: Iterable[str] | None = None
    ) -> dict[str, Any] | None:
        """``{"id", "type", <field>: value...}`` of ``node`` (its plain and single-reference fields,
        or only ``fields``), or ``None`` if it does not exist. Absent optional fields are left
        out; reference lists are read with :meth:`list_page`.

        Raises NodeNotFound if the node is not a ``type_name``.
        """
        uid = parse_id(node)
        found = self.store.get(TYPE_SHARD, uid)
        if found is None:
            return None
        if type_name is not None and found != type_name:
            raise NodeNotFound(f"node {_show(uid)} is a {found}, not a {type_name}")
        t = self.model.type(found)
        names = [f.name for f in t.fields if f.kind != "refs"] if fields is None else list(fields)
        out: dict[str, Any] = {"id": uid, "type": found}
        with self.store.read():
            for name in names:
                value = self.store.get(t.shard(name), uid)
                if value is not None:
                    out[name] = int(value) if isinstance(value, Ref) else value
        return out

    def _list_field(self, t: NodeType, field_name: str) -> Field:
        f = t.field(field_name)
        if f.kind != "refs":
            raise ValidationError(f"{t.name}.{field_name} is not a reference list")
        return f

    def list_count(self, node: NodeId, field_name: str) -> int:
        """The length of ``node``'s reference list ``field_name``."""
        uid, t = self._node_type(node, None)
        return self.store.list_count(t.shard(self._list_field(t, field_name).name), uid)

    def list_page(self, node: NodeId, field_name: str, offset: int = 0, limit: int = 100) -> list[int]:
        """Entries ``offset .. offset+limit`` of ``node``'s reference list, reading only those."""
        uid, t = self._node_type(node, None)
        return self.store.list_page(t.shard(self._list_field(t, field_name).name), uid, offset, limit)

    # -- writes ----------------------------------------------------------------------------------

    def create_node(self, type_name: str, values: Mapping[str, Any], *, uid: int | None = None) -> int:
        """Validate ``values`` (by field name), then write the node — ``_type`` and every field —
        in one grouped write; return its new id. Nothing is written if anything is invalid.

        ``uid`` forces the id (then a collision raises UIDCollision instead of retrying).
        """
        t = self._model_type(type_name)
        coerced = self._coerce(t, values, partial=False)
        attempts = 0
        while True:
            new = parse_id(uid if uid is not None else self.new_id())
            try:
                with self.store.write() as w:
                    w.insert(TYPE_SHARD, new, t.name)
                    self._write_fields(w, t, new, coerced, create=True)
            except UIDCollision:
                attempts += 1
                if uid is not None or attempts >= self.retries:
                    raise
            else:
                return new

    def update_node(self, node: NodeId, values: Mapping[str, Any], type_name: str | None = None) -> str:
        """Set the given fields of an existing node in one grouped write; return its type name.

        Fields not named keep their value; ``None`` clears an optional field; a reference list is
        replaced whole (use :meth:`list_add` / :meth:`list_remove` to edit one).
        """
        uid, t = self._node_type(node, type_name)
        coerced = self._coerce(t, values, partial=True)
        with self.store.write() as w:
            self._write_fields(w, t, uid, coerced, create=False)
        return t.name

    def delete_node(self, node: NodeId, type_name: str | None = None) -> str:
        """Remove the node — every field and its ``_type`` entry — in one grouped write; return
        its type name.

        References to it held by other nodes are not searched for (there is no reverse index):
        they dangle, and reading through them reports the node as missing.
        """
        uid, t = self._node_type(node, type_name)
        with self.store.write() as w:
            for f in t.fields:
                shard = t.shard(f.name)
                if self.store.has_shard(shard):  # deleting must not create empty shard files
                    w.delete(shard, uid)
            w.delete(TYPE_SHARD, uid)
        return t.name

    def list_add(
        self, node: NodeId, field_name: str, refs: Iterable[NodeId], type_name: str | None = None
    ) -> None:
        """Append ``refs`` (checked: they exist and are of the list's target type) to a list."""
        uid, t = self._node_type(node, type_name)
        f = self._list_field(t, field_name)
        ids = [parse_id(r, f.name) for r in refs]
        self.check_targets(t, {f.name: ids})
        self.store.list_extend(t.shard(f.name), uid, ids)

    def list_remove(
        self, node: NodeId, field_name: str, refs: Iterable[NodeId], type_name: str | None = None
    ) -> int:
        """Remove every occurrence of ``refs`` from a list; return how many entries went."""
        uid, t = self._node_type(node, type_name)
        f = self._list_field(t, field_name)
        ids = [parse_id(r, f.name) for r in refs]
        return self.store.list_remove(t.shard(f.name), uid, ids)

    @staticmethod
    def _write_fields(w: BatchWriter, t: NodeType, uid: int, values: Mapping[str, Any], create: bool) -> None:
        for name, value in values.items():
            f = t.field(name)
            shard = t.shard(name)
            if f.kind == "refs":
                if value or not create:
                    w.list_set(shard, uid, value or [])
            elif value is None:
                if not create:
                    w.delete(shard, uid)
            else:
                stored = Ref(value) if f.kind == "ref" else value
                if create:
                    w.insert(shard, uid, stored)
                else:
                    w.put(shard, uid, stored)
