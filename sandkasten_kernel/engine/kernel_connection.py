"""Connection info for a kernel in a sandbox: ZMQ over ipc, sockets in the run directory.

The host connects to ``<run_dir>/kernel-<port>``; the runner rewrites ``ip`` to
its own view of the same directory, so both sides name the same socket files.
No TCP port is allocated, and none is needed with ``network_mode=none``.

The host keeps the info it made in a file of its own (``<state_dir>/kernel-connections``),
never reading it back from the run directory: the sandbox could put anything
there (a FIFO that blocks the reader, another transport, other paths).
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

SOCKET_PORTS = {"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5}


def kernel_connection_info(run_dir: str, kernel_name: str = "python3") -> dict[str, Any]:
    """Host-side connection info with a fresh HMAC key.

    The "ports" only name socket files inside this sandbox's own directory, so
    fixed numbers cannot collide with another kernel's.
    """
    info: dict[str, Any] = {
        "transport": "ipc",
        "ip": os.path.join(run_dir, "kernel"),
        "key": secrets.token_hex(32),
        "signature_scheme": "hmac-sha256",
        "kernel_name": kernel_name,
    }
    info.update(SOCKET_PORTS)
    return info


def kernel_socket_names() -> list[str]:
    """The names of the kernel's socket files in the run directory."""
    return ["kernel-%d" % port for port in SOCKET_PORTS.values()]


def save_connection_info(path: str, info: dict[str, Any]) -> None:
    """Write the host-side info to ``path`` (a host directory; private: it holds the key)."""
    temporary = "%s.%s.tmp" % (path, secrets.token_hex(4))
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(info, f)
    os.replace(temporary, path)


def load_connection_info(path: str) -> dict[str, Any] | None:
    """The info ``save_connection_info`` wrote, or None when there is none."""
    try:
        with open(path, encoding="utf-8") as f:
            info: dict[str, Any] = json.load(f)
    except FileNotFoundError:
        return None
    return info
