"""The base of every handler: JSON errors, body validation, the caller's identity.

Handlers stay thin: they check input, find the session (refusing other users'
sessions), call the engine, and write JSON. Engine errors are not caught one
by one; ``write_error`` maps them through ``errors.api_error``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.identity import IdentityProvider
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.websocket import WebSocketHandler

from sandkasten_kernel.engine import Engine, EngineError, SessionNotFound, SessionRecord

from .. import identity
from ..errors import ApiError, api_error, http_error_code
from ..schema import validate

if TYPE_CHECKING:
    from ..service import SandkastenService

HTTP_METHODS = ("get", "post", "put", "delete")


class SandkastenMixin:
    """Identity and session access, for the REST handlers and the websocket alike."""

    auth_resource = "sandkasten"
    settings: dict[str, Any]
    identity_provider: IdentityProvider
    authorizer: Any
    current_user: Any

    @property
    def service(self) -> SandkastenService:
        service: SandkastenService = self.settings["sandkasten_service"]
        return service

    @property
    def engine(self) -> Engine:
        return self.service.engine_or_raise()

    # -- identity (see ..identity) ----------------------------------------------------------

    @property
    def owner(self) -> str:
        """Who is asking, as sessions record it (quotas count per owner)."""
        return identity.owner_of(self)

    @property
    def workspace_owner(self) -> str | None:
        """Whose named workspaces the caller's names are (None: the server's own, on a single-user server)."""
        return identity.workspace_owner_of(self)

    @property
    def is_admin(self) -> bool:
        """Only the single user of Jupyter Server's own login, or one of security.admin_users."""
        return identity.is_admin(self, self.service.settings)

    def may_see(self, record: SessionRecord) -> bool:
        return self.is_admin or record.owner == self.owner

    def session_record(self, session_id: str) -> SessionRecord:
        """The session, if it exists and the caller may use it (another user's is a 404, as if absent)."""
        record = self.engine.get_session(session_id)
        if not self.may_see(record):
            raise SessionNotFound("no session %r" % session_id)
        return record

    async def websocket_session(self, session_id: str) -> str:
        """The id of the session a websocket asks for, if the caller may use it."""
        user = self.current_user
        if user is None:
            raise ApiError(401, "unauthorized", "a valid token is required: send 'Authorization: token <api_key>'")
        # An authorizer may answer with a coroutine (a truthy object): it is awaited, as @authorized does.
        if not await ensure_async(self.authorizer.is_authorized(self, user, "execute", self.auth_resource)):
            raise ApiError(403, "forbidden", "not authorized to execute on %s" % self.auth_resource)
        return self.session_record(session_id).id

    def require_admin(self) -> None:
        if not self.is_admin:
            raise ApiError(403, "forbidden", "only an admin (security.admin_users) may do this")


@web.stream_request_body
class SandkastenHandler(SandkastenMixin, APIHandler):
    # -- input -----------------------------------------------------------------------------
    # Every body is read here as it arrives (tornado's stream mode), so each byte is counted
    # against quota.max_body_mb, chunked or not, before it is held: a buffered handler (JSON)
    # keeps at most the limit, and a streamed one (files, archives) overrides data_received
    # and calls count_body. Tornado's own cap (Jupyter Server's max_body_size) is lifted for
    # these routes: it answers a bare 400, and only after buffering up to 512 MiB.

    _body_limit = 0
    _body_seen = 0

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        length = self.request.headers.get("Content-Length")
        limit = self._body_limit = self.service.settings.quota.max_body_mb << 20
        if length is not None and length.isdigit() and int(length) > limit:
            raise ApiError(
                413, "too_large", "the body is %s bytes; the limit is %d (quota.max_body_mb)" % (length, limit)
            )
        self.request.connection.set_max_body_size(1 << 62)  # type: ignore[union-attr]
        self.request.body = bytearray()  # type: ignore[assignment]  # bytes-like, appended to in place

    def count_body(self, chunk: bytes) -> None:
        """Count ``chunk`` of the body; past quota.max_body_mb, raise the 413."""
        self._body_seen += len(chunk)
        if self._body_seen > self._body_limit:
            raise ApiError(
                413, "too_large", "the body is more than the limit of %d bytes (quota.max_body_mb)" % self._body_limit
            )

    def refuse_body(self, exc: Exception) -> None:
        """Answer ``exc`` while the body is still coming; tornado then closes the connection."""
        self.log_exception(type(exc), exc, exc.__traceback__)
        if not self._finished:
            self.send_error(getattr(exc, "status_code", 500), exc_info=(type(exc), exc, exc.__traceback__))

    async def data_received(self, chunk: bytes) -> None:
        if self._finished:
            return  # refused already: the rest is dropped
        try:
            self.count_body(chunk)
        except ApiError as exc:
            self.refuse_body(exc)
            return
        self.request.body += chunk

    def json_body(self, schema: str, required: bool = True) -> dict[str, Any]:
        """The request body, parsed and checked against ``schema`` of the OpenAPI document."""
        raw = self.request.body
        if not raw.strip():
            if required:
                raise ApiError(400, "bad_request", "the body must be a JSON object")
            return validate(schema, {})
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "bad_request", "the body is not valid JSON: %s" % exc) from None
        return validate(schema, data)

    # -- output ----------------------------------------------------------------------------

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(data))

    def check_xsrf_cookie(self) -> None:
        if getattr(self, "_jupyter_current_user", "unresolved") is None:
            # No credentials at all: a 401 says what is missing; the XSRF 403 is for browser sessions.
            raise ApiError(401, "unauthorized", "a valid token is required: send 'Authorization: token <api_key>'")
        super().check_xsrf_cookie()

    def allowed_methods(self) -> list[str]:
        return [m.upper() for m in HTTP_METHODS if getattr(type(self), m) is not getattr(web.RequestHandler, m)]

    def get_login_url(self) -> str:
        # @web.authenticated calls this when no valid token came: say so, as JSON.
        raise ApiError(401, "unauthorized", "a valid token is required: send 'Authorization: token <api_key>'")

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, (ApiError, EngineError)):
            self.log.info("%s %s: %s", self.request.method, self.request.path, value)
        else:
            super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        body = getattr(self.request, "_body_future", None)  # tornado's, in stream mode
        if body is not None and not body.done():
            # Refused before the body was read, the connection cannot carry another request
            # (tornado drops it after replying): say so, or a keep-alive client reuses it and
            # gets a reset on its next call.
            self.set_header("Connection", "close")
        write_json_error(self, status_code, kwargs.get("exc_info", (None, None, None))[1])


def write_json_error(handler: web.RequestHandler, status_code: int, exc: BaseException | None) -> None:
    """An error as the API answers them, ``{"error", "message"}``; a 401 says which scheme to use."""
    if isinstance(exc, EngineError):
        exc = api_error(exc)
    if isinstance(exc, ApiError):
        handler.set_status(exc.status_code)
        for name, value in exc.headers.items():
            handler.set_header(name, value)
        body = exc.body()
    elif isinstance(exc, web.HTTPError):
        body = {"error": http_error_code(status_code), "message": exc.log_message or handler._reason}
    else:  # a bug: the log has the traceback, the client does not
        body = {"error": "internal", "message": "internal error; the server log has the details"}
    if handler.get_status() == 401:
        handler.set_header("WWW-Authenticate", "token")
    handler.set_header("Content-Type", "application/json")
    handler.finish(json.dumps(body))


class SandkastenSocketHandler(SandkastenMixin, WebSocketMixin, WebSocketHandler, JupyterHandler):
    """A websocket onto one session. Auth and the session are checked before the upgrade
    (a websocket cannot be sent to a login page), and refusals are JSON like the REST routes'."""

    session_id = ""

    async def get(self, *args: Any, **kwargs: Any) -> None:
        self.session_id = await self.websocket_session(kwargs["session_id"])  # another user's session is a 404
        await super().get(*args, **kwargs)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        write_json_error(self, status_code, kwargs.get("exc_info", (None, None, None))[1])
