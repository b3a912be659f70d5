"""Through a real Jupyter Server: the kernels REST API and its websocket, as JupyterLab uses them.

These tests are plain functions that drive pytest-jupyter's own event loop
(the one the server runs on), so the engine and the server share it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.session import Session
from traitlets.config import Config

from sandkasten_kernel.engine.engine import Engine
from sandkasten_kernel.kernelspecs import kernel_name, kernelspec
from sandkasten_kernel.provisioner import use_engine
from tests.conftest import settings_for
from tests.provisioner.conftest import wait_warm


@pytest.fixture
def jp_server_config() -> Config:
    config = Config()
    config.MappingKernelManager.cull_idle_timeout = 3
    config.MappingKernelManager.cull_interval = 1
    return config


@pytest.fixture
def server_kernelspecs(jp_data_dir: Path) -> None:
    folder = jp_data_dir / "kernels" / kernel_name("python")
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps(kernelspec("python")))


async def started_engine(state_dir: str) -> Engine:
    engine = Engine(settings_for(state_dir, images={"python": 1}, with_kernel=True))
    await engine.start()
    use_engine(engine)
    await wait_warm(engine)
    return engine


async def execute_over_websocket(jp_ws_fetch: Any, kernel_id: str, code: str) -> str:
    socket = await jp_ws_fetch("api", "kernels", kernel_id, "channels")
    request = Session().msg("execute_request", {"code": code, "silent": False})
    request["channel"] = "shell"
    await socket.write_message(json.dumps(request, default=str))
    output = ""
    replied = idle = False
    while not (replied and idle):  # shell and IOPub interleave: the reply can beat the output
        message = json.loads(await socket.read_message())
        if message["parent_header"].get("msg_id") != request["header"]["msg_id"]:
            continue
        if message["msg_type"] == "stream":
            output += message["content"]["text"]
        elif message["msg_type"] == "execute_reply":
            assert message["content"]["status"] == "ok", message["content"]
            replied = True
        elif message["msg_type"] == "status":
            idle = message["content"]["execution_state"] == "idle"
    socket.close()
    return output


def test_a_notebook_kernel_through_the_server(
    server_kernelspecs: None, state_dir: str, jp_asyncio_loop: Any, jp_serverapp: Any, jp_fetch: Any, jp_ws_fetch: Any
) -> None:
    async def scenario() -> None:
        engine = await started_engine(state_dir)
        try:
            response = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": kernel_name("python")}))
            kernel = json.loads(response.body)
            (record,) = [r for r in engine.list_sessions() if r.kernel_id == kernel["id"]]
            assert record.warm
            output = await execute_over_websocket(jp_ws_fetch, kernel["id"], "import os; print(os.uname().nodename)")
            assert output == "sandbox\n"
            # The agent's view of the same sandbox.
            assert (await engine.exec(record.id, "hostname")).output == "sandbox\n"
            await jp_fetch("api", "kernels", kernel["id"], method="DELETE")
            assert [r for r in engine.list_sessions() if r.kernel_id == kernel["id"]] == []
        finally:
            await jp_serverapp.kernel_manager.shutdown_all()  # while the engine can still release sandboxes
            await engine.close()

    jp_asyncio_loop.run_until_complete(scenario())


def test_idle_culling_releases_the_sandbox(
    server_kernelspecs: None, state_dir: str, jp_asyncio_loop: Any, jp_serverapp: Any, jp_fetch: Any
) -> None:
    async def scenario() -> None:
        engine = await started_engine(state_dir)
        try:
            response = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": kernel_name("python")}))
            kernel_id = json.loads(response.body)["id"]
            assert any(r.kernel_id == kernel_id for r in engine.list_sessions())
            manager = jp_serverapp.kernel_manager
            for _ in range(200):  # culled after 3 s idle, checked every second
                # Culled once the kernel manager has let go of it too: shutting down a kernel that
                # is half-way through being culled is a 404 (jupyter_server's own race).
                culled = kernel_id not in manager.list_kernel_ids()
                if culled and not any(r.kernel_id == kernel_id for r in engine.list_sessions()):
                    break
                await asyncio.sleep(0.1)
            assert not any(r.kernel_id == kernel_id for r in engine.list_sessions())
            assert any(e.kind == "destroyed" and kernel_id in e.detail["reason"] for e in engine.events(20))
        finally:
            await jp_serverapp.kernel_manager.shutdown_all()  # while the engine can still release sandboxes
            await engine.close()

    jp_asyncio_loop.run_until_complete(scenario())
