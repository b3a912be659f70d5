"""Reading one control-protocol frame from an asyncio stream, for every host-side user of a runner connection."""

from __future__ import annotations

import asyncio

from sandkasten_runner.protocol import HEADER, Message, ProtocolError, decode_header, decode_message

from .errors import RunnerUnavailable


async def read_frame(reader: asyncio.StreamReader, path: str) -> tuple[Message, bytes]:
    """The next frame; a broken or closed connection to the runner at ``path`` is ``RunnerUnavailable``."""
    try:
        header = await reader.readexactly(HEADER.size)
        json_len, payload_len = decode_header(header)
        body = await reader.readexactly(json_len)
        payload = await reader.readexactly(payload_len) if payload_len else b""
    except asyncio.IncompleteReadError:
        raise RunnerUnavailable("the runner at %s closed the connection" % path) from None
    except ProtocolError as exc:
        raise RunnerUnavailable("bad frame from the runner: %s" % exc.message) from None
    except OSError as exc:
        raise RunnerUnavailable("connection to %s failed: %s" % (path, exc)) from None
    return decode_message(body), payload
