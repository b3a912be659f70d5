"""The sandbox's ipykernel, reached from the host with jupyter_client over ipc."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient

from sandkasten_kernel.engine.errors import RunnerRequestError
from sandkasten_kernel.engine.kernel_connection import kernel_connection_info
from sandkasten_kernel.engine.named_kernels import named_kernel_info, named_socket_names
from tests.conftest import Target


def execute(client: BlockingKernelClient, code: str, timeout: float = 30) -> dict[str, Any]:
    """Run ``code``; collect stdout, stderr, results and the error, if any."""
    msg_id = client.execute(code)
    outcome: dict[str, Any] = {"stdout": "", "stderr": "", "results": [], "error": None}
    deadline = time.monotonic() + timeout
    while True:
        message = client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = message["msg_type"], message["content"]
        if kind == "stream":
            outcome[content["name"]] += content["text"]
        elif kind in ("execute_result", "display_data"):
            outcome["results"].append(content["data"])
        elif kind == "error":
            outcome["error"] = content["ename"]
        elif kind == "status" and content["execution_state"] == "idle":
            shell_reply(client, msg_id)
            return outcome


def shell_reply(client: BlockingKernelClient, msg_id: str) -> dict[str, Any]:
    while True:
        reply: dict[str, Any] = client.get_shell_msg(timeout=30)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply


@pytest.fixture(scope="module")
def kernel(runner: Target) -> Iterator[tuple[Target, BlockingKernelClient]]:
    import asyncio

    info = kernel_connection_info(runner.run_dir)

    async def start() -> dict[str, Any]:
        async with await runner.client() as control:
            return await control.kernel_start(info)

    status = asyncio.run(start())
    assert status["alive"] and status["pid"]
    client = BlockingKernelClient()
    client.load_connection_info(info)  # type: ignore[arg-type]
    client.start_channels()
    client.wait_for_ready(timeout=60)
    yield runner, client
    client.stop_channels()


def test_execute_and_stream_stdout(kernel: tuple[Target, BlockingKernelClient]) -> None:
    _, client = kernel
    outcome = execute(client, "import sys\nprint('out'); print('err', file=sys.stderr)\n6 * 7")
    assert outcome["stdout"] == "out\n"
    assert outcome["stderr"] == "err\n"
    assert outcome["results"] == [{"text/plain": "42"}]


def test_the_kernel_shares_the_workspace_with_the_shell(kernel: tuple[Target, BlockingKernelClient]) -> None:
    runner, client = kernel
    outcome = execute(client, "import os\nopen('from-kernel.txt', 'w').write('k')\nprint(os.getcwd())")
    assert outcome["stdout"] == runner.workspace + "\n"


async def test_interrupt_a_busy_loop(kernel: tuple[Target, BlockingKernelClient]) -> None:
    runner, client = kernel
    # stop_on_error=False: otherwise ipykernel 6 (Debian's) aborts requests that
    # follow the KeyboardInterrupt closely, as it would for any error.
    msg_id = client.execute("while True:\n    pass", stop_on_error=False)
    time.sleep(0.5)
    async with await runner.client() as control:
        await control.kernel_interrupt()
    reply = shell_reply(client, msg_id)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert execute(client, "print('alive')")["stdout"] == "alive\n"


async def test_restart_keeps_files_and_loses_variables(kernel: tuple[Target, BlockingKernelClient]) -> None:
    runner, client = kernel
    execute(client, "remembered = 1\nopen('survives.txt', 'w').write('kept')")
    async with await runner.client() as control:
        before = await control.kernel_status()
        status = await control.kernel_restart()
        assert status["alive"] and status["pid"] != before["pid"]
        assert status["restarts"] == before["restarts"] + 1
    # A client without a manager judges liveness by heartbeat, which pauses
    # across the restart: connect anew, as a manager's restart would.
    fresh = BlockingKernelClient()
    fresh.load_connection_info(client.get_connection_info())
    fresh.start_channels()
    try:
        fresh.wait_for_ready(timeout=60)
        outcome = execute(fresh, "print(open('survives.txt').read())\nremembered")
    finally:
        fresh.stop_channels()
    assert outcome["stdout"] == "kept\n"
    assert outcome["error"] == "NameError"


async def test_health_reports_the_kernel_and_double_start_is_refused(
    kernel: tuple[Target, BlockingKernelClient],
) -> None:
    runner, _ = kernel
    async with await runner.client() as control:
        health = await control.health()
        assert health["kernel"]["alive"]
        assert health["pids"] >= 3  # runner, shell, kernel
        with pytest.raises(RunnerRequestError) as error:
            await control.kernel_start(kernel_connection_info(runner.run_dir))
        assert error.value.code == "kernel_already_running"


async def test_named_kernels_beside_the_sandboxes_own(kernel: tuple[Target, BlockingKernelClient]) -> None:
    runner, client = kernel
    info = named_kernel_info(runner.run_dir, "ctx1")
    async with await runner.client() as control:
        status = (await control.request("kernel_start", {"connection": info, "name": "ctx1"}))[0]
        assert status["alive"] and status["connection_file"].endswith("/kernel-ctx1.json")
        assert all(os.path.exists(os.path.join(runner.run_dir, n)) for n in named_socket_names("ctx1"))
    named = BlockingKernelClient()
    named.load_connection_info(info)  # type: ignore[arg-type]
    named.start_channels()
    try:
        named.wait_for_ready(timeout=60)
        execute(client, "open('shared.txt', 'w').write('from the own kernel')\nonly_in_own = 1")
        outcome = execute(named, "print(open('shared.txt').read())\nonly_in_own")
        assert outcome["stdout"] == "from the own kernel\n" and outcome["error"] == "NameError"

        async with await runner.client() as control:
            health = await control.health()
            assert health["named_kernels"]["ctx1"]["alive"] and health["kernel"]["alive"]
            msg_id = named.execute("while True:\n    pass", stop_on_error=False)
            time.sleep(0.5)
            await control.request("kernel_interrupt", {"name": "ctx1"})
            assert shell_reply(named, msg_id)["content"]["ename"] == "KeyboardInterrupt"
            assert execute(client, "only_in_own")["results"] == [{"text/plain": "1"}]  # the own kernel ran on

            restarted = (await control.request("kernel_restart", {"name": "ctx1"}))[0]
            assert restarted["restarts"] == 1 and restarted["pid"] != status["pid"]
            stopped = (await control.request("kernel_shutdown", {"name": "ctx1"}))[0]
            assert not stopped["alive"] and not os.path.exists(os.path.join(runner.run_dir, "kernel-ctx1.json"))
            assert not (await control.request("kernel_status", {"name": "ctx1"}))[0]["started"]  # forgotten
            assert "ctx1" not in (await control.health())["named_kernels"]
            for op, name, code in [
                ("kernel_interrupt", "ctx1", "kernel_not_running"),
                ("kernel_restart", "nope", "kernel_not_running"),
                ("kernel_status", "Not-a-name", "bad_request"),
                ("kernel_start", "x" * 17, "bad_request"),
            ]:
                with pytest.raises(RunnerRequestError) as error:
                    await control.request(op, {"name": name, "connection": info})
                assert error.value.code == code, op
            assert (await control.kernel_status())["alive"]  # the sandbox's own kernel is untouched
    finally:
        named.stop_channels()


async def test_shutdown_then_interrupt_says_not_running(kernel: tuple[Target, BlockingKernelClient]) -> None:
    runner, _ = kernel
    async with await runner.client() as control:
        status = await control.kernel_shutdown()
        assert not status["alive"] and status["exit"]
        assert isinstance(status["exit_code"], int)
        with pytest.raises(RunnerRequestError) as error:
            await control.kernel_interrupt()
        assert error.value.code == "kernel_not_running"
