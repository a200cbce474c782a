"""AWS Lambda entry point of the GraphQL API (Function URL, API Gateway HTTP API or REST API).

Everything is built at import, during the Lambda init phase, and reused by every warm invocation
of the execution environment: the store (whose SQLite connections, or DynamoDB client, stay open),
the schema and the document cache.

The store is the EFS mount's shards, at ``MOUNT_PATH`` (default ``/mnt/efs-sqlite``), which must
exist, so a missing mount fails the init with a clear error instead of serving an empty store; or,
when ``DYNAMODB_TABLE`` names a table, that DynamoDB table (boto3, which the Lambda runtime
provides, loads only then). On DynamoDB a request with the header ``x-efs-ops: 1`` gets its calls
and capacity units. Each request's deadline is the invocation's remaining
time less a margin (:func:`~efs_sqlite.app.lambda_deadline`): a request that would outlast it answers
503. On EFS the init also sweeps the super-journals that an environment killed mid-commit left
behind (:meth:`~efs_sqlite.store.ShardStore.sweep_super_journals`). The init's objects are frozen out of
the garbage collector's later work.
"""

from __future__ import annotations

import gc
import os

from mangum import Mangum

from efs_sqlite.app import GRAPHQL_RESPONSE, create_app, lambda_deadline

MOUNT_PATH = os.environ.get("MOUNT_PATH", "/mnt/efs-sqlite")
DYNAMODB_TABLE = os.environ.get("DYNAMODB_TABLE")

if DYNAMODB_TABLE:
    from efs_sqlite.dynamodb import DynamoStore

    store = DynamoStore(DYNAMODB_TABLE)
else:
    from efs_sqlite.store import ShardStore

    store = ShardStore(MOUNT_PATH, create=False)
    # An environment killed mid-commit (at its timeout) may have left a super-journal no journal names.
    store.sweep_super_journals()
app = create_app(store, deadline=lambda_deadline())
# Bodies of these types go back as text, the rest base64-encoded: Mangum's own list, which lacks
# the GraphQL-over-HTTP media type.
TEXT_TYPES = ["text/", "application/json", "application/javascript", "application/xml", GRAPHQL_RESPONSE]
handler = Mangum(app, lifespan="off", text_mime_types=TEXT_TYPES)
# What the init built (modules, schema, app, store) lives as long as the environment: frozen out of
# every later collection, which then walks only a request's objects, not the init's ~40,000
# (docs/SOURCES.md#python-gc-freeze).
gc.freeze()
