"""The stack's storage (EFS): an encrypted file system, a mount target in each subnet, and the
access point the functions mount, with a file system policy that admits only them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from efs_sqlite.aws.calls import Calls, lookup
from efs_sqlite.aws.iam import efs_client_policy
from efs_sqlite.aws.network import Network
from efs_sqlite.errors import DeployError

__all__ = [
    "Storage",
    "delete_storage",
    "ensure_policy",
    "ensure_storage",
    "find_access_point",
    "find_file_system",
]


class Storage(NamedTuple):
    """The file system and the access point the functions mount."""

    file_system_id: str
    file_system_arn: str
    access_point_id: str
    access_point_arn: str


def ensure_storage(calls: Calls, network: Network) -> Storage:
    """Get or create the file system, its mount targets and access point; converge them."""
    file_system = _file_system(calls)
    fs_id = file_system["FileSystemId"]
    _mount_targets(calls, fs_id, network.subnet_ids, network.efs_group)
    access_point = _access_point(calls, fs_id)
    return Storage(
        fs_id, file_system["FileSystemArn"], access_point["AccessPointId"], access_point["AccessPointArn"]
    )


def delete_storage(calls: Calls) -> None:
    """Delete the stack's access point, mount targets and file system, and wait until they are gone."""
    file_system = find_file_system(calls)
    if file_system:
        _delete_file_system(calls, file_system["FileSystemId"])


@lookup
def find_file_system(calls: Calls) -> dict[str, Any] | None:
    """The stack's file system, or None; DeployError if several carry its tag."""
    ours = [
        fs for fs in calls.pages("efs", "describe_file_systems", "FileSystems") if calls.ours(fs.get("Tags"))
    ]
    if len(ours) > 1:
        raise DeployError(f"{len(ours)} file systems carry the tag of stack {calls.config.name}")
    return ours[0] if ours else None


@lookup
def find_access_point(calls: Calls, file_system_id: str) -> dict[str, Any] | None:
    """The stack's access point on *file_system_id*, or None."""
    points = calls.pages("efs", "describe_access_points", "AccessPoints", FileSystemId=file_system_id)
    return next((ap for ap in points if calls.ours(ap.get("Tags"))), None)


def _file_system(calls: Calls) -> dict[str, Any]:
    config = calls.config
    throughput: dict[str, Any] = {"ThroughputMode": config.throughput_mode}
    if config.provisioned_mibps is not None:
        throughput["ProvisionedThroughputInMibps"] = config.provisioned_mibps
    file_system = find_file_system(calls)
    if file_system is None:
        file_system = calls.write(
            "efs",
            "create_file_system",
            CreationToken=config.prefix,
            PerformanceMode="generalPurpose",
            Encrypted=True,
            Tags=calls.tag_list("efs"),
            **throughput,
        )
    elif file_system.get("ThroughputMode") != config.throughput_mode or (
        file_system.get("ProvisionedThroughputInMibps") != config.provisioned_mibps
        and config.provisioned_mibps is not None
    ):
        calls.write("efs", "update_file_system", FileSystemId=file_system["FileSystemId"], **throughput)
    fs_id = file_system["FileSystemId"]
    calls.wait(f"file system {fs_id}", lambda: _file_system_state(calls, fs_id), "available")
    return file_system


@lookup
def _file_system_state(calls: Calls, fs_id: str) -> str | None:
    return _life_cycle_state(calls, "FileSystem", FileSystemId=fs_id)


@lookup
def _access_point_state(calls: Calls, ap_id: str) -> str | None:
    return _life_cycle_state(calls, "AccessPoint", AccessPointId=ap_id)


def _life_cycle_state(calls: Calls, resource: str, **key: str) -> str | None:
    """The ``LifeCycleState`` of one EFS ``resource`` (``FileSystem``, ``AccessPoint``), or None
    once it is gone."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", resource).lower()
    found = calls.read_if_found("efs", f"describe_{snake}s", f"{resource}NotFound", **key)
    return None if found is None else found[f"{resource}s"][0]["LifeCycleState"]


def _mount_targets(calls: Calls, fs_id: str, subnet_ids: Sequence[str], group_id: str) -> None:
    existing = {mt["SubnetId"]: mt["MountTargetId"] for mt in _find_mount_targets(calls, fs_id) or []}
    for subnet_id in subnet_ids:
        if subnet_id not in existing:
            existing[subnet_id] = calls.write_when_visible(
                "efs",
                "create_mount_target",
                FileSystemId=fs_id,
                SubnetId=subnet_id,
                SecurityGroups=[group_id],
            )["MountTargetId"]
        elif _mount_target_groups(calls, existing[subnet_id]) != [group_id]:
            calls.write_when_visible(
                "efs",
                "modify_mount_target_security_groups",
                MountTargetId=existing[subnet_id],
                SecurityGroups=[group_id],
            )
    for subnet_id in subnet_ids:
        mt_id = existing[subnet_id]
        calls.wait(f"mount target {mt_id}", lambda m=mt_id: _mount_target_state(calls, m), "available")


@lookup
def _find_mount_targets(calls: Calls, fs_id: str) -> list[dict[str, Any]]:
    return calls.pages("efs", "describe_mount_targets", "MountTargets", FileSystemId=fs_id)


@lookup
def _mount_target_groups(calls: Calls, mt_id: str) -> list[str]:
    return calls.read("efs", "describe_mount_target_security_groups", MountTargetId=mt_id)["SecurityGroups"]


@lookup
def _mount_target_state(calls: Calls, mt_id: str) -> str | None:
    found = calls.read_if_found("efs", "describe_mount_targets", "MountTargetNotFound", MountTargetId=mt_id)
    return None if found is None else found["MountTargets"][0]["LifeCycleState"]


def _access_point(calls: Calls, fs_id: str) -> dict[str, Any]:
    config = calls.config
    posix = {"Uid": config.posix_uid, "Gid": config.posix_gid}
    access_point = find_access_point(calls, fs_id)
    if access_point is None:
        access_point = calls.write(
            "efs",
            "create_access_point",
            ClientToken=f"{config.prefix}-ap",
            FileSystemId=fs_id,
            PosixUser=posix,
            Tags=calls.tag_list("access-point"),
            RootDirectory={
                "Path": config.root_directory,
                "CreationInfo": {
                    "OwnerUid": config.posix_uid,
                    "OwnerGid": config.posix_gid,
                    "Permissions": config.root_permissions,
                },
            },
        )
    elif (access_point["PosixUser"], access_point["RootDirectory"]["Path"]) != (
        posix,
        config.root_directory,
    ):
        raise DeployError(
            f"access point {access_point['AccessPointId']} has another user or root directory; "
            "access points cannot change: tear the stack down to change them"
        )
    ap_id = access_point["AccessPointId"]
    calls.wait(f"access point {ap_id}", lambda: _access_point_state(calls, ap_id), "available")
    return access_point


def ensure_policy(calls: Calls, storage: Storage, role_arn: str) -> None:
    """Admit only *role_arn*, through the access point, via a mount target.

    Without a file system policy EFS lets in any client that reaches a mount target.
    """
    policy = efs_client_policy(storage.file_system_arn, storage.access_point_arn, principal=role_arn)
    calls.write_when_visible(
        "efs", "put_file_system_policy", FileSystemId=storage.file_system_id, Policy=json.dumps(policy)
    )


def _delete_file_system(calls: Calls, fs_id: str) -> None:
    for point in calls.pages("efs", "describe_access_points", "AccessPoints", FileSystemId=fs_id):
        if calls.ours(point.get("Tags")):
            calls.write_ignoring(
                ["AccessPointNotFound"],
                "efs",
                "delete_access_point",
                AccessPointId=point["AccessPointId"],
            )
    # Mount targets cannot be tagged: those of our file system are ours.
    targets = _find_mount_targets(calls, fs_id) or []
    for target in targets:
        calls.write_ignoring(
            ["MountTargetNotFound"],
            "efs",
            "delete_mount_target",
            MountTargetId=target["MountTargetId"],
        )
    for target in targets:
        mt_id = target["MountTargetId"]
        calls.wait(f"mount target {mt_id}", lambda m=mt_id: _mount_target_state(calls, m), None)
    calls.write_ignoring(["FileSystemNotFound"], "efs", "delete_file_system", FileSystemId=fs_id)
    calls.wait(f"file system {fs_id}", lambda: _file_system_state(calls, fs_id), None)
