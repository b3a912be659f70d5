"""Kernels beside a session's own, by name, in the same sandbox: E2B's code contexts.

Each is an ipykernel the runner starts under a name (runner/PROTOCOL.md §10.4),
with its own state over the same files. Its connection info is made here as the
session kernel's is (``kernel_connection``), its sockets named after it
(``<run_dir>/kernel-<name>-<port>``), and, like the session kernel's, pinned
once bound (``run_dir_names``): clients connect to them by path, and the
sandbox must not be able to swap one for a link to another sandbox's socket.
The host keeps the info (its key) in memory only: its caller holds it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .errors import EngineError
from .kernel_connection import SOCKET_PORTS, kernel_connection_info
from .run_dir_names import pin, unpin
from .sandbox_spec import MAX_SOCKET_PATH

if TYPE_CHECKING:
    from .engine import Engine


def named_kernel_info(run_dir: str, name: str) -> dict[str, Any]:
    """Host-side connection info (a fresh key) of the kernel ``name`` in the sandbox of ``run_dir``."""
    info = kernel_connection_info(run_dir)
    info["ip"] = os.path.join(run_dir, "kernel-%s" % name)
    longest = "%s-%d" % (info["ip"], max(SOCKET_PORTS.values()))
    if len(longest.encode()) > MAX_SOCKET_PATH:
        raise EngineError("the kernel name %r makes socket paths longer than %d bytes" % (name, MAX_SOCKET_PATH))
    return info


def named_socket_names(name: str) -> list[str]:
    """The names of the kernel ``name``'s socket files in the run directory."""
    return ["kernel-%s-%d" % (name, port) for port in SOCKET_PORTS.values()]


async def start_named_kernel(engine: Engine, session_id: str, name: str) -> dict[str, Any]:
    """Start the kernel ``name`` in the session's sandbox; its connection info (sockets pinned)."""
    engine.require_kernel(session_id)
    record = engine.get_session(session_id)
    info = named_kernel_info(record.run_dir, name)
    unpin(record.run_dir, named_socket_names(name))  # a previous kernel's of that name
    async with engine.runner(session_id) as runner:
        await runner.request("kernel_start", {"connection": info, "name": name})
    pin(record.run_dir, named_socket_names(name))
    return info


async def interrupt_named_kernel(engine: Engine, session_id: str, name: str) -> None:
    async with engine.runner(session_id) as runner:
        await runner.request("kernel_interrupt", {"name": name})


async def restart_named_kernel(engine: Engine, session_id: str, name: str) -> None:
    """Restart the kernel ``name`` on the same connection info (its sockets bound and pinned anew)."""
    record = engine.get_session(session_id)
    unpin(record.run_dir, named_socket_names(name))  # the runner cannot replace pinned names
    async with engine.runner(session_id) as runner:
        await runner.request("kernel_restart", {"name": name})
    pin(record.run_dir, named_socket_names(name))


async def stop_named_kernel(engine: Engine, session_id: str, name: str) -> None:
    """Stop the kernel ``name`` and remove its sockets; the runner forgets the name."""
    record = engine.get_session(session_id)
    async with engine.runner(session_id) as runner:
        await runner.request("kernel_shutdown", {"name": name})
    unpin(record.run_dir, named_socket_names(name))


async def named_kernel_status(engine: Engine, session_id: str, name: str) -> dict[str, Any]:
    """The kernel ``name``'s status (runner/PROTOCOL.md §10.3); not a use of the session."""
    async with engine.runner(session_id, touch=False) as runner:
        return (await runner.request("kernel_status", {"name": name}))[0]


async def named_kernels_running(engine: Engine, session_id: str) -> list[str]:
    """The names of the kernels the sandbox's runner has; ``EngineError`` if it predates named kernels
    (it would take a named ``kernel_start`` for its own kernel's)."""
    async with engine.runner(session_id, touch=False) as runner:
        health = (await runner.request("health"))[0]
    if "named_kernels" not in health:
        raise EngineError("the runner of sandbox %s predates named kernels: start a new sandbox" % session_id)
    return sorted(health["named_kernels"])
