"""REST API benchmark, through a real ``sandkasten serve``: create, exec, and a concurrent load.

    .venv/bin/python -m bench.http [--quick] [--clients 20] [--seconds 60]

Figures, each next to a baseline measured in the same run:
- session create from the warm pool, p50 (target <= 50 ms), against a bare ``docker run``;
- exec of ``echo hi``, p50 (target <= 10 ms), against the same exec over the runner
  socket (no HTTP) and against ``docker exec``;
- N concurrent clients each looping create -> exec -> destroy: throughput, p99 per
  call, errors (target 0) and what was left behind (target: nothing).

A 503 with Retry-After (the pool is empty and the cold-start limit is reached) is
backpressure, not an error: the client waits and retries, as the SDK does, and
the retries are counted. Writes bench/results/<date>-http.json. It asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import http.client
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import httpx

from bench.report import print_rows, summary, time_async, time_sync, write_results
from sandkasten_kernel.engine.runner_client import RunnerClient
from sandkasten_server import launcher
from sandkasten_server.launcher import Served

PYTHON = "sandkasten/runtime:python"


async def wait_warm(client: httpx.AsyncClient, count: int) -> None:
    while (await client.get("pool")).json()["images"].get(PYTHON, {}).get("ready", 0) < count:
        await asyncio.sleep(0.05)


def keep_alive_exec(served: Served, session_id: str) -> Callable[[], None]:
    """An exec over one kept-alive HTTP/1.1 connection of the standard library: the server's own cost,
    without httpx's (about 3 ms a request on this machine)."""
    host, port = served.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port))
    headers = {**served.headers, "Content-Type": "application/json"}
    body = json.dumps({"command": "echo hi"})

    def call() -> None:
        connection.request("POST", "/sandkasten/api/sessions/%s/exec" % session_id, body=body, headers=headers)
        reply = connection.getresponse()
        assert json.loads(reply.read())["output"] == "hi\n"

    return call


async def create_and_exec(client: httpx.AsyncClient, served: Served, n: int) -> dict[str, Any]:
    """Warm create (the pool refilled before each), then execs on one session, HTTP and not."""
    creates, destroys = [], []
    for _ in range(n):
        await wait_warm(client, 1)
        started = time.perf_counter()
        reply = await client.post("sessions", json={})
        creates.append((time.perf_counter() - started) * 1000)
        assert reply.status_code == 201 and reply.json()["warm"], reply.text
        started = time.perf_counter()
        await client.delete("sessions/%s" % reply.json()["id"])
        destroys.append((time.perf_counter() - started) * 1000)

    session = (await client.post("sessions", json={})).json()

    async def http_exec() -> None:
        reply = await client.post("sessions/%s/exec" % session["id"], json={"command": "echo hi"})
        assert reply.json()["output"] == "hi\n", reply.text

    execs = await time_async(http_exec, n * 4)
    raw_execs = time_sync(keep_alive_exec(served, session["id"]), n * 4)
    socket_path = os.path.join(served.state_dir, "sandboxes", session["id"], "control.sock")
    async with await RunnerClient.connect(socket_path) as runner:

        async def socket_exec() -> None:
            await runner.exec("echo hi")

        direct = await time_async(socket_exec, n * 4)
    docker_client = docker.from_env()
    container = docker_client.containers.get(session["container_id"])
    docker_execs = time_sync(lambda: container.exec_run(["bash", "-c", "echo hi"]), max(10, n))
    docker_runs = time_sync(
        lambda: docker_client.containers.run(PYTHON, entrypoint=["true"], remove=True), max(5, n // 3)
    )
    await client.delete("sessions/%s" % session["id"])
    return {
        "create_warm": summary(creates),
        "destroy": summary(destroys),
        "docker_run_true": summary(docker_runs),
        "exec_echo_http": summary(execs),
        "exec_echo_http_raw_client": summary(raw_execs),
        "exec_echo_runner_socket": summary(direct),
        "exec_echo_docker_exec": summary(docker_execs),
    }


class Load:
    def __init__(self) -> None:
        self.cycles = 0
        self.errors: list[str] = []
        self.retries = 0
        self.samples: dict[str, list[float]] = {"create": [], "exec": [], "destroy": [], "cycle": []}

    async def call(self, name: str, client: httpx.AsyncClient, method: str, url: str, **options: Any) -> httpx.Response:
        while True:
            started = time.perf_counter()
            reply = await client.request(method, url, **options)
            if reply.status_code == 503 and "Retry-After" in reply.headers:
                self.retries += 1
                await asyncio.sleep(float(reply.headers["Retry-After"]) / 4)
                continue
            self.samples[name].append((time.perf_counter() - started) * 1000)
            return reply

    async def client_loop(self, client: httpx.AsyncClient, until: float) -> None:
        while time.monotonic() < until:
            started = time.perf_counter()
            try:
                created = await self.call("create", client, "POST", "sessions", json={})
                if created.status_code != 201:
                    self.errors.append("create: %s %s" % (created.status_code, created.text[:200]))
                    continue
                session_id = created.json()["id"]
                ran = await self.call(
                    "exec", client, "POST", "sessions/%s/exec" % session_id, json={"command": "echo hi"}
                )
                if ran.status_code != 200 or ran.json()["output"] != "hi\n":
                    self.errors.append("exec: %s %s" % (ran.status_code, ran.text[:200]))
                gone = await self.call("destroy", client, "DELETE", "sessions/%s" % session_id)
                if gone.status_code != 204:
                    self.errors.append("destroy: %s %s" % (gone.status_code, gone.text[:200]))
            except httpx.HTTPError as exc:
                self.errors.append("%s: %s" % (type(exc).__name__, exc))
                continue
            self.samples["cycle"].append((time.perf_counter() - started) * 1000)
            self.cycles += 1


async def load(served: Served, clients: int, seconds: float) -> dict[str, Any]:
    state = Load()
    limits = httpx.Limits(max_connections=clients * 2)
    rss_before = served.rss_mb()
    async with httpx.AsyncClient(base_url=served.url + "/", headers=served.headers, timeout=120, limits=limits) as c:
        until = time.monotonic() + seconds
        started = time.monotonic()
        await asyncio.gather(*(state.client_loop(c, until) for _ in range(clients)))
        elapsed = time.monotonic() - started
        left = (await c.get("sessions")).json()["sessions"]
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "cycles": state.cycles,
        "cycles_per_s": round(state.cycles / elapsed, 2),
        "errors": len(state.errors),
        "error_examples": state.errors[:5],
        "retries_after_503": state.retries,
        "sessions_left": len(left),
        "server_rss_mb_before": round(rss_before, 1),
        "server_rss_mb_after": round(served.rss_mb(), 1),
        **{name: summary(samples) for name, samples in state.samples.items() if samples},
    }


def leftovers(served: Served) -> dict[str, int]:
    """What the server left behind after it stopped: containers, run directories."""
    client = docker.from_env()
    containers = [
        c
        for c in client.containers.list(all=True, filters={"label": "sandkasten.session"})
        if any(m.get("Source", "").startswith(served.state_dir) for m in c.attrs["Mounts"] or [])
    ]
    sandboxes = Path(served.state_dir, "sandboxes")
    run_dirs = list(sandboxes.iterdir()) if sandboxes.exists() else []
    return {"containers": len(containers), "run_dirs": len(run_dirs)}


async def measure(quick: bool, clients: int, seconds: float) -> dict[str, Any]:
    served = launcher.start({"pool": {"images": {"python": 4}}, "quota": {"max_sessions": 200}})
    try:
        async with httpx.AsyncClient(base_url=served.url + "/", headers=served.headers, timeout=120) as client:
            await wait_warm(client, 4)
            single = await create_and_exec(client, served, 5 if quick else 30)
            await wait_warm(client, 4)
        concurrent = await load(served, 4 if quick else clients, 5 if quick else seconds)
    finally:
        served.stop()
    concurrent["left_behind"] = leftovers(served)
    served.remove_state()
    return {**single, "concurrent": concurrent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few samples, 4 clients for 5 s (CI checks it runs)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients in the load (default 20)")
    parser.add_argument("--seconds", type=float, default=60, help="length of the load (default 60)")
    parser.add_argument("--out", type=Path, help="where to write the JSON (default bench/results/)")
    options = parser.parse_args()
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count()},
        "quick": options.quick,
        **asyncio.run(measure(options.quick, options.clients, options.seconds)),
    }

    def row(name: str) -> str:
        s = results[name]
        return "%8.2f ms p50  %8.2f ms p99  (n=%d)" % (s["median_ms"], s["p99_ms"], s["n"])

    load_result = results["concurrent"]
    http, direct, dexec = (
        results[k]["median_ms"] for k in ("exec_echo_http", "exec_echo_runner_socket", "exec_echo_docker_exec")
    )
    print_rows(
        [
            ("create, warm (HTTP)", row("create_warm")),
            ("docker run true", row("docker_run_true")),
            ("destroy (HTTP)", row("destroy")),
            ("exec echo hi (HTTP, httpx)", row("exec_echo_http")),
            ("exec echo hi (HTTP, http.client)", row("exec_echo_http_raw_client")),
            ("exec echo hi (runner socket)", row("exec_echo_runner_socket")),
            ("exec echo hi (docker exec)", row("exec_echo_docker_exec")),
            (
                "create vs docker run",
                "%.1fx faster" % (results["docker_run_true"]["median_ms"] / results["create_warm"]["median_ms"]),
            ),
            (
                "HTTP exec vs docker exec",
                "%.1fx faster; HTTP adds %.2f ms to the socket" % (dexec / http, http - direct),
            ),
            (
                "%d clients, %.0f s" % (load_result["clients"], load_result["seconds"]),
                "%d cycles, %.2f/s, %d errors, %d retries after 503"
                % (
                    load_result["cycles"],
                    load_result["cycles_per_s"],
                    load_result["errors"],
                    load_result["retries_after_503"],
                ),
            ),
            ("  cycle create+exec+destroy", "%(median_ms).1f ms p50  %(p99_ms).1f ms p99" % load_result["cycle"]),
            (
                "  create / exec / destroy p99",
                "%.1f / %.1f / %.1f ms" % tuple(load_result[k]["p99_ms"] for k in ("create", "exec", "destroy")),
            ),
            (
                "  left behind",
                "%(containers)d containers, %(run_dirs)d run dirs" % load_result["left_behind"]
                + ", %d sessions" % load_result["sessions_left"],
            ),
            (
                "  server RSS",
                "%.1f MB before, %.1f MB after"
                % (load_result["server_rss_mb_before"], load_result["server_rss_mb_after"]),
            ),
        ]
    )
    write_results("http", results, options.quick, options.out)


if __name__ == "__main__":
    main()
