"""The benchmark suite: every figure, next to its baselines, in one run.

    .venv/bin/python -m bench [--quick] [--out FILE.json] [--only FIGURE ...] [--cold-build]

1. kernel start to kernel_info: Sandkasten warm/cold, local ipykernel, gateway-provisioners;
2. session create to first exec: Sandkasten warm/cold, llm-sandbox, docker run + exec;
3. exec round trip (`true`, 1 MB output): SDK (async, sync), stdlib HTTP, runner socket, docker exec, llm-sandbox;
4. kernel execute round trip: sandboxed vs local;
5. density: idle memory of a warm sandbox, sessions held before exec p99 doubles;
6. throughput: 1, 5, 20, 50 agents looping create, write, exec, read, destroy;
7. file transfer: 1 KB, 1 MB, 100 MB write and read, MB/s, next to docker cp;
8. session create alone (warm, cold, named workspace) and destroy, next to docker run of true;
9. image builds when current, and with --cold-build from nothing (removes every Sandkasten image first);
10. kernel start for clients outside the server: an agent's own process (warm from the server's pool, and its
    cold fallback) and a Jupyter Server with --gateway-url (warm, empty pool), each next to a local ipykernel.
11. bursts: 20 and 50 clients each creating a session and running a command at once, on the default pool
    sizes (first at their floor, then after one burst), next to llm-sandbox and docker run + exec bursts.
12. egress: an allowed HTTP and HTTPS GET through the domain-filtering proxy, next to a direct one from a session
    with the open network (by name, and by an address resolved beforehand), on a server of its own with network on.
13. custom image build: `sandkasten images add` from a Dockerfile and from an image, the first time (nothing
    cached) and repeated (nothing changed: a no-op).
14. snapshots: pause and resume; snapshot, session from it and fork of 4 of a session with 100 MB in /workspace
    (tmpfs, and a named workspace); a session from a snapshot holding numpy next to pip install in a fresh one.
15. e2b: E2B's own SDK, create to first command, next to Sandkasten's SDK; five commands at once in one sandbox
    (processes beside the shell, and E2B's commands) next to five one after another.

Writes bench/results/<date>.json (``--quick``: <date>-quick.json) and one PNG per
figure beside it (<date>-<figure>.png), prints a table and marks each target met
or missed. It asserts nothing: ``--quick`` (tiny sizes) is what CI runs.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import docker
import httpx

from bench import plots, targets
from bench.baselines import gateway
from bench.context import FULL, QUICK, SERVER_CONFIG, Run, Sizes
from bench.figures import (
    bursts,
    client_kernels,
    concurrency,
    custom_image_build,
    density,
    e2b,
    egress,
    exec_round_trip,
    file_transfer,
    first_exec,
    image_build,
    kernel_execute,
    kernel_start,
    sessions,
    snapshots,
)
from bench.helpers import bench_engine, install_kernelspec
from bench.printed import print_report
from bench.report import RESULTS
from sandkasten import SandboxClient
from sandkasten_kernel.engine.docker_backend import connect
from sandkasten_kernel.provisioner import use_engine
from sandkasten_server import launcher

KERNEL_FIGURES = ("kernel_start", "kernel_execute")
SERVED_FIGURES = (
    "first_exec",
    "sessions",
    "exec_round_trip",
    "file_transfer",
    "density",
    "client_kernels",
    "bursts",
    "snapshots",
    "e2b",
    "concurrency",
)
FIGURES = KERNEL_FIGURES + SERVED_FIGURES + ("image_build", "custom_image_build", "egress")


def machine(client: docker.DockerClient) -> dict[str, Any]:
    with open("/proc/meminfo") as f:
        total_kb = int(f.readline().split()[1])
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(total_kb / 2**20, 1),
        "docker": client.version().get("Version"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "note": "every figure comes from this one run; the machine is shared, so other work may have run alongside",
    }


async def timed_figure(name: str, measure: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    print("measuring %s ..." % name, flush=True)
    started = time.monotonic()
    figures = await measure()
    figures["seconds"] = round(time.monotonic() - started, 1)
    figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return figures


async def kernel_figures(client: docker.DockerClient, sizes: Sizes, only: set[str]) -> dict[str, Any]:
    """Figures 1 and 4, on an in-process engine, as a notebook server runs the provisioner."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sk-bench-jupyter-") as jupyter_dir:
        install_kernelspec(Path(jupyter_dir))
        gateway_kernel = gateway.install_kernelspec(client, Path(jupyter_dir))
        async with bench_engine({"python": 1}) as engine:
            use_engine(engine)
            # Execute first: the gateway kernels of kernel_start load a poller that slows this event loop.
            if "kernel_execute" in only:
                results["kernel_execute"] = await timed_figure(
                    "kernel_execute", lambda: kernel_execute.measure(engine, sizes)
                )
            if "kernel_start" in only:
                results["kernel_start"] = await timed_figure(
                    "kernel_start", lambda: kernel_start.measure(engine, client, gateway_kernel, sizes)
                )
    return results


async def served_figures(client: docker.DockerClient, sizes: Sizes, only: set[str]) -> dict[str, Any]:
    """Figures 2, 3, 5-8, 10 and 11, through a real ``sandkasten serve`` (the SDK, agents' processes, a gateway)."""
    modules = {
        "first_exec": first_exec,
        "sessions": sessions,
        "exec_round_trip": exec_round_trip,
        "file_transfer": file_transfer,
        "density": density,
        "client_kernels": client_kernels,
        "bursts": bursts,
        "snapshots": snapshots,
        "e2b": e2b,
        "concurrency": concurrency,  # last: the heaviest
    }
    served = launcher.start(SERVER_CONFIG)
    results: dict[str, Any] = {"server_config": SERVER_CONFIG}
    try:
        async with (
            SandboxClient(served.base_url, served.api_key, timeout=600) as sdk,
            httpx.AsyncClient(base_url=served.url + "/", headers=served.headers, timeout=120) as http,
        ):
            run = Run(sizes, client, served, sdk, http)
            for name, module in modules.items():
                if name in only:
                    results[name] = await timed_figure(name, partial(module.measure, run))
    except BaseException:
        print("sandkasten serve's log, last lines:\n%s" % served.log()[-4000:], file=sys.stderr)
        raise
    finally:
        served.stop()
        served.remove_state()
    return results


def merged(earlier: dict[str, Any], rerun: dict[str, Any], only: set[str]) -> dict[str, Any]:
    """An earlier run with some figures measured again (``--only`` onto its file); the file says which and when."""
    for name in only:
        earlier[name] = rerun[name]
    earlier.setdefault("rerun", []).append(
        {
            "figures": sorted(only),
            "date": rerun["date"],
            "load_average_at_start": rerun["machine"]["load_average_at_start"],
        }
    )
    return earlier


def default_out(quick: bool) -> Path:
    return RESULTS / ("%s%s.json" % (datetime.date.today().isoformat(), "-quick" if quick else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that every figure runs (CI)")
    parser.add_argument(
        "--out", type=Path, help="the JSON file; plots go beside it (default bench/results/<date>.json)"
    )
    parser.add_argument(
        "--only", nargs="+", choices=FIGURES, help="run only these figures; into an existing --out file, replace them"
    )
    parser.add_argument(
        "--cold-build",
        action="store_true",
        help="image_build also times a build from nothing: removes every Sandkasten image first (minutes)",
    )
    options = parser.parse_args()
    sizes = QUICK if options.quick else FULL
    only = set(options.only or FIGURES)
    if options.cold_build and "image_build" not in only:
        parser.error("--cold-build is part of the image_build figure, which --only leaves out")
    flags = [flag for flag, given in (("--quick", options.quick), ("--cold-build", options.cold_build)) if given]
    client = connect()

    started = time.monotonic()
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench", *flags]),
        "quick": options.quick,
        "machine": machine(client),
        "versions": versions(),
    }
    if "image_build" in only:  # first: from nothing, it rebuilds what the other figures run on
        measure = partial(image_build.measure, client, sizes, options.cold_build)
        results["image_build"] = asyncio.run(timed_figure("image_build", measure))
    if "custom_image_build" in only:
        measure = partial(custom_image_build.measure, client, sizes)
        results["custom_image_build"] = asyncio.run(timed_figure("custom_image_build", measure))
    results["baseline_images"] = {"gateway_kernel": gateway.ensure_kernel_image(client)}
    if only & set(KERNEL_FIGURES):
        results.update(asyncio.run(kernel_figures(client, sizes, only)))
    if only & set(SERVED_FIGURES):
        results.update(asyncio.run(served_figures(client, sizes, only)))
    if "egress" in only:  # on a server of its own: the shared one has no network
        results["egress"] = asyncio.run(timed_figure("egress", partial(egress.measure, sizes)))
    results["seconds"] = round(time.monotonic() - started, 1)
    out = options.out or default_out(options.quick)
    if options.only and out.exists():
        results = merged(json.loads(out.read_text()), results, only)
    if set(FIGURES) <= set(results):
        results["targets"] = targets.check(results)

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    pictures = plots.plot_all(results, out.with_suffix(""))
    print_report(results)
    print("wrote %s" % out)
    for picture in pictures:
        print("wrote %s" % picture)
    return 0


def versions() -> dict[str, str]:
    return {name: version(name) for name in ("gateway-provisioners", "llm-sandbox", "jupyter_client", "ipykernel")}


if __name__ == "__main__":
    sys.exit(main())
