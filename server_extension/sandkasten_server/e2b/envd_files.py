"""envd's plain HTTP routes: ``/health`` (and ``/files``, to be filled)."""

from __future__ import annotations

from typing import Any

from .rpc import ENVD_PORT, Route, route


async def health(handler: Any) -> None:
    handler.set_status(204)
    handler.finish()


ROUTES: list[Route] = [route(ENVD_PORT, "GET", "health", health)]
