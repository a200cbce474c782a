"""The stack's functions (Lambda): the GraphQL function behind a Function URL, the loader without
one (an EFS stack's only), their log groups, and the permissions a public URL needs.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from typing import Any

from efs_sqlite.aws.build import BuildResult
from efs_sqlite.aws.calls import Calls, lookup
from efs_sqlite.aws.efs import Storage
from efs_sqlite.aws.network import Network
from efs_sqlite.aws.target import FUNCTIONS, RUNTIME, handler_module

__all__ = [
    "delete_functions",
    "efs_settings",
    "ensure_functions",
    "find_function",
    "find_url",
    "table_settings",
]

_PUBLIC_STATEMENTS = ("efs-sqlite-public-url", "efs-sqlite-public-invoke")


def efs_settings(calls: Calls, network: Network, storage: Storage) -> dict[str, Any]:
    """An EFS stack's functions: in the private subnets, the access point mounted at ``MOUNT_PATH``."""
    mount = calls.config.mount_path
    return {
        "Environment": {"Variables": {"MOUNT_PATH": mount}},
        "VpcConfig": {"SubnetIds": list(network.subnet_ids), "SecurityGroupIds": [network.functions_group]},
        "FileSystemConfigs": [{"Arn": storage.access_point_arn, "LocalMountPath": mount}],
    }


def table_settings(table: str) -> dict[str, Any]:
    """A DynamoDB stack's function: the table in ``DYNAMODB_TABLE``, no VPC (DynamoDB's endpoint is
    public, and a VPC without a NAT gateway or an endpoint could not reach it), no file system."""
    return {"Environment": {"Variables": {"DYNAMODB_TABLE": table}}}


def ensure_functions(
    calls: Calls, role_arn: str, build: BuildResult | None, placement: Mapping[str, Any]
) -> str:
    """Get or create the stack's functions (``config.functions``) and the GraphQL Function URL,
    converged; *placement* is :func:`efs_settings` or :func:`table_settings`. Returns the URL."""
    config = calls.config
    code: Any = build.path.read_bytes() if build else "<the Lambda zip, built at deploy time>"
    sizes = {
        "graphql": (config.memory_mb, config.timeout_s, config.reserved_concurrency),
        "loader": (config.loader_memory_mb, config.loader_timeout_s, config.loader_reserved_concurrency),
    }
    for function in config.functions:
        memory, timeout, reserved = sizes[function]
        settings = {
            "Role": role_arn,
            "Handler": f"{handler_module(function)}.handler",
            "Runtime": RUNTIME,
            "MemorySize": memory,
            "Timeout": timeout,
            "Description": f"efs-sqlite {function} of stack {config.name}",
            **placement,
        }
        _log_group(calls, function)
        _function(calls, config.function_name(function), settings, code, build, reserved)
    return _function_url(calls, config.graphql_function)


def delete_functions(calls: Calls) -> None:
    """Delete the stack's functions (with their URLs and permissions) and their log groups."""
    for function in FUNCTIONS:
        name = calls.config.function_name(function)
        if calls.owned(lambda n=name: find_function(calls, n), f"Lambda function {name}"):
            calls.write_ignoring(
                ["ResourceNotFoundException"], "lambda", "delete_function", FunctionName=name
            )
        group = f"/aws/lambda/{name}"
        found = _find_log_group(calls, group)
        if found:
            calls.write_ignoring(
                ["ResourceNotFoundException"], "logs", "delete_log_group", logGroupName=group
            )
        elif found is False:
            warnings.warn(f"log group {group} is not tagged: left untouched", stacklevel=4)


@lookup
def find_function(calls: Calls, name: str) -> dict[str, Any] | None:
    """The function *name* (``get_function``), or None; DeployError if it is not the stack's."""
    function = calls.read_if_found("lambda", "get_function", "ResourceNotFoundException", FunctionName=name)
    if function is None:
        return None
    if not calls.ours(function.get("Tags")):
        raise calls.refuse(f"Lambda function {name}")
    return function


@lookup
def find_url(calls: Calls, function: str) -> dict[str, Any] | None:
    """The Function URL configuration of *function*, or None."""
    return calls.read_if_found(
        "lambda", "get_function_url_config", "ResourceNotFoundException", FunctionName=function
    )


@lookup
def _find_log_group(calls: Calls, name: str) -> bool | None:
    """True if ours, False if someone else's, None if absent."""
    groups = calls.pages("logs", "describe_log_groups", "logGroups", logGroupNamePrefix=name)
    group = next((g for g in groups if g["logGroupName"] == name), None)
    if group is None:
        return None
    arn = group.get("logGroupArn") or group["arn"].removesuffix(":*")
    return calls.ours(calls.read("logs", "list_tags_for_resource", resourceArn=arn)["tags"])


def _log_group(calls: Calls, function: str) -> None:
    name = f"/aws/lambda/{calls.config.function_name(function)}"
    found = _find_log_group(calls, name)
    if found is False:
        warnings.warn(f"log group {name} is not tagged: used as it is", stacklevel=5)
        return
    if found is None:
        calls.write("logs", "create_log_group", logGroupName=name, tags=calls.tags(f"logs-{function}"))
    calls.write(
        "logs", "put_retention_policy", logGroupName=name, retentionInDays=calls.config.log_retention_days
    )


def _function(
    calls: Calls,
    name: str,
    settings: Mapping[str, Any],
    code: Any,
    build: BuildResult | None,
    reserved: int | None,
) -> None:
    arch = [calls.config.arch]
    existing = find_function(calls, name)
    if existing is None:
        operation = "create_function"
        extra = {
            "Code": {"ZipFile": code},
            "Architectures": arch,
            "Tags": calls.tags(name.rsplit("-", 1)[1]),
        }
    else:
        operation, extra = "update_function_configuration", {}
    calls.write_when_visible("lambda", operation, FunctionName=name, **extra, **settings)
    calls.wait(f"function {name}", lambda: _function_state(calls, name), "Active")
    if existing is not None:
        deployed = existing["Configuration"]
        if build is None or (deployed.get("CodeSha256"), deployed.get("Architectures")) != (
            build.code_sha256,
            arch,
        ):
            calls.write("lambda", "update_function_code", FunctionName=name, ZipFile=code, Architectures=arch)
            calls.wait(f"function {name}", lambda: _function_state(calls, name), "Active")
    current_reserved = (existing or {}).get("Concurrency", {}).get("ReservedConcurrentExecutions")
    if reserved is not None and reserved != current_reserved:
        calls.write(
            "lambda",
            "put_function_concurrency",
            FunctionName=name,
            ReservedConcurrentExecutions=reserved,
        )
    elif reserved is None and current_reserved is not None:
        calls.write("lambda", "delete_function_concurrency", FunctionName=name)


@lookup
def _function_state(calls: Calls, name: str) -> str | None:
    config = calls.read_if_found(
        "lambda", "get_function_configuration", "ResourceNotFoundException", FunctionName=name
    )
    if config is None:
        return None
    if config.get("State") == "Failed":
        return f"Failed: {config.get('StateReason')}"
    if config.get("LastUpdateStatus") == "Failed":
        return f"Failed: {config.get('LastUpdateStatusReason')}"
    if config.get("LastUpdateStatus") == "InProgress":
        return "Updating"
    return config.get("State")


def _function_url(calls: Calls, function: str) -> str:
    auth = "NONE" if calls.config.public else "AWS_IAM"
    existing = find_url(calls, function)
    if existing is None:
        url = calls.write("lambda", "create_function_url_config", FunctionName=function, AuthType=auth)[
            "FunctionUrl"
        ]
    elif existing["AuthType"] != auth:
        url = calls.write("lambda", "update_function_url_config", FunctionName=function, AuthType=auth)[
            "FunctionUrl"
        ]
    else:
        url = existing["FunctionUrl"]
    granted = _public_statements(calls, function) or set()
    if calls.config.public:
        # Since October 2025 a public URL needs both permissions.
        if _PUBLIC_STATEMENTS[0] not in granted:
            calls.write(
                "lambda",
                "add_permission",
                FunctionName=function,
                StatementId=_PUBLIC_STATEMENTS[0],
                Action="lambda:InvokeFunctionUrl",
                Principal="*",
                FunctionUrlAuthType="NONE",
            )
        if _PUBLIC_STATEMENTS[1] not in granted:
            calls.write(
                "lambda",
                "add_permission",
                FunctionName=function,
                StatementId=_PUBLIC_STATEMENTS[1],
                Action="lambda:InvokeFunction",
                Principal="*",
                InvokedViaFunctionUrl=True,
            )
    else:
        for statement in sorted(granted):
            calls.write_ignoring(
                ["ResourceNotFoundException"],
                "lambda",
                "remove_permission",
                FunctionName=function,
                StatementId=statement,
            )
    return url


@lookup
def _public_statements(calls: Calls, function: str) -> set[str]:
    found = calls.read_if_found("lambda", "get_policy", "ResourceNotFoundException", FunctionName=function)
    if found is None:
        return set()
    policy = json.loads(found["Policy"])
    return {s.get("Sid") for s in policy.get("Statement", [])} & set(_PUBLIC_STATEMENTS)
