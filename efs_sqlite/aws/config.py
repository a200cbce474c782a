"""A stack's configuration (:class:`StackConfig`) and its outputs once deployed (:class:`Stack`).

>>> config = StackConfig("demo", region="us-east-1")
>>> config.graphql_function, config.mount_path
('efs-sqlite-demo-graphql', '/mnt/efs-sqlite')
>>> StackConfig("demo", backend="dynamodb").functions, StackConfig("demo").table_name
(('graphql',), 'efs-sqlite-demo-table')
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

from efs_sqlite.aws.target import FUNCTIONS, MACHINES, Arch, check_choice
from efs_sqlite.lock_quota import EFS

__all__ = ["BACKENDS", "Backend", "Stack", "StackConfig"]

Backend = Literal["efs", "dynamodb"]
#: Where a stack keeps its data: SQLite shards on EFS, or one DynamoDB table.
BACKENDS: tuple[Backend, ...] = ("efs", "dynamodb")

_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
_MOUNT_PATH = re.compile(r"^/mnt/[a-zA-Z0-9-_.]+$")


@dataclass(frozen=True)
class StackConfig:
    """Parameters of one deployment; every name derives from ``name``.

    ``region`` None means the session's region. Leave ``subnet_ids`` empty to get a VPC of your
    own with private subnets in ``az_count`` zones (``availability_zones`` picks them).
    ``reserved_concurrency`` applies to the GraphQL function, ``loader_reserved_concurrency`` to
    the loader (None = unreserved). ``public=True`` makes the Function URL unauthenticated.
    ``backend="dynamodb"`` deploys the GraphQL function on an on-demand DynamoDB table instead:
    no VPC, no file system, no loader function (load from where you deploy); the EFS and network
    parameters then do not apply.
    """

    name: str
    region: str | None = None
    backend: Backend = "efs"
    throughput_mode: Literal["bursting", "elastic", "provisioned"] = "elastic"
    provisioned_mibps: float | None = None
    arch: Arch = "x86_64"
    memory_mb: int = 1024
    timeout_s: int = 30
    reserved_concurrency: int | None = None
    loader_memory_mb: int = 1024
    loader_timeout_s: int = 300
    loader_reserved_concurrency: int | None = None
    public: bool = False
    subnet_ids: tuple[str, ...] = ()
    availability_zones: tuple[str, ...] = ()
    az_count: int = 2
    vpc_cidr: str = "10.42.0.0/16"
    mount_path: str = "/mnt/efs-sqlite"
    posix_uid: int = 1001
    posix_gid: int = 1001
    root_directory: str = "/efs-sqlite"
    root_permissions: str = "750"
    log_retention_days: int = 14
    poll_interval_s: float = 5.0
    wait_timeout_s: float = 900.0
    #: How long a resource created moments ago may stay invisible to other calls and services
    #: (IAM and EC2 are eventually consistent).
    propagation_timeout_s: float = 180.0
    #: Lambda releases a deleted VPC function's network interfaces slowly (reported: 20+ minutes).
    eni_timeout_s: float = 2700.0

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"stack name {self.name!r}: 1-32 lowercase letters, digits and inner hyphens")
        check_choice("backend", self.backend, BACKENDS)
        check_choice("throughput_mode", self.throughput_mode, ("bursting", "elastic", "provisioned"))
        check_choice("arch", self.arch, MACHINES)
        if (self.throughput_mode == "provisioned") != (self.provisioned_mibps is not None):
            raise ValueError("provisioned_mibps is required with, and only with, 'provisioned'")
        if self.provisioned_mibps is not None and self.provisioned_mibps < 1:
            raise ValueError("provisioned_mibps must be at least 1 MiB/s")
        for label, memory, timeout in (
            ("", self.memory_mb, self.timeout_s),
            ("loader_", self.loader_memory_mb, self.loader_timeout_s),
        ):
            if not 128 <= memory <= 10240:
                raise ValueError(f"{label}memory_mb must be 128..10240, not {memory}")
            if not 1 <= timeout <= 900:
                raise ValueError(f"{label}timeout_s must be 1..900 seconds, not {timeout}")
        for reserved in (self.reserved_concurrency, self.loader_reserved_concurrency):
            if reserved is not None and reserved < 0:
                raise ValueError("reserved concurrency cannot be negative")
        if not _MOUNT_PATH.fullmatch(self.mount_path):
            raise ValueError(f"mount_path {self.mount_path!r} must match {_MOUNT_PATH.pattern}")
        if not re.fullmatch(r"/[A-Za-z0-9._/-]*", self.root_directory):
            raise ValueError(f"root_directory {self.root_directory!r} must be an absolute path")
        if not re.fullmatch(r"[0-7]{3,4}", self.root_permissions):
            raise ValueError(f"root_permissions {self.root_permissions!r} must be octal, e.g. 750")
        if self.subnet_ids and self.availability_zones:
            raise ValueError("give subnet_ids or availability_zones, not both")
        if not self.subnet_ids and self.az_count < 2:
            raise ValueError("az_count must be at least 2 (a mount target per zone, for failover)")
        ipaddress.ip_network(self.vpc_cidr)

    def check_lock_quota(self) -> None:
        """Raise :class:`~efs_sqlite.errors.LockQuotaExceeded` if the functions' reserved
        concurrency together passes EFS's per-file lock quota (170 environments): every
        environment of both functions may hold a lock on one shard (the ``_type`` shard) at once.
        :func:`~efs_sqlite.aws.deploy` calls it before any call to AWS. A DynamoDB stack takes no
        file locks: nothing to check.

        >>> StackConfig("demo", reserved_concurrency=100, loader_reserved_concurrency=71).check_lock_quota()
        Traceback (most recent call last):
        ...
        efs_sqlite.errors.LockQuotaExceeded: the functions' reserved concurrency: 171 processes, ...
        """
        if self.backend != "efs":
            return
        reserved = (self.reserved_concurrency or 0) + (self.loader_reserved_concurrency or 0)
        EFS.check_processes(reserved, "the functions' reserved concurrency")

    @property
    def prefix(self) -> str:
        return f"efs-sqlite-{self.name}"

    @property
    def graphql_function(self) -> str:
        return f"{self.prefix}-graphql"

    @property
    def loader_function(self) -> str:
        return f"{self.prefix}-loader"

    @property
    def role_name(self) -> str:
        return f"{self.prefix}-lambda"

    @property
    def table_name(self) -> str:
        """The table of a DynamoDB stack."""
        return f"{self.prefix}-table"

    @property
    def functions(self) -> tuple[str, ...]:
        """The stack's functions: a DynamoDB stack has the GraphQL function only."""
        return FUNCTIONS if self.backend == "efs" else ("graphql",)

    def function_name(self, function: str) -> str:
        return f"{self.prefix}-{function}"


@dataclass(frozen=True)
class Stack:
    """A deployed stack: what :func:`~efs_sqlite.aws.deploy` and :func:`~efs_sqlite.aws.find_stack` return.

    A DynamoDB stack has a table (``table_name``, ``table_arn``) and leaves the network, file
    system and loader fields empty.
    """

    name: str
    region: str
    vpc_id: str
    subnet_ids: tuple[str, ...]
    functions_security_group: str
    efs_security_group: str
    file_system_id: str
    access_point_id: str
    access_point_arn: str
    role_arn: str
    graphql_function: str
    loader_function: str
    function_url: str
    auth_type: str
    backend: Backend = "efs"
    table_name: str = ""
    table_arn: str = ""

    @property
    def graphql_url(self) -> str:
        """The GraphQL endpoint behind the Function URL."""
        return self.function_url.rstrip("/") + "/graphql"
