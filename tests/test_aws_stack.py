"""efs_sqlite.aws.stack (with .network, .efs, .iam, .functions): deploy, converge, look up and
tear down a stack on the moto server on 127.0.0.1 started by the ``moto_endpoint`` fixture
(conftest.py). The zip is the tiny one (``tiny_zip``), since moto stores code but never runs it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from efs_sqlite import aws
from efs_sqlite.cli import main
from efs_sqlite.errors import LockQuotaExceeded

# -- a stack on the moto server ----------------------------------------------------------------


class Recorder:
    """Every request boto3 builds through *session*, as (service, operation, params)."""

    def __init__(self, session: boto3.Session) -> None:
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        session.events.register("before-parameter-build", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.requests.append((model.service_model.service_name, model.name, copy.deepcopy(params)))

    def sent(self, operation: str) -> list[dict[str, Any]]:
        return [params for _, name, params in self.requests if name == operation]

    def writes(self) -> list[str]:
        readers = ("Describe", "Get", "List")
        return [name for _, name, _ in self.requests if not name.startswith(readers)]


@pytest.fixture
def session(moto_endpoint: str) -> boto3.Session:
    return boto3.Session(region_name="us-east-1")


def config(name: str, **changes: Any) -> aws.StackConfig:
    return aws.StackConfig(name, region="us-east-1", poll_interval_s=0.01, **changes)


def tagged(session: boto3.Session, name: str) -> list[str]:
    """Everything in the (moto) account tagged with stack *name*, found without efs_sqlite.aws."""
    ec2, efs, iam = session.client("ec2"), session.client("efs"), session.client("iam")
    lam, logs = session.client("lambda"), session.client("logs")
    found = []
    by_tag = [{"Name": f"tag:{aws.TAG_KEY}", "Values": [name]}]
    found += [v["VpcId"] for v in ec2.describe_vpcs(Filters=by_tag)["Vpcs"]]
    found += [s["SubnetId"] for s in ec2.describe_subnets(Filters=by_tag)["Subnets"]]
    found += [g["GroupId"] for g in ec2.describe_security_groups(Filters=by_tag)["SecurityGroups"]]
    mine = {"Key": aws.TAG_KEY, "Value": name}
    for fs in efs.describe_file_systems()["FileSystems"]:
        if mine in fs["Tags"]:
            found.append(fs["FileSystemId"])
        points = efs.describe_access_points(FileSystemId=fs["FileSystemId"])["AccessPoints"]
        found += [ap["AccessPointId"] for ap in points if mine in ap["Tags"]]
    for role in iam.list_roles()["Roles"]:
        if mine in iam.list_role_tags(RoleName=role["RoleName"])["Tags"]:
            found.append(role["RoleName"])
    for function in lam.list_functions()["Functions"]:
        if lam.list_tags(Resource=function["FunctionArn"])["Tags"].get(aws.TAG_KEY) == name:
            found.append(function["FunctionName"])
    for group in logs.describe_log_groups()["logGroups"]:
        if logs.list_tags_for_resource(resourceArn=group["logGroupArn"])["tags"].get(aws.TAG_KEY) == name:
            found.append(group["logGroupName"])
    return found


def rules(group: dict[str, Any], direction: str) -> list[tuple[Any, ...]]:
    key = "IpPermissions" if direction == "ingress" else "IpPermissionsEgress"
    return sorted(
        (p["IpProtocol"], p.get("FromPort"), p.get("ToPort"), pair["GroupId"])
        for p in group[key]
        for pair in p["UserIdGroupPairs"]
    ) + sorted((p["IpProtocol"], r["CidrIp"]) for p in group[key] for r in p["IpRanges"])


def test_deploy_creates_every_resource_as_configured(
    session: boto3.Session, tiny_zip: aws.BuildResult
) -> None:
    recorder = Recorder(session)
    stack = aws.deploy(config("full", reserved_concurrency=5), build=tiny_zip, session=session)
    ec2, efs, iam = session.client("ec2"), session.client("efs"), session.client("iam")
    lam, logs = session.client("lambda"), session.client("logs")
    mine = {"Key": aws.TAG_KEY, "Value": "full"}

    vpc = ec2.describe_vpcs(VpcIds=[stack.vpc_id])["Vpcs"][0]
    assert mine in vpc["Tags"] and vpc["CidrBlock"] == "10.42.0.0/16"
    subnets = ec2.describe_subnets(SubnetIds=list(stack.subnet_ids))["Subnets"]
    assert len({s["AvailabilityZone"] for s in subnets}) == 2
    assert all(mine in s["Tags"] and s["VpcId"] == stack.vpc_id for s in subnets)
    assert not any(s["MapPublicIpOnLaunch"] for s in subnets)
    assert (
        ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [stack.vpc_id]}])[
            "InternetGateways"
        ]
        == []
    )

    groups = {
        g["GroupId"]: g
        for g in ec2.describe_security_groups(
            GroupIds=[stack.functions_security_group, stack.efs_security_group]
        )["SecurityGroups"]
    }
    functions_sg, efs_sg = groups[stack.functions_security_group], groups[stack.efs_security_group]
    assert rules(efs_sg, "ingress") == [("tcp", 2049, 2049, stack.functions_security_group)]
    assert rules(efs_sg, "egress") == []
    assert rules(functions_sg, "ingress") == []
    assert rules(functions_sg, "egress") == [("tcp", 2049, 2049, stack.efs_security_group)]

    fs = efs.describe_file_systems(FileSystemId=stack.file_system_id)["FileSystems"][0]
    assert fs["Encrypted"] and fs["ThroughputMode"] == "elastic" and mine in fs["Tags"]
    targets = efs.describe_mount_targets(FileSystemId=stack.file_system_id)["MountTargets"]
    assert sorted(t["SubnetId"] for t in targets) == sorted(stack.subnet_ids)
    for target in targets:
        assert efs.describe_mount_target_security_groups(MountTargetId=target["MountTargetId"])[
            "SecurityGroups"
        ] == [stack.efs_security_group]
    ap = efs.describe_access_points(AccessPointId=stack.access_point_id)["AccessPoints"][0]
    assert ap["PosixUser"] == {"Uid": 1001, "Gid": 1001}
    assert ap["RootDirectory"] == {
        "Path": "/efs-sqlite",
        "CreationInfo": {"OwnerUid": 1001, "OwnerGid": 1001, "Permissions": "750"},
    }
    assert mine in ap["Tags"] and ap["FileSystemId"] == stack.file_system_id

    role_name = stack.role_arn.rsplit("/", 1)[1]
    role = iam.get_role(RoleName=role_name)["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]
    attached = iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [
        "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
    ]
    assert iam.list_role_policies(RoleName=role_name)["PolicyNames"] == ["efs-access-point"]
    inline = iam.get_role_policy(RoleName=role_name, PolicyName="efs-access-point")["PolicyDocument"]
    inline = json.loads(inline) if isinstance(inline, str) else inline
    assert inline["Statement"] == [
        {
            "Effect": "Allow",
            "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
            "Resource": fs["FileSystemArn"],
            "Condition": {"StringEquals": {"elasticfilesystem:AccessPointArn": stack.access_point_arn}},
        }
    ]
    assert mine in iam.list_role_tags(RoleName=role_name)["Tags"]
    fs_policy = json.loads(efs.describe_file_system_policy(FileSystemId=stack.file_system_id)["Policy"])
    (statement,) = fs_policy["Statement"]
    assert statement["Principal"] == {"AWS": stack.role_arn}
    assert statement["Condition"]["StringEquals"] == {
        "elasticfilesystem:AccessPointArn": stack.access_point_arn
    }
    assert "elasticfilesystem:ClientRootAccess" not in json.dumps(fs_policy)

    for function, memory, timeout in (("graphql", 1024, 30), ("loader", 1024, 300)):
        name = f"efs-sqlite-full-{function}"
        got = lam.get_function(FunctionName=name)
        conf = got["Configuration"]
        assert conf["Runtime"] == "python3.13"
        assert conf["Handler"] == f"lambdas.{function}.handler.handler"
        assert conf["Architectures"] == ["x86_64"]
        assert (conf["MemorySize"], conf["Timeout"]) == (memory, timeout)
        assert conf["Role"] == stack.role_arn
        assert conf["Environment"]["Variables"] == {"MOUNT_PATH": "/mnt/efs-sqlite"}
        assert sorted(conf["VpcConfig"]["SubnetIds"]) == sorted(stack.subnet_ids)
        assert conf["VpcConfig"]["SecurityGroupIds"] == [stack.functions_security_group]
        assert conf["CodeSha256"] == tiny_zip.code_sha256
        assert got["Tags"][aws.TAG_KEY] == "full"
        # moto drops FileSystemConfigs: check what was sent.
        (sent,) = [p for p in recorder.sent("CreateFunction") if p["FunctionName"] == name]
        assert sent["FileSystemConfigs"] == [
            {"Arn": stack.access_point_arn, "LocalMountPath": "/mnt/efs-sqlite"}
        ]
        assert re.fullmatch(r"^/mnt/[a-zA-Z0-9-_.]+$", sent["FileSystemConfigs"][0]["LocalMountPath"])
        group = logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")["logGroups"][0]
        assert group["retentionInDays"] == 14
    assert lam.get_function(FunctionName=stack.graphql_function)["Concurrency"] == {
        "ReservedConcurrentExecutions": 5
    }
    assert "Concurrency" not in lam.get_function(FunctionName=stack.loader_function)

    url = lam.get_function_url_config(FunctionName=stack.graphql_function)
    assert url["AuthType"] == "AWS_IAM" == stack.auth_type and url["FunctionUrl"] == stack.function_url
    assert stack.graphql_url == stack.function_url.rstrip("/") + "/graphql"
    with pytest.raises(ClientError, match="ResourceNotFound"):
        lam.get_function_url_config(FunctionName=stack.loader_function)
    with pytest.raises(ClientError, match="ResourceNotFound"):
        lam.get_policy(FunctionName=stack.graphql_function)  # no resource policy: nobody public

    (created,) = recorder.sent("CreateFileSystem")
    assert created["Encrypted"] is True and created["ThroughputMode"] == "elastic"
    assert aws.find_stack("full", session=session) == stack


def test_deploy_twice_creates_nothing_new(session: boto3.Session, tiny_zip: aws.BuildResult) -> None:
    first = aws.deploy(config("twice"), build=tiny_zip, session=session)
    recorder = Recorder(session)
    second = aws.deploy(config("twice"), build=tiny_zip, session=session)
    assert second == first
    assert not [w for w in recorder.writes() if w.startswith("Create")], recorder.writes()
    assert "UpdateFunctionCode" not in recorder.writes()  # same zip: code left alone
    assert len(tagged(session, "twice")) == 1 + 2 + 2 + 1 + 1 + 1 + 2 + 2  # vpc..log groups


def test_deploy_converges_a_changed_configuration(session: boto3.Session, tiny_zip: aws.BuildResult) -> None:
    stack = aws.deploy(config("change", reserved_concurrency=3), build=tiny_zip, session=session)
    ec2, lam = session.client("ec2"), session.client("lambda")
    # Someone opens NFS to the world on the mount targets' group: the next deploy closes it.
    ec2.authorize_security_group_ingress(
        GroupId=stack.efs_security_group,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 2049, "ToPort": 2049, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
        ],
    )
    with pytest.warns(UserWarning, match="unauthenticated"):
        public = aws.deploy(config("change", memory_mb=2048, public=True), build=tiny_zip, session=session)
    assert public.auth_type == "NONE"
    assert lam.get_function_url_config(FunctionName=public.graphql_function)["AuthType"] == "NONE"
    policy = json.loads(lam.get_policy(FunctionName=public.graphql_function)["Policy"])
    assert {s["Sid"] for s in policy["Statement"]} == {"efs-sqlite-public-url", "efs-sqlite-public-invoke"}
    assert lam.get_function_configuration(FunctionName=public.graphql_function)["MemorySize"] == 2048
    assert "Concurrency" not in lam.get_function(FunctionName=public.graphql_function)
    group = ec2.describe_security_groups(GroupIds=[stack.efs_security_group])["SecurityGroups"][0]
    assert rules(group, "ingress") == [("tcp", 2049, 2049, stack.functions_security_group)]

    private = aws.deploy(config("change"), build=tiny_zip, session=session)
    assert lam.get_function_url_config(FunctionName=private.graphql_function)["AuthType"] == "AWS_IAM"
    with pytest.raises(ClientError, match="ResourceNotFound"):
        lam.get_policy(FunctionName=private.graphql_function)
    aws.teardown("change", session=session)


def test_teardown_leaves_nothing_tagged_and_touches_no_look_alike(
    session: boto3.Session, tiny_zip: aws.BuildResult
) -> None:
    ec2, efs, iam, lam = (session.client(s) for s in ("ec2", "efs", "iam", "lambda"))
    aws.deploy(config("gone"), build=tiny_zip, session=session)
    # Look-alikes: the stack's names, other stacks' tags, but never this stack's tag.
    name_only = [{"Key": "Name", "Value": "efs-sqlite-gone-vpc"}]
    other = ec2.create_vpc(
        CidrBlock="10.43.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": name_only}]
    )["Vpc"]["VpcId"]
    other_sg = ec2.create_security_group(
        GroupName="efs-sqlite-gone-efs-sg", Description="look-alike", VpcId=other,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": [{"Key": aws.TAG_KEY, "Value": "x"}]}],
    )["GroupId"]  # fmt: skip
    other_fs = efs.create_file_system(
        CreationToken="look-alike", Tags=[{"Key": "Name", "Value": "efs-sqlite-gone-efs"}]
    )["FileSystemId"]
    assert len(tagged(session, "gone")) == 12

    calls = aws.teardown("gone", session=session)
    assert tagged(session, "gone") == []
    deleted = [c.operation for c in calls if c.operation.startswith("delete")]
    assert deleted.index("delete_function") < deleted.index("delete_file_system")
    assert deleted.index("delete_mount_target") < deleted.index("delete_file_system")
    assert deleted.index("delete_file_system") < deleted.index("delete_security_group")
    assert deleted.index("delete_subnet") < deleted.index("delete_vpc")
    assert ec2.describe_vpcs(VpcIds=[other])["Vpcs"]
    assert ec2.describe_security_groups(GroupIds=[other_sg])["SecurityGroups"]
    assert efs.describe_file_systems(FileSystemId=other_fs)["FileSystems"]
    assert aws.teardown("gone", session=session) == []  # nothing left: nothing to do

    # Namesakes without the tag: teardown leaves them (and says so), deploy refuses them.
    iam.create_role(RoleName="efs-sqlite-gone-lambda", AssumeRolePolicyDocument="{}")
    lam.create_function(
        FunctionName="efs-sqlite-gone-graphql", Runtime="python3.13", Handler="x.handler",
        Role=iam.get_role(RoleName="efs-sqlite-gone-lambda")["Role"]["Arn"],
        Code={"ZipFile": tiny_zip.path.read_bytes()},
    )  # fmt: skip
    with pytest.warns(UserWarning, match="not tagged") as caught:
        assert aws.teardown("gone", session=session) == []
    assert {str(w.message).split(" is ")[0] for w in caught} == {
        "Lambda function efs-sqlite-gone-graphql",
        "IAM role efs-sqlite-gone-lambda",
    }
    assert lam.get_function(FunctionName="efs-sqlite-gone-graphql")
    assert iam.get_role(RoleName="efs-sqlite-gone-lambda")
    with pytest.raises(aws.DeployError, match=r"not tagged .*refusing"):
        aws.deploy(config("gone"), build=tiny_zip, session=session)
    with pytest.warns(UserWarning, match="not tagged"):
        aws.teardown("gone", session=session)  # what the refused deploy had created
    assert tagged(session, "gone") == []


def test_failed_deploy_then_teardown_is_clean(session: boto3.Session, tiny_zip: aws.BuildResult) -> None:
    def fail(**_: Any) -> None:
        raise RuntimeError("injected: CreateFunction failed")

    session.events.register("before-call.lambda.CreateFunction", fail)
    with pytest.raises(RuntimeError, match="injected"):
        aws.deploy(config("half"), build=tiny_zip, session=session)
    session.events.unregister("before-call.lambda.CreateFunction", fail)
    left = tagged(session, "half")
    assert any(r.startswith("fs-") for r in left) and "efs-sqlite-half-lambda" in left
    assert not [r for r in left if r.startswith("efs-sqlite-half-") and r.endswith(("graphql", "loader"))]
    aws.teardown("half", session=session)
    assert tagged(session, "half") == []


def test_deploy_retries_while_the_new_role_propagates(
    session: boto3.Session, tiny_zip: aws.BuildResult
) -> None:
    refusals = []

    def not_yet(model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if len(refusals) >= 2:
            return None
        refusals.append(model.name)
        message = "The role defined for the function cannot be assumed by Lambda."
        error = {"Error": {"Code": "InvalidParameterValueException", "Message": message}}
        return AWSResponse("https://lambda", 400, {}, None), {**error, "ResponseMetadata": {}}

    session.events.register("before-call.lambda.CreateFunction", not_yet)
    recorder = Recorder(session)
    stack = aws.deploy(config("slowrole"), build=tiny_zip, session=session)
    assert refusals == ["CreateFunction", "CreateFunction"]
    assert [p["FunctionName"] for p in recorder.sent("CreateFunction")] == [stack.graphql_function] * 3 + [
        stack.loader_function
    ]
    aws.teardown("slowrole", session=session)


def test_deploy_into_given_subnets_leaves_their_vpc_alone(
    session: boto3.Session, tiny_zip: aws.BuildResult
) -> None:
    ec2 = session.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.50.0.0/16")["Vpc"]["VpcId"]
    subnets = tuple(
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.50.{i}.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"]
        for i, zone in enumerate(("us-east-1b", "us-east-1c"))
    )
    recorder = Recorder(session)
    stack = aws.deploy(
        config("given", subnet_ids=subnets, throughput_mode="provisioned", provisioned_mibps=8),
        build=tiny_zip,
        session=session,
    )
    assert stack.vpc_id == vpc and stack.subnet_ids == subnets
    assert not recorder.sent("CreateVpc") and not recorder.sent("CreateSubnet")
    (created,) = recorder.sent("CreateFileSystem")
    assert (created["ThroughputMode"], created["ProvisionedThroughputInMibps"]) == ("provisioned", 8)
    aws.teardown("given", session=session)
    assert tagged(session, "given") == []
    assert ec2.describe_subnets(SubnetIds=list(subnets))["Subnets"]
    with pytest.raises(ValueError, match="distinct availability zones"):
        same_zone = ec2.create_subnet(VpcId=vpc, CidrBlock="10.50.9.0/24", AvailabilityZone="us-east-1b")
        aws.deploy(
            config("given", subnet_ids=(subnets[0], same_zone["Subnet"]["SubnetId"])),
            build=tiny_zip,
            session=session,
        )


def test_dry_run_prints_the_plan_and_calls_nothing(
    session: boto3.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    sent: list[str] = []
    session.events.register("before-send", lambda request, **_: sent.append(request.url))
    calls = aws.deploy(config("plan"), session=session, dry_run=True)
    assert sent == []
    operations = [c.operation for c in calls]
    assert operations[0] == "create_vpc" and operations[-1] == "create_function_url_config"
    assert operations.count("create_subnet") == 2 and operations.count("create_function") == 2
    assert operations.index("create_mount_target") > operations.index("create_file_system")
    assert operations.index("create_role") < operations.index("create_function")
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == len(calls)
    assert printed[0].startswith("  1. ec2.create_vpc(CidrBlock='10.42.0.0/16'")
    create = next(c for c in calls if c.operation == "create_function")
    assert re.fullmatch(
        r"<CreateAccessPoint#\d+:AccessPointArn>", create.params["FileSystemConfigs"][0]["Arn"]
    )
    assert tagged(session, "plan") == []


def test_stack_config_rejects_bad_values() -> None:
    for bad, match in (
        ({"name": "Bad_Name"}, "stack name"),
        ({"name": "ok", "throughput_mode": "provisioned"}, "provisioned_mibps"),
        ({"name": "ok", "provisioned_mibps": 5}, "provisioned_mibps"),
        ({"name": "ok", "mount_path": "/mnt/a/b"}, "mount_path"),
        ({"name": "ok", "memory_mb": 64}, "memory_mb"),
        ({"name": "ok", "loader_timeout_s": 901}, "loader_timeout_s"),
        ({"name": "ok", "az_count": 1}, "az_count"),
        ({"name": "ok", "arch": "ppc"}, "arch"),
        ({"name": "ok", "root_permissions": "rwx"}, "root_permissions"),
    ):
        with pytest.raises(ValueError, match=match):
            aws.StackConfig(**bad)


def test_deploy_refuses_a_zip_for_another_target(tiny_zip: aws.BuildResult, session: boto3.Session) -> None:
    with pytest.raises(ValueError, match=r"the stack runs python3\.13 x86_64"):
        aws.deploy(
            config("target"), build=dataclasses.replace(tiny_zip, python_version="3.11"), session=session
        )
    headless = dataclasses.replace(tiny_zip, files=("efs_sqlite/__init__.py",))
    with pytest.raises(aws.DeployError, match=r"no handler for \['graphql', 'loader'\]"):
        aws.deploy(config("target"), build=headless, session=session)


def test_deploy_refuses_a_reserved_concurrency_past_the_lock_quota_before_any_call(
    session: boto3.Session, tiny_zip: aws.BuildResult
) -> None:
    recorder = Recorder(session)
    # 100 + 71 environments of the two functions could all lock the _type shard at once: over 170.
    over = config("quota", reserved_concurrency=100, loader_reserved_concurrency=71)
    for dry_run in (False, True):
        with pytest.raises(LockQuotaExceeded, match="reserved concurrency: 171 processes, but at most 170"):
            aws.deploy(over, build=tiny_zip, session=session, dry_run=dry_run)
    assert recorder.requests == [] and tagged(session, "quota") == []
    at_the_quota = dataclasses.replace(over, loader_reserved_concurrency=70)
    aws.deploy(at_the_quota, build=tiny_zip, session=session)
    assert "efs-sqlite-quota-graphql" in tagged(session, "quota")
    aws.teardown("quota", session=session)


# -- loading a deployed stack ------------------------------------------------------------------


def test_load_does_not_take_motos_canned_invoke_answer_for_a_load(
    session: boto3.Session, tiny_zip: aws.BuildResult
) -> None:
    stack = aws.deploy(config("loadmoto"), build=tiny_zip, session=session)
    with pytest.raises(aws.RemoteLoadError, match=r"batch 0 \(records 0\.\.1\)"):
        aws.remote_load(
            stack, [("claim_type_code", 1, "A"), ("claim_type_code", 2, "B")], session=session, progress=False
        )
    aws.teardown("loadmoto", session=session)


# -- the command line -------------------------------------------------------------------------


def test_cli_deploy_dry_run_and_teardown(moto_endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "deploy",
                "--stack",
                "cli",
                "--region",
                "us-east-1",
                "--throughput-mode",
                "bursting",
                "--dry-run",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "efs.create_file_system(" in out and "ThroughputMode='bursting'" in out
    assert main(["teardown", "--stack", "cli", "--region", "us-east-1"]) == 0
    assert "0 calls" in capsys.readouterr().out


def test_cli_query_of_a_missing_stack_is_a_clear_error(
    moto_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["query", "--stack", "nowhere", "--region", "us-east-1", "{ __typename }"]) == 1
    err = capsys.readouterr().err
    assert "stack 'nowhere' in us-east-1 is not (fully) deployed" in err
    assert "Traceback" not in err


def test_moto_server_restores_the_environment() -> None:
    before = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_REGION")}
    with aws.moto_server() as url:
        assert os.environ["AWS_ENDPOINT_URL"] == url and url.startswith("http://127.0.0.1:")
        assert boto3.Session().client("ec2").describe_vpcs()["Vpcs"] is not None
    assert {k: os.environ.get(k) for k in before} == before
