"""Reading an uploaded tar stream as untrusted input: decompressed, parsed and checked within limits.

This runs in a worker thread (``tar_stream.unpack`` starts it), so a slow or
hostile archive costs that thread, never the event loop. Every decompressed
byte is counted, whatever it turns out to be (member data, headers, padding,
data tarfile skips), so the work is bounded by ``quota.max_archive_mb`` even
for a decompression bomb; a member whose header alone claims more is refused
before any of its data is read. Members are counted against
``quota.max_archive_members``. What tarfile itself holds in memory is bounded
too: extended headers (pax, GNU long names) are capped per member and in
total, and sparse members, whose maps tarfile would read into memory whole,
are refused.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import posixpath
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, Protocol, cast

from .errors import ApiError

DATA_CHUNK = 1 << 20  # member data goes to the loop in pieces of this size
MAX_NAME_BYTES = 4096  # PATH_MAX
MAX_HEADER_BYTES = 1 << 20  # extended headers before one member, and global ones in all
MAX_HEADERS_PER_MEMBER = 16
META_TYPES = frozenset(
    {tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE}
)
# Magic numbers of the compressions tarfile itself reads ("r:*").
_MAGIC: list[tuple[bytes, Callable[[Any], Any]]] = [
    (b"\x1f\x8b", lambda raw: gzip.GzipFile(fileobj=raw, mode="rb")),
    (b"BZh", bz2.BZ2File),
    (b"\xfd7zXZ\x00", lzma.LZMAFile),
]
_BAD_DATA = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError, UnicodeError, ValueError)


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class Limits:
    max_bytes: int  # decompressed, in all
    max_members: int


@dataclass(frozen=True)
class Member:
    """A member as the loop writes it: ``kind`` is file, directory or other (left out)."""

    name: str
    kind: str
    mode: int
    size: int


@dataclass(frozen=True)
class Done:
    """The archive ended; ``decompressed`` bytes were read."""

    decompressed: int


Put = Callable[[Any, int], None]  # (event, its size in bytes) -> None; blocks while the loop is behind


def too_large_bytes(limits: Limits) -> ApiError:
    return ApiError(
        413,
        "too_large",
        "the archive is more than %d MiB once decompressed; the limit is quota.max_archive_mb"
        % (limits.max_bytes >> 20),
    )


class _Counted:
    """Decompressed bytes, counted: past the limit, the read fails instead of returning them."""

    def __init__(self, source: Readable, limits: Limits) -> None:
        self._source = source
        self._limits = limits
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        room = self._limits.max_bytes - self.count + 1  # one byte over proves the limit is passed
        data = self._source.read(room if n < 0 else min(n, room))
        self.count += len(data)
        if self.count > self._limits.max_bytes:
            raise too_large_bytes(self._limits)
        return data


class _Prefixed:
    """``source`` with its first bytes (already read to sniff the compression) put back in front."""

    def __init__(self, prefix: bytes, source: Readable) -> None:
        self._prefix = prefix
        self._source = source

    def read(self, n: int = -1) -> bytes:
        if not self._prefix:
            return self._source.read(n)
        if n < 0:
            data, self._prefix = self._prefix + self._source.read(), b""
            return data
        data, self._prefix = self._prefix[:n], self._prefix[n:]
        return data + (self._source.read(n - len(data)) if len(data) < n else b"")


def _decompressed(source: Readable) -> Readable:
    head = source.read(6)
    raw = _Prefixed(head, source)
    for magic, opener in _MAGIC:
        if head.startswith(magic):
            reader: Readable = opener(raw)
            return reader
    return raw


class _BoundedTarInfo(tarfile.TarInfo):
    """Refuses what would make tarfile hold unbounded memory (tarfile invites this override)."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> Any:
        archive = tarfile_
        assert isinstance(archive, _BoundedTarFile)
        if self.type in (tarfile.GNUTYPE_SPARSE,):
            raise ApiError(400, "bad_archive", "sparse members (tar --sparse) are not supported: %r" % self.name)
        if self.type in META_TYPES:
            archive.header_bytes += self.size
            archive.headers += 1
            if self.type == tarfile.XGLTYPE:
                archive.global_bytes += self.size
            if (
                archive.header_bytes > MAX_HEADER_BYTES
                or archive.headers > MAX_HEADERS_PER_MEMBER
                or archive.global_bytes > MAX_HEADER_BYTES
            ):
                raise ApiError(
                    400,
                    "bad_archive",
                    "the extended headers before member %d are too large (more than %d headers or %d bytes)"
                    % (archive.members_seen + 1, MAX_HEADERS_PER_MEMBER, MAX_HEADER_BYTES),
                )
        return super()._proc_member(tarfile_)  # type: ignore[misc]  # not in typeshed

    # GNU sparse maps in pax headers: tarfile reads the whole map into a list.
    def _proc_gnusparse_00(self, *args: Any) -> None:
        raise ApiError(400, "bad_archive", "sparse members (tar --sparse) are not supported")

    _proc_gnusparse_01 = _proc_gnusparse_10 = _proc_gnusparse_00


class _BoundedTarFile(tarfile.TarFile):
    tarinfo = _BoundedTarInfo
    members: list[tarfile.TarInfo]  # tarfile's own list of what it has read
    header_bytes = headers = global_bytes = members_seen = 0


def _checked_name(member: tarfile.TarInfo) -> str:
    name = member.name
    normalized = posixpath.normpath(name)
    if name.startswith("/") or normalized == ".." or normalized.startswith("../") or "\0" in name:
        raise ApiError(400, "bad_archive", "member %r points outside the target directory" % name)
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise ApiError(400, "bad_archive", "member name %r... is longer than %d bytes" % (name[:64], MAX_NAME_BYTES))
    return name


def read_archive(source: Readable, limits: Limits, put: Put) -> None:
    """Parse the tar stream ``source`` (plain, gzip, bzip2 or xz) and ``put`` each ``Member``, then its
    data in ``bytes`` pieces; ``Done`` at the end. Raises ``ApiError`` (400 or 413) at the first problem."""
    counted = _Counted(_decompressed(source), limits)
    declared = 0
    try:
        archive = _BoundedTarFile.open(fileobj=cast(IO[bytes], counted), mode="r|")
        while True:
            archive.header_bytes = archive.headers = 0
            member = archive.next()
            if member is None:
                break
            archive.members.clear()  # tarfile keeps every member it has seen; nothing here needs them
            archive.members_seen += 1
            if archive.members_seen > limits.max_members:
                raise ApiError(
                    413,
                    "too_large",
                    "the archive has more than %d members; the limit is quota.max_archive_members" % limits.max_members,
                )
            name = _checked_name(member)
            declared += max(member.size, 0)
            if declared > limits.max_bytes:
                raise ApiError(
                    413,
                    "too_large",
                    "member %r claims %d bytes: the archive would be more than %d MiB once decompressed; "
                    "the limit is quota.max_archive_mb" % (name, member.size, limits.max_bytes >> 20),
                )
            kind = "file" if member.isfile() else "directory" if member.isdir() else "other"
            put(Member(name, kind, member.mode, member.size), 0)
            if kind == "file":
                data = archive.extractfile(member)
                assert data is not None
                while chunk := data.read(DATA_CHUNK):
                    put(chunk, len(chunk))
    except ApiError:
        raise
    except _BAD_DATA as exc:
        raise ApiError(400, "bad_archive", "the body is not a readable tar archive: %s" % exc) from None
    put(Done(counted.count), 0)
