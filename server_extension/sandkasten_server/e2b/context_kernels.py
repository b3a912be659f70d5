"""E2B's extra code contexts: each a named kernel of its own in the sandbox (``engine.named_kernels``).

Code runs on them through a ``SessionKernels`` of their own, so an extra
context's execution has exactly the default context's behaviour (output cap,
a kernel that dies, interrupts). That ``SessionKernels`` reaches the kernels
through ``NamedKernelManager``, which answers what it asks of a kernel
manager: a client from the connection info the engine made, liveness and
interrupts from the runner (never the heartbeat alone, which a loaded sandbox
can miss while its kernel is fine). It keys its work by the record's id and
kernel id, so each context stands in as a record of its own (``stand_in``).

A sandbox has at most ``MAX_CONTEXTS`` beside the default one. The first
context made for a sandbox since this server started stops the named kernels
an earlier server left running there, so they never count against that bound.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient

from sandkasten_kernel.engine import Engine, SessionPaused, SessionRecord
from sandkasten_kernel.engine.named_kernels import (
    interrupt_named_kernel,
    named_kernel_status,
    named_kernels_running,
    restart_named_kernel,
    start_named_kernel,
    stop_named_kernel,
)

from ..session_kernels import MAX_OUTPUT_LIMIT, CodeResult, SessionKernels
from .base import E2BError
from .code_contexts import Context, Emit, SandboxContexts, extra_contexts_busy
from .paths import E2B_HOME, to_sandbox

MAX_CONTEXTS = 8  # per sandbox, beside the default one: each is a Python process (~50 MB)
SETTINGS_KEY = "sandkasten_e2b_context_kernels"


class KernelContext(Context):
    """A context made with ``POST /contexts``: the named kernel ``id`` in the session's sandbox."""

    def __init__(self, context_id: str, cwd: str, engine: Engine, session_id: str, kernels: SessionKernels) -> None:
        super().__init__(context_id, cwd)
        self.engine = engine
        self.session_id = session_id
        self.kernels = kernels
        self.key = "%s/%s" % (session_id, context_id)  # unique among every sandbox's contexts
        self.removed = False

    def stand_in(self, record: SessionRecord) -> SessionRecord:
        """``record`` as ``SessionKernels`` should see it for this context: the context's own lock and kernel."""
        return dataclasses.replace(record, id=self.key, kernel_id=self.key)

    async def run(self, record: SessionRecord, code: str, emit: Emit) -> CodeResult:
        if self.removed:  # it was waiting for its turn
            raise E2BError(404, "Context %s not found" % self.id)
        return await self.kernels.run(self.stand_in(record), code, math.inf, emit=emit, max_output=MAX_OUTPUT_LIMIT)

    async def interrupt(self) -> None:
        await interrupt_named_kernel(self.engine, self.session_id, self.id)

    async def alive(self) -> bool:
        try:
            return bool((await named_kernel_status(self.engine, self.session_id, self.id))["alive"])
        except SessionPaused:  # a frozen kernel is not a dead one: the execution goes on after the resume
            return True

    async def _restart(self) -> None:
        self.kernels.forget(self.key)
        await restart_named_kernel(self.engine, self.session_id, self.id)

    def first_cwd(self) -> str | None:
        return None if self.cwd == E2B_HOME else to_sandbox(self.cwd)

    async def remove(self) -> None:
        """Stop the kernel; an execution under way ends with an error."""
        self.removed = True
        await self.end_current("ContextRemoved", "Context was removed")
        self.close()
        await stop_named_kernel(self.engine, self.session_id, self.id)

    def close(self) -> None:
        self.kernels.forget(self.key)
        manager: NamedKernelManager = self.kernels.kernel_manager
        manager.drop(self.key)


class NamedKernelClient(AsyncKernelClient):
    """A client of a named kernel, which asks the runner whether the kernel is alive."""

    context_of_kernel: KernelContext | None = None

    async def is_alive(self) -> bool:
        if self.context_of_kernel is None:
            return True
        return await self.context_of_kernel.alive()


class NamedKernel:
    """What ``SessionKernels`` asks of one of a kernel manager's kernels."""

    last_activity = None  # E2B's sandboxes do not idle out (their ttl ends them)
    ready = None  # its restarts forget their client themselves (``KernelContext._restart``)

    def __init__(self, context: KernelContext, info: dict[str, Any]) -> None:
        self.context = context
        self.info = info

    def client(self, context: Any) -> NamedKernelClient:
        client = NamedKernelClient(context=context)
        client.load_connection_info(self.info)  # type: ignore[arg-type]  # a KernelConnectionInfo
        client.context_of_kernel = self.context
        return client

    def stop_restarter(self) -> None:
        return None


class NamedKernelManager:
    """The named kernels of every sandbox, as ``SessionKernels`` asks a kernel manager for them."""

    def __init__(self, context: Any) -> None:
        self.context = context  # the server's kernel manager's ZMQ context: its sockets cap a message's size
        self._kernels: dict[str, NamedKernel] = {}

    def add(self, context: KernelContext, info: dict[str, Any]) -> None:
        self._kernels[context.key] = NamedKernel(context, info)

    def drop(self, key: str) -> None:
        self._kernels.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._kernels

    def get_kernel(self, key: str) -> NamedKernel:
        return self._kernels[key]

    async def interrupt_kernel(self, key: str) -> None:
        await self._kernels[key].context.interrupt()

    async def restart_kernel(self, key: str) -> None:
        await self._kernels[key].context._restart()


def named_session_kernels(handler: Any) -> SessionKernels:
    """The server's one ``SessionKernels`` over every sandbox's named kernels (made at first use)."""
    kernels: SessionKernels | None = handler.settings.get(SETTINGS_KEY)
    if kernels is None:
        main = handler.service.kernels
        manager = NamedKernelManager(main.kernel_manager.context)
        kernels = SessionKernels(manager, handler.service.settings.quota.max_kernel_message_mb << 20)
        handler.settings[SETTINGS_KEY] = kernels
        handler.engine.busy_probes.append(extra_contexts_busy(handler.settings))
    return kernels


async def create_context(handler: Any, record: SessionRecord, contexts: SandboxContexts, cwd: str) -> Context:
    """A new context: a named kernel started in the sandbox (``MAX_CONTEXTS`` at most beside the default)."""
    async with contexts.creating:  # one at a time: the bound holds, and the first sweeps
        if len(contexts.extra) >= MAX_CONTEXTS:
            raise E2BError(
                400, "a sandbox has at most %d contexts beside the default one: remove one first" % MAX_CONTEXTS
            )
        engine: Engine = handler.engine
        if not contexts.swept:
            for name in await named_kernels_running(engine, record.id):  # an earlier server's
                await stop_named_kernel(engine, record.id, name)
            contexts.swept = True
        kernels = named_session_kernels(handler)
        context = KernelContext("c" + secrets.token_hex(4), cwd, engine, record.id, kernels)
        info = await start_named_kernel(engine, record.id, context.id)
        manager: NamedKernelManager = kernels.kernel_manager
        manager.add(context, info)
        contexts.extra[context.id] = context
    return context
