"""PID 1 duties: reaping, SIGTERM, a clean exit; and start-up errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from tests.conftest import Target, start_container_runner, stop_container_runner


async def test_orphans_are_reaped(runner: Target) -> None:
    async with await runner.client() as client:
        # Each sh exits at once, orphaning its sleep; the sleeps then exit.
        await client.exec("for i in 1 2 3 4 5; do sh -c 'sleep 0.2 &'; done")
        time.sleep(1.0)
        # Orphans are re-parented to the runner (PID 1, or a subreaper on the host).
        runner_pid = runner.process.pid if runner.process else 1
        result = await client.exec("ps -eo ppid=,stat= | awk '$1 == %d && $2 ~ /^Z/' | wc -l" % runner_pid)
    assert result.output.strip() == "0"


def test_sigterm_stops_everything_and_exits_zero(host_runner: Target) -> None:
    import asyncio

    async def start_work() -> None:
        async with await host_runner.client() as client:
            # A background job that records the SIGTERM it is sent, and one that ignores it.
            await client.exec("bash -c 'trap \"echo got TERM > term.txt; exit 0\" TERM; sleep 300 & wait' &")
            await client.exec("bash -c 'trap \"\" TERM; sleep 300' &")
            await asyncio.sleep(0.3)

    asyncio.run(start_work())
    assert host_runner.process is not None and host_runner.host_workspace is not None
    started = time.monotonic()
    host_runner.process.send_signal(signal.SIGTERM)
    assert host_runner.process.wait(10) == 0
    assert time.monotonic() - started < 6  # the stubborn job gets SIGKILL after the grace period
    assert not os.path.exists(host_runner.socket)
    with open(os.path.join(host_runner.host_workspace, "term.txt")) as f:
        assert f.read() == "got TERM\n"


def test_docker_stop_is_a_clean_exit(docker_client: Any) -> None:
    target = start_container_runner(docker_client, "base")
    try:
        started = time.monotonic()
        target.container.stop(timeout=10)
        target.container.reload()
        assert target.container.attrs["State"]["ExitCode"] == 0
        assert time.monotonic() - started < 8  # well before docker's SIGKILL
        assert not os.path.exists(target.socket)
    finally:
        stop_container_runner(target)


def start_error(run_dir: str, workspace: str) -> str:
    """Start a runner that must refuse to start; return what it said."""
    process = subprocess.run(
        [sys.executable, "-m", "sandkasten_runner", "--run-dir", run_dir, "--workspace", workspace],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert process.returncode == 2
    assert "Traceback" not in process.stderr
    return process.stderr


def test_a_socket_path_too_long_is_a_clear_error(short_dir: str) -> None:
    run_dir = os.path.join(short_dir, "r" * 100)
    os.makedirs(run_dir)
    assert "Unix sockets allow 107" in start_error(run_dir, "/tmp")


def test_a_missing_workspace_is_a_clear_error(short_dir: str) -> None:
    assert "workspace /nonexistent/ws does not exist" in start_error(short_dir, "/nonexistent/ws")
