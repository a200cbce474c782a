"""Verify the Lambda zip: unpack it and import each handler in a clean interpreter that sees only it.

The interpreter runs with ``-I -S`` (no ``PYTHON*`` variables, no user site, no site-packages),
with the unpacked zip as its only addition to the path, as on Lambda; a handler given an event is
called with it and a :class:`~efs_sqlite.aws.fakes.LambdaContext`.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from efs_sqlite.aws import fakes
from efs_sqlite.aws.build import BuildResult
from efs_sqlite.aws.target import MACHINES, Arch
from efs_sqlite.errors import VerifyError

__all__ = ["HandlerCheck", "Verification", "find_python", "verify_zip"]


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


def find_python(version: str, arch: Arch = "x86_64") -> str | None:
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
        and platform.machine().lower() in MACHINES[arch]
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
# (so no site-packages at all), and the only path added is the unpacked zip, as on Lambda. The fake
# context comes from fakes.py, loaded by its path: it is the harness, not part of the zip.
_VERIFY_SCRIPT = r"""
import importlib, importlib.util, json, os, sys, sysconfig
root, fakes_file, module, event_file, out_file = sys.argv[1:6]
spec = importlib.util.spec_from_file_location("efs_sqlite_fakes", fakes_file)
fakes = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # dataclasses look it up
spec.loader.exec_module(fakes)
sys.path.insert(0, root)
handler = importlib.import_module(module).handler
result = {"response": None}
if event_file:
    with open(event_file) as f:
        event = json.load(f)
    result["response"] = handler(event, fakes.LambdaContext(os.environ["AWS_LAMBDA_FUNCTION_NAME"]))
paths = sysconfig.get_paths()
allowed = tuple(os.path.realpath(p) for p in (root, paths["stdlib"], paths["platstdlib"], fakes_file))
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
    command = [
        python,
        "-I",
        "-S",
        "-c",
        _VERIFY_SCRIPT,
        str(task),
        fakes.__file__,
        module,
        event_file,
        str(out_file),
    ]
    done = subprocess.run(
        command, cwd=work, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode:
        raise VerifyError(f"{module} failed under {python}:\n{done.stderr.strip()[-3000:]}")
    result = json.loads(out_file.read_text(encoding="utf-8"))
    if result["outside"]:
        raise VerifyError(f"{module} loaded modules from outside the zip: {result['outside']}")
    return HandlerCheck(function=name, module=module, response=result["response"])
