"""envd's plain HTTP routes: ``/health``, and ``/files`` to download and upload files.

Paths are E2B's, reaching the workspace only (``envd_filesystem.workspace_path``).
A download comes from the runner a piece at a time, so a large file is never
held whole. An upload has arrived whole (``sandbox_traffic`` holds the body,
bounded by ``quota.max_body_mb``): multipart/form-data, one part named
``file`` per file with the path as its filename, or the raw bytes of one file
(``?path=``), gzipped or not. Errors are envd's JSON ``{"code", "message"}``,
whose status the SDKs turn into their exceptions (404: FileNotFoundException,
400: InvalidArgumentException, 502: the sandbox is not running).
"""

from __future__ import annotations

import collections
import posixpath
import zlib
from typing import Any

from tornado import httputil

from sandkasten_kernel.engine import EngineError, RunnerClient, RunnerRequestError

from ..handlers.files import Pieces
from .base import E2BError
from .connect_rpc import RpcError
from .envd_filesystem import in_e2b_words, workspace_path
from .paths import to_e2b
from .rpc import ENVD_PORT, Route, route, rpc_error

OCTET = "application/octet-stream"
READ_BYTES = 1 << 20  # a download's piece: read from the runner, then sent, before the next
WRITE_BYTES = 32 << 20  # an upload goes to the runner in writes of this size (a frame carries 64 MiB)
MAX_PARTS = 1000  # files in one multipart upload
_PARSE_OPTIONS: dict[str, Any] = (
    {"config": httputil.ParseBodyConfig(multipart=httputil.ParseMultipartConfig(max_parts=MAX_PARTS))}
    if hasattr(httputil, "ParseBodyConfig")  # tornado >= 6.5.5 limits parts (to 100 by default)
    else {}
)


async def health(handler: Any) -> None:
    handler.set_status(204)
    handler.finish()


def _sandbox_path(path: str) -> str:
    try:
        return workspace_path(path)
    except RpcError as exc:
        raise E2BError(400, exc.message) from None


def _failure(exc: EngineError, path: str) -> E2BError:
    """envd's answer for a failed file op on ``path`` (a sandbox path): its words where the SDKs read them."""
    code = exc.code if isinstance(exc, RunnerRequestError) else None
    if code == "not_found":
        return E2BError(404, "path '%s' does not exist" % to_e2b(path))
    if code == "is_a_directory":
        return E2BError(400, "path '%s' is a directory" % to_e2b(path))
    if code == "no_space":
        return E2BError(507, "not enough disk space available")
    error = rpc_error(exc)  # a sandbox gone is "unavailable" there, E2B's 502 here
    return E2BError(502 if error.code == "unavailable" else error.status, in_e2b_words(error.message))


async def _read(runner: RunnerClient, path: str, offset: int) -> tuple[Pieces, int]:
    """A piece of the file from ``offset`` (never more than asked for) and the file's size."""
    pieces = Pieces(READ_BYTES)
    result, _ = await runner.request("read", {"path": path, "offset": offset, "length": READ_BYTES}, sink=pieces.take)
    size = result.get("size")
    return pieces, size if isinstance(size, int) and size >= 0 else pieces.count


async def download(handler: Any) -> None:
    """``GET files?path=P``: the file's bytes, its size (as the runner first says it) as Content-Length.
    A file that shrinks meanwhile ends the reply short; one that grows is sent to that size."""
    path = _sandbox_path(handler.get_query_argument("path", ""))
    try:
        async with handler.engine.runner(handler.record.id) as runner:
            pieces, size = await _read(runner, path, 0)
            handler.set_header("Content-Type", OCTET)
            handler.set_header("Content-Length", size)
            sent = 0
            while True:
                for piece in pieces.kept:
                    piece = piece[: size - sent]
                    handler.write(piece)
                    sent += len(piece)
                await handler.flush()
                if sent >= size or not pieces.count:
                    break
                pieces, _ = await _read(runner, path, sent)
    except EngineError as exc:
        raise _failure(exc, path) from None
    handler.finish()


def gunzipped(data: bytes, limit: int) -> bytes:
    """``data`` (one or more gzip members) decompressed; a 413 once it would be over ``limit`` bytes."""
    out = bytearray()
    while data:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise E2BError(400, "error decompressing request body: %s" % exc) from None
        if len(out) > limit:
            raise E2BError(413, "the body is over quota.max_body_mb once decompressed")
        if not inflater.eof:
            raise E2BError(400, "error decompressing request body: the gzip stream is cut short")
        data = inflater.unused_data
    return bytes(out)


def _body(handler: Any) -> bytes:
    encoding = handler.request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return bytes(handler.body)
    if encoding != "gzip":
        raise E2BError(400, "unsupported Content-Encoding %r: send gzip or identity" % encoding)
    return gunzipped(handler.body, handler.service.settings.quota.max_body_mb << 20)


def uploaded(handler: Any) -> list[tuple[str, bytes]]:
    """The files a ``POST files`` carries: (sandbox path, content)."""
    content_type = handler.request.headers.get("Content-Type", "")
    query_path = handler.get_query_argument("path", None)
    kind = content_type.split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        files: dict[str, list[httputil.HTTPFile]] = {}
        try:
            httputil.parse_body_arguments(content_type, handler.body, {}, files, **_PARSE_OPTIONS)
        except httputil.HTTPInputError as exc:
            raise E2BError(400, "error parsing multipart form: %s" % exc) from None
        parts = files.get("file", [])
        if not parts:
            raise E2BError(400, "the form has no file: send each as a part named 'file', its filename the path")
        if query_path is not None and len(parts) == 1:
            return [(_sandbox_path(query_path), parts[0].body)]
        return [(_sandbox_path(part.filename), part.body) for part in parts]
    if kind == OCTET:
        if not query_path:
            raise E2BError(400, "path query parameter is required for raw body upload")
        return [(_sandbox_path(query_path), _body(handler))]
    raise E2BError(
        400, "unsupported content type: %s, expected multipart/form-data or application/octet-stream" % content_type
    )


async def upload(handler: Any) -> None:
    """``POST files``: each file written (parents made, an existing one replaced); what was written, as envd says."""
    files = uploaded(handler)
    repeated = [path for path, count in collections.Counter(path for path, _ in files).items() if count > 1]
    if repeated:
        raise E2BError(
            400, "you cannot upload multiple files to the same path '%s' in one upload request" % to_e2b(repeated[0])
        )
    written = []
    path = ""
    try:
        async with handler.engine.runner(handler.record.id) as runner:
            for path, data in files:
                for start in range(0, max(len(data), 1), WRITE_BYTES):
                    await runner.write(path, data[start : start + WRITE_BYTES], append=start > 0)
                written.append({"name": posixpath.basename(to_e2b(path)), "type": "file", "path": to_e2b(path)})
    except EngineError as exc:
        raise _failure(exc, path) from None
    handler.reply(written)


ROUTES: list[Route] = [
    route(ENVD_PORT, "GET", "health", health),
    route(ENVD_PORT, "GET", "files", download),
    route(ENVD_PORT, "POST", "files", upload),
]
