"""``sessions/{id}/terminal``: a websocket onto an interactive bash of its own in the session's sandbox.

Messages are JSON arrays in terminado's shape, which JupyterLab's terminal
widget already speaks: the client sends ``["stdin", text]`` and
``["set_size", rows, cols]``; the server sends ``["stdout", text]`` and, when
bash ends, ``["disconnect", exit_code]``. Closing the socket ends the
terminal and kills everything started in it; the session's exec shell is a
different process and stays as it was.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import time
from typing import Any

from tornado.websocket import WebSocketClosedError

from sandkasten_kernel.engine import EngineError, RunnerTerminal

from .base import SandkastenSocketHandler

DEFAULT_SIZE = (24, 80)
# Typing in a terminal is use of the session (the idle reaper must not take it), counted at most this often.
TOUCH_EVERY_S = 10.0


def _size(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 1000 else None


class TerminalSocketHandler(SandkastenSocketHandler):
    _terminal: RunnerTerminal | None = None
    _pump: asyncio.Task[None] | None = None
    _touched = 0.0

    async def open(self, *args: Any, **kwargs: Any) -> None:
        rows = _size(self._int_argument("rows")) or DEFAULT_SIZE[0]
        cols = _size(self._int_argument("cols")) or DEFAULT_SIZE[1]
        try:
            self._terminal = await self.engine.open_terminal(self.session_id, rows, cols)
        except EngineError as exc:
            self.close(1011, str(exc)[:120])
            return
        self._pump = asyncio.ensure_future(self._forward_output(self._terminal))

    def _int_argument(self, name: str) -> int | None:
        text = self.get_query_argument(name, "")
        return int(text) if text.isdigit() else None

    async def _forward_output(self, terminal: RunnerTerminal) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            while (chunk := await terminal.read()) is not None:
                text = decoder.decode(chunk)
                if text:
                    await self.write_message(json.dumps(["stdout", text]))
            self.write_message(json.dumps(["disconnect", terminal.exit_code]))
            self.close(1000, "the terminal ended")
        except (EngineError, WebSocketClosedError):
            self.close(1011, "the terminal's connection to the sandbox broke")

    async def on_message(self, message: str | bytes) -> None:
        terminal = self._terminal
        if terminal is None:
            return
        try:
            command = json.loads(message)
        except ValueError:
            return
        if not isinstance(command, list) or not command:
            return
        try:
            if command[0] == "stdin" and len(command) > 1 and isinstance(command[1], str):
                await terminal.write(command[1].encode("utf-8"))
                self._touch()
            elif command[0] == "set_size" and len(command) > 2:
                rows, cols = _size(command[1]), _size(command[2])
                if rows and cols:
                    await terminal.resize(rows, cols)
        except EngineError:
            self.close(1011, "the terminal's connection to the sandbox broke")

    def _touch(self) -> None:
        now = time.monotonic()
        if now - self._touched >= TOUCH_EVERY_S:
            self._touched = now
            with contextlib.suppress(EngineError):
                self.engine.touch(self.session_id, calls=0)

    def on_close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
        if self._terminal is not None:
            self._terminal.close_nowait()  # the runner kills the terminal's processes
