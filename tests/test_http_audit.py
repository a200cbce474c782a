"""The GraphQL-over-HTTP spec's own server audits (``graphql-http``'s ``serverAudits``, run by node)
against ``efs-sqlite serve`` on 127.0.0.1: every MUST and every SHOULD passes; the MAYs not taken
are reported. See ``docs/SOURCES.md#graphql-over-http``."""

from __future__ import annotations

from collections import Counter
from typing import Any

from _node import node_packages, run_node  # noqa: F401  (node_packages: the fixture)
from test_app import server  # noqa: F401  (the fixture: `efs-sqlite serve` on 127.0.0.1)


def test_the_spec_audits_pass_every_must_and_should(server: str, node_packages: Any) -> None:  # noqa: F811
    results = run_node("audit.mjs", f"{server}/graphql")
    levels = Counter(r["name"].split()[0] for r in results)
    assert levels["MUST"] >= 10 and levels["SHOULD"] >= 20, levels  # the audits ran, all of them
    # graphql-http marks a failed MUST "error", a failed SHOULD "warn", a MAY not taken "notice".
    failed = [f"{r['id']} {r['name']}: {r['reason']}" for r in results if r["status"] in ("error", "warn")]
    assert not failed, "audits failed:\n" + "\n".join(failed)
    assert {r["status"] for r in results} <= {"ok", "notice"}
    not_taken = [f"{r['id']} {r['name']}" for r in results if r["status"] == "notice"]
    print(
        f"\n{len(results)} audits ({dict(levels)}): every MUST and SHOULD passes; MAYs not taken: {not_taken}"
    )
