"""efs_sqlite.aws.build and .verify: the Lambda zip, and its handlers imported from it unpacked.

The zip tests build the real package with dependencies from PyPI (pip's cache keeps reruns fast):
one build for the Lambda target, one more to prove reproducibility; the others use tiny source
trees (``_tiny_project``) of the same layout.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from _tiny_project import make_project

from efs_sqlite import aws, uid
from efs_sqlite.cli import main

ROOT = Path(__file__).resolve().parent.parent
LOCAL_VERSION = "{}.{}".format(*sys.version_info[:2])
LOCAL_ARCH = "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"
OTHER_ARCH = "x86_64" if LOCAL_ARCH == "arm64" else "arm64"


# -- zips -------------------------------------------------------------------------------------


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
