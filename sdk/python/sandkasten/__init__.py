"""Sandkasten's Python SDK: hardened sandboxes for AI agents, each with a bash shell and a Jupyter kernel.

from sandkasten import SandboxClient

async with SandboxClient(base_url="http://127.0.0.1:8080", api_key="...") as client:
    async with await client.create_session() as session:
        await session.write("hello.py", "print('Hello from sandbox!')")
        print((await session.exec("python3 hello.py")).output)
"""

from ._async_client import ExecStream, SandboxClient, Session
from ._exceptions import (
    AuthenticationError,
    BadRequestError,
    ConnectionError,
    ExecTimeout,
    NotFoundError,
    QuotaExceededError,
    SandkastenError,
    ServerError,
)
from ._models import CodeError, CodeResult, ExecResult, FileEntry, RichResult, SessionInfo, WorkspaceInfo
from ._sync_client import SyncExecStream, SyncSandboxClient, SyncSession

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "CodeError",
    "CodeResult",
    "ConnectionError",
    "ExecResult",
    "ExecStream",
    "ExecTimeout",
    "FileEntry",
    "NotFoundError",
    "QuotaExceededError",
    "RichResult",
    "SandboxClient",
    "SandkastenError",
    "ServerError",
    "Session",
    "SessionInfo",
    "SyncExecStream",
    "SyncSandboxClient",
    "SyncSession",
    "WorkspaceInfo",
]
