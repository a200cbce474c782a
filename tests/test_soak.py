"""Many instances: N ``efs-sqlite serve`` processes on one store (simulated Lambda environments)
under a bounded mixed load over HTTP for a fixed time.

Each client thread sends one request at a time (so the load is bounded by the number of clients)
to a server picked at random: reads of its claim with a page of its parties, creates of parties
and of transactions that reference the claim, list edits of the claim's parties, updates, and
deletes of parties no list was ever asked to hold. A client owns the nodes it made, so it knows
what each acknowledged write left. Afterwards, with every server stopped: no acknowledged write is
lost, ``integrity_check`` is ok on every shard, every reference an acknowledged write created
resolves and every list entry points at an existing node of its type; and the graph invariants
hold over the whole store: no dangling reference, and both sides of every inverse pair agree (the
claim's transactions, a party's claims: the store check of :mod:`efs_sqlite.links`). Latency
p50/p99 and errors by kind are printed.

The CI runs 3 servers and 4 clients for 3 s (``slow``); ``pytest -m long tests/test_soak.py``
runs 4 servers and 8 clients for 60 s.
"""

from __future__ import annotations

import itertools
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_consistency import dangling

from efs_sqlite.graph import Graph
from efs_sqlite.links import check_links, store_records
from efs_sqlite.model import TYPE_SHARD
from efs_sqlite.store import ShardStore
from efs_sqlite.uid import decode, encode

REPO = Path(__file__).resolve().parents[1]
#: The answer of a write refused whole (StoreBusy, a deadline): the client knows nothing was written.
NOTHING_WRITTEN = "nothing was written"
STAMP = "2024-01-01T00:00:00Z"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Servers:
    """``n`` ``efs-sqlite serve`` processes on ``root``, each on a port of its own."""

    def __init__(self, root: Path, n: int) -> None:
        self.ports = [free_port() for _ in range(n)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        self.procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "efs_sqlite.cli",
                    "serve",
                    "--root",
                    str(root),
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
                env=env,
            )
            for port in self.ports
        ]

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 120
        for port in self.ports:
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"server on port {port} never answered"
                assert all(p.poll() is None for p in self.procs), "a server exited"
                time.sleep(0.1)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass
class Party:
    """What a client knows of a party it created: the identifiers it may hold (the last
    acknowledged one, and any sent since without an answer), whether it may be gone, and whether
    a list edit of it was ever sent (then it is never deleted, so no list points at a deleted node)."""

    uid: int
    identifiers: set[int]
    deleted: bool | None = False  # None: a delete was sent without an answer
    listed: bool = False


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, op: str, seconds: float, error: str | None) -> None:
        with self.lock:
            self.latencies.setdefault(op, []).append(seconds)
            if error is not None:
                self.errors[f"{op}: {error}"] += 1


def _kind(message: str) -> str:
    """An error's kind, from its message."""
    for words, kind in (("deadline", "deadline"), ("stayed locked", "busy"), ("internal error", "internal")):
        if words in message:
            return kind
    return message[:60]


class Client:
    """One client thread's requests and what it knows they did."""

    def __init__(self, slot: int, ports: list[int], tally: Tally, seed: int) -> None:
        self.slot, self.ports, self.tally = slot, ports, tally
        self.rng = random.Random(seed)
        self.http = httpx.Client(timeout=60)
        self.parties: list[Party] = []
        self.transactions: list[int] = []
        self.claim = 0
        self.in_list: dict[int, bool | None] = {}  # party -> in the claim's list (None: unknown)
        self.counter = itertools.count(slot * 1_000_000 + 1)  # identifiers no other client uses
        self.refused = False  # the last request answered that nothing was written

    def post(self, op: str, query: str) -> dict[str, Any] | None:
        """The response's data, or None (the error is tallied by kind)."""
        port = self.rng.choice(self.ports)
        t = time.perf_counter()
        error: str | None = None
        data = None
        try:
            response = self.http.post(f"http://127.0.0.1:{port}/graphql", json={"query": query})
            body = response.json()
            if response.status_code != 200:
                error = f"HTTP {response.status_code} {_kind(body['errors'][0]['message'])}"
                self.refused = NOTHING_WRITTEN in body["errors"][0]["message"] or response.status_code == 503
            elif "errors" in body:
                error = _kind(body["errors"][0]["message"])
                self.refused = NOTHING_WRITTEN in body["errors"][0]["message"]
            else:
                data = body["data"]
        except httpx.HTTPError as exc:
            error, self.refused = type(exc).__name__, False
        self.tally.add(op, time.perf_counter() - t, error)
        return data

    def start(self) -> None:
        while self.claim == 0:
            data = self.post(
                "create",
                f'mutation {{ createClaim(input: {{claimIdentifier: {self.slot}, claimTypeCode: "SOAK", '
                f'timestamp: "{STAMP}"}}) {{ id }} }}',
            )
            if data:
                self.claim = decode(data["createClaim"]["id"])

    def step(self) -> None:
        op = self.rng.choices(["read", "create", "list", "update", "delete"], [4, 2, 2, 2, 1])[0]
        claim = encode(self.claim)
        if op == "read":
            self.post(
                "read",
                f'{{ claim(id: "{claim}") {{ claimIdentifier '
                "parties: partiesConnection(first: 10) { totalCount edges { node { partyIdentifier } } } } }",
            )
        elif (op == "create" and self.rng.random() < 0.3) and self.parties:
            identifier = next(self.counter)
            data = self.post(
                "create",
                f'mutation {{ createTransaction(input: {{financialTransactionIdentifier: "FT-{identifier}", '
                f'timestamp: "{STAMP}", claim: "{claim}", amount: "1.50"}}) {{ id }} }}',
            )
            if data:
                self.transactions.append(decode(data["createTransaction"]["id"]))
        elif op == "create" or not self.parties:
            identifier = next(self.counter)
            data = self.post(
                "create",
                f"mutation {{ createParty(input: {{partyIdentifier: {identifier}, "
                f'timestamp: "{STAMP}"}}) {{ id }} }}',
            )
            if data:
                self.parties.append(Party(decode(data["createParty"]["id"]), {identifier}))
        else:
            party = self.rng.choice([p for p in self.parties if p.deleted is False] or [None])
            if party is None:
                return
            if op == "list":
                party.listed = True
                add = not self.in_list.get(party.uid, False)
                verb = "add" if add else "remove"
                ok = self.post(
                    "list",
                    f'mutation {{ {verb}ClaimParties(id: "{claim}", ids: ["{encode(party.uid)}"]) '
                    "{ claimIdentifier } }",
                )
                if ok:
                    self.in_list[party.uid] = add
                elif not self.refused:
                    self.in_list[party.uid] = None
            elif op == "update":
                identifier = next(self.counter)
                ok = self.post(
                    "update",
                    f'mutation {{ updateParty(id: "{encode(party.uid)}", '
                    f"input: {{partyIdentifier: {identifier}}}) {{ id }} }}",
                )
                if ok:
                    party.identifiers = {identifier}
                elif not self.refused:
                    party.identifiers.add(identifier)
            elif not party.listed:
                ok = self.post("delete", f'mutation {{ deleteParty(id: "{encode(party.uid)}") }}')
                if ok:
                    party.deleted = True
                elif not self.refused:
                    party.deleted = None

    def run(self, until: float) -> None:
        self.start()
        while time.monotonic() < until:
            self.step()
        self.http.close()


def verify(root: Path, clients: list[Client]) -> dict[str, int]:
    with ShardStore(root) as store:
        assert {shard: store.integrity_check(shard) for shard in store.shards()} == dict.fromkeys(
            store.shards(), "ok"
        )
        graph = Graph(store)
        checked = Counter()
        for client in clients:
            assert graph.get_node(client.claim, "Claim") is not None, "an acknowledged claim was lost"
            for party in client.parties:
                node = graph.get_node(party.uid, "Party")
                if party.deleted:
                    assert node is None, f"party {party.uid}: acknowledged delete undone"
                    checked["deleted"] += 1
                    continue
                if party.deleted is None and node is None:
                    continue
                assert node is not None, f"party {party.uid}: acknowledged create lost"
                assert node["identifier"] in party.identifiers, f"party {party.uid}: acknowledged update lost"
                checked["parties"] += 1
            for uid in client.transactions:
                # The reference its create wrote resolves.
                node = graph.get_node(uid, "Transaction")
                assert node is not None, f"transaction {uid}: acknowledged create lost"
                assert node["claim"] == client.claim and store.get(TYPE_SHARD, node["claim"]) == "Claim"
                checked["transactions"] += 1
            listed = store.list_page("claim_parties", client.claim, 0, 100_000)
            for uid, member in client.in_list.items():
                if member is not None:
                    assert (uid in listed) == member, f"list edit of {uid} lost"
            # Every list entry points at an existing Party.
            types = store.get_many(TYPE_SHARD, listed)
            assert all(types.get(uid) == "Party" for uid in listed), "a list entry points at no Party"
            checked["list entries"] += len(listed)
        # The graph invariants over the whole store, whatever process wrote it.
        assert dangling(store) == [], "a dangling reference"
        assert [str(m) for m in check_links(lambda: store_records(store))] == [], "an inverse pair disagrees"
    return dict(checked)


def soak(root: Path, servers: int, clients: int, seconds: float) -> None:
    root.mkdir()
    fleet = Servers(root, servers)
    try:
        fleet.wait_ready()
        tally = Tally()
        workers = [Client(slot, fleet.ports, tally, seed=slot) for slot in range(1, clients + 1)]
        until = time.monotonic() + seconds
        threads = [threading.Thread(target=w.run, args=(until,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        fleet.stop()
    checked = verify(root, workers)
    print(f"\n{servers} servers, {clients} clients, {seconds:.0f} s: checked {checked}")
    for op, samples in sorted(tally.latencies.items()):
        ordered = sorted(samples)
        p50, p99 = ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        print(f"  {op:6} {len(ordered):6} requests  p50 {p50 * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms")
    print(f"  errors by kind: {dict(tally.errors) or 'none'}")
    assert sum(map(len, tally.latencies.values())) > 10 * clients  # the load ran
    assert not [
        e for e in tally.errors if e.split(": ", 1)[1] not in ("busy", "deadline", "HTTP 503 deadline")
    ]


@pytest.mark.slow
def test_many_servers_on_one_store_lose_nothing(tmp_path: Path) -> None:
    soak(tmp_path / "store", servers=3, clients=4, seconds=3)


@pytest.mark.long
def test_many_servers_on_one_store_long(tmp_path: Path) -> None:
    soak(tmp_path / "store", servers=4, clients=8, seconds=60)
