"""The functions' identity (IAM): one least-privilege role, trusted by Lambda. On an EFS stack it
may reach the VPC and mount and write the file system only through the stack's access point; on a
DynamoDB stack it may make the GraphQL function's calls on the stack's table only, and write its
own log group.

>>> policy = efs_client_policy("arn:fs", "arn:ap")
>>> policy["Statement"][0]["Condition"]
{'StringEquals': {'elasticfilesystem:AccessPointArn': 'arn:ap'}}
>>> table_policy("arn:aws:dynamodb:us-east-1:1:table/t")["Statement"][0]["Resource"]
'arn:aws:dynamodb:us-east-1:1:table/t'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from efs_sqlite.aws.calls import Calls, lookup
from efs_sqlite.aws.dynamodb import table_arn_parts

if TYPE_CHECKING:
    from efs_sqlite.aws.efs import Storage

__all__ = [
    "TABLE_ACTIONS",
    "RolePolicies",
    "delete_role",
    "efs_client_policy",
    "efs_policies",
    "ensure_role",
    "find_role",
    "table_policies",
    "table_policy",
]

_VPC_LAMBDA_POLICY = "service-role/AWSLambdaVPCAccessExecutionRole"
#: What the GraphQL function calls on its table: reads (BatchGetItem per level, GetItem, Query per
#: list page), writes (PutItem and DeleteItem, alone or inside a TransactWriteItems, which IAM
#: checks as those actions: docs/SOURCES.md#dynamodb-iam) and DescribeTable (``/healthz``). Not
#: BatchWriteItem nor Scan: those are the bulk loader's and maintenance's, run from where you
#: deploy with your own credentials, never by the function.
TABLE_ACTIONS = (
    "dynamodb:BatchGetItem",
    "dynamodb:DeleteItem",
    "dynamodb:DescribeTable",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
)


class RolePolicies(NamedTuple):
    """What the role may do: AWS managed policies (by name) and inline ones (name -> document)."""

    managed: tuple[str, ...]
    inline: Mapping[str, dict[str, Any]]


@lookup
def find_role(calls: Calls) -> dict[str, Any] | None:
    """The functions' role, or None; DeployError if a role of that name is not the stack's."""
    found = calls.read_if_found("iam", "get_role", "NoSuchEntity", RoleName=calls.config.role_name)
    if found is None:
        return None
    role = found["Role"]
    tags = calls.read("iam", "list_role_tags", RoleName=calls.config.role_name)["Tags"]
    if not calls.ours(tags):
        raise calls.refuse(f"IAM role {calls.config.role_name}")
    return role


def efs_policies(storage: Storage) -> RolePolicies:
    """An EFS stack's: the VPC execution role (network interfaces, logs), the access point's mount."""
    return RolePolicies(
        (_VPC_LAMBDA_POLICY,),
        {"efs-access-point": efs_client_policy(storage.file_system_arn, storage.access_point_arn)},
    )


def table_policies(calls: Calls, table_arn: str) -> RolePolicies:
    """A DynamoDB stack's: :data:`TABLE_ACTIONS` on the table, and writing the GraphQL function's
    log group; no managed policy (the basic execution role would allow every log group)."""
    region, account = table_arn_parts(table_arn)
    partition = calls.session.get_partition_for_region(calls.region)
    group = f"arn:{partition}:logs:{region}:{account}:log-group:/aws/lambda/{calls.config.graphql_function}"
    logs = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": f"{group}:*",
            }
        ],
    }
    return RolePolicies((), {"dynamodb-table": table_policy(table_arn), "function-logs": logs})


def table_policy(table_arn: str) -> dict[str, Any]:
    """The GraphQL function's calls (:data:`TABLE_ACTIONS`) on the table *table_arn*, nothing else."""
    statement = {"Effect": "Allow", "Action": list(TABLE_ACTIONS), "Resource": table_arn}
    return {"Version": "2012-10-17", "Statement": [statement]}


def ensure_role(calls: Calls, policies: RolePolicies) -> str:
    """Get or create the functions' role, (re)attach its policies and remove any other; returns
    its ARN."""
    config = calls.config
    role = find_role(calls)
    if role is None:
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        role = calls.write(
            "iam",
            "create_role",
            RoleName=config.role_name,
            AssumeRolePolicyDocument=json.dumps(trust),
            Description=f"efs-sqlite functions of stack {config.name}",
            Tags=calls.tag_list("role"),
        )["Role"]
    partition = calls.session.get_partition_for_region(calls.region)
    managed = {f"arn:{partition}:iam::aws:policy/{name}" for name in policies.managed}
    # Both calls are idempotent, so they also repair a role someone edited.
    for arn in sorted(managed):
        calls.write("iam", "attach_role_policy", RoleName=config.role_name, PolicyArn=arn)
    for name, document in policies.inline.items():
        calls.write(
            "iam",
            "put_role_policy",
            RoleName=config.role_name,
            PolicyName=name,
            PolicyDocument=json.dumps(document),
        )
    _remove_others(calls, managed, set(policies.inline))
    return role["Arn"]


@lookup
def _remove_others(calls: Calls, managed: set[str], inline: set[str]) -> None:
    """Detach and delete what the role holds beyond *managed* and *inline* (someone's additions,
    or the other backend's policies after a stack changed backend)."""
    name = calls.config.role_name
    for policy in calls.pages("iam", "list_attached_role_policies", "AttachedPolicies", RoleName=name):
        if policy["PolicyArn"] not in managed:
            calls.write("iam", "detach_role_policy", RoleName=name, PolicyArn=policy["PolicyArn"])
    for policy in calls.pages("iam", "list_role_policies", "PolicyNames", RoleName=name):
        if policy not in inline:
            calls.write("iam", "delete_role_policy", RoleName=name, PolicyName=policy)


def delete_role(calls: Calls) -> None:
    """Detach and delete the role's policies, then the role; a namesake without our tag stays."""
    name = calls.config.role_name
    if not calls.owned(lambda: find_role(calls), f"IAM role {name}"):
        return
    attached = calls.pages("iam", "list_attached_role_policies", "AttachedPolicies", RoleName=name)
    for policy in attached:
        calls.write("iam", "detach_role_policy", RoleName=name, PolicyArn=policy["PolicyArn"])
    for policy in calls.pages("iam", "list_role_policies", "PolicyNames", RoleName=name):
        calls.write("iam", "delete_role_policy", RoleName=name, PolicyName=policy)
    calls.write_ignoring(["NoSuchEntity"], "iam", "delete_role", RoleName=name)


def efs_client_policy(fs_arn: str, ap_arn: str, principal: str | None = None) -> dict[str, Any]:
    """Mount and write the file system, only through the access point (EFS's documented form)."""
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
        "Resource": fs_arn,
        "Condition": {"StringEquals": {"elasticfilesystem:AccessPointArn": ap_arn}},
    }
    if principal:
        statement["Principal"] = {"AWS": principal}
        statement["Condition"]["Bool"] = {"elasticfilesystem:AccessedViaMountTarget": "true"}
    return {"Version": "2012-10-17", "Statement": [statement]}
