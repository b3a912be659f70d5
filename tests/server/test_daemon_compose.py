"""quickstart/daemon: the server in a container, as `docker-compose up -d` runs it.

The image is built by quickstart/daemon/build.py (seconds when current), the
stack comes up over a state directory and port of the test's own (the compose
file takes both from the environment), and the SDK's pitch runs against it.
A `docker-compose down` and `up` later (with an API key from the
environment this time), a session keeps its shell and its named workspace.
The stack, and everything it made, goes in the end.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandkasten import SyncSandboxClient
from sandkasten_kernel.engine import LABEL_SESSION, unmount_all_under
from sandkasten_kernel.engine.sandbox_network import EgressPolicy, remove_sandbox_network
from sandkasten_server.launcher import free_port
from tests.conftest import short_tempdir
from tests.server.test_serve import healthy

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]  # a cold image build takes a minute or two

ROOT = Path(__file__).resolve().parents[2]
DAEMON = ROOT / "quickstart" / "daemon"
SDK_README = ROOT / "sdk" / "python" / "README.md"
DENIED = "192.0.2.%d/32" % secrets.randbelow(256)  # TEST-NET-1: egress lists of the test's own, so a bridge of its own


@dataclass
class Stack:
    """One docker-compose project of quickstart/daemon, on a state directory and port of its own."""

    state_dir: str
    port: int
    project: str = field(default_factory=lambda: "skd" + secrets.token_hex(4))
    env_key: str = ""  # SANDKASTEN_API_KEY; empty: the daemon makes one
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.port

    def config(self) -> dict[str, Any]:
        with open(os.path.join(self.state_dir, "sandkasten.yaml"), encoding="utf-8") as f:
            settings: dict[str, Any] = yaml.safe_load(f)
        return settings

    @property
    def api_key(self) -> str:
        key: str = self.config()["api_key"]
        return key

    def key_written(self) -> bool:
        """Whether the daemon has written this start's key (it does as it starts)."""
        key = self.config().get("api_key")
        return bool(key) and (not self.env_key or key == self.env_key)

    def compose(self, *args: str) -> str:
        env = dict(os.environ, SANDKASTEN_STATE_DIR=self.state_dir, SANDKASTEN_LISTEN="127.0.0.1:%d" % self.port)
        env["SANDKASTEN_API_KEY"] = self.env_key
        command = ["docker-compose", "-f", str(DAEMON / "docker-compose.yml"), "-p", self.project, *args]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def up(self, what: str) -> None:
        started = time.monotonic()
        self.compose("up", "-d")
        deadline = time.monotonic() + 60
        while not self.key_written() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not healthy(self.port, self.config().get("api_key") or ""):
            pytest.fail("the daemon did not come up:\n" + self.compose("logs", "--no-color")[-4000:])
        self.timings[what] = time.monotonic() - started

    def down(self, what: str) -> None:
        started = time.monotonic()
        self.compose("down", "--remove-orphans")
        self.timings[what] = time.monotonic() - started

    def get(self, path: str) -> str:
        request = urllib.request.Request(self.url + path, headers={"Authorization": "token " + self.api_key})
        with urllib.request.urlopen(request, timeout=30) as response:
            body: bytes = response.read()
        return body.decode()


def shared_state_dir() -> str:
    """A short state directory on a mount of its own with shared propagation (the compose file mounts it
    rshared; on hosts whose / is shared, as systemd makes it, it already is)."""
    state_dir = short_tempdir()
    subprocess.run(["mount", "--bind", state_dir, state_dir], check=True)
    subprocess.run(["mount", "--make-shared", state_dir], check=True)
    return state_dir


@pytest.fixture
def stack(docker_client: Any) -> Iterator[Stack]:
    if shutil.which("docker-compose") is None:
        pytest.fail("this test needs docker-compose (apt-get install docker-compose)")
    started = time.monotonic()
    subprocess.run(
        [sys.executable, str(DAEMON / "build.py")], env=dict(os.environ, SANDKASTEN_VENV=sys.prefix), check=True
    )
    build_s = time.monotonic() - started
    stack = Stack(shared_state_dir(), free_port(), timings={"build": build_s})
    # A config of the test's own before the first start: the daemon keeps it and sets only its own keys.
    settings = {"pool": {"images": {"python": 1}}, "security": {"allow_network": True, "egress_deny": [DENIED]}}
    with open(os.path.join(stack.state_dir, "sandkasten.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(settings, f)
    try:
        yield stack
    finally:
        stack.compose("down", "--remove-orphans")
        for container in docker_client.containers.list(
            all=True, filters={"label": "sandkasten.state_dir=" + stack.state_dir}
        ):
            container.remove(force=True)
        remove_sandbox_network(docker_client, EgressPolicy.of(deny=[DENIED]))
        unmount_all_under(stack.state_dir)
        subprocess.run(["umount", "-l", stack.state_dir], check=False)
        shutil.rmtree(stack.state_dir, ignore_errors=True)
        print("daemon timings: " + ", ".join("%s %.1f s" % item for item in stack.timings.items()))


def run_pitch(stack: Stack) -> str:
    """The SDK README's pitch, with the client taking the server and key from the environment."""
    (snippet,) = re.findall(r"<!-- pitch -->\n```python\n(.*?)```", SDK_README.read_text(), flags=re.S)
    snippet = snippet.replace('SandboxClient(base_url="...", api_key="...")', "SandboxClient()")
    body = "".join("    " + line + "\n" for line in snippet.splitlines())
    program = "import asyncio\n\nasync def main():\n%s\nasyncio.run(main())\n" % body
    env = dict(os.environ, SANDKASTEN_URL=stack.url, SANDKASTEN_API_KEY=stack.api_key)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_daemon_serves_the_pitch_and_keeps_sessions_over_down_and_up(stack: Stack, docker_client: Any) -> None:
    stack.up("up to a healthy API")
    logs = stack.compose("logs", "--no-color")
    assert stack.api_key in logs  # generated on the first start, shown in the logs
    assert stack.config()["pool"] == {"images": {"python": 1}}  # the operator's keys stay
    assert '"name": "@sandkasten/labextension"' in stack.get("/lab")  # JupyterLab, with the dashboard in it

    started = time.monotonic()
    assert run_pitch(stack) == "Hello from sandbox!\n\n"
    stack.timings["pitch"] = time.monotonic() - started

    workspace = "daemon-" + secrets.token_hex(3)
    with SyncSandboxClient(stack.url, stack.api_key) as client:
        # Sandboxes with network are filtered by the host's iptables, not the container's.
        online = client.create_session(network=True)
        assert online.exec("echo online").output == "online\n"
        online.destroy()
        chain = "SANDKASTEN-FWD-" + EgressPolicy.of(deny=[DENIED]).bridge
        rules = subprocess.run(["iptables", "-S", chain], capture_output=True, text=True, check=True).stdout
        assert "-d %s -j DROP" % DENIED in rules

        session = client.create_session(workspace=workspace)
        session.exec("export GREETING=kept && echo on-disk > /workspace/note")
        stack.down("down")
        (container,) = docker_client.containers.list(filters={"label": "%s=%s" % (LABEL_SESSION, session.id)})
        assert container.status == "running"  # down stops the server, not the sessions
        stack.env_key = "key-" + secrets.token_hex(8)
        stack.up("up again")
        assert stack.api_key == stack.env_key  # the key from the environment replaces the generated one

    with SyncSandboxClient(stack.url, stack.api_key) as client:
        session = client.get_session(session.id)
        assert session.exec("echo $GREETING; cat /workspace/note").output == "kept\non-disk\n"
        session.destroy()
        assert [info.name for info in client.workspaces.list()] == [workspace]
        client.workspaces.delete(workspace)
