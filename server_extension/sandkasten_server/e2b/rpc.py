"""What an envd RPC is here: its kind, the function that answers it, and engine errors as Connect errors.

The envd services (``envd_process``, ``envd_filesystem``) each declare a table
of ``Rpc`` by method path; ``sandbox_traffic`` serves them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sandkasten_kernel.engine import (
    Engine,
    EngineError,
    LimitExceeded,
    NotAllowed,
    QuotaExceeded,
    RunnerRequestError,
    RunnerUnavailable,
    SessionLost,
    SessionNotFound,
    SessionPaused,
    SessionRecord,
)

from .connect_rpc import RpcError

if TYPE_CHECKING:
    from .sandbox_traffic import SandboxTrafficHandler

Message = dict[str, Any]
ENVD_PORT = "49983"
INTERPRETER_PORT = "49999"
SANDBOX_GONE = "The sandbox was not found"  # the words E2B's SDKs look for


@dataclass
class RpcCall:
    """One call to a sandbox's envd: the handler serving it, the sandbox, and the client's deadline."""

    handler: SandboxTrafficHandler
    record: SessionRecord
    timeout_ms: int | None  # Connect-Timeout-Ms: envd ends (and kills what it started) at it

    @property
    def engine(self) -> Engine:
        return self.handler.engine


Unary = Callable[[RpcCall, Message], Awaitable[Message]]
ServerStream = Callable[[RpcCall, Message], AsyncGenerator[Message, None]]
ClientStream = Callable[[RpcCall, AsyncIterator[Message]], Awaitable[Message]]


@dataclass(frozen=True)
class Rpc:
    kind: Literal["unary", "server", "client"]
    call: Any  # Unary, ServerStream or ClientStream, by kind
    keepalive: Message | None = None  # a server stream's message for "still here"


# A plain HTTP route of a sandbox's service (``/files``, ``/execute``): (port, method, path pattern) and the
# answer, which takes the handler and the pattern's groups.
Route = tuple[str, str, "re.Pattern[str]", Callable[..., Awaitable[None]]]


def route(port: str, method: str, pattern: str, answer: Callable[..., Awaitable[None]]) -> Route:
    return (port, method, re.compile(pattern), answer)


# Runner error codes (runner/PROTOCOL.md §6) as Connect codes.
_RUNNER_CODES = {
    "not_found": "not_found",
    "bad_request": "invalid_argument",
    "invalid_path": "invalid_argument",
    "path_outside_workspace": "invalid_argument",
    "not_a_directory": "invalid_argument",
    "is_a_directory": "invalid_argument",
    "already_exists": "already_exists",
    "directory_not_empty": "failed_precondition",
    "permission_denied": "permission_denied",
    "no_space": "resource_exhausted",
    "file_too_large": "resource_exhausted",
    "too_many_jobs": "resource_exhausted",
    "stdin_closed": "failed_precondition",
    "stdin_full": "failed_precondition",
}


def rpc_error(exc: EngineError) -> RpcError:
    """An engine error as the Connect error envd would give."""
    if isinstance(exc, RunnerRequestError):
        return RpcError(_RUNNER_CODES.get(exc.code, "internal"), exc.message)
    if isinstance(exc, (SessionNotFound, SessionLost, SessionPaused)):
        return RpcError("unavailable", "%s: %s" % (SANDBOX_GONE, exc))
    if isinstance(exc, RunnerUnavailable):
        return RpcError("unavailable", str(exc))
    if isinstance(exc, QuotaExceeded):
        return RpcError("resource_exhausted", str(exc))
    if isinstance(exc, NotAllowed):
        return RpcError("permission_denied", str(exc))
    if isinstance(exc, LimitExceeded):
        return RpcError("invalid_argument", str(exc))
    return RpcError("invalid_argument", str(exc))
