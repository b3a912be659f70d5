"""Where kernel provisioners get their sandboxes: the server's engine, a server's API, or a cold engine.

In a Sandkasten server, the extension registers its engine (which owns the warm
pool) for its event loop, with a way to find out who is starting a kernel.
Anywhere else (an agent's ``AsyncKernelManager``, nbclient, ``jupyter
console``), the first kernel finds sandkasten.yaml as every entry point does,
and asks the server it describes for warm sandboxes. With no server answering
there, the process makes an engine of its own, which neither reconciles nor
keeps a pool (its kernels start cold), and says so once in the log.
"""

from __future__ import annotations

import asyncio
import atexit
import logging

from .engine import Engine, find_config, load_settings
from .kernel_sandboxes import EngineSandboxes, KernelSandboxes, KernelUser, KernelUserLookup
from .server_sandboxes import ServerSandboxes, server_url

__all__ = ["EngineRegistry", "KernelUser", "KernelUserLookup", "registry"]


class EngineRegistry:
    """The kernel sandboxes for each event loop, and the ones to release when this process exits."""

    def __init__(self) -> None:
        self._sandboxes: dict[asyncio.AbstractEventLoop, KernelSandboxes] = {}
        self._finding: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
        # Sandboxes of kernels this process claimed for itself: released when the process
        # exits, as a local kernel ends with the process that launched it (a client
        # such as `jupyter console` only asks the kernel to shut down, never the manager).
        self._held: dict[str, KernelSandboxes] = {}
        self._exit_hook_registered = False

    def use(self, engine: Engine | None, kernel_user: KernelUserLookup | None = None) -> None:
        """Make ``engine`` the one provisioners on the current event loop use (None: forget it)."""
        loop = asyncio.get_running_loop()
        if engine is None:
            self._sandboxes.pop(loop, None)
        else:
            self._sandboxes[loop] = EngineSandboxes(engine, kernel_user, releases_at_exit=False)

    async def sandboxes(self, log: logging.Logger | logging.LoggerAdapter[logging.Logger]) -> KernelSandboxes:
        """The sandboxes for this event loop: registered, else a server's, else a cold engine of this process."""
        loop = asyncio.get_running_loop()
        found = self._sandboxes.get(loop)
        if found is not None:
            return found
        async with self._finding.setdefault(loop, asyncio.Lock()):  # concurrent first kernels look once
            found = self._sandboxes.get(loop)
            if found is None:
                found = self._sandboxes[loop] = await self._find(log)
        return found

    async def _find(self, log: logging.Logger | logging.LoggerAdapter[logging.Logger]) -> KernelSandboxes:
        path = find_config()
        settings = load_settings(path)
        server = await ServerSandboxes.find(settings)
        if server is not None:
            return server
        log.warning(
            "sandkasten: no Sandkasten server answers at %s (configuration: %s), so this process starts its "
            "kernels' sandboxes itself, cold; start `sandkasten serve` for warm ones",
            server_url(settings),
            path or "defaults",
        )
        engine = Engine(settings)
        await engine.start(pool=False, reaper=False, reconcile=False)
        return EngineSandboxes(engine, None, releases_at_exit=True)

    def kernel_started(self, session_id: str, sandboxes: KernelSandboxes) -> None:
        """Note a kernel's new sandbox, so one this process claimed for itself is released at exit."""
        if sandboxes.releases_at_exit:
            self._held[session_id] = sandboxes
            if not self._exit_hook_registered:
                atexit.register(self.release_held)
                self._exit_hook_registered = True

    def kernel_ended(self, session_id: str) -> None:
        """Forget a sandbox its provisioner released itself."""
        self._held.pop(session_id, None)

    def release_held(self) -> None:
        """Destroy the sandboxes of kernels this process claimed for itself (at process exit)."""
        for session_id, sandboxes in list(self._held.items()):
            sandboxes.release_now(session_id, "the process that started its kernel exited")
        self._held.clear()


registry = EngineRegistry()  # the one every provisioner in this process consults
