"""What the dashboard's tests share: node and the build, a server serving that build, and the browser's setup.

``lab_server`` starts ``sandkasten serve`` with JupyterLab; JUPYTER_PATH points it at
this checkout's fresh build, so the browser sees the code under test.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hatch_jupyter_builder.utils import is_stale

from sandkasten_server import launcher
from sandkasten_server.launcher import Served

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "labextension"
BUILT = PACKAGE / "built"
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("SANDKASTEN_ARTIFACTS", ROOT / "test-artifacts")) / "labextension"


def npm(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    npm_path = shutil.which("npm")
    if npm_path is None:
        pytest.fail("npm is missing: the dashboard's tests need Node 20 and npm")
    # `jupyter labextension build` must be this interpreter's.
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    full_env = dict(os.environ, PATH=path, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1", **(env or {}))
    return subprocess.run([npm_path, *args], cwd=PACKAGE, capture_output=True, text=True, timeout=timeout, env=full_env)


@pytest.fixture(scope="session")
def built() -> Path:
    """node_modules as package-lock.json has it, and a build no older than the sources."""
    installed = PACKAGE / "node_modules" / ".package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < (PACKAGE / "package-lock.json").stat().st_mtime:
        result = npm("ci", "--no-audit", "--no-fund")
        assert result.returncode == 0, result.stdout + result.stderr
    if is_stale(BUILT, PACKAGE / "src") or is_stale(BUILT, PACKAGE / "style"):
        result = npm("run", "build")
        assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert (BUILT / "package.json").exists()
    return BUILT


@contextlib.contextmanager
def lab_server(
    built: Path, config: dict[str, Any], server_config: dict[str, Any] | None = None, env: dict[str, str] | None = None
) -> Iterator[Served]:
    """``sandkasten serve`` with JupyterLab and ``config`` (sandkasten.yaml keys), serving ``built``;
    ``server_config`` is Jupyter Server's own (a jupyter_server_config.json), ``env`` more of its environment."""
    jupyter_path = tempfile.mkdtemp(prefix="sk-jp-")
    extension = Path(jupyter_path, "labextensions", "@sandkasten", "labextension")
    extension.parent.mkdir(parents=True)
    extension.symlink_to(built)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", jupyter_path)
        # A fresh layout and settings (the light theme), not the last run's.
        patch.setenv("JUPYTERLAB_WORKSPACES_DIR", jupyter_path)
        patch.setenv("JUPYTERLAB_SETTINGS_DIR", jupyter_path)
        if server_config is not None:
            Path(jupyter_path, "jupyter_server_config.json").write_text(json.dumps(server_config))
            patch.setenv("JUPYTER_CONFIG_PATH", jupyter_path)
        for name, value in (env or {}).items():
            patch.setenv(name, value)
        server = launcher.start(config)
    try:
        yield server
    finally:
        server.stop()
        server.remove_state()
        shutil.rmtree(jupyter_path, ignore_errors=True)


def browser_env(lab: Served) -> dict[str, str]:
    """What the e2e scripts need: the server, Debian's Chromium (never a downloaded one), a place for screenshots."""
    if not os.path.exists(CHROMIUM):
        pytest.fail("%s is missing: apt-get install chromium (scripts/dev installs it)" % CHROMIUM)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return {
        "SANDKASTEN_URL": lab.base_url,
        "SANDKASTEN_API_KEY": lab.api_key,
        "SANDKASTEN_ARTIFACTS": str(ARTIFACTS),
        "PYTHON": sys.executable,
        "CHROMIUM": CHROMIUM,
    }
