"""AWS Lambda entry point of the GraphQL API (Function URL, API Gateway HTTP API or REST API).

Everything is built at import, during the Lambda init phase, and reused by every warm invocation
of the execution environment: the store (whose SQLite connections stay open), the schema and the
document cache. The store's root is the EFS mount, ``MOUNT_PATH`` (default ``/mnt/efs-sqlite``);
it must exist, so a missing mount fails the init with a clear error instead of serving an empty
store.
"""

from __future__ import annotations

import os

from mangum import Mangum

from efs_sqlite.app import GRAPHQL_RESPONSE, create_app
from efs_sqlite.store import ShardStore

MOUNT_PATH = os.environ.get("MOUNT_PATH", "/mnt/efs-sqlite")

store = ShardStore(MOUNT_PATH, create=False)
app = create_app(store)
# Bodies of these types go back as text, the rest base64-encoded: Mangum's own list, which lacks
# the GraphQL-over-HTTP media type.
TEXT_TYPES = ["text/", "application/json", "application/javascript", "application/xml", GRAPHQL_RESPONSE]
handler = Mangum(app, lifespan="off", text_mime_types=TEXT_TYPES)
