"""The JupyterLab extension (labextension/): built, unit-tested, in the wheel, and driven in real Chromium.

One ``sandkasten serve`` with JupyterLab is started for the module; JUPYTER_PATH
points it at this checkout's fresh build, so the browser sees the code under test:
the dashboard, and the untrusted rendering of what sandboxed kernels output.
"""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from sandkasten_server.launcher import Served
from tests.conftest import build_wheel, sandkasten_cli
from tests.labextension.conftest import ARTIFACTS, ROOT, browser_env, lab_server, npm

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def lab(built: Path, docker_client: object) -> Iterator[Served]:
    """``sandkasten serve`` with JupyterLab, serving this checkout's build of the dashboard."""
    # The schedule's one entry keeps the pool as configured (a firing at 03:00 would undo the e2e's target edit).
    schedule = [{"cron": "0 3 * * *", "images": {"python": 1}}]
    pool = {"images": {"python": 1}, "schedule": schedule, "schedule_timezone": "UTC"}
    with lab_server(built, {"pool": pool, "session": {"ttl_s": 600}}) as server:
        yield server


def test_unit_tests_pass(lab: Served) -> None:
    result = npm("test", env={"SANDKASTEN_URL": lab.base_url, "SANDKASTEN_API_KEY": lab.api_key})
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-6000:]
    assert " failed" not in report and "skipped" not in report, report[-3000:]


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
