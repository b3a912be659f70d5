"""Figure 2: session create to the first exec result (``echo hi``), what an agent waits for before it can work.

Sandkasten through the Python SDK against ``sandkasten serve``, warm (from the
pool) and cold (pool resized to 0); llm-sandbox (open + ``execute_command``);
and a plain ``docker run`` + ``docker exec``. Tear-down is not timed on any path,
and each path runs once untimed first (the server's first request, imports).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from bench.baselines import llm_sandbox, plain_docker
from bench.context import POOL_SIZE, Run, timed
from bench.helpers import baseline
from bench.report import speedup, summary


async def sandkasten(run: Run, n: int, warm: bool) -> list[float]:
    samples = []
    for _ in range(n):
        if warm:
            await run.pool_ready()

        async def create_and_exec() -> Any:
            session = await run.sdk.create_session()
            result = await session.exec("echo hi")
            assert result.output == "hi\n" and session.info.warm == warm, (result, session.info)
            return session

        ms, session = await timed(create_and_exec)
        samples.append(ms)
        await session.destroy()
    return samples


async def cold(run: Run, n: int) -> list[float]:
    await run.resize_pool(0)
    try:
        return await sandkasten(run, n, warm=False)
    finally:
        await run.resize_pool(POOL_SIZE)


def llm_sandbox_open_and_exec(run: Run) -> Any:
    session = llm_sandbox.open_session(run.docker)
    assert llm_sandbox.run(session, "echo hi") == "hi\n"
    return session


def docker_run_and_exec(run: Run) -> Any:
    container = plain_docker.start(run.docker)
    assert plain_docker.run(container, "echo hi") == b"hi\n"
    return container


async def measure(run: Run) -> dict[str, Any]:
    n = run.sizes.creates
    llm = partial(baseline, run, call=partial(llm_sandbox_open_and_exec, run), tear_down=llm_sandbox.close)
    docker_run = partial(baseline, run, call=partial(docker_run_and_exec, run), tear_down=plain_docker.remove)
    for warm_up in (partial(sandkasten, run, 1, warm=True), partial(llm, 1), partial(docker_run, 1)):
        await warm_up()
    figures: dict[str, Any] = {
        "sandkasten_warm": summary(await sandkasten(run, n, warm=True)),
        "llm_sandbox": summary(await llm(n)),
        "docker_run_exec": summary(await docker_run(n)),
        "sandkasten_cold": summary(await cold(run, run.sizes.cold_creates)),
    }
    warm = figures["sandkasten_warm"]
    figures["speedup"] = {
        "warm_vs_llm_sandbox": speedup(figures["llm_sandbox"], warm),
        "warm_vs_docker_run_exec": speedup(figures["docker_run_exec"], warm),
        "cold_vs_llm_sandbox": speedup(figures["llm_sandbox"], figures["sandkasten_cold"]),
    }
    return figures
