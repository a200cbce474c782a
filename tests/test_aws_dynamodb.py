"""A DynamoDB stack (``StackConfig(backend="dynamodb")``, ``efs-sqlite deploy --backend dynamodb``)
on the moto server of the ``moto_endpoint`` fixture: the requests deploy sends (an on-demand table,
a role allowed onto that table only, the GraphQL function with no VPC nor EFS), converging,
teardown; and the GraphQL handler called in process, with the deployed function's environment and
real Function URL events, on the deployed (moto) table. moto stores the function but never runs it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from test_aws_stack import Recorder, config, tagged

from efs_sqlite import aws
from efs_sqlite.aws.fakes import LambdaContext, function_url_event, import_handler
from efs_sqlite.cli import main
from efs_sqlite.dynamodb.layout import table_definition

HANDLER_ACTIONS = [
    "dynamodb:BatchGetItem",
    "dynamodb:DeleteItem",
    "dynamodb:DescribeTable",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
]


@pytest.fixture
def session(moto_endpoint: str) -> boto3.Session:
    return boto3.Session(region_name="us-east-1")


def table_config(name: str, **changes: Any) -> aws.StackConfig:
    return config(name, backend="dynamodb", **changes)


def deploy(name: str, session: boto3.Session, build: aws.BuildResult, **changes: Any) -> aws.Stack:
    settings = table_config(name, **changes)
    return aws.deploy(settings, build=build, session=session, table=table_definition(settings.table_name))


def document(policy: Any) -> dict[str, Any]:
    return json.loads(policy) if isinstance(policy, str) else policy


def test_deploy_sends_a_table_a_role_on_it_only_and_the_graphql_function(
    session: boto3.Session, tiny_zip: aws.BuildResult
) -> None:
    recorder = Recorder(session)
    stack = deploy("tbl", session, tiny_zip, reserved_concurrency=4)
    services = {service for service, _, _ in recorder.requests}
    assert services == {"dynamodb", "efs", "iam", "lambda", "logs"}
    # No network and no file system: EFS is only read, to refuse a name an EFS stack has.
    assert [(s, op) for s, op, _ in recorder.requests if s in ("ec2", "efs")] == [
        ("efs", "DescribeFileSystems")
    ]

    (created,) = recorder.sent("CreateTable")
    assert created == {
        **table_definition("efs-sqlite-tbl-table"),
        "Tags": [
            {"Key": aws.TAG_KEY, "Value": "tbl"},
            {"Key": "efs-sqlite:component", "Value": "table"},
            {"Key": "Name", "Value": "efs-sqlite-tbl-table"},
        ],
    }
    assert created["BillingMode"] == "PAY_PER_REQUEST"
    table = session.client("dynamodb").describe_table(TableName=stack.table_name)["Table"]
    assert table["TableArn"] == stack.table_arn and table["TableStatus"] == "ACTIVE"
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"

    # Least privilege: the table's ARN is the only DynamoDB resource, the handler's actions the only
    # ones; logs only into the function's own group; no managed policy at all.
    assert recorder.sent("AttachRolePolicy") == []
    policies = {p["PolicyName"]: document(p["PolicyDocument"]) for p in recorder.sent("PutRolePolicy")}
    assert sorted(policies) == ["dynamodb-table", "function-logs"]
    assert policies["dynamodb-table"]["Statement"] == [
        {"Effect": "Allow", "Action": HANDLER_ACTIONS, "Resource": stack.table_arn}
    ]
    assert policies["function-logs"]["Statement"] == [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/efs-sqlite-tbl-graphql:*",
        }
    ]
    everything = json.dumps(list(policies.values()))
    assert '"*"' not in everything and "Scan" not in everything and "BatchWriteItem" not in everything
    iam = session.client("iam")
    role = stack.role_arn.rsplit("/", 1)[1]
    assert sorted(iam.list_role_policies(RoleName=role)["PolicyNames"]) == ["dynamodb-table", "function-logs"]
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
    stored = document(iam.get_role_policy(RoleName=role, PolicyName="dynamodb-table")["PolicyDocument"])
    assert stored == policies["dynamodb-table"]

    (function,) = recorder.sent("CreateFunction")  # the GraphQL function alone: no loader
    assert function["FunctionName"] == stack.graphql_function == "efs-sqlite-tbl-graphql"
    assert function["Environment"] == {"Variables": {"DYNAMODB_TABLE": "efs-sqlite-tbl-table"}}
    assert "VpcConfig" not in function and "FileSystemConfigs" not in function
    assert function["Role"] == stack.role_arn and function["Handler"] == "lambdas.graphql.handler.handler"
    lam = session.client("lambda")
    assert lam.get_function(FunctionName=stack.graphql_function)["Concurrency"] == {
        "ReservedConcurrentExecutions": 4
    }
    (url,) = recorder.sent("CreateFunctionUrlConfig")
    assert url["AuthType"] == "AWS_IAM" == stack.auth_type
    assert stack.backend == "dynamodb" and stack.file_system_id == stack.vpc_id == stack.loader_function == ""

    # Looked up by the stack's name alone: its function says it serves a table.
    assert aws.find_stack("tbl", session=session) == stack
    aws.teardown("tbl", session=session)


def test_deploy_twice_creates_nothing_and_repairs_the_role_and_the_billing(
    session: boto3.Session, tiny_zip: aws.BuildResult
) -> None:
    first = deploy("again", session, tiny_zip)
    role = first.role_arn.rsplit("/", 1)[1]
    iam, ddb = session.client("iam"), session.client("dynamodb")
    # Someone widens the role and moves the table to provisioned capacity: the next deploy undoes both.
    iam.attach_role_policy(RoleName=role, PolicyArn="arn:aws:iam::aws:policy/AmazonDynamoDBFullAccess")
    wide = {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}
    iam.put_role_policy(
        RoleName=role,
        PolicyName="extra",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [wide]}),
    )
    ddb.update_table(
        TableName=first.table_name,
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
    )
    recorder = Recorder(session)
    second = deploy("again", session, tiny_zip)
    assert second == first
    assert not [w for w in recorder.writes() if w.startswith("Create")], recorder.writes()
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
    assert sorted(iam.list_role_policies(RoleName=role)["PolicyNames"]) == ["dynamodb-table", "function-logs"]
    assert [p["BillingMode"] for p in recorder.sent("UpdateTable")] == ["PAY_PER_REQUEST"]
    assert len(tagged(session, "again")) == 3  # role, function, log group (the table: below)
    aws.teardown("again", session=session)


def test_teardown_removes_table_function_url_and_role(
    session: boto3.Session, tiny_zip: aws.BuildResult
) -> None:
    stack = deploy("tblgone", session, tiny_zip)
    ddb, lam, iam = (session.client(s) for s in ("dynamodb", "lambda", "iam"))
    other = ddb.create_table(**table_definition("look-alike"))["TableDescription"]["TableName"]
    calls = aws.teardown("tblgone", session=session)  # the name alone: either backend's stack
    operations = [c.operation for c in calls]
    assert (
        operations.index("delete_function")
        < operations.index("delete_table")
        < operations.index("delete_role")
    )
    assert tagged(session, "tblgone") == []
    gone = (
        lambda: ddb.describe_table(TableName=stack.table_name),
        lambda: lam.get_function(FunctionName=stack.graphql_function),
        lambda: lam.get_function_url_config(FunctionName=stack.graphql_function),
        lambda: iam.get_role(RoleName=stack.role_arn.rsplit("/", 1)[1]),
    )
    for call in gone:
        with pytest.raises(ClientError, match=r"NotFound|NoSuchEntity"):
            call()
    assert ddb.describe_table(TableName=other)["Table"]  # untagged: not the stack's
    assert aws.teardown("tblgone", session=session) == []
    # A namesake table without the tag: teardown leaves it, deploy refuses it.
    ddb.create_table(**table_definition(stack.table_name))
    with pytest.warns(UserWarning, match="DynamoDB table efs-sqlite-tblgone-table is not tagged"):
        assert aws.teardown("tblgone", session=session) == []
    with pytest.raises(aws.DeployError, match=r"not tagged .*refusing"):
        deploy("tblgone", session, tiny_zip)
    for table in (other, stack.table_name):
        ddb.delete_table(TableName=table)


def test_deploy_refuses_a_missing_or_wrong_table_definition(
    session: boto3.Session, tiny_zip: aws.BuildResult
) -> None:
    with pytest.raises(ValueError, match="with, and only with, backend='dynamodb'"):
        aws.deploy(table_config("bad"), build=tiny_zip, session=session)
    with pytest.raises(ValueError, match="with, and only with"):
        aws.deploy(config("bad"), build=tiny_zip, session=session, table=table_definition("x"))
    with pytest.raises(aws.DeployError, match="the stack's is 'efs-sqlite-bad-table'"):
        aws.deploy(table_config("bad"), build=tiny_zip, session=session, table=table_definition("x"))
    provisioned = {**table_definition("efs-sqlite-bad-table"), "BillingMode": "PROVISIONED"}
    with pytest.raises(aws.DeployError, match="on demand"):
        aws.deploy(table_config("bad"), build=tiny_zip, session=session, table=provisioned)
    assert tagged(session, "bad") == []


def test_a_stack_keeps_its_backend_and_a_table_stack_has_no_remote_loader(
    session: boto3.Session, tiny_zip: aws.BuildResult
) -> None:
    aws.deploy(config("swap"), build=tiny_zip, session=session)
    with pytest.raises(aws.DeployError, match="'swap' is deployed on efs: tear it down first"):
        deploy("swap", session, tiny_zip)
    aws.teardown("swap", session=session)
    stack = deploy("swap", session, tiny_zip)
    with pytest.raises(aws.DeployError, match="'swap' is deployed on dynamodb"):
        aws.deploy(config("swap"), build=tiny_zip, session=session)
    with pytest.raises(
        aws.RemoteLoadError, match="efs-sqlite load --backend dynamodb --table efs-sqlite-swap"
    ):
        aws.remote_load(stack, [("claim_type_code", 1, "A")], session=session, progress=False)
    aws.teardown("swap", session=session)
    assert tagged(session, "swap") == []


def test_the_handler_serves_the_deployed_table_with_the_functions_environment(
    session: boto3.Session, tiny_zip: aws.BuildResult, insurance: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from efs_sqlite.dynamodb import DynamoStore
    from efs_sqlite.loader import dump, load

    stack = deploy("served", session, tiny_zip)
    with DynamoStore(stack.table_name) as store:  # loaded from where one deploys, as the README says
        load(store, dump(insurance.store), progress=False)
    deployed = session.client("lambda").get_function_configuration(FunctionName=stack.graphql_function)
    for name, value in deployed["Environment"]["Variables"].items():
        monkeypatch.setenv(name, value)
    lam = import_handler("graphql", Path("/no/mount/on/a/table/stack"))
    context = LambdaContext(stack.graphql_function)

    def post(query: str) -> dict[str, Any]:
        response = lam.handler(function_url_event({"query": query}), context)
        assert response["statusCode"] == 200, response
        return json.loads(response["body"])

    try:
        assert type(lam.store).__name__ == "DynamoStore" and lam.store.table == stack.table_name
        claim = insurance.ids[insurance.claim]
        read = (
            f'{{ claim(id: "{claim}") {{ claimIdentifier partiesConnection(first: 2) {{ totalCount }} }} }}'
        )
        assert post(read) == {
            "data": {"claim": {"claimIdentifier": 4242, "partiesConnection": {"totalCount": 10}}}
        }
        created = post(
            'mutation { createParty(input: {partyIdentifier: 77, timestamp: "2024-02-02T00:00:00Z",'
            f' claims: ["{claim}"]}}) {{ id }} }}'
        )
        assert "errors" not in created, created
        assert post(read)["data"]["claim"]["partiesConnection"]["totalCount"] == 11
        health = lam.handler(function_url_event(method="GET", path="/healthz"), context)
        assert health["statusCode"] == 200
    finally:
        lam.store.close()
    aws.teardown("served", session=session)


def test_cli_deploys_and_tears_down_a_dynamodb_stack(
    moto_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--stack", "clitbl", "--region", "us-east-1"]
    assert main(["deploy", *argv, "--backend", "dynamodb", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dynamodb.create_table(TableName='efs-sqlite-clitbl-table'" in out
    assert "BillingMode='PAY_PER_REQUEST'" in out
    assert "ec2." not in out and "efs." not in out and "DYNAMODB_TABLE" in out
    assert main(["teardown", *argv]) == 0
    assert "0 calls" in capsys.readouterr().out
