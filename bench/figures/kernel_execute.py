"""Figure 4: kernel execute round trip of ``pass``, a warm sandboxed kernel (ZMQ over ipc) vs a local one."""

from __future__ import annotations

from functools import partial
from typing import Any

from bench.context import Sizes
from bench.helpers import start_to_kernel_info, stop_kernel, wait_warm
from bench.report import summary, time_async
from sandkasten_kernel.engine.engine import Engine
from sandkasten_kernel.kernelspecs import kernel_name


async def round_trips(engine: Engine, name: str, n: int) -> list[float]:
    await wait_warm(engine)
    _, manager, client = await start_to_kernel_info(name)
    execute = partial(client.execute_interactive, "pass", timeout=30)
    try:
        await time_async(execute, 10)  # first executes pay for imports on both sides
        return await time_async(execute, n)
    finally:
        await stop_kernel(manager, client)


async def measure(engine: Engine, sizes: Sizes) -> dict[str, Any]:
    sandboxed = summary(await round_trips(engine, kernel_name("python"), sizes.kernel_executes))
    local = summary(await round_trips(engine, "python3", sizes.kernel_executes))
    return {
        "sandkasten_ipc": sandboxed,
        "local_ipykernel": local,
        "sandboxed_over_local": round(sandboxed["median_ms"] / local["median_ms"], 2),
    }
