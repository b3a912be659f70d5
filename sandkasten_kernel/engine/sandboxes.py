"""Making and removing sandboxes: a hardened container, its run directory, a ready runner.

A sandbox is ready when its runner answers ``hello`` (its shell is up by then)
and, when asked for, its kernel's sockets exist. The pool and cold session
starts both come through here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from dataclasses import dataclass, field
from typing import Any

from .docker_backend import DockerBackend
from .errors import EngineError
from .kernel_connection import (
    kernel_connection_info,
    kernel_socket_names,
    load_connection_info,
    save_connection_info,
)
from .run_dir_names import CONTROL_SOCKET, pin, unpin
from .run_dirs import remove_run_dir
from .runner_client import RunnerClient
from .sandbox_init import close_pidfd, kill_init
from .sandbox_spec import EgressAttachment, SandboxLimits, SandboxSpec, check_run_dir
from .workspace_names import WorkspaceRef

LABEL_SESSION = "sandkasten.session"
LABEL_POOL = "sandkasten.pool"
LABEL_WORKSPACE = "sandkasten.workspace"
# Which state directory (so which server) a sandbox belongs to: several servers may
# share one Docker engine, and each reconciles only its own sandboxes.
LABEL_STATE_DIR = "sandkasten.state_dir"
READY_TIMEOUT_S = 60.0


@dataclass
class Sandbox:
    """A running sandbox: its container, run directory and limits, and its kernel's connection info once started."""

    id: str
    container_id: str
    image: str
    run_dir: str
    limits: SandboxLimits
    network: bool
    workspace: str | None = None  # the workspace name, not the volume
    kernel: dict[str, Any] | None = field(default=None, repr=False)  # host-side connection info
    warm: bool = False  # claimed from the warm pool
    init_pidfd: int | None = field(default=None, repr=False)  # the runner, PID 1 (sandbox_init)

    def kill(self) -> bool:
        """Kill the runner, and with it every process in the sandbox, at once; False when this host
        cannot (it holds no pidfd of it, or may not signal it): the container's removal still will."""
        return self.init_pidfd is not None and kill_init(self.init_pidfd)

    def release_init(self) -> None:
        """Close the pidfd of the runner (once the container is removed)."""
        pidfd, self.init_pidfd = self.init_pidfd, None
        close_pidfd(pidfd)

    @property
    def socket(self) -> str:
        """The host path of the runner's control socket."""
        return os.path.join(self.run_dir, CONTROL_SOCKET)

    async def connect(self, timeout: float = 5.0) -> RunnerClient:
        """A new connection to the sandbox's runner, retried until ``timeout`` while it starts."""
        return await RunnerClient.connect(self.socket, timeout=timeout)


def new_sandbox_id() -> str:
    """A new random id for a sandbox, and so for its session and run directory."""
    # Short: it names the run directory, whose socket paths must fit 107 bytes.
    return secrets.token_hex(6)


class SandboxFactory:
    """Starts sandboxes until their runner is ready, and removes them with their run directories."""

    def __init__(self, backend: DockerBackend, state_dir: str, runtime: str | None = None) -> None:
        self.backend = backend
        self.runtime = runtime or None
        self.sandboxes_dir = os.path.join(state_dir, "sandboxes")
        # The host's own copy of each kernel's connection info (never read back from a run directory).
        self.connections_dir = os.path.join(state_dir, "kernel-connections")
        self.state_dir = os.path.realpath(state_dir)
        os.makedirs(self.sandboxes_dir, mode=0o755, exist_ok=True)
        os.makedirs(self.connections_dir, mode=0o700, exist_ok=True)
        check_run_dir(os.path.join(self.sandboxes_dir, new_sandbox_id()))

    def run_dir(self, sandbox_id: str) -> str:
        """The host path of the sandbox's run directory."""
        return os.path.join(self.sandboxes_dir, sandbox_id)

    @property
    def own_label(self) -> str:
        """The label filter matching this state directory's sandboxes and no one else's."""
        return "%s=%s" % (LABEL_STATE_DIR, self.state_dir)

    async def create(
        self,
        image: str,
        limits: SandboxLimits,
        network: bool = False,
        workspace: WorkspaceRef | None = None,
        env: dict[str, str] | None = None,
        with_kernel: bool = False,
        pool: bool = False,
        egress: EgressAttachment | None = None,
        sandbox_id: str | None = None,
    ) -> Sandbox:
        """Start a sandbox and wait until its runner (and kernel, if asked) is ready.

        ``egress``: its network is the filtering proxy's (``network`` must be true); ``sandbox_id``: the id
        the caller already gave it (to the proxy's policy), else a new one.
        """
        sandbox_id = sandbox_id or new_sandbox_id()
        labels = {LABEL_SESSION: sandbox_id, LABEL_STATE_DIR: self.state_dir}
        if pool:
            labels[LABEL_POOL] = image
        if workspace:
            labels[LABEL_WORKSPACE] = workspace.name
        spec = SandboxSpec(
            image=image,
            run_dir=self.run_dir(sandbox_id),
            workspace_volume=workspace.volume if workspace else None,
            limits=limits,
            network=network,
            env=dict(env or {}),
            labels=labels,
            name="sandkasten-%s" % sandbox_id,
            runtime=self.runtime,
            egress=egress,
        )
        info = await self.backend.start(spec)
        workspace_name = workspace.name if workspace else None
        sandbox = Sandbox(sandbox_id, info.id, image, spec.run_dir, limits, network, workspace_name)
        try:
            async with await sandbox.connect(timeout=READY_TIMEOUT_S) as runner:
                pin(sandbox.run_dir, [CONTROL_SOCKET])  # before any code of the sandbox's own runs
                sandbox.init_pidfd = runner.open_runner_pidfd()  # likewise: the peer is the runner
                if with_kernel:
                    await self.start_kernel(sandbox, runner)
        except (EngineError, OSError) as exc:
            await self.destroy(sandbox)
            raise EngineError("sandbox %s from %s did not become ready: %s" % (sandbox_id, image, exc)) from None
        except BaseException:  # cancelled: never leave the container behind
            await asyncio.shield(self.destroy(sandbox))
            raise
        return sandbox

    async def start_kernel(self, sandbox: Sandbox, runner: RunnerClient, *, restart: bool = False) -> None:
        """Start the sandbox's kernel (``restart``: again, with the info it had) and pin its sockets.

        Every Jupyter client connects to those sockets by path, so they are pinned
        (``run_dir_names``) once the runner reports them bound; the old ones are
        removed first, as the runner cannot replace pinned names.
        """
        unpin(sandbox.run_dir, kernel_socket_names())
        if restart and sandbox.kernel is not None:
            await runner.kernel_restart()
        else:
            info = kernel_connection_info(sandbox.run_dir)
            await runner.kernel_start(info)
            sandbox.kernel = info
            save_connection_info(self.kernel_info_path(sandbox.id), info)
        pin(sandbox.run_dir, kernel_socket_names())

    def kernel_info_path(self, sandbox_id: str) -> str:
        """Where the host keeps its own copy of the sandbox's kernel connection info."""
        return os.path.join(self.connections_dir, "%s.json" % sandbox_id)

    def saved_kernel_info(self, sandbox: Sandbox) -> dict[str, Any] | None:
        """The connection info of the kernel this host started in ``sandbox`` (after a re-attach)."""
        try:
            return load_connection_info(self.kernel_info_path(sandbox.id))
        except (OSError, ValueError) as exc:
            raise EngineError("cannot read the kernel's connection info of %s: %s" % (sandbox.id, exc)) from None

    def forget(self, sandbox_id: str, run_dir: str) -> None:
        """Remove what the host keeps of a sandbox: its run directory and its kernel's info."""
        remove_run_dir(run_dir)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.kernel_info_path(sandbox_id))

    async def destroy(self, sandbox: Sandbox) -> None:
        """Remove the sandbox's container, run directory and saved kernel info."""
        await self.backend.remove(sandbox.container_id)
        sandbox.release_init()
        self.forget(sandbox.id, sandbox.run_dir)
