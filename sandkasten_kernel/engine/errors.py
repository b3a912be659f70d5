"""The engine's exceptions. Callers (handlers, provisioner, CLI) catch these, not docker's."""

from typing import Any


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""


class RunnerUnavailable(EngineError):
    """The sandbox's control socket cannot be reached, or the connection broke."""


class RunnerRequestError(EngineError):
    """The runner answered a request with an error reply (see runner/PROTOCOL.md)."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message
        self.details = details or {}


class DockerUnavailable(EngineError):
    """The Docker engine does not answer."""


class ImageError(EngineError):
    """An image is missing or could not be built."""
