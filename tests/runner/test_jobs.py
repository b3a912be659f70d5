"""Processes beside the shell (PROTOCOL.md §16), on the host and inside every image."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest

from sandkasten_kernel.engine import runner_jobs
from sandkasten_kernel.engine.errors import RunnerRequestError
from sandkasten_kernel.engine.runner_client import RunnerClient
from sandkasten_kernel.engine.runner_jobs import ProcessInfo, ProcessOutput
from tests.conftest import Target


async def run(client: RunnerClient, command: str, **options: Any) -> tuple[dict[str, bytes], ProcessInfo]:
    """Start ``command``, follow it to its end: its output per stream, and its final info."""
    output = {"stdout": b"", "stderr": b""}
    final = None
    async for event in runner_jobs.follow(client, runner_jobs.spawn_args(command, **options)):
        if isinstance(event, ProcessOutput):
            output[event.stream] += event.data
        else:
            final = event
    assert final is not None and not final.running
    return output, final


async def collect(client: RunnerClient, pid: int, after: int = 0) -> tuple[list[ProcessOutput], ProcessInfo]:
    chunks: list[ProcessOutput] = []
    final = None
    async for event in runner_jobs.attach(client, pid, after):
        if isinstance(event, ProcessOutput):
            chunks.append(event)
        else:
            final = event
    assert final is not None
    return chunks, final


async def test_stdout_and_stderr_apart_and_the_exit_code(runner: Target) -> None:
    async with await runner.client() as client:
        output, final = await run(client, "echo out; echo err >&2; echo $HOME_IS_SET; exit 3", env={"HOME_IS_SET": "y"})
    assert output == {"stdout": b"out\ny\n", "stderr": b"err\n"}
    assert final.exit_code == 3 and not final.timed_out
    assert final.cwd == runner.workspace and final.ended_at is not None


async def test_processes_run_beside_a_busy_shell_and_each_other(runner: Target) -> None:
    async with await runner.client() as shell, await runner.client() as side:
        busy = asyncio.create_task(shell.exec("sleep 1; echo shell"))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        infos = [await runner_jobs.spawn(side, runner_jobs.spawn_args("sleep 0.6; echo %d" % i)) for i in range(5)]
        finals = [(await collect(side, info.pid))[1] for info in infos]
        elapsed = time.monotonic() - started
        assert all(final.exit_code == 0 for final in finals)
        assert elapsed < 2.0, "five 0.6 s processes took %.2f s: they did not run at once" % elapsed
        assert (await busy).output == "shell\n"


async def test_a_background_process_outlives_its_call_and_can_be_attached_again(runner: Target) -> None:
    async with await runner.client() as client:
        info = await runner_jobs.spawn(
            client, runner_jobs.spawn_args("for i in 1 2 3; do echo line$i; sleep 0.2; done", tag="counter")
        )
        assert info.running and info.tag == "counter" and info.exit_code is None
        listed = {entry.pid: entry for entry in await runner_jobs.list_processes(client)}
        assert listed[info.pid].running
    async with await runner.client() as again:
        chunks, final = await collect(again, info.pid)
        assert b"".join(chunk.data for chunk in chunks) == b"line1\nline2\nline3\n"
        assert final.exit_code == 0 and final.last_seq == chunks[-1].seq
        later, _ = await collect(again, info.pid, after=chunks[0].seq)
        assert later == chunks[1:]  # only what came after the sequence number given


async def test_leaving_a_follow_detaches_and_the_process_runs_on(runner: Target) -> None:
    client = await runner.client()
    events = runner_jobs.follow(client, runner_jobs.spawn_args("echo begun; sleep 0.5; echo finished"))
    started = await events.__anext__()
    assert isinstance(started, ProcessInfo) and started.running
    await events.aclose()  # type: ignore[attr-defined]  # closes the connection
    async with await runner.client() as again:
        chunks, final = await collect(again, started.pid)
    assert b"".join(chunk.data for chunk in chunks) == b"begun\nfinished\n"
    assert final.exit_code == 0


async def test_stdin_is_a_pipe_that_stays_open_until_eof(runner: Target) -> None:
    async with await runner.client() as client:
        info = await runner_jobs.spawn(client, runner_jobs.spawn_args("tr a-z A-Z", stdin=True))
        assert info.stdin_open
        await runner_jobs.send_input(client, info.pid, b"hello ")
        closed = await runner_jobs.send_input(client, info.pid, b"world\n", eof=True)
        assert not closed.stdin_open
        chunks, final = await collect(client, info.pid)
        assert b"".join(chunk.data for chunk in chunks) == b"HELLO WORLD\n" and final.exit_code == 0
        with pytest.raises(RunnerRequestError) as refused:
            await runner_jobs.send_input(client, info.pid, b"more")
        assert refused.value.code == "stdin_closed"
        # Without stdin, the process reads /dev/null and its stdin is closed from the start.
        output, _ = await run(client, "cat; echo read-nothing")
        assert output["stdout"] == b"read-nothing\n"


async def test_signals_reach_the_process_and_what_it_started(runner: Target) -> None:
    async with await runner.client() as client:
        trap = "trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.05; done"
        trapped = await runner_jobs.spawn(client, runner_jobs.spawn_args(trap))
        await _wait_for_output(client, trapped.pid, b"ready")
        await runner_jobs.send_signal(client, trapped.pid, "TERM")
        chunks, final = await collect(client, trapped.pid)
        assert b"got TERM" in b"".join(chunk.data for chunk in chunks) and final.exit_code == 7

        tree = await runner_jobs.spawn(client, runner_jobs.spawn_args("sleep 1234 & sleep 1235 & wait"))
        await asyncio.sleep(0.3)
        await runner_jobs.send_signal(client, tree.pid, "SIGKILL")
        _, killed = await collect(client, tree.pid)
        assert killed.exit_code == -9
        count = "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -c 'sleep 123[45]' || true"
        left = await client.exec(count)
        assert left.output.strip() == "0", "the process's children outlived a kill"


async def test_a_timeout_kills_it_and_says_so(runner: Target) -> None:
    async with await runner.client() as client:
        started = time.monotonic()
        _, final = await run(client, "echo start; sleep 30", timeout_ms=300)
    assert final.timed_out and final.exit_code == -9
    assert time.monotonic() - started < 5


async def test_a_grandchild_holding_the_pipes_does_not_keep_it_running(runner: Target) -> None:
    async with await runner.client() as client:
        started = time.monotonic()
        output, final = await run(client, "sleep 30 & echo parent done")
        assert output["stdout"] == b"parent done\n" and final.exit_code == 0
        assert time.monotonic() - started < 5
        await client.exec("pkill -f 'sleep 30' 2>/dev/null; kill $(pgrep -f 'sleep 30') 2>/dev/null; true")


async def test_output_beyond_what_is_kept_is_counted_as_dropped(runner: Target) -> None:
    async with await runner.client() as client:
        info = await runner_jobs.spawn(client, runner_jobs.spawn_args("head -c 3000000 /dev/zero; echo; echo tail"))
        for _ in range(100):
            if not (await _info(client, info.pid)).running:
                break
            await asyncio.sleep(0.05)
        chunks, final = await collect(client, info.pid)
    kept = sum(len(chunk.data) for chunk in chunks)
    assert kept <= (1 << 20) + (1 << 16)
    assert final.dropped_bytes + kept == 3000000 + len(b"\ntail\n")
    assert b"".join(chunk.data for chunk in chunks).endswith(b"\ntail\n")


async def test_exec_if_busy_runs_beside_the_shell(runner: Target) -> None:
    gate = "/tmp/gate-%d" % time.monotonic_ns()
    async with await runner.client() as first, await runner.client() as second:
        running = asyncio.create_task(first.exec("until [ -e %s ]; do sleep 0.05; done; echo first" % gate))
        await asyncio.sleep(0.3)
        beside = await second.exec("echo $((6 * 7)); echo err >&2; exit 4", if_busy="process")
        assert beside.ran_as == "process" and beside.exit_code == 4
        assert beside.output == "42\nerr\n"
        fed = await second.exec("cat", if_busy="process", stdin=b"fed\n")
        assert fed.output == "fed\n"
        slow = await second.exec("sleep 5", if_busy="process", timeout_ms=300)
        assert slow.timed_out and slow.exit_code is None
        with pytest.raises(RunnerRequestError) as busy:
            await second.exec("true")
        assert busy.value.code == "shell_busy"
        await second.exec("touch %s" % gate, if_busy="process")
        done = await running
        assert done.output == "first\n" and done.ran_as == "shell"
        listed = await runner_jobs.list_processes(second)
        assert not [entry for entry in listed if entry.tag == "exec" and not entry.running]


async def test_bad_requests(runner: Target) -> None:
    async with await runner.client() as client:
        with pytest.raises(RunnerRequestError) as unknown:
            await runner_jobs.send_signal(client, 999999, "TERM")
        assert unknown.value.code == "not_found"
        info = await runner_jobs.spawn(client, runner_jobs.spawn_args("sleep 5"))
        for signal in ("SIGNOPE", 0, 1000, True):
            with pytest.raises(RunnerRequestError) as bad:
                await runner_jobs.send_signal(client, info.pid, signal)
            assert bad.value.code == "bad_request"
        for args in ({"command": 5}, {"command": "true", "cwd": "/nowhere"}, {"command": "true", "env": {"1X": "y"}}):
            with pytest.raises(RunnerRequestError) as refused:
                await client.request("spawn", args)
            assert refused.value.code in ("bad_request", "not_found")
        with pytest.raises(RunnerRequestError) as not_open:
            await runner_jobs.send_input(client, info.pid, b"x")
        assert not_open.value.code == "stdin_closed"
        await runner_jobs.send_signal(client, info.pid, "KILL")


async def test_too_many_processes_are_refused(host_runner: Target) -> None:
    async with await host_runner.client() as client:
        pids = []
        with contextlib.suppress(RunnerRequestError):
            for _ in range(80):
                pids.append((await runner_jobs.spawn(client, runner_jobs.spawn_args("sleep 30"))).pid)
        assert len(pids) == 64
        with pytest.raises(RunnerRequestError) as refused:
            await runner_jobs.spawn(client, runner_jobs.spawn_args("true"))
        assert refused.value.code == "too_many_jobs"
        for pid in pids:
            await runner_jobs.send_signal(client, pid, "KILL")


async def _info(client: RunnerClient, pid: int) -> ProcessInfo:
    return next(entry for entry in await runner_jobs.list_processes(client) if entry.pid == pid)


async def _wait_for_output(client: RunnerClient, pid: int, text: bytes) -> None:
    async with await RunnerClient.connect(client.path) as watcher:
        seen = b""
        async for event in runner_jobs.attach(watcher, pid):
            if isinstance(event, ProcessOutput):
                seen += event.data
                if text in seen:
                    break
