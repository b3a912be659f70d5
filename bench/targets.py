"""The issue's targets, each checked against the figures of one run: met or missed, with the number."""

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


TARGETS = [
    Target(
        "warm kernel start vs local ipykernel",
        ">= 4x",
        lambda f: f["kernel_start"]["speedup"]["warm_vs_local_ipykernel"]["median"],
        lambda v: v >= 4,
        "x",
    ),
    Target(
        "warm kernel start vs gateway-provisioners",
        ">= 10x",
        lambda f: f["kernel_start"]["speedup"]["warm_vs_gateway"]["median"],
        lambda v: v >= 10,
        "x",
    ),
    Target(
        "warm create -> first exec vs llm-sandbox",
        ">= 10x",
        lambda f: f["first_exec"]["speedup"]["warm_vs_llm_sandbox"]["median"],
        lambda v: v >= 10,
        "x",
    ),
    Target(
        "exec round trip (SDK) vs docker exec",
        ">= 5x",
        lambda f: f["exec_round_trip"]["true"]["speedup"]["sdk_vs_docker_exec"]["median"],
        lambda v: v >= 5,
        "x",
    ),
    Target(
        "idle warm sandbox",
        "<= 80 MB",
        lambda f: f["density"]["idle_memory"]["median_mb"],
        lambda v: v <= 80,
        " MB",
    ),
    Target(
        "errors at the most concurrent agents",
        "0",
        lambda f: _most_agents(f)["errors"],
        lambda v: v == 0,
        "",
    ),
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
