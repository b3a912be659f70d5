"""What figures share beyond the run's context: quiet baselines, an in-process engine, kernel clients, memory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import docker
from jupyter_client.manager import AsyncKernelManager
from traitlets.config import Config

from bench.context import POOL_IMAGE, Run, timed_sync
from sandkasten_kernel.engine.config import load_settings
from sandkasten_kernel.engine.engine import Engine
from sandkasten_kernel.engine.run_dirs import unmount_all_under
from sandkasten_kernel.engine.sandbox_cgroup import container_cgroup_dir
from sandkasten_kernel.kernelspecs import kernel_name, kernelspec


@contextlib.asynccontextmanager
async def bench_engine(pool: dict[str, int], with_kernel: bool = True) -> AsyncIterator[Engine]:
    """A started engine on a fresh state dir; every session and the state dir are removed after."""
    state_dir = tempfile.mkdtemp(prefix="skb-", dir="/tmp")
    config = Config()
    config.Sandkasten.state_dir = state_dir
    config.SandkastenPool.images = pool
    config.SandkastenPool.with_kernel = with_kernel
    engine = Engine(load_settings(None, config))
    await engine.start()
    try:
        yield engine
    finally:
        for record in engine.list_sessions():
            await engine.destroy_session(record.id)
        await engine.close()
        unmount_all_under(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)


async def wait_warm(engine: Engine) -> None:
    """Until the engine's pool has a warm sandbox of the pool image."""
    while engine.pool_status()["images"].get(POOL_IMAGE, {}).get("ready", 0) < 1:
        await asyncio.sleep(0.05)


async def baseline(run: Run, n: int, call: Callable[[], Any], tear_down: Callable[[Any], None]) -> list[float]:
    """Time ``call`` (blocking; returns what ``tear_down`` removes) ``n`` times, each once the pool is full."""
    samples = []
    for _ in range(n):
        await run.pool_ready()
        ms, opened = timed_sync(call)
        samples.append(ms)
        tear_down(opened)
    return samples


def install_kernelspec(where: Path) -> None:
    """The sandkasten-python kernelspec, found through JUPYTER_PATH for this run only."""
    folder = where / "kernels" / kernel_name("python")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kernel.json").write_text(json.dumps(kernelspec("python")))
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(where), os.environ.get("JUPYTER_PATH")]))


async def start_to_kernel_info(name: str) -> tuple[float, AsyncKernelManager, Any]:
    """Milliseconds from ``start_kernel`` to the ``kernel_info_reply`` on the shell channel.

    (``wait_for_ready`` would add its own 200 ms IOPub probe on top, on every path alike.)
    """
    started = time.perf_counter()
    manager = AsyncKernelManager(kernel_name=name)
    await manager.start_kernel()
    client = manager.client()
    client.start_channels()
    msg_id = client.kernel_info()
    while True:
        reply = await client.get_shell_msg(timeout=120)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    elapsed = (time.perf_counter() - started) * 1000
    await client.wait_for_ready(timeout=120)  # IOPub too, before the kernel is used
    return elapsed, manager, client


async def stop_kernel(manager: AsyncKernelManager, client: Any) -> None:
    client.stop_channels()
    await manager.shutdown_kernel(now=True)


def cgroup_memory(container_id: str) -> int:
    """The container's working set from the host's cgroup files (v1 or v2), as ``docker stats`` counts it."""
    folder = container_cgroup_dir(docker.from_env(), container_id, "memory")
    if folder is None:
        return -1
    unified = os.path.exists(os.path.join(folder, "memory.current"))
    usage_name, inactive_key = (
        ("memory.current", "inactive_file") if unified else ("memory.usage_in_bytes", "total_inactive_file")
    )
    usage = int(Path(folder, usage_name).read_text())
    stats = dict(line.split() for line in Path(folder, "memory.stat").read_text().splitlines())
    return usage - int(stats.get(inactive_key, 0))
