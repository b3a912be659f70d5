"""``POST sessions/{id}/exec`` (plain or streamed) and its websocket twin ``sessions/{id}/exec/ws``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncGenerator
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.websocket import WebSocketClosedError

from sandkasten_kernel.engine import Engine, EngineError, ExecResult

from ..errors import ApiError
from ..schema import validate
from ..streaming import EventStream, error_event
from .base import SandkastenHandler, SandkastenSocketHandler


def exec_options(body: dict[str, Any]) -> dict[str, Any]:
    """The runner's exec options from a validated ``ExecRequest``."""
    options: dict[str, Any] = {name: body[name] for name in ("cwd", "env", "if_busy") if name in body}
    for name in ("timeout_ms", "max_output"):
        if name in body:
            options[name] = int(body[name])  # JSON Schema's integers include 5.0
    if "stdin" in body:
        options["stdin"] = body["stdin"].encode("utf-8")
    return options


def result_json(result: ExecResult, with_output: bool = True) -> dict[str, Any]:
    data = dataclasses.asdict(result)
    if not with_output:
        del data["output"]  # a stream has sent it already
    return data


async def exec_events(engine: Engine, session_id: str, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
    """A validated ``ExecRequest`` run as a stream: ``output`` events, then the ``result`` one.

    Closing this generator early closes the runner connection, which stops the command.
    """
    async with contextlib.aclosing(engine.exec_stream(session_id, body["command"], **exec_options(body))) as events:
        async for event in events:
            if isinstance(event, str):
                yield {"type": "output", "data": event}
            else:
                yield {"type": "result", **result_json(event, with_output=False)}


class ExecHandler(SandkastenHandler):
    @web.authenticated
    @authorized
    async def post(self, session_id: str) -> None:
        record = self.session_record(session_id)
        body = self.json_body("ExecRequest")
        if not body.get("stream"):
            result = await self.engine.exec(record.id, body["command"], **exec_options(body))
            self.reply(result_json(result))
            return
        await EventStream(self).relay(exec_events(self.engine, record.id, body))


class ExecSocketHandler(SandkastenSocketHandler):
    """One exec at a time: send an ``ExecRequest`` as JSON text, receive its events."""

    _running: asyncio.Task[None] | None = None

    def on_message(self, message: str | bytes) -> None:
        if self._running is not None and not self._running.done():
            self._send({"type": "error", "error": "busy", "message": "an exec is running on this socket"})
            return
        self._running = asyncio.ensure_future(self._exec(message))

    async def _exec(self, message: str | bytes) -> None:
        try:
            body = validate("ExecRequest", json.loads(message))
            async with contextlib.aclosing(exec_events(self.engine, self.session_id, body)) as events:
                async for event in events:
                    self._send(event)
        except ValueError as exc:
            self._send({"type": "error", "error": "bad_request", "message": "not valid JSON: %s" % exc})
        except (ApiError, EngineError) as exc:
            self._send(error_event(exc))
        except WebSocketClosedError:
            pass

    def _send(self, event: dict[str, Any]) -> None:
        self.write_message(json.dumps(event))

    def on_close(self) -> None:
        if self._running is not None:
            self._running.cancel()  # closes the runner connection, which stops the command
