"""An agent script, as people write them: a kernel through ``AsyncKernelManager``, driven line by line.

Run as a separate process (``python tests/provisioner/agent.py``), it prints one
JSON line per step and waits for a line on stdin before shutting its kernel
down, so a test can look at the kernel from outside while the agent holds it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

from jupyter_client.manager import AsyncKernelManager


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def execute(client: Any, code: str) -> dict[str, Any]:
    outputs: list[str] = []
    reply = await client.execute_interactive(
        code, timeout=60, output_hook=lambda m: outputs.append(m["content"].get("text", ""))
    )
    return {"status": reply["content"]["status"], "ename": reply["content"].get("ename"), "out": "".join(outputs)}


async def main() -> None:
    started = time.perf_counter()
    manager = AsyncKernelManager(kernel_name="sandkasten-python")
    await manager.start_kernel()
    client = manager.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    provisioner: Any = manager.provisioner
    say(
        step="started",
        ms=round((time.perf_counter() - started) * 1000),
        session=provisioner.session_id,
        kernel_id=manager.kernel_id,
        uid=os.getuid(),
        ip=manager.ip,
        shell_port=manager.shell_port,
    )
    say(
        step="executed", **await execute(client, "value = 6 * 7; open('/workspace/kept', 'w').write('x'); print(value)")
    )
    busy = client.execute("import time; time.sleep(60)")
    await asyncio.sleep(1.0)
    await manager.interrupt_kernel()
    while True:
        reply = await client.get_shell_msg(timeout=30)
        if reply["parent_header"].get("msg_id") == busy:
            break
    say(step="interrupted", ename=reply["content"].get("ename"))
    await manager.restart_kernel()
    await client.wait_for_ready(timeout=60)
    say(step="restarted", **await execute(client, "print(open('/workspace/kept').read(), 'value' in dir())"))
    sys.stdin.readline()  # the test looks from outside, then lets go
    client.stop_channels()
    await manager.shutdown_kernel()
    say(step="shut down")


asyncio.run(main())
