"""The instructor's dashboard in real Chromium: a classroom server (each request's user from a header, the
browser the instructor, an admin), the sessions table with two students' sessions, filtering, and a bulk cull
checked through the REST API. The script is labextension/e2e/instructor.mjs; it also drives a table of 60
sessions (their listing answered in the page) for one request per refresh and rows that stay put.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandkasten_server.launcher import Served
from tests.labextension.conftest import ARTIFACTS, ROOT, browser_env, lab_server, npm
from tests.labextension.users import INSTRUCTOR

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def classroom(built: Path, docker_client: object) -> Iterator[Served]:
    """``sandkasten serve`` with JupyterLab, this checkout's dashboard, and users from the X-Test-User header."""
    config = {
        "pool": {"images": {"python": 1}, "with_kernel": False},
        "session": {"ttl_s": 600},
        "security": {"admin_users": [INSTRUCTOR]},
    }
    server_config = {"ServerApp": {"identity_provider_class": "tests.labextension.users.ClassroomIdentityProvider"}}
    with lab_server(built, config, server_config, env={"PYTHONPATH": str(ROOT)}) as server:
        yield server


def test_the_instructors_table_in_chromium(classroom: Served) -> None:
    shots = [ARTIFACTS / ("instructor-%s.png" % name) for name in ("classroom", "culled", "table")]
    for shot in shots:
        shot.unlink(missing_ok=True)
    result = npm("run", "e2e:instructor", env=browser_env(classroom), timeout=300)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-6000:] + "\n--- server log ---\n" + classroom.log()[-3000:]
    assert "e2e: passed" in result.stdout
    assert all(shot.stat().st_size > 10_000 for shot in shots)
