"""Figure 6: throughput under concurrency. N agents, each looping create -> write -> exec -> read -> destroy.

Through the Python SDK against one ``sandkasten serve`` with a pool of 4, for a
fixed time per level (1, 5, 20, 50 agents); a cycle started before the time is
up is finished and counted. Any exception is an error (target: none at 50). The
server's RSS is read before and after each level; after the last, what the agents
left behind (target: nothing).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.context import Run
from bench.report import summary

PAYLOAD = "x" * 1000


class Agents:
    def __init__(self) -> None:
        self.cycles: list[float] = []
        self.errors: list[str] = []

    async def agent(self, run: Run, until: float) -> None:
        while time.monotonic() < until:
            started = time.perf_counter()
            try:
                async with await run.sdk.create_session() as session:
                    await session.write("task.txt", PAYLOAD)
                    result = await session.exec("wc -c < task.txt")
                    assert result.output.strip() == str(len(PAYLOAD)), result
                    assert await session.read("task.txt") == PAYLOAD
            except Exception as exc:  # an agent's failure of any kind is the figure, not a crash of the run
                self.errors.append("%s: %s" % (type(exc).__name__, str(exc)[:200]))
                continue
            self.cycles.append((time.perf_counter() - started) * 1000)


async def level(run: Run, agents: int) -> dict[str, Any]:
    await run.pool_ready()
    rss_before = run.served.rss_mb()
    state = Agents()
    started = time.monotonic()
    await asyncio.gather(*(state.agent(run, started + run.sizes.agent_seconds) for _ in range(agents)))
    elapsed = time.monotonic() - started
    left = run.served.call("GET", "sessions")["sessions"]
    return {
        "agents": agents,
        "seconds": round(elapsed, 1),
        "cycles": len(state.cycles),
        "cycles_per_s": round(len(state.cycles) / elapsed, 2),
        "errors": len(state.errors),
        "error_examples": state.errors[:5],
        "sessions_left": len(left),
        "cycle": summary(state.cycles) if state.cycles else None,
        "server_rss_mb_before": round(rss_before, 1),
        "server_rss_mb_after": round(run.served.rss_mb(), 1),
    }


async def measure(run: Run) -> dict[str, Any]:
    levels = [await level(run, agents) for agents in run.sizes.agents]
    return {"levels": levels, "left_behind": await run.left_behind()}
