"""A real JupyterHub (PyPI) with its proxy (npm configurable-http-proxy), configured by examples/jupyterhub/.

Sandkasten is the Hub's managed service; two students and an instructor; the
students' servers are local processes whose kernels all go to Sandkasten.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import yaml
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from sandkasten_kernel.engine import LABEL_SESSION, unmount_all_under
from sandkasten_kernel.engine.sandboxes import LABEL_STATE_DIR

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "jupyterhub"
PROXY_PACKAGE = Path(__file__).resolve().parent / "proxy"
STUDENTS = ("alice", "bob")
INSTRUCTOR = "teacher"
KERNEL = "sandkasten-python"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def install_proxy() -> str:
    """configurable-http-proxy from npm (pinned by its lockfile); the path of its command."""
    npm = shutil.which("npm")
    assert npm is not None, "npm is missing: JupyterHub's proxy comes from npm"
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=PROXY_PACKAGE, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return str(PROXY_PACKAGE / "node_modules" / ".bin" / "configurable-http-proxy")


@dataclass
class Hub:
    """A running Hub: its public URL, the admin token, the Sandkasten service's state directory."""

    url: str  # the proxy's public URL (users, the Hub, services)
    admin_token: str
    state_dir: Path
    sandkasten_state: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def call(self, method: str, path: str, token: str | None = None, body: Any = None, timeout: float = 120) -> Any:
        """A JSON call to ``path`` under the Hub's public URL: (status, body)."""
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": "token %s" % (token or self.admin_token), "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                data = response.read()
                return response.status, json.loads(data) if data.strip() else None
        except urllib.error.HTTPError as error:
            data = error.read()
            try:
                return error.code, json.loads(data)
            except ValueError:
                return error.code, data.decode(errors="replace")

    def token(self, user: str) -> str:
        """A Hub API token of ``user`` (with the user's permissions)."""
        if user not in self.tokens:
            status, body = self.call("POST", "/hub/api/users/%s/tokens" % user, body={"note": "tests"})
            assert status in (200, 201), body
            self.tokens[user] = body["token"]
        return self.tokens[user]

    def sandkasten(self, method: str, path: str, user: str, body: Any = None) -> Any:
        """A call to the Sandkasten service's API as ``user``."""
        return self.call(method, "/services/sandkasten/sandkasten/api/" + path, self.token(user), body)

    def start_server(self, user: str, timeout: float = 120) -> None:
        status, body = self.call("POST", "/hub/api/users/%s/server" % user)
        assert status in (201, 202, 400), body  # 400: it runs already
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, model = self.call("GET", "/hub/api/users/%s" % user)
            server = (model.get("servers") or {}).get("")
            if server and server.get("ready"):
                return
            time.sleep(0.5)
        raise AssertionError("%s's server did not start:\n%s" % (user, self.log()[-4000:]))

    def stop_server(self, user: str, timeout: float = 60) -> None:
        self.call("DELETE", "/hub/api/users/%s/server" % user)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, model = self.call("GET", "/hub/api/users/%s" % user)
            if not (model.get("servers") or {}).get(""):
                return
            time.sleep(0.5)
        raise AssertionError("%s's server did not stop" % user)

    def start_kernel(self, user: str) -> str:
        """A kernel from the user's own Jupyter server (which sends it to Sandkasten); its id."""
        status, body = self.call("POST", "/user/%s/api/kernels" % user, self.token(user), {"name": KERNEL})
        assert status == 201, body
        return str(body["id"])

    def run(self, user: str, kernel_id: str, code: str, timeout: float = 60) -> str:
        """Run ``code`` on the kernel over its websocket, as Jupyter's frontends do; its stdout."""
        url = self.url.replace("http", "ws", 1) + "/user/%s/api/kernels/%s/channels" % (user, kernel_id)
        return asyncio.run(_execute(url, self.token(user), code, timeout))


async def _execute(url: str, token: str, code: str, timeout: float) -> str:
    socket_ = await websocket_connect(HTTPRequest(url, headers={"Authorization": "token %s" % token}))
    msg_id = uuid.uuid4().hex
    socket_.write_message(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "msg_type": "execute_request",
                    "username": "",
                    "session": msg_id,
                    "version": "5.3",
                    "date": "",
                },
                "parent_header": {},
                "metadata": {},
                "content": {
                    "code": code,
                    "silent": False,
                    "store_history": False,
                    "user_expressions": {},
                    "allow_stdin": False,
                    "stop_on_error": True,
                },
                "buffers": [],
                "channel": "shell",
            }
        )
    )
    out: list[str] = []
    replied = idle = False

    async def read() -> None:
        nonlocal replied, idle
        while not (replied and idle):
            raw = await socket_.read_message()
            assert raw is not None, "the kernel's websocket closed"
            message = json.loads(raw)
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["header"]["msg_type"], message["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind == "error":
                out.append("%s: %s" % (content["ename"], content["evalue"]))
            elif kind == "execute_reply":
                replied = True
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True

    try:
        await asyncio.wait_for(read(), timeout)
    finally:
        socket_.close()
    return "".join(out)


def start_hub(state_dir: Path, sandkasten: dict[str, Any], students: tuple[str, ...] = STUDENTS) -> Hub:
    """JupyterHub from examples/jupyterhub on free ports, with ``sandkasten`` (sandkasten.yaml) as its service's."""
    proxy = install_proxy()
    hub_port, service_port = free_port(), free_port()
    admin_token = secrets.token_hex(16)
    sandkasten_state = state_dir / "sandkasten"
    config = dict(sandkasten, state_dir=str(sandkasten_state))
    (state_dir / "sandkasten.yaml").write_text(yaml.safe_dump(config))
    environment = dict(
        os.environ,
        HUB_BIND_URL="http://127.0.0.1:%d" % hub_port,
        HUB_INTERNAL_URL="http://127.0.0.1:%d" % free_port(),
        HUB_PROXY_API_URL="http://127.0.0.1:%d" % free_port(),
        HUB_PROXY_COMMAND=proxy,
        HUB_STATE_DIR=str(state_dir),
        HUB_ADMIN_TOKEN=admin_token,
        HUB_STUDENTS=",".join(students),
        HUB_INSTRUCTORS=INSTRUCTOR,
        SANDKASTEN_CONFIG=str(state_dir / "sandkasten.yaml"),
        SANDKASTEN_SERVICE_URL="http://127.0.0.1:%d" % service_port,
        SANDKASTEN_GATEWAY_URL="http://127.0.0.1:%d/services/sandkasten/" % service_port,
    )
    log_path = state_dir / "jupyterhub.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(EXAMPLE / "jupyterhub_config.py")],
            cwd=state_dir,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    hub = Hub("http://127.0.0.1:%d" % hub_port, admin_token, state_dir, sandkasten_state, process, log_path)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, "jupyterhub exited:\n%s" % hub.log()[-4000:]
        try:
            if hub.call("GET", "/services/sandkasten/sandkasten/api/health", timeout=5)[0] == 200:
                return hub
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    stop_hub(hub)
    raise AssertionError("JupyterHub or its Sandkasten service did not come up:\n%s" % hub.log()[-6000:])


def stop_hub(hub: Hub) -> None:
    """Stop every server, then the Hub (which stops its Sandkasten service)."""
    for user in (*STUDENTS, INSTRUCTOR):
        if hub.process.poll() is None:
            with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
                hub.call("DELETE", "/hub/api/users/%s/server" % user, timeout=30)
    hub.process.terminate()
    try:
        hub.process.wait(60)
    except subprocess.TimeoutExpired:
        hub.process.kill()
        hub.process.wait(10)


def remove_leftovers(hub: Hub) -> None:
    """What a stopped Hub's Sandkasten leaves by design (sessions outlive its restarts): its sandboxes,
    their mounts, and the students' workspaces."""
    client = docker.from_env()
    state = str(hub.sandkasten_state)
    for container in client.containers.list(all=True, filters={"label": LABEL_SESSION}, ignore_removed=True):
        if any(m.get("Source", "").startswith(state) for m in container.attrs["Mounts"] or []):
            container.remove(force=True)
    unmount_all_under(state)
    for volume in client.volumes.list(filters={"label": "%s=%s" % (LABEL_STATE_DIR, state)}):
        volume.remove(force=True)
