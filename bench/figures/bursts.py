"""Figure 11: bursts. N clients at once each create a session and run ``echo hi``; the figure is the time
until the last of them has its result.

Sandkasten through the Python SDK, with the pool as configured by default
(``pool.images`` {min, max}; the served server differs from the defaults only in
its quotas, so that one API token may hold 50 sessions): first on a pool at its
floor, then again once the pool has followed the first burst's demand. Each
burst's sessions are destroyed afterwards, untimed. Baselines: the same burst
through llm-sandbox (open + ``execute_command``), and a bare ``docker run`` +
``docker exec`` burst, both from a thread per client.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from typing import Any

from bench.baselines import llm_sandbox, plain_docker
from bench.context import POOL_IMAGE, POOL_SIZE, Run
from bench.figures.first_exec import docker_run_and_exec, llm_sandbox_open_and_exec
from sandkasten_kernel.engine.config import SandkastenPool

DEFAULT_POOL: dict[str, Any] = SandkastenPool().images["python"]  # pool.images' default


async def _sandkasten_burst(run: Run, clients: int) -> dict[str, Any]:
    async def one() -> Any:
        session = await run.sdk.create_session()
        result = await session.exec("echo hi")
        assert result.output == "hi\n", result
        return session

    status = (await run.sdk.pool.status())["images"][POOL_IMAGE]
    started = time.perf_counter()
    sessions = await asyncio.gather(*(one() for _ in range(clients)))
    seconds = time.perf_counter() - started
    warm = sum(1 for session in sessions if session.info.warm)
    await asyncio.gather(*(session.destroy() for session in sessions))
    return {"clients": clients, "seconds": round(seconds, 3), "warm": warm, "pool_target_before": status["target"]}


def _threaded_burst(clients: int, open_and_exec: Any, tear_down: Any) -> dict[str, Any]:
    with concurrent.futures.ThreadPoolExecutor(clients) as threads:
        started = time.perf_counter()
        opened = list(threads.map(lambda _: open_and_exec(), range(clients)))
        seconds = time.perf_counter() - started
        list(threads.map(tear_down, opened))
    return {"clients": clients, "seconds": round(seconds, 3)}


async def _pool_settled(run: Run, timeout_s: float = 300) -> None:
    """Until the pool holds its current target, none starting (the machine quiet for the next burst)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = (await run.sdk.pool.status())["images"][POOL_IMAGE]
        if status["ready"] >= status["target"] and not status["starting"]:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("the pool did not settle in %.0f s" % timeout_s)


async def measure(run: Run) -> dict[str, Any]:
    figures: dict[str, Any] = {"pool": DEFAULT_POOL, "sizes": list(run.sizes.bursts)}
    for clients in run.sizes.bursts:
        level: dict[str, Any] = {}
        await run.resize_pool(0)  # then the default sizes: the target starts at the floor
        await run.resize_pool(DEFAULT_POOL)
        await _pool_settled(run)
        level["sandkasten_first"] = await _sandkasten_burst(run, clients)
        await _pool_settled(run)
        level["sandkasten_repeat"] = await _sandkasten_burst(run, clients)
        await _pool_settled(run)
        level["llm_sandbox"] = await asyncio.to_thread(
            _threaded_burst, clients, lambda: llm_sandbox_open_and_exec(run), llm_sandbox.close
        )
        level["docker_run_exec"] = await asyncio.to_thread(
            _threaded_burst, clients, lambda: docker_run_and_exec(run), plain_docker.remove
        )
        for path in ("sandkasten_first", "sandkasten_repeat"):
            level[path]["speedup_vs_llm_sandbox"] = round(level["llm_sandbox"]["seconds"] / level[path]["seconds"], 1)
        figures[str(clients)] = level
    await run.resize_pool(POOL_SIZE)
    await run.pool_ready()
    return figures
