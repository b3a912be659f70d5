"""File operations confined to the workspace directory.

Paths are relative to the workspace, or absolute under it. A path with a ``..``
component, an absolute path elsewhere, or a symlink that resolves outside the
workspace is refused with ``path_outside_workspace``.

The runner runs as the sandbox user, so these checks guard against mistakes
and against a client reaching past /workspace, not against the sandbox's own
code: that code could already read anything the runner can.
"""

import bisect
import contextlib
import errno
import os
import shutil
import stat as stat_module
from typing import Any, Dict, List, Optional, Tuple, Union

from . import errors
from .errors import RunnerError
from .protocol import Incoming

_ERRNO_CODES = {
    errno.ENOENT: errors.NOT_FOUND,
    errno.ENOTDIR: errors.NOT_A_DIRECTORY,
    errno.EISDIR: errors.IS_A_DIRECTORY,
    errno.EEXIST: errors.ALREADY_EXISTS,
    errno.ENOTEMPTY: errors.DIRECTORY_NOT_EMPTY,
    errno.EACCES: errors.PERMISSION_DENIED,
    errno.EPERM: errors.PERMISSION_DENIED,
    errno.EROFS: errors.PERMISSION_DENIED,
    errno.ENOSPC: errors.NO_SPACE,
    errno.EDQUOT: errors.NO_SPACE,
    errno.EFBIG: errors.FILE_TOO_LARGE,
    errno.ENAMETOOLONG: errors.INVALID_PATH,
    errno.ELOOP: errors.INVALID_PATH,
}

MAX_LIST_ENTRIES = 10000
PATH_MAX = 4096


def _os_error(exc: OSError, path: str) -> RunnerError:
    code = _ERRNO_CODES.get(exc.errno or 0, errors.IO_ERROR)
    return RunnerError(code, "%s: %s" % (path, exc.strerror or exc), path=path)


def _write_all(fd: int, data: Union[bytes, memoryview]) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fill(fd: int, data: Union[bytes, Incoming]) -> None:
    """Write ``data`` to ``fd``: bytes at once, a payload piece by piece as it arrives."""
    if isinstance(data, Incoming):
        data.copy_to(lambda piece: _write_all(fd, piece))
    else:
        _write_all(fd, data)


def _kind(mode: int) -> str:
    if stat_module.S_ISLNK(mode):
        return "symlink"
    if stat_module.S_ISDIR(mode):
        return "directory"
    if stat_module.S_ISREG(mode):
        return "file"
    return "other"


def _describe(name: str, st: os.stat_result) -> Dict[str, Any]:
    return {
        "name": name,
        "type": _kind(st.st_mode),
        "size": st.st_size,
        "mode": stat_module.S_IMODE(st.st_mode),
        "mtime": st.st_mtime,
    }


class Workspace:
    """The sandbox's /workspace (a temp dir when the runner is tested on a host)."""

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)

    # -- path checks --------------------------------------------------------

    def _lexical(self, path: Any) -> Tuple[str, str]:
        """Return (relative path, absolute path) without touching the disk."""
        if not isinstance(path, str):
            raise RunnerError(errors.BAD_REQUEST, "path must be a string")
        if "\x00" in path:
            raise RunnerError(errors.INVALID_PATH, "path contains a NUL byte", path=path)
        if len(path.encode("utf-8", "surrogateescape")) > PATH_MAX:
            # The system would refuse it anyway; refusing here keeps the recursive
            # directory creation for very deep paths from ever starting.
            raise RunnerError(errors.INVALID_PATH, "the path is longer than %d bytes" % PATH_MAX, path=path[:200])
        relative = path
        if os.path.isabs(path):
            normal = os.path.normpath(path)
            if normal != self.root and not normal.startswith(self.root + os.sep):
                raise RunnerError(
                    errors.PATH_OUTSIDE_WORKSPACE, "%s is outside the workspace %s" % (path, self.root), path=path
                )
            relative = os.path.relpath(normal, self.root)
        parts = [p for p in relative.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise RunnerError(errors.PATH_OUTSIDE_WORKSPACE, "%s: '..' is not allowed in paths" % path, path=path)
        return "/".join(parts) or ".", os.path.join(self.root, *parts)

    def _inside(self, real: str) -> bool:
        return real == self.root or real.startswith(self.root + os.sep)

    def resolve(self, path: Any, follow: bool = True) -> str:
        """The absolute host path for ``path``, after the confinement checks.

        With ``follow=False`` the last component may itself be a symlink (it is
        acted on, not followed), so only its parent is resolved.
        """
        shown, absolute = self._lexical(path)
        if follow:
            real = os.path.realpath(absolute)
        else:
            real = os.path.join(os.path.realpath(os.path.dirname(absolute)), os.path.basename(absolute))
        if not self._inside(real):
            raise RunnerError(
                errors.PATH_OUTSIDE_WORKSPACE, "%s resolves outside the workspace (symlink)" % shown, path=path
            )
        return real

    # -- operations -----------------------------------------------------------

    def write(self, path: Any, data: Union[bytes, Incoming], mode: int = 0o644, append: bool = False) -> Dict[str, Any]:
        """Write ``data`` to ``path`` (atomically, or appended), making its parent directories.

        ``data`` may be a payload still arriving: it goes to the file as it comes. A write
        that fails part-way (the disk filled up, the client left) changes nothing: a new
        file is never renamed into place, and an append is cut back to where it started.
        """
        target = self.resolve(path, follow=append)
        if target == self.root:
            raise RunnerError(errors.IS_A_DIRECTORY, "%s is the workspace directory" % path, path=path)
        parent = os.path.dirname(target)
        try:
            os.makedirs(parent, mode=0o755, exist_ok=True)
            # makedirs may have followed a symlink planted among the parents.
            if not self._inside(os.path.realpath(parent)):
                raise RunnerError(errors.PATH_OUTSIDE_WORKSPACE, "%s resolves outside the workspace" % path)
            if os.path.isdir(target) and not os.path.islink(target):
                raise RunnerError(errors.IS_A_DIRECTORY, "%s is a directory" % path, path=path)
            if append:
                fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, mode)
                try:
                    start = os.fstat(fd).st_size
                    try:
                        _fill(fd, data)
                    except BaseException:
                        with contextlib.suppress(OSError):
                            os.ftruncate(fd, start)
                        raise
                finally:
                    os.close(fd)
            else:
                # Write then rename, so a reader never sees half a file and a
                # failed write (disk full) leaves the old content intact.
                # Not derived from the target's name: a name of NAME_MAX bytes must still be writable.
                temporary = os.path.join(parent, ".sk-%d-%s.tmp" % (os.getpid(), os.urandom(4).hex()))
                fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
                try:
                    try:
                        _fill(fd, data)
                    finally:
                        os.close(fd)
                    os.chmod(temporary, mode)
                    os.replace(temporary, target)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(temporary)
                    raise
            return {"path": self._shown(target), "size": os.stat(target).st_size}
        except OSError as exc:
            raise _os_error(exc, str(path)) from None

    def read(
        self, path: Any, offset: int = 0, length: Optional[int] = None, limit: int = 0
    ) -> Tuple[Dict[str, Any], bytes]:
        """Read ``path`` from ``offset`` (``length`` bytes, or to the end), refusing more than ``limit``."""
        target = self.resolve(path)
        try:
            with open(target, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if stat_module.S_ISDIR(os.fstat(f.fileno()).st_mode):
                    raise RunnerError(errors.IS_A_DIRECTORY, "%s is a directory" % path, path=path)
                wanted = max(0, size - offset) if length is None else length
                if limit and wanted > limit:
                    raise RunnerError(
                        errors.FILE_TOO_LARGE,
                        "%s: %d bytes requested, the limit for one read is %d; read it in parts with offset and length"
                        % (path, wanted, limit),
                        path=path,
                        size=size,
                        limit=limit,
                    )
                f.seek(offset)
                data = f.read(wanted)
        except IsADirectoryError:
            raise RunnerError(errors.IS_A_DIRECTORY, "%s is a directory" % path, path=path) from None
        except OSError as exc:
            raise _os_error(exc, str(path)) from None
        return {"path": self._shown(target), "size": size, "offset": offset, "length": len(data)}, data

    def list(self, path: Any = ".", limit: int = MAX_LIST_ENTRIES, after: Optional[str] = None) -> Dict[str, Any]:
        """One page of a directory, sorted by name: the entries after ``after``, at most ``limit``.

        ``truncated`` says more follow; the caller asks again with ``after`` set to
        the last name it got, so a directory of any size is listed whole.
        """
        target = self.resolve(path)
        try:
            names = sorted(os.listdir(target))  # names only: cheap even for a million files
        except OSError as exc:
            raise _os_error(exc, str(path)) from None
        start = bisect.bisect_right(names, after) if after is not None else 0
        page = names[start : start + limit]
        entries: List[Dict[str, Any]] = []
        for name in page:
            try:
                entries.append(_describe(name, os.lstat(os.path.join(target, name))))
            except OSError:
                continue  # removed while listing
        return {"path": self._shown(target), "entries": entries, "truncated": start + limit < len(names)}

    def stat(self, path: Any) -> Dict[str, Any]:
        """Describe ``path`` itself (a symlink is not followed; its target is reported)."""
        target = self.resolve(path, follow=False)
        try:
            info = _describe(os.path.basename(target) or ".", os.lstat(target))
            if info["type"] == "symlink":
                info["target"] = os.readlink(target)
        except OSError as exc:
            raise _os_error(exc, str(path)) from None
        info["path"] = self._shown(target)
        return info

    def remove(self, path: Any, recursive: bool = False) -> Dict[str, Any]:
        """Remove a file, a symlink or an empty directory (any directory with ``recursive``)."""
        target = self.resolve(path, follow=False)
        if target == self.root:
            raise RunnerError(errors.PERMISSION_DENIED, "the workspace directory itself cannot be removed", path=path)
        try:
            if os.path.isdir(target) and not os.path.islink(target):
                if recursive:
                    shutil.rmtree(target)  # never follows symlinks
                else:
                    os.rmdir(target)
            else:
                os.unlink(target)
        except OSError as exc:
            raise _os_error(exc, str(path)) from None
        return {"path": self._shown(target)}

    def mkdir(self, path: Any, mode: int = 0o755, parents: bool = True) -> Dict[str, Any]:
        """Make the directory ``path`` (and its parents, unless ``parents`` is false)."""
        target = self.resolve(path)
        try:
            if parents:
                os.makedirs(target, mode=mode, exist_ok=True)
            else:
                os.mkdir(target, mode)
        except OSError as exc:
            raise _os_error(exc, str(path)) from None
        if not self._inside(os.path.realpath(target)):
            raise RunnerError(errors.PATH_OUTSIDE_WORKSPACE, "%s resolves outside the workspace" % path, path=path)
        return {"path": self._shown(target)}

    def _shown(self, target: str) -> str:
        """The path as the client sees it: relative to the workspace."""
        return os.path.relpath(target, self.root)
