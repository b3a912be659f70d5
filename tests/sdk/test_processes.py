"""Processes beside the shell and streamed run_code through the Python SDK, against a real `sandkasten serve`."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sandkasten import (
    BadRequestError,
    ExecTimeout,
    NotFoundError,
    Process,
    ProcessEvent,
    RichResult,
    SandboxClient,
    Session,
    SyncProcess,
    SyncSandboxClient,
)
from sandkasten_server.launcher import Served

pytestmark = pytest.mark.docker

SDK_README = Path(__file__).resolve().parents[2] / "sdk" / "python" / "README.md"


@pytest.fixture
async def session(served: Served) -> Any:
    async with (
        SandboxClient(base_url=served.base_url, api_key=served.api_key) as client,
        await client.create_session() as session,
    ):
        yield session


class Arrivals:
    """What the callbacks were called with, and when (seconds since the test began)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.calls: list[tuple[float, str, Any]] = []

    def on(self, kind: str) -> Any:
        return lambda value: self.calls.append((time.monotonic() - self.started, kind, value))

    def of(self, kind: str) -> list[Any]:
        return [value for _, k, value in self.calls if k == kind]


async def test_a_streamed_process_calls_back_as_output_comes(session: Session) -> None:
    arrivals = Arrivals()
    result = await session.exec(
        "echo one; echo oops >&2; sleep 1.5; echo two; exit 3",
        on_stdout=arrivals.on("out"),
        on_stderr=arrivals.on("err"),
    )
    assert (result.stdout, result.stderr, result.exit_code, result.ok) == ("one\ntwo\n", "oops\n", 3, False)
    assert arrivals.of("out") == ["one\n", "two\n"] and arrivals.of("err") == ["oops\n"]
    first, last = arrivals.calls[0][0], arrivals.calls[-1][0]
    assert last - first > 1.0, arrivals.calls  # the first chunk came before the sleep, not with the exit
    assert not result.running and result.process.ended_at is not None and result.process.cwd == "/workspace"

    async def slowly(text: str) -> None:  # a coroutine callback is awaited
        await asyncio.sleep(0.01)
        arrivals.calls.append((0.0, "async", text))

    fed = await session.exec("tr a-z A-Z", stdin="piped in\n", on_stdout=slowly, env={"X": "1"})
    assert fed.stdout == "PIPED IN\n" and arrivals.of("async") == ["PIPED IN\n"]

    with pytest.raises(ExecTimeout) as timed:
        await session.exec("echo before; sleep 30", timeout_ms=500, on_stdout=print, raise_on_timeout=True)
    assert timed.value.result.timed_out and timed.value.result.output == "before\n"
    assert timed.value.result.ran_as == "process" and timed.value.result.exit_code is None


async def test_a_background_process_with_stdin_signals_and_waits(session: Session) -> None:
    process = await session.exec("echo ready; read line; echo got $line; echo warn >&2", background=True, stdin=True)
    assert isinstance(process, Process) and process.info.running and process.info.stdin_open
    assert process.pid == process.info.pid
    info = await process.send_stdin("hello\n", eof=True)
    assert not info.stdin_open
    result = await process.wait()
    assert (result.stdout, result.stderr, result.exit_code) == ("ready\ngot hello\n", "warn\n", 0)
    assert not process.info.running and process.info.exit_code == 0
    with pytest.raises(BadRequestError) as closed:
        await process.send_stdin("more")
    assert (closed.value.status, closed.value.code) == (409, "stdin_closed")

    trapped = await session.exec("trap 'echo bye; exit 7' TERM; echo up; while :; do sleep 0.05; done", background=True)
    still = await trapped.wait(timeout=2)
    assert still.running and still.exit_code is None and still.stdout == "up\n"
    await trapped.signal("SIGTERM")
    assert (await trapped.wait(timeout=20)).exit_code == 7

    forever = await session.exec("sleep 600", background=True, tag="server")
    await forever.kill()
    assert (await forever.wait(timeout=20)).exit_code == -9
    tags = {p.pid: p.info.tag for p in await session.processes()}
    assert tags[forever.pid] == "server" and tags[trapped.pid] is None

    bounded = await session.exec("sleep 30", background=True, timeout_ms=300)
    assert (await bounded.wait()).timed_out

    written = await session.exec("cat", background=True, stdin="given\n")  # text: written, then closed
    assert (await written.wait(timeout=20)).stdout == "given\n"


async def test_callbacks_of_a_background_process_and_following_it_again(session: Session) -> None:
    arrivals = Arrivals()
    process = await session.exec(
        "sleep 0.5; for i in 1 2 3; do echo $i; sleep 0.4; done; echo e >&2",
        background=True,
        on_stdout=arrivals.on("out"),
        on_stderr=arrivals.on("err"),
    )
    assert arrivals.calls == []  # it returned before the process wrote
    result = await process.wait()
    assert arrivals.of("out") == ["1\n", "2\n", "3\n"] and arrivals.of("err") == ["e\n"]  # all called by now
    assert result.stdout == "1\n2\n3\n"

    events = [event async for event in process]
    outputs = [e for e in events if e.type == "output"]
    assert [e.data for e in outputs] == ["1\n", "2\n", "3\n", "e\n"] and events[-1].type == "exit"
    assert events[-1].process is not None and events[-1].process.exit_code == 0
    second = outputs[1].seq
    assert second is not None
    later = [e async for e in process.events(after=second)]
    assert [e.data for e in later if e.type == "output"] == ["3\n", "e\n"]

    again = Arrivals()
    followed = await process.follow(on_stdout=again.on("out"), after=second)
    assert again.of("out") == ["3\n"] and (followed.stdout, followed.stderr) == ("3\n", "e\n")


async def test_a_process_found_again_by_pid(served: Served, session: Session) -> None:
    started = await session.exec("sleep 0.5; echo late", background=True)
    async with SandboxClient(base_url=served.base_url, api_key=served.api_key) as other:
        found = await (await other.get_session(session.id)).process(started.pid)
        assert found.pid == started.pid and found.info.command == "sleep 0.5; echo late"
        seen: list[ProcessEvent] = [event async for event in found]  # followed live from another client
        assert [e.data for e in seen if e.type == "output"] == ["late\n"]
        with pytest.raises(NotFoundError):
            await (await other.get_session(session.id)).process(999999)


async def test_exec_beside_a_busy_shell(session: Session) -> None:
    busy = asyncio.ensure_future(session.exec("sleep 2; echo slow"))
    await asyncio.sleep(0.5)
    beside = await session.exec("echo beside; pwd", if_busy="process", cwd="/tmp")
    assert (beside.output, beside.ran_as, beside.ok) == ("beside\n/tmp\n", "process", True)
    with pytest.raises(BadRequestError) as refused:
        await session.exec("echo refused")
    assert (refused.value.status, refused.value.code) == (409, "shell_busy")
    slow = await busy
    assert (slow.output, slow.ran_as) == ("slow\n", "shell")
    assert (await session.exec("echo idle", if_busy="process")).ran_as == "shell"  # a free shell takes it


async def test_options_that_do_not_go_together(session: Session) -> None:
    with pytest.raises(ValueError, match="background=True"):
        await session.exec("cat", stdin=True)
    with pytest.raises(ValueError, match="raise_on_timeout"):
        await session.exec("true", background=True, raise_on_timeout=True)


async def test_run_code_calls_back_as_outputs_come(session: Session) -> None:
    arrivals = Arrivals()
    code = (
        "import sys, time\n"
        "print('first', flush=True)\n"
        "time.sleep(1.2)\n"
        "print('warn', file=sys.stderr)\n"
        "from IPython.display import display; display({'a': 1}, raw=False)\n"
        "6 * 7"
    )
    result = await session.run_code(
        code, on_stdout=arrivals.on("out"), on_stderr=arrivals.on("err"), on_result=arrivals.on("result")
    )
    assert arrivals.of("out") == ["first\n"] and arrivals.of("err") == ["warn\n"]
    results: list[RichResult] = arrivals.of("result")
    assert [r.kind for r in results] == ["display_data", "execute_result"] and results[-1].text == "42"
    assert arrivals.calls[1][0] - arrivals.calls[0][0] > 0.8  # 'first' came before the sleep ended
    assert (result.stdout, result.stderr, result.text, result.error) == ("first\n", "warn\n", "42", None)

    errors: list[Any] = []
    failed = await session.run_code("1/0", on_error=errors.append)
    assert [e.ename for e in errors] == ["ZeroDivisionError"] and failed.error == errors[0]


def test_the_sync_twin(served: Served) -> None:
    with SyncSandboxClient(served.base_url, served.api_key) as client, client.create_session() as session:
        chunks: list[str] = []
        result = session.exec("echo a; echo b >&2", on_stdout=chunks.append, on_stderr=chunks.append)
        assert (result.stdout, result.stderr, sorted(chunks)) == ("a\n", "b\n", ["a\n", "b\n"])

        process = session.exec("sed -u s/a/A/", background=True, stdin=True)  # until end of file
        assert isinstance(process, SyncProcess)
        process.send_stdin("ab\n")
        process.send_stdin("ba\n")
        process.close_stdin()
        assert process.wait(timeout=20).stdout == "Ab\nbA\n"
        outputs = [e for e in process if e.type == "output"]
        assert "".join(e.data or "" for e in outputs) == "Ab\nbA\n"
        assert [e.type for e in process.events(after=outputs[-1].seq or 0)] == ["attached", "exit"]
        assert process.pid in [p.pid for p in session.processes()]
        assert session.process(process.pid).info.exit_code == 0

        sleeper = session.exec("sleep 600", background=True)
        sleeper.signal(9)
        assert sleeper.wait(timeout=20).exit_code == -9 and not sleeper.refresh().running

        streamed: list[str] = []
        assert session.run_code("print('x')\n2", on_stdout=streamed.append).text == "2" and streamed == ["x\n"]


def test_the_readme_example_runs(served: Served) -> None:
    (snippet,) = re.findall(r"<!-- processes -->\n```python\n(.*?)```", SDK_README.read_text(), flags=re.S)
    program = (
        "import asyncio, os\nfrom sandkasten import SandboxClient\n\n"
        "async def main():\n"
        "    async with SandboxClient() as client, await client.create_session() as session:\n"
        "%s\nasyncio.run(main())\n" % "".join("        " + line + "\n" for line in snippet.splitlines())
    )
    env = dict(os.environ, SANDKASTEN_URL=served.base_url, SANDKASTEN_API_KEY=served.api_key)
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    ticks = [line for line in lines if line.startswith("tick")]
    assert ticks == ["tick 1", "tick 2", "tick 3"], lines
    assert [line for line in lines if not line.startswith("tick")] == [
        "the shell is free meanwhile",
        "0",
        "HELLO",
        "[None, None, 'web']",
    ], lines
