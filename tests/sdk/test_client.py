"""The Python SDK against a real `sandkasten serve`: the pitch's snippet verbatim, every call, every error class."""

from __future__ import annotations

import asyncio
import builtins
import email.utils
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import sandkasten
from sandkasten import (
    AuthenticationError,
    BadRequestError,
    ExecTimeout,
    NotFoundError,
    QuotaExceededError,
    SandboxClient,
    SandkastenConnectionError,
    SandkastenError,
    ServerError,
    SyncSandboxClient,
)
from sandkasten._calls import RetryPolicy, may_resend, retry_after_s
from sandkasten_server.launcher import Served, free_port

pytestmark = pytest.mark.docker

SDK_README = Path(__file__).resolve().parents[2] / "sdk" / "python" / "README.md"
PNG_CODE = (
    "import base64; from IPython.display import Image, display\n"
    "display(Image(data=base64.b64decode('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==')))"
)


def test_the_pitch_snippet_runs_verbatim(served: Served) -> None:
    (snippet,) = re.findall(r"<!-- pitch -->\n```python\n(.*?)```", SDK_README.read_text(), flags=re.S)
    program = "import asyncio\n\nasync def main():\n%s\nasyncio.run(main())\n" % "".join(
        "    " + line + "\n"
        for line in snippet.replace('base_url="..."', "base_url=URL")
        .replace('api_key="..."', "api_key=KEY")
        .splitlines()
    )
    program = "import os\nURL, KEY = os.environ['SK_URL'], os.environ['SK_KEY']\n" + program
    env = dict(os.environ, SK_URL=served.base_url, SK_KEY=served.api_key)
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello from sandbox!\n\n"  # print() of output that ends in a newline


async def test_every_session_call(served: Served, tmp_path: Path) -> None:
    async with SandboxClient(base_url=served.base_url, api_key=served.api_key) as client:
        session = await client.create_session(
            image="python",
            env={"GREETING": "hi"},
            limits={"memory_mb": 256},
            ttl=300,
            idle_timeout=120,
            labels={"agent": "a-1"},
        )
        async with session:
            assert session.info.limits["memory_mb"] == 256 and session.info.image == "sandkasten/runtime:python"
            assert (session.info.labels, session.info.idle_timeout_s) == ({"agent": "a-1"}, 120)
            assert (await client.get_session(session.id)).info.id == session.id
            assert session.id in [s.id for s in await client.list_sessions()]

            result = await session.exec("cat; echo $GREETING $X; pwd", cwd="/tmp", env={"X": "1"}, stdin="in\n")
            assert result.output == "in\nhi 1\n/tmp\n" and result.ok and not result.timed_out
            assert (await session.exec("exit 4")).exit_code == 4
            timed = await session.exec("echo part; sleep 10", timeout_ms=400)
            assert timed.timed_out and timed.output == "part\n" and timed.exit_code is None
            with pytest.raises(ExecTimeout) as raised:
                await session.exec("sleep 10", timeout_ms=300, raise_on_timeout=True)
            assert raised.value.result.timed_out

            stream = session.exec_stream("echo one; sleep 0.5; echo two")
            started, arrivals = time.monotonic(), []
            async for chunk in stream:
                arrivals.append((time.monotonic() - started, chunk))
            assert "".join(c for _, c in arrivals) == "one\ntwo\n" and arrivals[0][0] < 0.45
            assert stream.result is not None and stream.result.output == "one\ntwo\n"

            code = await session.run_code("x = 6\nprint('out')\nx * 7")
            assert (code.stdout, code.text, code.error) == ("out\n", "42", None)
            failed = await session.run_code("1/0")
            assert failed.error is not None and failed.error.ename == "ZeroDivisionError"
            assert not code.truncated and code.output_bytes > len("out\n")
            capped = await session.run_code("print('x' * 5000)", max_output=100)
            assert (capped.stdout, capped.truncated, capped.output_bytes) == ("x" * 100, True, 5001)
            shown = await session.run_code(PNG_CODE)
            assert shown.results[0].png is not None and shown.results[0].png.startswith(b"\x89PNG")

            assert await session.write("a/b.txt", "text ✓") == len("text ✓".encode())
            assert await session.read("a/b.txt") == "text ✓"
            await session.write("blob.bin", bytes(range(256)), mode=0o600)
            assert await session.read_bytes("blob.bin") == bytes(range(256))
            entries = {e.name: e for e in await session.list()}
            assert entries["a"].type == "directory" and entries["blob.bin"].mode == 0o600
            with pytest.raises(BadRequestError):
                await session.read("a")

            local = tmp_path / "project"
            (local / "pkg").mkdir(parents=True)
            (local / "pkg" / "main.py").write_text("print('uploaded')\n")
            assert await session.upload(local, "up") == 1
            assert (await session.exec("python3 up/pkg/main.py")).output == "uploaded\n"
            names = await session.download("up", tmp_path / "down")
            assert names == ["pkg/main.py"] and (tmp_path / "down/pkg/main.py").read_text() == "print('uploaded')\n"

            await session.remove("a", recursive=True)
            with pytest.raises(NotFoundError):
                await session.read("a/b.txt")

            paused = await session.pause()
            assert paused.status == "paused" and session.info.paused_at is not None
            with pytest.raises(BadRequestError) as refused:
                await session.run_code("x")
            assert (refused.value.status, refused.value.code) == (409, "session_paused")
            resumed = await session.resume()
            assert resumed.status == "running" and resumed.paused_at is None and resumed.paused_s > 0
            assert (await session.run_code("x")).text == "6"
        with pytest.raises(NotFoundError):
            await client.get_session(session.id)
        await session.destroy()  # twice is fine

        pool = await client.pool.status()
        assert pool["enabled"] is True
        name = "sdk-ws-%d" % os.getpid()
        async with await client.create_session(workspace=name) as holder:
            await holder.write("kept.txt", "kept")
        assert name in [w.name for w in await client.workspaces.list()]
        await client.workspaces.delete(name)
        with pytest.raises(NotFoundError):
            await client.workspaces.delete(name)


async def test_snapshots_and_forks(served: Served) -> None:
    name = "sdk-snap-%d" % os.getpid()
    client = SandboxClient(base_url=served.base_url, api_key=served.api_key)
    async with client, await client.create_session(limits={"memory_mb": 256}) as session:
        await session.exec("echo home > ~/.kept; echo tmp > /tmp/kept; echo 0.9 > score; export GONE=1")
        snapshot = await session.snapshot(name)
        try:
            assert (snapshot.name, snapshot.source_session) == (name, session.id)
            assert snapshot.image == session.info.image
            assert snapshot.workspace == {"kind": "tmpfs", "name": None, "format": "tar"}
            assert set(snapshot.parts) == {"home", "tmp", "workspace"} and snapshot.bytes > 0
            assert snapshot.limits["memory_mb"] == 256 and snapshot.frozen_ms > 0 and not snapshot.network
            assert name in [s.name for s in await client.list_snapshots()]
            assert (await client.get_snapshot(name)).created_at == snapshot.created_at
            assert (await client.get_snapshot(name, owner="")).name == name  # an admin's spelling of "mine"
            with pytest.raises(BadRequestError) as taken:
                await session.snapshot(name)
            assert (taken.value.status, taken.value.code) == (409, "snapshot_exists")

            async with await client.create_session(snapshot=name) as copy:
                assert copy.id != session.id and copy.info.limits["memory_mb"] == 256
                restored = await copy.exec("cat ~/.kept /tmp/kept score; echo ${GONE:-no}")
                assert restored.output == "home\ntmp\n0.9\nno\n"  # files kept, the shell a new one

            forks = await session.fork(2)
            try:
                assert len({f.id for f in forks} | {session.id}) == 3
                for i, fork in enumerate(forks):
                    await fork.write("score", str(i))
                assert [await fork.read("score") for fork in forks] == ["0", "1"]
                assert await session.read("score") == "0.9\n"
            finally:
                for fork in forks:
                    await fork.destroy()
        finally:
            await client.delete_snapshot(name)
        with pytest.raises(NotFoundError):
            await client.get_snapshot(name)
        with pytest.raises(NotFoundError):
            await client.create_session(snapshot=name)
        with pytest.raises(BadRequestError) as too_many:
            await session.fork(17)
        assert too_many.value.status == 400


def test_the_sync_twin(served: Served, tmp_path: Path) -> None:
    with SyncSandboxClient(served.base_url, served.api_key) as client:
        with client.create_session(image="base") as session:
            assert session.exec("echo sync").output == "sync\n"
            stream = session.exec_stream("echo a; sleep 0.2; echo b")
            assert list(stream) == ["a\n", "b\n"] and stream.result is not None and stream.result.ok
            session.write("f.txt", "x")
            assert session.read("f.txt") == "x" and [e.name for e in session.list()] == ["f.txt"]
            assert session.run_code("1 + 1").text == "2"
            assert session.run_code("print('y' * 50)", max_output=10).truncated
            assert session.id in [s.id for s in client.list_sessions()]
            assert client.get_session(session.id).info.image == "sandkasten/runtime:base"
            assert isinstance(client.pool.status(), dict) and isinstance(client.workspaces.list(), list)
            name = "sync-snap-%d" % os.getpid()
            assert session.snapshot(name).source_session == session.id
            assert name in [s.name for s in client.list_snapshots()] and client.get_snapshot(name).name == name
            (fork,) = session.fork()
            with fork:
                assert fork.read("f.txt") == "x" and fork.id != session.id
            client.delete_snapshot(name)
            assert name not in [s.name for s in client.list_snapshots()]
        with pytest.raises(NotFoundError):
            client.get_session(session.id)


async def test_authentication_and_bad_requests(served: Served) -> None:
    async with SandboxClient(base_url=served.base_url, api_key="wrong") as client:
        with pytest.raises(AuthenticationError) as denied:
            await client.list_sessions()
        assert denied.value.status == 401 and denied.value.code == "unauthorized"
    async with SandboxClient(base_url=served.base_url, api_key=served.api_key) as client:
        with pytest.raises(BadRequestError) as bad:
            await client.create_session(limits={"cpus": 0.01})
        assert bad.value.status == 400 and "limits.cpus" in bad.value.message
        with pytest.raises(NotFoundError):
            await client.get_session("nope")


async def test_quota_and_server_errors(tight: Served) -> None:
    async with SandboxClient(base_url=tight.base_url, api_key=tight.api_key, max_retries=0) as client:
        first, second = await asyncio.gather(client.create_session(), client.create_session(), return_exceptions=True)
        outcomes = sorted(type(o).__name__ for o in (first, second))
        assert outcomes == ["ServerError", "Session"], (first, second)  # one cold start at a time, no waiting
        refused = next(o for o in (first, second) if isinstance(o, ServerError))
        assert refused.status == 503 and refused.code == "pool_exhausted"
        held = [o for o in (first, second) if not isinstance(o, BaseException)]
        held.append(await client.create_session())
        with pytest.raises(QuotaExceededError) as over:
            await client.create_session()
        assert over.value.status == 429 and isinstance(over.value, SandkastenError)
        for session in held:
            await session.destroy()


async def test_a_refusal_with_retry_after_is_sent_again(tight: Served) -> None:
    # The second cold start is refused (503, Retry-After: 1) while the first runs; sent again, it starts.
    async with SandboxClient(base_url=tight.base_url, api_key=tight.api_key) as client:
        started = time.monotonic()
        sessions = await asyncio.gather(client.create_session(), client.create_session())
        assert time.monotonic() - started >= 1.0  # one of them waited as the server asked
        for session in sessions:
            await session.destroy()
    with SyncSandboxClient(tight.base_url, tight.api_key, max_retry_wait=0.5) as sync_client:
        # A budget shorter than Retry-After: raised, not waited for.
        try:
            with pytest.raises(ServerError) as refused, ThreadPoolExecutor(2) as pool:
                list(pool.map(lambda _: sync_client.create_session(), range(2)))
            assert refused.value.code == "pool_exhausted"
        finally:
            for made in sync_client.list_sessions():
                made.destroy()


def test_the_retry_policy() -> None:
    policy = RetryPolicy(max_retries=2, max_wait=5.0)
    assert policy.delay(503, "1", retries=0, waited=0.0) == 1.0
    assert policy.delay(429, "2", retries=1, waited=1.0) == 2.0
    assert policy.delay(503, "1", retries=2, waited=2.0) is None  # retried as often as allowed
    assert policy.delay(503, "3", retries=1, waited=3.0) is None  # the wait would pass max_wait
    assert policy.delay(503, None, retries=0, waited=0.0) is None  # no Retry-After: the server did not ask
    assert policy.delay(500, "1", retries=0, waited=0.0) is None  # only 503 and 429 are refusals before acting
    assert policy.delay(503, "soon", retries=0, waited=0.0) is None
    in_two_s = email.utils.formatdate(time.time() + 2, usegmt=True)
    assert 0.5 < (retry_after_s(in_two_s) or 0) <= 2.0
    assert retry_after_s(email.utils.formatdate(time.time() - 60, usegmt=True)) == 0.0
    assert RetryPolicy(max_retries=0).delay(503, "1", retries=0, waited=0.0) is None
    # A runner that went away mid-call may have done a POST: that one is not sent again, the rest are.
    assert not may_resend("POST", "sandbox_unavailable") and may_resend("GET", "sandbox_unavailable")
    assert may_resend("POST", "pool_exhausted") and may_resend("PUT", "sandbox_unavailable")


async def test_connection_errors_retry_only_where_safe() -> None:
    async with SandboxClient(base_url="http://127.0.0.1:%d" % free_port(), api_key="x") as client:
        started = time.monotonic()
        with pytest.raises(SandkastenConnectionError):
            await client.list_sessions()  # GET: retried with backoff (0.2 + 0.5 + 1.0 s)
        assert time.monotonic() - started >= 1.7
        started = time.monotonic()
        with pytest.raises(SandkastenConnectionError):
            await client.create_session()  # POST: not retried, it might have been done
        assert time.monotonic() - started < 1.0


def test_errors_are_one_tree() -> None:
    for cls in (
        AuthenticationError,
        NotFoundError,
        QuotaExceededError,
        ExecTimeout,
        ServerError,
        SandkastenConnectionError,
    ):
        assert issubclass(cls, SandkastenError)
    assert not issubclass(builtins.ConnectionError, SandkastenError)  # the SDK's connection error is its own


def test_the_old_connection_error_name_still_works_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="SandkastenConnectionError"):
        assert sandkasten.ConnectionError is SandkastenConnectionError
    assert "ConnectionError" not in sandkasten.__all__ and "SandkastenConnectionError" in sandkasten.__all__
    with pytest.raises(AttributeError):
        getattr(sandkasten, "NoSuchName")  # noqa: B009 - a name mypy would refuse
