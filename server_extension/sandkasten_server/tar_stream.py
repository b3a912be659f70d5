"""Directories in and out of a sandbox as tar streams, through the runner's file ops.

Packing walks the directory with ``list`` and streams each file with ranged
``read`` calls, so no archive is ever held whole in memory.

Unpacking streams too, as the body arrives: a worker thread decompresses and
parses it (``tar_reader``, within quota.max_archive_mb and
quota.max_archive_members) while the event loop writes each member through the
runner, whose /workspace confinement applies to each path again. Neither side
runs ahead of the other by more than a few MiB (``thread_bridge``). Since
members are written before the end of the archive is known, a refused or
abandoned upload removes what it had written: the files it wrote (including
existing ones it had replaced) and the directories it created; the error
message says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import tarfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sandkasten_kernel.engine import EngineError, RunnerClient, RunnerRequestError

from .errors import ApiError, api_error
from .tar_reader import Done, Limits, Member, read_archive
from .thread_bridge import Abandoned, BodyPipe, Mailbox

CHUNK = 8 << 20  # bytes per read or write call (the protocol carries up to 64 MiB)
BLOCK = tarfile.BLOCKSIZE
WRITE_BYTES = 4 << 20  # member data goes to the runner in writes of up to this size
BODY_AHEAD = 1 << 20  # body bytes waiting for the worker thread, at most
EVENTS_AHEAD = 8 << 20  # decompressed bytes waiting for the loop, at most


async def _walk(runner: RunnerClient, root: str, relative: str = "") -> AsyncIterator[tuple[str, dict[str, Any]]]:
    for entry in await runner.list(posixpath.join(root, relative) if relative else root):
        name = posixpath.join(relative, entry["name"]) if relative else entry["name"]
        yield name, entry
        if entry["type"] == "directory":
            async for item in _walk(runner, root, name):
                yield item


def _header(name: str, entry: dict[str, Any], size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.mode = entry.get("mode", 0o644)
    info.mtime = int(entry.get("mtime", 0))
    if entry["type"] == "directory":
        info.type = tarfile.DIRTYPE
    else:
        info.size = size
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


async def pack(runner: RunnerClient, root: str, write: Callable[[bytes], Awaitable[None]]) -> list[str]:
    """Write ``root`` as a tar stream through ``write``; return what was left out (links, devices)."""
    skipped = []
    async for name, entry in _walk(runner, root):
        if entry["type"] not in ("file", "directory"):
            skipped.append(name)
            continue
        size = entry["size"] if entry["type"] == "file" else 0
        await write(_header(name, entry, size))
        sent = 0
        while sent < size:  # exactly the size in the header, even if the file changes meanwhile
            data = await runner.read(posixpath.join(root, name), offset=sent, length=min(CHUNK, size - sent))
            if not data:
                data = bytes(size - sent)
            await write(data)
            sent += len(data)
        if size % BLOCK:
            await write(bytes(BLOCK - size % BLOCK))
    await write(bytes(2 * BLOCK))
    return skipped


class Unpack:
    """One archive upload: ``open``, ``feed`` the body as it arrives, then ``finish`` (or ``abort``)."""

    def __init__(
        self, connection: contextlib.AbstractAsyncContextManager[RunnerClient], root: str, limits: Limits
    ) -> None:
        self._connection = connection
        self._root = posixpath.normpath(root)
        self._limits = limits
        self._created: list[str] = []  # top-most paths this upload made, in order
        self._created_set: set[str] = set()
        self._existing: set[str] = set()  # paths known to have been there before
        self._written: list[str] = []  # files written (created or replaced)
        self._files = self._directories = self._bytes = 0
        self._skipped: list[str] = []
        self._task: asyncio.Task[dict[str, Any]] | None = None

    async def open(self) -> None:
        self._runner = await self._connection.__aenter__()
        try:
            await self._note_new(self._root)
            await self._runner.mkdir(self._root)
        except BaseException as exc:
            await self._connection.__aexit__(type(exc), exc, None)
            raise
        loop = asyncio.get_running_loop()
        self._pipe = BodyPipe(loop, BODY_AHEAD)
        self._mailbox: Mailbox[Any] = Mailbox(loop, EVENTS_AHEAD)
        threading.Thread(target=self._read, name="sandkasten-untar", daemon=True).start()
        self._task = asyncio.ensure_future(self._write_all())

    async def feed(self, chunk: bytes) -> None:
        """Hand a piece of the body over (waits while the thread is behind); raises the upload's error."""
        assert self._task is not None
        await self._pipe.write(chunk)
        if self._task.done():
            self._task.result()  # the error; or the archive ended and the rest of the body is dropped

    async def finish(self) -> dict[str, Any]:
        """The body is complete: the result once everything is written (or the upload's error)."""
        assert self._task is not None
        self._pipe.end()
        try:
            result = await self._task
        except BaseException as exc:
            await self._connection.__aexit__(type(exc), exc, None)
            raise
        await self._connection.__aexit__(None, None, None)
        return result

    async def abort(self, reason: BaseException) -> ApiError:
        """Stop (the body was refused, or the client left): remove what was written; the error to answer."""
        assert self._task is not None
        self._pipe.abandon()
        self._mailbox.abandon()
        error = as_api_error(reason)
        try:
            await self._task
        except ApiError as exc:  # the task's own error, or "abandoned": either says what was removed
            error = noted(error, exc.message) if exc.code == "abandoned" else exc
        except Exception as exc:
            error = as_api_error(exc)
        else:  # the archive had ended, but the upload as a whole is refused
            error = noted(error, await self._remove_written())
        await self._connection.__aexit__(type(reason), reason, None)
        return error

    # -- the worker thread -------------------------------------------------------------

    def _read(self) -> None:
        try:
            read_archive(self._pipe, self._limits, self._mailbox.put)
        except Abandoned:
            pass
        except BaseException as exc:  # the loop raises it: a 400 or 413, or a bug (500)
            with contextlib.suppress(Abandoned):
                self._mailbox.put(exc, 0)
        finally:
            self._pipe.close_reader()  # the loop's writes stop waiting

    # -- the loop: writes through the runner ------------------------------------------

    async def _write_all(self) -> dict[str, Any]:
        try:
            return await self._write_members()
        except BaseException as exc:
            self._pipe.abandon()
            self._mailbox.abandon()
            note = await self._remove_written()
            if isinstance(exc, Abandoned):
                raise ApiError(499, "abandoned", note) from None
            if isinstance(exc, (ApiError, EngineError)):
                raise noted(as_api_error(exc), note) from None
            raise

    async def _write_members(self) -> dict[str, Any]:
        target, buffer, started = "", bytearray(), False
        mode = 0o600
        while True:
            event = await self._mailbox.get()
            if isinstance(event, bytes):
                buffer += event
                if len(buffer) >= WRITE_BYTES:
                    await self._runner.write(target, bytes(buffer), mode=mode, append=started)
                    buffer.clear()
                    started = True
                continue
            if isinstance(event, BaseException):
                raise event
            if target and (buffer or not started):  # the file before this event is complete
                await self._runner.write(target, bytes(buffer), mode=mode, append=started)
                buffer.clear()
            target, started = "", False
            if isinstance(event, Done):
                return {
                    "path": self._root,
                    "files": self._files,
                    "directories": self._directories,
                    "bytes": self._bytes,
                    "skipped": self._skipped,
                }
            assert isinstance(event, Member)
            path = posixpath.normpath(posixpath.join(self._root, event.name))
            if event.kind == "directory":
                await self._note_new(path)
                await self._runner.mkdir(path)
                self._directories += 1
            elif event.kind == "file":
                await self._note_new(path)
                self._written.append(path)
                target, mode = path, (event.mode & 0o777) | 0o600  # the owner can always rewrite what it uploaded
                self._files += 1
                self._bytes += event.size
            else:
                self._skipped.append(event.name)

    async def _note_new(self, path: str) -> None:
        """Remember the top-most part of ``path`` that does not exist yet (this upload makes it)."""
        below_root = posixpath.relpath(path, self._root) if path != self._root else ""
        prefix = self._root
        for part in [""] + [p for p in below_root.split("/") if p and p != "."]:
            prefix = posixpath.normpath(posixpath.join(prefix, part))
            if prefix in self._created_set:
                return
            if prefix in self._existing:
                continue
            try:
                await self._runner.stat(prefix)
            except RunnerRequestError as exc:
                if exc.code != "not_found":
                    raise
                self._created.append(prefix)
                self._created_set.add(prefix)
                return
            self._existing.add(prefix)

    async def _remove_written(self) -> str:
        """Remove what this upload wrote; a sentence saying what."""
        replaced = [p for p in self._written if not _under(p, self._created_set)]
        failed = []
        for path in [*reversed(self._created), *replaced]:
            try:
                await self._runner.remove(path, recursive=True)
            except RunnerRequestError as exc:
                if exc.code != "not_found":
                    failed.append(path)
            except EngineError:
                failed.append(path)
        done = "the %d files and %d directories it had written are removed" % (self._files, self._directories)
        if replaced:
            done += " (%d of the files had replaced existing ones)" % len(replaced)
        if failed:
            done += "; these could not be removed: %s" % ", ".join(failed[:10])
        return done


def _under(path: str, roots: set[str]) -> bool:
    while True:
        if path in roots:
            return True
        parent = posixpath.dirname(path)
        if parent == path or not parent:
            return False
        path = parent


def as_api_error(exc: BaseException) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, EngineError):
        return api_error(exc)
    return ApiError(500, "internal", "internal error; the server log has the details")


def noted(error: ApiError, note: str) -> ApiError:
    """``error`` with ``note`` (what the upload left behind) added to its message."""
    return ApiError(error.status_code, error.code, "%s; %s" % (error.message, note), error.headers)
