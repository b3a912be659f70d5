"""Destroy off the caller's path: the session is unreachable at once, its container goes in the background."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from sandkasten_kernel.engine.engine import Engine
from sandkasten_kernel.engine.errors import SessionNotFound
from sandkasten_kernel.engine.removals import PARALLEL_REMOVALS
from tests.conftest import settings_for


def _alive(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().split(") ")[1][0] != "Z"  # a zombie has died, its parent has not looked yet
    except FileNotFoundError:
        return False


async def _until(predicate: Any, timeout_s: float = 10.0) -> bool:
    for _ in range(int(timeout_s / 0.02)):
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return bool(predicate())


async def test_a_destroyed_sessions_processes_die_before_docker_removes_anything(
    engine: Engine, docker_client: Any
) -> None:
    record = await engine.create_session()
    await engine.exec(record.id, "sleep 600 >/dev/null 2>&1 &")
    container = docker_client.containers.get(record.container_id)
    runner_pid = container.attrs["State"]["Pid"]
    sleeper_pid = int(container.top(ps_args="-eo pid,args")["Processes"][-1][0])
    # Docker gets no removal in until the test lets it: all the removal slots are held.
    slots = engine.removals._slots  # the one way to hold Docker back without a fake
    for _ in range(PARALLEL_REMOVALS):
        await slots.acquire()
    try:
        await engine.destroy_session(record.id)
        assert engine.removals.pending == 1
        with pytest.raises(SessionNotFound):
            await engine.exec(record.id, "true")
        # Killed through its pidfd, not by Docker: the runner and the job it left behind.
        assert await _until(lambda: not _alive(runner_pid) and not _alive(sleeper_pid))
        assert docker_client.containers.list(all=True, filters={"id": record.container_id})
    finally:
        for _ in range(PARALLEL_REMOVALS):
            slots.release()
    assert await engine.removals.drain(timeout_s=60)
    assert not docker_client.containers.list(all=True, filters={"id": record.container_id})
    assert not os.path.exists(record.run_dir)


async def test_a_crash_before_the_removal_leaves_nothing_after_the_next_start(
    engine: Engine, docker_client: Any
) -> None:
    record = await engine.create_session()
    # The crash, as it leaves things: the store has forgotten the session, its container is still there.
    engine.store.remove_session(record.id, "destroyed, then the server crashed")
    report = await engine.reconcile()
    assert "sandkasten-%s" % record.id in report["removed_containers"]
    assert not docker_client.containers.list(all=True, filters={"id": record.container_id})
    assert not os.path.exists(record.run_dir)


async def test_destroys_of_one_session_agree_and_remove_it_once(engine: Engine, docker_client: Any) -> None:
    record = await engine.create_session()
    outcomes = await asyncio.gather(*(engine.destroy_session(record.id) for _ in range(5)), return_exceptions=True)
    assert outcomes.count(None) == 1 and all(isinstance(o, SessionNotFound) for o in outcomes if o is not None)
    assert await engine.removals.drain(timeout_s=60)
    assert not docker_client.containers.list(all=True, filters={"id": record.container_id})
    assert [e.kind for e in engine.events(10) if e.session_id == record.id].count("destroyed") == 1


async def test_closing_the_engine_finishes_the_removals(state_dir: str, docker_client: Any) -> None:
    engine = Engine(settings_for(state_dir, images={}))
    await engine.start()
    records = [await engine.create_session() for _ in range(3)]
    for record in records:
        await engine.destroy_session(record.id)
    await engine.close()
    for record in records:
        assert not docker_client.containers.list(all=True, filters={"id": record.container_id})
        assert not os.path.exists(record.run_dir)
