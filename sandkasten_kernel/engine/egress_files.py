"""The egress proxy's files: root's, replaced atomically, read without following links.

The egress directory holds what squid (the proxy user) reads and must not
change, and ``run/``, which squid writes. So files are written root's under a
temporary name and renamed over (no reader sees half of one), and read only
through ``O_NOFOLLOW`` and only when regular (any name in ``run/`` may be a
link squid's user put there). Apart from ``egress_proxy`` because
``egress_log`` keeps its position in access.log with them too.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import stat
import tempfile
from collections.abc import Callable, Sequence

from .errors import EgressProxyError


def write_file(
    path: str, data: bytes, mode: int, gid: int, *, mtime_ns: int | None = None, always: bool = False
) -> None:
    """``data`` at ``path``, owned by root:``gid`` with ``mode``, replaced atomically; untouched when already so."""
    if not always:
        try:
            info = os.lstat(path)
            if (
                stat.S_ISREG(info.st_mode)
                and (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, gid, mode)
                and read_bytes(path) == data
            ):
                return
        except OSError:
            pass
    directory = os.path.dirname(path)
    fd, temporary = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchown(f.fileno(), 0, gid)
            os.fchmod(f.fileno(), mode)
            f.write(data)
        if mtime_ns is not None:
            os.utime(temporary, ns=(mtime_ns, mtime_ns))
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read_bytes(path: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
    """Up to ``limit`` bytes of the regular file ``path`` from ``offset``; nothing for a link, a missing file, etc."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b""
        return os.pread(fd, limit, offset)
    finally:
        os.close(fd)


def read_text(path: str) -> str:
    """A short ASCII file (a digest, a position), stripped; empty when there is none."""
    return read_bytes(path, limit=4096).decode("ascii", "replace").strip()


def file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def own_dir(path: str, uid: int, gid: int, mode: int) -> None:
    """The directory ``path`` owned by ``uid:gid`` with ``mode`` (an error when it is not a directory)."""
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise EgressProxyError("egress proxy: %s is not a directory" % path)
    if (info.st_uid, info.st_gid) != (uid, gid):
        os.chown(path, uid, gid, follow_symlinks=False)
    if stat.S_IMODE(info.st_mode) != mode:
        os.chmod(path, mode)


def check_reachable(path: str, user: pwd.struct_passwd) -> None:
    """Squid and its helper run as ``user``: every directory above ``path`` must let it through."""
    groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    parent = os.path.dirname(path)
    while True:
        info = os.stat(parent)
        if info.st_uid == user.pw_uid:
            ok = bool(info.st_mode & stat.S_IXUSR)
        elif info.st_gid in groups:
            ok = bool(info.st_mode & stat.S_IXGRP)
        else:
            ok = bool(info.st_mode & stat.S_IXOTH)
        if not ok:
            owner = _name(pwd.getpwuid, info.st_uid), _name(grp.getgrgid, info.st_gid)
            raise EgressProxyError(
                "egress proxy: squid runs as '%s', which cannot enter %s (mode %o, %s:%s): allow it (chmod o+x) or "
                "put the egress directory elsewhere" % (user.pw_name, parent, stat.S_IMODE(info.st_mode), *owner)
            )
        if parent == "/":
            return
        parent = os.path.dirname(parent)


def _name(lookup: Callable[[int], Sequence[object]], ident: int) -> str:
    """The user or group name of ``ident`` (``pwd.getpwuid``, ``grp.getgrgid``), or the number."""
    try:
        return str(lookup(ident)[0])
    except KeyError:
        return str(ident)
