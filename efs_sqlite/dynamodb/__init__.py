"""The DynamoDB backend: the store interface (:class:`~efs_sqlite.backend.StoreBackend`) on one
table, every call counted with its capacity units and modelled latency. One module per concept:

- :mod:`~efs_sqlite.dynamodb.layout`: the items (partition key = node id, sort key = field);
- :mod:`~efs_sqlite.dynamodb.capacity`: read and write units from item sizes, by AWS's rules;
- :mod:`~efs_sqlite.dynamodb.latency`: per call type, p50/p90/p99 from published measurements;
- :mod:`~efs_sqlite.dynamodb.calls`: the calls made, by operation, and ``accounting()`` scopes;
- :mod:`~efs_sqlite.dynamodb.writes`: a grouped write worked out as items, and the limits on writes;
- :mod:`~efs_sqlite.dynamodb.store`: :class:`DynamoStore`;
- :mod:`~efs_sqlite.dynamodb.local`: the local default, an in-process moto server.

boto3 (and moto) load when a store (or the local server) is made, not on import.
"""

from efs_sqlite.dynamodb.calls import Call, CallLog, Calls
from efs_sqlite.dynamodb.local import local_endpoint, local_store
from efs_sqlite.dynamodb.store import DynamoStore, make_client

__all__ = ["Call", "CallLog", "Calls", "DynamoStore", "local_endpoint", "local_store", "make_client"]
