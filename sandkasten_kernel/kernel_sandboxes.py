"""Where a kernel's sandbox comes from: the engine in this process, or a Sandkasten server's pool.

``KernelSandboxes`` is what the provisioner needs, and the spec of both ways:

- ``EngineSandboxes``: an engine in this process, the server's own (which owns
  the warm pool) or, with no server to ask, one the process makes, whose
  kernels start cold;
- ``ServerSandboxes``: a Sandkasten server on this host, over its REST API.
  The kernel comes from the server's warm pool; the server lets this process's
  user connect to its sockets, and the process then talks to the kernel
  directly, as to a local one.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .engine import Engine, EngineError
from .engine.workspace_names import name_from_template


@dataclass(frozen=True)
class KernelUser:
    """Who is starting a kernel, as the engine records sessions."""

    owner: str  # holds the kernel's session; quotas count per owner
    workspace_owner: str | None  # whose named workspace it mounts (None: the server's own)


KernelUserLookup = Callable[[], KernelUser | None]


@dataclass(frozen=True)
class SandboxRequest:
    """What a kernel asks of its sandbox (its kernelspec's provisioner config; sandkasten.yaml caps it)."""

    image: str | None = None
    workspace: str | None = None
    limits: dict[str, Any] | None = None
    network: bool | None = None


class KernelSandboxes(abc.ABC):
    """A kernel provisioner's source of sandboxes, and its way to their kernels."""

    releases_at_exit = False  # whether this process's exit must release the sandboxes it claimed

    @abc.abstractmethod
    async def claim(self, kernel_id: str, wanted: SandboxRequest) -> str:
        """Claim a sandbox for kernel ``kernel_id`` (warm if there is one); its session id."""

    @abc.abstractmethod
    async def bind(self, session_id: str) -> str:
        """The id of an existing session whose sandbox the kernel runs in (it raises if there is none)."""

    @abc.abstractmethod
    async def start_kernel(self, session_id: str, kernel_id: str) -> dict[str, Any]:
        """The kernel's connection info, starting it if it does not run (a restart keeps the info)."""

    @abc.abstractmethod
    async def kernel_status(self, session_id: str) -> dict[str, Any]:
        """``alive`` and ``exit_code`` of the session's kernel."""

    @abc.abstractmethod
    async def interrupt_kernel(self, session_id: str) -> None:
        """SIGINT to the session's kernel."""

    @abc.abstractmethod
    async def stop_kernel(self, session_id: str) -> None:
        """Stop the session's kernel; the sandbox stays, and the kernel can start again."""

    @abc.abstractmethod
    async def release(self, session_id: str, kernel_id: str, bound: bool) -> None:
        """The kernel is done: destroy its sandbox, or for a ``bound`` one, let go of the kernel only."""

    @abc.abstractmethod
    def release_now(self, session_id: str, reason: str) -> None:
        """Destroy the sandbox without an event loop (at process exit)."""


class EngineSandboxes(KernelSandboxes):
    """Sandboxes from an engine in this process: the server's own, or the process's (cold starts)."""

    def __init__(self, engine: Engine, kernel_user: KernelUserLookup | None, releases_at_exit: bool) -> None:
        self.engine = engine
        self.kernel_user = kernel_user
        self.releases_at_exit = releases_at_exit

    async def claim(self, kernel_id: str, wanted: SandboxRequest) -> str:
        user = self.kernel_user() if self.kernel_user is not None else None
        workspace = wanted.workspace or self.engine.settings.workspace.kernels or None
        if workspace is not None and "{username}" in workspace:
            # A workspace per person: a kernel nobody asked for (an agent's) gets none.
            workspace = name_from_template(workspace, user.owner) if user is not None else None
        record = await self.engine.create_session(
            image=wanted.image,
            workspace=workspace,
            limits=wanted.limits,
            network=wanted.network,
            owner=user.owner if user else "kernel:%s" % kernel_id,
            workspace_owner=user.workspace_owner if user else None,
            wants_kernel=True,
        )
        return record.id

    async def bind(self, session_id: str) -> str:
        return self.engine.get_session(session_id).id

    async def start_kernel(self, session_id: str, kernel_id: str) -> dict[str, Any]:
        return await self.engine.start_kernel(session_id, kernel_id=kernel_id)

    async def kernel_status(self, session_id: str) -> dict[str, Any]:
        return await self.engine.kernel_status(session_id)

    async def interrupt_kernel(self, session_id: str) -> None:
        await self.engine.interrupt_kernel(session_id)

    async def stop_kernel(self, session_id: str) -> None:
        await self.engine.stop_kernel(session_id)

    async def release(self, session_id: str, kernel_id: str, bound: bool) -> None:
        if bound:
            self.engine.release_kernel(session_id)
        else:
            # A process that claimed its own sandbox may exit next: it waits for the removal.
            reason = "kernel %s shut down" % kernel_id
            await self.engine.destroy_session(session_id, reason, wait=self.releases_at_exit)

    def release_now(self, session_id: str, reason: str) -> None:
        with contextlib.suppress(EngineError):  # at exit there is nobody left to tell
            self.engine.destroy_session_now(session_id, reason)
