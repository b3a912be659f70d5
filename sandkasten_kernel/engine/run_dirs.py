"""Host run directories on a small tmpfs of their own.

The run directory is the one host path a sandbox can write to (its sockets and
the kernel's connection file live there). On a plain directory, code in the
sandbox could fill the host's disk through it; mounted as a 4 MiB tmpfs
(nosuid, nodev, noexec) it fills only itself. Mounting needs root, as the
server normally has; without it the directory stays plain and a warning says so.

The directory is root's, writable by the sandbox's group, and sticky
(``RUN_DIR_MODE``): the sandbox makes its names there, and the host pins the
ones it connects to (see ``run_dir_names``).
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil

log = logging.getLogger("sandkasten.engine")

RUN_DIR_MB = 4
RUN_DIR_MODE = 0o1770  # root's, the sandbox group's to write in, sticky: pinned names stay put
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 2, 4, 8
_MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)
_warned = False


def mount_small_tmpfs(path: str, gid: int) -> bool:
    """Mount a RUN_DIR_MB tmpfs at ``path``, root's with group ``gid`` and RUN_DIR_MODE;
    False where that is not permitted."""
    global _warned
    options = "size=%dm,mode=%o,uid=0,gid=%d" % (RUN_DIR_MB, RUN_DIR_MODE, gid)
    flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
    if _libc.mount(b"tmpfs", os.fsencode(path), b"tmpfs", flags, options.encode()) == 0:
        return True
    if not _warned:
        _warned = True
        log.warning(
            "run directories are plain directories (mounting a tmpfs failed: %s): a sandbox can write "
            "to the state_dir's disk through /run/sandkasten. Run the server as root to cap them.",
            os.strerror(ctypes.get_errno()),
        )
    return False


def remove_run_dir(path: str) -> None:
    """Unmount (if mounted) and delete a run directory; a missing one is not an error."""
    _unmount(path)
    shutil.rmtree(path, ignore_errors=True)


def unmount_all_under(root: str) -> None:
    """Unmount every run directory tmpfs below ``root`` (before deleting a whole state dir)."""
    prefix = os.path.realpath(root) + os.sep
    for mount_point in _mount_points():
        if mount_point.startswith(prefix):
            _unmount(mount_point)


def _unmount(path: str) -> None:
    if os.path.ismount(path):
        _libc.umount2(os.fsencode(path), _MNT_DETACH)


def _mount_points() -> list[str]:
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as mounts:
            # Octal escapes (\040 for a space) are how /proc writes odd characters in paths.
            return [line.split()[1].encode().decode("unicode_escape") for line in mounts if line.strip()]
    except OSError:
        return []
