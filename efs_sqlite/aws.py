"""AWS deployment: build the Lambda zip, deploy and tear down a stack with boto3, load and query it.

One *stack* is everything a deployment creates, each resource tagged ``efs-sqlite:stack=<name>``:
a VPC with private subnets in two zones (or subnets you give), two security groups (NFS 2049 only
from the functions), an encrypted EFS file system with a mount target per subnet and an access
point, a least-privilege role, the GraphQL function behind an IAM-authenticated Function URL and the
loader function (no URL). :func:`deploy` is idempotent (get-or-create, then converge), and
:func:`teardown` deletes only what carries the stack's tag.

This module runs where you deploy from (a laptop, a notebook, CI); the Lambda functions never import
it. Nothing here imports the runtime modules: the zip carries them as files.

>>> config = StackConfig("demo", region="us-east-1")
>>> config.graphql_function, config.mount_path
('efs-sqlite-demo-graphql', '/mnt/efs-sqlite')
"""

from __future__ import annotations

import base64
import functools
import hashlib
import ipaddress
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar, overload

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError

from efs_sqlite.errors import AwsError, BuildError, DeployError, RemoteLoadError, VerifyError

__all__ = [
    "MAX_EVENT_BYTES",
    "MAX_ZIP_BYTES",
    "RUNTIME",
    "TAG_KEY",
    "BuildResult",
    "Call",
    "HandlerCheck",
    "LoadEvent",
    "LoadSummary",
    "Stack",
    "StackConfig",
    "Verification",
    "build_zip",
    "deploy",
    "find_python",
    "find_stack",
    "function_url_event",
    "load_events",
    "moto_server",
    "remote_load",
    "runtime_requirements",
    "signed_query",
    "teardown",
    "verify_zip",
]

log = logging.getLogger(__name__)

TAG_KEY = "efs-sqlite:stack"
COMPONENT_KEY = "efs-sqlite:component"
RUNTIME = "python3.13"
#: Lambda's limit for a zip uploaded directly with the request.
MAX_ZIP_BYTES = 50 * 1024 * 1024
#: Lambda's limit for the unpacked code of a function.
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
#: Lambda's limit for a synchronous invocation's request payload.
MAX_EVENT_BYTES = 6 * 1024 * 1024
FUNCTIONS = ("graphql", "loader")

_PROJECT_ROOT = Path(__file__).resolve().parent.parent
_MACHINES = {"x86_64": ("x86_64", "amd64"), "arm64": ("aarch64", "arm64")}
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# The Lambda Python runtime ships boto3; bundling our own copy only adds ~20 MB.
_RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer"})
_DIST_INFO_NOISE = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})
_HANDLER_FILE = re.compile(r"^lambdas/([A-Za-z0-9_]+)/handler\.py$")
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
_MOUNT_PATH = re.compile(r"^/mnt/[a-zA-Z0-9-_.]+$")
_VPC_LAMBDA_POLICY = "service-role/AWSLambdaVPCAccessExecutionRole"
# Lambda refuses subnets in this us-east-1 zone ("The provided subnets contain availability zone
# Lambda doesn't support"), so automatic zone picking skips it.
_LAMBDA_UNSUPPORTED_ZONE_IDS = frozenset({"use1-az3"})
_PUBLIC_STATEMENTS = ("efs-sqlite-public-url", "efs-sqlite-public-invoke")


# --------------------------------------------------------------------------------------------
# Build


@dataclass(frozen=True)
class BuildResult:
    """A built Lambda zip: where it is, how big, its digest and its file list."""

    path: Path
    size: int
    sha256: str
    files: tuple[str, ...]
    arch: str
    python_version: str
    unzipped_size: int

    @property
    def code_sha256(self) -> str:
        """The digest the way Lambda reports it (``CodeSha256``: base64 of the raw sha256)."""
        return base64.b64encode(bytes.fromhex(self.sha256)).decode()

    @property
    def handlers(self) -> dict[str, str]:
        """``{function: module}`` for each ``lambdas/<function>/handler.py`` in the zip."""
        found = (_HANDLER_FILE.match(name) for name in self.files)
        return {m[1]: f"lambdas.{m[1]}.handler" for m in found if m}


def runtime_requirements(pyproject: str | os.PathLike[str]) -> list[str]:
    """The ``[project] dependencies`` of *pyproject*, minus what the Lambda runtime provides."""
    data = tomllib.loads(Path(pyproject).read_text(encoding="utf-8"))
    requirements = data.get("project", {}).get("dependencies", [])
    return [r for r in requirements if _distribution(r) not in _RUNTIME_PROVIDED]


def _distribution(requirement: str) -> str:
    """The normalised distribution name of a requirement string (PEP 503)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match[1]).lower()


def build_zip(
    out_dir: str | os.PathLike[str],
    *,
    arch: Literal["x86_64", "arm64"] = "x86_64",
    python_version: str = "3.13",
    project_root: str | os.PathLike[str] | None = None,
) -> BuildResult:
    """Build the Lambda zip: ``efs_sqlite``, ``lambdas/`` and the runtime dependencies.

    Dependencies are installed by pip for Lambda's platform (manylinux_2_28, CPython
    *python_version*, *arch*; pip's cache keeps rebuilds offline-fast). The zip is reproducible:
    sorted entries, fixed times and modes, no bytecode, no install records. Raises
    :class:`BuildError` when it would break Lambda's 50 MB zipped / 250 MB unzipped limits.
    """
    _check_choice("arch", arch, _MACHINES)
    if not re.fullmatch(r"3\.\d{1,2}", python_version):
        raise ValueError(f"python_version must look like '3.13', not {python_version!r}")
    root = Path(project_root) if project_root is not None else _PROJECT_ROOT
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file() or not (root / "efs_sqlite").is_dir():
        raise FileNotFoundError(
            f"{root} is not the project's source tree (pyproject.toml and efs_sqlite/ needed)"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"efs-sqlite-lambda-py{python_version}-{arch}.zip"
    with tempfile.TemporaryDirectory(prefix="efs-sqlite-build-") as tmp:
        site = Path(tmp)
        _pip_install(runtime_requirements(pyproject), site, arch, python_version)
        entries = _tree(site, site)
        for folder in ("efs_sqlite", "lambdas"):
            for arcname, path in _tree(root / folder, root).items():
                if arcname in entries:
                    raise BuildError(f"{arcname} is both a dependency file and a project file")
                entries[arcname] = path
        unzipped = _write_zip(target, entries)
    size = target.stat().st_size
    if size > MAX_ZIP_BYTES or unzipped > MAX_UNZIPPED_BYTES:
        target.unlink()
        raise BuildError(
            f"the zip is {size / 2**20:.1f} MB ({unzipped / 2**20:.1f} MB unzipped); Lambda allows "
            f"{MAX_ZIP_BYTES / 2**20:.0f} MB and {MAX_UNZIPPED_BYTES / 2**20:.0f} MB. Largest: "
            + ", ".join(f"{n} {s / 2**20:.1f} MB" for n, s in _largest(entries))
        )
    return BuildResult(
        path=target,
        size=size,
        sha256=hashlib.sha256(target.read_bytes()).hexdigest(),
        files=tuple(sorted(entries)),
        arch=arch,
        python_version=python_version,
        unzipped_size=unzipped,
    )


def _pip_install(requirements: list[str], site: Path, arch: str, python_version: str) -> None:
    if not requirements:
        return
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--target",
        str(site),
        "--platform",
        f"manylinux_2_28_{_MACHINES[arch][0]}",
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        "--only-binary=:all:",
        # Bytecode compiled by this interpreter would be for the wrong version, and not reproducible.
        "--no-compile",
        *requirements,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise BuildError(
            f"pip could not install the runtime dependencies for CPython {python_version} "
            f"{arch}:\n{done.stderr.strip()[-3000:]}"
        )


def _tree(folder: Path, base: Path) -> dict[str, Path]:
    """``{zip name: file}`` for the packable files under *folder*, named relative to *base*."""
    files = {p.relative_to(base).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    return {name: path for name, path in files.items() if _packable(name)}


def _packable(arcname: str) -> bool:
    parts = arcname.split("/")
    top = parts[0]
    if "__pycache__" in parts or arcname.endswith((".pyc", ".pyo")):
        return False
    if top == "bin":  # console scripts, their shebang names this machine's interpreter
        return False
    if _distribution(top.split("-")[0]) in _RUNTIME_PROVIDED:
        return False
    return not (top.endswith(".dist-info") and parts[-1] in _DIST_INFO_NOISE)


def _write_zip(target: Path, entries: Mapping[str, Path]) -> int:
    """Write *entries* reproducibly to *target* (atomically); returns the unzipped size."""
    partial = target.with_name(target.name + ".partial")
    unzipped = 0
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for arcname in sorted(entries):
            data = entries[arcname].read_bytes()
            info = zipfile.ZipInfo(arcname, date_time=_ZIP_EPOCH)
            info.create_system = 3  # Unix, so the mode below is honoured when Lambda unpacks
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
            unzipped += len(data)
    partial.replace(target)
    return unzipped


def _largest(entries: Mapping[str, Path], count: int = 5) -> list[tuple[str, int]]:
    sizes: dict[str, int] = {}
    for arcname, path in entries.items():
        top = arcname.split("/")[0]
        sizes[top] = sizes.get(top, 0) + path.stat().st_size
    return sorted(sizes.items(), key=lambda item: -item[1])[:count]


# --------------------------------------------------------------------------------------------
# Verify


@dataclass(frozen=True)
class HandlerCheck:
    """One handler imported from the unpacked zip, and its answer when it was given an event."""

    function: str
    module: str
    response: Any = None


@dataclass(frozen=True)
class Verification:
    """What :func:`verify_zip` proved: the interpreter used and each handler's check.

    ``skipped`` says why nothing ran (the zip targets another platform and no matching
    interpreter is here); ``checks`` is then empty.
    """

    python: str | None
    checks: tuple[HandlerCheck, ...]
    skipped: str | None = None

    def response(self, function: str) -> Any:
        """The answer of *function*'s handler to its event."""
        return next(c.response for c in self.checks if c.function == function)


def find_python(version: str, arch: Literal["x86_64", "arm64"] = "x86_64") -> str | None:
    """A local CPython *version* that can load a zip built for *arch* Linux, or None.

    Looks at this interpreter, ``python<version>`` on PATH, then pyenv's versions folder; each
    candidate is run once to confirm its version (pyenv shims exist for versions not enabled).
    """
    if not _runs_here(arch):
        return None
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [
        sys.executable,
        shutil.which(f"python{version}"),
        *map(str, sorted(pyenv.glob(f"versions/{version}*/bin/python{version}"))),
    ]
    for candidate in dict.fromkeys(c for c in candidates if c):
        if _python_version(candidate) == version:
            return candidate
    return None


def _runs_here(arch: str) -> bool:
    """Whether manylinux_2_28 *arch* wheels load on this machine."""
    libc, libc_version = platform.libc_ver()
    return (
        sys.platform == "linux"
        and platform.machine().lower() in _MACHINES[arch]
        and libc == "glibc"
        and tuple(map(int, libc_version.split(".")[:2])) >= (2, 28)
    )


def _python_version(python: str) -> str | None:
    try:
        done = subprocess.run(
            [python, "-I", "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


# Runs in the clean interpreter: -I ignores PYTHON* variables and the user site, -S skips site
# (so no site-packages at all), and the only path added is the unpacked zip, as on Lambda.
_VERIFY_SCRIPT = r"""
import importlib, json, os, sys, sysconfig
root, module, event_file, out_file = sys.argv[1:5]
sys.path.insert(0, root)

class Context:
    function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + function_name
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/" + function_name
    log_stream_name = "verify"
    def get_remaining_time_in_millis(self):
        return 30000

handler = importlib.import_module(module).handler
result = {"response": None}
if event_file:
    with open(event_file) as f:
        result["response"] = handler(json.load(f), Context())
paths = sysconfig.get_paths()
allowed = tuple(os.path.realpath(p) for p in (root, paths["stdlib"], paths["platstdlib"]))
result["outside"] = sorted(
    name for name, mod in list(sys.modules.items())
    if getattr(mod, "__file__", None) and not os.path.realpath(mod.__file__).startswith(allowed)
)
with open(out_file, "w") as f:
    json.dump(result, f, default=str)
"""


def verify_zip(
    build: BuildResult,
    *,
    events: Mapping[str, Any] | None = None,
    python: str | None = None,
    mount: str | os.PathLike[str] | None = None,
    timeout: float = 120.0,
) -> Verification:
    """Unpack *build* and import each handler in a clean interpreter that sees only the zip.

    *events* maps a function name (``"graphql"``, ``"loader"``) to an event its handler is called
    with, in that order, all against one mount folder (*mount*, or a fresh temporary one) given as
    ``MOUNT_PATH``; handlers without an event are only imported. The interpreter is *python* or
    :func:`find_python`; when none here can run the zip's platform, the result says so in
    ``skipped``. Raises :class:`VerifyError` with the handler's traceback on any failure, or when a
    module was loaded from outside the zip and the standard library.
    """
    handlers = build.handlers
    if not handlers:
        raise VerifyError(f"{build.path.name} holds no lambdas/<function>/handler.py")
    events = dict(events or {})
    unknown = sorted(set(events) - set(handlers))
    if unknown:
        raise ValueError(f"no handler in the zip for {unknown}; it has {sorted(handlers)}")
    if python is None:
        python = find_python(build.python_version, build.arch)
        if python is None:
            return Verification(python=None, checks=(), skipped=_cannot_run_reason(build))
    elif _python_version(python) != build.python_version:
        raise ValueError(f"{python} is not Python {build.python_version}, the zip's target")
    order = [*events, *sorted(set(handlers) - set(events))]
    with tempfile.TemporaryDirectory(prefix="efs-sqlite-verify-") as tmp:
        task = Path(tmp, "task")
        with zipfile.ZipFile(build.path) as archive:
            archive.extractall(task)
        mount_dir = Path(mount) if mount is not None else Path(tmp, "mnt")
        mount_dir.mkdir(parents=True, exist_ok=True)
        checks = tuple(
            _check_handler(python, task, name, handlers[name], events.get(name), mount_dir, timeout)
            for name in order
        )
    return Verification(python=python, checks=checks)


def _cannot_run_reason(build: BuildResult) -> str:
    if not _runs_here(build.arch):
        here = f"{platform.machine()} {sys.platform} ({' '.join(platform.libc_ver()) or 'no glibc'})"
        return f"the zip targets {build.arch} Linux (glibc >= 2.28); this machine is {here}"
    return f"no Python {build.python_version} interpreter found on this machine"


def _check_handler(
    python: str, task: Path, name: str, module: str, event: Any, mount: Path, timeout: float
) -> HandlerCheck:
    work = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=task.parent))
    event_file = ""
    if event is not None:
        event_file = str(work / "event.json")
        Path(event_file).write_text(json.dumps(event), encoding="utf-8")
    out_file = work / "result.json"
    env = {
        "PATH": os.defpath,
        "HOME": str(work),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "MOUNT_PATH": str(mount),
        "LAMBDA_TASK_ROOT": str(task),
        "AWS_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": f"verify-{name}",
    }
    command = [python, "-I", "-S", "-c", _VERIFY_SCRIPT, str(task), module, event_file, str(out_file)]
    done = subprocess.run(
        command, cwd=work, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode:
        raise VerifyError(f"{module} failed under {python}:\n{done.stderr.strip()[-3000:]}")
    result = json.loads(out_file.read_text(encoding="utf-8"))
    if result["outside"]:
        raise VerifyError(f"{module} loaded modules from outside the zip: {result['outside']}")
    return HandlerCheck(function=name, module=module, response=result["response"])


def function_url_event(
    body: Any,
    *,
    method: str = "POST",
    path: str = "/graphql",
    headers: Mapping[str, str] | None = None,
    query_string: str = "",
) -> dict[str, Any]:
    """A Lambda Function URL event (payload format 2.0) as Lambda hands it to the handler.

    *body* is JSON-encoded unless it is already a string.

    >>> event = function_url_event({"query": "{ __typename }"})
    >>> event["requestContext"]["http"]["method"], event["rawPath"], event["body"]
    ('POST', '/graphql', '{"query": "{ __typename }"}')
    """
    domain = "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws"
    all_headers = {
        "content-type": "application/json",
        "host": domain,
        "user-agent": "efs-sqlite-verify",
        "x-forwarded-proto": "https",
        **{k.lower(): v for k, v in (headers or {}).items()},
    }
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query_string,
        "headers": all_headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": domain.split(".")[0],
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": all_headers["user-agent"],
            },
            "requestId": "00000000-0000-4000-8000-000000000000",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Jan/2025:00:00:00 +0000",
            "timeEpoch": 1735689600000,
        },
        "body": body if isinstance(body, str) else json.dumps(body),
        "isBase64Encoded": False,
    }


# --------------------------------------------------------------------------------------------
# Stack configuration and outputs


@dataclass(frozen=True)
class StackConfig:
    """Parameters of one deployment; every name derives from ``name``.

    ``region`` None means the session's region. Leave ``subnet_ids`` empty to get a VPC of your
    own with private subnets in ``az_count`` zones (``availability_zones`` picks them).
    ``reserved_concurrency`` applies to the GraphQL function, ``loader_reserved_concurrency`` to
    the loader (None = unreserved). ``public=True`` makes the Function URL unauthenticated.
    """

    name: str
    region: str | None = None
    throughput_mode: Literal["bursting", "elastic", "provisioned"] = "elastic"
    provisioned_mibps: float | None = None
    arch: Literal["x86_64", "arm64"] = "x86_64"
    memory_mb: int = 1024
    timeout_s: int = 30
    reserved_concurrency: int | None = None
    loader_memory_mb: int = 1024
    loader_timeout_s: int = 300
    loader_reserved_concurrency: int | None = None
    public: bool = False
    subnet_ids: tuple[str, ...] = ()
    availability_zones: tuple[str, ...] = ()
    az_count: int = 2
    vpc_cidr: str = "10.42.0.0/16"
    mount_path: str = "/mnt/efs-sqlite"
    posix_uid: int = 1001
    posix_gid: int = 1001
    root_directory: str = "/efs-sqlite"
    root_permissions: str = "750"
    log_retention_days: int = 14
    poll_interval_s: float = 5.0
    wait_timeout_s: float = 900.0
    #: How long a resource created moments ago may stay invisible to other calls and services
    #: (IAM and EC2 are eventually consistent).
    propagation_timeout_s: float = 180.0
    #: Lambda releases a deleted VPC function's network interfaces slowly (reported: 20+ minutes).
    eni_timeout_s: float = 2700.0

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"stack name {self.name!r}: 1-32 lowercase letters, digits and inner hyphens")
        _check_choice("throughput_mode", self.throughput_mode, ("bursting", "elastic", "provisioned"))
        _check_choice("arch", self.arch, _MACHINES)
        if (self.throughput_mode == "provisioned") != (self.provisioned_mibps is not None):
            raise ValueError("provisioned_mibps is required with, and only with, 'provisioned'")
        if self.provisioned_mibps is not None and self.provisioned_mibps < 1:
            raise ValueError("provisioned_mibps must be at least 1 MiB/s")
        for label, memory, timeout in (
            ("", self.memory_mb, self.timeout_s),
            ("loader_", self.loader_memory_mb, self.loader_timeout_s),
        ):
            if not 128 <= memory <= 10240:
                raise ValueError(f"{label}memory_mb must be 128..10240, not {memory}")
            if not 1 <= timeout <= 900:
                raise ValueError(f"{label}timeout_s must be 1..900 seconds, not {timeout}")
        for reserved in (self.reserved_concurrency, self.loader_reserved_concurrency):
            if reserved is not None and reserved < 0:
                raise ValueError("reserved concurrency cannot be negative")
        if not _MOUNT_PATH.fullmatch(self.mount_path):
            raise ValueError(f"mount_path {self.mount_path!r} must match {_MOUNT_PATH.pattern}")
        if not re.fullmatch(r"/[A-Za-z0-9._/-]*", self.root_directory):
            raise ValueError(f"root_directory {self.root_directory!r} must be an absolute path")
        if not re.fullmatch(r"[0-7]{3,4}", self.root_permissions):
            raise ValueError(f"root_permissions {self.root_permissions!r} must be octal, e.g. 750")
        if self.subnet_ids and self.availability_zones:
            raise ValueError("give subnet_ids or availability_zones, not both")
        if not self.subnet_ids and self.az_count < 2:
            raise ValueError("az_count must be at least 2 (a mount target per zone, for failover)")
        ipaddress.ip_network(self.vpc_cidr)

    @property
    def prefix(self) -> str:
        return f"efs-sqlite-{self.name}"

    @property
    def graphql_function(self) -> str:
        return f"{self.prefix}-graphql"

    @property
    def loader_function(self) -> str:
        return f"{self.prefix}-loader"

    @property
    def role_name(self) -> str:
        return f"{self.prefix}-lambda"

    def function_name(self, function: str) -> str:
        return f"{self.prefix}-{function}"


@dataclass(frozen=True)
class Stack:
    """A deployed stack: what :func:`deploy` and :func:`find_stack` return."""

    name: str
    region: str
    vpc_id: str
    subnet_ids: tuple[str, ...]
    functions_security_group: str
    efs_security_group: str
    file_system_id: str
    access_point_id: str
    access_point_arn: str
    role_arn: str
    graphql_function: str
    loader_function: str
    function_url: str
    auth_type: str

    @property
    def graphql_url(self) -> str:
        """The GraphQL endpoint behind the Function URL."""
        return self.function_url.rstrip("/") + "/graphql"


@dataclass(frozen=True)
class Call:
    """One AWS API call made (or, in a dry run, planned) by :func:`deploy` or :func:`teardown`."""

    service: str
    operation: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        args = ", ".join(f"{k}={_printable(v)!r}" for k, v in self.params.items())
        return f"{self.service}.{self.operation}({args})"


def _printable(value: Any) -> Any:
    if isinstance(value, bytes):
        return f"<{len(value):,} bytes>"
    if isinstance(value, Mapping):
        return {k: _printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_printable(v) for v in value]
    return value


def _check_choice(what: str, value: str, allowed: Iterable[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {sorted(allowed)}, not {value!r}")


# --------------------------------------------------------------------------------------------
# The AWS calls of one deploy, teardown or lookup

T = TypeVar("T")


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


def _lookup(method: Callable[..., T]) -> Callable[..., T | None]:
    """A finder: it reads AWS, except in a dry run, which reads nothing and so plans a fresh stack."""

    @functools.wraps(method)
    def finder(self: _Stack, *args: Any, **kwargs: Any) -> T | None:
        return None if self.dry_run else method(self, *args, **kwargs)

    return finder


class _Stack:
    """Get-or-create, converge and delete the resources of one stack."""

    def __init__(self, config: StackConfig, session: boto3.Session | None, dry_run: bool) -> None:
        self.config = config
        self.session = session or boto3.Session(region_name=config.region)
        region = config.region or self.session.region_name
        if not region:
            raise ValueError("no AWS region: pass region= or set AWS_REGION / AWS_DEFAULT_REGION")
        self.region: str = region
        self.dry_run = dry_run
        self.calls: list[Call] = []
        self._clients: dict[str, Any] = {}

    # -- plumbing

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, region_name=self.region)
        return self._clients[service]

    def read(self, service: str, operation: str, **params: Any) -> Any:
        assert not self.dry_run, "a dry run reads nothing"
        return getattr(self.client(service), operation)(**params)

    def read_if_found(self, service: str, operation: str, missing: str, **params: Any) -> Any:
        """:meth:`read`, or None when AWS answers with the error code ``missing`` (no such resource)."""
        try:
            return self.read(service, operation, **params)
        except ClientError as error:
            if _code(error) == missing:
                return None
            raise

    def pages(self, service: str, operation: str, key: str, **params: Any) -> list[Any]:
        assert not self.dry_run, "a dry run reads nothing"
        paginator = self.client(service).get_paginator(operation)
        return [item for page in paginator.paginate(**params) for item in page.get(key, [])]

    def write(self, service: str, operation: str, **params: Any) -> Any:
        """Make (or in a dry run, print) a call that changes something, and record it."""
        call = Call(service, operation, params)
        self.calls.append(call)
        if self.dry_run:
            print(f"{len(self.calls):3d}. {call}")
            client = self.client(service)
            api = client.meta.method_to_api_mapping[operation]
            shape = client.meta.service_model.operation_model(api).output_shape
            return _placeholder(shape, f"{api}#{len(self.calls)}") if shape else {}
        log.info("%s", str(call)[:240])
        return getattr(self.client(service), operation)(**params)

    def write_ignoring(self, codes: Iterable[str], service: str, operation: str, **params: Any) -> Any:
        """:meth:`write`, where an error with one of *codes* means the work is already done."""
        try:
            return self.write(service, operation, **params)
        except ClientError as error:
            if _code(error) not in codes:
                raise
            return None

    def write_when_visible(
        self, service: str, operation: str, ignoring: Iterable[str] = (), **params: Any
    ) -> Any:
        """:meth:`write_ignoring`, repeated while AWS does not yet see a resource created moments ago."""
        return self.retry(
            lambda: self.write_ignoring(ignoring, service, operation, **params),
            _not_yet_visible,
            f"{service}.{operation}",
            self.config.propagation_timeout_s,
        )

    def retry(
        self, call: Callable[[], T], retryable: Callable[[ClientError], bool], what: str, timeout: float
    ) -> T:
        """Repeat *call* while it fails with a *retryable* error, for up to *timeout* seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return call()
            except ClientError as error:
                if not retryable(error) or time.monotonic() > deadline:
                    raise
                log.info("%s: %s; retrying", what, _message(error) or _code(error))
                time.sleep(self.config.poll_interval_s)

    def wait(
        self,
        what: str,
        state: Callable[[], str | None],
        ready: str | None,
        *,
        timeout: float | None = None,
    ) -> None:
        """Poll *state* until it is *ready* (None: until the resource is gone).

        EFS has no boto3 waiters, so every wait here polls the same way.
        """
        if self.dry_run:
            return
        timeout = self.config.wait_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while (current := state()) != ready:
            if current is not None and current.split(":")[0] in ("error", "Failed"):
                raise DeployError(f"{what} is {current}")
            if time.monotonic() > deadline:
                raise DeployError(f"{what} is still {current!r} after {timeout:.0f} s")
            log.info("%s is %s, waiting for %s", what, current, ready or "it to go")
            time.sleep(self.config.poll_interval_s)

    # -- tags

    def tags(self, component: str) -> dict[str, str]:
        return {
            TAG_KEY: self.config.name,
            COMPONENT_KEY: component,
            "Name": f"{self.config.prefix}-{component}",
        }

    def tag_list(self, component: str) -> list[dict[str, str]]:
        return [{"Key": k, "Value": v} for k, v in self.tags(component).items()]

    def tag_specs(self, resource_type: str, component: str) -> list[dict[str, Any]]:
        return [{"ResourceType": resource_type, "Tags": self.tag_list(component)}]

    def ours(self, tags: Mapping[str, str] | Sequence[Mapping[str, str]] | None) -> bool:
        if tags is None:
            return False
        pairs = tags.items() if isinstance(tags, Mapping) else ((t["Key"], t["Value"]) for t in tags)
        return (TAG_KEY, self.config.name) in set(pairs)

    def ec2_filters(self, component: str | None = None, **more: str) -> list[dict[str, Any]]:
        filters = [{"Name": f"tag:{TAG_KEY}", "Values": [self.config.name]}]
        if component:
            filters.append({"Name": f"tag:{COMPONENT_KEY}", "Values": [component]})
        filters += [{"Name": name.replace("_", "-"), "Values": [v]} for name, v in more.items()]
        return filters

    def refuse(self, what: str) -> DeployError:
        return DeployError(
            f"{what} exists but is not tagged {TAG_KEY}={self.config.name}: refusing to use it "
            "(rename the stack, or delete it yourself if it is a leftover)"
        )

    # -- finders (read-only; None in a dry run)

    @_lookup
    def find_vpc(self) -> str | None:
        vpcs = self.pages("ec2", "describe_vpcs", "Vpcs", Filters=self.ec2_filters("vpc"))
        return vpcs[0]["VpcId"] if vpcs else None

    @_lookup
    def find_subnets(self, vpc_id: str) -> list[dict[str, Any]]:
        filters = self.ec2_filters("subnet", vpc_id=vpc_id)
        return self.pages("ec2", "describe_subnets", "Subnets", Filters=filters)

    @_lookup
    def find_group(self, component: str) -> dict[str, Any] | None:
        groups = self.pages(
            "ec2", "describe_security_groups", "SecurityGroups", Filters=self.ec2_filters(component)
        )
        return groups[0] if groups else None

    @_lookup
    def find_file_system(self) -> dict[str, Any] | None:
        ours = [
            fs
            for fs in self.pages("efs", "describe_file_systems", "FileSystems")
            if self.ours(fs.get("Tags"))
        ]
        if len(ours) > 1:
            raise DeployError(f"{len(ours)} file systems carry the tag of stack {self.config.name}")
        return ours[0] if ours else None

    @_lookup
    def find_access_point(self, file_system_id: str) -> dict[str, Any] | None:
        points = self.pages("efs", "describe_access_points", "AccessPoints", FileSystemId=file_system_id)
        return next((ap for ap in points if self.ours(ap.get("Tags"))), None)

    @_lookup
    def find_role(self) -> dict[str, Any] | None:
        found = self.read_if_found("iam", "get_role", "NoSuchEntity", RoleName=self.config.role_name)
        if found is None:
            return None
        role = found["Role"]
        tags = self.read("iam", "list_role_tags", RoleName=self.config.role_name)["Tags"]
        if not self.ours(tags):
            raise self.refuse(f"IAM role {self.config.role_name}")
        return role

    @_lookup
    def find_function(self, name: str) -> dict[str, Any] | None:
        function = self.read_if_found(
            "lambda", "get_function", "ResourceNotFoundException", FunctionName=name
        )
        if function is None:
            return None
        if not self.ours(function.get("Tags")):
            raise self.refuse(f"Lambda function {name}")
        return function

    @_lookup
    def find_url(self, function: str) -> dict[str, Any] | None:
        return self.read_if_found(
            "lambda", "get_function_url_config", "ResourceNotFoundException", FunctionName=function
        )

    @_lookup
    def find_log_group(self, name: str) -> bool | None:
        """True if ours, False if someone else's, None if absent."""
        groups = self.pages("logs", "describe_log_groups", "logGroups", logGroupNamePrefix=name)
        group = next((g for g in groups if g["logGroupName"] == name), None)
        if group is None:
            return None
        arn = group.get("logGroupArn") or group["arn"].removesuffix(":*")
        return self.ours(self.read("logs", "list_tags_for_resource", resourceArn=arn)["tags"])

    # -- deploy

    def deploy(self, build: BuildResult | None) -> Stack:
        config = self.config
        code: Any = build.path.read_bytes() if build else "<the Lambda zip, built at deploy time>"
        vpc_id, subnet_ids = self.network()
        functions_sg = self.security_group(vpc_id, "functions-sg", "efs-sqlite Lambda functions")
        efs_sg = self.security_group(vpc_id, "efs-sg", "efs-sqlite EFS mount targets: NFS from the functions")
        nfs = {"IpProtocol": "tcp", "FromPort": 2049, "ToPort": 2049}
        self.converge_rules(
            functions_sg,
            ingress=[],
            egress=[{**nfs, "UserIdGroupPairs": [{"GroupId": efs_sg["GroupId"]}]}],
        )
        self.converge_rules(
            efs_sg,
            ingress=[{**nfs, "UserIdGroupPairs": [{"GroupId": functions_sg["GroupId"]}]}],
            egress=[],
        )
        file_system = self.file_system()
        fs_id, fs_arn = file_system["FileSystemId"], file_system["FileSystemArn"]
        self.mount_targets(fs_id, subnet_ids, efs_sg["GroupId"])
        access_point = self.access_point(fs_id)
        ap_id, ap_arn = access_point["AccessPointId"], access_point["AccessPointArn"]
        role_arn = self.role(fs_arn, ap_arn)
        self.file_system_policy(fs_id, fs_arn, role_arn, ap_arn)
        network = {"SubnetIds": list(subnet_ids), "SecurityGroupIds": [functions_sg["GroupId"]]}
        for function, memory, timeout, reserved in (
            ("graphql", config.memory_mb, config.timeout_s, config.reserved_concurrency),
            ("loader", config.loader_memory_mb, config.loader_timeout_s, config.loader_reserved_concurrency),
        ):
            settings = {
                "Role": role_arn,
                "Handler": f"lambdas.{function}.handler.handler",
                "Runtime": RUNTIME,
                "MemorySize": memory,
                "Timeout": timeout,
                "Description": f"efs-sqlite {function} of stack {config.name}",
                "Environment": {"Variables": {"MOUNT_PATH": config.mount_path}},
                "VpcConfig": network,
                "FileSystemConfigs": [{"Arn": ap_arn, "LocalMountPath": config.mount_path}],
            }
            self.log_group(function)
            self.function(config.function_name(function), settings, code, build, reserved)
        url = self.function_url(config.graphql_function)
        return Stack(
            name=config.name,
            region=self.region,
            vpc_id=vpc_id,
            subnet_ids=tuple(subnet_ids),
            functions_security_group=functions_sg["GroupId"],
            efs_security_group=efs_sg["GroupId"],
            file_system_id=fs_id,
            access_point_id=ap_id,
            access_point_arn=ap_arn,
            role_arn=role_arn,
            graphql_function=config.graphql_function,
            loader_function=config.loader_function,
            function_url=url,
            auth_type="NONE" if config.public else "AWS_IAM",
        )

    def network(self) -> tuple[str, list[str]]:
        """The VPC and one private subnet per zone: the given subnets, or ours (created if need be)."""
        config = self.config
        if config.subnet_ids:
            return self.given_network() or ("<VPC of the given subnets>", list(config.subnet_ids))
        vpc_id = self.find_vpc()
        if vpc_id is None:
            vpc_id = self.write(
                "ec2",
                "create_vpc",
                CidrBlock=config.vpc_cidr,
                TagSpecifications=self.tag_specs("vpc", "vpc"),
            )["Vpc"]["VpcId"]
            self.wait(f"VPC {vpc_id}", lambda: self.vpc_state(vpc_id), "available")
            self.write("ec2", "modify_vpc_attribute", VpcId=vpc_id, EnableDnsHostnames={"Value": True})
        existing = {s["AvailabilityZone"]: s["SubnetId"] for s in self.find_subnets(vpc_id) or []}
        zones = self.zones(existing)
        taken = {s["CidrBlock"] for s in self.find_all_subnets(vpc_id) or []}
        free = (str(n) for n in ipaddress.ip_network(config.vpc_cidr).subnets(new_prefix=24))
        free = (cidr for cidr in free if cidr not in taken)
        subnet_ids = []
        for zone in zones:
            if zone not in existing:
                existing[zone] = self.write(
                    "ec2",
                    "create_subnet",
                    VpcId=vpc_id,
                    CidrBlock=next(free),
                    AvailabilityZone=zone,
                    TagSpecifications=self.tag_specs("subnet", "subnet"),
                )["Subnet"]["SubnetId"]
            subnet_ids.append(existing[zone])
        return vpc_id, subnet_ids

    @_lookup
    def given_network(self) -> tuple[str, list[str]]:
        subnets = self.read("ec2", "describe_subnets", SubnetIds=list(self.config.subnet_ids))
        subnets = subnets["Subnets"]
        vpcs = {s["VpcId"] for s in subnets}
        zones = [s["AvailabilityZone"] for s in subnets]
        if len(vpcs) != 1 or len(set(zones)) != len(zones):
            raise ValueError("subnet_ids must be in one VPC and in distinct availability zones")
        return vpcs.pop(), list(self.config.subnet_ids)

    @_lookup
    def vpc_state(self, vpc_id: str) -> str | None:
        # InvalidVpcID.NotFound: not visible yet, moments after creation.
        found = self.read_if_found("ec2", "describe_vpcs", "InvalidVpcID.NotFound", VpcIds=[vpc_id])
        return None if found is None else found["Vpcs"][0]["State"]

    @_lookup
    def find_all_subnets(self, vpc_id: str) -> list[dict[str, Any]]:
        filters = [{"Name": "vpc-id", "Values": [vpc_id]}]
        return self.pages("ec2", "describe_subnets", "Subnets", Filters=filters)

    def zones(self, existing: Mapping[str, str]) -> list[str]:
        """The zones for our subnets: the configured ones, else those already used, then others."""
        config = self.config
        if config.availability_zones:
            return list(config.availability_zones)
        available = self.available_zones()
        if available is None:
            return [f"<zone {i + 1}>" for i in range(config.az_count)]
        ordered = [*sorted(z for z in existing if z in available), *sorted(set(available) - set(existing))]
        if len(ordered) < config.az_count:
            raise DeployError(f"{self.region} offers {len(ordered)} usable zones, {config.az_count} needed")
        return ordered[: config.az_count]

    @_lookup
    def available_zones(self) -> list[str]:
        zones = self.read(
            "ec2",
            "describe_availability_zones",
            Filters=[
                {"Name": "zone-type", "Values": ["availability-zone"]},
                {"Name": "state", "Values": ["available"]},
            ],
        )["AvailabilityZones"]
        return [z["ZoneName"] for z in zones if z.get("ZoneId") not in _LAMBDA_UNSUPPORTED_ZONE_IDS]

    def security_group(self, vpc_id: str, component: str, description: str) -> dict[str, Any]:
        group = self.find_group(component)
        if group is not None:
            return group
        created = self.write(
            "ec2",
            "create_security_group",
            GroupName=f"{self.config.prefix}-{component}",
            Description=description,
            VpcId=vpc_id,
            TagSpecifications=self.tag_specs("security-group", component),
        )
        # Read it back for its default rules; a dry run (or a lagging read) assumes EC2's defaults:
        # all egress, no ingress.
        everything = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
        assumed = {"GroupId": created["GroupId"], "IpPermissions": [], "IpPermissionsEgress": everything}
        return self.find_group(component) or assumed

    def converge_rules(
        self, group: Mapping[str, Any], *, ingress: list[dict[str, Any]], egress: list[dict[str, Any]]
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
                self.write_when_visible(
                    "ec2",
                    f"revoke_security_group_{direction}",
                    ["InvalidPermission.NotFound"],
                    GroupId=group["GroupId"],
                    IpPermissions=extra,
                )
            if missing:
                self.write_when_visible(
                    "ec2",
                    f"authorize_security_group_{direction}",
                    ["InvalidPermission.Duplicate"],
                    GroupId=group["GroupId"],
                    IpPermissions=missing,
                )

    def file_system(self) -> dict[str, Any]:
        config = self.config
        throughput: dict[str, Any] = {"ThroughputMode": config.throughput_mode}
        if config.provisioned_mibps is not None:
            throughput["ProvisionedThroughputInMibps"] = config.provisioned_mibps
        file_system = self.find_file_system()
        if file_system is None:
            file_system = self.write(
                "efs",
                "create_file_system",
                CreationToken=config.prefix,
                PerformanceMode="generalPurpose",
                Encrypted=True,
                Tags=self.tag_list("efs"),
                **throughput,
            )
        elif file_system.get("ThroughputMode") != config.throughput_mode or (
            file_system.get("ProvisionedThroughputInMibps") != config.provisioned_mibps
            and config.provisioned_mibps is not None
        ):
            self.write("efs", "update_file_system", FileSystemId=file_system["FileSystemId"], **throughput)
        fs_id = file_system["FileSystemId"]
        self.wait(f"file system {fs_id}", lambda: self.file_system_state(fs_id), "available")
        return file_system

    @_lookup
    def file_system_state(self, fs_id: str) -> str | None:
        found = self.read_if_found("efs", "describe_file_systems", "FileSystemNotFound", FileSystemId=fs_id)
        return None if found is None else found["FileSystems"][0]["LifeCycleState"]

    def mount_targets(self, fs_id: str, subnet_ids: Sequence[str], group_id: str) -> None:
        existing = {mt["SubnetId"]: mt["MountTargetId"] for mt in self.find_mount_targets(fs_id) or []}
        for subnet_id in subnet_ids:
            if subnet_id not in existing:
                existing[subnet_id] = self.write_when_visible(
                    "efs",
                    "create_mount_target",
                    FileSystemId=fs_id,
                    SubnetId=subnet_id,
                    SecurityGroups=[group_id],
                )["MountTargetId"]
            elif self.mount_target_groups(existing[subnet_id]) != [group_id]:
                self.write_when_visible(
                    "efs",
                    "modify_mount_target_security_groups",
                    MountTargetId=existing[subnet_id],
                    SecurityGroups=[group_id],
                )
        for subnet_id in subnet_ids:
            mt_id = existing[subnet_id]
            self.wait(f"mount target {mt_id}", lambda m=mt_id: self.mount_target_state(m), "available")

    @_lookup
    def find_mount_targets(self, fs_id: str) -> list[dict[str, Any]]:
        return self.pages("efs", "describe_mount_targets", "MountTargets", FileSystemId=fs_id)

    @_lookup
    def mount_target_groups(self, mt_id: str) -> list[str]:
        return self.read("efs", "describe_mount_target_security_groups", MountTargetId=mt_id)[
            "SecurityGroups"
        ]

    @_lookup
    def mount_target_state(self, mt_id: str) -> str | None:
        found = self.read_if_found(
            "efs", "describe_mount_targets", "MountTargetNotFound", MountTargetId=mt_id
        )
        return None if found is None else found["MountTargets"][0]["LifeCycleState"]

    def access_point(self, fs_id: str) -> dict[str, Any]:
        config = self.config
        posix = {"Uid": config.posix_uid, "Gid": config.posix_gid}
        access_point = self.find_access_point(fs_id)
        if access_point is None:
            access_point = self.write(
                "efs",
                "create_access_point",
                ClientToken=f"{config.prefix}-ap",
                FileSystemId=fs_id,
                PosixUser=posix,
                Tags=self.tag_list("access-point"),
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
        self.wait(f"access point {ap_id}", lambda: self.access_point_state(ap_id), "available")
        return access_point

    @_lookup
    def access_point_state(self, ap_id: str) -> str | None:
        found = self.read_if_found(
            "efs", "describe_access_points", "AccessPointNotFound", AccessPointId=ap_id
        )
        return None if found is None else found["AccessPoints"][0]["LifeCycleState"]

    def role(self, fs_arn: str, ap_arn: str) -> str:
        config = self.config
        role = self.find_role()
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
            role = self.write(
                "iam",
                "create_role",
                RoleName=config.role_name,
                AssumeRolePolicyDocument=json.dumps(trust),
                Description=f"efs-sqlite functions of stack {config.name}",
                Tags=self.tag_list("role"),
            )["Role"]
        partition = self.session.get_partition_for_region(self.region)
        # Both calls are idempotent, so they also repair a role someone edited.
        self.write(
            "iam",
            "attach_role_policy",
            RoleName=config.role_name,
            PolicyArn=f"arn:{partition}:iam::aws:policy/{_VPC_LAMBDA_POLICY}",
        )
        self.write(
            "iam",
            "put_role_policy",
            RoleName=config.role_name,
            PolicyName="efs-access-point",
            PolicyDocument=json.dumps(_efs_client_policy(fs_arn, ap_arn)),
        )
        return role["Arn"]

    def file_system_policy(self, fs_id: str, fs_arn: str, role_arn: str, ap_arn: str) -> None:
        # Without a file system policy EFS lets any client that reaches a mount target in: this
        # one admits only our role, through our access point, via a mount target.
        policy = _efs_client_policy(fs_arn, ap_arn, principal=role_arn)
        self.write_when_visible(
            "efs", "put_file_system_policy", FileSystemId=fs_id, Policy=json.dumps(policy)
        )

    def log_group(self, function: str) -> None:
        name = f"/aws/lambda/{self.config.function_name(function)}"
        found = self.find_log_group(name)
        if found is False:
            warnings.warn(f"log group {name} is not tagged: used as it is", stacklevel=4)
            return
        if found is None:
            self.write("logs", "create_log_group", logGroupName=name, tags=self.tags(f"logs-{function}"))
        self.write(
            "logs", "put_retention_policy", logGroupName=name, retentionInDays=self.config.log_retention_days
        )

    def function(
        self,
        name: str,
        settings: Mapping[str, Any],
        code: Any,
        build: BuildResult | None,
        reserved: int | None,
    ) -> None:
        arch = [self.config.arch]
        existing = self.find_function(name)
        if existing is None:
            operation = "create_function"
            extra = {
                "Code": {"ZipFile": code},
                "Architectures": arch,
                "Tags": self.tags(name.rsplit("-", 1)[1]),
            }
        else:
            operation, extra = "update_function_configuration", {}
        self.write_when_visible("lambda", operation, FunctionName=name, **extra, **settings)
        self.wait(f"function {name}", lambda: self.function_state(name), "Active")
        if existing is not None:
            deployed = existing["Configuration"]
            if build is None or (deployed.get("CodeSha256"), deployed.get("Architectures")) != (
                build.code_sha256,
                arch,
            ):
                self.write(
                    "lambda", "update_function_code", FunctionName=name, ZipFile=code, Architectures=arch
                )
                self.wait(f"function {name}", lambda: self.function_state(name), "Active")
        current_reserved = (existing or {}).get("Concurrency", {}).get("ReservedConcurrentExecutions")
        if reserved is not None and reserved != current_reserved:
            self.write(
                "lambda",
                "put_function_concurrency",
                FunctionName=name,
                ReservedConcurrentExecutions=reserved,
            )
        elif reserved is None and current_reserved is not None:
            self.write("lambda", "delete_function_concurrency", FunctionName=name)

    @_lookup
    def function_state(self, name: str) -> str | None:
        config = self.read_if_found(
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

    def function_url(self, function: str) -> str:
        auth = "NONE" if self.config.public else "AWS_IAM"
        existing = self.find_url(function)
        if existing is None:
            url = self.write("lambda", "create_function_url_config", FunctionName=function, AuthType=auth)[
                "FunctionUrl"
            ]
        elif existing["AuthType"] != auth:
            url = self.write("lambda", "update_function_url_config", FunctionName=function, AuthType=auth)[
                "FunctionUrl"
            ]
        else:
            url = existing["FunctionUrl"]
        granted = self.public_statements(function) or set()
        if self.config.public:
            # Since October 2025 a public URL needs both permissions.
            if _PUBLIC_STATEMENTS[0] not in granted:
                self.write(
                    "lambda",
                    "add_permission",
                    FunctionName=function,
                    StatementId=_PUBLIC_STATEMENTS[0],
                    Action="lambda:InvokeFunctionUrl",
                    Principal="*",
                    FunctionUrlAuthType="NONE",
                )
            if _PUBLIC_STATEMENTS[1] not in granted:
                self.write(
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
                self.write_ignoring(
                    ["ResourceNotFoundException"],
                    "lambda",
                    "remove_permission",
                    FunctionName=function,
                    StatementId=statement,
                )
        return url

    @_lookup
    def public_statements(self, function: str) -> set[str]:
        found = self.read_if_found("lambda", "get_policy", "ResourceNotFoundException", FunctionName=function)
        if found is None:
            return set()
        policy = json.loads(found["Policy"])
        return {s.get("Sid") for s in policy.get("Statement", [])} & set(_PUBLIC_STATEMENTS)

    # -- lookup of a deployed stack

    def find(self) -> Stack:
        config = self.config
        graphql = self.find_function(config.graphql_function)
        loader = self.find_function(config.loader_function)
        url = self.find_url(config.graphql_function)
        file_system = self.find_file_system()
        access_point = file_system and self.find_access_point(file_system["FileSystemId"])
        groups = {c: self.find_group(c) for c in ("functions-sg", "efs-sg")}
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
                f"stack {config.name!r} in {self.region} is not (fully) deployed: no " + ", ".join(missing)
            )
        assert graphql and url and file_system and access_point  # for the type checker
        vpc = graphql["Configuration"].get("VpcConfig", {})
        vpc_id = self.find_vpc() or groups["functions-sg"]["VpcId"]  # type: ignore[index]
        return Stack(
            name=config.name,
            region=self.region,
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

    # -- teardown

    def teardown(self) -> None:
        """Delete the stack's resources, dependants first; anything absent is skipped."""
        config = self.config
        for function in FUNCTIONS:
            name = config.function_name(function)
            if self.owned(lambda n=name: self.find_function(n), f"Lambda function {name}"):
                self.write_ignoring(
                    ["ResourceNotFoundException"], "lambda", "delete_function", FunctionName=name
                )
            group = f"/aws/lambda/{name}"
            found = self.find_log_group(group)
            if found:
                self.write_ignoring(
                    ["ResourceNotFoundException"], "logs", "delete_log_group", logGroupName=group
                )
            elif found is False:
                warnings.warn(f"log group {group} is not tagged: left untouched", stacklevel=3)
        file_system = self.find_file_system()
        if file_system:
            self.delete_file_system(file_system["FileSystemId"])
        if self.owned(self.find_role, f"IAM role {config.role_name}"):
            self.delete_role()
        groups = self.pages("ec2", "describe_security_groups", "SecurityGroups", Filters=self.ec2_filters())
        self.delete_groups(groups)
        for subnet in self.pages("ec2", "describe_subnets", "Subnets", Filters=self.ec2_filters()):
            self.delete_ec2("delete_subnet", SubnetId=subnet["SubnetId"])
        for vpc in self.pages("ec2", "describe_vpcs", "Vpcs", Filters=self.ec2_filters()):
            self.delete_ec2("delete_vpc", VpcId=vpc["VpcId"])

    def owned(self, find: Callable[[], Any], what: str) -> bool:
        """Whether *find* finds ours; a namesake without our tag is left alone, with a warning."""
        try:
            return find() is not None
        except DeployError:
            warnings.warn(f"{what} is not tagged {TAG_KEY}={self.config.name}: left untouched", stacklevel=4)
            return False

    def delete_file_system(self, fs_id: str) -> None:
        for point in self.pages("efs", "describe_access_points", "AccessPoints", FileSystemId=fs_id):
            if self.ours(point.get("Tags")):
                self.write_ignoring(
                    ["AccessPointNotFound"],
                    "efs",
                    "delete_access_point",
                    AccessPointId=point["AccessPointId"],
                )
        # Mount targets cannot be tagged: those of our file system are ours.
        targets = self.find_mount_targets(fs_id) or []
        for target in targets:
            self.write_ignoring(
                ["MountTargetNotFound"],
                "efs",
                "delete_mount_target",
                MountTargetId=target["MountTargetId"],
            )
        for target in targets:
            mt_id = target["MountTargetId"]
            self.wait(f"mount target {mt_id}", lambda m=mt_id: self.mount_target_state(m), None)
        self.write_ignoring(["FileSystemNotFound"], "efs", "delete_file_system", FileSystemId=fs_id)
        self.wait(f"file system {fs_id}", lambda: self.file_system_state(fs_id), None)

    def delete_role(self) -> None:
        name = self.config.role_name
        attached = self.pages("iam", "list_attached_role_policies", "AttachedPolicies", RoleName=name)
        for policy in attached:
            self.write("iam", "detach_role_policy", RoleName=name, PolicyArn=policy["PolicyArn"])
        for policy in self.pages("iam", "list_role_policies", "PolicyNames", RoleName=name):
            self.write("iam", "delete_role_policy", RoleName=name, PolicyName=policy)
        self.write_ignoring(["NoSuchEntity"], "iam", "delete_role", RoleName=name)

    def delete_groups(self, groups: list[dict[str, Any]]) -> None:
        ids = [g["GroupId"] for g in groups]
        if not ids:
            return
        # Lambda's network interfaces outlive the function by minutes; the groups cannot go first.
        self.wait(
            f"network interfaces in {', '.join(ids)}",
            lambda: self.interfaces(ids),
            None,
            timeout=self.config.eni_timeout_s,
        )
        # Our two groups refer to each other; the references must go before either group can.
        for group in groups:
            self.converge_rules(group, ingress=[], egress=[])
        for group_id in ids:
            self.delete_ec2("delete_security_group", GroupId=group_id)

    def interfaces(self, group_ids: list[str]) -> str | None:
        found = self.pages(
            "ec2",
            "describe_network_interfaces",
            "NetworkInterfaces",
            Filters=[{"Name": "group-id", "Values": group_ids}],
        )
        return f"{len(found)} in use" if found else None

    def delete_ec2(self, operation: str, **params: Any) -> None:
        not_found = {
            "delete_security_group": "InvalidGroup.NotFound",
            "delete_subnet": "InvalidSubnetID.NotFound",
            "delete_vpc": "InvalidVpcID.NotFound",
        }[operation]
        self.retry(
            lambda: self.write_ignoring([not_found], "ec2", operation, **params),
            lambda error: _code(error) == "DependencyViolation",
            f"ec2.{operation}",
            self.config.wait_timeout_s,
        )


#: Error codes for a resource that exists but that the called service does not see yet.
_NOT_YET_VISIBLE = frozenset(
    {
        "InvalidGroup.NotFound",
        "InvalidSubnetID.NotFound",
        "SecurityGroupNotFound",
        "SubnetNotFound",
        # EFS, while a role created seconds ago is not yet a valid principal for its policy.
        "InvalidPolicyException",
    }
)


def _not_yet_visible(error: ClientError) -> bool:
    """Whether *error* is AWS's eventual consistency (retry) rather than a real failure."""
    if _code(error) in _NOT_YET_VISIBLE:
        return True
    # Lambda, while a just-created role or its policies have not propagated.
    return _code(error) == "InvalidParameterValueException" and any(
        text in _message(error)
        for text in (
            "cannot be assumed by Lambda",
            "does not have permissions to call CreateNetworkInterface",
        )
    )


def _efs_client_policy(fs_arn: str, ap_arn: str, principal: str | None = None) -> dict[str, Any]:
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


def _placeholder(shape: Any, label: str, name: str = "", depth: int = 0) -> Any:
    """A response of *shape* whose strings name where they came from, for dry runs."""
    kind = shape.type_name
    if kind == "structure":
        return (
            {}
            if depth > 6
            else {
                member: _placeholder(sub, label, member, depth + 1) for member, sub in shape.members.items()
            }
        )
    if kind == "list":
        return [_placeholder(shape.member, label, name, depth + 1)]
    if kind == "map":
        return {}
    if kind in ("integer", "long", "float", "double"):
        return 0
    if kind == "boolean":
        return False
    if kind == "timestamp":
        return datetime.fromtimestamp(0, UTC)
    if kind == "blob":
        return b""
    return f"<{label}:{name}>"


# --------------------------------------------------------------------------------------------
# Public operations


@overload
def deploy(
    config: StackConfig,
    *,
    build: BuildResult | None = ...,
    session: boto3.Session | None = ...,
    dry_run: Literal[False] = ...,
) -> Stack: ...
@overload
def deploy(
    config: StackConfig,
    *,
    build: BuildResult | None = ...,
    session: boto3.Session | None = ...,
    dry_run: Literal[True],
) -> list[Call]: ...
def deploy(
    config: StackConfig,
    *,
    build: BuildResult | None = None,
    session: boto3.Session | None = None,
    dry_run: bool = False,
) -> Stack | list[Call]:
    """Create or update the stack *config* describes, and return its outputs.

    Safe to run again: existing resources (found by tag) are reused and converged to *config*.
    *build* is the zip to deploy (built for ``config.arch`` and Python 3.13); without it one is
    built in a temporary folder. *session* defaults to ``boto3.Session(region_name=...)``, so
    ``AWS_PROFILE``, ``AWS_ENDPOINT_URL`` (e.g. a moto server, see :func:`moto_server`) and the
    usual variables apply. With ``dry_run=True`` nothing is read or changed: the calls a fresh
    deploy would make are printed and returned (ids are placeholders).
    """
    if config.public:
        warnings.warn(
            f"stack {config.name!r}: public=True makes the GraphQL Function URL unauthenticated; "
            "anyone who learns the URL can query it and run its mutations",
            UserWarning,
            stacklevel=2,
        )
    if build is not None and (build.arch, build.python_version) != (config.arch, RUNTIME[6:]):
        raise ValueError(
            f"the zip is for Python {build.python_version} {build.arch}; the stack runs "
            f"{RUNTIME} {config.arch}"
        )
    if build is not None:
        absent = sorted(set(FUNCTIONS) - set(build.handlers))
        if absent:
            raise DeployError(f"{build.path.name} has no handler for {absent}")
    stack = _Stack(config, session, dry_run)
    if dry_run:
        stack.deploy(build)
        return stack.calls
    if build is not None:
        return stack.deploy(build)
    with tempfile.TemporaryDirectory(prefix="efs-sqlite-deploy-") as tmp:
        return deploy(config, build=build_zip(tmp, arch=config.arch), session=session)


def teardown(config: StackConfig | str, *, session: boto3.Session | None = None) -> list[Call]:
    """Delete everything tagged with the stack's name, dependants first; return the calls made.

    Tolerates partial stacks (a failed deploy, an earlier interrupted teardown) and is a no-op
    when nothing is left. A resource that has the stack's name but not its tag is left untouched,
    with a warning.
    """
    stack = _Stack(_config(config), session, dry_run=False)
    stack.teardown()
    return stack.calls


def find_stack(config: StackConfig | str, *, session: boto3.Session | None = None) -> Stack:
    """The outputs of an already deployed stack (read-only); LookupError if it is incomplete."""
    return _Stack(_config(config), session, dry_run=False).find()


def _config(config: StackConfig | str) -> StackConfig:
    return config if isinstance(config, StackConfig) else StackConfig(config)


# --------------------------------------------------------------------------------------------
# Loading and querying a deployed stack


class LoadEvent(NamedTuple):
    """One loader invocation: the JSON payload and how many records it carries."""

    payload: bytes
    count: int


@dataclass(frozen=True)
class LoadSummary:
    """What :func:`load` sent: records, invocations, and the loader's answers."""

    records: int
    invocations: int
    responses: tuple[Any, ...]


def load_events(
    records: Iterable[Mapping[str, Any] | Sequence[Any]],
    *,
    max_bytes: int = 5 * 2**20,
    max_records: int = 10_000,
) -> Iterator[LoadEvent]:
    """Group records into loader events ``{"action": "load", "records": [...]}``.

    Each record is ``{"shard": str, "uid": int, "value": <JSON value>}`` (a mapping, or a
    ``(shard, uid, value)`` triple). Every payload stays under *max_bytes* (Lambda accepts 6 MB)
    and *max_records*; order is kept.

    >>> events = list(load_events([("claim_type_code", 1, "AUTO"), ("claim_type_code", 2, "HOME")]))
    >>> [(e.count, json.loads(e.payload)["records"][1]) for e in events]
    [(2, {'shard': 'claim_type_code', 'uid': 2, 'value': 'HOME'})]
    """
    head, tail = b'{"action":"load","records":[', b"]}"
    if max_bytes > MAX_EVENT_BYTES or max_bytes < 1024:
        raise ValueError(f"max_bytes must be 1 KiB..{MAX_EVENT_BYTES} bytes")
    batch: list[bytes] = []
    size = len(head) + len(tail)
    for index, record in enumerate(records):
        encoded = _encode_record(index, record)
        if len(head) + len(encoded) + len(tail) > max_bytes:
            raise ValueError(f"record {index} alone is {len(encoded):,} bytes: over max_bytes")
        if batch and (size + 1 + len(encoded) > max_bytes or len(batch) >= max_records):
            yield LoadEvent(head + b",".join(batch) + tail, len(batch))
            batch, size = [], len(head) + len(tail)
        size += len(encoded) + (1 if batch else 0)
        batch.append(encoded)
    if batch:
        yield LoadEvent(head + b",".join(batch) + tail, len(batch))


def _encode_record(index: int, record: Mapping[str, Any] | Sequence[Any]) -> bytes:
    if isinstance(record, Mapping):
        if set(record) != {"shard", "uid", "value"}:
            raise ValueError(f"record {index} needs exactly shard, uid and value: {record!r}")
        shard, uid, value = record["shard"], record["uid"], record["value"]
    else:
        shard, uid, value = record
    if not isinstance(shard, str) or not isinstance(uid, int) or isinstance(uid, bool):
        raise ValueError(f"record {index}: shard must be a str and uid an int: {record!r}")
    try:
        return json.dumps(
            {"shard": shard, "uid": uid, "value": value},
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        ).encode()
    except (TypeError, ValueError) as error:
        raise ValueError(f"record {index}: value is not JSON ({error}): {record!r}") from None


def remote_load(
    stack: Stack,
    records: Iterable[Mapping[str, Any] | Sequence[Any]],
    *,
    session: boto3.Session | None = None,
    client: Any = None,
    total: int | None = None,
    progress: bool = True,
    max_bytes: int = 5 * 2**20,
    max_records: int = 10_000,
) -> LoadSummary:
    """Send *records* to the stack's loader function, batch by batch (see :func:`load_events`).

    Each invocation is synchronous and must answer ``{"ok": true, "loaded": <records in the
    event>, ...}`` (records already present count as loaded: the loader skips equal values).
    Anything else (a function error, a rejected batch, a stand-in's canned reply) raises
    :class:`RemoteLoadError` naming the batch and the loader's reason; the batches before it stay loaded
    and a re-run is safe. *client* is a Lambda client (default: from *session*).
    """
    from tqdm.auto import tqdm

    if client is None:
        client = (session or boto3.Session()).client("lambda", region_name=stack.region)
    responses = []
    sent = 0
    with tqdm(total=total, unit="rec", desc=f"load {stack.name}", disable=not progress) as bar:
        for number, event in enumerate(load_events(records, max_bytes=max_bytes, max_records=max_records)):
            reply = client.invoke(
                FunctionName=stack.loader_function,
                InvocationType="RequestResponse",
                Payload=event.payload,
            )
            body = reply["Payload"].read()
            where = f"batch {number} (records {sent}..{sent + event.count - 1})"
            if reply.get("FunctionError"):
                raise RemoteLoadError(f"{where}: the loader failed: {body[:2000].decode(errors='replace')}")
            try:
                answer = json.loads(body)
            except ValueError:
                answer = None
            if isinstance(answer, dict) and answer.get("ok") is False:
                invalid = "".join(
                    f"\n  record {sent + int(i.get('index', 0))}: {i.get('error')}"
                    for i in answer.get("invalid", [])
                )
                raise RemoteLoadError(f"{where}: the loader refused it: {answer.get('error')}{invalid}")
            if not isinstance(answer, dict) or (answer.get("ok"), answer.get("loaded")) != (
                True,
                event.count,
            ):
                raise RemoteLoadError(
                    f"{where}: expected {{'ok': true, 'loaded': {event.count}}}, got {body[:2000]!r}"
                )
            responses.append(answer)
            sent += event.count
            bar.update(event.count)
    return LoadSummary(records=sent, invocations=len(responses), responses=tuple(responses))


def signed_query(
    url: str,
    query: str,
    variables: Mapping[str, Any] | None = None,
    *,
    session: boto3.Session | None = None,
    region: str | None = None,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """POST a GraphQL query to an ``AWS_IAM`` Function URL, signed with SigV4 (service ``lambda``).

    Credentials come from *session* (default: the usual boto3 chain). *region* defaults to the one
    in a ``*.lambda-url.<region>.on.aws`` URL, else the session's. Returns the GraphQL response
    (``data`` and/or ``errors``); raises :class:`AwsError` for any other answer (e.g. 403).
    """
    session = session or boto3.Session()
    match = re.search(r"\.lambda-url\.([a-z0-9-]+)\.on\.aws", url)
    region = region or (match[1] if match else None) or session.region_name
    if not region:
        raise ValueError("no region for signing: pass region=")
    credentials = session.get_credentials()
    if credentials is None:
        raise AwsError("no AWS credentials found (set AWS_PROFILE or the AWS_* variables)")
    body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
    request = AWSRequest("POST", url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(credentials.get_frozen_credentials(), "lambda", region).add_auth(request)
    prepared = request.prepare()
    http = urllib.request.Request(prepared.url, data=body, headers=dict(prepared.headers), method="POST")
    try:
        with urllib.request.urlopen(http, timeout=timeout) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and ("data" in answer or "errors" in answer):
        return answer
    raise AwsError(f"HTTP {status} from {url}: {text[:500].decode(errors='replace')}")


# --------------------------------------------------------------------------------------------
# An offline AWS for tests and notebooks


@contextmanager
def moto_server(region: str = "us-east-1") -> Iterator[str]:
    """Run a moto server on 127.0.0.1 and point boto3 at it until the block ends; yields its URL.

    Sets ``AWS_ENDPOINT_URL``, fake credentials and the region in ``os.environ`` (restored on exit),
    so unchanged boto3 code, including :func:`deploy`, talks to moto. moto records the
    configuration but runs nothing: never take its ``invoke`` answers for a handler's.
    Needs the ``moto[server]`` package (a development dependency).
    """
    from moto.server import ThreadedMotoServer

    settings = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        # moto knows AWS managed policies (the role attaches one) only when asked to.
        "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
    }
    saved = {name: os.environ.get(name) for name in [*settings, "AWS_ENDPOINT_URL", "AWS_PROFILE"]}
    requests_log = logging.getLogger("werkzeug")
    saved_level = requests_log.level
    os.environ.update(settings)
    os.environ.pop("AWS_PROFILE", None)
    requests_log.setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        os.environ["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
        yield os.environ["AWS_ENDPOINT_URL"]
    finally:
        server.stop()
        requests_log.setLevel(saved_level)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
