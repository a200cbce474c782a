"""Deploy, tear down and look up a stack: the public operations, in the order AWS needs them.

One *stack* is everything a deployment creates, each resource tagged ``efs-sqlite:stack=<name>``:
the network (:mod:`~efs_sqlite.aws.network`), the file system (:mod:`~efs_sqlite.aws.efs`), the
functions' role (:mod:`~efs_sqlite.aws.iam`) and the functions (:mod:`~efs_sqlite.aws.functions`);
or, with ``StackConfig(backend="dynamodb")``, the table (:mod:`~efs_sqlite.aws.dynamodb`), the
role and the GraphQL function, with no network and no file system.
:func:`deploy` is idempotent (get-or-create, then converge), and :func:`teardown` deletes only
what carries the stack's tag, dependants first.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Mapping
from typing import Any, Literal, overload

import boto3

from efs_sqlite.aws import dynamodb, efs, functions, iam, network
from efs_sqlite.aws.build import BuildResult, build_zip
from efs_sqlite.aws.calls import Call, Calls
from efs_sqlite.aws.config import Stack, StackConfig
from efs_sqlite.aws.target import RUNTIME, RUNTIME_VERSION
from efs_sqlite.errors import DeployError

__all__ = ["deploy", "find_stack", "teardown"]


@overload
def deploy(
    config: StackConfig,
    *,
    build: BuildResult | None = ...,
    session: boto3.Session | None = ...,
    dry_run: Literal[False] = ...,
    table: Mapping[str, Any] | None = ...,
) -> Stack: ...
@overload
def deploy(
    config: StackConfig,
    *,
    build: BuildResult | None = ...,
    session: boto3.Session | None = ...,
    dry_run: Literal[True],
    table: Mapping[str, Any] | None = ...,
) -> list[Call]: ...
def deploy(
    config: StackConfig,
    *,
    build: BuildResult | None = None,
    session: boto3.Session | None = None,
    dry_run: bool = False,
    table: Mapping[str, Any] | None = None,
) -> Stack | list[Call]:
    """Create or update the stack *config* describes, and return its outputs.

    Safe to run again: existing resources (found by tag) are reused and converged to *config*.
    *build* is the zip to deploy (built for ``config.arch`` and Python 3.13); without it one is
    built in a temporary folder. *session* defaults to ``boto3.Session(region_name=...)``, so
    ``AWS_PROFILE``, ``AWS_ENDPOINT_URL`` (e.g. a moto server, see
    :func:`~efs_sqlite.aws.fakes.moto_server`) and the
    usual variables apply. With ``dry_run=True`` nothing is read or changed: the calls a fresh
    deploy would make are printed and returned (ids are placeholders). A reserved concurrency past
    the EFS lock quota is refused first (:meth:`StackConfig.check_lock_quota`).

    A DynamoDB stack (``config.backend == "dynamodb"``) needs *table*, its table's ``CreateTable``
    arguments: ``efs_sqlite.dynamodb.layout.table_definition(config.table_name)`` (passed in,
    since this package imports none of the runtime modules).
    """
    if (config.backend == "dynamodb") != (table is not None):
        raise ValueError(
            "table= (efs_sqlite.dynamodb.layout.table_definition(config.table_name)) is needed "
            "with, and only with, backend='dynamodb'"
        )
    config.check_lock_quota()
    if config.public:
        warnings.warn(
            f"stack {config.name!r}: public=True makes the GraphQL Function URL unauthenticated; "
            "anyone who learns the URL can query it and run its mutations",
            UserWarning,
            stacklevel=2,
        )
    if build is not None and (build.arch, build.python_version) != (config.arch, RUNTIME_VERSION):
        raise ValueError(
            f"the zip is for Python {build.python_version} {build.arch}; the stack runs "
            f"{RUNTIME} {config.arch}"
        )
    if build is not None:
        absent = sorted(set(config.functions) - set(build.handlers))
        if absent:
            raise DeployError(f"{build.path.name} has no handler for {absent}")
    calls = Calls(config, session, dry_run)
    if dry_run:
        _deploy(calls, build, table)
        return calls.made
    if build is not None:
        return _deploy(calls, build, table)
    with tempfile.TemporaryDirectory(prefix="efs-sqlite-deploy-") as tmp:
        return deploy(config, build=build_zip(tmp, arch=config.arch), session=session, table=table)


def teardown(config: StackConfig | str, *, session: boto3.Session | None = None) -> list[Call]:
    """Delete everything tagged with the stack's name, dependants first; return the calls made.

    Either backend's stack: the name is enough (the table, the file system and the network are
    each looked for, and deleted where found).

    Tolerates partial stacks (a failed deploy, an earlier interrupted teardown) and is a no-op
    when nothing is left. A resource that has the stack's name but not its tag is left untouched,
    with a warning.
    """
    calls = Calls(_config(config), session, dry_run=False)
    functions.delete_functions(calls)
    dynamodb.delete_table(calls)
    efs.delete_storage(calls)
    iam.delete_role(calls)
    network.delete_network(calls)
    return calls.made


def find_stack(config: StackConfig | str, *, session: boto3.Session | None = None) -> Stack:
    """The outputs of an already deployed stack of either backend (read-only; its GraphQL function
    says which); LookupError if it is incomplete."""
    calls = Calls(_config(config), session, dry_run=False)
    config = calls.config
    graphql = functions.find_function(calls, config.graphql_function)
    if config.backend == "dynamodb" or _serves_a_table(graphql):
        return _find_table_stack(calls)
    loader = functions.find_function(calls, config.loader_function)
    url = functions.find_url(calls, config.graphql_function)
    file_system = efs.find_file_system(calls)
    access_point = file_system and efs.find_access_point(calls, file_system["FileSystemId"])
    groups = {c: network.find_group(calls, c) for c in ("functions-sg", "efs-sg")}
    parts = {
        "GraphQL function": graphql,
        "loader function": loader,
        "Function URL": url,
        "file system": file_system,
        "access point": access_point,
        **groups,
    }
    missing = [what for what, found in parts.items() if not found]
    if missing:
        raise LookupError(
            f"stack {config.name!r} in {calls.region} is not (fully) deployed: no " + ", ".join(missing)
        )
    assert graphql and url and file_system and access_point  # for the type checker
    vpc = graphql["Configuration"].get("VpcConfig", {})
    vpc_id = network.find_vpc(calls) or groups["functions-sg"]["VpcId"]  # type: ignore[index]
    return Stack(
        name=config.name,
        region=calls.region,
        vpc_id=vpc_id,
        subnet_ids=tuple(vpc.get("SubnetIds", ())),
        functions_security_group=groups["functions-sg"]["GroupId"],  # type: ignore[index]
        efs_security_group=groups["efs-sg"]["GroupId"],  # type: ignore[index]
        file_system_id=file_system["FileSystemId"],
        access_point_id=access_point["AccessPointId"],
        access_point_arn=access_point["AccessPointArn"],
        role_arn=graphql["Configuration"]["Role"],
        graphql_function=config.graphql_function,
        loader_function=config.loader_function,
        function_url=url["FunctionUrl"],
        auth_type=url["AuthType"],
    )


def _serves_a_table(function: Mapping[str, Any] | None) -> bool:
    """Whether *function* (``get_function``) is a DynamoDB stack's: it names a table to serve."""
    variables = (function or {}).get("Configuration", {}).get("Environment", {}).get("Variables", {})
    return "DYNAMODB_TABLE" in variables


def _find_table_stack(calls: Calls) -> Stack:
    config = calls.config
    graphql = functions.find_function(calls, config.graphql_function)
    url = functions.find_url(calls, config.graphql_function)
    table = dynamodb.find_table(calls)
    parts = {"GraphQL function": graphql, "Function URL": url, "table": table}
    missing = [what for what, found in parts.items() if not found]
    if missing:
        raise LookupError(
            f"stack {config.name!r} in {calls.region} is not (fully) deployed: no " + ", ".join(missing)
        )
    assert graphql and url and table  # for the type checker
    found = dynamodb.Table(config.table_name, table["TableArn"])
    return _table_stack(calls, found, graphql["Configuration"]["Role"], url["FunctionUrl"], url["AuthType"])


def _table_stack(calls: Calls, table: dynamodb.Table, role_arn: str, url: str, auth_type: str) -> Stack:
    config = calls.config
    return Stack(
        name=config.name,
        region=calls.region,
        vpc_id="",
        subnet_ids=(),
        functions_security_group="",
        efs_security_group="",
        file_system_id="",
        access_point_id="",
        access_point_arn="",
        role_arn=role_arn,
        graphql_function=config.graphql_function,
        loader_function="",
        function_url=url,
        auth_type=auth_type,
        backend="dynamodb",
        table_name=table.name,
        table_arn=table.arn,
    )


def _deploy(calls: Calls, build: BuildResult | None, table: Mapping[str, Any] | None) -> Stack:
    """Get or create each resource, dependencies first, and converge it to the configuration."""
    config = calls.config
    _refuse_the_other_backend(calls)
    if table is not None:
        created = dynamodb.ensure_table(calls, table)
        role_arn = iam.ensure_role(calls, iam.table_policies(calls, created.arn))
        url = functions.ensure_functions(calls, role_arn, build, functions.table_settings(created.name))
        return _table_stack(calls, created, role_arn, url, _auth_type(config))
    net = network.ensure_network(calls)
    storage = efs.ensure_storage(calls, net)
    role_arn = iam.ensure_role(calls, iam.efs_policies(storage))
    efs.ensure_policy(calls, storage, role_arn)
    url = functions.ensure_functions(calls, role_arn, build, functions.efs_settings(calls, net, storage))
    return Stack(
        name=config.name,
        region=calls.region,
        vpc_id=net.vpc_id,
        subnet_ids=net.subnet_ids,
        functions_security_group=net.functions_group,
        efs_security_group=net.efs_group,
        file_system_id=storage.file_system_id,
        access_point_id=storage.access_point_id,
        access_point_arn=storage.access_point_arn,
        role_arn=role_arn,
        graphql_function=config.graphql_function,
        loader_function=config.loader_function,
        function_url=url,
        auth_type=_auth_type(config),
    )


def _refuse_the_other_backend(calls: Calls) -> None:
    """A stack keeps its backend: changing it in place would leave the other's data and network
    behind a function that no longer uses them."""
    config = calls.config
    if config.backend == "dynamodb":
        other, found = "efs", efs.find_file_system(calls)
    else:
        other, found = "dynamodb", dynamodb.find_table(calls)
    if found:
        raise DeployError(
            f"stack {config.name!r} is deployed on {other}: tear it down first "
            f"(efs-sqlite teardown --stack {config.name}), or choose another name"
        )


def _auth_type(config: StackConfig) -> str:
    return "NONE" if config.public else "AWS_IAM"


def _config(config: StackConfig | str) -> StackConfig:
    return config if isinstance(config, StackConfig) else StackConfig(config)
