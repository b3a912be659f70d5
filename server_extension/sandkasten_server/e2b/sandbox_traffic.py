"""Traffic into a sandbox at ``/e2b/sandbox/...``: envd (port 49983) and the code interpreter (49999).

E2B's SDKs send everything for every sandbox to one URL (``E2B_SANDBOX_URL``),
naming the sandbox in ``E2b-Sandbox-Id`` and the service in
``E2b-Sandbox-Port``. A call needs the sandbox's access token (from create or
connect). A wrong token is a 401 whether or not the sandbox exists, so ids
cannot be probed; an unknown, ended or paused sandbox is E2B's 502
"The sandbox was not found", which the SDKs recognise.

The body is read as it arrives: a client-streaming call (input to a process)
is served while its request is still open.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable

from jupyter_server.auth.decorator import allow_unauthenticated
from tornado import web
from tornado.iostream import StreamClosedError

from sandkasten_kernel.engine import EngineError, SessionNotFound, SessionRecord

from . import code_interpreter, envd_files, envd_filesystem, envd_process
from .base import E2BError, E2BHandler
from .connect_rpc import (
    STREAM_CONTENT_TYPE,
    UNARY_CONTENT_TYPE,
    EnvelopeReader,
    RpcError,
    end_stream,
    envelope,
    first_message,
    parse_message,
)
from .rpc import ENVD_PORT, INTERPRETER_PORT, SANDBOX_GONE, Message, Route, Rpc, RpcCall, rpc_error
from .tokens import SandboxTokens

RPCS: dict[str, Rpc] = {**envd_process.RPCS, **envd_filesystem.RPCS}
ROUTES: list[Route] = [*envd_files.ROUTES, *code_interpreter.ROUTES]
KEEPALIVE_DEFAULT_S = 90.0


def sandbox_gone(sandbox_id: str) -> E2BError:
    return E2BError(502, SANDBOX_GONE)


@web.stream_request_body
class SandboxTrafficHandler(E2BHandler):
    """One call into a sandbox, found by its headers, served by envd's RPCs or a plain route."""

    record: SessionRecord
    port: str
    path_in_sandbox: str
    _rpc: Rpc | None = None
    _route: tuple[Callable[..., Awaitable[None]], tuple[str, ...]] | None = None
    _inputs: asyncio.Queue[Message | None] | None = None
    _client_stream: asyncio.Future[Message] | None = None
    _envelopes: EnvelopeReader | None = None
    _client_error: RpcError | None = None
    _refusal: Exception | None = None

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        self._body = bytearray()
        self._limit = self.service.settings.quota.max_body_mb << 20
        self.request.connection.set_max_body_size(1 << 62)  # type: ignore[union-attr]  # counted here instead
        try:
            self._route_call()
        except (E2BError, EngineError) as exc:
            # Answered once the body is read: a reply before it would close the connection, which
            # an SDK's pool then reuses (and fails on).
            self._refusal = exc

    def _route_call(self) -> None:
        self.path_in_sandbox = re.sub("/+", "/", self.path_kwargs.get("path") or "").strip("/")
        self.port = self.request.headers.get("E2b-Sandbox-Port", ENVD_PORT)
        self.record = self._sandbox()
        method = self.request.method or "GET"
        rpc = RPCS.get(self.path_in_sandbox) if self.port == ENVD_PORT else None
        if rpc is None:
            self._route = self._find_route(method)
            return
        if method != "POST":
            raise E2BError(405, "RPCs are POSTed")
        self._rpc = rpc
        if rpc.kind == "client":
            self._start_client_stream(rpc)

    def _sandbox(self) -> SessionRecord:
        sandbox_id = self.request.headers.get("E2b-Sandbox-Id", "")
        token = self.request.headers.get("X-Access-Token")
        if token is None and self.port == INTERPRETER_PORT:
            token = self.request.headers.get("E2B-Traffic-Access-Token")
        tokens: SandboxTokens = self.settings["sandkasten_e2b_tokens"]
        if not sandbox_id or not tokens.valid(sandbox_id, token):
            raise E2BError(401, "a valid access token for sandbox %r is required (X-Access-Token)" % sandbox_id)
        try:
            record = self.engine.get_session(sandbox_id)
        except SessionNotFound:
            raise sandbox_gone(sandbox_id) from None
        if record.status == "paused":
            raise sandbox_gone(sandbox_id)
        return record

    def _find_route(self, method: str) -> tuple[Callable[..., Awaitable[None]], tuple[str, ...]]:
        for port, route_method, pattern, answer in ROUTES:
            match = pattern.fullmatch(self.path_in_sandbox)
            if port == self.port and route_method == method and match:
                return answer, match.groups()
        if self.port not in (ENVD_PORT, INTERPRETER_PORT):
            raise E2BError(502, "The sandbox is running but port is not open (port %s)" % self.port)
        raise E2BError(404, "%s /%s is not supported by Sandkasten's E2B API" % (method, self.path_in_sandbox))

    # -- the body ------------------------------------------------------------------------

    def data_received(self, chunk: bytes) -> None:
        if self._finished or self._refusal is not None:
            return
        if self._envelopes is not None and self._inputs is not None:
            try:
                for message in self._envelopes.feed(chunk):
                    self._inputs.put_nowait(message)
            except RpcError as exc:
                self._inputs.put_nowait(None)
                self._client_error = exc
            return
        if len(self._body) + len(chunk) > self._limit:
            self.send_error(413, exc_info=(E2BError, E2BError(413, "the body is over quota.max_body_mb"), None))
            return
        self._body += chunk

    @property
    def body(self) -> bytes:
        return bytes(self._body)

    # -- answering -----------------------------------------------------------------------

    @allow_unauthenticated
    async def get(self, path: str) -> None:
        await self._answer()

    @allow_unauthenticated
    async def post(self, path: str) -> None:
        await self._answer()

    @allow_unauthenticated
    async def delete(self, path: str) -> None:
        await self._answer()

    async def _answer(self) -> None:
        if self._refusal is not None:
            raise self._refusal
        if self._route is not None:
            answer, groups = self._route
            await answer(self, *groups)
            return
        assert self._rpc is not None
        call = RpcCall(self, self.record, _timeout_ms(self.request.headers.get("Connect-Timeout-Ms")))
        if self._rpc.kind == "unary":
            await self._unary(self._rpc, call)
        elif self._rpc.kind == "server":
            await self._server_stream(self._rpc, call)
        else:
            await self._finish_client_stream()

    async def _unary(self, rpc: Rpc, call: RpcCall) -> None:
        result: Message = {}
        error: RpcError | None = None
        try:
            result = await rpc.call(call, parse_message(self.body))
        except EngineError as exc:
            error = rpc_error(exc)
        except RpcError as exc:
            error = exc
        self.set_header("Content-Type", UNARY_CONTENT_TYPE)
        if error is not None:
            self.set_status(error.status)
            self.finish(error.body())
            return
        self.finish(result)

    async def _server_stream(self, rpc: Rpc, call: RpcCall) -> None:
        """Messages as the call yields them, a keepalive when it is quiet, the end-stream envelope last.
        At the client's deadline the call is closed (envd's Start kills its process: ``envd_process``)."""
        self.set_header("Content-Type", STREAM_CONTENT_TYPE)
        loop = asyncio.get_running_loop()
        interval = _keepalive_s(self.request.headers.get("Keepalive-Ping-Interval"))
        deadline = None if call.timeout_ms is None else loop.time() + call.timeout_ms / 1000
        error: RpcError | None = None
        messages = None
        pending: asyncio.Future[Message] | None = None
        try:
            messages = rpc.call(call, first_message(self.body))
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(messages.__anext__())
                wait = interval if deadline is None else min(interval, deadline - loop.time())
                if wait <= 0:
                    raise RpcError("deadline_exceeded", "context deadline exceeded")
                done, _ = await asyncio.wait({pending}, timeout=wait)
                if not done:
                    if deadline is None or loop.time() < deadline:
                        await self._send(rpc.keepalive or {})
                    continue
                try:
                    message = pending.result()
                except StopAsyncIteration:
                    pending = None
                    break
                pending = None
                await self._send(message)
        except RpcError as exc:
            error = exc
        except EngineError as exc:
            error = rpc_error(exc)
        except StreamClosedError:
            return  # the client left: following stops, what was started runs on
        finally:
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
            if messages is not None:
                await messages.aclose()
        with contextlib.suppress(StreamClosedError):
            self.finish(end_stream(error))

    async def _send(self, message: Message) -> None:
        self.write(envelope(message))
        await self.flush()

    def _start_client_stream(self, rpc: Rpc) -> None:
        self._envelopes = EnvelopeReader()
        self._inputs = asyncio.Queue()
        call = RpcCall(self, self.record, _timeout_ms(self.request.headers.get("Connect-Timeout-Ms")))
        self._client_stream = asyncio.ensure_future(rpc.call(call, self._queued_inputs()))

    async def _queued_inputs(self) -> AsyncIterator[Message]:
        assert self._inputs is not None
        while True:
            message = await self._inputs.get()
            if message is None:
                return
            yield message

    async def _finish_client_stream(self) -> None:
        assert self._inputs is not None and self._client_stream is not None
        self._inputs.put_nowait(None)  # the request body is complete
        self.set_header("Content-Type", STREAM_CONTENT_TYPE)
        error = self._client_error
        try:
            result = await self._client_stream
        except RpcError as exc:
            error = exc
        except EngineError as exc:
            error = rpc_error(exc)
        else:
            if error is None:
                self.write(envelope(result))
        self.finish(end_stream(error))

    def on_connection_close(self) -> None:
        if self._inputs is not None:
            self._inputs.put_nowait(None)
        super().on_connection_close()


def _timeout_ms(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() and int(value) > 0 else None


def _keepalive_s(value: str | None) -> float:
    if value is not None and value.isdigit() and 0 < int(value) <= 3600:
        return float(value)
    return KEEPALIVE_DEFAULT_S
