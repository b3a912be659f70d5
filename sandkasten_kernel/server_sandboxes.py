"""Kernel sandboxes from a Sandkasten server on this host, over its REST API.

The provisioner in an agent's process claims a session from the server's warm
pool (``POST sessions``), then asks for its kernel (``POST sessions/{id}/kernel``):
the server lets this process's user connect to the kernel's sockets and
answers with the connection info. Interrupts, restarts and shutdown go
through the server too; the kernel's messages never do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import urllib.request
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .engine import ConfigError, EngineError, SessionLost, SessionNotFound, Settings, listen_address
from .kernel_sandboxes import KernelSandboxes, SandboxRequest

API_PATH = "/sandkasten/api"
PROBE_TIMEOUT_S = 2.0  # the health probe: a server that takes longer is not there
CLAIM_TIMEOUT_S = 120.0  # a cold start on a busy machine


def server_url(settings: Settings) -> str:
    """The API root of the server ``settings`` describe (a wildcard listen address is reached on loopback)."""
    host, port = listen_address(settings.server.listen)
    if host == "0.0.0.0":
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return "http://%s:%d%s" % ("[%s]" % host if ":" in host else host, port, API_PATH)


class ServerSandboxes(KernelSandboxes):
    """Sandboxes claimed from a Sandkasten server's warm pool; this process holds their kernels."""

    releases_at_exit = True

    def __init__(self, url: str, api_key: str) -> None:
        self.url = url
        self.headers = {"Authorization": "token %s" % api_key, "Content-Type": "application/json"}

    @classmethod
    async def find(cls, settings: Settings) -> ServerSandboxes | None:
        """The server ``settings`` describe, if it answers with its API key; None otherwise."""
        if not settings.server.api_key:
            return None
        try:
            server = cls(server_url(settings), settings.server.api_key)
        except ConfigError:  # no address to ask at: the process starts its sandboxes itself
            return None
        try:
            await server._call("GET", "health", timeout=PROBE_TIMEOUT_S)
        except EngineError:
            return None
        return server

    async def _call(self, method: str, path: str, body: Any = None, timeout: float = 60.0) -> Any:
        request = HTTPRequest(
            "%s/%s" % (self.url, path),
            method=method,
            headers=self.headers,
            body=None if body is None and method in ("GET", "DELETE") else json.dumps(body or {}),
            request_timeout=timeout,
            connect_timeout=min(timeout, 5.0),
        )
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as exc:
            raise _error_of(exc.code, exc.response.body if exc.response is not None else b"", self.url) from None
        except OSError as exc:
            raise EngineError("the Sandkasten server at %s does not answer: %s" % (self.url, exc)) from None
        return json.loads(response.body) if response.body else None

    async def claim(self, kernel_id: str, wanted: SandboxRequest) -> str:
        body = {key: value for key, value in dataclasses.asdict(wanted).items() if value is not None}
        body["warm_kernel"] = True  # its kernel is claimed next
        session = await self._call("POST", "sessions", body, timeout=CLAIM_TIMEOUT_S)
        return str(session["id"])

    async def bind(self, session_id: str) -> str:
        return str((await self._call("GET", "sessions/%s" % session_id))["id"])

    async def start_kernel(self, session_id: str, kernel_id: str) -> dict[str, Any]:
        claimed = await self._call("POST", "sessions/%s/kernel" % session_id, {"kernel_id": kernel_id})
        info: dict[str, Any] = claimed["connection_info"]
        return info

    async def kernel_status(self, session_id: str) -> dict[str, Any]:
        status: dict[str, Any] = await self._call("GET", "sessions/%s/kernel" % session_id)
        return status

    async def interrupt_kernel(self, session_id: str) -> None:
        await self._call("POST", "sessions/%s/kernel/interrupt" % session_id)

    async def stop_kernel(self, session_id: str) -> None:
        await self._call("DELETE", "sessions/%s/kernel" % session_id)

    async def release(self, session_id: str, kernel_id: str, bound: bool) -> None:
        await self._call("DELETE", "sessions/%s%s" % (session_id, "/kernel" if bound else ""))

    def release_now(self, session_id: str, reason: str) -> None:
        request = urllib.request.Request(
            "%s/sessions/%s" % (self.url, session_id), method="DELETE", headers=self.headers
        )
        # At exit there is nobody left to tell; the server's reaper has the session in the end.
        with contextlib.suppress(OSError):  # HTTPError included
            urllib.request.urlopen(request, timeout=10).close()


def _error_of(status: int, body: bytes, url: str) -> EngineError:
    """The engine error a server's JSON error reply stands for."""
    try:
        reply = json.loads(body)
        code, message = str(reply.get("error")), str(reply.get("message"))
    except (ValueError, AttributeError):
        code, message = "", body[:200].decode("utf-8", "replace") or "HTTP %d" % status
    if code == "session_lost":
        return SessionLost(message)
    if status == 404:
        return SessionNotFound(message)
    return EngineError("the Sandkasten server at %s refused: %s (%d %s)" % (url, message, status, code))
