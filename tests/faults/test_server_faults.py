"""The server process dies, its store is locked or its disk fills: nothing is lost, and it says what is wrong."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from sandkasten import ServerError, SyncSandboxClient
from sandkasten_server import launcher
from sandkasten_server.launcher import Served

StartServer = Callable[..., Served]


def client_for(server: Served) -> SyncSandboxClient:
    return SyncSandboxClient(server.base_url, server.api_key)


def test_kill_9_mid_exec_then_restart_keeps_every_session_and_workspace(start_server: StartServer) -> None:
    server = start_server()
    with client_for(server) as client:
        named = client.create_session(workspace="faults-kept")
        named.write("notes.txt", "written before the crash")
        plain = client.create_session()
        plain.exec("cd /tmp; export KEPT=yes; sleep 600 >/dev/null 2>&1 &")
        outcome: list[Any] = []
        midway = threading.Thread(target=lambda: outcome.append(_exec_or_error(plain, "sleep 30; echo done")))
        midway.start()
        time.sleep(1.0)  # the exec is under way in the sandbox
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(10)
        midway.join(60)
        assert outcome and isinstance(outcome[0], Exception)  # the caller heard, nothing hung

    restarted = launcher.restart(server)  # a new process the fixture does not know: stopped here
    try:
        with client_for(restarted) as client:
            assert {s.id for s in client.list_sessions()} == {named.id, plain.id}
            again = client.get_session(plain.id)
            assert again.exec("pwd; echo $KEPT; jobs | wc -l").output == "/tmp\nyes\n1\n"  # the shell outlived it
            assert client.get_session(named.id).read("notes.txt") == "written before the crash"
            assert "faults-kept" in {w.name for w in client.workspaces.list()}
            for session in (named, plain):
                client.get_session(session.id).destroy()
            client.workspaces.delete("faults-kept")
    finally:
        restarted.stop()


def _exec_or_error(session: Any, command: str) -> Any:
    try:
        return session.exec(command)
    except Exception as exc:
        return exc


@contextmanager
def store_locked(server: Served) -> Iterator[None]:
    """Another process holds the store's write lock (a stray sqlite3 shell, a backup tool)."""
    db = sqlite3.connect("%s/sandkasten.db" % server.state_dir, isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        db.execute("ROLLBACK")
        db.close()


def test_a_locked_store_is_a_clear_503_and_nothing_is_lost(start_server: StartServer, docker_client: Any) -> None:
    server = start_server()
    with client_for(server) as client:
        session = client.create_session()
        containers_before = len(docker_client.containers.list(filters={"label": "sandkasten.session"}))
        with store_locked(server), httpx.Client(base_url=server.url + "/", headers=server.headers) as http:
            reply = http.post("sessions", json={}, timeout=60)
            assert reply.status_code == 503 and reply.json()["error"] == "store_unavailable", reply.text
            assert "locked" in reply.json()["message"]
            assert session.exec("echo still works").output == "still works\n"  # work goes on, unrecorded
        # The refused create left no sandbox behind; with the lock gone all is as it was.
        assert len(docker_client.containers.list(filters={"label": "sandkasten.session"})) <= containers_before + 1
        assert [s.id for s in client.list_sessions()] == [session.id]
        assert client.create_session().exec("echo ok").output == "ok\n"


@pytest.fixture
def small_disk() -> Iterator[str]:
    """A 48 MiB filesystem of its own (tmpfs), to fill without touching the machine's disk."""
    path = tempfile.mkdtemp(prefix="skfull-", dir="/tmp")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", path], capture_output=True, text=True)
    if mounted.returncode != 0:
        os.rmdir(path)
        pytest.skip("cannot mount a small filesystem here (needs root): %s" % mounted.stderr.strip())
    yield path
    subprocess.run(["umount", "-l", path], check=False)
    os.rmdir(path)


def test_a_full_disk_under_the_state_dir_is_a_clear_error_and_recovers(
    start_server: StartServer, small_disk: str
) -> None:
    server = start_server(state_dir=os.path.join(small_disk, "state"))
    with client_for(server) as client:
        session = client.create_session()
        session.write("a.txt", "before")
        filler = os.path.join(small_disk, "filler")
        subprocess.run(["dd", "if=/dev/zero", "of=" + filler, "bs=1M", "count=64"], capture_output=True, check=False)
        try:
            with pytest.raises(ServerError) as refused:
                for _ in range(3):  # the pool may still hand out a sandbox it made before the disk filled
                    client.create_session().exec("true")
            assert refused.value.status in (503, 507), refused.value
            assert "full" in str(refused.value).lower() or "space" in str(refused.value).lower(), refused.value
            assert session.exec("echo serving").output == "serving\n"  # the live session goes on
            assert session.read("a.txt") == "before"
        finally:
            os.unlink(filler)
        assert client.create_session().exec("echo recovered").output == "recovered\n"
        assert session.read("a.txt") == "before"
