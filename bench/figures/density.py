"""Figure 5: density. The idle memory of a warm sandbox, and how many sessions fit before exec slows down.

Idle memory is each warm pool sandbox's working set as ``docker stats`` counts it
(cgroup usage minus inactive page cache): runner, bash and the kernel.

Then sessions are held in steps (1, 5, 10, 20, ...) and at each step, once the pool
has refilled, ``exec true`` is timed round-robin over every held session. The
figure is the last step whose p99 (the lowest of three rounds') stays within
twice the p99 at one session; it stops at the cap or when the time
budget is spent, and says which. Each step records how long its new sessions took
to create; after all are destroyed, what they left behind (target: nothing).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from functools import partial
from typing import Any

from bench.context import Run, timed
from bench.helpers import cgroup_memory
from bench.report import summary

CREATE_AT_ONCE = 4  # the server's default cold-start limit
IDLE_SETTLE_S = 3.0
WARM_UP_EXECS = 20
# Each step is timed in rounds and keeps the least disturbed round's figures (as timeit keeps the
# minimum): on a shared machine a burst of other work can double a round's p99 by itself.
ROUNDS = 3
TARGET_MB = 80


def pool_containers(run: Run) -> list[Any]:
    return [
        c
        for c in run.docker.containers.list(filters={"label": "sandkasten.pool"})
        if any(m.get("Source", "").startswith(run.served.state_dir) for m in c.attrs["Mounts"] or [])
    ]


async def idle_memory(run: Run) -> dict[str, Any]:
    await run.pool_ready()
    await asyncio.sleep(IDLE_SETTLE_S)  # let the kernels finish starting up
    working_sets = [cgroup_memory(c.id) / 2**20 for c in pool_containers(run)]
    return {
        "sandboxes": len(working_sets),
        "median_mb": round(statistics.median(working_sets), 1),
        "max_mb": round(max(working_sets), 1),
        "target_mb": TARGET_MB,
        "what": "working set of a warm pool sandbox with its kernel started (runner, bash, ipykernel)",
    }


async def hold(run: Run, sessions: list[Any], count: int) -> None:
    limit = asyncio.Semaphore(CREATE_AT_ONCE)

    async def one() -> Any:
        async with limit:
            return await run.sdk.create_session()

    sessions.extend(await asyncio.gather(*(one() for _ in range(count - len(sessions)))))


async def probe(run: Run, sessions: list[Any], n: int) -> dict[str, Any]:
    await run.pool_ready()
    for session in sessions[-WARM_UP_EXECS:]:  # the new sessions' first execs open connections
        await session.exec("true")
    rounds = []
    for _ in range(ROUNDS):
        samples = []
        for i in range(n):
            ms, result = await timed(partial(sessions[i % len(sessions)].exec, "true"))
            assert result.exit_code == 0, result
            samples.append(ms)
        rounds.append(summary(samples))
    # Claims from the refilled pool come with a kernel, cold creates without: the mean is what a session costs.
    memory = [cgroup_memory(s.info.raw["container_id"]) / 2**20 for s in sessions]
    return {
        "sessions": len(sessions),
        "median_ms": min(r["median_ms"] for r in rounds),
        "p99_ms": min(r["p99_ms"] for r in rounds),
        "n": sum(r["n"] for r in rounds),
        "p99_ms_per_round": [r["p99_ms"] for r in rounds],
        "working_set_mb_mean": round(statistics.mean(memory), 1),
    }


async def sessions_before_slowdown(run: Run) -> dict[str, Any]:
    sizes = run.sizes
    deadline = time.monotonic() + sizes.density_budget_s
    sessions: list[Any] = []
    steps: list[dict[str, Any]] = []
    stopped_by = "cap"
    try:
        for count in sizes.density_steps:
            created_ms, _ = await timed(partial(hold, run, sessions, count))
            step = await probe(run, sessions, sizes.density_probes)
            step["created_in_s"] = round(created_ms / 1000, 1)
            steps.append(step)
            if step["p99_ms"] > 2 * steps[0]["p99_ms"]:
                stopped_by = "p99 doubled"
                break
            if time.monotonic() > deadline:
                stopped_by = "time budget"
                break
    finally:
        limit = asyncio.Semaphore(CREATE_AT_ONCE)

        async def destroy(session: Any) -> None:
            async with limit:
                await session.destroy()

        await asyncio.gather(*(destroy(s) for s in sessions))
    within = [s["sessions"] for s in steps if s["p99_ms"] <= 2 * steps[0]["p99_ms"]]
    return {
        "steps": steps,
        "fits_before_p99_doubles": max(within),
        "stopped_by": stopped_by,
        "cap": sizes.density_steps[-1],
        "budget_s": sizes.density_budget_s,
        "left_behind": await run.left_behind(),
    }


async def measure(run: Run) -> dict[str, Any]:
    return {"idle_memory": await idle_memory(run), "sessions": await sessions_before_slowdown(run)}
