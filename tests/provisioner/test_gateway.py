"""JupyterLab on another machine: a Jupyter Server whose kernels run in a real ``sandkasten serve``'s sandboxes.

That server is pytest-jupyter's, with Jupyter's own gateway client pointed at
the shared ``served`` server (``--gateway-url``, ``--GatewayClient.auth_token``),
and without the Sandkasten extension, as on a laptop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client.session import Session
from jupyter_server.gateway.gateway_client import GatewayClient
from traitlets.config import Config

from sandkasten_server.launcher import Served

pytestmark = pytest.mark.docker

PLOT = "%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.plot([1, 4, 9]); plt.show()\n"


@pytest.fixture
def jp_server_config(served: Served) -> Iterator[Config]:
    # GatewayClient is a singleton: one that an earlier test's server made (without a URL) would be reused.
    GatewayClient.clear_instance()
    config = Config()
    config.GatewayClient.url = served.base_url
    config.GatewayClient.auth_token = served.api_key
    config.GatewayClient.request_timeout = 120.0
    config.ServerApp.jpserver_extensions = {"sandkasten_server": False}
    yield config
    GatewayClient.clear_instance()  # nor may the next test's server use this one


class Channels:
    """A kernel's websocket on the gateway-client server, as JupyterLab opens it."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.session = Session()

    async def execute(self, code: str, timeout: float = 120) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The execute_reply's content and the IOPub messages of ``code``."""
        request = self.session.msg("execute_request", {"code": code, "silent": False})
        request["channel"] = "shell"
        await self.socket.write_message(json.dumps(request, default=str))
        reply: dict[str, Any] | None = None
        outputs: list[dict[str, Any]] = []
        idle = False
        while reply is None or not idle:  # shell and IOPub interleave: the reply can beat the output
            message = json.loads(await asyncio.wait_for(self.socket.read_message(), timeout))
            if message["parent_header"].get("msg_id") != request["header"]["msg_id"]:
                continue
            if message["msg_type"] == "execute_reply":
                reply = message["content"]
            elif message["msg_type"] == "status":
                idle = message["content"]["execution_state"] == "idle"
            else:
                outputs.append(message)
        return reply, outputs


def sandbox_of(served: Served, kernel_id: str) -> str | None:
    """The id of the sandkasten session that holds ``kernel_id``, if any."""
    sessions = served.call("GET", "sessions")["sessions"]
    return next((s["id"] for s in sessions if s["kernel_id"] == kernel_id), None)


def test_a_remote_jupyter_server_runs_its_kernels_in_sandboxes(
    served: Served, jp_asyncio_loop: Any, jp_fetch: Any, jp_ws_fetch: Any
) -> None:
    """Kernelspecs, start, execute with a plot, interrupt, restart, shutdown: each through the gateway client."""
    served.wait_warm()
    jp_asyncio_loop.run_until_complete(scenario(served, jp_fetch, jp_ws_fetch))


async def scenario(served: Served, jp_fetch: Any, jp_ws_fetch: Any) -> None:
    specs = json.loads((await jp_fetch("api", "kernelspecs")).body)["kernelspecs"]
    assert "sandkasten-python" in specs and not [name for name in specs if not name.startswith("sandkasten-")]

    started = json.loads(
        (await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "sandkasten-python"}))).body
    )
    kernel_id = started["id"]
    sandbox = sandbox_of(served, kernel_id)
    assert sandbox is not None, "the kernel is not in a sandkasten session"
    assert served.call("GET", "sessions/" + sandbox)["warm"] is True
    channels = Channels(await jp_ws_fetch("api", "kernels", kernel_id, "channels"))

    reply, outputs = await channels.execute("import os; value = 6 * 7; print(value, os.getuid())")
    assert reply["status"] == "ok"
    assert [m["content"]["text"] for m in outputs if m["msg_type"] == "stream"] == ["42 1000\n"]

    reply, outputs = await channels.execute(PLOT)
    assert reply["status"] == "ok", reply
    assert any("image/png" in m["content"].get("data", {}) for m in outputs if m["msg_type"] == "display_data")

    busy = asyncio.ensure_future(channels.execute("import time; time.sleep(60)"))
    await asyncio.sleep(1.5)
    await jp_fetch("api", "kernels", kernel_id, "interrupt", method="POST", body="")
    reply, _ = await asyncio.wait_for(busy, 30)
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"

    await jp_fetch("api", "kernels", kernel_id, "restart", method="POST", body="")
    assert sandbox_of(served, kernel_id) == sandbox  # the same sandbox: its files stay
    channels = Channels(await jp_ws_fetch("api", "kernels", kernel_id, "channels"))
    reply, outputs = await channels.execute("print('value' in dir())")
    assert [m["content"]["text"] for m in outputs if m["msg_type"] == "stream"] == ["False\n"]

    await jp_fetch("api", "kernels", kernel_id, method="DELETE")
    assert sandbox_of(served, kernel_id) is None
    assert sandbox not in {s["id"] for s in served.call("GET", "sessions")["sessions"]}
