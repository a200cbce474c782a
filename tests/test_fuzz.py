"""Fuzzing the API with hypothesis: documents generated from the schema itself, and values
round-tripping through the whole stack (JSON -> GraphQL -> model -> store -> GraphQL -> JSON).

Ids and values at the store level are fuzzed in ``test_uid.py`` and ``test_store.py``; this file
fuzzes what only the API sees. The generator walks the graphql-core schema, so a field or
argument added to the model is fuzzed without touching this file. Every generated document is
valid against the schema (checked), while its values are anything the types allow: ids of the
wrong type or no node, pages out of range, cursors of other lists, text of every kind. The
answer must never be a 5xx, a stack trace or an ``internal error``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
from graphql import (
    GraphQLArgument,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLOutputType,
    ValuesOfCorrectTypeRule,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    parse,
    specified_rules,
    validate,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from efs_sqlite.app import GRAPHQL_RESPONSE, create_app
from efs_sqlite.graphql import GraphQLAPI, build_schema
from efs_sqlite.uid import ALPHABET, LENGTH

SCHEMA = build_schema().graphql_schema
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
#: Validation without the rule that parses literal values, which may be anything of their type.
STRUCTURE_RULES = [rule for rule in specified_rules if rule is not ValuesOfCorrectTypeRule]
_TRACE = re.compile(r"Traceback|File \"[^\"]*\", line \d+|site-packages")


# -- GraphQL literals by type --------------------------------------------------------------------


def string(text: str) -> str:
    """A GraphQL string literal (JSON's escapes are a subset of GraphQL's)."""
    return json.dumps(text, ensure_ascii=False)


def cursors() -> st.SearchStrategy[str]:
    return st.integers(-2, 2_000).map(lambda n: base64.b64encode(f"arrayconnection:{n}".encode()).decode())


def scalars(ids: list[str]) -> dict[str, st.SearchStrategy[str]]:
    """Literal text for each scalar type: mostly well-formed values, some not."""
    random_ids = st.text(ALPHABET, min_size=LENGTH, max_size=LENGTH)
    return {
        "ID": st.one_of(*[st.sampled_from(ids)] * 3, random_ids, st.text(max_size=14)).map(string),
        "Int": st.one_of(st.integers(-3, 1_100), st.integers(-(2**31), 2**31 - 1)).map(str),
        "String": st.one_of(cursors(), st.text(max_size=40)).map(string),
        "Boolean": st.sampled_from(["true", "false"]),
        "Float": st.floats(allow_nan=False, allow_infinity=False).map(repr),
        "DateTime": st.one_of(
            st.datetimes(timezones=st.none() | st.just(UTC)).map(datetime.isoformat), st.text(max_size=20)
        ).map(string),
        "Decimal": st.one_of(
            st.decimals(min_value=-(10**12), max_value=10**12, places=2).map(str),
            st.decimals(allow_nan=True, allow_infinity=True).map(str),
            st.text(max_size=12),
        ).map(string),
    }


def literal(t: GraphQLInputType, leaves: dict[str, st.SearchStrategy[str]]) -> st.SearchStrategy[str]:
    if is_non_null_type(t):
        return literal(t.of_type, leaves)  # type: ignore[union-attr]
    if is_list_type(t):
        inner = literal(t.of_type, leaves)  # type: ignore[union-attr]
        return st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]")
    if isinstance(t, GraphQLInputObjectType):
        return input_object(t, leaves)
    return leaves[get_named_type(t).name]


def input_object(
    t: GraphQLInputObjectType, leaves: dict[str, st.SearchStrategy[str]]
) -> st.SearchStrategy[str]:
    @st.composite
    def build(draw: st.DrawFn) -> str:
        parts = []
        for name, f in t.fields.items():
            if is_non_null_type(f.type):
                parts.append(f"{name}: {draw(literal(f.type, leaves))}")
            elif draw(st.booleans()):
                # An explicit null clears an optional field (a list: empties it).
                value = "null" if draw(st.integers(0, 9)) == 0 else draw(literal(f.type, leaves))
                parts.append(f"{name}: {value}")
        return "{" + ", ".join(parts) + "}"

    return build()


def arguments(
    args: dict[str, GraphQLArgument], leaves: dict[str, st.SearchStrategy[str]]
) -> st.SearchStrategy[str]:
    @st.composite
    def build(draw: st.DrawFn) -> str:
        parts = [
            f"{name}: {draw(literal(arg.type, leaves))}"
            for name, arg in args.items()
            if is_non_null_type(arg.type) or draw(st.booleans())
        ]
        return f"({', '.join(parts)})" if parts else ""

    return build()


# -- selections ----------------------------------------------------------------------------------


def selection(
    t: GraphQLOutputType, depth: int, prefix: str, leaves: dict[str, st.SearchStrategy[str]]
) -> st.SearchStrategy[str]:
    """A selection set on ``t``, at most ``depth`` fields deep. Every field gets an alias unique
    in the document, so no two selections ever conflict."""

    @st.composite
    def build(draw: st.DrawFn) -> str:
        named = get_named_type(t)
        fields: list[tuple[str, GraphQLField]] = list(named.fields.items())  # type: ignore[union-attr]
        if depth <= 1:
            fields = [(n, f) for n, f in fields if is_leaf_type(get_named_type(f.type))]
        chosen = draw(st.lists(st.sampled_from(fields), min_size=1, max_size=3)) if fields else []
        parts = ["__typename"]
        for i, (name, f) in enumerate(chosen):
            alias = f"{prefix}{i}"
            sub = (
                ""
                if is_leaf_type(get_named_type(f.type))
                else draw(selection(f.type, depth - 1, alias + "_", leaves))
            )
            parts.append(f"{alias}: {name}{draw(arguments(f.args, leaves))} {sub}")
        if is_abstract_type(named):
            for j, possible in enumerate(SCHEMA.get_possible_types(named)):  # type: ignore[arg-type]
                if draw(st.booleans()):
                    inner = draw(selection(possible, depth, f"{prefix}{possible.name}{j}_", leaves))
                    parts.append(f"... on {possible.name} {inner}")
        return "{ " + " ".join(parts) + " }"

    return build()


def documents(ids: list[str]) -> st.SearchStrategy[str]:
    """A query (mostly) or a mutation on the schema's root types."""
    leaves = scalars(ids)
    roots = [SCHEMA.query_type] * 4 + [SCHEMA.mutation_type]

    @st.composite
    def build(draw: st.DrawFn) -> str:
        root = draw(st.sampled_from(roots))
        body = draw(selection(root, draw(st.integers(2, 12)), "f", leaves))
        return ("mutation " if root is SCHEMA.mutation_type else "query ") + body

    return build()


# -- the properties --------------------------------------------------------------------------------


def call(app: Any, payload: dict[str, Any]) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://fuzz") as client:
            # The spec's media type, whose status codes tell a refused request (400) from one that ran.
            return await client.post("/graphql", json=payload, headers={"accept": GRAPHQL_RESPONSE})

    return asyncio.run(go())


def test_random_valid_documents_never_get_a_5xx(insurance: Any) -> None:
    app = create_app(insurance.store)
    ids = list(insurance.ids.values())
    seen: Counter[str] = Counter()

    @FUZZ
    @given(doc=documents(ids))
    def run(doc: str) -> None:
        # The generator makes valid documents; only a literal's value may be refused (a bad date).
        assert validate(SCHEMA, parse(doc), STRUCTURE_RULES) == [], doc
        r = call(app, {"query": doc})
        where = f"{doc}\n-> {r.status_code} {r.text[:500]}"
        assert r.status_code < 500, where
        assert not _TRACE.search(r.text), where
        body = r.json()
        assert isinstance(body, dict) and ("data" in body) == (r.status_code == 200), where
        assert r.status_code in (200, 400), where
        messages = [e["message"] for e in body.get("errors", [])]
        assert "internal error" not in messages, where
        seen[f"{r.status_code}{' with errors' if messages else ''}"] += 1

    run()
    for shard in insurance.store.shards():
        assert insurance.store.integrity_check(shard) == "ok"
    print(f"\nrandom documents: {dict(seen)}")
    assert seen["200"] > 0  # some documents fully answered: the generator is not all noise


def test_compiled_execution_matches_graphql_core_on_random_queries(insurance: Any) -> None:
    """The compiled execution gives exactly graphql-core's answer (data, errors, their paths and
    the order of keys) for any valid query, or hands the query back to graphql-core."""
    ids = list(insurance.ids.values())
    compiled = GraphQLAPI(insurance.store)
    reference = GraphQLAPI(insurance.store, compiled=False)

    leaves = scalars(ids)
    roots = [
        ("claim", SCHEMA.get_type("Claim"), insurance.ids[insurance.claim]),
        ("party", SCHEMA.get_type("Party"), insurance.ids[insurance.parties[0]]),
        ("transaction", SCHEMA.get_type("Transaction"), insurance.ids[insurance.transactions[0]]),
    ]

    @st.composite
    def queries(draw: st.DrawFn) -> str:
        """Half of them a node that exists below a root field of its type, half any query."""
        if draw(st.booleans()):
            return draw(documents(ids).filter(lambda d: d.startswith("query ")))
        field, t, uid = draw(st.sampled_from(roots))
        return f'query {{ {field}(id: "{uid}") {draw(selection(t, draw(st.integers(1, 8)), "f", leaves))} }}'

    @FUZZ
    @given(doc=queries())
    def run(doc: str) -> None:
        expected = reference.execute(doc)
        got = compiled.execute(doc)
        assert json.dumps(got) == json.dumps(expected), doc

    run()
    info = compiled.cache_info()
    answered = info["hits"] + info["misses"] - info["fallbacks"]
    print(f"\nanswered compiled: {answered}, by graphql-core: {info['fallbacks']}")
    assert answered >= 10  # the generator reaches the compiled path, not only its fallback


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
TRANSACTIONS = st.fixed_dictionaries(
    {
        "financialTransactionIdentifier": _TEXT,
        "timestamp": st.datetimes(
            min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
        ),
        "amount": st.decimals(min_value=-(10**15), max_value=10**15, places=2),
    },
    optional={"sourceSystemCode": _TEXT, "serviceTypeCode": _TEXT},
)
CREATE = "mutation($t: TransactionInput!) { createTransaction(input: $t) { id } }"
READ = (
    "query($id: ID!) { transaction(id: $id) { financialTransactionIdentifier timestamp amount"
    " sourceSystemCode serviceTypeCode claim { id } } }"
)


def test_values_round_trip_through_the_api(insurance: Any) -> None:
    """What a client writes with a mutation, it reads back: any text, any UTC datetime in the
    years 1-9999, any 2-place decimal up to 10**15, optional fields absent or present."""
    app = create_app(insurance.store)
    claim = insurance.ids[insurance.claim]

    @FUZZ
    @given(t=TRANSACTIONS, offset=st.integers(-23 * 60, 23 * 60))
    def run(t: dict[str, Any], offset: int) -> None:
        # The same instant, written in another zone (a day inside the range keeps it in years 1-9999).
        shown = t["timestamp"].astimezone(timezone(timedelta(minutes=offset)))
        sent = {**t, "timestamp": shown.isoformat(), "amount": str(t["amount"]), "claim": claim}
        created = call(app, {"query": CREATE, "variables": {"t": sent}}).json()
        assert "errors" not in created, (sent, created)
        uid = created["data"]["createTransaction"]["id"]
        got = call(app, {"query": READ, "variables": {"id": uid}}).json()["data"]["transaction"]
        assert got["financialTransactionIdentifier"] == t["financialTransactionIdentifier"]
        assert datetime.fromisoformat(got["timestamp"]) == t["timestamp"]
        assert Decimal(got["amount"]) == t["amount"] and got["amount"] == str(
            t["amount"].quantize(Decimal("0.01"))
        )
        assert got["sourceSystemCode"] == t.get("sourceSystemCode")
        assert got["serviceTypeCode"] == t.get("serviceTypeCode")
        assert got["claim"] == {"id": claim}

    run()
