"""A snapshot's files on the host: taken from a frozen sandbox, copied for a new one.

Everything here runs while the sandbox is frozen (``pausing``), so nothing in it
moves while it is read. Its tmpfs directories (home, /tmp, and /workspace when no
named workspace backs it) are read through ``/proc/<pid>/root`` by the host's GNU
tar: ``--one-file-system``, no ``-h`` (a symlink is archived as a link, never
followed), ``--sparse`` (a 100 GB hole stays a hole). The archive's bytes are
counted as they come and the capture stops at the size cap. The host never unpacks
such an archive: the runner of the new sandbox does (``restore`` op).

A named workspace's disk image is copied whole instead, under ``fsfreeze`` so
that the copy is consistent: ``cp --reflink=auto`` shares the blocks where the
host's file system can (XFS, btrfs) and copies the used ones where it cannot
(ext4, the common case, about 0.3-0.8 s per 200 MB used). The image was only ever
written by the host's kernel through ext4, so mounting the copy is as safe as
mounting the original.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator

from sandkasten_runner.restore import RUNNER_SCRATCH_PREFIX

from .errors import EngineError, SessionLost, SnapshotTooLarge

PIECE_BYTES = 4 << 20  # of an archive sent to the runner
STEP_DEADLINE_S = 300  # one tool's step of a capture or copy (tar, fsfreeze, cp)
HEADER_BYTES = 512  # a tar header: what a file costs an archive beyond its data


class Budget:
    """What is left of the size cap of one snapshot, in bytes."""

    def __init__(self, cap_bytes: int) -> None:
        self.cap_bytes = cap_bytes
        self.left = cap_bytes

    def take(self, count: int) -> None:
        self.left -= count
        self._check()

    def settle(self, estimated: int, actual: int) -> None:
        """Replace what was taken by an estimate with the actual count."""
        self.left += estimated - actual
        self._check()

    def _check(self) -> None:
        if self.left < 0:
            raise SnapshotTooLarge(
                "the session's files are more than a snapshot may hold, %d MiB (quota.max_snapshot_mb)"
                % (self.cap_bytes >> 20)
            )


@contextlib.contextmanager
def pinned_root(pid: int) -> Iterator[int]:
    """A descriptor of process ``pid``'s root directory (``/proc/<pid>/root``), held for the block.

    Paths are then walked from the descriptor, never from the PID again: if the
    process ends and its PID is handed to another, the descriptor still names the
    root it was opened on. The caller checks, after opening, that ``pid`` is still
    the sandbox's (so the root is the sandbox's, not some reused PID's).
    """
    try:
        fd = os.open("/proc/%d/root" % pid, os.O_PATH | os.O_DIRECTORY)
    except FileNotFoundError:
        raise SessionLost("the sandbox's first process (%d) is gone" % pid) from None
    try:
        yield fd
    finally:
        os.close(fd)


def usage_of(root_fd: int, path_in_sandbox: str) -> tuple[int, int]:
    """Bytes in use and files (directories and links too: used inodes) on the file system at
    ``path_in_sandbox``, under the root ``root_fd`` (``pinned_root``)."""
    stats = os.statvfs(_under(root_fd, path_in_sandbox))
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize, stats.f_files - stats.f_ffree


def archive_tree(root_fd: int, path_in_sandbox: str, dest: str, budget: Budget) -> int:
    """Archive the sandbox's directory ``path_in_sandbox`` (its tmpfs), under the root ``root_fd``, into
    ``dest``; its size in bytes.

    The frozen tmpfs says what it holds, so the size cap is checked before a byte
    is archived (its data plus a header per file), and again on the archive made;
    tar writes the file itself, so no byte passes through this process.
    """
    used, files = usage_of(root_fd, path_in_sandbox)
    budget.take(used + files * HEADER_BYTES)
    command = [
        "tar",
        "--create",
        "--file",
        dest,
        "--sparse",
        "--one-file-system",
        "--numeric-owner",
        "--anchored",
        "--exclude=./%s*" % RUNNER_SCRATCH_PREFIX,
        "--directory",
        _under(root_fd, path_in_sandbox),  # tar's own descriptor table: it is passed on
        ".",
    ]
    result = _run_bounded(command, pass_fds=(root_fd,))
    if result.returncode not in (0, 1):  # 1: "some files differ", which a frozen tree cannot; sockets are skipped at 0
        raise EngineError("archiving %s failed: %s" % (path_in_sandbox, result.stderr[-2000:].decode(errors="replace")))
    written = os.path.getsize(dest)
    budget.settle(used + files * HEADER_BYTES, written)
    return written


def _under(root_fd: int, path_in_sandbox: str) -> str:
    return "/proc/self/fd/%d%s" % (root_fd, path_in_sandbox)


@contextlib.contextmanager
def frozen_filesystem(mount_point: str) -> Iterator[None]:
    """The file system at ``mount_point`` with its writes flushed and held (``fsfreeze``)."""
    _run(["fsfreeze", "--freeze", mount_point])
    try:
        yield
    finally:
        _run(["fsfreeze", "--unfreeze", mount_point])


def copy_image(source: str, dest: str) -> None:
    """Copy a disk image, sharing blocks where the file system can and keeping its holes."""
    _run(["cp", "--reflink=auto", "--sparse=always", source, dest])


def allocated_bytes(path: str) -> int:
    """Bytes the files under ``path`` take on disk (blocks, not apparent sizes)."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
    return total


def copy_on_write(folder: str) -> bool:
    """Whether copies in ``folder`` share their blocks (reflinks), tried on a scratch file."""
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        probe = os.path.join(scratch, "probe")
        with open(probe, "wb") as out:
            out.write(b"x" * 4096)
        result = subprocess.run(["cp", "--reflink=always", probe, probe + ".copy"], capture_output=True, check=False)
        return result.returncode == 0


def remove_tree(path: str) -> None:
    """Remove a snapshot's directory; one already gone is not an error."""
    shutil.rmtree(path, ignore_errors=True)


async def pieces(path: str) -> AsyncIterator[bytes]:
    """The file at ``path`` in pieces for the runner, read off the event loop."""
    with open(path, "rb") as source:
        while True:
            piece = await asyncio.to_thread(source.read, PIECE_BYTES)
            if not piece:
                return
            yield piece


def _run(command: list[str]) -> None:
    result = _run_bounded(command)
    if result.returncode != 0:
        said = (result.stderr or result.stdout).decode(errors="replace").strip()
        raise EngineError("%s failed: %s" % (" ".join(command[:2]), said))


def _run_bounded(command: list[str], pass_fds: tuple[int, ...] = ()) -> subprocess.CompletedProcess[bytes]:
    """Run a capture's tool within STEP_DEADLINE_S (the sandbox stays frozen meanwhile)."""
    try:
        return subprocess.run(
            command,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            pass_fds=pass_fds,
            timeout=STEP_DEADLINE_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise EngineError("%s took more than %d s" % (" ".join(command[:2]), STEP_DEADLINE_S)) from None
