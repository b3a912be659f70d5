"""Engine benchmark: session create (warm, cold, with a workspace), destroy, 50 sessions at once.

    .venv/bin/python -m bench.engine [--quick]

Each figure is printed next to a baseline from the same run: a warm create
against a cold one, a cold create against a bare ``docker run`` of ``true``.
Writes bench/results/<date>-engine.json. It asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from traitlets.config import Config

from bench.report import print_rows, summary, time_sync, write_results
from sandkasten_kernel.engine.config import load_settings
from sandkasten_kernel.engine.engine import Engine
from sandkasten_kernel.engine.images import IMAGES
from sandkasten_kernel.engine.run_dirs import unmount_all_under

IMAGE = "python"


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
        unmount_all_under(state_dir)  # workspace images, if a figure made one
        shutil.rmtree(state_dir, ignore_errors=True)


async def wait_ready(engine: Engine, count: int) -> None:
    ref = IMAGES[IMAGE].tag
    while engine.pool_status()["images"].get(ref, {}).get("ready", 0) < count:
        await asyncio.sleep(0.05)


async def timed(call: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await call
    return (time.perf_counter() - started) * 1000, result


def cgroup_memory(container_id: str) -> int:
    """The container's working set from the host's cgroup files (v1 or v2)."""
    for base, usage_name, stat_name, inactive_key in (
        ("/sys/fs/cgroup/memory/docker/%s", "memory.usage_in_bytes", "memory.stat", "total_inactive_file"),
        ("/sys/fs/cgroup/system.slice/docker-%s.scope", "memory.current", "memory.stat", "inactive_file"),
    ):
        folder = base % container_id
        if os.path.isdir(folder):
            usage = int(Path(folder, usage_name).read_text())
            stats = dict(line.split() for line in Path(folder, stat_name).read_text().splitlines())
            return usage - int(stats.get(inactive_key, 0))
    return -1


async def run(n: int, held: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    async with bench_engine({IMAGE: 1}) as engine:
        warm, destroy = [], []
        for _ in range(n):
            await wait_ready(engine, 1)
            ms, record = await timed(engine.create_session(image=IMAGE))
            assert record.warm
            warm.append(ms)
            ms, _ = await timed(engine.destroy_session(record.id))
            destroy.append(ms)
        await engine.resize_pool(IMAGE, 0)
        cold = []
        for _ in range(n):
            ms, record = await timed(engine.create_session(image=IMAGE))
            assert not record.warm
            cold.append(ms)
            await engine.destroy_session(record.id)
        named = []
        for _ in range(n):
            name = "bench-%s" % uuid.uuid4().hex[:8]
            ms, record = await timed(engine.create_session(image=IMAGE, workspace=name))
            named.append(ms)
            await engine.destroy_session(record.id)
            await engine.delete_workspace(name)
        docker_run = time_sync(
            lambda: engine.backend.client.containers.run(IMAGES[IMAGE].tag, entrypoint=["true"], remove=True), n
        )
        figures["create_warm"] = summary(warm)
        figures["create_cold"] = summary(cold)
        figures["create_named_workspace"] = summary(named)
        figures["destroy"] = summary(destroy)
        figures["docker_run_true"] = summary(docker_run)
        figures["warm_vs_cold_speedup"] = round(
            figures["create_cold"]["median_ms"] / figures["create_warm"]["median_ms"], 1
        )

        started = time.perf_counter()
        records = [await engine.create_session(image=IMAGE) for _ in range(held)]
        create_all_s = time.perf_counter() - started
        memory = [cgroup_memory(record.container_id) for record in records]
        probe = [(await timed(engine.exec(record.id, "true")))[0] for record in records for _ in range(3)]
        for record in records:
            await engine.destroy_session(record.id)
        leaked_containers = [
            c.name
            for c in engine.backend.client.containers.list(all=True, filters={"label": "sandkasten.session"})
            if any(m.get("Source", "").startswith(engine.settings.server.state_dir) for m in c.attrs["Mounts"])
        ]
        figures["held_sessions"] = {
            "count": held,
            "create_all_s": round(create_all_s, 1),
            "memory_per_session_mb": round(sum(memory) / len(memory) / 2**20, 1)
            if memory and min(memory) >= 0
            else None,
            "exec_true_while_held": summary(probe),
            "leaked_containers": leaked_containers,
            "leaked_run_dirs": os.listdir(engine.factory.sandboxes_dir),
            "leaked_db_rows": len(engine.list_sessions()),
        }
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few iterations: checks that the benchmark runs")
    parser.add_argument("--out", type=Path, default=None, help="result file (default bench/results/<date>-engine.json)")
    options = parser.parse_args()
    n, held = (3, 5) if options.quick else (30, 50)
    figures = asyncio.run(run(n, held))
    held_figures = figures["held_sessions"]
    rows = [
        (
            "create, warm pool (target p50 <= 30 ms)",
            "%(median_ms).1f ms p50, %(p99_ms).1f ms p99" % figures["create_warm"],
        ),
        ("create, cold (target <= 1 s)", "%(median_ms).1f ms p50, %(p99_ms).1f ms p99" % figures["create_cold"]),
        ("  warm vs cold", "%sx faster" % figures["warm_vs_cold_speedup"]),
        ("  baseline: docker run true", "%(median_ms).1f ms p50, %(p99_ms).1f ms p99" % figures["docker_run_true"]),
        (
            "create with a named workspace",
            "%(median_ms).1f ms p50, %(p99_ms).1f ms p99" % figures["create_named_workspace"],
        ),
        ("destroy", "%(median_ms).1f ms p50, %(p99_ms).1f ms p99" % figures["destroy"]),
        (
            "%d sessions held" % held_figures["count"],
            "%s MB each (working set), created in %s s, exec p99 %.1f ms"
            % (
                held_figures["memory_per_session_mb"],
                held_figures["create_all_s"],
                held_figures["exec_true_while_held"]["p99_ms"],
            ),
        ),
        (
            "  leaked after destroy",
            "%d containers, %d run dirs, %d db rows"
            % (
                len(held_figures["leaked_containers"]),
                len(held_figures["leaked_run_dirs"]),
                held_figures["leaked_db_rows"],
            ),
        ),
    ]
    print_rows(rows)
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count()},
        "quick": options.quick,
        "image": IMAGES[IMAGE].tag,
        **figures,
    }
    write_results("engine", results, options.quick, options.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
