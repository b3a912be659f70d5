"""Figure 10: kernel start for Jupyter clients outside the server, each next to a local ipykernel on the same path.

- an agent's own process (``AsyncKernelManager``, start to the ``kernel_info``
  reply) with ``sandkasten serve`` running: its warm pool, over the API; the
  same process type with no server answering (the cold fallback); and a local
  ipykernel from such a process;
- a Jupyter Server pointed at ``sandkasten serve`` with ``--gateway-url`` (a
  laptop's JupyterLab): ``POST /api/kernels``, the kernel's websocket, and the
  ``kernel_info`` reply through it, warm and with an empty pool; next to the
  same calls on a plain Jupyter Server with a local ipykernel.

The agent is a real separate process (``python -m bench.figures.client_kernels``)
that starts one kernel per line on its stdin and prints the milliseconds;
between starts the pool is let refill.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from bench.context import POOL_SIZE, Run
from bench.helpers import install_kernelspec, start_to_kernel_info, stop_kernel
from bench.report import speedup, summary
from sandkasten_kernel.kernelspecs import kernel_name
from sandkasten_server.launcher import free_port

SERVER_TOKEN = "bench-%s" % uuid.uuid4().hex


class AgentProcess:
    """This module run as an agent script, with ``config`` as its sandkasten.yaml."""

    def __init__(self, config: str, jupyter_path: str) -> None:
        env = {**os.environ, "SANDKASTEN_CONFIG": config, "JUPYTER_PATH": jupyter_path}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.figures.client_kernels"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def start(self, name: str) -> float:
        """One kernel of kernelspec ``name`` started to its kernel_info reply, then shut down; milliseconds."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(name + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the agent process ended (exit %s)" % self.process.wait(30))
        return float(line)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(120)


async def agent_starts(run: Run, agent: AgentProcess, name: str, n: int, warm: bool = True) -> list[float]:
    samples = []
    for _ in range(n + 1):  # the first is untimed: imports, caches
        if warm:
            await run.pool_ready()
        samples.append(await asyncio.to_thread(agent.start, name))
    return samples[1:]


@contextlib.contextmanager
def jupyter_server(*options: str) -> Iterator[str]:
    """A plain Jupyter Server subprocess with ``options``; its URL."""
    port = free_port()
    root = tempfile.mkdtemp(prefix="sk-bench-js-")
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "jupyter_server", "--port=%d" % port, "--ip=127.0.0.1", "--no-browser"),
            *("--allow-root", "--IdentityProvider.token=%s" % SERVER_TOKEN, "--ServerApp.root_dir=%s" % root),
            *options,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = "http://127.0.0.1:%d" % port
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/api/status", headers=_headers(), timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the Jupyter Server on port %d did not start" % port)
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(30)


def _headers() -> dict[str, str]:
    return {"Authorization": "token %s" % SERVER_TOKEN}


async def server_start(http: httpx.AsyncClient, url: str, name: str) -> float:
    """``POST /api/kernels``, the kernel's websocket and its kernel_info reply, as JupyterLab opens a kernel;
    milliseconds. The kernel is shut down afterwards (untimed)."""
    started = time.perf_counter()
    kernel_id = (await http.post(url + "/api/kernels", json={"name": name})).json()["id"]
    socket_url = url.replace("http", "ws", 1) + "/api/kernels/%s/channels" % kernel_id
    socket = await websocket_connect(HTTPRequest(socket_url, headers=_headers()))
    try:
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "msg_type": "kernel_info_request", "session": msg_id, "username": ""}
        request = {"header": {**header, "date": "", "version": "5.3"}, "parent_header": {}, "metadata": {}}
        await socket.write_message(json.dumps({**request, "content": {}, "channel": "shell", "buffers": []}))
        while True:
            text = await socket.read_message()
            if text is None:
                raise RuntimeError("the kernel's websocket closed before its kernel_info reply")
            message = json.loads(text)
            if message.get("parent_header", {}).get("msg_id") == msg_id and message["msg_type"] == "kernel_info_reply":
                break
    finally:
        socket.close()
    elapsed = (time.perf_counter() - started) * 1000
    await http.delete(url + "/api/kernels/%s" % kernel_id)
    return elapsed


async def server_starts(run: Run, url: str, name: str, n: int, warm: bool = True) -> list[float]:
    samples = []
    async with httpx.AsyncClient(headers=_headers(), timeout=180) as http:
        for _ in range(n + 1):
            if warm:
                await run.pool_ready()
            samples.append(await server_start(http, url, name))
    return samples[1:]


@contextlib.asynccontextmanager
async def empty_pool(run: Run) -> AsyncIterator[None]:
    await run.resize_pool(0)
    try:
        yield
    finally:
        await run.resize_pool(POOL_SIZE)


async def measure(run: Run) -> dict[str, Any]:
    sizes, served = run.sizes, run.served
    n, cold_n = sizes.kernel_starts, sizes.cold_kernel_starts
    with tempfile.TemporaryDirectory(prefix="sk-bench-clients-") as scratch:
        jupyter = Path(scratch) / "jupyter"
        install_kernelspec(jupyter)
        settings = yaml.safe_load(Path(served.config_path).read_text())
        # The cold fallback: a configuration whose server does not answer, with a state directory of its own.
        no_server = Path(scratch) / "no-server.yaml"
        lone_state = {"state_dir": str(Path(scratch) / "state"), "listen": "127.0.0.1:%d" % free_port()}
        no_server.write_text(yaml.safe_dump({**settings, **lone_state}))
        agent, lone = AgentProcess(served.config_path, str(jupyter)), AgentProcess(str(no_server), str(jupyter))
        try:
            figures: dict[str, Any] = {
                "agent_warm": summary(await agent_starts(run, agent, kernel_name("python"), n)),
                "agent_local_ipykernel": summary(await agent_starts(run, agent, "python3", n)),
                "agent_cold_no_server": summary(await agent_starts(run, lone, kernel_name("python"), cold_n)),
            }
        finally:
            agent.close()
            lone.close()
        with jupyter_server(
            "--gateway-url=%s" % served.base_url, "--GatewayClient.auth_token=%s" % served.api_key
        ) as gw:
            figures["gateway_warm"] = summary(await server_starts(run, gw, kernel_name("python"), n))
            async with empty_pool(run):
                figures["gateway_cold"] = summary(await server_starts(run, gw, kernel_name("python"), cold_n, False))
        with jupyter_server() as plain:
            figures["jupyter_server_local_ipykernel"] = summary(await server_starts(run, plain, "python3", n))
    figures["speedup"] = {
        "agent_warm_vs_local_ipykernel": speedup(figures["agent_local_ipykernel"], figures["agent_warm"]),
        "gateway_warm_vs_local_ipykernel": speedup(figures["jupyter_server_local_ipykernel"], figures["gateway_warm"]),
    }
    return figures


def agent_main() -> None:
    """The agent process: one kernel start per kernelspec name on stdin, milliseconds on stdout."""

    async def serve() -> None:
        for line in sys.stdin:
            ms, manager, client = await start_to_kernel_info(line.strip())
            await stop_kernel(manager, client)
            print("%.3f" % ms, flush=True)

    asyncio.run(serve())


if __name__ == "__main__":
    agent_main()
