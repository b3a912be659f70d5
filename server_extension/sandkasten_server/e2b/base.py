"""The base of the E2B handlers: E2B-shaped JSON errors, credentials from E2B's headers.

E2B's SDKs read every error as ``{"code": <HTTP status>, "message": ...}`` (the
JavaScript one decides "not found" from the body's ``code``), so nothing here
answers in another shape. Credentials come in headers, never cookies, so the
XSRF check does not apply.
"""

from __future__ import annotations

import json
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.base.handlers import JupyterHandler
from tornado import web

from sandkasten_kernel.engine import EngineError

from ..errors import ApiError, api_error
from ..handlers.base import SandkastenMixin
from .tokens import token_from_api_key

# What envd reports: the newest version whose features (stdin control, octet-stream uploads) this surface has.
ENVD_VERSION = "0.5.7"


class E2BError(Exception):
    """An error the E2B way: an HTTP status and a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def status_and_message(exc: BaseException | None, status_code: int, reason: str) -> tuple[int, str]:
    """The status and message an exception answers with."""
    if isinstance(exc, E2BError):
        return exc.status, exc.message
    if isinstance(exc, EngineError):
        exc = api_error(exc)
    if isinstance(exc, ApiError):
        return exc.status_code, exc.message
    if isinstance(exc, web.HTTPError):
        return exc.status_code, exc.log_message or exc.reason or reason
    return status_code, reason


class E2BHandler(SandkastenMixin, JupyterHandler):
    """Errors as E2B's JSON; an ``X-API-Key`` counts as the caller's token."""

    async def prepare(self) -> None:  # type: ignore[override]
        key = self.request.headers.get("X-API-Key")
        if key:
            self.request.headers["Authorization"] = "token %s" % token_from_api_key(key)
        await super().prepare()

    def check_xsrf_cookie(self) -> None:
        return None

    async def require_caller(self) -> None:
        """A known caller, allowed to act on sandboxes; else a 401 or 403."""
        if self.current_user is None:
            raise E2BError(401, "Invalid API key: send a Sandkasten token as X-API-Key (E2B_API_KEY)")
        action = "read" if self.request.method == "GET" else "write"
        allowed = await ensure_async(self.authorizer.is_authorized(self, self.current_user, action, self.auth_resource))
        if not allowed:
            raise E2BError(403, "%s may not %s sandboxes" % (self.current_user.username, action))

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        status, message = status_and_message(exc, status_code, self._reason)
        self.clear_header("Content-Type")
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"code": status, "message": message}))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, (E2BError, EngineError, ApiError)):
            self.log.info("%s %s: %s", self.request.method, self.request.uri, value)
            return
        super().log_exception(typ, value, tb)
