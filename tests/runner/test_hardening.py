"""Each image, started with DESIGN.md's hardening, as seen from inside."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sandkasten_kernel.engine.errors import EngineError
from sandkasten_kernel.engine.sandbox_spec import check_run_dir
from tests.conftest import Target, start_container_runner, stop_container_runner


async def sh(target: Target, command: str) -> str:
    async with await target.client() as client:
        result = await client.exec(command)
    return result.output


async def test_runs_as_the_sandbox_user_with_no_privileges(sandbox: Target) -> None:
    assert await sh(sandbox, "id -u; id -g") == "1000\n1000\n"
    status = await sh(sandbox, "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status | tr -s '\\t' ' '")
    assert sorted(status.splitlines()) == ["CapBnd: 0000000000000000", "CapEff: 0000000000000000", "NoNewPrivs: 1"]


async def test_the_root_filesystem_is_read_only(sandbox: Target) -> None:
    assert "Read-only file system" in await sh(sandbox, "touch /usr/x 2>&1; echo > /etc/x 2>&1")
    assert await sh(sandbox, "touch /tmp/x ~/x /workspace/x && echo writable") == "writable\n"


async def test_there_is_no_network(sandbox: Target) -> None:
    assert await sh(sandbox, "ls /sys/class/net") == "lo\n"
    output = await sh(sandbox, "curl -sS -m 3 http://deb.debian.org/ 2>&1; echo rc=$?")
    assert "rc=0" not in output


async def test_only_the_run_directory_of_the_host_is_visible(sandbox: Target) -> None:
    mounts = await sh(sandbox, "awk '{print $2}' /proc/self/mounts | sort")
    binds = [m for m in mounts.split() if m.startswith(("/run/sandkasten", "/workspace", "/tmp", "/home"))]
    assert binds == ["/home/sandbox", "/run/sandkasten", "/tmp", "/workspace"]
    assert await sh(sandbox, "ls -A /run/sandkasten") == "control.sock\n"
    assert "docker.sock" not in await sh(sandbox, "ls /run /var/run 2>&1")


async def test_limits_are_applied(sandbox: Target) -> None:
    sandbox.container.reload()
    host_config = sandbox.container.attrs["HostConfig"]
    assert host_config["PidsLimit"] == 256
    assert host_config["Memory"] == 512 * 1024 * 1024
    assert host_config["ReadonlyRootfs"] is True
    assert host_config["CapDrop"] == ["ALL"]
    assert host_config["SecurityOpt"] == ["no-new-privileges"]
    assert host_config["NetworkMode"] == "none"
    # The pids limit holds: the runner survives a burst of forks beyond it.
    output = await sh(
        sandbox, "for i in $(seq 300); do sleep 5 & done 2>&1 | grep -c 'fork' ; kill $(jobs -p) 2>/dev/null; true"
    )
    assert int(output.strip() or 0) > 0
    assert (await sh(sandbox, "echo survived")) == "survived\n"


async def test_image_contents(sandbox: Target) -> None:
    base = await sh(
        sandbox,
        "python3 -c 'import ipykernel, sys; print(sys.version_info >= (3, 9))';"
        " git --version | cut -c1-11; curl --version | head -c 4",
    )
    assert base == "True\ngit version\ncurl"
    if sandbox.kind == "python":
        script = (
            "import numpy, pandas, matplotlib; matplotlib.use('Agg');"
            " print(numpy.arange(3).sum(), len(pandas.DataFrame({'a': [1]})))"
        )
        assert await sh(sandbox, 'python3 -c "%s" 2>&1 | tail -1' % script) == "3 1\n"
        assert (await sh(sandbox, "python3 -m venv /tmp/v && /tmp/v/bin/python -c 'print(1)'")) == "1\n"
    if sandbox.kind == "node":
        assert await sh(sandbox, "node -e 'console.log(1 + 1)'") == "2\n"
        assert (await sh(sandbox, "npm --version")).strip()[0].isdigit()


def test_a_named_workspace_volume_is_writable(docker_client: Any) -> None:
    volume = docker_client.volumes.create(labels={"sandkasten.test": "1"})
    try:
        target = start_container_runner(docker_client, "base", workspace_volume=volume.name)
        try:
            output = asyncio.run(sh(target, "echo kept > /workspace/f && cat /workspace/f && stat -c %u /workspace"))
            assert output == "kept\n1000\n"
        finally:
            stop_container_runner(target)
    finally:
        volume.remove(force=True)


def test_a_run_directory_too_long_for_sockets_is_refused(short_dir: str) -> None:
    with pytest.raises(EngineError, match="too long for Unix sockets"):
        check_run_dir("/tmp/" + "d" * 100)
    check_run_dir(short_dir)  # a short one is fine
