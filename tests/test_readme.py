"""The quickstarts run as written: the docs' curl and Python ones against a real `sandkasten serve`, and the
engine example; the README's pitch is the Python SDK's (which tests/sdk/test_client.py runs)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sandkasten_server.launcher import Served

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "docs" / "quickstart.md"
CONCEPTS = ROOT / "docs" / "concepts.md"


def blocks(page: Path, language: str) -> list[str]:
    found = re.findall(r"```%s\n(.*?)```" % language, page.read_text(), flags=re.S)
    assert found, "%s has no %s example" % (page.name, language)
    return found


def pitch(page: Path) -> str:
    (snippet,) = re.findall(r"<!-- pitch -->\n```python\n(.*?)```", page.read_text(), flags=re.S)
    return str(snippet)


def against(served: Served) -> dict[str, str]:
    return dict(os.environ, SANDKASTEN_URL=served.base_url, SANDKASTEN_API_KEY=served.api_key)


def test_the_curl_quickstart_runs(served: Served) -> None:
    (script,) = [block for block in blocks(QUICKSTART, "bash") if "SANDKASTEN_API_KEY=<" in block]
    kept = [line for line in script.splitlines() if not line.startswith("export SANDKASTEN_URL")]  # ours, not those
    script = "set -e\n" + "\n".join(kept)
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120, env=against(served))
    assert result.returncode == 0, result.stderr
    assert '"output": "Hello from sandbox!\\n"' in result.stdout
    assert '{"type": "output", "data": "3\\n"}' in result.stdout
    assert '"text/plain": "(3, 11)"' in result.stdout


def test_the_python_quickstart_runs(served: Served) -> None:
    code = blocks(QUICKSTART, "python")[0]
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=against(served)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["Hello from sandbox!", "/tmp", "hi", "1", "2", "3", "42"]


@pytest.mark.docker
def test_the_engine_example_runs(docker_client: Any) -> None:
    (code,) = [block for block in blocks(CONCEPTS, "python") if "from sandkasten_kernel.engine import" in block]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Hello from sandbox!"
    assert lines.count("1") == 1 and "3" in lines


def test_the_readme_pitches_the_sdk_snippet_that_runs() -> None:
    assert pitch(ROOT / "README.md") == pitch(ROOT / "sdk" / "python" / "README.md")
