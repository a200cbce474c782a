"""The stack's network (EC2): a VPC with a private subnet per zone, or the subnets given, and two
security groups that let the functions reach the mount targets over NFS (2049) and nothing else.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from efs_sqlite.aws.calls import Calls, error_code, lookup
from efs_sqlite.errors import DeployError

__all__ = ["Network", "delete_network", "ensure_network", "find_group", "find_vpc"]

# Lambda refuses subnets in this us-east-1 zone ("The provided subnets contain availability zone
# Lambda doesn't support"), so automatic zone picking skips it.
_LAMBDA_UNSUPPORTED_ZONE_IDS = frozenset({"use1-az3"})
_NFS = {"IpProtocol": "tcp", "FromPort": 2049, "ToPort": 2049}


class Network(NamedTuple):
    """Where the functions and the mount targets live, and the security group of each."""

    vpc_id: str
    subnet_ids: tuple[str, ...]
    functions_group: str
    efs_group: str


def ensure_network(calls: Calls) -> Network:
    """Get or create the VPC, subnets and security groups; converge the groups' rules."""
    vpc_id, subnet_ids = _vpc_and_subnets(calls)
    functions = _security_group(calls, vpc_id, "functions-sg", "efs-sqlite Lambda functions")
    efs = _security_group(calls, vpc_id, "efs-sg", "efs-sqlite EFS mount targets: NFS from the functions")
    _converge_rules(
        calls,
        functions,
        ingress=[],
        egress=[{**_NFS, "UserIdGroupPairs": [{"GroupId": efs["GroupId"]}]}],
    )
    _converge_rules(
        calls,
        efs,
        ingress=[{**_NFS, "UserIdGroupPairs": [{"GroupId": functions["GroupId"]}]}],
        egress=[],
    )
    return Network(vpc_id, tuple(subnet_ids), functions["GroupId"], efs["GroupId"])


def delete_network(calls: Calls) -> None:
    """Delete the stack's security groups, subnets and VPC (given subnets are not the stack's)."""
    groups = calls.pages("ec2", "describe_security_groups", "SecurityGroups", Filters=calls.ec2_filters())
    _delete_groups(calls, groups)
    for subnet in calls.pages("ec2", "describe_subnets", "Subnets", Filters=calls.ec2_filters()):
        _delete_ec2(calls, "delete_subnet", SubnetId=subnet["SubnetId"])
    for vpc in calls.pages("ec2", "describe_vpcs", "Vpcs", Filters=calls.ec2_filters()):
        _delete_ec2(calls, "delete_vpc", VpcId=vpc["VpcId"])


@lookup
def find_vpc(calls: Calls) -> str | None:
    """The id of the stack's own VPC, or None (also with given subnets: that VPC is not ours)."""
    vpcs = calls.pages("ec2", "describe_vpcs", "Vpcs", Filters=calls.ec2_filters("vpc"))
    return vpcs[0]["VpcId"] if vpcs else None


@lookup
def _find_subnets(calls: Calls, vpc_id: str) -> list[dict[str, Any]]:
    filters = calls.ec2_filters("subnet", vpc_id=vpc_id)
    return calls.pages("ec2", "describe_subnets", "Subnets", Filters=filters)


@lookup
def _find_all_subnets(calls: Calls, vpc_id: str) -> list[dict[str, Any]]:
    filters = [{"Name": "vpc-id", "Values": [vpc_id]}]
    return calls.pages("ec2", "describe_subnets", "Subnets", Filters=filters)


@lookup
def find_group(calls: Calls, component: str) -> dict[str, Any] | None:
    """The stack's security group *component* (``functions-sg`` or ``efs-sg``), or None."""
    groups = calls.pages(
        "ec2", "describe_security_groups", "SecurityGroups", Filters=calls.ec2_filters(component)
    )
    return groups[0] if groups else None


def _vpc_and_subnets(calls: Calls) -> tuple[str, list[str]]:
    """The VPC and one private subnet per zone: the given subnets, or ours (created if need be)."""
    config = calls.config
    if config.subnet_ids:
        return _given_network(calls) or ("<VPC of the given subnets>", list(config.subnet_ids))
    vpc_id = find_vpc(calls)
    if vpc_id is None:
        vpc_id = calls.write(
            "ec2",
            "create_vpc",
            CidrBlock=config.vpc_cidr,
            TagSpecifications=calls.tag_specs("vpc", "vpc"),
        )["Vpc"]["VpcId"]
        calls.wait(f"VPC {vpc_id}", lambda: _vpc_state(calls, vpc_id), "available")
        calls.write("ec2", "modify_vpc_attribute", VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    existing = {s["AvailabilityZone"]: s["SubnetId"] for s in _find_subnets(calls, vpc_id) or []}
    zones = _zones(calls, existing)
    taken = {s["CidrBlock"] for s in _find_all_subnets(calls, vpc_id) or []}
    free = (str(n) for n in ipaddress.ip_network(config.vpc_cidr).subnets(new_prefix=24))
    free = (cidr for cidr in free if cidr not in taken)
    subnet_ids = []
    for zone in zones:
        if zone not in existing:
            existing[zone] = calls.write(
                "ec2",
                "create_subnet",
                VpcId=vpc_id,
                CidrBlock=next(free),
                AvailabilityZone=zone,
                TagSpecifications=calls.tag_specs("subnet", "subnet"),
            )["Subnet"]["SubnetId"]
        subnet_ids.append(existing[zone])
    return vpc_id, subnet_ids


@lookup
def _given_network(calls: Calls) -> tuple[str, list[str]]:
    subnets = calls.read("ec2", "describe_subnets", SubnetIds=list(calls.config.subnet_ids))
    subnets = subnets["Subnets"]
    vpcs = {s["VpcId"] for s in subnets}
    zones = [s["AvailabilityZone"] for s in subnets]
    if len(vpcs) != 1 or len(set(zones)) != len(zones):
        raise ValueError("subnet_ids must be in one VPC and in distinct availability zones")
    return vpcs.pop(), list(calls.config.subnet_ids)


@lookup
def _vpc_state(calls: Calls, vpc_id: str) -> str | None:
    # InvalidVpcID.NotFound: not visible yet, moments after creation.
    found = calls.read_if_found("ec2", "describe_vpcs", "InvalidVpcID.NotFound", VpcIds=[vpc_id])
    return None if found is None else found["Vpcs"][0]["State"]


def _zones(calls: Calls, existing: Mapping[str, str]) -> list[str]:
    """The zones for our subnets: the configured ones, else those already used, then others."""
    config = calls.config
    if config.availability_zones:
        return list(config.availability_zones)
    available = _available_zones(calls)
    if available is None:
        return [f"<zone {i + 1}>" for i in range(config.az_count)]
    ordered = [*sorted(z for z in existing if z in available), *sorted(set(available) - set(existing))]
    if len(ordered) < config.az_count:
        raise DeployError(f"{calls.region} offers {len(ordered)} usable zones, {config.az_count} needed")
    return ordered[: config.az_count]


@lookup
def _available_zones(calls: Calls) -> list[str]:
    zones = calls.read(
        "ec2",
        "describe_availability_zones",
        Filters=[
            {"Name": "zone-type", "Values": ["availability-zone"]},
            {"Name": "state", "Values": ["available"]},
        ],
    )["AvailabilityZones"]
    return [z["ZoneName"] for z in zones if z.get("ZoneId") not in _LAMBDA_UNSUPPORTED_ZONE_IDS]


def _security_group(calls: Calls, vpc_id: str, component: str, description: str) -> dict[str, Any]:
    group = find_group(calls, component)
    if group is not None:
        return group
    created = calls.write(
        "ec2",
        "create_security_group",
        GroupName=f"{calls.config.prefix}-{component}",
        Description=description,
        VpcId=vpc_id,
        TagSpecifications=calls.tag_specs("security-group", component),
    )
    # Read it back for its default rules; a dry run (or a lagging read) assumes EC2's defaults:
    # all egress, no ingress.
    everything = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    assumed = {"GroupId": created["GroupId"], "IpPermissions": [], "IpPermissionsEgress": everything}
    return find_group(calls, component) or assumed


def _converge_rules(
    calls: Calls, group: Mapping[str, Any], *, ingress: list[dict[str, Any]], egress: list[dict[str, Any]]
) -> None:
    """Make the group's rules exactly *ingress* and *egress* (anything else is revoked)."""
    for direction, wanted, current in (
        ("ingress", ingress, group.get("IpPermissions", [])),
        ("egress", egress, group.get("IpPermissionsEgress", [])),
    ):
        want, have = _rules(wanted), _rules(current)
        extra = [_permission(rule) for rule in sorted(have - want)]
        missing = [_permission(rule) for rule in sorted(want - have)]
        if extra:
            calls.write_when_visible(
                "ec2",
                f"revoke_security_group_{direction}",
                ["InvalidPermission.NotFound"],
                GroupId=group["GroupId"],
                IpPermissions=extra,
            )
        if missing:
            calls.write_when_visible(
                "ec2",
                f"authorize_security_group_{direction}",
                ["InvalidPermission.Duplicate"],
                GroupId=group["GroupId"],
                IpPermissions=missing,
            )


def _delete_groups(calls: Calls, groups: list[dict[str, Any]]) -> None:
    ids = [g["GroupId"] for g in groups]
    if not ids:
        return
    # Lambda's network interfaces outlive the function by minutes; the groups cannot go first.
    calls.wait(
        f"network interfaces in {', '.join(ids)}",
        lambda: _interfaces(calls, ids),
        None,
        timeout=calls.config.eni_timeout_s,
    )
    # Our two groups refer to each other; the references must go before either group can.
    for group in groups:
        _converge_rules(calls, group, ingress=[], egress=[])
    for group_id in ids:
        _delete_ec2(calls, "delete_security_group", GroupId=group_id)


def _interfaces(calls: Calls, group_ids: list[str]) -> str | None:
    found = calls.pages(
        "ec2",
        "describe_network_interfaces",
        "NetworkInterfaces",
        Filters=[{"Name": "group-id", "Values": group_ids}],
    )
    return f"{len(found)} in use" if found else None


def _delete_ec2(calls: Calls, operation: str, **params: Any) -> None:
    not_found = {
        "delete_security_group": "InvalidGroup.NotFound",
        "delete_subnet": "InvalidSubnetID.NotFound",
        "delete_vpc": "InvalidVpcID.NotFound",
    }[operation]
    calls.retry(
        lambda: calls.write_ignoring([not_found], "ec2", operation, **params),
        lambda error: error_code(error) == "DependencyViolation",
        f"ec2.{operation}",
        calls.config.wait_timeout_s,
    )


def _rules(permissions: Iterable[Mapping[str, Any]]) -> set[tuple[Any, ...]]:
    """Flatten EC2 IpPermissions into one hashable tuple per (protocol, ports, peer)."""
    rules = set()
    for p in permissions:
        head = (p["IpProtocol"], p.get("FromPort", -1), p.get("ToPort", -1))
        rules |= {(*head, "IpRanges", "CidrIp", r["CidrIp"]) for r in p.get("IpRanges", [])}
        rules |= {(*head, "Ipv6Ranges", "CidrIpv6", r["CidrIpv6"]) for r in p.get("Ipv6Ranges", [])}
        rules |= {
            (*head, "PrefixListIds", "PrefixListId", r["PrefixListId"]) for r in p.get("PrefixListIds", [])
        }
        rules |= {(*head, "UserIdGroupPairs", "GroupId", r["GroupId"]) for r in p.get("UserIdGroupPairs", [])}
    return rules


def _permission(rule: tuple[Any, ...]) -> dict[str, Any]:
    protocol, low, high, peers, key, value = rule
    permission: dict[str, Any] = {"IpProtocol": protocol, peers: [{key: value}]}
    if protocol != "-1":
        permission |= {"FromPort": low, "ToPort": high}
    return permission
