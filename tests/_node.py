"""The Node.js side of the suite: the packages of ``tests/node`` (the spec's audits, playwright-core),
installed once by ``npm ci`` from the lock file, and its scripts run against a real server.

``npm ci`` runs when ``tests/node/node_modules`` is missing or older than the lock file, so a clean
clone installs them on its first run and later runs reuse them (node_modules is not tracked).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

NODE_DIR = Path(__file__).resolve().parent / "node"
#: Debian's package (``make chromium`` installs it); playwright-core drives it, it downloads none.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def node_packages() -> Path:
    """``tests/node/node_modules``, installed from ``package-lock.json`` when it is out of date."""
    installed = NODE_DIR / "node_modules" / ".package-lock.json"  # npm writes it last
    lock = NODE_DIR / "package-lock.json"
    if not installed.is_file() or installed.stat().st_mtime < lock.stat().st_mtime:
        if shutil.which("npm") is None:
            pytest.fail("these tests need Node.js 20+ and npm on the PATH")
        command = ["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts"]
        done = subprocess.run(command, cwd=NODE_DIR, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, f"npm ci failed in {NODE_DIR}:\n{done.stderr[-3000:]}"
    return NODE_DIR / "node_modules"


def run_node(script: str, *args: str, timeout: float = 120) -> list[dict[str, Any]]:
    """Run ``tests/node/<script>``; its output, one JSON object per line."""
    done = subprocess.run(
        ["node", str(NODE_DIR / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "CHROMIUM": CHROMIUM},
    )
    assert done.returncode == 0, f"node {script} failed:\n{done.stderr[-3000:]}"
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
