"""``sessions/{id}/files/{path}`` (read, list, write, remove) and ``sessions/{id}/archive/{path}`` (tar)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import ensure_async
from tornado import web

from sandkasten_kernel.engine import EngineError, RunnerClient

from ..errors import ApiError
from ..tar_reader import Limits
from ..tar_stream import CHUNK, Unpack, as_api_error, noted, pack
from .base import SandkastenHandler

OCTET = "application/octet-stream"
FLUSH_BYTES = 1 << 20
UPLOAD_WRITE_BYTES = 4 << 20  # a PUT body goes to the runner in writes of this size
_closing: set[asyncio.Future[Any]] = set()  # uploads being let go after their client left


def octal_mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise ApiError(400, "bad_request", "query 'mode' must be octal permission bits, not %r" % text)
    return mode


class Pieces:
    """A read's bytes as they came from the runner, never joined, and never more than were asked
    for: the runner is the sandbox's, and what it sends beyond ``wanted`` is dropped."""

    def __init__(self, wanted: int) -> None:
        self.wanted = wanted
        self.kept: list[bytes] = []
        self.count = 0

    def take(self, piece: bytes) -> None:
        piece = piece[: self.wanted - self.count]
        if piece:
            self.kept.append(piece)
            self.count += len(piece)


class Upload:
    """A file written as its request body arrives: gathered, then written (first) or appended.

    The pieces go to the runner as they came, never joined, one write's worth at a time;
    the next is gathered while the runner takes the last.
    """

    def __init__(self, connection: contextlib.AbstractAsyncContextManager[RunnerClient], path: str, mode: int) -> None:
        self._connection = connection
        self._runner: RunnerClient | None = None
        self._pieces: list[bytes] = []
        self._gathered = 0
        self._writing: asyncio.Task[None] | None = None  # the write under way
        self._started = False  # a write was sent: the next ones append
        self._written = False  # a write succeeded: the file is (partly) this upload's
        self._stopped = False  # aborted: nothing more is sent
        self.path, self.mode = path, mode
        self.result: dict[str, Any] = {}

    async def open(self) -> None:
        self._runner = await self._connection.__aenter__()

    async def feed(self, chunk: bytes) -> None:
        self._pieces.append(chunk)
        self._gathered += len(chunk)
        if self._gathered >= UPLOAD_WRITE_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        """Send what is gathered once the write before it has succeeded (its error is raised here)."""
        await self._settle()
        if self._stopped or self._runner is None:
            return
        pieces, self._pieces, self._gathered = self._pieces, [], 0
        self._writing = asyncio.ensure_future(self._write(self._runner, pieces, self._started))
        self._started = True

    async def _write(self, runner: RunnerClient, pieces: list[bytes], append: bool) -> None:
        self.result = await runner.write(self.path, pieces, mode=self.mode, append=append)
        self._written = True

    async def _settle(self) -> None:
        """Wait for the last write sent (for every caller alike: an abort must see it end too)."""
        if self._writing is not None:
            await self._writing

    async def finish(self) -> dict[str, Any]:
        try:
            if self._pieces or not self._started:
                await self._flush()
            await self._settle()
        except BaseException as exc:
            await self.close(exc)
            raise
        await self.close()
        return self.result

    async def close(self, error: BaseException | None = None) -> None:
        if self._runner is not None:
            self._runner = None
            await self._connection.__aexit__(type(error) if error else None, error, None)

    async def abort(self, reason: BaseException) -> ApiError:
        """Stop (the body was refused, or the client left); a partly written file is removed.
        The error to answer."""
        self._stopped = True
        error = as_api_error(reason)
        with contextlib.suppress(Exception):
            await self._settle()  # the write under way ends first; its error is not the one to answer
        if self._written and self._runner is not None:
            with contextlib.suppress(EngineError):
                await self._runner.remove(self.path)
                error = noted(error, "the partly written file is removed")
        await self.close(reason)
        return error


class StreamedPut(SandkastenHandler):
    """A PUT whose body streams into the sandbox as it arrives, never held whole in memory.

    The body comes before put() runs, so its checks (auth, the session) happen in
    prepare, first; each piece is counted against quota.max_body_mb as it comes.
    A failure while the body is still coming is answered at once (and tornado then
    closes the connection); one after it is answered by put() as usual.
    """

    upload: Upload | Unpack | None = None

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        if self.request.method != "PUT":
            return
        if self.current_user is None:
            self.get_login_url()  # raises the 401
        if not await ensure_async(self.authorizer.is_authorized(self, self.current_user, "write", self.auth_resource)):
            raise ApiError(403, "forbidden", "not authorized to write %s" % self.auth_resource)
        record = self.session_record(self.path_kwargs["session_id"])
        self.upload = await self.start_upload(self.engine.runner(record.id), self.path_kwargs.get("path") or ".")

    async def start_upload(
        self, connection: contextlib.AbstractAsyncContextManager[RunnerClient], path: str
    ) -> Upload | Unpack:
        raise NotImplementedError

    async def data_received(self, chunk: bytes) -> None:
        if self.upload is None or self._finished:
            return
        try:
            self.count_body(chunk)
            await self.upload.feed(chunk)
        except Exception as exc:
            upload, self.upload = self.upload, None
            self.refuse_body(await upload.abort(exc))

    def on_connection_close(self) -> None:
        if self.upload is not None:  # the client left mid-upload: stop, remove what it wrote, let the runner go
            upload, self.upload = self.upload, None
            closing = asyncio.ensure_future(upload.abort(ConnectionError("the client went away")))
            _closing.add(closing)
            closing.add_done_callback(_closing.discard)
        super().on_connection_close()

    async def finish_upload(self) -> dict[str, Any]:
        assert self.upload is not None  # prepare() opened it
        upload, self.upload = self.upload, None
        return await upload.finish()


class FilesHandler(StreamedPut):
    async def start_upload(
        self, connection: contextlib.AbstractAsyncContextManager[RunnerClient], path: str
    ) -> Upload | Unpack:
        upload = Upload(connection, path, octal_mode(self.get_query_argument("mode", "644")))
        await upload.open()
        return upload

    @web.authenticated
    @authorized
    async def get(self, session_id: str, path: str | None = None) -> None:
        record = self.session_record(session_id)
        path = path or "."
        async with self.engine.runner(record.id) as runner:
            info = await runner.stat(path)
            if info["type"] == "directory":
                page = await runner.list_page(path, self.get_query_argument("after", None))
                self.reply({"path": info["path"], "entries": page["entries"], "truncated": page["truncated"]})
                return
            self.set_header("Content-Type", OCTET)
            # A regular file's size is known: sent as Content-Length, the body needs no chunk framing.
            # The file is read up to that size; one that shrinks meanwhile ends the reply short.
            size = info["size"] if info["type"] == "file" and isinstance(info["size"], int) else -1
            if size >= 0:
                self.set_header("Content-Length", size)
            offset = 0
            while True:
                part = CHUNK if size < 0 else min(CHUNK, size - offset)
                pieces = Pieces(part)
                await runner.read_to(path, pieces.take, offset=offset, length=part)
                for piece in pieces.kept:  # the client takes each part before the next is read
                    self.write(piece)
                    await self.flush()
                offset += pieces.count
                if pieces.count < part or offset == size:
                    break
        self.finish(set_content_type=OCTET)

    @web.authenticated
    @authorized
    async def put(self, session_id: str, path: str | None = None) -> None:
        result = await self.finish_upload()
        self.reply({"path": result["path"], "size": result["size"]}, 201)

    @web.authenticated
    @authorized
    async def delete(self, session_id: str, path: str | None = None) -> None:
        record = self.session_record(session_id)
        path = path or "."
        recursive = self.get_query_argument("recursive", "false")
        if recursive not in ("true", "false"):
            raise ApiError(400, "bad_request", "query 'recursive' must be true or false, not %r" % recursive)
        async with self.engine.runner(record.id) as runner:
            await runner.remove(path, recursive=recursive == "true")
        self.set_status(204)
        self.finish()


class ArchiveHandler(StreamedPut):
    async def start_upload(
        self, connection: contextlib.AbstractAsyncContextManager[RunnerClient], path: str
    ) -> Upload | Unpack:
        quota = self.service.settings.quota
        unpack = Unpack(connection, path, Limits(quota.max_archive_mb << 20, quota.max_archive_members))
        await unpack.open()
        return unpack

    @web.authenticated
    @authorized
    async def get(self, session_id: str, path: str | None = None) -> None:
        record = self.session_record(session_id)
        path = path or "."
        async with self.engine.runner(record.id) as runner:
            info = await runner.stat(path)
            if info["type"] != "directory":
                raise ApiError(409, "not_a_directory", "%s is not a directory" % path)
            self.set_header("Content-Type", "application/x-tar")
            name = "workspace" if info["path"] == "." else info["path"].replace("/", "_")
            self.set_header("Content-Disposition", 'attachment; filename="%s.tar"' % name)

            pending = 0

            async def write(data: bytes) -> None:
                nonlocal pending
                self.write(data)
                pending += len(data)
                if pending >= FLUSH_BYTES:  # many small files: flush in batches, not per header
                    pending = 0
                    await self.flush()

            await pack(runner, path, write)
        self.finish(set_content_type="application/x-tar")

    @web.authenticated
    @authorized
    async def put(self, session_id: str, path: str | None = None) -> None:
        self.reply(await self.finish_upload())
