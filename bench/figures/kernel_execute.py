"""Figure 4: kernel execute round trip of ``pass``, a warm sandboxed kernel (ZMQ over ipc) vs a local one."""

from __future__ import annotations

from typing import Any

from bench.context import Sizes
from bench.kernels import execute_round_trips, start_to_kernel_info, stop, wait_warm
from bench.report import summary
from sandkasten_kernel.engine.engine import Engine
from sandkasten_kernel.kernelspecs import kernel_name


async def round_trips(engine: Engine, name: str, n: int) -> list[float]:
    await wait_warm(engine)
    _, manager, client = await start_to_kernel_info(name)
    try:
        await execute_round_trips(client, 10)  # first executes pay for imports on both sides
        return await execute_round_trips(client, n)
    finally:
        await stop(manager, client)


async def measure(engine: Engine, sizes: Sizes) -> dict[str, Any]:
    sandboxed = summary(await round_trips(engine, kernel_name("python"), sizes.kernel_executes))
    local = summary(await round_trips(engine, "python3", sizes.kernel_executes))
    return {
        "sandkasten_ipc": sandboxed,
        "local_ipykernel": local,
        "sandboxed_over_local": round(sandboxed["median_ms"] / local["median_ms"], 2),
    }
