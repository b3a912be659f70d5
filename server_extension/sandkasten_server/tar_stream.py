"""Directories in and out of a sandbox as tar streams, through the runner's file ops.

Packing walks the directory with ``list`` and streams each file with ranged
``read`` calls, so no archive is ever held whole in memory. Unpacking checks
every member first (no absolute paths, no ``..``), then writes through the
runner, whose /workspace confinement applies to each path again.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sandkasten_kernel.engine.runner_client import RunnerClient

from .errors import ApiError

CHUNK = 8 << 20  # bytes per read or write call (the protocol carries up to 64 MiB)
BLOCK = tarfile.BLOCKSIZE


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


def _checked_members(body: bytes) -> tuple[tarfile.TarFile, list[tarfile.TarInfo]]:
    try:
        archive = tarfile.open(fileobj=io.BytesIO(body), mode="r:*")  # noqa: SIM115 (in memory: nothing to close)
        members = archive.getmembers()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ApiError(400, "bad_archive", "the body is not a readable tar archive: %s" % exc) from None
    for member in members:
        normalized = posixpath.normpath(member.name)
        if member.name.startswith("/") or normalized == ".." or normalized.startswith("../") or "\0" in member.name:
            raise ApiError(400, "bad_archive", "member %r points outside the target directory" % member.name)
    return archive, members


async def unpack(runner: RunnerClient, root: str, body: bytes) -> dict[str, Any]:
    archive, members = _checked_members(body)
    await runner.mkdir(root)
    files = directories = written = 0
    skipped = []
    for member in members:
        target = posixpath.normpath(posixpath.join(root, member.name))
        if member.isdir():
            await runner.mkdir(target)
            directories += 1
        elif member.isfile():
            source = archive.extractfile(member)
            assert source is not None
            mode = (member.mode & 0o777) | 0o600  # the owner can always rewrite what it uploaded
            data = source.read(CHUNK)
            await runner.write(target, data, mode=mode)
            while chunk := source.read(CHUNK):
                await runner.write(target, chunk, mode=mode, append=True)
                data = chunk
            files += 1
            written += member.size
        else:
            skipped.append(member.name)
    return {"path": root, "files": files, "directories": directories, "bytes": written, "skipped": skipped}
