"""GraphiQL at ``GET /graphql``: the page and its assets served by the app (no CDN), and the IDE in
headless Chromium against ``efs-sqlite serve``: it renders, loads the schema by introspection, runs
a query and shows the answer, with no request leaving the server.

``GRAPHIQL_SCREENSHOT=path.png`` keeps the browser's screenshot there (``make demo`` does)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from _node import node_packages, run_node  # noqa: F401  (node_packages: the fixture)
from test_app import call, server  # noqa: F401  (server: `efs-sqlite serve` on 127.0.0.1)

from efs_sqlite.app import create_app
from efs_sqlite.aws.fakes import LambdaContext, function_url_event, import_handler
from efs_sqlite.graphiql import ASSETS, ASSETS_PATH, PAGE

#: What Chromium sends when it navigates to a page.
BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"}
CONTENT_TYPES = {".js": "javascript", ".css": "text/css"}


def test_a_browser_gets_the_page_and_every_asset_it_names(insurance: Any) -> None:
    app = create_app(insurance.store)
    for params in ({}, {"query": "{ __typename }"}):  # a link to a query opens the IDE too
        r = call(app, "GET", "/graphql", params=params, headers=BROWSER)
        assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
        assert r.text == PAGE and r.headers["vary"] == "Accept"
    assert not re.search(r"(src|href)=\"(https?:)?//", PAGE), "the page must load nothing from elsewhere"
    named = re.findall(r"(?:src|href)=\"graphiql/([^\"]+)\"", PAGE)
    assert len(named) == 4
    for name in named:
        r = call(app, "GET", f"{ASSETS_PATH}/{name}")
        assert r.status_code == 200 and CONTENT_TYPES[Path(name).suffix] in r.headers["content-type"], name
        assert r.content == (ASSETS / name).read_bytes()
    licenses = {p.name for p in (ASSETS / "licenses").iterdir()}
    assert licenses == {"graphiql.LICENSE", "react.LICENSE", "react-dom.LICENSE"}
    r = call(app, "GET", f"{ASSETS_PATH}/nope.js")
    assert r.status_code == 404 and r.json() == {"errors": [{"message": "Not Found"}]}


def test_the_lambda_serves_the_ide_as_text(insurance: Any) -> None:
    """Through Mangum (a Function URL event) the page and its assets come back as text bodies."""
    insurance.store.close()
    lam = import_handler("graphql", insurance.root)
    try:
        for path, expected in (("/graphql", PAGE), (f"{ASSETS_PATH}/graphiql.min.css", None)):
            event = function_url_event(method="GET", path=path, headers=BROWSER)
            answer = lam.handler(event, LambdaContext("efs-sqlite-graphql"))
            assert answer["statusCode"] == 200 and not answer["isBase64Encoded"], path
            assert answer["body"] == (expected or (ASSETS / Path(path).name).read_text(encoding="utf-8"))
    finally:
        lam.store.close()


def test_graphiql_in_headless_chromium(
    server: str,  # noqa: F811
    insurance: Any,
    node_packages: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    query = "query Claim($id: ID!) {\n  claim(id: $id) {\n    claimIdentifier\n  }\n}"
    variables = json.dumps({"id": insurance.ids[insurance.claim]})
    url = f"{server}/graphql?{urlencode({'query': query, 'variables': variables})}"
    screenshot = Path(os.environ.get("GRAPHIQL_SCREENSHOT") or tmp_path / "graphiql.png").resolve()
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    [report] = run_node("graphiql.mjs", url, '"claimIdentifier": 4242', str(screenshot))
    shown = json.dumps(report, indent=1)
    assert "error" not in report, shown
    assert report["introspected"], shown  # the schema came by introspection ...
    assert "Claim" in report["docs"] and "mutation: Mutation" in report["docs"], shown  # ... into the IDE
    assert '"claimIdentifier": 4242' in report["answer"], shown  # the query ran, its answer shown
    assert report["elsewhere"] == [] and report["failed"] == [] and report["pageErrors"] == [], shown
    assert screenshot.read_bytes().startswith(b"\x89PNG")
    print(f"\nGraphiQL answered in headless Chromium; screenshot: {screenshot}")
