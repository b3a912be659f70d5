"""The engine's exceptions. Callers (handlers, provisioner, CLI) catch these, not docker's."""

from __future__ import annotations

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


class ImageNotFound(EngineError):
    """No image was added under that name (``sandkasten images add``)."""


class ImageInUse(EngineError):
    """An added image cannot be removed while sessions or the warm pool use it (or while it is being built)."""


class SessionNotFound(EngineError):
    """No session has that id (it may have been destroyed or reaped)."""


class SessionLost(EngineError):
    """The session's container is gone (removed or crashed behind the engine's back)."""


class SessionPaused(EngineError):
    """The session is paused: nothing in it runs until it is resumed, so no call reaches its runner."""

    @classmethod
    def of(cls, session_id: str) -> SessionPaused:
        return cls("session %s is paused: resume it first" % session_id)


class SessionBusy(EngineError):
    """The session has calls under way (an exec, a file transfer, run_code): it cannot be paused now."""


class LimitExceeded(EngineError):
    """A session asked for more than the configured maxima allow."""


class NotAllowed(EngineError):
    """The configuration forbids what was asked (network, an image, workspaces)."""


class WorkspaceInUse(EngineError):
    """A workspace cannot be deleted while a session mounts it."""


class WorkspaceNotFound(EngineError):
    """No workspace has that name."""


class WorkspaceExists(EngineError):
    """A workspace of that name exists already (a snapshot's copy needs a new one)."""


class SnapshotNotFound(EngineError):
    """No snapshot of that name is the caller's."""


class SnapshotExists(EngineError):
    """The caller has a snapshot of that name already."""


class SnapshotTooLarge(EngineError):
    """The session's files are more than one snapshot may hold (quota.max_snapshot_mb)."""


class QuotaExceeded(EngineError):
    """A user, or the whole server, holds as many sessions as the configuration allows."""


class PoolExhausted(EngineError):
    """No warm sandbox is ready and as many cold starts as allowed are under way: retry shortly."""


class ConfigError(EngineError):
    """A configuration file or value that cannot be used."""


class StoreError(EngineError):
    """The database cannot be used (locked, corrupt, disk full): nothing was reset."""


class FirewallError(EngineError):
    """The host's firewall could not be read or changed."""


class NetworkIsolationError(EngineError):
    """The isolated network for sandboxes could not be set up."""


class EgressProxyError(NetworkIsolationError):
    """The filtering proxy of sessions with a domain policy could not be set up or started."""


class UnsafeRunDirEntry(RunnerUnavailable):
    """A name in a run directory is not the socket the host expects (a link, a FIFO, another file system)."""
