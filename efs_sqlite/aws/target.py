"""What the functions run on and what Lambda allows: runtime, architectures, size limits.

>>> RUNTIME, RUNTIME_VERSION, sorted(MACHINES)
('python3.13', '3.13', ['arm64', 'x86_64'])
>>> check_choice("arch", "sparc", MACHINES)
Traceback (most recent call last):
ValueError: arch must be one of ['arm64', 'x86_64'], not 'sparc'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

RUNTIME = "python3.13"
RUNTIME_VERSION = RUNTIME.removeprefix("python")
Arch = Literal["x86_64", "arm64"]
#: Lambda architecture -> the names ``platform.machine()`` gives it (the first is the wheel tag's).
MACHINES: dict[str, tuple[str, ...]] = {"x86_64": ("x86_64", "amd64"), "arm64": ("aarch64", "arm64")}
#: The functions of a stack; each has ``lambdas/<function>/handler.py`` in the zip.
FUNCTIONS = ("graphql", "loader")
#: Lambda's limit for a zip uploaded directly with the request.
MAX_ZIP_BYTES = 50 * 1024 * 1024
#: Lambda's limit for the unpacked code of a function.
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
#: Lambda's limit for a synchronous invocation's request payload.
MAX_EVENT_BYTES = 6 * 1024 * 1024


def handler_module(function: str) -> str:
    """The module of *function*'s handler inside the zip.

    >>> handler_module("loader")
    'lambdas.loader.handler'
    """
    return f"lambdas.{function}.handler"


def check_choice(what: str, value: str, allowed: Iterable[str]) -> None:
    """Raise ValueError unless *value* is one of *allowed*."""
    if value not in allowed:
        raise ValueError(f"{what} must be one of {sorted(allowed)}, not {value!r}")
