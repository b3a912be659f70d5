"""``restore``: unpack a snapshot's tar archive into the sandbox's home, /tmp or workspace.

The archive was made by the host from another sandbox's files, so its members are
that sandbox's doing: any name, any link. It is unpacked here, by the runner (the
sandbox's user, inside the new sandbox), never by the host, so the worst a hostile
archive can do is to write the new sandbox's own files. Even so, each member must
stay within its target directory: no absolute names, no ``..``, nothing written
through a symlink (an earlier member may be one), hard links only to members
already unpacked, and only files, directories, symlinks, hard links and FIFOs.

The archive comes as a series of frames after the request, on the same
connection: each frame's payload is the next piece, and a frame with an empty
payload ends it (see PROTOCOL.md). The runner reads them as tarfile asks for
bytes, so it never holds more than a piece.
"""

import io
import os
import socket
import stat
import tarfile
from typing import Any, Dict, List, Optional, Tuple

from . import errors
from .errors import RunnerError
from .protocol import Incoming, PayloadCut, read_head

READ_BYTES = 1 << 20  # the buffer between the socket and tarfile
COPY_BYTES = 256 << 10  # a member's data moves in steps this large (tarfile's default, 16 KiB, costs calls)
# What a scratch directory of the runner is called in /tmp: never restored over.
RUNNER_SCRATCH_PREFIX = "sandkasten-runner-"
_KINDS = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE)
# Python >= 3.12 (and the 2023 security releases) warn unless a filter is named; the
# checks here are the filter, so tarfile's own is told to trust the member as it is.
_EXTRACT_OPTIONS: Dict[str, Any] = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}


class _FramedArchive(io.RawIOBase):
    """A raw reader over the frames that carry the archive, straight from the socket; end of file
    at the end frame (wrap it in a buffered reader: tarfile reads in small steps)."""

    def __init__(self, conn: socket.socket) -> None:
        super().__init__()
        self._conn = conn
        self._incoming: Optional[Incoming] = None
        self.ended = False
        self.bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.ended:
            if self._incoming is None or not self._incoming.left:
                self._incoming = self._next_frame()
                continue
            count = self._incoming.read_into(memoryview(buffer).cast("B"))
            self.bytes += count
            return count
        return 0

    def _next_frame(self) -> Optional[Incoming]:
        """The next frame's payload, still to be taken; None (and ``ended``) at the end frame."""
        head = read_head(self._conn)
        if head is None:
            raise PayloadCut("the connection closed in the middle of a restore")
        incoming = head[1]
        if incoming.left == 0:
            self.ended = True
            return None
        return incoming

    def drain(self) -> None:
        """Take every frame up to the end one, so the reply comes in step."""
        while not self.ended:
            if self._incoming is not None:
                self._incoming.skip()
            self._incoming = self._next_frame()


def _member_path(root: str, name: str) -> Optional[str]:
    """The member's path under ``root``, or None for the root itself; refuses names that leave it."""
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        raise RunnerError(errors.INVALID_PATH, "archive member %r leaves its directory" % name)
    return os.path.join(root, *parts) if parts else None


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


class Restore:
    """Unpacks one archive into ``root``: see the module docstring for what a member may be."""

    def __init__(self, root: str, skip_prefix: Optional[str] = None) -> None:
        self.root = os.path.realpath(root)
        self.skip_prefix = skip_prefix
        self.counts = {"files": 0, "dirs": 0, "links": 0, "skipped": 0}
        self._dirs: List[Tuple[str, tarfile.TarInfo]] = []

    def run(self, conn: socket.socket) -> Dict[str, Any]:
        source = _FramedArchive(conn)
        try:
            try:
                buffered = io.BufferedReader(source, READ_BYTES)
                with tarfile.open(fileobj=buffered, mode="r|") as archive:
                    archive.copybufsize = COPY_BYTES  # type: ignore[attr-defined]
                    for member in archive:
                        self._unpack(archive, member)
            except tarfile.TarError as exc:
                raise RunnerError(errors.BAD_REQUEST, "the archive is not a tar archive: %s" % exc) from None
            self._settle_dirs()
        finally:
            source.drain()
        return dict(self.counts, bytes=source.bytes)

    def _unpack(self, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        path = _member_path(self.root, member.name)
        first = os.path.relpath(path, self.root).split("/")[0] if path else ""
        if path is None or (self.skip_prefix and first.startswith(self.skip_prefix)):
            self.counts["skipped"] += 1
            return
        if member.type not in _KINDS and member.type != tarfile.GNUTYPE_SPARSE:
            self.counts["skipped"] += 1  # devices and the like: nothing a sandbox can make
            return
        parent = os.path.dirname(path)
        os.makedirs(parent, mode=0o755, exist_ok=True)
        if not _inside(self.root, os.path.realpath(parent)):  # through a symlink an earlier member planted
            raise RunnerError(errors.PATH_OUTSIDE_WORKSPACE, "archive member %r leads outside" % member.name)
        if member.islnk():
            target = _member_path(self.root, member.linkname)
            if target is None or not _inside(self.root, os.path.realpath(target)):
                raise RunnerError(errors.PATH_OUTSIDE_WORKSPACE, "hard link %r leads outside" % member.name)
        if os.path.islink(path) or (os.path.lexists(path) and not (member.isdir() and os.path.isdir(path))):
            if os.path.isdir(path) and not os.path.islink(path):
                raise RunnerError(errors.IS_A_DIRECTORY, "archive member %r is a directory here" % member.name)
            os.unlink(path)  # never write through what is there
        if member.isdir():
            self._dirs.append((path, member))
            os.makedirs(path, mode=0o700, exist_ok=True)
            self.counts["dirs"] += 1
            return
        relative = os.path.relpath(path, self.root)
        member.name = relative
        if member.islnk():
            member.linkname = os.path.relpath(_member_path(self.root, member.linkname) or self.root, self.root)
        try:
            archive.extract(member, self.root, set_attrs=True, **_EXTRACT_OPTIONS)
        except OSError as exc:
            raise _os_error(member.name, exc) from None
        self.counts["links" if member.issym() or member.islnk() else "files"] += 1

    def _settle_dirs(self) -> None:
        """Directories get their modes and times last (a read-only one would refuse its members)."""
        for path, member in reversed(self._dirs):
            try:
                if not os.path.islink(path):
                    os.chmod(path, stat.S_IMODE(member.mode) | stat.S_IRUSR | stat.S_IXUSR)
                    os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)
            except OSError:
                pass  # a mode or time is not worth failing a restore for


def _os_error(name: str, exc: OSError) -> RunnerError:
    if exc.errno == 28:  # ENOSPC
        return RunnerError(errors.NO_SPACE, "no space left restoring %s" % name)
    return RunnerError(errors.IO_ERROR, "restoring %s failed: %s" % (name, exc))


def drain_archive(conn: socket.socket) -> None:
    """Take the frames of an archive that will not be unpacked."""
    _FramedArchive(conn).drain()


def restore(conn: socket.socket, root: str, skip_prefix: Optional[str]) -> Dict[str, Any]:
    """Unpack the archive that follows on ``conn`` into ``root``; what was unpacked, counted."""
    return Restore(root, skip_prefix).run(conn)
