"""Wire framing of the runner's control protocol (see runner/PROTOCOL.md).

Both sides import this module, the runner inside the sandbox and the engine's
runner client on the host, so the framing cannot drift between them.

A frame is an 8-byte header, then a JSON object, then an optional binary
payload::

    uint32 big-endian  length of the JSON object in bytes
    uint32 big-endian  length of the binary payload in bytes
    <JSON, UTF-8>      the message
    <payload>          raw bytes (file contents, stdin data), may be empty

Standard library only: this runs on the sandbox image's own python3 (>= 3.9).
"""

import json
import socket
import struct
from typing import Any, Callable, Dict, Optional, Tuple

PROTOCOL_VERSION = 1
# An exec's timeout when the request names none; the host's client waits on it too.
DEFAULT_TIMEOUT_MS = 60_000

HEADER = struct.Struct(">II")
# The JSON part carries commands and metadata, never bulk data: keep it small so
# a hostile or broken peer cannot make the other side buffer much.
MAX_JSON_BYTES = 1 << 20
# Bulk data travels in the payload; larger files go in several frames.
MAX_PAYLOAD_BYTES = 64 << 20
# A payload that is copied on as it arrives (a write's) passes through a buffer of this size.
PIECE_BYTES = 1 << 20

Message = Dict[str, Any]


class ProtocolError(Exception):
    """A frame that cannot be decoded.

    ``fatal`` means the byte stream can no longer be trusted (the lengths were
    bad), so the connection must be closed after replying.
    """

    def __init__(self, code: str, message: str, fatal: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fatal = fatal


class PayloadCut(ProtocolError):
    """The connection ended or failed in the middle of a payload taken as it arrived."""

    def __init__(self, message: str) -> None:
        super().__init__("bad_frame", message, fatal=True)


def encode_head(message: Message, payload_length: int) -> bytes:
    """A frame without its payload: the header, then ``message`` as compact JSON; refuses oversized parts.

    The payload follows as it is: a large one is sent after this, never copied onto it.
    """
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(body) > MAX_JSON_BYTES:
        raise ProtocolError("frame_too_large", "JSON part is %d bytes, limit %d" % (len(body), MAX_JSON_BYTES))
    if payload_length > MAX_PAYLOAD_BYTES:
        raise ProtocolError("frame_too_large", "payload is %d bytes, limit %d" % (payload_length, MAX_PAYLOAD_BYTES))
    return HEADER.pack(len(body), payload_length) + body


def encode_frame(message: Message, payload: bytes = b"") -> bytes:
    """One frame: the header, then ``message`` as compact JSON, then ``payload``; refuses oversized parts."""
    return encode_head(message, len(payload)) + payload


def decode_header(header: bytes) -> Tuple[int, int]:
    """Return (json_length, payload_length), refusing lengths over the limits."""
    json_len, payload_len = HEADER.unpack(header)
    if json_len == 0:
        raise ProtocolError("bad_frame", "empty JSON part", fatal=True)
    if json_len > MAX_JSON_BYTES:
        raise ProtocolError(
            "frame_too_large", "JSON part of %d bytes exceeds %d" % (json_len, MAX_JSON_BYTES), fatal=True
        )
    if payload_len > MAX_PAYLOAD_BYTES:
        raise ProtocolError(
            "frame_too_large", "payload of %d bytes exceeds %d" % (payload_len, MAX_PAYLOAD_BYTES), fatal=True
        )
    return json_len, payload_len


def decode_message(body: bytes) -> Message:
    """The JSON part of a frame as an object; a ProtocolError if it is not one."""
    try:
        message = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError("bad_frame", "JSON part is not valid UTF-8 JSON: %s" % exc) from None
    if not isinstance(message, dict):
        raise ProtocolError("bad_frame", "JSON part must be an object, got %s" % type(message).__name__)
    return message


def _recv_exactly(sock: socket.socket, n: int) -> Optional[bytes]:
    """Read n bytes; None on a clean EOF before the first byte."""
    if n == 0:
        return b""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        count = sock.recv_into(view[got:], n - got)
        if count == 0:
            if got == 0:
                return None
            raise ProtocolError("bad_frame", "connection closed in the middle of a frame", fatal=True)
        got += count
    return bytes(buf)


class Incoming:
    """A frame's payload still on the socket. Whoever reads a frame's head takes all of it,
    by ``read``, ``copy_to`` or ``skip``, so the next frame starts in step.

    A connection that ends or fails part-way raises ``PayloadCut`` (a fatal ``ProtocolError``).
    """

    def __init__(self, sock: socket.socket, size: int) -> None:
        self._sock = sock
        self.left = size

    def read(self) -> bytes:
        """The rest of the payload, whole."""
        data = _recv_exactly(self._sock, self.left) if self.left else b""
        if data is None:
            raise ProtocolError("bad_frame", "connection closed in the middle of a frame", fatal=True)
        self.left = 0
        return data

    def copy_to(self, write: Callable[[memoryview], object]) -> None:
        """Hand the rest of the payload to ``write`` piece by piece as it arrives (the view is
        reused for the next piece). If ``write`` raises, the piece counts as taken."""
        if not self.left:
            return
        buffer = memoryview(bytearray(min(self.left, PIECE_BYTES)))
        while self.left:
            count = self.read_into(buffer)
            write(buffer[:count])

    def read_into(self, buffer: memoryview) -> int:
        """As much of the payload as one receive gives, up to ``len(buffer)``, into ``buffer``;
        0 once all of it is taken."""
        if not self.left:
            return 0
        try:
            count = self._sock.recv_into(buffer, min(self.left, len(buffer)))
        except OSError as exc:
            raise PayloadCut("connection lost in the middle of a frame: %s" % exc) from None
        if count == 0:
            raise PayloadCut("connection closed in the middle of a frame")
        self.left -= count
        return count

    def skip(self) -> None:
        """Read and drop the rest of the payload."""
        self.copy_to(lambda piece: None)


def read_head(sock: socket.socket) -> Optional[Tuple[bytes, Incoming]]:
    """Blocking read of a frame up to its payload: the JSON part (not decoded yet) and the
    payload, still to be taken; None when the peer closed between frames."""
    header = _recv_exactly(sock, HEADER.size)
    if header is None:
        return None
    json_len, payload_len = decode_header(header)
    body = _recv_exactly(sock, json_len)
    if body is None:
        raise ProtocolError("bad_frame", "connection closed in the middle of a frame", fatal=True)
    return body, Incoming(sock, payload_len)


def read_frame(sock: socket.socket) -> Optional[Tuple[Message, bytes]]:
    """Blocking read of one frame; None when the peer closed between frames."""
    head = read_head(sock)
    if head is None:
        return None
    body, incoming = head
    payload = incoming.read()
    return decode_message(body), payload


def error_message(request_id: Any, code: str, message: str, **details: Any) -> Message:
    """An ``error`` reply to request ``request_id``, with ``details`` beside code and message."""
    error: Message = {"code": code, "message": message}
    error.update(details)
    return {"id": request_id, "type": "error", "error": error}
