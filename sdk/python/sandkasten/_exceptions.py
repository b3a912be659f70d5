"""The exception tree. Every error the SDK raises on purpose is a ``SandkastenError``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._models import ExecResult


class SandkastenError(Exception):
    """Base of every SDK error. ``status`` and ``code`` come from the API's ``{error, message}`` reply."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class BadRequestError(SandkastenError):
    """The server refused the request as given (400, 405, 409, 413): the message names what is wrong."""


class AuthenticationError(SandkastenError):
    """No valid API key (401), or not allowed (403)."""


class NotFoundError(SandkastenError):
    """No such session, file or workspace (404); a session may have been destroyed or reaped."""


class QuotaExceededError(SandkastenError):
    """Over the server's session quota (429): destroy a session first."""


class ServerError(SandkastenError):
    """The server could not do it (5xx): the engine or Docker is down, or the pool is exhausted."""


class SandkastenConnectionError(SandkastenError):
    """The server could not be reached, or the connection broke.

    (Named so as not to shadow the builtin ``ConnectionError``; ``sandkasten.ConnectionError``
    remains as a deprecated alias.)
    """


class ExecTimeout(SandkastenError):
    """A command or code ran past its timeout (raised only with ``raise_on_timeout=True``).

    ``result`` holds what it printed before it was stopped.
    """

    def __init__(self, message: str, result: ExecResult) -> None:
        super().__init__(message, code="timeout")
        self.result = result
