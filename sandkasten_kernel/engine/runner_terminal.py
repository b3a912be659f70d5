"""The host side of a runner ``terminal``: one control connection given over to one interactive PTY.

``RunnerClient.open_terminal`` sends the request and hands its connection to
this class; from then on the connection carries only the terminal's frames
(runner/PROTOCOL.md, section 14). Closing it ends the terminal and kills
everything started in it.
"""

from __future__ import annotations

import asyncio
import contextlib

from sandkasten_runner.protocol import Message, encode_frame

from .errors import RunnerRequestError, RunnerUnavailable
from .runner_frames import read_frame


class RunnerTerminal:
    """An interactive PTY in a sandbox, over a control connection given over to it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pid: int) -> None:
        self._reader = reader
        self._writer = writer
        self.pid = pid  # bash's pid inside the sandbox
        self.exit_code: int | None = None

    async def read(self) -> bytes | None:
        """The next chunk of output, or None once the terminal has ended (``exit_code`` is set then)."""
        while True:
            message, payload = await self._read_frame()
            kind = message.get("type")
            if kind == "output":
                if payload:
                    return payload
                continue
            if kind == "result":
                self.exit_code = (message.get("result") or {}).get("exit_code")
                return None
            if kind == "error":
                error = dict(message.get("error") or {})
                raise RunnerRequestError(error.pop("code", "internal"), error.pop("message", ""), error)

    async def write(self, data: bytes) -> None:
        """Send ``data`` to the terminal as keyboard input."""
        await self._send({"op": "terminal_input"}, data)

    async def resize(self, rows: int, cols: int) -> None:
        """Set the PTY's size in rows and columns."""
        await self._send({"op": "terminal_resize", "args": {"rows": rows, "cols": cols}})

    def close_nowait(self) -> None:
        """``close`` without waiting for the connection to finish closing (from synchronous code)."""
        self._writer.close()

    async def close(self) -> None:
        """End the terminal: the runner kills its processes when the connection closes."""
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    async def _send(self, message: Message, payload: bytes = b"") -> None:
        if self._writer.is_closing():
            raise RunnerUnavailable("the terminal is closed")
        try:
            self._writer.write(encode_frame(message, payload))
            await self._writer.drain()
        except OSError as exc:
            raise RunnerUnavailable("the terminal's connection failed: %s" % exc) from None

    async def _read_frame(self) -> tuple[Message, bytes]:
        return await read_frame(self._reader, "the terminal")
