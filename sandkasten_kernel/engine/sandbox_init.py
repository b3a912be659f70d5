"""The sandbox's init process, held by a pidfd: how a destroy stops every process in it at once.

The runner is the container's init (PID 1 of its PID namespace). When it dies the
kernel kills every other process in the namespace, so one SIGKILL to it ends the
sandbox's code in microseconds, where Docker's kill and removal take hundreds of
milliseconds. The host learns the runner's PID from its control socket
(``SO_PEERCRED``) when the sandbox is made, before any of the sandbox's own code
runs, and holds it as a pidfd: a PID the kernel may reuse for a host process is
never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct

_CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a connected Unix socket, as this host sees them."""
    pid, uid, gid = _CREDENTIALS.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDENTIALS.size))
    return int(pid), int(uid), int(gid)


def open_init_pidfd(sock: socket.socket) -> int | None:
    """A pidfd of the process listening at the other end of ``sock`` (the runner), or None where
    the host cannot say (the peer is in no PID namespace this host sees, or pidfds are missing)."""
    pid = peer_credentials(sock)[0]
    if pid <= 0:
        return None
    try:
        return os.pidfd_open(pid)
    except (OSError, AttributeError):
        return None


def kill_init(pidfd: int) -> bool:
    """SIGKILL the process behind ``pidfd``; False when not allowed (a server not running as root)."""
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except ProcessLookupError:
        return True  # already gone
    except OSError:
        return False
    return True


def close_pidfd(pidfd: int | None) -> None:
    """Close a pidfd (once: the number may name another file afterwards); None is fine."""
    if pidfd is not None:
        with contextlib.suppress(OSError):
            os.close(pidfd)
