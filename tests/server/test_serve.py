"""``sandkasten serve`` as a user runs it: the embedded default on first start, and a bad config."""

from __future__ import annotations

import http.client
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from sandkasten_server.launcher import Served, free_port
from tests.conftest import short_tempdir

pytestmark = pytest.mark.docker


def serve(home: str, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "SANDKASTEN_CONFIG"}
    env["XDG_DATA_HOME"] = home
    return subprocess.Popen(
        [sys.executable, "-m", "sandkasten_server.cli", "serve", "--no-build", *args],
        cwd=home,  # no ./sandkasten.yaml here
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def healthy(port: int, key: str) -> bool:
    request = urllib.request.Request(
        "http://127.0.0.1:%d/sandkasten/api/health" % port, headers={"Authorization": "token " + key}
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return bool(response.status == 200)
        except urllib.error.HTTPError as exc:
            if exc.code != 503:  # 503: up, still reconciling with Docker
                return False
            time.sleep(0.2)
        except OSError:
            time.sleep(0.2)
    return False


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    return output


def test_first_start_makes_a_config_and_prints_the_key_once(docker_client: object) -> None:
    home = short_tempdir()
    try:
        port = free_port()
        first = serve(home, "--", "--ServerApp.port=%d" % port)  # the embedded default is 8080; keep CI's free
        config = Path(home, "sandkasten", "sandkasten.yaml")
        deadline = time.monotonic() + 30
        while not config.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        settings = yaml.safe_load(config.read_text())
        assert settings["listen"] == "127.0.0.1:8080" and len(settings["api_key"]) >= 32
        assert settings["state_dir"] == os.path.join(home, "sandkasten", "state")
        assert stat.S_IMODE(config.stat().st_mode) == 0o600  # it holds the key
        assert healthy(port, settings["api_key"])
        assert settings["api_key"] in stop(first)

        second = serve(home, "--", "--ServerApp.port=%d" % port)
        assert healthy(port, settings["api_key"])  # the same key, from the same file
        # The root URL opens JupyterLab with the dashboard's panel (tests/labextension follows it in Chromium).
        root = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        root.request("GET", "/")
        answer = root.getresponse()
        assert answer.status == 302 and answer.getheader("Location", "").startswith("/lab?sandkasten=dashboard")
        second_output = stop(second)
        assert settings["api_key"] not in second_output
        assert "dashboard  http://127.0.0.1:%d/ (JupyterLab" % port in second_output  # on every start

        third = serve(home, "--show-token", "--", "--ServerApp.port=%d" % port)
        assert healthy(port, settings["api_key"])
        assert "dashboard  http://127.0.0.1:%d/?token=%s\n" % (port, settings["api_key"]) in stop(third)
    finally:
        subprocess.run(["rm", "-rf", home], check=False)


def test_a_bad_config_is_named_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "sandkasten.yaml"
    bad.write_text("pool:\n  images: {python: -1}\n")
    process = serve(str(tmp_path), "--config", str(bad))
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "pool.images" in output and str(bad) in output and "Traceback" not in output


def test_only_our_server_extensions_run(served: Served) -> None:
    """Other extensions the environment enables (nbgrader's formgrader, a language server proxy) stay off:
    the API key opens sandboxes, not the host."""
    for path in ("/formgrader", "/lsp/status", "/tree", "/terminals/websocket/1"):
        request = urllib.request.Request(served.base_url + path, headers=served.headers)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 404, path
