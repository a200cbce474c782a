"""Tiny source trees laid out like the project, for Lambda zips that need nothing from PyPI."""

from __future__ import annotations

import json
from pathlib import Path

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
