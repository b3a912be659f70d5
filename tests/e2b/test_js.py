"""E2B's npm SDK (``e2b``, pinned in tests/e2b/js/package-lock.json), unmodified, under node's own test runner."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

PACKAGE = Path(__file__).resolve().parent / "js"


def npm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    npm_path = shutil.which("npm")
    if npm_path is None:
        pytest.fail("npm is missing: E2B's npm SDK needs Node 18+ and npm")
    return subprocess.run(
        [npm_path, *args], cwd=PACKAGE, capture_output=True, text=True, timeout=600, env=env or dict(os.environ)
    )


def test_e2b_npm_sdk_runs_unmodified(e2b_env: dict[str, str]) -> None:
    installed = npm("ci", "--no-audit", "--no-fund")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    result = npm("test", env=dict(os.environ, **e2b_env))
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert "# fail 0" in result.stdout and "# pass 1" in result.stdout
