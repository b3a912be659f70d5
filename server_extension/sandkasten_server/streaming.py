"""Streamed replies: events as NDJSON lines, or as Server-Sent Events when the client asks.

Headers go out with the first event, so an error before any output still gets
its proper status; after that, an error is the stream's last event.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, Awaitable
from typing import Any

from tornado import web
from tornado.iostream import StreamClosedError

from sandkasten_kernel.engine import EngineError

from .errors import ApiError, api_error

NDJSON = "application/x-ndjson"
SSE = "text/event-stream"


class EventStream:
    def __init__(self, handler: web.RequestHandler) -> None:
        self.handler = handler
        self.sse = SSE in handler.request.headers.get("Accept", "")
        self.started = False

    @property
    def content_type(self) -> str:
        return SSE if self.sse else NDJSON

    async def send(self, event: dict[str, Any]) -> None:
        """Write one event and flush it; raises ``StreamClosedError`` once the client is gone."""
        if not self.started:
            self.started = True
            self.handler.set_header("Content-Type", self.content_type)
            self.handler.set_header("Cache-Control", "no-cache")
            self.handler.set_header("X-Accel-Buffering", "no")  # a proxy in front must not hold chunks back
        text = json.dumps(event)
        self.handler.write("event: %s\ndata: %s\n\n" % (event["type"], text) if self.sse else text + "\n")
        await self.handler.flush()

    def finish(self) -> None:
        self.handler.finish(set_content_type=self.content_type)  # type: ignore[call-arg]

    async def relay(self, events: AsyncGenerator[dict[str, Any], None]) -> None:
        """Send every event, then finish (``complete``); a client that leaves closes ``events``, which
        stops what made them."""

        async def send_all() -> None:
            async with contextlib.aclosing(events) as source:
                async for event in source:
                    await self.send(event)

        await self.complete(send_all())

    async def complete(self, sending: Awaitable[None]) -> None:
        """Await ``sending`` (which sends the events), then finish. A client that leaves ends it; an
        engine error once the stream has begun is its last event (before, it is the reply's status)."""
        try:
            await sending
        except StreamClosedError:
            return
        except EngineError as exc:
            if not self.started:
                raise
            await self.send(error_event(exc))
        self.finish()


def error_event(exc: EngineError | ApiError) -> dict[str, Any]:
    """An error as a stream's last event."""
    error = exc if isinstance(exc, ApiError) else api_error(exc)
    return {"type": "error", **error.body()}
