"""A session's variables in a warm sandbox, which started before the session existed.

A cold sandbox has them in its container's environment, so everything in it inherits them. A warm one
gets them in three places: exported in the exec shell; given to the runner (``set_env``), for the
kernels, processes and terminals it starts from then on; and set in the kernel already running, by a
silent execute (the runner only starts ipykernels). That kernel was started by the pool and has run no
user code yet, so its reply is trusted as far as reading its status.
"""

from __future__ import annotations

import asyncio
import queue
import shlex
import time
from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient

from .errors import EngineError
from .runner_client import RunnerClient

KERNEL_REPLY_TIMEOUT_S = 10.0


async def give_session_env(runner: RunnerClient, kernel: dict[str, Any] | None, env: dict[str, str]) -> None:
    """Export ``env`` in the shell, give it to the runner, and set it in the running kernel (``kernel``: its
    host-side connection info, None when none was started). The kernel's part runs beside the runner's."""
    if kernel is not None and (await runner.kernel_status())["alive"]:
        await asyncio.gather(_give_runner(runner, env), _set_in_kernel(kernel, env))
    else:
        await _give_runner(runner, env)


async def _give_runner(runner: RunnerClient, env: dict[str, str]) -> None:
    command = "export " + " ".join("%s=%s" % (name, shlex.quote(value)) for name, value in env.items())
    result = await runner.exec(command, env=None)
    if result.exit_code != 0:
        raise EngineError("could not set the session's environment: %s" % result.output.strip())
    await runner.set_env(env)


async def _set_in_kernel(kernel: dict[str, Any], env: dict[str, str]) -> None:
    # repr of a dict of str is a Python literal; the names are checked ones (check_ask) and the values any text.
    code = "import os as _sk_os\n_sk_os.environ.update(%r)\ndel _sk_os" % (env,)
    client = AsyncKernelClient()
    client.load_connection_info(kernel)  # type: ignore[arg-type]  # a dict, as its TypedDict says
    client.start_channels(iopub=False, stdin=False, hb=False, control=False)
    try:
        msg_id = client.execute(code, silent=True, store_history=False, allow_stdin=False)
        deadline = time.monotonic() + KERNEL_REPLY_TIMEOUT_S
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EngineError(
                    "the kernel did not take the session's environment within %gs" % KERNEL_REPLY_TIMEOUT_S
                )
            try:
                reply = await client.get_shell_msg(timeout=remaining)
            except (queue.Empty, asyncio.TimeoutError):
                continue
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                break
        if reply["content"].get("status") != "ok":
            raise EngineError("the kernel refused the session's environment: %s" % reply["content"].get("evalue", ""))
    finally:
        client.stop_channels()
