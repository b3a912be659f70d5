"""Pause and resume against a real Docker engine: the freezer stops the CPU, state survives, clocks stand still."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import docker
import pytest

from sandkasten_kernel.engine.engine import Engine
from sandkasten_kernel.engine.errors import SessionBusy, SessionPaused
from sandkasten_kernel.engine.sandbox_cgroup import container_cgroup_dir
from sandkasten_kernel.engine.store import SessionRecord
from tests.conftest import settings_for


def host_cpu_ns(container_id: str) -> int | None:
    """The container's CPU time as the host's cgroup (v1) counts it; None where it cannot be read."""
    folder = container_cgroup_dir(docker.from_env(), container_id, "cpuacct")
    if folder is None:
        return None
    try:
        with open(os.path.join(folder, "cpuacct.usage")) as f:
            return int(f.read())
    except OSError:
        return None


async def cpu_over(engine: Engine, record: SessionRecord, seconds: float) -> tuple[int, int | None]:
    """CPU time the sandbox used over ``seconds``: as ``usage`` reports it, and as the host's cgroup does."""
    before, host_before = (await engine.usage(record.id))["cpu_ns"], host_cpu_ns(record.container_id)
    await asyncio.sleep(seconds)
    after, host_after = (await engine.usage(record.id))["cpu_ns"], host_cpu_ns(record.container_id)
    host = host_after - host_before if host_before is not None and host_after is not None else None
    return after - before, host


async def test_a_busy_loop_stops_while_paused_and_the_shell_is_intact_after_resume(engine: Engine) -> None:
    record = await engine.create_session()
    await engine.exec(record.id, "cd /tmp; export FOO=kept; while :; do :; done &")
    running, _ = await cpu_over(engine, record, 0.5)
    assert running > 50_000_000  # the loop burns CPU: well over 0.1 CPU-s/s

    paused = await engine.pause_session(record.id)
    assert paused.status == "paused" and paused.paused_at is not None
    await engine.pause_session(record.id)  # again: not an error
    frozen, host = await cpu_over(engine, record, 1.5)
    assert frozen == 0 and host in (0, None)
    usage = await engine.usage(record.id)  # from Docker: the runner is frozen
    assert usage["paused"] is True and usage["pids"] >= 3 and usage["memory_bytes"] > 0

    resumed = await engine.resume_session(record.id)
    assert resumed.status == "running" and resumed.paused_at is None and resumed.paused_s >= 1.5
    result = await engine.exec(record.id, "echo $FOO; pwd; jobs -p | wc -l; kill %1")
    assert result.output == "kept\n/tmp\n1\n"
    assert (await engine.usage(record.id))["paused"] is False
    kinds = [event.kind for event in engine.events(10, record.id)]
    assert kinds[:2] == ["resumed", "paused"]
    took = [event.detail["took_ms"] for event in engine.events(10, record.id) if event.kind in ("paused", "resumed")]
    print("pause / resume took %s ms" % took[::-1])


async def test_every_runner_call_is_refused_while_paused_and_the_kernel_looks_alive(engine: Engine) -> None:
    record = await engine.create_session()
    await engine.start_kernel(record.id)
    await engine.pause_session(record.id)
    calls: list[Any] = [
        engine.exec(record.id, "true"),
        engine.start_kernel(record.id),
        engine.interrupt_kernel(record.id),
        engine.stop_kernel(record.id),
        engine.open_terminal(record.id, 24, 80),
    ]
    for call in calls:
        with pytest.raises(SessionPaused, match="is paused"):
            await asyncio.wait_for(call, 5)  # refused at once, never waiting on the frozen runner
    with pytest.raises(SessionPaused):
        async with engine.runner(record.id) as runner:
            await runner.stat(".")
    with pytest.raises(SessionPaused):
        engine.require_running(record.id)
    status = await engine.kernel_status(record.id)  # what Jupyter's restarter polls: alive, not dead
    assert status["alive"] is True and status["paused"] is True
    assert engine.get_session(record.id).status == "paused"

    await engine.resume_session(record.id)
    assert (await engine.kernel_status(record.id))["alive"] is True
    assert (await engine.exec(record.id, "echo back")).output == "back\n"


async def test_a_pause_waits_for_no_call_but_refuses_while_one_runs(engine: Engine, docker_client: Any) -> None:
    record = await engine.create_session()
    running = asyncio.ensure_future(engine.exec(record.id, "sleep 1; echo done"))
    await asyncio.sleep(0.3)
    with pytest.raises(SessionBusy, match="calls under way"):
        await engine.pause_session(record.id)
    assert (await running).output == "done\n"
    await engine.pause_session(record.id)
    assert docker_client.containers.get(record.container_id).status == "paused"

    started = time.monotonic()
    await engine.destroy_session(record.id, wait=True)  # a paused sandbox goes as any other
    assert time.monotonic() - started < 10
    assert not docker_client.containers.list(all=True, filters={"id": record.container_id})


async def test_a_paused_sessions_clocks_stand_still(engine: Engine) -> None:
    record = await engine.create_session(ttl_s=150)
    now = time.time()
    # It lived 100 s, was idle for the last 50 of them, then was paused for 1000 s.
    engine.store.update(record.id, created_at=now - 1100, last_active=now - 1050, idle_timeout_s=60)
    await engine.pause_session(record.id)
    engine.store.update(record.id, paused_at=now - 1000)
    assert await engine.reap_once() == []  # paused: never due

    resumed = await engine.resume_session(record.id)
    assert resumed.paused_s == pytest.approx(1000, abs=5)
    assert time.time() - resumed.last_active == pytest.approx(50, abs=5)  # as idle as when it was paused
    assert await engine.reap_once() == []  # 100 s of its 150 s ttl, 50 s of its 60 s idle timeout
    engine.store.update(record.id, idle_timeout_s=30)
    assert await engine.reap_once() == [record.id]


async def test_a_start_takes_dockers_word_on_what_is_paused(state_dir: str, docker_client: Any) -> None:
    first = Engine(settings_for(state_dir, images={}))
    await first.start()
    record = await first.create_session()
    await first.exec(record.id, "export KEPT=yes")
    await first.close()  # the session keeps running
    container = docker_client.containers.get(record.container_id)
    engines: list[Engine] = []

    async def restart() -> Engine:
        engine = Engine(settings_for(state_dir, images={}))
        engines.append(engine)
        assert (await engine.start())["adopted"] == [record.id]
        return engine

    try:
        container.pause()  # behind the server's back
        second = await restart()
        assert second.get_session(record.id).status == "paused"
        assert second.events(1, record.id)[0].detail["reason"] == "found paused in Docker"
        with pytest.raises(SessionPaused):
            await second.exec(record.id, "true")
        await second.close()

        container.unpause()
        third = await restart()
        assert third.get_session(record.id).status == "running"
        assert "unpaused behind its back" in third.events(1, record.id)[0].detail["reason"]
        assert (await third.exec(record.id, "echo $KEPT")).output == "yes\n"
        await third.destroy_session(record.id, wait=True)
    finally:
        for engine in engines:
            await engine.close()
        if os.path.exists(state_dir) and any(c.id == container.id for c in docker_client.containers.list(all=True)):
            container.remove(force=True)


async def test_a_freeze_that_runc_gave_up_on_is_tried_again(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    # runc gives up when the sandbox's processes do not all run within its few hundred ms of polling, which a
    # busy host shows only now and then (1 pause in 40 with two host spinners on 2 cores): the refusal is
    # injected once, in front of the real pause.
    record = await engine.create_session()
    api = engine.backend.client.api
    real_pause, refusals = api.pause, list[str]()

    def pause_refused_once(container_id: str) -> None:
        if not refusals:
            refusals.append(container_id)
            explanation = "Cannot pause container %s: OCI runtime pause failed: unable to freeze: unknown"
            raise docker.errors.APIError("500 Server Error", explanation=explanation % container_id)
        real_pause(container_id)

    monkeypatch.setattr(api, "pause", pause_refused_once)
    assert (await engine.pause_session(record.id)).status == "paused" and refusals == [record.container_id]
    assert engine.backend.client.api.inspect_container(record.container_id)["State"]["Paused"] is True
    await engine.resume_session(record.id)
    assert (await engine.exec(record.id, "echo thawed")).output == "thawed\n"
