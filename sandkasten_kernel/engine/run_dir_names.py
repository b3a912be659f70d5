"""Names in a sandbox's run directory, as the host reaches them: never followed, checked, pinned.

Code inside a sandbox can create, replace and remove every name in its run
directory (DESIGN.md decision 1). A name the host connects to by path could be
swapped for a symlink to another sandbox's socket, or to a host service's, and
``connect(2)`` would follow it. So the host:

- opens each name with ``O_PATH | O_NOFOLLOW`` relative to the directory,
  checks that it is a socket on the directory's own file system, and connects
  through ``/proc/self/fd/N``: the inode it checked, never a link's target;
- *pins* the names other processes connect to by path (the control socket and
  the kernel's ZMQ sockets, which every Jupyter client reaches through the
  connection info): once checked, the host makes them root's. The directory is
  root's too, group-writable for the sandbox and sticky, so the sandbox still
  creates names there but can no longer rename, replace or remove a pinned one;
- unpins (removes) the kernel's names before the runner restarts the kernel,
  which binds them anew, and pins the new ones after.

Pinning needs root, as mounting the run directory does; without it a warning
says the kernel's sockets stay replaceable (the control socket is still only
reached through a checked descriptor).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Iterable, Iterator

from .errors import UnsafeRunDirEntry

log = logging.getLogger("sandkasten.engine")

CONTROL_SOCKET = "control.sock"
_warned = False


def open_socket_entry(run_dir: str, name: str) -> int:
    """An ``O_PATH`` descriptor of the socket ``name`` in ``run_dir``, checked without following links.

    Raises FileNotFoundError while the name does not exist (a runner still starting),
    ``UnsafeRunDirEntry`` for anything but a socket on the run directory's file system.
    """
    dir_fd = open_run_dir(run_dir)
    try:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            entry, directory = os.fstat(fd), os.fstat(dir_fd)
            if not stat.S_ISSOCK(entry.st_mode) or entry.st_dev != directory.st_dev:
                raise UnsafeRunDirEntry(
                    "%s in the run directory %s is %s, not the sandbox's socket: refusing to connect"
                    % (name, run_dir, _describe(entry.st_mode))
                )
        except BaseException:
            os.close(fd)
            raise
        return fd
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def checked_socket_path(path: str) -> Iterator[str]:
    """A path to connect to in place of ``path``: the checked socket's descriptor in /proc/self/fd.

    Valid inside the ``with`` block, in this process only. It is also short, so
    a deep run directory never hits the 107-byte limit of socket addresses.
    """
    fd = open_socket_entry(os.path.dirname(path) or ".", os.path.basename(path))
    try:
        yield "/proc/self/fd/%d" % fd
    finally:
        os.close(fd)


def pin(run_dir: str, names: Iterable[str]) -> None:
    """Check each socket name and make it root's, so the sandbox cannot replace it any more."""
    for name in names:
        fd = open_socket_entry(run_dir, name)
        try:
            if os.geteuid() == 0:
                # chown through the descriptor's /proc link: the checked inode, not whatever the name is now.
                os.chown("/proc/self/fd/%d" % fd, 0, 0)
            else:
                _warn_unpinned()
        finally:
            os.close(fd)


def unpin(run_dir: str, names: Iterable[str]) -> None:
    """Remove ``names`` (pinned or not) so the runner can bind them again; missing ones are fine."""
    dir_fd = open_run_dir(run_dir)
    try:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=dir_fd)  # unlink never follows a link
    finally:
        os.close(dir_fd)


def open_run_dir(run_dir: str) -> int:
    """An ``O_PATH`` descriptor of the run directory itself (its path is the host's; never a link)."""
    return os.open(run_dir, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)


def _describe(mode: int) -> str:
    for test, kind in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
        (stat.S_ISSOCK, "a socket on another file system"),
    ):
        if test(mode):
            return kind
    return "of an unknown type"


def _warn_unpinned() -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning(
            "not root: the kernels' sockets in run directories cannot be pinned, so code in a sandbox "
            "could replace them. Run the server as root."
        )
