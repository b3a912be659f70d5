"""API errors: every failure becomes JSON ``{error, message}`` with the right status.

Handlers raise ``ApiError`` for what they check themselves and let engine
errors through; ``api_error`` maps those, so the status table lives here once.
"""

from __future__ import annotations

from typing import Any

from tornado import web

from sandkasten_kernel.engine import (
    ConfigError,
    DockerUnavailable,
    EngineError,
    ImageError,
    ImageInUse,
    ImageNotFound,
    LimitExceeded,
    NetworkIsolationError,
    NotAllowed,
    PoolExhausted,
    QuotaExceeded,
    RunnerRequestError,
    RunnerUnavailable,
    SessionBusy,
    SessionLost,
    SessionNotFound,
    SessionPaused,
    SnapshotExists,
    SnapshotNotFound,
    SnapshotTooLarge,
    StoreError,
    WorkspaceExists,
    WorkspaceInUse,
    WorkspaceNotFound,
)

RETRY_AFTER_S = 1
# Refusals made before anything was done, which may pass in a moment: only these say Retry-After. A
# runner that stopped answering mid-call (sandbox_unavailable) may have acted, and a missing image
# stays missing.
RETRYABLE = (PoolExhausted, DockerUnavailable, StoreError)


class ApiError(web.HTTPError):
    """An error reply: ``status``, a stable ``code`` and a message for people."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, log_message=None, reason=None)
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message}


# Engine error class -> (status, code). The first match wins: subclasses before bases.
_ENGINE_ERRORS: list[tuple[type[EngineError], int, str]] = [
    (SessionNotFound, 404, "not_found"),
    (WorkspaceNotFound, 404, "not_found"),
    (SnapshotNotFound, 404, "not_found"),
    (SnapshotExists, 409, "snapshot_exists"),
    (WorkspaceExists, 409, "workspace_exists"),
    (SnapshotTooLarge, 413, "snapshot_too_large"),
    (ImageNotFound, 404, "not_found"),
    (SessionLost, 404, "session_lost"),
    (WorkspaceInUse, 409, "workspace_in_use"),
    (ImageInUse, 409, "image_in_use"),
    (SessionPaused, 409, "session_paused"),
    (SessionBusy, 409, "session_busy"),
    (NotAllowed, 403, "not_allowed"),
    (LimitExceeded, 400, "limit_exceeded"),
    (QuotaExceeded, 429, "quota_exceeded"),
    (PoolExhausted, 503, "pool_exhausted"),
    (DockerUnavailable, 503, "docker_unavailable"),
    (RunnerUnavailable, 503, "sandbox_unavailable"),
    (StoreError, 503, "store_unavailable"),
    (ImageError, 503, "image_unavailable"),
    (NetworkIsolationError, 503, "network_unavailable"),  # also the egress proxy's (EgressProxyError)
    (ConfigError, 400, "bad_config"),
]

# Runner error codes (runner/PROTOCOL.md) -> status.
_RUNNER_CODES = {
    "not_found": 404,
    "bad_request": 400,
    "invalid_path": 400,
    "path_outside_workspace": 400,
    "not_a_directory": 409,
    "is_a_directory": 409,
    "already_exists": 409,
    "directory_not_empty": 409,
    "shell_busy": 409,
    "too_many_jobs": 429,
    "stdin_closed": 409,
    "stdin_full": 409,
    "kernel_not_running": 409,
    "kernel_already_running": 409,
    "file_too_large": 413,
    "frame_too_large": 413,
    "permission_denied": 403,
    "no_space": 507,
    "kernel_start_failed": 503,
    "shell_unavailable": 503,
}


def api_error(exc: EngineError) -> ApiError:
    """The reply for an engine error."""
    if isinstance(exc, RunnerRequestError):
        return ApiError(_RUNNER_CODES.get(exc.code, 502), exc.code, exc.message)
    for cls, status, code in _ENGINE_ERRORS:
        if isinstance(exc, cls):
            headers = {"Retry-After": str(RETRY_AFTER_S)} if isinstance(exc, RETRYABLE) else None
            return ApiError(status, code, str(exc), headers)
    return ApiError(400, "bad_request", str(exc))  # the engine's plain EngineError is refused input


def http_error_code(status: int) -> str:
    """A code for tornado's own errors (404 route, 405 method, ...)."""
    return {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        413: "too_large",
    }.get(status, "internal" if status >= 500 else "error")
