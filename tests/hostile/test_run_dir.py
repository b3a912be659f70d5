"""Code in a sandbox going after the host through its run directory (/run/sandkasten).

The run directory is the sandbox's: code inside can make names there. The host
must never follow one: not the control socket (a terminal into sandbox A must
not land in sandbox B), not the kernel's sockets (a person's console on A's
kernel must not connect to a socket of B's), not the kernel's connection file
(a FIFO there must not block a reader, /dev/zero must not fill its memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import docker.errors
import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from sandkasten import SyncSession
from sandkasten_server.launcher import Served

Sessions = Callable[..., SyncSession]
KERNEL_SOCKETS = ["kernel-%d" % port for port in range(1, 6)]


def _host_run_dir(server: Served, session: SyncSession) -> str:
    """Where the host keeps ``session``'s run directory: easy to guess, as an attacker would."""
    return os.path.join(server.state_dir, "sandboxes", session.id)


def _replace_with_link(session: SyncSession, name: str, target: str) -> str:
    """From inside: swap /run/sandkasten/<name> for a symlink to ``target`` (a host path)."""
    command = "cd /run/sandkasten && ln -sfn %s .evil-%s && mv -fT .evil-%s %s 2>&1; echo rc=$?" % (
        target,
        name,
        name,
        name,
    )
    return session.exec(command).output


async def _terminal_output(server: Served, session_id: str, command: str, until: str) -> str:
    url = server.url.replace("http://", "ws://") + "/sessions/%s/terminal" % session_id
    socket = await websocket_connect(HTTPRequest(url, headers=server.headers))
    socket.write_message(json.dumps(["stdin", command + "\n"]))
    seen = ""
    try:
        while until not in seen:
            message = await asyncio.wait_for(socket.read_message(), 20)
            assert message is not None, seen
            kind, *rest = json.loads(message)
            if kind == "stdout":
                seen += rest[0]
    finally:
        socket.close()
    return seen


def test_a_terminal_into_a_never_lands_in_b(hostile_server: Served, sessions: Sessions) -> None:
    """A swaps its control socket for a link to B's: the next host connection to A must not reach B."""
    a, b = sessions(), sessions()
    b.write("secret.txt", "B-SECRET-%s" % b.id)
    attempt = _replace_with_link(a, "control.sock", os.path.join(_host_run_dir(hostile_server, b), "control.sock"))
    assert "rc=0" not in attempt, "the sandbox could replace its pinned control socket: %s" % attempt
    command = "cat /workspace/secret.txt; echo DONE-$((6*7))"
    seen = asyncio.run(_terminal_output(hostile_server, a.id, command, "DONE-42"))
    assert "B-SECRET" not in seen
    assert a.exec("echo still-a").output == "still-a\n"  # A's own runner still answers


def test_a_pinned_name_cannot_be_removed_or_renamed_from_inside(sessions: Sessions) -> None:
    session = sessions()
    session.run_code("1")  # the kernel's sockets exist and are pinned
    attack = "cd /run/sandkasten; for n in control.sock kernel-1; do rm -f $n; mv $n x 2>/dev/null; done; ls"
    listing = session.exec(attack)
    for name in ["control.sock", *KERNEL_SOCKETS]:
        assert name in listing.output.split(), listing.output
    made = session.exec("touch /run/sandkasten/mine && rm /run/sandkasten/mine && echo mine-ok").output
    assert made == "mine-ok\n"  # the directory is still the sandbox's to write in
    assert session.run_code("6 * 7").text == "42"


def test_a_console_on_a_kernel_never_connects_to_another_sandbox(hostile_server: Served, sessions: Sessions) -> None:
    """A swaps its kernel's sockets for links to a listener in B; a person then opens A's kernel."""
    a, b = sessions(), sessions()
    a.run_code("1")  # A's kernel runs, under Jupyter Server's kernel manager
    listener = textwrap.dedent(
        """
        import socket, threading
        s = socket.socket(socket.AF_UNIX)
        s.bind("/run/sandkasten/trap.sock")
        s.listen(64)
        while True:
            c, _ = s.accept()
            open("/workspace/accepted", "a").write("1")
        """
    )
    b.write("trap.py", listener)
    b.exec("nohup python3 /workspace/trap.py >/dev/null 2>&1 & sleep 0.5")
    trap = os.path.join(_host_run_dir(hostile_server, b), "trap.sock")
    attempts = [_replace_with_link(a, name, trap) for name in KERNEL_SOCKETS]
    assert not any("rc=0" in attempt for attempt in attempts), attempts
    kernel_id = hostile_server.call("GET", "sessions/" + a.id)["kernel"]["id"]

    async def open_console() -> str:
        url = hostile_server.base_url.replace("http://", "ws://") + "/api/kernels/%s/channels" % kernel_id
        request = HTTPRequest(url, headers=hostile_server.headers, connect_timeout=20, request_timeout=20)
        try:
            socket = await websocket_connect(request)
        except Exception as exc:  # the server's own kernel client hung on what it reached
            return "not opened: %r" % exc
        await asyncio.sleep(3)  # ZMQ connects in the background, and retries
        socket.close()
        return "opened"

    console = asyncio.run(open_console())
    accepted = b.exec("cat /workspace/accepted 2>/dev/null | wc -c").output.strip()
    assert accepted == "0", "the host connected %s times to a socket in another sandbox" % accepted
    assert console == "opened"
    assert a.run_code("6 * 7").text == "42"


@pytest.mark.parametrize("plant", ["mkfifo kernel.json", "ln -s /dev/zero kernel.json"], ids=["fifo", "dev-zero"])
def test_a_process_reattaching_to_a_kernel_reads_nothing_the_sandbox_wrote(
    hostile_server: Served, sessions: Sessions, plant: str
) -> None:
    """Another process's engine (a provisioner in an agent's script) re-attaches to A's kernel after
    A replaced its kernel.json with a FIFO (an open that never returns) or /dev/zero (endless bytes)."""
    a = sessions()
    a.run_code("1")
    assert "rc=0" in a.exec("cd /run/sandkasten && rm -f kernel.json && %s; echo rc=$?" % plant).output
    script = textwrap.dedent(
        """
        import asyncio, json, sys
        from jupyter_client.asynchronous import AsyncKernelClient
        from sandkasten_kernel.engine.config import load_settings
        from sandkasten_kernel.engine.engine import Engine

        async def main():
            engine = Engine(load_settings(sys.argv[1]))
            await engine.start(pool=False, reaper=False, reconcile=False)
            info = await engine.start_kernel(sys.argv[2])
            client = AsyncKernelClient()
            client.load_connection_info(info)
            client.start_channels()
            await client.wait_for_ready(timeout=20)
            client.stop_channels()
            print(json.dumps({"transport": info["transport"], "ip": info["ip"]}))

        asyncio.run(main())
        """
    )
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-c", script, hostile_server.config_path, a.id],
            capture_output=True,
            text=True,
            timeout=45,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("re-attaching to the kernel hung on the sandbox's kernel.json")
    assert done.returncode == 0, done.stderr[-3000:]
    info: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert info == {"transport": "ipc", "ip": os.path.join(_host_run_dir(hostile_server, a), "kernel")}
    assert time.monotonic() - started < 45
    assert a.run_code("6 * 7").text == "42"  # the server's own client is unharmed


def _session_ids(server: Served) -> set[str]:
    return {s["id"] for s in server.call("GET", "sessions")["sessions"]}


def test_a_frozen_sandbox_delays_only_itself(hostile_server: Served, sessions: Sessions, docker_client: Any) -> None:
    """A's runner stops answering (its container frozen): listings with usage, the reaper and other
    sessions go on; only A's own calls fail, each within its deadline."""
    a, other = sessions(ttl=6), sessions()
    a.run_code("1")  # A has a kernel: reaping A stops it first, which asks A's runner
    container = docker_client.containers.get("sandkasten-%s" % a.id)
    container.pause()
    try:
        started = time.monotonic()
        listed = {s["id"]: s for s in hostile_server.call("GET", "sessions?usage=true")["sessions"]}
        assert time.monotonic() - started < 12, "a listing with usage waited on the frozen sandbox"
        assert listed[a.id]["usage"] is None and listed[other.id]["usage"]["pids"] >= 2
        time.sleep(12)  # A's ttl is over: a reap of A has begun, and waits on A's runner
        doomed = sessions(ttl=1)
        deadline = time.monotonic() + 20
        while doomed.id in _session_ids(hostile_server) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert doomed.id not in _session_ids(hostile_server), "the reaper is stuck on the frozen sandbox"
        assert other.exec("echo fine").output == "fine\n"
    finally:
        with contextlib.suppress(docker.errors.NotFound):  # reaped meanwhile
            container.reload()
            if container.status == "paused":
                container.unpause()
