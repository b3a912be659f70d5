"""The benchmarks run (in --quick mode) and write their results; CI checks only that."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("module", ["bench.runtime", "bench.engine", "bench.kernels", "bench.http", "bench.sdk"])
def test_the_benchmark_runs(module: str, tmp_path: Path, docker_client: Any) -> None:
    out = tmp_path / "result.json"
    result = subprocess.run(
        [sys.executable, "-m", module, "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    assert figures["quick"] is True
    assert "wrote %s" % out in result.stdout
