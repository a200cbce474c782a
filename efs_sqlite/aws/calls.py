"""The one call layer of a deploy, teardown or lookup: clients, reads, recorded writes, retries,
waits, the stack's tags, and the dry run that prints the writes instead of making them.

Transient faults and throttling are retried by botocore itself (its ``standard`` retry mode);
what is retried here is AWS's eventual consistency: a resource created moments ago that another
call or service does not see yet.

>>> print(Call("ec2", "create_vpc", {"CidrBlock": "10.42.0.0/16", "Code": b"zip"}))
ec2.create_vpc(CidrBlock='10.42.0.0/16', Code='<3 bytes>')
"""

from __future__ import annotations

import functools
import logging
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from efs_sqlite.aws.config import StackConfig
from efs_sqlite.errors import DeployError

__all__ = ["COMPONENT_KEY", "TAG_KEY", "Call", "Calls", "error_code", "lookup"]

log = logging.getLogger(__name__)

TAG_KEY = "efs-sqlite:stack"
COMPONENT_KEY = "efs-sqlite:component"
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8})

T = TypeVar("T")
P = ParamSpec("P")


@dataclass(frozen=True)
class Call:
    """One AWS API call made (or, in a dry run, planned) by a deploy or a teardown."""

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


def error_code(error: ClientError) -> str:
    """The AWS error code of *error*, e.g. ``"DependencyViolation"``."""
    return str(error.response.get("Error", {}).get("Code", ""))


def _message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


def lookup(
    finder: Callable[Concatenate[Calls, P], T],
) -> Callable[Concatenate[Calls, P], T | None]:
    """A finder: it reads AWS, except in a dry run, which reads nothing and so plans a fresh stack."""

    @functools.wraps(finder)
    def find(calls: Calls, *args: P.args, **kwargs: P.kwargs) -> T | None:
        return None if calls.dry_run else finder(calls, *args, **kwargs)

    return find


class Calls:
    """The AWS calls for one stack: every write is recorded in :attr:`made` (and only printed in a
    dry run, which reads nothing at all)."""

    def __init__(self, config: StackConfig, session: boto3.Session | None, dry_run: bool) -> None:
        self.config = config
        self.session = session or boto3.Session(region_name=config.region)
        region = config.region or self.session.region_name
        if not region:
            raise ValueError("no AWS region: pass region= or set AWS_REGION / AWS_DEFAULT_REGION")
        self.region: str = region
        self.dry_run = dry_run
        self.made: list[Call] = []
        self._clients: dict[str, Any] = {}

    # -- reads and writes

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(
                service, region_name=self.region, config=_CLIENT_CONFIG
            )
        return self._clients[service]

    def read(self, service: str, operation: str, **params: Any) -> Any:
        assert not self.dry_run, "a dry run reads nothing"
        return getattr(self.client(service), operation)(**params)

    def read_if_found(self, service: str, operation: str, missing: str, **params: Any) -> Any:
        """:meth:`read`, or None when AWS answers with the error code ``missing`` (no such resource)."""
        try:
            return self.read(service, operation, **params)
        except ClientError as error:
            if error_code(error) == missing:
                return None
            raise

    def pages(self, service: str, operation: str, key: str, **params: Any) -> list[Any]:
        assert not self.dry_run, "a dry run reads nothing"
        paginator = self.client(service).get_paginator(operation)
        return [item for page in paginator.paginate(**params) for item in page.get(key, [])]

    def write(self, service: str, operation: str, **params: Any) -> Any:
        """Make (or in a dry run, print) a call that changes something, and record it."""
        call = Call(service, operation, params)
        self.made.append(call)
        if self.dry_run:
            print(f"{len(self.made):3d}. {call}")
            client = self.client(service)
            api = client.meta.method_to_api_mapping[operation]
            shape = client.meta.service_model.operation_model(api).output_shape
            return _placeholder(shape, f"{api}#{len(self.made)}") if shape else {}
        log.info("%s", str(call)[:240])
        return getattr(self.client(service), operation)(**params)

    def write_ignoring(self, codes: Iterable[str], service: str, operation: str, **params: Any) -> Any:
        """:meth:`write`, where an error with one of *codes* means the work is already done."""
        try:
            return self.write(service, operation, **params)
        except ClientError as error:
            if error_code(error) not in codes:
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
                log.info("%s: %s; retrying", what, _message(error) or error_code(error))
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

        EFS has no boto3 waiters, and Lambda's do not say why a function failed, so every wait
        here polls the same way.
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

    # -- tags: what marks a resource as the stack's

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

    def owned(self, find: Callable[[], Any], what: str) -> bool:
        """Whether *find* finds ours; a namesake without our tag is left alone, with a warning."""
        try:
            return find() is not None
        except DeployError:
            warnings.warn(f"{what} is not tagged {TAG_KEY}={self.config.name}: left untouched", stacklevel=4)
            return False


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
    if error_code(error) in _NOT_YET_VISIBLE:
        return True
    # Lambda, while a just-created role or its policies have not propagated.
    return error_code(error) == "InvalidParameterValueException" and any(
        text in _message(error)
        for text in (
            "cannot be assumed by Lambda",
            "does not have permissions to call CreateNetworkInterface",
        )
    )


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
