"""Exec through the persistent shell, on the host and inside every image."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from sandkasten_kernel.engine.errors import RunnerRequestError, RunnerUnavailable
from sandkasten_kernel.engine.runner_client import ExecResult
from tests.conftest import Target


async def test_output_exit_code_and_duration(runner: Target) -> None:
    async with await runner.client() as client:
        result = await client.exec("echo out; echo err >&2; exit_with() { return $1; }; exit_with 3")
    assert result.output == "out\nerr\n"  # PTY: stdout and stderr merged, no echo, no prompt
    assert result.exit_code == 3
    assert not result.timed_out and not result.truncated
    assert 0 < result.duration_ms < 5000


async def test_no_echo_prompt_or_sentinel_residue(runner: Target) -> None:
    async with await runner.client() as client:
        assert (await client.exec("true")).output == ""
        assert (await client.exec("printf 'no newline'")).output == "no newline"
        assert (await client.exec("printf '\\036SK:x:1\\036'")).output == "\x1eSK:x:1\x1e"


async def test_state_persists_between_execs(runner: Target) -> None:
    async with await runner.client() as client:
        setup = (
            'mkdir -p /tmp/persist && cd /tmp/persist; export GREETING=hi; greet() { echo "$GREETING $1"; };'
            " declare -a list=(a b); sleep 30 &"
        )
        assert (await client.exec(setup)).exit_code == 0
        result = await client.exec("pwd; greet you; echo ${list[1]}; jobs -r | wc -l")
        assert result.output == "/tmp/persist\nhi you\nb\n1\n"
        await client.exec("kill %1; cd " + runner.workspace)


async def test_cwd_and_env_apply_to_one_exec(runner: Target) -> None:
    async with await runner.client() as client:
        await client.exec("cd %s; export KEEP=old; unset ONLY_NOW" % runner.workspace)
        result = await client.exec(
            "pwd; echo $KEEP $ONLY_NOW; bash -c 'echo child sees $ONLY_NOW'",
            cwd="/tmp",
            env={"KEEP": "new", "ONLY_NOW": "yes"},
        )
        assert result.output == "/tmp\nnew yes\nchild sees yes\n"
        after = await client.exec("pwd; echo $KEEP ${ONLY_NOW-unset}")
        assert after.output == "%s\nold unset\n" % runner.workspace


async def test_relative_cwd_is_inside_the_workspace(runner: Target) -> None:
    async with await runner.client() as client:
        await client.mkdir("sub/dir")
        assert (await client.exec("pwd", cwd="sub/dir")).output == runner.workspace + "/sub/dir\n"
        with pytest.raises(RunnerRequestError) as missing:
            await client.exec("pwd", cwd="no/such/dir")
        assert missing.value.code == "not_found"


async def test_stdin_data(runner: Target) -> None:
    async with await runner.client() as client:
        assert (await client.exec("tr a-z A-Z", stdin=b"shout\n")).output == "SHOUT\n"
        # Without stdin the command reads /dev/null, never the shell's own input.
        assert (await client.exec("cat; echo done")).output == "done\n"


async def test_timeout_kills_the_process_group_and_keeps_the_shell(runner: Target) -> None:
    marker = "/tmp/timeout-%s" % uuid.uuid4().hex[:8]
    async with await runner.client() as client:
        await client.exec("export KEPT=1; cd /tmp")
        started = time.monotonic()
        result = await client.exec(
            "sleep 60 | cat & echo $! > %s.bg; sh -c 'echo $$ > %s; exec sleep 60'" % (marker, marker),
            timeout_ms=500,
        )
        assert result.timed_out and result.exit_code is None
        assert not result.shell_restarted
        assert time.monotonic() - started < 5
        after = await client.exec("kill -0 $(cat %s) 2>/dev/null && echo alive || echo gone; echo $KEPT; pwd" % marker)
        assert after.output == "gone\n1\n/tmp\n"
        await client.exec("kill %1 2>/dev/null; cd " + runner.workspace)


async def test_timeout_of_a_loop_inside_the_shell(runner: Target) -> None:
    async with await runner.client() as client:
        result = await client.exec("while true; do :; done", timeout_ms=300)
        assert result.timed_out and not result.shell_restarted
        assert (await client.exec("echo back")).output == "back\n"


async def test_timeout_of_a_command_that_ignores_sigint(runner: Target) -> None:
    async with await runner.client() as client:
        result = await client.exec("trap '' INT; while true; do sleep 1; done", timeout_ms=300)
        assert result.timed_out
        after = await client.exec("trap - INT; echo back")
        assert after.output == "back\n"


async def test_output_cap_sets_truncated(runner: Target) -> None:
    async with await runner.client() as client:
        result = await client.exec("head -c 5000 /dev/zero | tr '\\0' a; echo; echo tail", max_output=1000)
    assert result.truncated
    assert result.output == "a" * 1000
    assert result.output_bytes == 5006
    assert result.exit_code == 0


async def test_100_mb_of_output_is_capped_and_the_shell_stays_responsive(runner: Target) -> None:
    async with await runner.client() as client:
        started = time.monotonic()
        result = await client.exec("head -c 100000000 /dev/zero | tr '\\0' x", timeout_ms=120_000)
        assert result.exit_code == 0 and result.truncated
        assert len(result.output) == 1 << 20  # the default cap
        assert result.output_bytes == 100_000_000
        assert time.monotonic() - started < 60
        assert (await client.exec("echo ok")).output == "ok\n"


async def test_streaming_delivers_chunks_as_they_come(runner: Target) -> None:
    async with await runner.client() as client:
        arrivals: list[tuple[float, str]] = []
        final: ExecResult | None = None
        started = time.monotonic()
        async for event in client.exec_stream("for i in 1 2 3; do echo step $i; sleep 0.3; done"):
            if isinstance(event, ExecResult):
                final = event
            else:
                arrivals.append((time.monotonic() - started, event))
    assert final is not None and final.exit_code == 0
    assert "".join(text for _, text in arrivals) == "step 1\nstep 2\nstep 3\n" == final.output
    # The first step arrives long before the command ends, i.e. live.
    assert arrivals[0][0] < 0.25 and arrivals[0][1].startswith("step 1")
    assert final.duration_ms > 800


async def test_closing_a_stream_stops_the_command(runner: Target) -> None:
    marker = "/tmp/stream-%s" % uuid.uuid4().hex[:8]
    client = await runner.client()
    stream = client.exec_stream("sh -c 'echo $$ > %s; echo started; exec sleep 60'" % marker)
    async for event in stream:
        assert event == "started\n"
        break
    await stream.aclose()  # type: ignore[attr-defined]  # closes the connection: the runner stops the command
    with pytest.raises(RunnerUnavailable):
        await client.exec("true")
    async with await runner.client() as again:
        output = ""
        for _ in range(100):  # the runner is busy until it has stopped the command
            try:
                output = (await again.exec("kill -0 $(cat %s) && echo alive || echo gone" % marker)).output
                break
            except RunnerRequestError as busy:
                assert busy.code == "shell_busy"
                await asyncio.sleep(0.05)
        assert output.endswith("gone\n")


async def test_a_second_exec_while_one_runs_is_refused(runner: Target) -> None:
    async with await runner.client() as first, await runner.client() as second:
        running = asyncio.create_task(first.exec("sleep 1; echo first"))
        await asyncio.sleep(0.3)
        with pytest.raises(RunnerRequestError) as busy:
            await second.exec("echo second")
        assert busy.value.code == "shell_busy"
        assert (await running).output == "first\n"


async def test_exit_in_the_shell_restarts_it_and_says_why(runner: Target) -> None:
    async with await runner.client() as client:
        await client.exec("export LOST=yes")
        result = await client.exec("echo bye; exit 7")
        assert result.shell_restarted
        assert result.exit_code == 7
        assert result.shell_exit == "the shell exited with status 7"
        assert "bye" in result.output
        after = await client.exec("echo ${LOST-fresh}; pwd")
        assert after.output == "fresh\n%s\n" % runner.workspace
        health = await client.health()
        assert health["shell"]["alive"] and health["shell"]["restarts"] >= 1
        assert health["shell"]["last_exit"] == "the shell exited with status 7"


async def test_bad_exec_arguments(runner: Target) -> None:
    async with await runner.client() as client:
        cases: list[dict[str, Any]] = [
            {"command": 42},
            {},
            {"command": "true", "timeout_ms": -1},
            {"command": "true", "timeout_ms": "soon"},
            {"command": "true", "env": {"1BAD": "x"}},
            {"command": "true", "env": {"OK": 1}},
            {"command": "true", "max_output": 1 << 30},
            {"command": "true", "stream": "yes"},
        ]
        for args in cases:
            with pytest.raises(RunnerRequestError) as error:
                await client.request("exec", args)
            assert error.value.code == "bad_request", args
            assert error.value.message
        assert (await client.exec("echo still fine")).output == "still fine\n"
