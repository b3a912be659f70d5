"""Provisioner fixtures: an engine with a warm python pool, kernelspecs in a private Jupyter path."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager

from sandkasten_kernel.engine.engine import Engine
from sandkasten_kernel.kernelspecs import kernel_name, kernelspec
from sandkasten_kernel.provisioner import use_engine
from tests.conftest import settings_for

PYTHON = "sandkasten/runtime:python"


@pytest.fixture
def kernelspecs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """sandkasten-python, plus sandkasten-python-ws (with a named workspace), found through JUPYTER_PATH."""
    data = tmp_path / "jupyter"
    for name, spec in [
        (kernel_name("python"), kernelspec("python")),
        ("sandkasten-python-ws", kernelspec("python", workspace="nb-%s" % os.getpid())),
    ]:
        folder = data / "kernels" / name
        folder.mkdir(parents=True)
        (folder / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(data))
    return data


async def wait_warm(engine: Engine, count: int = 1) -> None:
    deadline = time.monotonic() + 120
    while engine.pool_status()["images"].get(PYTHON, {}).get("ready", 0) < count:
        assert time.monotonic() < deadline, "the pool never filled: %s" % engine.pool_status()
        await asyncio.sleep(0.05)


@pytest.fixture
async def kernel_engine(state_dir: str, kernelspecs: Path) -> AsyncIterator[Engine]:
    """The engine provisioners on this test's event loop use, with one warm python sandbox (kernel up)."""
    engine = Engine(settings_for(state_dir, images={"python": 1}, with_kernel=True))
    await engine.start()
    use_engine(engine)
    await wait_warm(engine)
    yield engine
    for record in engine.list_sessions():
        await engine.destroy_session(record.id)
    await engine.close()


Kernel = tuple[AsyncKernelManager, AsyncKernelClient]


@contextlib.asynccontextmanager
async def started_kernel(name: str = kernel_name("python")) -> AsyncIterator[Kernel]:
    """A kernel of kernelspec ``name`` with a ready client; shut down afterwards if still alive."""
    manager = AsyncKernelManager(kernel_name=name)
    await manager.start_kernel()
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        yield manager, client
    finally:
        client.stop_channels()
        if manager.has_kernel:
            await manager.shutdown_kernel()


@pytest.fixture
async def kernel(kernel_engine: Engine) -> AsyncIterator[Kernel]:
    async with started_kernel() as started:
        yield started


async def run(client: AsyncKernelClient, code: str, **options: Any) -> dict[str, Any]:
    """Execute ``code``; collect streams, rich results, the error name and the reply."""
    outcome: dict[str, Any] = {"stdout": "", "stderr": "", "data": [], "error": None}

    def collect(message: dict[str, Any]) -> None:
        kind, content = message["msg_type"], message["content"]
        if kind == "stream":
            outcome[content["name"]] += content["text"]
        elif kind in ("display_data", "execute_result"):
            outcome["data"].append(content["data"])
        elif kind == "error":
            outcome["error"] = content["ename"]

    reply = await client.execute_interactive(code, output_hook=collect, timeout=60, **options)
    outcome["reply"] = reply["content"]
    return outcome


@pytest.fixture
def host_secret(tmp_path: Path) -> Iterator[Path]:
    secret = Path("/tmp/sandkasten-host-secret-%d" % os.getpid())
    secret.write_text("the host's secret")
    yield secret
    secret.unlink()
