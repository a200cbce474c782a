"""efs_sqlite.aws: the Lambda zip, its verification, and deploy/teardown against a moto server.

The zip tests build the real package with dependencies from PyPI (pip's cache keeps reruns fast):
one build for the Lambda target, one more to prove reproducibility. The deploy tests use a small
zip of the same layout, since moto stores code but never runs it. Everything AWS goes to the moto
server on 127.0.0.1 started by the ``moto_endpoint`` fixture (conftest.py).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import http.server
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from efs_sqlite import aws, uid
from efs_sqlite.aws.fakes import import_handler
from efs_sqlite.cli import main

ROOT = Path(__file__).resolve().parent.parent
LOCAL_VERSION = "{}.{}".format(*sys.version_info[:2])
LOCAL_ARCH = "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"
OTHER_ARCH = "x86_64" if LOCAL_ARCH == "arm64" else "arm64"


# -- zips -------------------------------------------------------------------------------------

TINY_HANDLERS = {
    # Writes what it got into the mount, so the next handler can prove the mount is shared.
    "loader": """
import json, os

def handler(event, context):
    records = event["records"]
    with open(os.path.join(os.environ["MOUNT_PATH"], "loaded.json"), "w") as f:
        json.dump(records, f)
    return {"loaded": len(records)}
""",
    # Reports the interpreter's isolation and what the loader left in the mount.
    "graphql": """
import json, os, sys

def handler(event, context):
    with open(os.path.join(os.environ["MOUNT_PATH"], "loaded.json")) as f:
        loaded = json.load(f)
    return {
        "statusCode": 200,
        "body": json.dumps({
            "isolated": sys.flags.isolated,
            "no_site": sys.flags.no_site,
            "site_loaded": "site" in sys.modules,
            "function": context.function_name,
            "path": event["rawPath"],
            "loaded": loaded,
        }),
    }
""",
}


def make_project(root: Path, handlers: dict[str, str], dependencies: list[str]) -> Path:
    """A minimal source tree with the project's layout, for builds that need no PyPI."""
    (root / "efs_sqlite" / "__pycache__").mkdir(parents=True)
    (root / "efs_sqlite" / "__init__.py").write_text("VERSION = 'tiny'\n")
    (root / "efs_sqlite" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"stale")
    for function, source in handlers.items():
        (root / "efs_sqlite" / "lambdas" / function).mkdir(parents=True)
        (root / "efs_sqlite" / "lambdas" / function / "handler.py").write_text(source)
    deps = ", ".join(json.dumps(d) for d in dependencies)
    (root / "pyproject.toml").write_text(f'[project]\nname = "tiny"\ndependencies = [{deps}]\n')
    return root


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # boto3 is the only dependency, and the runtime provides it: pip has nothing to install.
    return make_project(tmp_path_factory.mktemp("tiny"), TINY_HANDLERS, ["boto3>=1.34"])


@pytest.fixture(scope="session")
def tiny_zip(tiny_project: Path, tmp_path_factory: pytest.TempPathFactory) -> aws.BuildResult:
    """A deployable zip (Python 3.13, the stack's architecture) without dependencies."""
    return aws.build_zip(tmp_path_factory.mktemp("tiny-zip"), project_root=tiny_project)


@pytest.fixture(scope="session")
def project_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the source tree: builds compared with each other must have the same inputs."""
    snapshot = tmp_path_factory.mktemp("snapshot")
    shutil.copy2(ROOT / "pyproject.toml", snapshot)
    shutil.copytree(
        ROOT / "efs_sqlite", snapshot / "efs_sqlite", ignore=shutil.ignore_patterns("__pycache__")
    )
    return snapshot


@pytest.fixture(scope="session")
def lambda_zip(project_snapshot: Path, tmp_path_factory: pytest.TempPathFactory) -> aws.BuildResult:
    """The real zip for the Lambda target: python3.13, x86_64."""
    return aws.build_zip(tmp_path_factory.mktemp("lambda-zip"), project_root=project_snapshot)


@pytest.fixture(scope="session")
def importable_zip(
    lambda_zip: aws.BuildResult, project_snapshot: Path, tmp_path_factory: pytest.TempPathFactory
) -> aws.BuildResult:
    """The Lambda zip if a local Python 3.13 can import it, else one built for this interpreter."""
    if aws.find_python(lambda_zip.python_version, lambda_zip.arch):
        return lambda_zip
    return aws.build_zip(
        tmp_path_factory.mktemp("local-zip"),
        python_version=LOCAL_VERSION,
        arch=LOCAL_ARCH,
        project_root=project_snapshot,
    )


def test_runtime_requirements_leave_out_what_lambda_provides(tmp_path: Path) -> None:
    real = aws.runtime_requirements(ROOT / "pyproject.toml")
    assert any(r.startswith("apsw") for r in real)
    assert any(r.startswith("graphene") for r in real)
    assert not any(r.lower().startswith("boto") for r in real)
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\ndependencies = ["Boto3[crt]>=1", "botocore", "S3Transfer", "tqdm>=4", "boto3-stubs"]\n'
    )
    assert aws.runtime_requirements(pyproject) == ["tqdm>=4", "boto3-stubs"]


def test_zip_holds_the_package_and_dependencies_but_not_boto3(
    lambda_zip: aws.BuildResult, project_snapshot: Path
) -> None:
    with zipfile.ZipFile(lambda_zip.path) as archive:
        names = archive.namelist()
        infos = archive.infolist()
    assert names == sorted(names) == list(lambda_zip.files)
    assert lambda_zip.size == lambda_zip.path.stat().st_size < aws.MAX_ZIP_BYTES
    assert lambda_zip.sha256 == hashlib.sha256(lambda_zip.path.read_bytes()).hexdigest()
    package = project_snapshot / "efs_sqlite"
    sources = [
        *(
            p.relative_to(project_snapshot)
            for p in package.rglob("*.py")
            if p.parent.parent.name != "lambdas"
        ),
        *(p.relative_to(package) for p in (package / "lambdas").rglob("*.py")),  # the entry points
    ]
    assert {p.as_posix() for p in sources} <= set(names)
    assert set(lambda_zip.handlers) == {"graphql", "loader"}
    tops = {n.split("/")[0] for n in names}
    for dependency in ("apsw", "graphene", "graphql", "mangum", "starlette", "tqdm"):
        assert dependency in tops, dependency
    # apsw's extension built for the Lambda runtime, not for this interpreter.
    assert any(re.fullmatch(r"apsw/__init__\.cpython-313-x86_64-linux-gnu\.so", n) for n in names)
    for provided in ("boto3", "botocore", "s3transfer"):
        assert not any(t == provided or t.startswith(f"{provided}-") for t in tops), provided
    assert "bin" not in tops
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.endswith((".dist-info/RECORD", ".dist-info/INSTALLER"))]
    assert any(n.endswith(".dist-info/METADATA") for n in names)  # kept: importlib.metadata needs it
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}
    assert lambda_zip.unzipped_size == sum(i.file_size for i in infos)
    print(
        f"\nLambda zip: {lambda_zip.size / 2**20:.2f} MB, {lambda_zip.unzipped_size / 2**20:.1f} MB unzipped"
    )


def test_zip_is_reproducible(lambda_zip: aws.BuildResult, project_snapshot: Path, tmp_path: Path) -> None:
    again = aws.build_zip(tmp_path, project_root=project_snapshot)
    with zipfile.ZipFile(lambda_zip.path) as one, zipfile.ZipFile(again.path) as two:
        first, second = set(one.namelist()), set(two.namelist())
        changed = sorted(n for n in first & second if one.read(n) != two.read(n))
    assert (sorted(first - second), sorted(second - first), changed) == ([], [], [])
    assert (again.sha256, again.path.read_bytes()) == (lambda_zip.sha256, lambda_zip.path.read_bytes())


def test_cli_builds_and_verifies(
    tiny_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["build", "--out", str(tmp_path), "--project-root", str(tiny_project), "--verify"]
    assert main([*argv, "--python-version", LOCAL_VERSION, "--arch", LOCAL_ARCH]) == 0
    out = capsys.readouterr().out
    built = tmp_path / f"efs-sqlite-lambda-py{LOCAL_VERSION}-{LOCAL_ARCH}.zip"
    assert hashlib.sha256(built.read_bytes()).hexdigest() in out
    assert "3 files  handlers: ['graphql', 'loader']" in out
    assert f"handlers import from the unpacked zip under {sys.executable}" in out
    assert main([*argv, "--arch", OTHER_ARCH]) == 0
    assert f"import check skipped: the zip targets {OTHER_ARCH} Linux" in capsys.readouterr().out


def test_cli_builds_the_installed_package_from_any_folder(tmp_path: Path) -> None:
    """``efs-sqlite build --out DIR --verify`` run from a folder that is not the checkout, with the
    package importable only from a copy that has no source tree around it, as in site-packages."""
    site, elsewhere, out = tmp_path / "site", tmp_path / "elsewhere", tmp_path / "dist"
    shutil.copytree(ROOT / "efs_sqlite", site / "efs_sqlite", ignore=shutil.ignore_patterns("__pycache__"))
    (site / "efs_sqlite" / "copy-marker.txt").write_text("this copy was packed\n")
    elsewhere.mkdir()
    script = str(Path(sys.executable).with_name("efs-sqlite"))
    target = ["--python-version", LOCAL_VERSION, "--arch", LOCAL_ARCH]
    done = subprocess.run(
        [script, "build", "--out", str(out), "--verify", *target],
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "handlers: ['graphql', 'loader']" in done.stdout
    assert f"handlers import from the unpacked zip under {sys.executable}" in done.stdout
    (built,) = out.iterdir()
    with zipfile.ZipFile(built) as archive:
        names = set(archive.namelist())
    assert {"efs_sqlite/copy-marker.txt", "lambdas/graphql/handler.py", "lambdas/loader/handler.py"} <= names
    assert not [n for n in names if n.startswith("efs_sqlite/lambdas/")]
    assert "apsw" in {n.split("/")[0] for n in names}  # the installed distribution's dependencies
    assert list(elsewhere.iterdir()) == []


def test_tiny_zip_excludes_bytecode_and_keeps_handlers(tiny_zip: aws.BuildResult) -> None:
    assert tiny_zip.files == (
        "efs_sqlite/__init__.py",
        "lambdas/graphql/handler.py",
        "lambdas/loader/handler.py",
    )
    assert tiny_zip.handlers == {"graphql": "lambdas.graphql.handler", "loader": "lambdas.loader.handler"}


def test_oversized_zip_is_refused_and_not_left_behind(tmp_path: Path) -> None:
    project = make_project(tmp_path / "big", {"graphql": "def handler(e, c): pass\n"}, [])
    (project / "efs_sqlite" / "blob.bin").write_bytes(os.urandom(aws.MAX_ZIP_BYTES + 2**20))
    with pytest.raises(aws.BuildError, match=r"Lambda allows 50 MB.*efs_sqlite"):
        aws.build_zip(tmp_path / "out", project_root=project)
    assert list((tmp_path / "out").iterdir()) == []


def test_build_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="arch"):
        aws.build_zip(tmp_path, arch="sparc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="python_version"):
        aws.build_zip(tmp_path, python_version="313")
    with pytest.raises(FileNotFoundError, match="source tree"):
        aws.build_zip(tmp_path, project_root=tmp_path)


# -- verification -----------------------------------------------------------------------------


def test_verify_runs_each_handler_isolated_against_one_mount(tiny_project: Path, tmp_path: Path) -> None:
    build = aws.build_zip(tmp_path, project_root=tiny_project, python_version=LOCAL_VERSION, arch=LOCAL_ARCH)
    records = [{"shard": "claim_type_code", "uid": 1, "value": "MOTOR"}]
    result = aws.verify_zip(
        build,
        events={
            "loader": {"action": "load", "records": records},
            "graphql": aws.function_url_event({"query": "{ __typename }"}),
        },
        python=sys.executable,
        mount=tmp_path / "mnt",
    )
    assert result.skipped is None and result.python == sys.executable
    assert [c.function for c in result.checks] == ["loader", "graphql"]
    assert result.response("loader") == {"loaded": 1}
    answer = json.loads(result.response("graphql")["body"])
    assert answer == {
        "isolated": 1,
        "no_site": 1,
        "site_loaded": False,
        "function": "verify-graphql",
        "path": "/graphql",
        "loaded": records,
    }
    assert json.loads((tmp_path / "mnt" / "loaded.json").read_text()) == records


def test_verify_fails_a_handler_that_needs_the_dev_environment(tmp_path: Path) -> None:
    # pytest is importable here, in the dev venv, but must not be from the unpacked zip.
    leaky = {"graphql": "import pytest\n\ndef handler(event, context):\n    return 1\n"}
    project = make_project(tmp_path / "leaky", leaky, [])
    build = aws.build_zip(
        tmp_path / "out", project_root=project, python_version=LOCAL_VERSION, arch=LOCAL_ARCH
    )
    with pytest.raises(aws.VerifyError, match=r"No module named 'pytest'"):
        aws.verify_zip(build, python=sys.executable)


def test_verify_says_why_it_cannot_run_another_platform(tiny_zip: aws.BuildResult) -> None:
    foreign = dataclasses.replace(tiny_zip, arch=OTHER_ARCH)
    result = aws.verify_zip(foreign)
    assert result.checks == () and result.python is None
    assert f"targets {OTHER_ARCH} Linux" in result.skipped
    assert platform.machine() in result.skipped
    future = dataclasses.replace(tiny_zip, python_version="3.99", arch=LOCAL_ARCH)
    assert aws.verify_zip(future).skipped == "no Python 3.99 interpreter found on this machine"
    with pytest.raises(ValueError, match=r"not Python 3\.99"):
        aws.verify_zip(future, python=sys.executable)
    with pytest.raises(ValueError, match="no handler in the zip"):
        aws.verify_zip(tiny_zip, events={"admin": {}})


def test_no_interpreter_here_runs_the_other_architecture() -> None:
    assert aws.find_python(LOCAL_VERSION, OTHER_ARCH) is None
    assert aws.find_python(LOCAL_VERSION, LOCAL_ARCH) is not None


def test_real_handlers_load_and_answer_from_the_unpacked_zip(importable_zip: aws.BuildResult) -> None:
    """The loader writes into the mount, then the GraphQL handler reads it back through a
    Function URL event: both imported from the unpacked zip by a clean interpreter (Python 3.13,
    the Lambda runtime's, when this machine has one)."""
    claim = 1234567
    records = [
        {"shard": "_type", "uid": claim, "value": "Claim"},
        {"shard": "claim_type_code", "uid": claim, "value": "MOTOR"},
    ]
    query = "query($id: ID!) { __typename claim(id: $id) { id claimTypeCode } }"
    result = aws.verify_zip(
        importable_zip,
        events={
            "loader": {"action": "load", "records": records},
            "graphql": aws.function_url_event({"query": query, "variables": {"id": uid.encode(claim)}}),
        },
    )
    assert result.skipped is None, result.skipped
    print(f"\nhandlers verified under {result.python} (zip for Python {importable_zip.python_version})")
    loaded = result.response("loader")
    assert (loaded["ok"], loaded["loaded"], loaded["shards"]) == (True, 2, {"_type": 1, "claim_type_code": 1})
    response = result.response("graphql")
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"]) == {
        "data": {"__typename": "Query", "claim": {"id": uid.encode(claim), "claimTypeCode": "MOTOR"}}
    }


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


# -- loading ----------------------------------------------------------------------------------


def test_load_events_stay_under_the_limit_and_keep_every_record() -> None:
    records = [{"shard": "claim_type_code", "uid": i, "value": "é" * (i % 700)} for i in range(3000)]
    events = list(aws.load_events(records, max_bytes=64 * 1024, max_records=500))
    assert len(events) > 6
    decoded = []
    for event in events:
        assert len(event.payload) <= 64 * 1024
        body = json.loads(event.payload)
        assert body["action"] == "load" and len(body["records"]) == event.count <= 500
        decoded += body["records"]
    assert decoded == records
    assert [json.loads(e.payload) for e in aws.load_events([("s", 1, [1, 2])])] == [
        {"action": "load", "records": [{"shard": "s", "uid": 1, "value": [1, 2]}]}
    ]


def test_load_events_reject_what_the_loader_could_not_take() -> None:
    for bad, match in (
        ([{"shard": "s", "uid": "1", "value": 1}], "uid an int"),
        ([{"shard": "s", "uid": True, "value": 1}], "uid an int"),
        ([{"shard": "s", "uid": 1}], "exactly shard, uid and value"),
        ([("s", 1, float("nan"))], "not JSON"),
        ([("s", 1, object())], "not JSON"),
        ([("s", 1, "x" * 5000)], "alone is"),
    ):
        with pytest.raises(ValueError, match=match):
            list(aws.load_events(bad, max_bytes=4096))


def test_load_does_not_take_motos_canned_invoke_answer_for_a_load(
    session: boto3.Session, tiny_zip: aws.BuildResult
) -> None:
    stack = aws.deploy(config("loadmoto"), build=tiny_zip, session=session)
    with pytest.raises(aws.RemoteLoadError, match=r"batch 0 \(records 0\.\.1\)"):
        aws.remote_load(
            stack, [("claim_type_code", 1, "A"), ("claim_type_code", 2, "B")], session=session, progress=False
        )
    aws.teardown("loadmoto", session=session)


def test_load_through_the_real_loader_handler(tmp_path: Path) -> None:
    """load() against the loader's own handler, invoked in-process (moto cannot run it)."""
    module = import_handler("loader", tmp_path)

    class InProcessLambda:
        def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
            assert (FunctionName, InvocationType) == ("efs-sqlite-local-loader", "RequestResponse")
            answer = json.dumps(module.handler(json.loads(Payload), None)).encode()
            return {"StatusCode": 200, "Payload": io.BytesIO(answer)}

    stack = aws.Stack(
        "local", "us-east-1", "vpc", (), "sg-1", "sg-2", "fs", "fsap", "arn:ap", "arn:role",
        "efs-sqlite-local-graphql", "efs-sqlite-local-loader", "https://x", "AWS_IAM",
    )  # fmt: skip
    records = [("claim_type_code", n, f"T{n}") for n in range(1, 2001)]
    summary = aws.remote_load(stack, records, client=InProcessLambda(), max_records=300, progress=False)
    assert (summary.records, summary.invocations) == (2000, 7)
    assert sum(r["shards"]["claim_type_code"] for r in summary.responses) == 2000
    again = aws.remote_load(stack, records, client=InProcessLambda(), max_records=300, progress=False)
    assert sum(r["skipped"] for r in again.responses) == 2000  # a re-run is safe: nothing rewritten
    bad = [*records[:400], ("claim_type_code", 0, "T0")]
    with pytest.raises(
        aws.RemoteLoadError, match=r"batch 1 \(records 300\.\.400\): the loader refused it.*\n  record 400: "
    ):
        aws.remote_load(stack, bad, client=InProcessLambda(), max_records=300, progress=False)


# -- signed queries ---------------------------------------------------------------------------

KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


class SigV4CheckingServer(http.server.BaseHTTPRequestHandler):
    """Answers a GraphQL echo only when the request's SigV4 signature checks out for KEY/SECRET."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        auth = re.fullmatch(
            r"AWS4-HMAC-SHA256 Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request, "
            r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})",
            self.headers.get("Authorization", ""),
        )
        ok = False
        if auth and auth[1] == KEY and auth[3] == "lambda":
            signed = {h: self.headers[h] for h in auth[4].split(";")}
            request = AWSRequest(
                "POST", f"http://{self.headers['host']}{self.path}", data=body, headers=signed
            )
            request.context["timestamp"] = self.headers["X-Amz-Date"]
            signer = SigV4Auth(Credentials(KEY, SECRET), "lambda", auth[2])
            expected = signer.signature(
                signer.string_to_sign(request, signer.canonical_request(request)), request
            )
            ok = expected == auth[5]
        status, answer = (
            (200, {"data": {"echo": json.loads(body)}}) if ok else (403, {"Message": "Forbidden"})
        )
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def signing_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SigV4CheckingServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/graphql"
    server.shutdown()
    thread.join()


def test_signed_query_signs_with_sigv4_for_lambda(signing_server: str) -> None:
    good = boto3.Session(aws_access_key_id=KEY, aws_secret_access_key=SECRET)
    answer = aws.signed_query(signing_server, "{ claim { id } }", {"n": 1}, session=good, region="us-east-1")
    assert answer == {"data": {"echo": {"query": "{ claim { id } }", "variables": {"n": 1}}}}
    forged = boto3.Session(aws_access_key_id=KEY, aws_secret_access_key="not-the-secret")
    with pytest.raises(aws.AwsError, match="HTTP 403"):
        aws.signed_query(signing_server, "{ claim { id } }", session=forged, region="us-east-1")


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
