"""Runtime benchmark: exec round trip, idle memory, image build time.

    .venv/bin/python -m bench.runtime [--quick] [--cold-build]

Figures, each next to its baseline measured in the same run:
- exec of ``true`` over the runner's control socket vs ``docker exec`` (docker-py)
  into the same container: median and p99 of N calls, and the ratio;
- exec with 1 MB of output, the same two ways;
- idle memory of one sandbox (``python`` image) with its kernel started;
- ``sandkasten images build`` when every image is current, and with
  ``--cold-build`` from nothing (every sandkasten image and the debootstrap base
  removed first: minutes).

Prints a table and writes bench/results/<date>-runtime.json. It asserts nothing.
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
from pathlib import Path
from typing import Any

import docker

from bench.report import print_rows, summary, time_async, time_sync, write_results
from sandkasten_kernel.engine.docker_backend import connect, remove_sandbox, start_sandbox
from sandkasten_kernel.engine.images import BOOTSTRAP_TAG, IMAGES, ImageBuilder
from sandkasten_kernel.engine.kernel_connection import kernel_connection_info
from sandkasten_kernel.engine.run_dirs import remove_run_dir
from sandkasten_kernel.engine.runner_client import RunnerClient
from sandkasten_kernel.engine.sandbox_spec import SandboxSpec

MB_COMMAND = "head -c 1000000 /dev/zero | tr '\\0' x"


def start(client: docker.DockerClient, image: str) -> tuple[Any, str]:
    run_dir = tempfile.mkdtemp(prefix="sk-bench-", dir="/tmp") + "/run"
    container = start_sandbox(client, SandboxSpec(image=IMAGES[image].tag, run_dir=run_dir))
    return container, run_dir


def stop(container: Any, run_dir: str) -> None:
    remove_sandbox(container)
    remove_run_dir(run_dir)  # a tmpfs mount of its own
    shutil.rmtree(os.path.dirname(run_dir), ignore_errors=True)


async def exec_round_trips(client: docker.DockerClient, n: int) -> dict[str, Any]:
    container, run_dir = start(client, "base")
    try:
        async with await RunnerClient.connect(run_dir + "/control.sock", timeout=30) as runner:
            for _ in range(10):  # warm both paths
                await runner.exec("true")
                container.exec_run(["true"])
            socket_true = summary(await time_async(lambda: runner.exec("true"), n))
            docker_true = summary(time_sync(lambda: container.exec_run(["true"]), n))
            socket_mb = summary(await time_async(lambda: runner.exec(MB_COMMAND), max(10, n // 10)))
            docker_mb = summary(time_sync(lambda: container.exec_run(["sh", "-c", MB_COMMAND]), max(10, n // 10)))
    finally:
        stop(container, run_dir)
    return {
        "true": {
            "runner_socket": socket_true,
            "docker_exec": docker_true,
            "speedup_median": round(docker_true["median_ms"] / socket_true["median_ms"], 1),
            "speedup_p99": round(docker_true["p99_ms"] / socket_true["p99_ms"], 1),
        },
        "1MB_output": {
            "runner_socket": socket_mb,
            "docker_exec": docker_mb,
            "speedup_median": round(docker_mb["median_ms"] / socket_mb["median_ms"], 1),
        },
    }


def cgroup_working_set(container: Any) -> int:
    """Memory as `docker stats` shows it: usage minus inactive page cache."""
    stats = container.stats(stream=False)["memory_stats"]
    inner = stats.get("stats", {})
    inactive = inner.get("total_inactive_file", inner.get("inactive_file", 0))
    return int(stats["usage"] - inactive)


async def idle_memory(client: docker.DockerClient, settle_s: float) -> dict[str, Any]:
    container, run_dir = start(client, "python")
    try:
        async with await RunnerClient.connect(run_dir + "/control.sock", timeout=30) as runner:
            await runner.kernel_start(kernel_connection_info(run_dir))
            await asyncio.sleep(settle_s)
            health = await runner.health()
        working_set = cgroup_working_set(container)
    finally:
        stop(container, run_dir)
    return {
        "image": IMAGES["python"].tag,
        "processes": health["pids"],
        "rss_mb": round(health["rss_bytes"] / 2**20, 1),
        "cgroup_working_set_mb": round(working_set / 2**20, 1),
        "target_mb": 80,
    }


def image_builds(client: docker.DockerClient, cold: bool) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    builder = ImageBuilder(client, progress=lambda line: None)
    if cold:
        tags = [tag for spec in reversed(IMAGES.values()) for tag in (spec.tag, spec.layers_tag)]
        for tag in [*tags, BOOTSTRAP_TAG]:
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(tag, force=True)
        started = time.monotonic()
        builder.build()
        figures["from_nothing_s"] = round(time.monotonic() - started, 1)
    started = time.monotonic()
    outcomes = builder.build()
    figures["rerun_s"] = round(time.monotonic() - started, 2)
    figures["rerun_built"] = [o.tag for o in outcomes if o.built]
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few iterations: checks that the benchmark runs")
    parser.add_argument("--cold-build", action="store_true", help="also time an image build from nothing")
    parser.add_argument(
        "--out", type=Path, default=None, help="result file (default bench/results/<date>-runtime.json)"
    )
    options = parser.parse_args()
    n = 20 if options.quick else 200
    client = connect()

    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "docker": client.version().get("Version")},
        "quick": options.quick,
    }
    results["images"] = image_builds(client, options.cold_build)
    results["exec"] = asyncio.run(exec_round_trips(client, n))
    results["idle_memory"] = asyncio.run(idle_memory(client, 1.0 if options.quick else 5.0))

    exec_true = results["exec"]["true"]
    exec_mb = results["exec"]["1MB_output"]
    memory = results["idle_memory"]
    rows = [
        ("exec `true`, runner socket", "%(median_ms).2f ms median, %(p99_ms).2f ms p99" % exec_true["runner_socket"]),
        ("exec `true`, docker exec", "%(median_ms).2f ms median, %(p99_ms).2f ms p99" % exec_true["docker_exec"]),
        ("  speed-up (target >= 10x)", "%sx median, %sx p99" % (exec_true["speedup_median"], exec_true["speedup_p99"])),
        ("exec 1 MB output, runner socket", "%(median_ms).2f ms median" % exec_mb["runner_socket"]),
        ("exec 1 MB output, docker exec", "%(median_ms).2f ms median" % exec_mb["docker_exec"]),
        ("  speed-up", "%sx median" % exec_mb["speedup_median"]),
        (
            "idle sandbox + kernel (target <= 80 MB)",
            "%s MB working set, %s MB RSS, %s processes"
            % (memory["cgroup_working_set_mb"], memory["rss_mb"], memory["processes"]),
        ),
        ("images build, all current", "%s s" % results["images"]["rerun_s"]),
    ]
    if "from_nothing_s" in results["images"]:
        rows.append(("images build from nothing", "%s s" % results["images"]["from_nothing_s"]))
    print_rows(rows)
    write_results("runtime", results, options.quick, options.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
