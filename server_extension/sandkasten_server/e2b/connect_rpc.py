"""Connect RPC over HTTP/1.1 with JSON, as E2B's SDKs speak it to envd.

Unary calls are ``application/json`` both ways; an error is a non-200 status
with ``{"code": "<name>", "message": ...}``. Streams are
``application/connect+json``: a sequence of envelopes (one flags byte, a
big-endian uint32 length, the JSON message), ended by an end-stream envelope
(flags ``0x02``) that carries the error, if any. A stream's status is always
200, so an error before the first message also goes in the end-stream envelope
(a JavaScript client maps a non-200 stream status to the wrong code).

Messages use protobuf's JSON mapping: lowerCamelCase names, int64 as strings,
bytes as base64, enums by name.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from typing import Any

STREAM_CONTENT_TYPE = "application/connect+json"
UNARY_CONTENT_TYPE = "application/json"
END_STREAM = 0x02
_PREFIX = struct.Struct(">BI")
# A request message larger than this is refused: envd's requests are small (input is sent in pieces).
MAX_MESSAGE_BYTES = 16 << 20

# Connect error codes and the HTTP status a unary error carries.
HTTP_STATUS = {
    "canceled": 499,
    "unknown": 500,
    "invalid_argument": 400,
    "deadline_exceeded": 504,
    "not_found": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "resource_exhausted": 429,
    "failed_precondition": 400,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "data_loss": 500,
    "unauthenticated": 401,
}


class RpcError(Exception):
    """An RPC's failure: a Connect ``code`` (a key of ``HTTP_STATUS``) and a message for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        assert code in HTTP_STATUS, code
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.code]

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


def envelope(message: dict[str, Any], flags: int = 0) -> bytes:
    """One message of a stream, framed."""
    data = json.dumps(message, separators=(",", ":")).encode("utf-8")
    return _PREFIX.pack(flags, len(data)) + data


def end_stream(error: RpcError | None = None) -> bytes:
    """The envelope that ends a stream: empty, or carrying ``error``."""
    return envelope({"error": error.body()} if error is not None else {}, END_STREAM)


class EnvelopeReader:
    """Splits a stream's request body into messages as its bytes arrive (``feed``)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.ended = False  # an end-stream envelope came

    def feed(self, data: bytes) -> Iterator[dict[str, Any]]:
        """The whole messages ``data`` completes; raises ``RpcError`` for a malformed one."""
        self._buffer += data
        while len(self._buffer) >= _PREFIX.size:
            flags, length = _PREFIX.unpack_from(self._buffer)
            if length > MAX_MESSAGE_BYTES:
                raise RpcError("resource_exhausted", "a message of %d bytes is over %d" % (length, MAX_MESSAGE_BYTES))
            if flags & 0x01:
                raise RpcError("unimplemented", "compressed messages are not supported")
            end = _PREFIX.size + length
            if len(self._buffer) < end:
                return
            payload = bytes(self._buffer[_PREFIX.size : end])
            del self._buffer[:end]
            if flags & END_STREAM:
                self.ended = True
                continue
            yield parse_message(payload)


def parse_message(data: bytes) -> dict[str, Any]:
    """A request message (JSON object); ``invalid_argument`` for anything else."""
    try:
        message = json.loads(data or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise RpcError("invalid_argument", "the message is not valid JSON: %s" % exc) from None
    if not isinstance(message, dict):
        raise RpcError("invalid_argument", "the message must be a JSON object")
    return message


def first_message(body: bytes) -> dict[str, Any]:
    """The one message a server-streaming call's body holds."""
    reader = EnvelopeReader()
    messages = list(reader.feed(body))
    if len(messages) != 1:
        raise RpcError("invalid_argument", "a server-streaming call takes exactly one message, not %d" % len(messages))
    return messages[0]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(value: Any, field: str) -> bytes:
    """A ``bytes`` field's value (standard base64, padding optional)."""
    if not isinstance(value, str):
        raise RpcError("invalid_argument", "%s must be base64 text" % field)
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except ValueError:
        raise RpcError("invalid_argument", "%s is not valid base64" % field) from None


def field(message: dict[str, Any], name: str, kind: type, default: Any = None) -> Any:
    """A typed field of a request message (absent: ``default``); ``invalid_argument`` for the wrong type."""
    value = message.get(name)
    if value is None:
        return default
    if kind is int and isinstance(value, str) and value.lstrip("-").isdigit():
        value = int(value)  # int64 comes as a string
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RpcError("invalid_argument", "%s must be of type %s" % (name, kind.__name__))
    return value
