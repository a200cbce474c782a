"""efs-sqlite: a graph store of SQLite shards on Amazon EFS, served by GraphQL on AWS Lambda.

The public API is re-exported here; notebooks and the Lambda entry points import only these names.
"""

from __future__ import annotations

__version__ = "0.1.0"

from efs_sqlite import uid
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
    "INSURANCE",
    "MAX_UID",
    "TYPE_SHARD",
    "Field",
    "Generator",
    "Model",
    "NodeType",
    "Ref",
    "ShardStore",
    "StoreBusy",
    "StoreError",
    "UIDCollision",
    "ValidationError",
    "WriteBatch",
    "__version__",
    "decode",
    "encode",
    "from_mediagone",
    "from_timestamp",
    "generate",
    "is_network_filesystem",
    "timestamp",
    "to_mediagone",
    "uid",
    "validate_shard",
]
