"""AWS deployment: build the Lambda zip, deploy and tear down a stack with boto3, load and query it.

This package runs where you deploy from (a laptop, a notebook, CI); the functions never import
it, except :mod:`~efs_sqlite.aws.loader_protocol`, the loader's contract. Nothing here imports
the runtime modules: the zip carries them as files. One module per stage and per AWS service:

- :mod:`~efs_sqlite.aws.target`: the Lambda runtime, architectures and limits
- :mod:`~efs_sqlite.aws.build`: the zip, from the installed package
- :mod:`~efs_sqlite.aws.verify`: the handlers, imported from the unpacked zip by a clean interpreter
- :mod:`~efs_sqlite.aws.config`: :class:`StackConfig` and the deployed :class:`Stack`
- :mod:`~efs_sqlite.aws.calls`: the one call layer (clients, retries, waits, tags, dry run)
- :mod:`~efs_sqlite.aws.network`, :mod:`~efs_sqlite.aws.efs`, :mod:`~efs_sqlite.aws.dynamodb`,
  :mod:`~efs_sqlite.aws.iam`, :mod:`~efs_sqlite.aws.functions`: one AWS service each
- :mod:`~efs_sqlite.aws.stack`: :func:`deploy`, :func:`teardown`, :func:`find_stack`
- :mod:`~efs_sqlite.aws.invoke`: :func:`remote_load`, :func:`remote_calibrate` and :func:`signed_query`
- :mod:`~efs_sqlite.aws.loader_protocol`: the loader's event and answer
- :mod:`~efs_sqlite.aws.fakes`: a moto server, Lambda's event and context, a fresh handler import

The names below load their module on first use, so the loader's contract and the fakes import
without boto3.

>>> from efs_sqlite import aws
>>> aws.StackConfig("demo", region="us-east-1").graphql_function
'efs-sqlite-demo-graphql'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from efs_sqlite.errors import AwsError, BuildError, DeployError, RemoteLoadError, VerifyError

if TYPE_CHECKING:
    from efs_sqlite.aws.build import BuildResult, build_zip, runtime_requirements
    from efs_sqlite.aws.calls import TAG_KEY, Call
    from efs_sqlite.aws.config import Stack, StackConfig
    from efs_sqlite.aws.fakes import function_url_event, moto_server
    from efs_sqlite.aws.invoke import (
        LoadEvent,
        LoadSummary,
        load_events,
        remote_calibrate,
        remote_load,
        signed_query,
    )
    from efs_sqlite.aws.stack import deploy, find_stack, teardown
    from efs_sqlite.aws.target import MAX_EVENT_BYTES, MAX_ZIP_BYTES, RUNTIME
    from efs_sqlite.aws.verify import HandlerCheck, Verification, find_python, verify_zip

_LAZY = {
    "BuildResult": "build",
    "build_zip": "build",
    "runtime_requirements": "build",
    "TAG_KEY": "calls",
    "Call": "calls",
    "Stack": "config",
    "StackConfig": "config",
    "function_url_event": "fakes",
    "moto_server": "fakes",
    "LoadEvent": "invoke",
    "LoadSummary": "invoke",
    "load_events": "invoke",
    "remote_calibrate": "invoke",
    "remote_load": "invoke",
    "signed_query": "invoke",
    "deploy": "stack",
    "find_stack": "stack",
    "teardown": "stack",
    "MAX_EVENT_BYTES": "target",
    "MAX_ZIP_BYTES": "target",
    "RUNTIME": "target",
    "HandlerCheck": "verify",
    "Verification": "verify",
    "find_python": "verify",
    "verify_zip": "verify",
}

__all__ = [
    "MAX_EVENT_BYTES",
    "MAX_ZIP_BYTES",
    "RUNTIME",
    "TAG_KEY",
    "AwsError",
    "BuildError",
    "BuildResult",
    "Call",
    "DeployError",
    "HandlerCheck",
    "LoadEvent",
    "LoadSummary",
    "RemoteLoadError",
    "Stack",
    "StackConfig",
    "Verification",
    "VerifyError",
    "build_zip",
    "deploy",
    "find_python",
    "find_stack",
    "function_url_event",
    "load_events",
    "moto_server",
    "remote_calibrate",
    "remote_load",
    "runtime_requirements",
    "signed_query",
    "teardown",
    "verify_zip",
]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
