"""envd's ``filesystem.Filesystem`` service (to be filled)."""

from __future__ import annotations

from .rpc import Rpc

RPCS: dict[str, Rpc] = {}
