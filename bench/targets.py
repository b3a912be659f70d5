"""The targets (issue 9's, session create's, issue 20's, egress's), each checked against a run: met or missed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    name: str
    wanted: str
    value: Callable[[dict[str, Any]], float]  # from the run's figures
    met: Callable[[float], bool]
    unit: str


def _most_agents(figures: dict[str, Any]) -> dict[str, Any]:
    return max(figures["concurrency"]["levels"], key=lambda level: level["agents"])


def _burst(figures: dict[str, Any]) -> dict[str, Any]:
    """The 20-client burst (in a --quick run, the smallest there is)."""
    bursts = figures["bursts"]
    level: dict[str, Any] = bursts.get("20") or bursts[str(min(bursts["sizes"]))]
    return level


def _vs_docker_cp(figures: dict[str, Any], ours: str, theirs: str) -> float:
    largest = max(figures["file_transfer"]["sizes"], key=lambda size: size["bytes"])
    return round(float(largest[ours]["mb_per_s"]) / float(largest[theirs]["mb_per_s"]), 2)


def _at_least(name: str, limit: float, unit: str, value: Callable[[dict[str, Any]], float]) -> Target:
    return Target(name, ">= %g%s" % (limit, unit), value, lambda v: v >= limit, unit)


def _at_most(name: str, limit: float, unit: str, value: Callable[[dict[str, Any]], float]) -> Target:
    return Target(name, "<= %g%s" % (limit, unit), value, lambda v: v <= limit, unit)


TARGETS = [
    _at_least(
        "warm kernel start vs local ipykernel",
        4,
        "x",
        lambda f: f["kernel_start"]["speedup"]["warm_vs_local_ipykernel"]["median"],
    ),
    _at_least(
        "warm kernel start vs gateway-provisioners",
        10,
        "x",
        lambda f: f["kernel_start"]["speedup"]["warm_vs_gateway"]["median"],
    ),
    _at_least(
        "agent process: warm kernel start vs local ipykernel",
        4,
        "x",
        lambda f: f["client_kernels"]["speedup"]["agent_warm_vs_local_ipykernel"]["median"],
    ),
    _at_most(
        "kernel start through --gateway-url, p50",
        150,
        " ms",
        lambda f: f["client_kernels"]["gateway_warm"]["median_ms"],
    ),
    _at_least(
        "warm create -> first exec vs llm-sandbox",
        10,
        "x",
        lambda f: f["first_exec"]["speedup"]["warm_vs_llm_sandbox"]["median"],
    ),
    _at_least(
        "exec round trip (SDK) vs docker exec",
        5,
        "x",
        lambda f: f["exec_round_trip"]["true"]["speedup"]["sdk_vs_docker_exec"]["median"],
    ),
    _at_most("warm session create (SDK), p50", 50, " ms", lambda f: f["sessions"]["create_warm"]["median_ms"]),
    _at_most("cold session create (SDK), p50", 1000, " ms", lambda f: f["sessions"]["create_cold"]["median_ms"]),
    _at_most("idle warm sandbox", 80, " MB", lambda f: f["density"]["idle_memory"]["median_mb"]),
    _at_most(
        "20-create burst, all done, pool at its default floor",
        0.5,
        " s",
        lambda f: _burst(f)["sandkasten_first"]["seconds"],
    ),
    _at_most(
        "20-create burst, all done, pool after one burst",
        0.5,
        " s",
        lambda f: _burst(f)["sandkasten_repeat"]["seconds"],
    ),
    _at_least(
        "20-create burst vs llm-sandbox, pool at its default floor",
        5,
        "x",
        lambda f: _burst(f)["sandkasten_first"]["speedup_vs_llm_sandbox"],
    ),
    _at_least("churn at the most agents", 15, " cycles/s", lambda f: _most_agents(f)["cycles_per_s"]),
    _at_most("session destroy (SDK), p50", 5, " ms", lambda f: f["sessions"]["destroy"]["median_ms"]),
    _at_least(
        "sessions held before exec p99 doubles",
        150,
        "",
        lambda f: f["density"]["sessions"]["fits_before_p99_doubles"],
    ),
    _at_least("100 MB write vs docker cp in", 1, "x", lambda f: _vs_docker_cp(f, "sandkasten_write", "docker_cp_in")),
    _at_least("100 MB read vs docker cp out", 1, "x", lambda f: _vs_docker_cp(f, "sandkasten_read", "docker_cp_out")),
    _at_most(
        "proxy's added latency, allowed HTTP GET vs direct by address, p50",
        5,
        " ms",
        lambda f: f["egress"]["http"]["added"]["vs_direct_address"]["ms"],
    ),
    _at_most(
        "fork of 4, a session with 100 MB in its tmpfs /workspace, p50",
        1000,
        " ms",
        lambda f: f["snapshots"]["workspace_tmpfs_100mb"]["fork_of_4"]["median_ms"],
    ),
    Target("errors at the most concurrent agents", "0", lambda f: _most_agents(f)["errors"], lambda v: v == 0, ""),
]


def check(figures: dict[str, Any]) -> list[dict[str, Any]]:
    results = []
    for target in TARGETS:
        value = target.value(figures)
        name = target.name
        if name.startswith("errors"):
            name = "errors at %d concurrent agents" % _most_agents(figures)["agents"]
        results.append(
            {"target": name, "wanted": target.wanted, "value": value, "unit": target.unit, "met": target.met(value)}
        )
    return results
