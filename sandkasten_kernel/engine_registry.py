"""Which engine kernel provisioners use: the server's own, or one this process makes.

The server extension registers its engine (which owns the warm pool) for its
event loop, with a way to find out who is starting a kernel. Without one, a
process (an agent script with ``AsyncKernelManager``, say) gets an engine of its
own from sandkasten.yaml on first use, which neither reconciles nor keeps a pool.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from .engine import Engine, EngineError, find_config, load_settings


@dataclass(frozen=True)
class KernelUser:
    """Who is starting a kernel, as the engine records sessions."""

    owner: str  # holds the kernel's session; quotas count per owner
    workspace_owner: str | None  # whose named workspace it mounts (None: the server's own)


KernelUserLookup = Callable[[], KernelUser | None]


class EngineRegistry:
    """The engine and kernel-user lookup for each event loop, and the kernels of process-own engines."""

    def __init__(self) -> None:
        self._engines: dict[asyncio.AbstractEventLoop, Engine] = {}
        self._kernel_users: dict[asyncio.AbstractEventLoop, KernelUserLookup] = {}
        # Sandboxes of kernels a process-own engine started: released when the process
        # exits, as a local kernel ends with the process that launched it (a client
        # such as `jupyter console` only asks the kernel to shut down, never the manager).
        self._process_engines: set[Engine] = set()
        self._process_kernels: dict[str, Engine] = {}
        self._exit_hook_registered = False

    def use(self, engine: Engine | None, kernel_user: KernelUserLookup | None = None) -> None:
        """Make ``engine`` the one provisioners on the current event loop use (None: forget it)."""
        loop = asyncio.get_running_loop()
        if engine is None:
            self._engines.pop(loop, None)
            self._kernel_users.pop(loop, None)
            return
        self._engines[loop] = engine
        if kernel_user is None:
            self._kernel_users.pop(loop, None)
        else:
            self._kernel_users[loop] = kernel_user

    def starting_user(self) -> KernelUser | None:
        """Who is starting a kernel now, by the lookup registered for this event loop."""
        lookup = self._kernel_users.get(asyncio.get_running_loop())
        return lookup() if lookup is not None else None

    async def engine(self) -> Engine:
        """The engine for this event loop; without a registered one, a process-own engine."""
        loop = asyncio.get_running_loop()
        engine = self._engines.get(loop)
        if engine is None:
            engine = Engine(load_settings(find_config()))
            await engine.start(pool=False, reaper=False, reconcile=False)
            self._engines[loop] = engine
            self._process_engines.add(engine)
            if not self._exit_hook_registered:
                atexit.register(self.release_process_kernels)
                self._exit_hook_registered = True
        return engine

    def kernel_started(self, session_id: str, engine: Engine) -> None:
        """Note a kernel's new sandbox, so a process-own engine's is released at exit."""
        if engine in self._process_engines:
            self._process_kernels[session_id] = engine

    def kernel_ended(self, session_id: str) -> None:
        """Forget a sandbox its provisioner released itself."""
        self._process_kernels.pop(session_id, None)

    def release_process_kernels(self) -> None:
        """Destroy the sandboxes of kernels process-own engines started (at process exit)."""
        for session_id, engine in list(self._process_kernels.items()):
            with contextlib.suppress(EngineError):
                engine.destroy_session_now(session_id, "the process that started its kernel exited")
        self._process_kernels.clear()


registry = EngineRegistry()  # the one every provisioner in this process consults
