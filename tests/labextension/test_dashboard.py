"""The JupyterLab extension (labextension/): built, unit-tested, in the wheel, and driven in real Chromium.

One ``sandkasten serve`` with JupyterLab is started for the module; JUPYTER_PATH
points it at this checkout's fresh build, so the browser sees the code under test:
the dashboard, and the untrusted rendering of what sandboxed kernels output.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from hatch_jupyter_builder.utils import is_stale

from sandkasten_server import launcher
from sandkasten_server.launcher import Served
from tests.conftest import build_wheel, sandkasten_cli

pytestmark = pytest.mark.docker

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


@pytest.fixture(scope="module")
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


@pytest.fixture(scope="module")
def lab(built: Path, docker_client: object) -> Iterator[Served]:
    """``sandkasten serve`` with JupyterLab, serving this checkout's build of the dashboard."""
    jupyter_path = tempfile.mkdtemp(prefix="sk-jp-")
    extension = Path(jupyter_path, "labextensions", "@sandkasten", "labextension")
    extension.parent.mkdir(parents=True)
    extension.symlink_to(built)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", jupyter_path)
        # A fresh layout and settings (the light theme), not the last run's.
        patch.setenv("JUPYTERLAB_WORKSPACES_DIR", jupyter_path)
        patch.setenv("JUPYTERLAB_SETTINGS_DIR", jupyter_path)
        server = launcher.start({"pool": {"images": {"python": 1}}, "session": {"ttl_s": 600}})
    yield server
    server.stop()
    server.remove_state()
    shutil.rmtree(jupyter_path, ignore_errors=True)


def test_unit_tests_pass(lab: Served) -> None:
    result = npm("test", env={"SANDKASTEN_URL": lab.base_url, "SANDKASTEN_API_KEY": lab.api_key})
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-6000:]
    assert " failed" not in report and "skipped" not in report, report[-3000:]


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


@pytest.fixture
def added_image(lab: Served, docker_client: Any) -> Iterator[str]:
    """An image added to the lab's server (python3 is in layers:base already: only the runner layer is built);
    the dashboard removes it."""
    name = "sk-test-e2e"
    added = sandkasten_cli(lab.config_path, "images", "add", name, "--from", "sandkasten/layers:base")
    assert added.returncode == 0, added.stdout + added.stderr
    yield name
    with contextlib.suppress(docker.errors.ImageNotFound):
        docker_client.images.remove("sandkasten/runtime:%s" % name)


def test_the_dashboard_in_chromium(lab: Served, added_image: str) -> None:
    result = npm("run", "e2e", env={**browser_env(lab), "SANDKASTEN_ADDED_IMAGE": added_image}, timeout=300)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-6000:] + "\n--- server log ---\n" + lab.log()[-3000:]
    assert "e2e: passed" in result.stdout
    assert (ARTIFACTS / "dashboard-terminal.png").stat().st_size > 10_000
    assert (ARTIFACTS / "dashboard-images.png").stat().st_size > 10_000


def test_a_sandboxed_kernels_output_runs_no_script_in_the_operators_page(lab: Served) -> None:
    """Human takeover, attacked: an agent's kernel emits HTML with <script>, <img onerror>, <svg onload>,
    an iframe and ontoggle, an SVG with onload and <script>, Markdown with onerror, application/javascript,
    an execute_result and an update_display, each of which would record itself in window.__skPwned.

    The operator opens a console on the kernel from JupyterLab's Running panel and calls it, watches the
    agent call it (all kernel activity shown), then does the same in a notebook and picks "Trust
    Notebook". Nothing may run; the PNG plot, the pandas table and sanitized HTML must still show; the
    saved notebook must not be signed (reopened, its cells stay untrusted).
    """
    shots = [
        ARTIFACTS / ("untrusted-outputs-%s.png" % name)
        for name in ("console", "console-foreign", "notebook", "notebook-trusted")
    ]
    for shot in shots:
        shot.unlink(missing_ok=True)
    result = npm("run", "e2e:outputs", env=browser_env(lab), timeout=400)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-6000:] + "\n--- server log ---\n" + lab.log()[-3000:]
    assert "e2e: passed" in result.stdout
    assert all(shot.stat().st_size > 10_000 for shot in shots)


def test_the_wheel_carries_the_prebuilt_dashboard(built: Path, tmp_path: Path) -> None:
    wheel = build_wheel(ROOT, tmp_path, "sandkasten_kernel-*.whl")
    prefix = "sandkasten_kernel-0.1.0.data/data/share/jupyter/labextensions/@sandkasten/labextension/"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert prefix + "package.json" in names and prefix + "install.json" in names
    assert any(name.startswith(prefix + "static/remoteEntry.") for name in names)
    # Installed from the sdist into a venv of its own, enabled: tests/test_packaging.py.
