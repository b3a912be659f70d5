"""Figure 8: session create alone (warm, cold, with a named workspace) and destroy, next to ``docker run`` of ``true``.

Through the Python SDK against ``sandkasten serve``: a warm create claims from the
pool (let refill before each), a cold one starts a sandbox (pool resized to 0), and
a create with a named workspace is always cold (its volume is mounted at start).
Destroy is timed on the warm sessions (each with its kernel). The baseline is a
bare ``docker run --rm`` of ``true`` in the same image, on a quiet machine.
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

from bench.context import POOL_IMAGE, POOL_SIZE, Run, timed
from bench.helpers import baseline
from bench.report import speedup, summary


async def creates(run: Run, n: int, warm: bool, workspace: bool = False) -> tuple[list[float], list[float]]:
    """Milliseconds of ``n`` creates and of their destroys."""
    created, destroyed = [], []
    for _ in range(n):
        if warm:
            await run.pool_ready()
        name = "bench-%s" % uuid.uuid4().hex[:8] if workspace else None
        ms, session = await timed(partial(run.sdk.create_session, workspace=name))
        assert session.info.warm == warm, session.info
        created.append(ms)
        ms, _ = await timed(session.destroy)
        destroyed.append(ms)
        if name:
            await run.sdk.workspaces.delete(name)
    return created, destroyed


def docker_run_true(run: Run) -> None:
    run.docker.containers.run(POOL_IMAGE, entrypoint=["true"], remove=True)


async def measure(run: Run) -> dict[str, Any]:
    sizes = run.sizes
    await creates(run, 1, warm=True)  # the server's first create, untimed
    warm, destroy = await creates(run, sizes.creates, warm=True)
    docker_run = await baseline(run, sizes.creates, call=partial(docker_run_true, run), tear_down=lambda _: None)
    await run.resize_pool(0)
    try:
        cold, _ = await creates(run, sizes.cold_creates, warm=False)
        named, _ = await creates(run, sizes.cold_creates, warm=False, workspace=True)
    finally:
        await run.resize_pool(POOL_SIZE)
    figures: dict[str, Any] = {
        "create_warm": summary(warm),
        "create_cold": summary(cold),
        "create_named_workspace": summary(named),
        "destroy": summary(destroy),
        "docker_run_true": summary(docker_run),
    }
    figures["speedup"] = {
        "warm_vs_docker_run_true": speedup(figures["docker_run_true"], figures["create_warm"]),
        "warm_vs_cold": speedup(figures["create_cold"], figures["create_warm"]),
    }
    return figures
