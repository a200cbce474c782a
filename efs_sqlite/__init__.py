"""efs-sqlite: a graph store of SQLite shards on Amazon EFS, served by GraphQL on AWS Lambda.

The product's API is re-exported here (the Lambda entry points import only these names); the
measurements behind the research notebooks are the :mod:`efs_sqlite.experiments` subpackage
(``from efs_sqlite import experiments``), loaded on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

from efs_sqlite import errors, uid
from efs_sqlite.deadline import Deadline
from efs_sqlite.errors import *  # noqa: F403 (the whole error tree, as errors.__all__ lists it)
from efs_sqlite.hooks import StoreHook, StoreOp
from efs_sqlite.lock_quota import LockQuota
from efs_sqlite.model import INSURANCE, TYPE_SHARD, Field, Inverse, Model, NodeType
from efs_sqlite.store import (
    Ref,
    ShardStore,
    WriteBatch,
    is_network_filesystem,
    validate_shard,
)
from efs_sqlite.uid import (
    MAX_UID,
    Generator,
    check_id,
    decode,
    encode,
    from_mediagone,
    from_timestamp,
    generate,
    timestamp,
    to_mediagone,
)

# Heavier parts (graphene, Faker, boto3, the experiments) and what no request needs (the EFS model,
# the cost model) load on first use, so that `import efs_sqlite` stays cheap for the Lambda handlers
# and the CLI; `from efs_sqlite import GraphQLAPI` works as usual.
_LAZY: dict[str, str] = {
    **dict.fromkeys(
        ("FAULT_KINDS", "LOW_PROFILES", "PROFILES", "EFSModel", "Fault", "LatencyProfile", "Ops"),
        "efs_sqlite.efs_model",
    ),
    **dict.fromkeys(("LinuxNFS", "WorstCase"), "efs_sqlite.nfs_client"),
    **dict.fromkeys(
        (
            "BURSTING",
            "DYNAMODB",
            "EFS_IOPS",
            "EFS_METERING",
            "EFS_PRICES",
            "LAMBDA",
            "Cost",
            "RequestProfile",
            "cost_per_million",
            "dynamodb_cost",
            "efs_cost",
            "efs_metered_bytes",
            "lambda_cost",
            "max_requests_per_second",
            "monthly_storage_cost",
        ),
        "efs_sqlite.costs",
    ),
    "GraphQLAPI": "efs_sqlite.graphql",
    "Limits": "efs_sqlite.graphql",
    "build_schema": "efs_sqlite.graphql",
    "schema_sdl": "efs_sqlite.graphql",
    "create_app": "efs_sqlite.app",
    "Graph": "efs_sqlite.graph",
    "parse_id": "efs_sqlite.graph",
    "SCALES": "efs_sqlite.data",
    "Scale": "efs_sqlite.data",
    "generate_dataset": "efs_sqlite.data",
    "generate_records": "efs_sqlite.data",
    "read_manifest": "efs_sqlite.data",
    "read_records": "efs_sqlite.data",
    "LoadSummary": "efs_sqlite.loader",
    "load": "efs_sqlite.loader",
    "load_path": "efs_sqlite.loader",
    "validate_record": "efs_sqlite.loader",
    "dump": "efs_sqlite.loader",
    "StoreBackend": "efs_sqlite.backend",
    "DynamoStore": "efs_sqlite.dynamodb",
    "Calibration": "efs_sqlite.calibration",
    "calibrate": "efs_sqlite.calibration",
    "load_profile": "efs_sqlite.calibration",
    "save_profile": "efs_sqlite.calibration",
    "aws": "efs_sqlite.aws",
    "experiments": "efs_sqlite.experiments",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = importlib.import_module(module)
    if module.rsplit(".", 1)[1] != name:
        value = getattr(value, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    *_LAZY,
    *errors.__all__,
    "INSURANCE",
    "MAX_UID",
    "TYPE_SHARD",
    "Deadline",
    "Field",
    "Generator",
    "Inverse",
    "LockQuota",
    "Model",
    "NodeType",
    "Ref",
    "ShardStore",
    "StoreHook",
    "StoreOp",
    "WriteBatch",
    "__version__",
    "check_id",
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
