"""Connection info for a kernel in a sandbox: ZMQ over ipc, sockets in the run directory.

The host connects to ``<run_dir>/kernel-<port>``; the runner rewrites ``ip`` to
its own view of the same directory, so both sides name the same socket files.
No TCP port is allocated, and none is needed with ``network_mode=none``.
"""

from __future__ import annotations

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
