"""The GraphiQL IDE that ``GET /graphql`` shows a browser, served offline from the package.

The page loads GraphiQL and React from :data:`ASSETS` (``efs_sqlite/static/graphiql``, how they were
obtained is in its README), never from a CDN: the machines that run the app may have no internet.
Its URLs are relative, so the page works under any path prefix (an API Gateway stage): the assets
are at ``graphiql/`` beside the endpoint, and GraphiQL posts to the very path it was loaded from.
``?query=...`` and ``?variables=...`` in the page's URL fill the editors (a link to a query).

>>> "graphiql/graphiql.min.js" in PAGE
True
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ASSETS", "ASSETS_PATH", "PAGE"]

#: The folder of the vendored GraphiQL, React and ReactDOM builds and their licenses.
ASSETS = Path(__file__).resolve().parent / "static" / "graphiql"
#: Where the app serves :data:`ASSETS`, beside ``/graphql``.
ASSETS_PATH = "/graphiql"

#: The HTML of the IDE. GraphiQL asks for the spec's media type first (status codes carry request
#: errors) and shows the body whatever the status.
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>efs-sqlite GraphiQL</title>
<link rel="stylesheet" href="graphiql/graphiql.min.css">
<style>body { margin: 0; } #graphiql { height: 100dvh; }</style>
</head>
<body>
<div id="graphiql">Loading GraphiQL...</div>
<script src="graphiql/react.production.min.js"></script>
<script src="graphiql/react-dom.production.min.js"></script>
<script src="graphiql/graphiql.min.js"></script>
<script>
const params = new URLSearchParams(window.location.search);
const fetcher = GraphiQL.createFetcher({
  url: window.location.pathname,
  headers: { accept: "application/graphql-response+json, application/json;q=0.9" },
});
ReactDOM.createRoot(document.getElementById("graphiql")).render(
  React.createElement(GraphiQL, {
    fetcher,
    defaultQuery: "{\\n  __typename\\n}\\n",
    query: params.get("query") ?? undefined,
    variables: params.get("variables") ?? undefined,
  }),
);
</script>
</body>
</html>
"""
