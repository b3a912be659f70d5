"""Run ``sandkasten serve`` in a subprocess and wait until it is healthy.

For tests, benchmarks and SDK test suites that need a real server: it writes a
sandkasten.yaml in a short temp dir (socket paths must fit 107 bytes), picks a
free port, starts the server, and on ``stop`` destroys every session left and
ends the server with SIGTERM, as an operator would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import yaml

from sandkasten_kernel.engine import unmount_all_under
from sandkasten_kernel.engine.egress_gateway import egress_dir

LOG_TAIL_CHARS = 8000  # of the server's log, in an error about it


@dataclass
class Served:
    url: str  # the API root: http://127.0.0.1:<port>/sandkasten/api
    api_key: str
    config_path: str
    state_dir: str
    log_path: str
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def base_url(self) -> str:
        """The server root (what the SDKs take as base_url)."""
        return self.url.removesuffix("/sandkasten/api")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": "token %s" % self.api_key}

    def call(self, method: str, path: str, timeout: float = 60.0) -> Any:
        """One JSON call to the API (``path`` relative to it); raises ``urllib.error.HTTPError`` on failure."""
        request = urllib.request.Request(self.url + "/" + path, method=method, headers=self.headers)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def wait_warm(self, image: str = "sandkasten/runtime:python", count: int = 1, timeout: float = 300.0) -> None:
        """Wait until the pool holds ``count`` ready sandboxes of ``image`` (a reference, as the pool reports)."""
        deadline = time.monotonic() + timeout
        while self.call("GET", "pool")["images"].get(image, {}).get("ready", 0) < count:
            if time.monotonic() > deadline:
                raise TimeoutError("the pool did not reach %d ready %s in %.0f s" % (count, image, timeout))
            time.sleep(0.05)

    def rss_mb(self) -> float:
        """The server process's resident memory, MiB (read from /proc)."""
        with open("/proc/%d/status" % self.process.pid) as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS for pid %d" % self.process.pid)

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self, timeout: float = 30.0) -> None:
        """Destroy the sessions left, then SIGTERM the server (the warm pool goes with it).

        A session the server fails to destroy is reported after the server has
        ended, with the end of its log.
        """
        if self.process.poll() is not None:
            return
        failures = []
        for session in self.call("GET", "sessions")["sessions"]:
            try:
                self.call("DELETE", "sessions/" + session["id"])
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    failures.append("DELETE sessions/%s answered %d" % (session["id"], exc.code))
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if failures:
            raise RuntimeError("%s; the server's log ends:\n%s" % ("; ".join(failures), self.log()[-LOG_TAIL_CHARS:]))

    def remove_state(self) -> None:
        base = os.path.dirname(self.config_path)
        unmount_all_under(base)  # run directories a killed server left mounted
        shutil.rmtree(base, ignore_errors=True)
        _end_egress_proxy(egress_dir(self.state_dir))


def _end_egress_proxy(folder: str) -> None:
    """The egress proxy outlives a server that ended with sessions left, and keeps its files outside the
    state directory: end it by its pid (if that is still a squid), then remove its files."""
    with contextlib.suppress(OSError, ValueError):
        with open(os.path.join(folder, "run", "squid.pid"), encoding="ascii") as f:
            pid = int(f.read().strip())
        with open("/proc/%d/comm" % pid, encoding="ascii") as f:
            if f.read().strip() == "squid":
                os.kill(pid, signal.SIGTERM)
    shutil.rmtree(folder, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start(config: dict[str, Any] | None = None, timeout: float = 120.0, host: str = "127.0.0.1") -> Served:
    """Start a server with ``config`` (sandkasten.yaml keys) over a private state dir and port.

    It listens on ``host`` (0.0.0.0: every address) and is called on loopback.
    """
    base = tempfile.mkdtemp(prefix="sks-", dir="/tmp")
    port = free_port()
    settings: dict[str, Any] = {
        "listen": "%s:%d" % (host, port),
        "api_key": "key-%s" % os.urandom(8).hex(),
        "state_dir": os.path.join(base, "state"),
    }
    settings.update(config or {})
    config_path = os.path.join(base, "sandkasten.yaml")
    with open(config_path, "w", encoding="utf-8") as f:
        yaml.safe_dump(settings, f)
    served = Served(
        "http://127.0.0.1:%d/sandkasten/api" % port,
        settings["api_key"],
        config_path,
        settings["state_dir"],
        os.path.join(base, "serve.log"),
        _launch(config_path, os.path.join(base, "serve.log")),
    )
    return _wait_healthy(served, timeout)


def restart(served: Served, timeout: float = 120.0) -> Served:
    """A new server on ``served``'s config, port and state (the old process must have ended)."""
    if served.process.poll() is None:
        raise RuntimeError("the server is still running (pid %d)" % served.process.pid)
    process = _launch(served.config_path, served.log_path)
    return _wait_healthy(dataclasses.replace(served, process=process), timeout)


def _launch(config_path: str, log_path: str) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "sandkasten_server.cli", "serve", "--config", config_path, "--no-build"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _wait_healthy(served: Served, timeout: float) -> Served:
    process = served.process
    deadline = time.monotonic() + timeout
    while True:
        try:
            if served.call("GET", "health", timeout=5)["status"] == "ok":
                return served
        except (OSError, ValueError):
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("sandkasten serve did not come up:\n" + served.log()[-3000:])
        time.sleep(0.2)
