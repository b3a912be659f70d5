"""Hostile code in a notebook kernel: it fails inside the sandbox, and the next kernel is fine."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sandkasten_kernel.engine.engine import Engine
from tests.provisioner.conftest import Kernel, run, started_kernel


async def assert_a_new_kernel_works(engine: Engine) -> None:
    async with started_kernel() as (_, client):
        assert (await run(client, "print(2 + 2)"))["stdout"] == "4\n"


async def test_reboot_and_writing_to_root_fail(kernel: Kernel, kernel_engine: Engine) -> None:
    _, client = kernel
    outcome = await run(
        client,
        "import os\nprint(os.system('reboot 2>/dev/null') != 0)\n"
        "try:\n    open('/etc/owned', 'w')\nexcept OSError as exc:\n    print(type(exc).__name__)\n"
        "print(os.system('mount -t tmpfs none /mnt 2>/dev/null') != 0)",
    )
    assert outcome["stdout"] == "True\nOSError\nTrue\n"
    await assert_a_new_kernel_works(kernel_engine)


async def test_the_host_filesystem_is_not_visible(kernel: Kernel, host_secret: Path) -> None:
    _, client = kernel
    outcome = await run(
        client,
        "import os\nprint(os.path.exists(%r), open('/etc/hostname').read().strip())\n"
        "print(sorted(os.listdir('/run/sandkasten')))" % str(host_secret),
    )
    lines = outcome["stdout"].splitlines()
    assert lines[0] == "False sandbox"
    assert "kernel.json" in lines[1] and "control.sock" in lines[1]


async def test_a_fork_bomb_is_contained(kernel: Kernel, kernel_engine: Engine) -> None:
    manager, client = kernel
    outcome = await run(
        client,
        "import os, subprocess, time\n"
        "subprocess.Popen(['bash', '-c', ':(){ :|:& };:'], stderr=subprocess.DEVNULL)\n"
        "time.sleep(5)\n"
        "print(sum(name.isdigit() for name in os.listdir('/proc')))",  # counting needs no fork
    )
    assert 200 < int(outcome["stdout"]) <= 256  # the bomb filled the sandbox up to its pids limit, no further
    client.stop_channels()
    await manager.shutdown_kernel(now=True)  # removing the sandbox ends the bomb
    assert kernel_engine.list_sessions() == []
    await assert_a_new_kernel_works(kernel_engine)


async def test_a_memory_bomb_is_contained(kernel: Kernel, kernel_engine: Engine) -> None:
    manager, client = kernel
    bomb = asyncio.create_task(run(client, "hog = b'x' * (2 * 1024 ** 3)\nprint('allocated')"))
    while not bomb.done() and await manager.is_alive():
        await asyncio.sleep(0.2)
    if bomb.done():  # Python got a MemoryError before the kernel hit the limit
        assert bomb.result()["error"] == "MemoryError"
    else:  # the OOM killer ended the kernel inside the sandbox, and says so
        bomb.cancel()
        session = manager.provisioner.session_id  # type: ignore[union-attr]
        status = await kernel_engine.kernel_status(session)
        assert not status["alive"] and status["exit"] == "killed by SIGKILL"
    await assert_a_new_kernel_works(kernel_engine)
