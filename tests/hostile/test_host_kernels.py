"""A user of ``sandkasten serve`` going after the host through Jupyter's own kernel API.

The API key opens sandboxes, not the host: a kernel asked for by any name, or by
none, runs in a sandbox or not at all.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from sandkasten_server.launcher import Served

pytestmark = pytest.mark.docker


def _jupyter(server: Served, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server.base_url + path, data=data, method=method, headers=server.headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _host_kernels() -> list[str]:
    """ipykernel processes on the host (a sandbox's kernel runs in its container, not as a child of ours)."""
    import subprocess

    ps = subprocess.run(["ps", "-eww", "-o", "pid=,args="], capture_output=True, text=True).stdout
    return [line for line in ps.splitlines() if "ipykernel_launcher" in line and "/run/sandkasten" not in line]


@pytest.mark.parametrize("name", ["python3", "python", "Python3"])
def test_the_hosts_own_kernel_cannot_be_started(hostile_server: Served, name: str) -> None:
    before = _host_kernels()
    status, reply = _jupyter(hostile_server, "POST", "/api/kernels", {"name": name})
    assert status == 404, (status, reply)
    assert "sandboxed kernels only" in reply
    assert _host_kernels() == before, "a kernel started on the host"
    _, specs = _jupyter(hostile_server, "GET", "/api/kernelspecs")
    assert set(specs["kernelspecs"]) == {"sandkasten-base", "sandkasten-python", "sandkasten-node"}
    assert specs["default"] == "sandkasten-python"


def test_a_kernel_asked_for_by_no_name_runs_in_a_sandbox(hostile_server: Served) -> None:
    status, kernel = _jupyter(hostile_server, "POST", "/api/kernels", {})
    assert status == 201, kernel
    try:
        assert kernel["name"] == "sandkasten-python"
        sessions = hostile_server.call("GET", "sessions")["sessions"]
        assert kernel["id"] in {s["kernel_id"] for s in sessions}
    finally:
        _jupyter(hostile_server, "DELETE", "/api/kernels/" + kernel["id"])
