"""The engine against a real Docker engine: pool, sessions, limits, workspaces, recovery."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest

from sandkasten_kernel.engine.config import ConfigError
from sandkasten_kernel.engine.engine import Engine
from sandkasten_kernel.engine.errors import (
    LimitExceeded,
    NotAllowed,
    SessionLost,
    SessionNotFound,
    WorkspaceInUse,
)
from sandkasten_kernel.engine.store import StoreError
from sandkasten_kernel.engine.workspace_names import workspace_ref
from tests.conftest import settings_for


async def wait_ready(engine: Engine, image: str = "sandkasten/runtime:base", count: int = 1) -> None:
    for _ in range(300):
        if engine.pool_status()["images"].get(image, {}).get("ready", 0) >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the pool never filled: %s" % engine.pool_status())


async def test_a_session_from_the_pool_is_warm_and_the_pool_refills(engine: Engine) -> None:
    await wait_ready(engine)
    record = await engine.create_session()
    assert record.warm
    assert (await engine.exec(record.id, "echo hi")).output == "hi\n"
    status = engine.pool_status()["images"]["sandkasten/runtime:base"]
    assert status["claims"] == 1
    await wait_ready(engine)  # refilled in the background
    assert engine.get_session(record.id).exec_count == 1


async def test_an_empty_pool_still_starts_a_session_cold_and_counts_a_miss(engine: Engine) -> None:
    await engine.resize_pool("base", 0)
    record = await engine.create_session()
    assert not record.warm
    assert (await engine.exec(record.id, "echo cold")).output == "cold\n"
    status = engine.pool_status()["images"]["sandkasten/runtime:base"]
    assert status["misses"] == 1 and status["target"] == 0 and status["ready"] == 0


async def test_resizing_the_pool_takes_effect_live(engine: Engine) -> None:
    await engine.resize_pool("base", 2)
    await wait_ready(engine, count=2)
    await engine.resize_pool("base", 0)
    assert engine.pool_status()["images"]["sandkasten/runtime:base"]["ready"] == 0


async def test_limits_are_applied_inside_and_capped_by_the_config(engine: Engine) -> None:
    record = await engine.create_session(limits={"memory_mb": 300, "pids": 100})
    assert not record.warm  # other limits than the pool's: started cold
    output = (
        await engine.exec(
            record.id,
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max 2>/dev/null"
            " || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max",
        )
    ).output.split()
    assert output == [str(300 * 1024 * 1024), "100"]
    checks = await engine.exec(
        record.id, "grep CapEff /proc/self/status; touch /x 2>&1 | grep -c Read-only; ls /sys/class/net"
    )
    assert checks.output == "CapEff:\t0000000000000000\n1\nlo\n"
    with pytest.raises(LimitExceeded, match="memory_mb=99999 exceeds"):
        await engine.create_session(limits={"memory_mb": 99999})
    with pytest.raises(LimitExceeded, match="cpus=1e-09 is below the minimum"):
        await engine.create_session(limits={"cpus": 1e-9})  # Docker would read 0 CPUs as no limit at all
    with pytest.raises(NotAllowed, match="network is not allowed"):
        await engine.create_session(network=True)


async def test_network_when_the_config_allows_it(state_dir: str) -> None:
    settings = settings_for(state_dir, images={})
    settings.security.allow_network = True
    engine = Engine(settings)
    await engine.start(pool=False)
    try:
        record = await engine.create_session(network=True)
        interfaces = (await engine.exec(record.id, "ls /sys/class/net")).output.split()
        assert "eth0" in interfaces
        await engine.destroy_session(record.id)
    finally:
        await engine.close()


async def test_a_workspace_survives_destroy_and_is_mounted_again(engine: Engine) -> None:
    name = "ws-%s" % uuid.uuid4().hex[:8]
    first = await engine.create_session(workspace=name)
    await engine.exec(first.id, "mkdir -p /workspace/notes && echo kept > /workspace/notes/a.txt")
    with pytest.raises(WorkspaceInUse):
        await engine.delete_workspace(name)
    await engine.destroy_session(first.id)
    second = await engine.create_session(workspace=name)
    assert (await engine.exec(second.id, "cat /workspace/notes/a.txt")).output == "kept\n"
    listed = {row["name"]: row for row in await engine.list_workspaces()}
    assert listed[name]["in_use_by"] == [second.id] and listed[name]["last_used"]
    await engine.destroy_session(second.id)
    await engine.delete_workspace(name)
    assert name not in {row["name"] for row in await engine.list_workspaces()}


async def test_a_named_workspace_is_a_capped_image_that_survives_an_unmount(state_dir: str) -> None:
    settings = settings_for(state_dir, images={})
    settings.workspace.size_mb = 32
    engine = Engine(settings)
    await engine.start()
    name = "cap-%s" % uuid.uuid4().hex[:8]
    disks, workspace = engine.workspace_disks, workspace_ref(state_dir, name, None)  # the server's own
    try:
        first = await engine.create_session(workspace=name)
        filled = await engine.exec(first.id, "echo kept > a.txt; head -c 100M /dev/zero > big; df -m . | tail -1")
        assert "No space left" in filled.output and int(filled.output.split()[-5]) <= 32
        assert os.path.getsize(disks.image(workspace)) == 32 << 20  # the image, not the host's disk, filled
        await engine.destroy_session(first.id)
        subprocess.run(["umount", disks.mount_point(workspace)], check=True)  # as after a reboot
        second = await engine.create_session(workspace=name)  # mounts the image again
        assert (await engine.exec(second.id, "cat a.txt; ls -1")).output == "kept\na.txt\nbig\n"
        await engine.destroy_session(second.id)
        await engine.delete_workspace(name)
        assert not os.path.exists(disks.image(workspace)) and not os.path.ismount(disks.mount_point(workspace))
    finally:
        await engine.close()


async def test_destroy_removes_container_run_dir_and_record(engine: Engine, docker_client: Any) -> None:
    record = await engine.create_session()
    await engine.destroy_session(record.id)
    await engine.removals.drain()  # the container goes in the background (test_removals)
    assert not os.path.exists(record.run_dir)
    assert not docker_client.containers.list(all=True, filters={"label": "sandkasten.session=%s" % record.id})
    with pytest.raises(SessionNotFound):
        engine.get_session(record.id)
    with pytest.raises(SessionNotFound):
        await engine.exec(record.id, "true")
    kinds = [event.kind for event in engine.events(10) if event.session_id == record.id]
    assert kinds[:2] == ["destroyed", "created"]


async def test_a_container_removed_behind_the_engines_back_is_reported(engine: Engine, docker_client: Any) -> None:
    record = await engine.create_session()
    docker_client.containers.get(record.container_id).remove(force=True)
    with pytest.raises(SessionLost, match="was removed"):
        await engine.exec(record.id, "true")
    with pytest.raises(SessionNotFound):
        engine.get_session(record.id)
    assert any(e.kind == "destroyed" and "lost" in e.detail["reason"] for e in engine.events(10))


async def test_the_reaper_destroys_idle_and_expired_sessions(engine: Engine) -> None:
    idle = await engine.create_session()
    expired = await engine.create_session(ttl_s=1)
    keep = await engine.create_session()
    engine.store.update(idle.id, last_active=time.time() - 10_000)
    await asyncio.sleep(1.1)
    reaped = await engine.reap_once()
    assert sorted(reaped) == sorted([idle.id, expired.id])
    assert [r.id for r in engine.list_sessions()] == [keep.id]


ENGINE_SCRIPT = """
import asyncio, sys
from traitlets.config import Config
from sandkasten_kernel.engine.config import load_settings
from sandkasten_kernel.engine.engine import Engine

async def main():
    config = Config()
    config.Sandkasten.state_dir = sys.argv[1]
    config.SandkastenPool.images = {"base": 1}
    config.SandkastenPool.with_kernel = False
    engine = Engine(load_settings(None, config))
    await engine.start()
    record = await engine.create_session(image="base")
    await engine.exec(record.id, "cd /tmp && export KEPT=yes")
    print(record.id, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_killed_engine_leaves_sessions_a_new_engine_adopts(state_dir: str, docker_client: Any) -> None:
    process = subprocess.Popen([sys.executable, "-c", ENGINE_SCRIPT, state_dir], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    session_id = process.stdout.readline().strip()
    assert session_id, "the engine process printed no session"
    await asyncio.sleep(1.0)  # let its pool start a warm sandbox too
    process.send_signal(signal.SIGKILL)
    process.wait(10)

    engine = Engine(settings_for(state_dir, images={}))
    report = await engine.start()
    try:
        assert report["adopted"] == [session_id]
        assert (await engine.exec(session_id, "pwd; echo $KEPT")).output == "/tmp\nyes\n"
        assert len(report["removed_containers"]) <= 1  # the dead engine's warm sandbox, if it had one
        for name in report["removed_containers"]:
            assert not docker_client.containers.list(all=True, filters={"name": name})
    finally:
        await engine.destroy_session(session_id)
        await engine.close()


async def test_another_server_on_the_same_docker_leaves_our_sandboxes_alone(engine: Engine, short_dir: str) -> None:
    record = await engine.create_session()
    neighbour = Engine(settings_for(short_dir, images={}))
    report = await neighbour.start()  # its reconcile sees our containers on the same Docker engine
    try:
        assert not report["removed_containers"]
        assert (await engine.exec(record.id, "echo still here")).output == "still here\n"
    finally:
        await neighbour.close()


async def test_the_runtime_is_configurable_and_an_unknown_one_is_refused(state_dir: str, docker_client: Any) -> None:
    settings = settings_for(state_dir, images={})
    settings.security.runtime = "runc"  # named explicitly: what `runsc` (gVisor) would be, where installed
    engine = Engine(settings)
    await engine.start()
    try:
        record = await engine.create_session()
        assert docker_client.containers.get(record.container_id).attrs["HostConfig"]["Runtime"] == "runc"
        await engine.destroy_session(record.id)
    finally:
        await engine.close()
    settings.security.runtime = "no-such-runtime"
    with pytest.raises(ConfigError, match=r"security.runtime is .no-such-runtime., but Docker knows only .*runc"):
        await Engine(settings).start()


def test_a_corrupt_store_is_a_clear_error_and_is_left_alone(state_dir: str) -> None:
    db = os.path.join(state_dir, "sandkasten.db")
    with open(db, "wb") as f:
        f.write(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot be used") as error:
        Engine(settings_for(state_dir))
    assert "left as it is" in str(error.value)
    with open(db, "rb") as f:
        assert f.read(22) == b"this is not a database"


async def test_file_operations_and_streaming_exec_through_the_engine(engine: Engine) -> None:
    record = await engine.create_session()
    # Files go through the session's runner connection: the engine lends it, the runner confines paths.
    async with engine.runner(record.id) as runner:
        await runner.write("src/main.py", b"print('from a file')\n")
        assert await runner.read("src/main.py") == b"print('from a file')\n"
        assert [entry["name"] for entry in await runner.list("src")] == ["main.py"]
        assert (await runner.stat("src/main.py"))["size"] == 21
    chunks = [event async for event in engine.exec_stream(record.id, "python3 src/main.py; echo done")]
    assert "".join(c for c in chunks if isinstance(c, str)) == "from a file\ndone\n"
    async with engine.runner(record.id) as runner:
        await runner.mkdir("out")
        await runner.remove("src", recursive=True)
        assert [entry["name"] for entry in await runner.list()] == ["out"]
    assert engine.get_session(record.id).exec_count == 1
