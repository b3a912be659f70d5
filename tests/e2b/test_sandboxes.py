"""E2B's Python SDK (``e2b``), unmodified, against Sandkasten: sandboxes and commands, sync and async."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from e2b import (
    AsyncSandbox,
    AuthenticationException,
    CommandExitException,
    NotFoundException,
    Sandbox,
    SandboxQuery,
    SandboxState,
    TimeoutException,
)

from sandkasten_server.e2b import api_key_for
from sandkasten_server.launcher import Served

pytestmark = pytest.mark.docker


def test_a_sandbox_from_create_to_kill(e2b_env: dict[str, str]) -> None:
    sbx = Sandbox.create(metadata={"suite": "e2b", "case": "lifecycle"}, envs={"GREETING": "hello"}, timeout=120)
    try:
        info = sbx.get_info()
        assert info.sandbox_id == sbx.sandbox_id and info.metadata == {"suite": "e2b", "case": "lifecycle"}
        assert info.state == SandboxState.RUNNING and 110 < (info.end_at - info.started_at).total_seconds() <= 121
        result = sbx.commands.run("echo $GREETING; echo to-stderr >&2; pwd; whoami")
        assert result.stdout.splitlines()[0] == "hello" and result.stderr == "to-stderr\n"
        assert result.stdout.splitlines()[1] == "/workspace" and result.exit_code == 0
        # E2B's home is the workspace, by its own name too.
        assert sbx.commands.run("echo kept > /home/user/e2b.txt; cat /workspace/e2b.txt").stdout == "kept\n"

        sbx.set_timeout(300)
        assert (sbx.get_info().end_at - info.end_at).total_seconds() > 150

        listed = Sandbox.list(query=SandboxQuery(metadata={"case": "lifecycle"})).next_items()
        assert [s.sandbox_id for s in listed] == [sbx.sandbox_id]
        assert Sandbox.list(query=SandboxQuery(metadata={"case": "no such"})).next_items() == []

        again = Sandbox.connect(sbx.sandbox_id)
        assert again.commands.run("echo $GREETING").stdout == "hello\n"

        assert sbx.pause()
        assert not sbx.is_running()
        assert (
            Sandbox.list(query=SandboxQuery(state=[SandboxState.PAUSED])).next_items()[0].sandbox_id == sbx.sandbox_id
        )
        resumed = Sandbox.connect(sbx.sandbox_id)
        assert resumed.is_running() and resumed.commands.run("echo back").stdout == "back\n"
    finally:
        assert sbx.kill()
    assert not sbx.kill()  # gone: False, as E2B answers
    assert not sbx.is_running()
    with pytest.raises(Exception, match="not found"):
        Sandbox.connect(sbx.sandbox_id)


def test_commands_exit_codes_background_stdin_signals_and_timeouts(e2b_env: dict[str, str]) -> None:
    with Sandbox.create() as sbx:
        with pytest.raises(CommandExitException) as failed:
            sbx.commands.run("echo partial; echo why >&2; exit 3")
        assert failed.value.exit_code == 3 and failed.value.stdout == "partial\n" and failed.value.stderr == "why\n"

        seen: list[str] = []
        streamed = sbx.commands.run(
            "for i in 1 2 3; do echo $i; done", on_stdout=seen.append, cwd="/tmp", envs={"A": "1"}
        )
        assert "".join(seen) == "1\n2\n3\n" and streamed.exit_code == 0
        assert sbx.commands.run("pwd; echo $A", cwd="/home/user", envs={"A": "2"}).stdout == "/workspace\n2\n"
        assert sbx.commands.run("whoami", user="root").exit_code == 0  # the sandbox's one user: no root here

        server = sbx.commands.run("echo up; sleep 600", background=True)
        assert server.pid in [p.pid for p in sbx.commands.list()]
        attached = sbx.commands.connect(server.pid)
        assert sbx.commands.kill(server.pid)
        with pytest.raises(CommandExitException):
            attached.wait()
        assert not sbx.commands.kill(999999)

        reader = sbx.commands.run("tr a-z A-Z", background=True, stdin=True)
        sbx.commands.send_stdin(reader.pid, "shout\n")
        sbx.commands.close_stdin(reader.pid)
        assert reader.wait().stdout == "SHOUT\n"

        started = time.monotonic()
        with pytest.raises(TimeoutException):
            sbx.commands.run("sleep 30", timeout=1)
        assert time.monotonic() - started < 10
        # One line per process; the pattern does not match this command's own line.
        count = "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done | grep -c 'sleep 3[0]' || true"
        assert sbx.commands.run(count).stdout.strip() == "0", "the timed-out command was not killed"


def test_the_async_sdk_runs_commands_at_once(e2b_env: dict[str, str]) -> None:
    async def scenario() -> tuple[float, float]:
        sbx = await AsyncSandbox.create(metadata={"suite": "e2b-async"})
        try:
            outputs: list[str] = []
            handle = await sbx.commands.run("echo a; sleep 0.2; echo b", background=True, on_stdout=outputs.append)
            assert (await handle.wait()).exit_code == 0 and "".join(outputs) == "a\nb\n"

            started = time.monotonic()
            results = await asyncio.gather(*(sbx.commands.run("sleep 1; echo %d" % i) for i in range(5)))
            concurrent = time.monotonic() - started
            assert [r.stdout for r in results] == ["%d\n" % i for i in range(5)]
            started = time.monotonic()
            for i in range(2):
                await sbx.commands.run("sleep 1; echo %d" % i)
            sequential_two = time.monotonic() - started
            info = await sbx.get_info()
            assert info.metadata == {"suite": "e2b-async"}
            return concurrent, sequential_two
        finally:
            await sbx.kill()

    concurrent, sequential_two = asyncio.run(scenario())
    assert concurrent < sequential_two + 1.0, "five commands at once took %.2f s" % concurrent


def test_keys_and_refusals(e2b_env: dict[str, str], served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    # The e2b_<hex> form of the token works where an SDK checks a key's shape.
    monkeypatch.setenv("E2B_API_KEY", api_key_for(served.api_key))
    with Sandbox.create() as sbx:
        assert sbx.commands.run("echo ok").stdout == "ok\n"
        sandbox_id = sbx.sandbox_id
    monkeypatch.setenv("E2B_API_KEY", "not-a-key")
    with pytest.raises(AuthenticationException):
        Sandbox.create()
    monkeypatch.setenv("E2B_API_KEY", served.api_key)
    with pytest.raises(Exception, match="template"):
        Sandbox.create(template="no-such-template")
    with pytest.raises(NotFoundException):
        Sandbox.get_info(sandbox_id)


def raw(served: Served, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    """One call to the E2B surface without an SDK: (status, JSON body)."""
    request = urllib.request.Request(
        served.base_url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            data = response.read()
            return response.status, json.loads(data) if data else None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_first_api_version_and_e2b_shaped_errors(served: Served) -> None:
    key = {"X-API-Key": served.api_key}
    status, created = raw(served, "POST", "/e2b/sandboxes", {"templateID": "base", "timeout": 60}, key)
    assert status == 201 and created["envdVersion"] and created["envdAccessToken"]
    sandbox_id = created["sandboxID"]
    assert raw(served, "POST", "/e2b/sandboxes/%s/connect" % sandbox_id, {"timeout": 60}, key)[0] == 200
    assert raw(served, "GET", "/e2b/sandboxes", None, key)[0] == 200
    for method, path, status in (
        ("GET", "/e2b/sandboxes/nope", 404),
        ("POST", "/e2b/sandboxes/%s/snapshots" % sandbox_id, 501),
        ("GET", "/e2b/templates", 501),
    ):
        got, body = raw(served, method, path, None, key)
        assert got == status and body["code"] == status and body["message"], (path, body)
    assert raw(served, "GET", "/e2b/sandboxes", None, {})[0] == 401

    # The sandbox's traffic needs its token; without it nobody learns whether the sandbox exists.
    traffic = {"E2b-Sandbox-Id": sandbox_id, "E2b-Sandbox-Port": "49983"}
    assert raw(served, "GET", "/e2b/sandbox/health", None, traffic)[0] == 401
    assert raw(served, "GET", "/e2b/sandbox/health", None, {**traffic, "E2b-Sandbox-Id": "other"})[0] == 401
    token = {"X-Access-Token": created["envdAccessToken"]}
    assert raw(served, "GET", "/e2b/sandbox/health", None, {**traffic, **token})[0] == 204
    assert raw(served, "DELETE", "/e2b/sandboxes/%s" % sandbox_id, None, key)[0] == 204
    status, body = raw(served, "GET", "/e2b/sandbox/health", None, {**traffic, **token})
    assert status == 502 and "was not found" in body["message"]


def test_http_1_1_when_asked(e2b_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``E2B_HTTP_VERSION=1.1``, as well as the default ("2", which is HTTP/1.1 to an http:// URL too)."""
    monkeypatch.setenv("E2B_HTTP_VERSION", "1.1")
    with Sandbox.create() as sbx:
        assert sbx.commands.run("echo over 1.1").stdout == "over 1.1\n"
        sbx.files.write("/home/user/http.txt", "1.1")
        assert sbx.files.read("/home/user/http.txt") == "1.1"
