"""The README's quickstarts run as written: curl and Python against a real `sandkasten serve`, and the engine."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sandkasten_server.launcher import Served

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(language: str) -> list[str]:
    found = re.findall(r"```%s\n(.*?)```" % language, README.read_text(), flags=re.S)
    assert found, "README.md has no %s example" % language
    return found


def against(served: Served) -> dict[str, str]:
    return dict(os.environ, SANDKASTEN_URL=served.base_url, SANDKASTEN_API_KEY=served.api_key)


def test_the_curl_quickstart_runs(served: Served) -> None:
    (script,) = [block for block in blocks("bash") if "SANDKASTEN_API_KEY=<" in block]
    kept = [line for line in script.splitlines() if not line.startswith("export SANDKASTEN_URL")]  # ours, not those
    script = "set -e\n" + "\n".join(kept)
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120, env=against(served))
    assert result.returncode == 0, result.stderr
    assert '"output": "Hello from sandbox!\\n"' in result.stdout
    assert '{"type": "output", "data": "3\\n"}' in result.stdout
    assert '"text/plain": "(3, 11)"' in result.stdout


def test_the_python_quickstart_runs(served: Served) -> None:
    code = blocks("python")[0]
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=against(served)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["Hello from sandbox!", "/tmp", "hi", "1", "2", "3", "42"]


@pytest.mark.docker
def test_the_engine_example_runs(docker_client: Any) -> None:
    code = blocks("python")[1]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Hello from sandbox!"
    assert lines.count("1") == 1 and "3" in lines
