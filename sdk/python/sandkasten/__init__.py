"""Sandkasten's Python SDK: hardened sandboxes for AI agents, each with a bash shell and a Jupyter kernel.

from sandkasten import SandboxClient

async with SandboxClient(base_url="http://127.0.0.1:8080", api_key="...") as client:
    async with await client.create_session() as session:
        await session.write("hello.py", "print('Hello from sandbox!')")
        print((await session.exec("python3 hello.py")).output)
"""

import warnings
from typing import TYPE_CHECKING, Any

from ._async_client import ExecStream, SandboxClient, Session
from ._exceptions import (
    AuthenticationError,
    BadRequestError,
    ExecTimeout,
    NotFoundError,
    QuotaExceededError,
    SandkastenConnectionError,
    SandkastenError,
    ServerError,
)
from ._models import (
    CodeError,
    CodeResult,
    EgressPolicy,
    ExecResult,
    FileEntry,
    ProcessEvent,
    ProcessInfo,
    ProcessResult,
    RichResult,
    SessionInfo,
    Snapshot,
    SnapshotWorkspace,
    WorkspaceInfo,
)
from ._processes import Process
from ._sync_client import SyncExecStream, SyncSandboxClient, SyncSession
from ._sync_processes import SyncProcess

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "CodeError",
    "CodeResult",
    "EgressPolicy",
    "ExecResult",
    "ExecStream",
    "ExecTimeout",
    "FileEntry",
    "NotFoundError",
    "Process",
    "ProcessEvent",
    "ProcessInfo",
    "ProcessResult",
    "QuotaExceededError",
    "RichResult",
    "SandboxClient",
    "SandkastenConnectionError",
    "SandkastenError",
    "ServerError",
    "Session",
    "SessionInfo",
    "Snapshot",
    "SnapshotWorkspace",
    "SyncExecStream",
    "SyncProcess",
    "SyncSandboxClient",
    "SyncSession",
    "WorkspaceInfo",
]

if TYPE_CHECKING:
    ConnectionError = SandkastenConnectionError  # deprecated: at run time __getattr__ warns
else:

    def __getattr__(name: str) -> Any:
        """The deprecated ``ConnectionError`` alias, with a warning (it shadowed the builtin)."""
        if name == "ConnectionError":
            warnings.warn(
                "sandkasten.ConnectionError is deprecated: use sandkasten.SandkastenConnectionError",
                DeprecationWarning,
                stacklevel=2,
            )
            return SandkastenConnectionError
        raise AttributeError("module %r has no attribute %r" % (__name__, name))
