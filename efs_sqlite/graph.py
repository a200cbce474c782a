"""Model-aware node operations over a store (:class:`~efs_sqlite.backend.StoreBackend`).

A :class:`Graph` creates, reads, updates and deletes whole nodes and edits their reference
lists, with every value checked against the model and every reference checked against the
``_type`` shard (it exists, and is of the field's target type) *before* anything is written. Each
create, update, delete or list edit is one grouped write (:meth:`ShardStore.write`): all of it
lands or none.

The graph stays consistent across the model's inverse pairs (:meth:`Model.inverse`): every write
of one side writes the other in the same grouped write. Adding a party to a claim's ``parties``
adds the claim to the party's ``claims`` (as many times: a list of a many-to-many pair holds an
entry as often as the other side holds it back); giving a transaction a claim adds it to that
claim's ``transactions`` and takes it out of its previous claim's. Deleting a node takes it out of
every list of a pair that holds it and clears every optional reference to it; where a *required*
reference would dangle (the transactions of a deleted claim), the delete is refused with
:class:`~efs_sqlite.errors.StillReferenced` naming those nodes, unless ``cascade`` deletes them
too. References through fields without an inverse are not followed (no reverse index): they
dangle, and read as missing nodes. The reads that decide the other side's writes (a node's lists,
a transaction's previous claim) are made just before the grouped write, not inside it: two
writers editing the same link at the same moment may race.

Ids are the 64-bit Small UIDs; every method also accepts their 11-character strings. Each write
method takes ``record``: called as ``record(batch, result)`` inside its grouped write (``result``
the id of the node created or edited), it adds writes of the caller's own to the same commit (a
``clientMutationId``'s receipt: :mod:`efs_sqlite.graphql.receipts`).

>>> import tempfile
>>> from efs_sqlite.store import ShardStore
>>> g = Graph(ShardStore(tempfile.mkdtemp()))
>>> claim = g.create_node("Claim", {"identifier": 1, "type_code": "MOTOR", "timestamp": "2024-01-01"})
>>> party = g.create_node("Party", {"identifier": 7, "timestamp": "2024-01-01", "claims": [claim]})
>>> g.type_of(party), g.get_node(claim)["type_code"], g.list_page(claim, "parties") == [party]
('Party', 'MOTOR', True)
>>> g.list_remove(claim, "parties", [party]), g.list_page(party, "claims")
(1, [])
>>> g.create_node("Transaction", {"identifier": "T1", "timestamp": "2024-01-01", "claim": party,
...                               "amount": "9.99"})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
efs_sqlite.errors.ValidationError: claim: node ... is a Party, not a Claim
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from efs_sqlite import uid as uids
from efs_sqlite.backend import BatchWriter, StoreBackend
from efs_sqlite.errors import NodeNotFound, StillReferenced, UIDCollision, ValidationError
from efs_sqlite.model import INSURANCE, TYPE_SHARD, Field, Inverse, Model, NodeType
from efs_sqlite.store import Ref

#: What a write method calls inside its grouped write: ``record(batch, result)``.
Record = Callable[[BatchWriter, Any], None]

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


def _shown(ids: Sequence[int], most: int = 5) -> str:
    """Up to ``most`` of ``ids``, encoded, and how many more."""
    listed = ", ".join(map(_show, ids[:most]))
    return listed + (f" and {len(ids) - most} more" if len(ids) > most else "")


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
        for f, other in self._pairs(t):
            if f.kind == "refs" and other.field.kind == "ref" and coerced.get(f.name):
                coerced[f.name] = list(dict.fromkeys(coerced[f.name]))  # each entry points back once
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

    def create_node(
        self,
        type_name: str,
        values: Mapping[str, Any],
        *,
        uid: int | None = None,
        record: Record | None = None,
    ) -> int:
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
                    self._relink_all(w, t, new, {}, coerced)
                    if record is not None:
                        record(w, new)
            except UIDCollision as exc:
                attempts += 1
                if uid is not None or attempts >= self.retries or exc.shard not in self._node_shards(t):
                    raise
            else:
                return new

    def update_node(
        self,
        node: NodeId,
        values: Mapping[str, Any],
        type_name: str | None = None,
        *,
        record: Record | None = None,
    ) -> str:
        """Set the given fields of an existing node in one grouped write; return its type name.

        Fields not named keep their value; ``None`` clears an optional field; a reference list is
        replaced whole (use :meth:`list_add` / :meth:`list_remove` to edit one).
        """
        uid, t = self._node_type(node, type_name)
        coerced = self._coerce(t, values, partial=True)
        old = self._paired_values(t, uid, coerced)
        with self.store.write() as w:
            self._write_fields(w, t, uid, coerced, create=False)
            self._relink_all(w, t, uid, old, coerced)
            if record is not None:
                record(w, uid)
        return t.name

    def delete_node(
        self,
        node: NodeId,
        type_name: str | None = None,
        *,
        cascade: bool = False,
        record: Record | None = None,
    ) -> str:
        """Remove the node — every field and its ``_type`` entry — and take it out of the other
        side of each of its inverse pairs, in one grouped write; return its type name.

        Raises :class:`StillReferenced` (writing nothing) if nodes hold a required reference to it
        (a claim's transactions), unless ``cascade``, which deletes those nodes too (and theirs).
        """
        uid, t = self._node_type(node, type_name)
        doomed: dict[int, NodeType] = {}
        held: dict[tuple[int, str], list[int]] = {}  # (node, list field): its entries, read once
        todo = [(uid, t)]
        while todo:
            u, ut = todo.pop()
            if u in doomed:
                continue
            doomed[u] = ut
            for f, other in self._pairs(ut):
                if f.kind != "refs":
                    continue
                held[u, f.name] = entries = self._entries(ut, f, u)
                if other.field.kind == "ref" and other.field.required:
                    left = [e for e in dict.fromkeys(entries) if e not in doomed]
                    if left and not cascade:
                        raise StillReferenced(
                            f"{ut.name} {_show(u)} is the required {other.field.name} of {len(left)} "
                            f"{other.type.name} node(s) ({_shown(left)}): delete them first, or delete "
                            "with cascade",
                            left,
                        )
                    todo += [(e, other.type) for e in left]
        with self.store.write() as w:
            for u, ut in doomed.items():
                for f in ut.fields:
                    shard = ut.shard(f.name)
                    if self.store.has_shard(shard):  # deleting must not create empty shard files
                        w.delete(shard, u)
                w.delete(TYPE_SHARD, u)
                for f, other in self._pairs(ut):
                    shard = other.type.shard(other.field.name)
                    if f.kind == "ref":
                        target = self.store.get(ut.shard(f.name), u)
                        if target is not None and int(target) not in doomed:
                            w.list_remove(shard, int(target), [u])
                        continue
                    for e in dict.fromkeys(held[u, f.name]):
                        if e in doomed:
                            continue
                        if other.field.kind == "refs":
                            w.list_remove(shard, e, [u])
                        else:  # an optional reference: cleared
                            w.delete(shard, e)
            if record is not None:
                record(w, uid)
        return t.name

    def list_add(
        self,
        node: NodeId,
        field_name: str,
        refs: Iterable[NodeId],
        type_name: str | None = None,
        *,
        record: Record | None = None,
    ) -> None:
        """Append ``refs`` (checked: they exist and are of the list's target type) to a list, and
        the node to the other side of its inverse pair. Of a list whose entries each hold one
        reference back (a claim's transactions), an entry already there is not added again, and
        an entry of another node's list moves (its reference back is this node)."""
        uid, t = self._node_type(node, type_name)
        f = self._list_field(t, field_name)
        ids = [parse_id(r, f.name) for r in refs]
        self.check_targets(t, {f.name: ids})
        other = self.model.inverse(t, f)
        if other is not None and other.field.kind == "ref":
            back = self.store.get_many(other.type.shard(other.field.name), ids)
            ids = [u for u in dict.fromkeys(ids) if back.get(u) != uid]
        with self.store.write() as w:
            w.list_extend(t.shard(f.name), uid, ids)
            if other is not None:
                self._relink(w, t, uid, f, other, [], ids)
            if record is not None:
                record(w, uid)

    def list_remove(
        self,
        node: NodeId,
        field_name: str,
        refs: Iterable[NodeId],
        type_name: str | None = None,
        *,
        record: Record | None = None,
    ) -> int:
        """Remove every occurrence of ``refs`` from a list, and the node from the other side of
        its inverse pair; return how many entries went. Raises :class:`StillReferenced` (writing
        nothing) if an entry's reference back is required (a transaction must have a claim)."""
        uid, t = self._node_type(node, type_name)
        f = self._list_field(t, field_name)
        ids = list(dict.fromkeys(parse_id(r, f.name) for r in refs))
        shard = t.shard(f.name)
        other = self.model.inverse(t, f)
        gone = ids
        if other is not None and other.field.kind == "ref":
            back = self.store.get_many(other.type.shard(other.field.name), ids)
            gone = [u for u in ids if back.get(u) == uid]
        before = self.store.list_count(shard, uid)
        with self.store.write() as w:
            w.list_remove(shard, uid, ids)
            if other is not None:
                self._relink(w, t, uid, f, other, gone, [])
            if record is not None:
                record(w, uid)
        return before - self.store.list_count(shard, uid)

    # -- inverse pairs ---------------------------------------------------------------------------

    @staticmethod
    def _node_shards(t: NodeType) -> set[str]:
        """The shards a node of ``t`` is written to: a collision there is its id's."""
        return {TYPE_SHARD, *(t.shard(f.name) for f in t.fields)}

    def _pairs(self, t: NodeType) -> list[tuple[Field, Inverse]]:
        """The fields of ``t`` that have an inverse, with it."""
        return [(f, other) for f in t.fields if (other := self.model.inverse(t, f)) is not None]

    def _entries(self, t: NodeType, f: Field, uid: int) -> list[int]:
        """The whole list ``t.f`` of ``uid``."""
        shard = t.shard(f.name)
        return self.store.list_page(shard, uid, 0, self.store.list_count(shard, uid))

    def _paired_values(self, t: NodeType, uid: int, values: Mapping[str, Any]) -> dict[str, Any]:
        """The current values of the paired fields among ``values`` (lists whole), before a write."""
        old: dict[str, Any] = {}
        for f, _ in self._pairs(t):
            if f.name in values:
                if f.kind == "refs":
                    old[f.name] = self._entries(t, f, uid)
                else:
                    value = self.store.get(t.shard(f.name), uid)
                    old[f.name] = None if value is None else int(value)
        return old

    def _relink_all(
        self, w: BatchWriter, t: NodeType, uid: int, old: Mapping[str, Any], new: Mapping[str, Any]
    ) -> None:
        """The other sides of the paired fields that ``new`` sets (from ``old``; absent: none)."""
        for f, other in self._pairs(t):
            if f.name in new:
                empty: Any = [] if f.kind == "refs" else None
                self._relink(w, t, uid, f, other, old.get(f.name, empty), new[f.name] or empty)

    def _relink(
        self, w: BatchWriter, t: NodeType, uid: int, f: Field, other: Inverse, old: Any, new: Any
    ) -> None:
        """Write the other side of ``t.f`` for ``uid``, whose value goes from ``old`` to ``new``
        (lists, or a node id or ``None``). Raises :class:`StillReferenced` if a required
        reference back would be left pointing at ``uid`` from outside its list."""
        shard = other.type.shard(other.field.name)
        if f.kind == "ref":  # the other side is a list, holding uid once when f points at it
            if old != new:
                if old is not None:
                    w.list_remove(shard, old, [uid])
                if new is not None:
                    w.list_extend(shard, new, [uid])
            return
        if other.field.kind == "refs":  # many to many: u lists uid as often as uid lists u
            before, after = Counter(old), Counter(new)
            for u in sorted(before.keys() | after.keys()):
                if before[u] != after[u]:
                    if before[u]:
                        w.list_remove(shard, u, [uid])
                    if after[u]:
                        w.list_extend(shard, u, [uid] * after[u])
            return
        # one to many: u's single reference is uid exactly when uid lists u
        kept = set(new)
        gone = [u for u in dict.fromkeys(old) if u not in kept]
        if gone and other.field.required:
            raise StillReferenced(
                f"{other.type.name} node(s) {_shown(gone)} must have a {other.field.name}: they cannot "
                f"leave {t.name} {_show(uid)}'s {f.name}; give them another {other.field.name} or "
                "delete them",
                gone,
            )
        for u in gone:
            w.delete(shard, u)
        had = set(old)
        came = [u for u in dict.fromkeys(new) if u not in had]
        back = self.store.get_many(shard, came)
        for u in came:
            previous = back.get(u)
            if previous is not None and int(previous) != uid:  # it moves: out of its previous list
                w.list_remove(t.shard(f.name), int(previous), [u])
            w.put(shard, u, Ref(uid))

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
