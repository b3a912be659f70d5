"""Figure 1: kernel start to the ``kernel_info`` reply, through ``AsyncKernelManager``.

Sandkasten's provisioner warm (claimed from the pool) and cold (empty pool),
a plain local ipykernel, and gateway-provisioners' ``DockerProvisioner``. Before
every start the pool is let refill, so no path is timed while sandboxes start
in the background. Each path gets one untimed start first (imports, caches).
"""

from __future__ import annotations

from typing import Any

import docker

from bench.baselines import gateway
from bench.context import Sizes
from bench.helpers import start_to_kernel_info, stop_kernel, wait_warm
from bench.report import speedup, summary
from sandkasten_kernel.engine.engine import Engine
from sandkasten_kernel.kernelspecs import kernel_name


async def starts(engine: Engine, name: str, n: int) -> list[float]:
    samples = []
    for _ in range(n + 1):
        await wait_warm(engine)
        ms, manager, client = await start_to_kernel_info(name)
        samples.append(ms)
        await stop_kernel(manager, client)
    return samples[1:]


async def cold_starts(engine: Engine, n: int) -> list[float]:
    await engine.resize_pool("python", 0)
    samples = []
    for _ in range(n):
        ms, manager, client = await start_to_kernel_info(kernel_name("python"))
        samples.append(ms)
        await stop_kernel(manager, client)
    await engine.resize_pool("python", 1)
    return samples


async def measure(engine: Engine, client: docker.DockerClient, gateway_kernel: str, sizes: Sizes) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "sandkasten_warm": summary(await starts(engine, kernel_name("python"), sizes.kernel_starts)),
        "local_ipykernel": summary(await starts(engine, "python3", sizes.kernel_starts)),
        "sandkasten_cold": summary(await cold_starts(engine, sizes.cold_kernel_starts)),
        # Last: once loaded, gateway-provisioners' ResponseManager polls its response socket every
        # 0.1 ms on the event loop, which slows every other kernel client in this process.
        "gateway_docker_provisioner": summary(await starts(engine, gateway_kernel, sizes.gateway_starts)),
    }
    figures["gateway_kernels_left"] = gateway.remove_leftover_kernels(client)
    warm = figures["sandkasten_warm"]
    figures["speedup"] = {
        "warm_vs_local_ipykernel": speedup(figures["local_ipykernel"], warm),
        "warm_vs_gateway": speedup(figures["gateway_docker_provisioner"], warm),
        "cold_vs_gateway": speedup(figures["gateway_docker_provisioner"], figures["sandkasten_cold"]),
    }
    return figures
