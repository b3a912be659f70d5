"""Figure 3: exec round trip on a running sandbox, of ``true`` and of a command printing 1 MB.

Sandkasten through the Python SDK (what an agent sees; the async ``SandboxClient``
and the sync ``SyncSandboxClient``), through one kept-alive
stdlib HTTP connection (the server's own cost, without httpx's), and over the
runner's control socket (no HTTP); ``docker exec`` into the same container; and
llm-sandbox's ``execute_command`` (a ``docker exec`` plus its own handling).
"""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Callable
from typing import Any

from bench.baselines import llm_sandbox
from bench.context import Run
from bench.report import speedup, summary, time_async, time_sync
from sandkasten import SyncSandboxClient, SyncSession
from sandkasten_kernel.engine.runner_client import RunnerClient

MB = 1_000_000
MB_COMMAND = "head -c 1000000 /dev/zero | tr '\\0' x"


def stdlib_exec(run: Run, session_id: str, command: str) -> Callable[[], None]:
    host, port = run.served.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port))
    headers = {**run.served.headers, "Content-Type": "application/json"}
    body = json.dumps({"command": command})

    def call() -> None:
        connection.request("POST", "/sandkasten/api/sessions/%s/exec" % session_id, body=body, headers=headers)
        assert json.loads(connection.getresponse().read())["exit_code"] == 0

    return call


def check(result: Any, size: int) -> None:
    """An SDK exec result (either client's) succeeded, with ``size`` characters of output."""
    assert result.exit_code == 0 and len(result.output) == size and not result.truncated, result


async def paths(
    run: Run, session: Any, sync_session: SyncSession, llm_session: Any, command: str, n: int, size: int
) -> dict[str, Any]:
    async def sdk() -> None:
        check(await session.exec(command), size)

    container = run.container(session.id)
    socket_path = os.path.join(run.served.state_dir, "sandboxes", session.id, "control.sock")
    async with await RunnerClient.connect(socket_path) as runner:
        await runner.exec(command)
        figures: dict[str, Any] = {
            "sandkasten_sdk": summary(await time_async(sdk, n)),
            # Blocks this event loop while it waits: the sync client runs its own loop in a thread.
            "sandkasten_sdk_sync": summary(time_sync(lambda: check(sync_session.exec(command), size), n)),
            "sandkasten_http_stdlib": summary(time_sync(stdlib_exec(run, session.id, command), n)),
            "runner_socket": summary(await time_async(lambda: runner.exec(command), n)),
            "docker_exec": summary(time_sync(lambda: container.exec_run(["sh", "-c", command]), n)),
            "llm_sandbox": summary(time_sync(lambda: llm_sandbox.run(llm_session, command), n)),
        }
    figures["speedup"] = {
        "sdk_vs_docker_exec": speedup(figures["docker_exec"], figures["sandkasten_sdk"]),
        "sdk_vs_llm_sandbox": speedup(figures["llm_sandbox"], figures["sandkasten_sdk"]),
        "socket_vs_docker_exec": speedup(figures["docker_exec"], figures["runner_socket"]),
    }
    return figures


async def measure(run: Run) -> dict[str, Any]:
    await run.pool_ready()
    session = await run.sdk.create_session()
    llm_session = llm_sandbox.open_session(run.docker)
    sync_client = SyncSandboxClient(run.served.base_url, run.served.api_key)
    try:
        sync_session = sync_client.get_session(session.id)
        for _ in range(10):  # warm every path: connections, caches, the shell
            await session.exec("true")
            sync_session.exec("true")
            llm_sandbox.run(llm_session, "true")
        return {
            "true": await paths(run, session, sync_session, llm_session, "true", run.sizes.execs, 0),
            "1MB_output": await paths(run, session, sync_session, llm_session, MB_COMMAND, run.sizes.mb_execs, MB),
        }
    finally:
        sync_client.close()
        llm_sandbox.close(llm_session)
        await session.destroy()
