"""What every benchmark shares: timing loops, median/p99, the printed table, the JSON file."""

from __future__ import annotations

import datetime
import json
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).with_name("results")


def summary(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    p99_index = min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))
    return {
        "median_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[p99_index], 3),
        "n": len(ordered),
    }


async def time_async(call: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def time_sync(call: Callable[[], Any], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def print_rows(rows: Sequence[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print("%s  %s" % (name.ljust(width), value))


def write_results(name: str, results: dict[str, Any], quick: bool, out: Path | None) -> Path:
    """Write ``results`` to ``out`` or bench/results/<date>-<name>[-quick].json, and say where."""
    path = out or RESULTS / ("%s-%s%s.json" % (datetime.date.today().isoformat(), name, "-quick" if quick else ""))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print("wrote %s" % path)
    return path


def speedup(baseline: dict[str, float], ours: dict[str, float]) -> dict[str, float]:
    """How many times faster ``ours`` is than ``baseline`` (two ``summary`` results), at the median and at p99."""
    return {
        "median": round(baseline["median_ms"] / ours["median_ms"], 1),
        "p99": round(baseline["p99_ms"] / ours["p99_ms"], 1),
    }
