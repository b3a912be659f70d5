"""The provisioner through jupyter_client's AsyncKernelManager, as an agent script uses it."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning.factory import KernelProvisionerFactory

from sandkasten_kernel.engine.engine import Engine
from sandkasten_kernel.kernelspecs import kernel_name
from tests.provisioner.conftest import Kernel, run, started_kernel, wait_warm


def session_of(engine: Engine, manager: AsyncKernelManager) -> str:
    provisioner = manager.provisioner
    assert provisioner is not None
    session_id: str = provisioner.session_id  # type: ignore[attr-defined]
    return session_id


async def test_the_kernel_is_a_warm_session_with_its_kernel_id(kernel: Kernel, kernel_engine: Engine) -> None:
    manager, _ = kernel
    record = kernel_engine.get_session(session_of(kernel_engine, manager))
    assert record.warm
    assert record.kernel_id == manager.kernel_id
    assert record.owner == "kernel:%s" % manager.kernel_id
    assert manager.get_connection_info()["transport"] == "ipc"


async def test_execute_streams_and_rich_output(kernel: Kernel) -> None:
    _, client = kernel
    outcome = await run(client, "import sys, os\nprint('out', os.getuid()); print('err', file=sys.stderr)\n6 * 7")
    assert outcome["stdout"] == "out 1000\n" and outcome["stderr"] == "err\n"
    assert outcome["data"] == [{"text/plain": "42"}]
    plot = await run(
        client,
        "%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()",
    )
    png = [data["image/png"] for data in plot["data"] if "image/png" in data]
    assert png, plot
    assert base64.b64decode(png[0]).startswith(b"\x89PNG")


async def test_an_agent_can_exec_in_the_notebooks_sandbox(kernel: Kernel, kernel_engine: Engine) -> None:
    manager, client = kernel
    await run(client, "open('/workspace/from-kernel.txt', 'w').write('shared')")
    result = await kernel_engine.exec(session_of(kernel_engine, manager), "cat /workspace/from-kernel.txt")
    assert result.output == "shared"


async def test_interrupt_a_busy_loop(kernel: Kernel) -> None:
    manager, client = kernel
    running = asyncio.create_task(run(client, "while True:\n    pass", stop_on_error=False))
    await asyncio.sleep(1.0)
    await manager.interrupt_kernel()
    outcome = await asyncio.wait_for(running, 30)
    assert outcome["error"] == "KeyboardInterrupt"
    assert (await run(client, "print('alive')"))["stdout"] == "alive\n"


async def test_restart_keeps_the_sandbox_and_its_files(kernel: Kernel, kernel_engine: Engine) -> None:
    manager, client = kernel
    session = session_of(kernel_engine, manager)
    await run(client, "remembered = 1\nopen('kept.txt', 'w').write('kept')")
    await manager.restart_kernel()
    await client.wait_for_ready(timeout=60)
    assert session_of(kernel_engine, manager) == session
    outcome = await run(client, "print(open('kept.txt').read())\nremembered")
    assert outcome["stdout"] == "kept\n" and outcome["error"] == "NameError"


async def test_shutdown_releases_the_sandbox(kernel: Kernel, kernel_engine: Engine, docker_client: object) -> None:
    manager, client = kernel
    record = kernel_engine.get_session(session_of(kernel_engine, manager))
    client.stop_channels()
    await manager.shutdown_kernel()
    assert not await manager.is_alive()
    assert kernel_engine.list_sessions() == []
    await kernel_engine.removals.drain()  # the container and run directory go in the background
    assert not os.path.exists(record.run_dir)


async def test_a_named_workspace_outlives_the_kernel(kernel_engine: Engine) -> None:
    async with started_kernel("sandkasten-python-ws") as (manager, client):
        record = kernel_engine.get_session(session_of(kernel_engine, manager))
        assert record.workspace and not record.warm  # named workspaces start cold
        await run(client, "open('/workspace/notes.txt', 'w').write('from the notebook')")
    again = await kernel_engine.create_session(workspace=record.workspace)
    assert (await kernel_engine.exec(again.id, "cat /workspace/notes.txt")).output == "from the notebook"
    await kernel_engine.destroy_session(again.id)
    await kernel_engine.delete_workspace(record.workspace)


async def test_an_empty_pool_starts_the_kernel_cold(kernel_engine: Engine) -> None:
    await kernel_engine.resize_pool("python", 0)
    async with started_kernel() as (manager, client):
        assert not kernel_engine.get_session(session_of(kernel_engine, manager)).warm
        assert (await run(client, "print(1 + 1)"))["stdout"] == "2\n"


async def test_a_new_manager_reattaches_from_the_provisioner_info(kernel: Kernel, kernel_engine: Engine) -> None:
    """What a restarted server does: rebuild the manager from the saved provisioner info."""
    manager, client = kernel
    await run(client, "survivor = 'still here'")
    saved = await manager.provisioner.get_provisioner_info()  # type: ignore[union-attr]
    client.stop_channels()

    reborn = AsyncKernelManager(kernel_name=kernel_name("python"), kernel_id=manager.kernel_id)
    reborn.provisioner = KernelProvisionerFactory.instance(parent=reborn.parent).create_provisioner_instance(
        manager.kernel_id, reborn.kernel_spec, parent=reborn
    )
    await reborn.provisioner.load_provisioner_info(saved)
    reborn.load_connection_info(reborn.provisioner.connection_info)
    fresh = reborn.client()
    fresh.start_channels()
    try:
        await fresh.wait_for_ready(timeout=60)
        assert (await run(fresh, "print(survivor)"))["stdout"] == "still here\n"
        assert await reborn.is_alive()
    finally:
        fresh.stop_channels()


async def test_the_kernelspec_cannot_exceed_the_configuration(kernel_engine: Engine, kernelspecs: Path) -> None:
    import json

    folder = kernelspecs / "kernels" / "greedy"
    folder.mkdir()
    spec = json.loads((kernelspecs / "kernels" / kernel_name("python") / "kernel.json").read_text())
    spec["metadata"]["kernel_provisioner"]["config"]["limits"] = {"memory_mb": 1 << 20}
    (folder / "kernel.json").write_text(json.dumps(spec))
    manager = AsyncKernelManager(kernel_name="greedy")
    try:
        await manager.start_kernel()
    except Exception as exc:
        assert "exceeds the configured maximum" in str(exc)
    else:
        raise AssertionError("a kernelspec asked for 1 TiB of memory and got it")
    await wait_warm(kernel_engine)


def test_the_kernelspecs_install_where_jupyter_finds_them(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "sandkasten_server.cli", "kernelspec", "install", "--prefix", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SANDKASTEN_CONFIG": ""},
    )
    assert result.returncode == 0, result.stderr
    installed = sorted(p.name for p in (tmp_path / "share/jupyter/kernels").iterdir())
    assert installed == ["sandkasten-base", "sandkasten-node", "sandkasten-python"]
    text = (tmp_path / "share/jupyter/kernels/sandkasten-python/kernel.json").read_text()
    assert '"display_name": "Python 3 (Sandkasten)"' in text and "sandkasten-provisioner" in text


async def test_nbclient_runs_a_notebook_in_a_sandbox(kernel_engine: Engine) -> None:
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    notebook.cells = [
        nbformat.v4.new_code_cell("import os\nprint(os.getuid(), os.uname().nodename)"),  # type: ignore[no-untyped-call]
        nbformat.v4.new_code_cell("6 * 7"),  # type: ignore[no-untyped-call]
    ]
    await NotebookClient(notebook, kernel_name=kernel_name("python"), timeout=60).async_execute()
    assert notebook.cells[0].outputs[0]["text"] == "1000 sandbox\n"
    assert notebook.cells[1].outputs[0]["data"]["text/plain"] == "42"
    assert kernel_engine.list_sessions() == []  # released when the notebook finished


def test_a_kernel_of_an_exiting_process_is_released(state_dir: str, kernelspecs: Path, tmp_path: Path) -> None:
    """Like `jupyter console`, which only asks the kernel to shut down: the sandbox goes with the process."""
    import subprocess
    import sys

    config = tmp_path / "sandkasten.yaml"
    config.write_text("state_dir: %s\n" % state_dir)
    script = (
        "import logging; logging.basicConfig()  # an agent that shows its log\n"
        "from jupyter_client.manager import KernelManager\n"
        "km = KernelManager(kernel_name='sandkasten-python'); km.start_kernel()\n"
        "client = km.client(); client.start_channels(); client.wait_for_ready(timeout=60)\n"
        "print(client.execute_interactive('pass', timeout=30)['content']['status'])\n"
        "client.shutdown()  # the kernel exits; the manager is never told\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SANDKASTEN_CONFIG": str(config)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    # No server answers for this configuration: the process starts its sandbox itself, cold, and says so once.
    assert result.stderr.count("no Sandkasten server answers") == 1, result.stderr
    assert os.listdir(os.path.join(state_dir, "sandboxes")) == []  # the state_dir fixture checks containers


def test_jupyter_console(state_dir: str, kernelspecs: Path, tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    config = tmp_path / "sandkasten.yaml"
    config.write_text("state_dir: %s\n" % state_dir)
    console = shutil.which("jupyter-console", path=os.path.dirname(sys.executable))
    assert console, "jupyter-console is a test dependency"
    result = subprocess.run(
        [console, "--kernel", kernel_name("python"), "--simple-prompt"],
        input="import os\nprint('console in', os.uname().nodename)\nexit\n",
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SANDKASTEN_CONFIG": str(config)},
    )
    assert result.returncode == 0, result.stderr
    assert "console in sandbox" in result.stdout
    assert os.listdir(os.path.join(state_dir, "sandboxes")) == []
