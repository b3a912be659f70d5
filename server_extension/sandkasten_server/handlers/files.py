"""``sessions/{id}/files/{path}`` (read, list, write, remove) and ``sessions/{id}/archive/{path}`` (tar)."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..errors import ApiError
from ..tar_stream import CHUNK, pack, unpack
from .base import SandkastenHandler

OCTET = "application/octet-stream"
FLUSH_BYTES = 1 << 20


class FilesHandler(SandkastenHandler):
    @web.authenticated
    @authorized
    async def get(self, session_id: str, path: str | None = None) -> None:
        record = self.session_record(session_id)
        path = path or "."
        async with self.engine.runner(record.id) as runner:
            info = await runner.stat(path)
            if info["type"] == "directory":
                self.reply({"path": info["path"], "entries": await runner.list(path)})
                return
            self.set_header("Content-Type", OCTET)
            offset = 0
            while data := await runner.read(path, offset=offset, length=CHUNK):
                self.write(data)
                await self.flush()
                offset += len(data)
                if len(data) < CHUNK:
                    break
        self.finish(set_content_type=OCTET)

    @web.authenticated
    @authorized
    async def put(self, session_id: str, path: str | None = None) -> None:
        record = self.session_record(session_id)
        path = path or "."
        mode_text = self.get_query_argument("mode", "644")
        try:
            mode = int(mode_text, 8)
        except ValueError:
            raise ApiError(
                400, "bad_request", "query 'mode' must be octal permission bits, not %r" % mode_text
            ) from None
        if not 0 <= mode <= 0o7777:
            raise ApiError(400, "bad_request", "query 'mode' must be octal permission bits, not %r" % mode_text)
        body = self.request.body
        async with self.engine.runner(record.id) as runner:
            result = await runner.write(path, body[:CHUNK], mode=mode)
            for start in range(CHUNK, len(body), CHUNK):
                result = await runner.write(path, body[start : start + CHUNK], mode=mode, append=True)
        self.reply({"path": result["path"], "size": result["size"]}, 201)

    @web.authenticated
    @authorized
    async def delete(self, session_id: str, path: str | None = None) -> None:
        record = self.session_record(session_id)
        path = path or "."
        recursive = self.get_query_argument("recursive", "false")
        if recursive not in ("true", "false"):
            raise ApiError(400, "bad_request", "query 'recursive' must be true or false, not %r" % recursive)
        await self.engine.remove_file(record.id, path, recursive=recursive == "true")
        self.set_status(204)
        self.finish()


class ArchiveHandler(SandkastenHandler):
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
        record = self.session_record(session_id)
        path = path or "."
        async with self.engine.runner(record.id) as runner:
            self.reply(await unpack(runner, path, self.request.body))
