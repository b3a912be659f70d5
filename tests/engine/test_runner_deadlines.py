"""The runner client's call deadlines: a silent runner is an error in time, and a caller's cancel is never lost.

The runner's side is a plain socket driven by the test, so the reply can be
made to arrive exactly as the caller is cancelled: a race the real runner
cannot be made to show on demand.
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from sandkasten_kernel.engine import RunnerClient, RunnerUnavailable
from sandkasten_runner.protocol import encode_frame, read_frame


async def connected() -> tuple[RunnerClient, socket.socket]:
    host_end, runner_end = socket.socketpair()
    reader, writer = await asyncio.open_unix_connection(sock=host_end)
    return RunnerClient(reader, writer, "test-runner"), runner_end


async def test_a_call_cancelled_as_its_reply_arrives_stays_cancelled() -> None:
    """With asyncio.wait_for (before Python 3.12) the reply won over the cancel at some step of the loop:
    a kernel shutdown's cancelled poll then ran on, polling the runner forever."""
    lost = []
    for ticks in range(12):
        client, runner_end = await connected()
        call = asyncio.ensure_future(client.request("kernel_status", within_s=30))
        await asyncio.sleep(0)  # the request goes out
        request = read_frame(runner_end)
        assert request is not None
        runner_end.sendall(encode_frame({"id": request[0]["id"], "type": "result", "result": {"alive": True}}))
        for _ in range(ticks):
            await asyncio.sleep(0)
        if not call.done():
            call.cancel()
            outcomes: list[object] = await asyncio.gather(call, return_exceptions=True)
            if not isinstance(outcomes[0], asyncio.CancelledError):
                lost.append(ticks)
        await client.close()
        runner_end.close()
    assert lost == [], "a cancelled call returned its reply after %s loop steps" % lost


async def test_a_silent_runner_is_an_error_by_the_deadline() -> None:
    client, runner_end = await connected()
    started = time.monotonic()
    with pytest.raises(RunnerUnavailable, match="stopped answering"):
        await client.request("kernel_status", within_s=0.3)
    assert 0.25 < time.monotonic() - started < 2
    assert not client.usable  # the connection was given up
    runner_end.close()
