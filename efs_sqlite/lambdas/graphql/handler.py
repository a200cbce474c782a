"""AWS Lambda entry point of the GraphQL API (Function URL, API Gateway HTTP API or REST API).

Everything is built at import, during the Lambda init phase, and reused by every warm invocation
of the execution environment: the store (whose SQLite connections, or DynamoDB client, stay open),
the schema and the document cache.

The store is the EFS mount's shards, at ``MOUNT_PATH`` (default ``/mnt/efs-sqlite``), which must
exist, so a missing mount fails the init with a clear error instead of serving an empty store; or,
when ``DYNAMODB_TABLE`` names a table, that DynamoDB table (boto3, which the Lambda runtime
provides, loads only then). On DynamoDB a request with the header ``x-efs-ops: 1`` gets its calls
and capacity units.
"""

from __future__ import annotations

import os

from mangum import Mangum

from efs_sqlite.app import create_app

MOUNT_PATH = os.environ.get("MOUNT_PATH", "/mnt/efs-sqlite")
DYNAMODB_TABLE = os.environ.get("DYNAMODB_TABLE")

if DYNAMODB_TABLE:
    from efs_sqlite.dynamodb import DynamoStore

    store = DynamoStore(DYNAMODB_TABLE)
    app = create_app(store, accounting=store.accounting)
else:
    from efs_sqlite.store import ShardStore

    store = ShardStore(MOUNT_PATH, create=False)
    app = create_app(store)
handler = Mangum(app, lifespan="off")
