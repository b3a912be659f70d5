"""A sandbox dies under the server (its runner killed), or the Docker engine restarts under every sandbox.

The engine notices on its own (a sweep every reap interval), says what was lost
in its events, keeps serving the rest, and never leaves a caller hanging.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from sandkasten import NotFoundError, SandkastenError, SyncSandboxClient
from sandkasten_server.launcher import Served

StartServer = Callable[..., Served]
FAST_SWEEP = {"session": {"reap_interval_s": 0.5}}


def _lost_events(server: Served) -> set[str]:
    events = server.call("GET", "events?limit=200")["events"]
    return {e["session_id"] for e in events if "lost" in str(e.get("data", e))}


def _wait(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_killed_runner_ends_its_session_and_nothing_hangs(start_server: StartServer, docker_client: Any) -> None:
    server = start_server(**FAST_SWEEP)
    with SyncSandboxClient(server.base_url, server.api_key) as client:
        doomed, neighbour = client.create_session(), client.create_session()
        outcome: list[Any] = []

        def run() -> None:
            try:
                outcome.append(doomed.exec("sleep 60; echo finished", timeout_ms=120_000))
            except SandkastenError as exc:
                outcome.append(exc)

        caller = threading.Thread(target=run)
        caller.start()
        time.sleep(1.0)
        container = docker_client.containers.get("sandkasten-%s" % doomed.id)
        os.kill(container.attrs["State"]["Pid"], signal.SIGKILL)  # the runner, PID 1 of the sandbox
        started = time.monotonic()
        caller.join(30)
        assert not caller.is_alive(), "the exec hung on a dead runner"
        assert isinstance(outcome[0], SandkastenError) and time.monotonic() - started < 15, outcome

        _wait(lambda: doomed.id not in {s.id for s in client.list_sessions()})
        with pytest.raises(NotFoundError):
            doomed.exec("true")
        assert doomed.id in _lost_events(server)
        assert neighbour.exec("echo unaffected").output == "unaffected\n"


@pytest.mark.restarts_docker
def test_a_docker_restart_is_survived_and_what_was_lost_is_reported(start_server: StartServer) -> None:
    if os.environ.get("SANDKASTEN_TEST_RESTART_DOCKERD") != "1":
        pytest.skip("restarts the machine's dockerd: set SANDKASTEN_TEST_RESTART_DOCKERD=1 (scripts/dev test does)")
    server = start_server(**FAST_SWEEP)
    with SyncSandboxClient(server.base_url, server.api_key) as client:
        live = [client.create_session(), client.create_session(workspace="faults-docker-restart")]
        live[1].write("kept.txt", "on the volume")
        _restart_dockerd()
        # Every sandbox stopped with the engine: the server notices, reports each loss, and serves again.
        _wait(lambda: not client.list_sessions(), timeout=90)
        assert {s.id for s in live} <= _lost_events(server)
        _wait(lambda: server.call("GET", "health")["status"] == "ok", timeout=90)
        fresh = client.create_session(workspace="faults-docker-restart")
        assert fresh.read("kept.txt") == "on the volume"  # volumes survive a restart
        assert fresh.exec("echo back").output == "back\n"
        fresh.destroy()
        client.workspaces.delete("faults-docker-restart")


def _restart_dockerd() -> None:
    """Stop dockerd as a service manager would, and start it again the way scripts/dev does."""
    pids = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True).stdout.split()
    assert len(pids) == 1, "expected one dockerd, found %s" % pids
    with open("/proc/%s/cmdline" % pids[0], "rb") as f:
        argv = [arg.decode() for arg in f.read().split(b"\0") if arg]
    os.kill(int(pids[0]), signal.SIGTERM)
    _wait(lambda: not os.path.exists("/proc/%s" % pids[0]), timeout=60)
    with open(os.environ.get("SANDKASTEN_DOCKERD_LOG", "/var/log/sandkasten-dockerd.log"), "ab") as log:
        subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    _wait(lambda: subprocess.run(["docker", "info"], capture_output=True).returncode == 0, timeout=60)
