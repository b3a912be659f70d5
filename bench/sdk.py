"""Python SDK benchmark: ``exec`` through ``SandboxClient`` and ``SyncSandboxClient`` against a real server.

    .venv/bin/python -m bench.sdk [--quick]

Next to the same exec over the runner socket (no HTTP) in the same run. Writes
bench/results/<date>-sdk.json. It asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
from pathlib import Path
from typing import Any

from bench.report import print_rows, summary, time_async, time_sync, write_results
from sandkasten import SandboxClient, SyncSandboxClient
from sandkasten_kernel.engine.runner_client import RunnerClient
from sandkasten_server import launcher


async def measure(n: int) -> dict[str, Any]:
    served = launcher.start({"pool": {"images": {"python": 1}}})
    try:
        async with SandboxClient(served.base_url, served.api_key) as client:
            session = await client.create_session()
            async_execs = await time_async(lambda: session.exec("echo hi"), n)
            socket = os.path.join(served.state_dir, "sandboxes", session.id, "control.sock")
            async with await RunnerClient.connect(socket) as runner:
                direct = await time_async(lambda: runner.exec("echo hi"), n)
            await session.destroy()
        with SyncSandboxClient(served.base_url, served.api_key) as sync_client, sync_client.create_session() as sync:
            sync_execs = await asyncio.to_thread(time_sync, lambda: sync.exec("echo hi"), n)
    finally:
        served.stop()
        served.remove_state()
    return {
        "exec_async_sdk": summary(async_execs),
        "exec_sync_sdk": summary(sync_execs),
        "exec_runner_socket": summary(direct),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few iterations: checks that the benchmark runs")
    parser.add_argument("--out", type=Path, help="where to write the JSON (default bench/results/)")
    options = parser.parse_args()
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count()},
        "quick": options.quick,
        **asyncio.run(measure(10 if options.quick else 200)),
    }
    print_rows(
        [
            (label, "%(median_ms).2f ms p50  %(p99_ms).2f ms p99  (n=%(n)d)" % results[key])
            for label, key in [
                ("exec echo hi, SandboxClient", "exec_async_sdk"),
                ("exec echo hi, SyncSandboxClient", "exec_sync_sdk"),
                ("exec echo hi, runner socket", "exec_runner_socket"),
            ]
        ]
    )
    write_results("sdk", results, options.quick, options.out)


if __name__ == "__main__":
    main()
