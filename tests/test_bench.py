"""The benchmarks run (in --quick mode) and write their results; CI checks only that."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.targets import TARGETS

ROOT = Path(__file__).resolve().parents[1]


def run_quick(module: str, out: Path) -> dict[str, Any]:
    """``python -m <module> --quick --out <out>``, which must succeed; the figures it wrote."""
    result = subprocess.run(
        [sys.executable, "-m", module, "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    assert "wrote %s" % out in result.stdout
    figures: dict[str, Any] = json.loads(out.read_text())
    assert figures["quick"] is True
    return figures


def test_the_boundary_benchmark_runs(tmp_path: Path, docker_client: Any) -> None:
    """``python -m bench.boundary --quick``, the one benchmark outside the suite (hostile input, vs idle)."""
    run_quick("bench.boundary", tmp_path / "result.json")


FIGURES = [
    "kernel_start",
    "first_exec",
    "exec_round_trip",
    "kernel_execute",
    "density",
    "concurrency",
    "file_transfer",
    "sessions",
    "image_build",
    "custom_image_build",
    "client_kernels",
    "bursts",
    "egress",
    "e2b",
]
NOTHING_LEFT = {"sessions": 0, "containers": 0, "run_dirs": 0}


def test_the_suite_runs_every_figure_and_plots_it(tmp_path: Path, docker_client: Any) -> None:
    """``python -m bench --quick``: every figure with its baselines, the targets, one PNG per figure."""
    figures = run_quick("bench", tmp_path / "suite.json")
    assert figures["machine"]["cpus"]
    assert set(FIGURES) <= set(figures)
    assert set(figures["kernel_start"]) >= {
        "sandkasten_warm",
        "sandkasten_cold",
        "local_ipykernel",
        "gateway_docker_provisioner",
    }
    assert set(figures["first_exec"]) >= {"sandkasten_warm", "sandkasten_cold", "llm_sandbox", "docker_run_exec"}
    for output in ("true", "1MB_output"):
        paths = figures["exec_round_trip"][output]
        assert set(paths) >= {"sandkasten_sdk", "sandkasten_sdk_sync", "runner_socket", "docker_exec", "llm_sandbox"}
    assert figures["density"]["idle_memory"]["median_mb"] > 0
    assert figures["density"]["sessions"]["left_behind"] == NOTHING_LEFT
    assert figures["concurrency"]["levels"][-1]["sessions_left"] == 0
    assert figures["concurrency"]["left_behind"] == NOTHING_LEFT
    assert set(figures["sessions"]) >= {"create_warm", "create_cold", "create_named_workspace", "destroy"}
    burst = figures["bursts"][str(figures["bursts"]["sizes"][0])]
    assert set(burst) == {"sandkasten_first", "sandkasten_repeat", "llm_sandbox", "docker_run_exec"}
    egress = figures["egress"]
    for scheme in ("http", "https") if "https_skipped" not in egress else ("http",):
        assert set(egress[scheme]) >= {"proxy", "direct_name", "direct_address", "added"}
    assert figures["image_build"]["current_built"] == []
    added = figures["custom_image_build"]
    assert added["dockerfile"]["state"] == added["from"]["state"] == "current"
    assert added["dockerfile"]["repeated"]["median_ms"] < 1000 * added["dockerfile"]["first_s"]
    assert set(figures["client_kernels"]) >= {
        "agent_warm",
        "agent_local_ipykernel",
        "agent_cold_no_server",
        "gateway_warm",
        "gateway_cold",
        "jupyter_server_local_ipykernel",
    }
    assert [t["met"] in (True, False) for t in figures["targets"]] == [True] * len(TARGETS)
    for name in FIGURES:
        assert (tmp_path / ("suite-%s.png" % name.replace("_", "-"))).stat().st_size > 10_000


def test_the_recorded_run_still_renders(tmp_path: Path) -> None:
    """The benchmarks page's table and plots come from a run's JSON; a run from before figures 8 and 9 still renders."""
    from bench.markdown import table
    from bench.plots import plot_all

    recorded = json.loads((ROOT / "bench" / "results" / "2026-11-27.json").read_text())
    assert "| Sandkasten provisioner, warm pool | 85.6 / 245 ms |  |" in table(recorded)
    assert len(plot_all(recorded, tmp_path / "recorded")) == 7


def test_the_bridge_gateway_is_found_without_a_gateway_in_its_ipam_config(docker_client: Any) -> None:
    """A fresh dockerd may report the default bridge as ``[{"Subnet": ...}]`` with no ``Gateway``:
    the lookup falls back to the bridge interface's own address (#14)."""
    from bench.baselines.gateway import bridge_gateway, network_gateway

    attrs = docker_client.networks.get("bridge").attrs
    interface = attrs["Options"]["com.docker.network.bridge.name"]
    shown = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", interface], capture_output=True, text=True)
    address = shown.stdout.split()[3].split("/")[0]  # "5: docker0 inet 172.17.0.1/16 ..."
    assert bridge_gateway(docker_client) == address
    without_gateway = dict(attrs, IPAM={"Config": [{"Subnet": c["Subnet"]} for c in attrs["IPAM"]["Config"]]})
    assert network_gateway(without_gateway) == address


def test_a_network_with_no_gateway_at_all_is_a_clear_error(docker_client: Any) -> None:
    from bench.baselines.gateway import network_gateway

    with pytest.raises(RuntimeError, match="cannot find the gateway of Docker network 'none': looked at"):
        network_gateway(docker_client.networks.get("none").attrs)
