"""A server restart while a session is paused: it stays paused, and resumes with its shell and kernel as they were."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

from sandkasten import BadRequestError, SyncSandboxClient
from sandkasten_server import launcher
from sandkasten_server.launcher import Served

StartServer = Callable[..., Served]


def test_a_paused_session_survives_a_server_restart_and_resumes_intact(start_server: StartServer) -> None:
    server = start_server()
    with SyncSandboxClient(server.base_url, server.api_key) as client:
        session = client.create_session()
        session.exec("cd /tmp; export KEPT=yes; sleep 600 >/dev/null 2>&1 &")
        assert session.run_code("x = 6 * 7").error is None
        info = session.pause()
        assert info.status == "paused" and info.paused_at is not None
        # A snapshot of a paused session: it stays paused.
        kept = session.snapshot("before-restart")
        assert kept.source_session == session.id
    stopping = time.monotonic()
    server.process.send_signal(signal.SIGTERM)  # a clean stop, as an operator's restart
    server.process.wait(30)
    assert time.monotonic() - stopping < 10  # its frozen kernel is let go of, not waited on

    restarted = launcher.restart(server)  # a new process the fixture does not know: stopped here
    try:
        with SyncSandboxClient(restarted.base_url, restarted.api_key) as client:
            again = client.get_session(session.id)
            assert again.info.status == "paused" and again.info.paused_at == info.paused_at
            with pytest.raises(BadRequestError) as refused:
                again.exec("true")
            assert (refused.value.status, refused.value.code) == (409, "session_paused")
            resumed = again.resume()
            assert resumed.status == "running" and resumed.paused_s > 0
            assert again.exec("pwd; echo $KEPT; jobs | wc -l").output == "/tmp\nyes\n1\n"
            assert again.run_code("x").text == "42"  # the same kernel, found running again
            again.destroy()
            # The snapshot outlived the restart, and a session from it has the files (not the processes).
            assert [s.name for s in client.list_snapshots()] == ["before-restart"]
            copy = client.create_session(snapshot="before-restart")
            assert copy.exec("jobs | wc -l; pwd").output == "0\n/workspace\n"
            copy.destroy()
            client.delete_snapshot("before-restart")
    finally:
        restarted.stop()
