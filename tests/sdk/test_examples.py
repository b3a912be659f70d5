"""The example agents in quickstart/agent/ start, explain themselves, and say what is missing."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import build_wheel

AGENTS = Path(__file__).resolve().parents[2] / "quickstart" / "agent"
SCRIPTS = ["coding_agent.py", "interactive_agent.py", "enhanced_agent.py"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_and_missing_keys(script: str) -> None:
    shown = subprocess.run([sys.executable, str(AGENTS / script), "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "--model" in shown.stdout and "--workspace" in shown.stdout

    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "SANDKASTEN_API_KEY")}
    args = ["print 1"] if script == "coding_agent.py" else []
    refused = subprocess.run(
        [sys.executable, str(AGENTS / script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert refused.returncode == 1
    assert "set OPENAI_API_KEY and SANDKASTEN_API_KEY first" in refused.stderr and "Traceback" not in refused.stderr


def test_the_sdk_is_its_own_small_typed_distribution(tmp_path: Path) -> None:
    sdk = AGENTS.parents[1] / "sdk" / "python"
    wheel = build_wheel(sdk, tmp_path, "sandkasten-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert {"sandkasten/py.typed", "sandkasten/tools/openai_agents.py", "sandkasten/tools/langchain.py"} <= names
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert [r for r in requires if "extra ==" not in r] == ["Requires-Dist: httpx>=0.25"]  # nothing heavy
