"""Build the Lambda zip: the package, its Lambda entry points and the runtime dependencies.

The zip is built from the installed package (wherever it is installed, editable or not) and the
dependencies its distribution declares; ``project_root`` builds a source tree instead. The entry
points ship inside the package as ``efs_sqlite/lambdas/<function>/handler.py`` and go to the zip's
top as ``lambdas/<function>/handler.py``, the module Lambda's ``Handler`` names. The zip is
reproducible (sorted entries, fixed times and modes, no bytecode, no install records) and checked
against Lambda's size limits before it is kept.

>>> handler_file("loader").relative_to(PACKAGE).as_posix()
'lambdas/loader/handler.py'
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
import re
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from efs_sqlite.aws.target import (
    MACHINES,
    MAX_UNZIPPED_BYTES,
    MAX_ZIP_BYTES,
    Arch,
    check_choice,
    handler_module,
)
from efs_sqlite.errors import BuildError

__all__ = ["PACKAGE", "BuildResult", "build_zip", "handler_file", "runtime_requirements"]

#: The installed ``efs_sqlite`` package folder: what the zip carries.
PACKAGE = Path(__file__).resolve().parents[1]
_DISTRIBUTION = "efs-sqlite"
#: Where the entry points live inside the package folder, and inside the zip.
_LAMBDAS = "lambdas"
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# The Lambda Python runtime ships boto3; bundling our own copy only adds ~20 MB.
_RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer"})
_DIST_INFO_NOISE = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})
_HANDLER_FILE = re.compile(r"^lambdas/([A-Za-z0-9_]+)/handler\.py$")


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
        return {m[1]: handler_module(m[1]) for m in found if m}


def handler_file(function: str) -> Path:
    """The installed source of *function*'s Lambda entry point."""
    return PACKAGE / _LAMBDAS / function / "handler.py"


def runtime_requirements(pyproject: str | os.PathLike[str] | None = None) -> list[str]:
    """The dependencies to bundle: those of *pyproject* (``[project] dependencies``), or by
    default those the installed distribution declares (without its extras), minus what the
    Lambda runtime provides."""
    if pyproject is None:
        try:
            declared = importlib.metadata.requires(_DISTRIBUTION) or []
        except importlib.metadata.PackageNotFoundError:
            raise BuildError(
                f"{_DISTRIBUTION} is not installed (pip install it, or pass project_root=)"
            ) from None
        requirements = [r for r in declared if "extra ==" not in r.partition(";")[2]]
    else:
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
    arch: Arch = "x86_64",
    python_version: str = "3.13",
    project_root: str | os.PathLike[str] | None = None,
) -> BuildResult:
    """Build the Lambda zip: ``efs_sqlite``, ``lambdas/`` and the runtime dependencies.

    The package is the installed one (:data:`PACKAGE`), unless *project_root* names a source tree
    (``pyproject.toml`` and ``efs_sqlite/``, whose ``lambdas/`` holds the entry points).
    Dependencies are installed by pip for Lambda's platform (manylinux_2_28, CPython
    *python_version*, *arch*; pip's cache keeps rebuilds offline-fast). The zip is reproducible:
    sorted entries, fixed times and modes, no bytecode, no install records. Raises
    :class:`BuildError` when it would break Lambda's 50 MB zipped / 250 MB unzipped limits.
    """
    check_choice("arch", arch, MACHINES)
    if not re.fullmatch(r"3\.\d{1,2}", python_version):
        raise ValueError(f"python_version must look like '3.13', not {python_version!r}")
    source = _installed() if project_root is None else _source_tree(Path(project_root))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"efs-sqlite-lambda-py{python_version}-{arch}.zip"
    with tempfile.TemporaryDirectory(prefix="efs-sqlite-build-") as tmp:
        site = Path(tmp)
        _pip_install(source.requirements, site, arch, python_version)
        entries = _tree(site, site)
        for arcname, path in _package_files(source.package).items():
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


class _Source(NamedTuple):
    """What a build packs: the ``efs_sqlite`` folder and the requirements to install beside it."""

    package: Path
    requirements: list[str]


def _installed() -> _Source:
    return _Source(PACKAGE, runtime_requirements())


def _source_tree(root: Path) -> _Source:
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file() or not (root / "efs_sqlite").is_dir():
        raise FileNotFoundError(
            f"{root} is not the project's source tree (pyproject.toml and efs_sqlite/ needed)"
        )
    return _Source(root / "efs_sqlite", runtime_requirements(pyproject))


def _package_files(package: Path) -> dict[str, Path]:
    """``{zip name: file}`` for the package, its entry points moved to the zip's top."""
    files = {
        name: path
        for name, path in _tree(package, package.parent).items()
        if not name.startswith(f"{package.name}/{_LAMBDAS}/")
    }
    return files | _tree(package / _LAMBDAS, package)


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
        f"manylinux_2_28_{MACHINES[arch][0]}",
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
