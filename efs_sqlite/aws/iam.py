"""The functions' identity (IAM): one least-privilege role, trusted by Lambda, allowed to reach
the VPC and to mount and write the file system only through the stack's access point.

>>> policy = efs_client_policy("arn:fs", "arn:ap")
>>> policy["Statement"][0]["Condition"]
{'StringEquals': {'elasticfilesystem:AccessPointArn': 'arn:ap'}}
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from efs_sqlite.aws.calls import Calls, lookup

if TYPE_CHECKING:
    from efs_sqlite.aws.efs import Storage

__all__ = ["delete_role", "efs_client_policy", "ensure_role", "find_role"]

_VPC_LAMBDA_POLICY = "service-role/AWSLambdaVPCAccessExecutionRole"


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


def ensure_role(calls: Calls, storage: Storage) -> str:
    """Get or create the functions' role, (re)attach its policies; returns its ARN."""
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
    # Both calls are idempotent, so they also repair a role someone edited.
    calls.write(
        "iam",
        "attach_role_policy",
        RoleName=config.role_name,
        PolicyArn=f"arn:{partition}:iam::aws:policy/{_VPC_LAMBDA_POLICY}",
    )
    calls.write(
        "iam",
        "put_role_policy",
        RoleName=config.role_name,
        PolicyName="efs-access-point",
        PolicyDocument=json.dumps(efs_client_policy(storage.file_system_arn, storage.access_point_arn)),
    )
    return role["Arn"]


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
