"""``SandkastenProvisioner``: every Jupyter kernel in its own sandbox.

Registered as the ``sandkasten-provisioner`` kernel provisioner. A kernelspec
selects it with ``metadata.kernel_provisioner``; its ``config`` sets the image,
limits, network and workspace (the engine caps all of them by sandkasten.yaml).

The kernel's sandbox is an ordinary engine session: it is claimed from the warm
pool (its kernel already running), shows in the session list with its kernel
id, and takes ``exec`` like any other. The kernel's sockets are ZMQ ``ipc``
files in the sandbox's run directory; nothing listens on TCP.

A kernel can also be bound to a session that exists already: the server
extension starts a session's kernel through Jupyter Server's kernel manager
with ``sandkasten_session_id=<id>``, so a person can open a console on the
kernel an agent drives. A bound kernel's shutdown stops the kernel only; the
session stays, with its shell and files.

Which sandboxes (``engine_registry``): in a Sandkasten server, its own engine
and warm pool, registered with ``use_engine``. In any other process (an agent
script with ``AsyncKernelManager``, nbclient, ``jupyter console``), the warm
pool of the Sandkasten server its sandkasten.yaml describes, over that
server's API: the server lets this process's user connect to the kernel's
sockets, and the kernel is this process's as a local one would be. With no
server answering, the process starts sandboxes itself, cold.

Whose kernel: the kernel manager does not say who asked for a kernel, so the
server extension registers, with its engine, a way to find out (the user of the
Jupyter request being served). The kernel's session then belongs to that user:
it counts against their quotas, shows in their session list, and mounts their
named workspace. Only a kernel no user asked for (an agent script's own) is
owned by ``kernel:<id>``, with the server's own workspaces.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase
from traitlets import Bool, Dict, Unicode

from .engine import Engine, EngineError, SessionLost, SessionNotFound
from .engine_registry import registry
from .kernel_sandboxes import KernelSandboxes, KernelUser, KernelUserLookup, SandboxRequest

__all__ = ["KernelUser", "KernelUserLookup", "SandkastenProvisioner", "use_engine"]

POLL_INTERVAL_S = 0.1


def use_engine(engine: Engine | None, kernel_user: KernelUserLookup | None = None) -> None:
    """Make ``engine`` the one provisioners on the current event loop use (None: forget it).

    ``kernel_user``, called when a kernel's sandbox is claimed (in the task that
    asked for the kernel), says who is starting it; None from it: nobody known.
    """
    registry.use(engine, kernel_user)


def _as_kernel_manager_expects(info: dict[str, Any]) -> KernelConnectionInfo:
    """The KernelManager compares keys as bytes."""
    converted = dict(info)
    if isinstance(converted.get("key"), str):
        converted["key"] = converted["key"].encode()
    return converted  # type: ignore[return-value]


class SandkastenProvisioner(KernelProvisionerBase):
    """A jupyter_client kernel provisioner whose kernel runs in a sandbox (see the module docstring)."""

    image = Unicode(None, allow_none=True, help="Image name (base, python, node) or reference.").tag(config=True)
    limits = Dict(help="cpus, memory_mb, pids for this kernel's sandbox, within the configured maxima.").tag(
        config=True
    )
    network = Bool(None, allow_none=True, help="Network for the sandbox, if the configuration allows it.").tag(
        config=True
    )
    workspace = Unicode(None, allow_none=True, help="A named workspace to mount at /workspace.").tag(config=True)

    session_id: str | None = None
    bound = False  # the session existed before this kernel (see the module docstring)
    _exit_code: int | None = None

    @property
    def has_process(self) -> bool:
        return self.session_id is not None

    # -- launch ------------------------------------------------------------------------

    async def _sandboxes(self) -> KernelSandboxes:
        return await registry.sandboxes(self.log)

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        """Claim the sandbox (once: a restart keeps it, so its files stay)."""
        sandboxes = await self._sandboxes()
        bind_to = kwargs.pop("sandkasten_session_id", None)
        if self.session_id is None and bind_to is not None:
            self.session_id = await sandboxes.bind(bind_to)
            self.bound = True
        if self.session_id is None:
            wanted = SandboxRequest(self.image, self.workspace, dict(self.limits) or None, self.network)
            self.session_id = await sandboxes.claim(self.kernel_id, wanted)
            registry.kernel_started(self.session_id, sandboxes)
        kwargs = await super().pre_launch(**kwargs)
        kwargs.setdefault("cmd", [])  # the runner starts the kernel; the kernelspec's argv is not run here
        return kwargs

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        assert self.session_id is not None
        self._exit_code = None
        info = await (await self._sandboxes()).start_kernel(self.session_id, self.kernel_id)
        self.connection_info = _as_kernel_manager_expects(info)
        return self.connection_info

    # -- process-like control -----------------------------------------------------------

    async def poll(self) -> int | None:
        if self.session_id is None:
            return self._exit_code
        try:
            status = await (await self._sandboxes()).kernel_status(self.session_id)
        except (SessionNotFound, SessionLost):
            self._exit_code = self._exit_code if self._exit_code is not None else 1
            return self._exit_code
        except EngineError as exc:  # the runner does not answer (a fork bomb holds every pid, say)
            self.log.warning("kernel %s: cannot reach its sandbox's runner: %s", self.kernel_id, exc)
            return None
        if self._exit_code is not None:
            return self._exit_code
        if status["alive"]:
            return None
        code = status.get("exit_code")
        return code if isinstance(code, int) else 1

    async def wait(self) -> int | None:
        while (code := await self.poll()) is None:
            await asyncio.sleep(POLL_INTERVAL_S)
        return code

    async def send_signal(self, signum: int) -> None:
        if self.session_id is None:
            return
        sandboxes = await self._sandboxes()
        try:
            if signum == signal.SIGINT:
                await sandboxes.interrupt_kernel(self.session_id)
            elif signum in (signal.SIGTERM, signal.SIGKILL):
                await sandboxes.stop_kernel(self.session_id)
            # Other signals have no meaning for a kernel behind the runner.
        except SessionNotFound:  # destroyed, and the kernel with it
            pass
        except EngineError as exc:  # a shutdown must still go on to kill() and cleanup()
            self.log.warning("kernel %s: signal %d not delivered: %s", self.kernel_id, signum, exc)

    async def kill(self, restart: bool = False) -> None:
        if self.session_id is None:
            return
        try:
            await (await self._sandboxes()).stop_kernel(self.session_id)
        except SessionNotFound:  # destroyed, and the kernel with it
            self._exit_code = -9
        except EngineError as exc:
            if restart:
                raise
            # Unreachable runner: cleanup() removes the whole sandbox next, which ends the kernel.
            self.log.warning("kernel %s: stop failed (%s); the sandbox will be removed", self.kernel_id, exc)
            self._exit_code = -9

    async def terminate(self, restart: bool = False) -> None:
        await self.kill(restart)

    async def cleanup(self, restart: bool = False) -> None:
        """On shutdown the sandbox is released (its named workspace stays), unless the kernel was
        bound to a session that outlives it; a restart keeps it."""
        if restart or self.session_id is None:
            return
        session_id, self.session_id = self.session_id, None
        registry.kernel_ended(session_id)
        try:
            await (await self._sandboxes()).release(session_id, self.kernel_id, self.bound)
        except SessionNotFound:
            pass
        except EngineError as exc:
            self.log.error("could not release sandbox %s: %s", session_id, exc)

    # -- persistence ---------------------------------------------------------------------

    async def get_provisioner_info(self) -> dict[str, Any]:
        info: dict[str, Any] = await super().get_provisioner_info()
        info["session_id"] = self.session_id
        info["bound"] = self.bound
        return info

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        """Re-attach (after a server restart) to the kernel running in that session's sandbox."""
        await super().load_provisioner_info(provisioner_info)
        self.session_id = provisioner_info.get("session_id")
        self.bound = bool(provisioner_info.get("bound", False))
        if self.session_id is not None:
            info = await (await self._sandboxes()).start_kernel(self.session_id, self.kernel_id)
            self.connection_info = _as_kernel_manager_expects(info)
