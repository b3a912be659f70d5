"""The example agents in quickstart/agent/ start, explain themselves, say what is missing, and run with
`uv run` from their inline script metadata."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from sandkasten_server.launcher import Served
from tests.conftest import build_wheel

AGENTS = Path(__file__).resolve().parents[2] / "quickstart" / "agent"
SCRIPTS = ["coding_agent.py", "interactive_agent.py", "enhanced_agent.py"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_and_missing_keys(script: str) -> None:
    shown = subprocess.run([sys.executable, str(AGENTS / script), "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "--model" in shown.stdout and "--workspace" in shown.stdout

    env = without_keys()
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
    needed = "SANDKASTEN_API_KEY" if script == "enhanced_agent.py" else "OPENAI_API_KEY and SANDKASTEN_API_KEY"
    assert "set %s first" % needed in refused.stderr and "Traceback" not in refused.stderr


def without_keys() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "SANDKASTEN_API_KEY")}


def test_uv_runs_the_examples_from_their_inline_metadata(served: Served, tmp_path: Path) -> None:
    """`uv run` makes each script's environment from its `# /// script` block (the SDK from this repository,
    found relative to the script, not the working directory); the enhanced agent, without a model's key, is
    a shell in a sandbox that streams each command and keeps a history to list and run again."""
    uv = pytest.importorskip("uv", reason="the examples run with uv: pip install uv").find_uv_bin()
    python = ["--python", sys.executable]
    env = dict(
        without_keys(),
        SANDKASTEN_URL=served.base_url,
        SANDKASTEN_API_KEY=served.api_key,
        XDG_DATA_HOME=str(tmp_path),  # the histories
        UV_PYTHON_DOWNLOADS="never",
    )
    for script in ("coding_agent.py", "interactive_agent.py"):  # their code runs above; here their environments
        synced = subprocess.run([uv, "sync", *python, "--script", str(AGENTS / script)], **in_dir(tmp_path, env))
        assert synced.returncode == 0, synced.stderr

    typed = "cd /workspace && echo hi from $((6*7))\nfalse\n!history\n!1\n!9\n"
    enhanced = [uv, "run", "--quiet", *python, "--script", str(AGENTS / "enhanced_agent.py")]
    shell = subprocess.run(enhanced, input=typed, **in_dir(tmp_path, env))
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.count("hi from 42") == 2 and "exit 1" in shell.stdout, shell.stdout
    assert "no command 9 in the history (1 to 3)" in shell.stdout
    kept = (tmp_path / "sandkasten" / "agent" / "commands.jsonl").read_text().splitlines()
    first = {"command": "cd /workspace && echo hi from $((6*7))", "by": "you", "exit": 0}
    assert [json.loads(line) for line in kept] == [first, {"command": "false", "by": "you", "exit": 1}, first]


def in_dir(cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    """subprocess.run's options for a script run from ``cwd`` (elsewhere than the repository) with ``env``."""
    return {"cwd": cwd, "env": env, "capture_output": True, "text": True, "timeout": 240}


def test_the_sdk_is_its_own_small_typed_distribution(tmp_path: Path) -> None:
    sdk = AGENTS.parents[1] / "sdk" / "python"
    wheel = build_wheel(sdk, tmp_path, "sandkasten-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert {"sandkasten/py.typed", "sandkasten/tools/openai_agents.py", "sandkasten/tools/langchain.py"} <= names
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert [r for r in requires if "extra ==" not in r] == ["Requires-Dist: httpx>=0.25"]  # nothing heavy
