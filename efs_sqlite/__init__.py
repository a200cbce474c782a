"""efs-sqlite: a graph store of SQLite shards on Amazon EFS, served by GraphQL on AWS Lambda.

The public API is re-exported here; notebooks and the Lambda entry points import only these names.
"""

from __future__ import annotations

__version__ = "0.1.0"

from efs_sqlite import uid
from efs_sqlite.costs import (
    BURSTING,
    DYNAMODB,
    EFS_IOPS,
    EFS_METERING,
    EFS_PRICES,
    LAMBDA,
    Cost,
    RequestProfile,
    cost_per_million,
    dynamodb_cost,
    efs_cost,
    efs_metered_bytes,
    lambda_cost,
    max_requests_per_second,
    monthly_storage_cost,
)
from efs_sqlite.efs import FAULT_KINDS, PROFILES, EFSModel, Fault, LatencyProfile, Ops
from efs_sqlite.model import INSURANCE, TYPE_SHARD, Field, Model, NodeType, ValidationError
from efs_sqlite.store import (
    Ref,
    ShardStore,
    StoreBusy,
    StoreError,
    UIDCollision,
    WriteBatch,
    is_network_filesystem,
    validate_shard,
)
from efs_sqlite.uid import (
    MAX_UID,
    Generator,
    decode,
    encode,
    from_mediagone,
    from_timestamp,
    generate,
    timestamp,
    to_mediagone,
)

__all__ = [
    "BURSTING",
    "DYNAMODB",
    "EFS_IOPS",
    "EFS_METERING",
    "EFS_PRICES",
    "FAULT_KINDS",
    "INSURANCE",
    "LAMBDA",
    "MAX_UID",
    "PROFILES",
    "TYPE_SHARD",
    "Cost",
    "EFSModel",
    "Fault",
    "Field",
    "Generator",
    "LatencyProfile",
    "Model",
    "NodeType",
    "Ops",
    "Ref",
    "RequestProfile",
    "ShardStore",
    "StoreBusy",
    "StoreError",
    "UIDCollision",
    "ValidationError",
    "WriteBatch",
    "__version__",
    "cost_per_million",
    "decode",
    "dynamodb_cost",
    "efs_cost",
    "efs_metered_bytes",
    "encode",
    "from_mediagone",
    "from_timestamp",
    "generate",
    "is_network_filesystem",
    "lambda_cost",
    "max_requests_per_second",
    "monthly_storage_cost",
    "timestamp",
    "to_mediagone",
    "uid",
    "validate_shard",
]
