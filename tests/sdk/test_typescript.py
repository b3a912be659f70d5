"""The TypeScript SDK: its types match the served OpenAPI document, and its tests pass against a real server.

The npm tests (node's own test runner, sdk/typescript/test/) get the server's
address and key from this run's ``sandkasten serve``, and those of a server
that refuses a second cold start with Retry-After (``tight``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from sandkasten_server.launcher import Served

pytestmark = pytest.mark.docker

PACKAGE = Path(__file__).resolve().parents[2] / "sdk" / "typescript"


def npm(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    npm_path = shutil.which("npm")
    if npm_path is None:
        pytest.fail("npm is missing: the TypeScript SDK's tests need Node 18+ and npm")
    return subprocess.run(
        [npm_path, *args], cwd=PACKAGE, capture_output=True, text=True, timeout=timeout, env=env or dict(os.environ)
    )


@pytest.fixture(scope="module")
def installed() -> None:
    result = npm("ci", "--no-audit", "--no-fund")
    assert result.returncode == 0, result.stdout + result.stderr


def test_types_are_generated_from_the_served_spec(installed: None, served: Served, tmp_path: Path) -> None:
    request = urllib.request.Request(served.url + "/openapi.json", headers=served.headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        (tmp_path / "openapi.json").write_text(json.dumps(json.load(response)))
    result = npm("exec", "--", "openapi-typescript", str(tmp_path / "openapi.json"), "-o", str(tmp_path / "schema.ts"))
    assert result.returncode == 0, result.stderr
    committed = (PACKAGE / "src" / "schema.ts").read_text()
    assert (tmp_path / "schema.ts").read_text() == committed, "src/schema.ts is stale: run `npm run generate`"


def test_the_npm_tests_pass_against_a_real_server(installed: None, served: Served, tight: Served) -> None:
    env = dict(
        os.environ,
        SANDKASTEN_URL=served.base_url,
        SANDKASTEN_API_KEY=served.api_key,
        SANDKASTEN_TIGHT_URL=tight.base_url,
        SANDKASTEN_TIGHT_API_KEY=tight.api_key,
    )
    result = npm("test", env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert "# fail 0" in result.stdout and "# pass 20" in result.stdout and "# skipped 0" in result.stdout
