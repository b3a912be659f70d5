"""Reading one control-protocol frame from an asyncio stream, for every host-side user of a runner connection."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sandkasten_runner.protocol import HEADER, PIECE_BYTES, Message, ProtocolError, decode_header, decode_message

from .errors import RunnerUnavailable

# Takes a result's payload piece by piece as it arrives, instead of the payload whole.
Sink = Callable[[bytes], None]


async def read_frame(reader: asyncio.StreamReader, path: str, sink: Sink | None = None) -> tuple[Message, bytes]:
    """The next frame; a broken or closed connection to the runner at ``path`` is ``RunnerUnavailable``.

    With ``sink``, a ``result`` frame's payload goes to it as it arrives (never held whole)
    and the frame comes back with an empty one.
    """
    try:
        header = await reader.readexactly(HEADER.size)
        json_len, payload_len = decode_header(header)
        message = decode_message(await reader.readexactly(json_len))
        if sink is not None and message.get("type") == "result":
            while payload_len:
                piece = await reader.readexactly(min(payload_len, PIECE_BYTES))
                payload_len -= len(piece)
                sink(piece)
        payload = await reader.readexactly(payload_len) if payload_len else b""
    except asyncio.IncompleteReadError:
        raise RunnerUnavailable("the runner at %s closed the connection" % path) from None
    except ProtocolError as exc:
        raise RunnerUnavailable("bad frame from the runner: %s" % exc.message) from None
    except OSError as exc:
        raise RunnerUnavailable("connection to %s failed: %s" % (path, exc)) from None
    return message, payload
