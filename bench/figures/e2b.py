"""Figure 15: E2B's own SDK against Sandkasten, and commands at once in one sandbox.

- ``AsyncSandbox.create()`` to its first ``commands.run("echo hi")`` answered, through
  E2B's PyPI SDK pointed at the run's server (``E2B_API_URL``, ``E2B_SANDBOX_URL``),
  next to the same flow through Sandkasten's own SDK (``create_session`` + ``exec``).
  Both warm (the pool refilled before each), tear-down not timed.
- Five commands of ``sleep 0.5`` in one sandbox, all at once (E2B's ``commands.run``
  gathered, and Sandkasten's exec with ``if_busy: "process"`` gathered), next to the
  five one after the other through the shell.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from bench.context import Run, timed
from bench.figures import first_exec
from bench.report import speedup, summary

COMMANDS = 5
SLEEP = "sleep 0.5; echo done"


def _point_e2b_at(run: Run) -> None:
    os.environ.update(
        E2B_API_URL=run.served.base_url + "/e2b",
        E2B_SANDBOX_URL=run.served.base_url + "/e2b/sandbox",
        E2B_API_KEY=run.served.api_key,
    )
    os.environ.pop("E2B_DEBUG", None)


async def _e2b_first_command(run: Run, n: int) -> list[float]:
    from e2b import AsyncSandbox

    samples = []
    for _ in range(n):
        await run.pool_ready()

        async def create_and_run() -> Any:
            sandbox = await AsyncSandbox.create()
            result = await sandbox.commands.run("echo hi")
            assert result.stdout == "hi\n", result
            return sandbox

        ms, sandbox = await timed(create_and_run)
        samples.append(ms)
        await sandbox.kill()
    return samples


async def _exec(run: Run, session_id: str, **options: Any) -> None:
    reply = await run.http.post("sessions/%s/exec" % session_id, json={"command": SLEEP, **options})
    assert reply.status_code == 200 and reply.json()["output"] == "done\n", reply.text


async def _five(run: Run, repeats: int) -> dict[str, list[float]]:
    """Five commands in one session: at once (as processes beside the shell), and one after another."""
    from e2b import AsyncSandbox

    session = await run.sdk.create_session()
    sandbox = await AsyncSandbox.create()
    samples: dict[str, list[float]] = {"sequential": [], "concurrent": [], "e2b_concurrent": []}
    try:
        for _ in range(repeats):

            async def one_after_another() -> None:
                for _ in range(COMMANDS):
                    await _exec(run, session.id)

            async def at_once() -> None:
                await asyncio.gather(*(_exec(run, session.id, if_busy="process") for _ in range(COMMANDS)))

            async def e2b_at_once() -> None:
                results = await asyncio.gather(*(sandbox.commands.run(SLEEP) for _ in range(COMMANDS)))
                assert all(r.stdout == "done\n" for r in results)

            calls = {"sequential": one_after_another, "concurrent": at_once, "e2b_concurrent": e2b_at_once}
            for name, call in calls.items():
                ms, _ = await timed(call)
                samples[name].append(ms)
    finally:
        await session.destroy()
        await sandbox.kill()
    return samples


async def measure(run: Run) -> dict[str, Any]:
    _point_e2b_at(run)
    n = run.sizes.creates
    await _e2b_first_command(run, 1)  # untimed: imports, the server's first E2B request
    await first_exec.sandkasten(run, 1, warm=True)
    figures: dict[str, Any] = {
        "e2b_create_to_first_command": summary(await _e2b_first_command(run, n)),
        "sdk_create_to_first_exec": summary(await first_exec.sandkasten(run, n, warm=True)),
    }
    five = await _five(run, max(2, run.sizes.snapshot_repeats))
    five_ms = figures["five_commands"] = {name: summary(values) for name, values in five.items()}
    figures["speedup"] = {
        "concurrent_vs_sequential": speedup(five_ms["sequential"], five_ms["concurrent"]),
        "e2b_concurrent_vs_sequential": speedup(five_ms["sequential"], five_ms["e2b_concurrent"]),
        "own_sdk_vs_e2b_sdk": speedup(figures["e2b_create_to_first_command"], figures["sdk_create_to_first_exec"]),
    }
    return figures
