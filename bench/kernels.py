"""Kernel benchmark: start to ``kernel_info`` reply, and execute round trip, sandboxed vs local.

    .venv/bin/python -m bench.kernels [--quick]

Through ``jupyter_client.AsyncKernelManager``, as an agent script or Jupyter
Server starts kernels:
- Sandkasten provisioner, warm (claimed from the pool, kernel already up);
- Sandkasten provisioner, cold (empty pool: container, runner and kernel start);
- baseline: a plain local ipykernel (``python3`` kernelspec, no sandbox);
- execute round trip of ``pass``, sandboxed over ipc vs the local kernel.

Writes bench/results/<date>-kernels.json. It asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager

from bench.engine import bench_engine
from bench.report import print_rows, summary, write_results
from sandkasten_kernel.engine.engine import Engine
from sandkasten_kernel.engine.images import IMAGES
from sandkasten_kernel.kernelspecs import kernel_name, kernelspec
from sandkasten_kernel.provisioner import use_engine

POOL_IMAGE = IMAGES["python"].tag


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


async def stop(manager: AsyncKernelManager, client: Any) -> None:
    client.stop_channels()
    await manager.shutdown_kernel(now=True)


async def execute_round_trips(client: Any, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await client.execute_interactive("pass", timeout=30)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def wait_warm(engine: Engine) -> None:
    while engine.pool_status()["images"].get(POOL_IMAGE, {}).get("ready", 0) < 1:
        await asyncio.sleep(0.05)


async def run(n: int, executes: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    async with bench_engine({"python": 1}) as engine:
        use_engine(engine)
        warm, cold, local = [], [], []
        for _ in range(n):
            await wait_warm(engine)
            ms, manager, client = await start_to_kernel_info(kernel_name("python"))
            warm.append(ms)
            if len(warm) == 1:
                sandboxed_exec = await execute_round_trips(client, executes)
            await stop(manager, client)
        for _ in range(n):
            ms, manager, client = await start_to_kernel_info("python3")
            local.append(ms)
            if len(local) == 1:
                local_exec = await execute_round_trips(client, executes)
            await stop(manager, client)
        await engine.resize_pool("python", 0)
        for _ in range(max(3, n // 3)):
            ms, manager, client = await start_to_kernel_info(kernel_name("python"))
            cold.append(ms)
            await stop(manager, client)
        figures["start_warm"] = summary(warm)
        figures["start_cold"] = summary(cold)
        figures["start_local_ipykernel"] = summary(local)
        figures["warm_vs_local_speedup"] = round(
            figures["start_local_ipykernel"]["median_ms"] / figures["start_warm"]["median_ms"], 1
        )
        figures["execute_sandboxed"] = summary(sandboxed_exec)
        figures["execute_local"] = summary(local_exec)
        figures["execute_ratio"] = round(
            figures["execute_sandboxed"]["median_ms"] / figures["execute_local"]["median_ms"], 2
        )
    return figures


def install_kernelspec(where: Path) -> None:
    """The sandkasten-python kernelspec, found through JUPYTER_PATH for this run only."""
    folder = where / "kernels" / kernel_name("python")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kernel.json").write_text(json.dumps(kernelspec("python")))
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(where), os.environ.get("JUPYTER_PATH")]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few iterations: checks that the benchmark runs")
    parser.add_argument(
        "--out", type=Path, default=None, help="result file (default bench/results/<date>-kernels.json)"
    )
    options = parser.parse_args()
    n, executes = (2, 20) if options.quick else (20, 200)
    with tempfile.TemporaryDirectory() as jupyter_path:
        install_kernelspec(Path(jupyter_path))
        figures = asyncio.run(run(n, executes))
    rows = [
        (
            "kernel start, warm pool (target p50 <= 100 ms)",
            "%(median_ms).1f ms p50, %(p99_ms).1f ms p99" % figures["start_warm"],
        ),
        (
            "kernel start, local ipykernel (baseline)",
            "%(median_ms).1f ms p50, %(p99_ms).1f ms p99" % figures["start_local_ipykernel"],
        ),
        ("  warm vs local (target >= 4x)", "%sx faster" % figures["warm_vs_local_speedup"]),
        ("kernel start, cold (empty pool)", "%(median_ms).1f ms p50, %(p99_ms).1f ms p99" % figures["start_cold"]),
        (
            "execute `pass`, sandboxed over ipc",
            "%(median_ms).2f ms p50, %(p99_ms).2f ms p99" % figures["execute_sandboxed"],
        ),
        ("execute `pass`, local kernel", "%(median_ms).2f ms p50, %(p99_ms).2f ms p99" % figures["execute_local"]),
        ("  sandboxed / local (target <= 1.2x)", "%sx" % figures["execute_ratio"]),
    ]
    print_rows(rows)
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count()},
        "quick": options.quick,
        **figures,
    }
    write_results("kernels", results, options.quick, options.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
