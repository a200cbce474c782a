"""efs-sqlite: a graph store of SQLite shards on Amazon EFS, served by GraphQL on AWS Lambda.

The public API is re-exported here; notebooks and the Lambda entry points import only these names.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "__version__",
]
