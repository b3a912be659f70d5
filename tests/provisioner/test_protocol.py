"""Kernel protocol conformance of a sandboxed kernel: the messages every frontend sends."""

from __future__ import annotations

import asyncio
from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient

from tests.provisioner.conftest import Kernel, run


async def reply(client: AsyncKernelClient, msg_id: str) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = await client.get_shell_msg(timeout=30)
        if message["parent_header"].get("msg_id") == msg_id:
            return message


async def test_kernel_info(kernel: Kernel) -> None:
    _, client = kernel
    content = (await reply(client, client.kernel_info()))["content"]
    assert content["status"] == "ok"
    assert content["language_info"]["name"] == "python"
    assert content["protocol_version"].startswith("5.")


async def test_complete_inspect_and_is_complete(kernel: Kernel) -> None:
    _, client = kernel
    await run(client, "sandbox_value = 12345")
    complete = (await reply(client, client.complete("sandbox_va", 10)))["content"]
    assert complete["status"] == "ok" and "sandbox_value" in complete["matches"]
    inspect = (await reply(client, client.inspect("sandbox_value", 13)))["content"]
    assert inspect["status"] == "ok" and inspect["found"] and "12345" in inspect["data"]["text/plain"]
    assert (await reply(client, client.is_complete("for i in range(3):")))["content"]["status"] == "incomplete"
    assert (await reply(client, client.is_complete("x = 1")))["content"]["status"] == "complete"


async def test_history(kernel: Kernel) -> None:
    _, client = kernel
    await run(client, "first_line = 1")
    content = (await reply(client, client.history(hist_access_type="tail", n=5)))["content"]
    assert content["status"] == "ok"
    assert any("first_line = 1" in entry[2] for entry in content["history"])


async def test_comm_messages(kernel: Kernel) -> None:
    _, client = kernel
    await run(
        client,
        "from ipykernel.comm import Comm\n"
        "def opened(comm, msg):\n"
        "    comm.on_msg(lambda m: comm.send({'echo': m['content']['data']['ping']}))\n"
        "get_ipython().kernel.comm_manager.register_target('echo', opened)",
    )
    info = (await reply(client, client.comm_info()))["content"]
    assert info["status"] == "ok"
    session = client.session
    open_msg = session.msg("comm_open", {"comm_id": "c1", "target_name": "echo", "data": {}})
    client.shell_channel.send(open_msg)
    client.shell_channel.send(session.msg("comm_msg", {"comm_id": "c1", "data": {"ping": "pong"}}))
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        message = await client.get_iopub_msg(timeout=max(0.1, deadline - asyncio.get_running_loop().time()))
        if message["msg_type"] == "comm_msg" and message["content"]["comm_id"] == "c1":
            assert message["content"]["data"] == {"echo": "pong"}
            break


async def test_stdin_input(kernel: Kernel) -> None:
    _, client = kernel

    def answer(message: dict[str, Any]) -> None:
        assert message["content"]["prompt"] == "name? "
        client.input("sandbox")

    outcome: dict[str, str] = {"stdout": ""}

    def collect(message: dict[str, Any]) -> None:
        if message["msg_type"] == "stream":
            outcome["stdout"] += message["content"]["text"]

    result = await client.execute_interactive(
        "print('hello', input('name? '))", allow_stdin=True, stdin_hook=answer, output_hook=collect, timeout=30
    )
    assert result["content"]["status"] == "ok"
    assert outcome["stdout"] == "hello sandbox\n"
