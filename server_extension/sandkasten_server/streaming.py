"""Streamed replies: events as NDJSON lines, or as Server-Sent Events when the client asks.

Headers go out with the first event, so an error before any output still gets
its proper status; after that, an error is the stream's last event.
"""

from __future__ import annotations

import json
from typing import Any

from tornado import web

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
