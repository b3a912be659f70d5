"""The code interpreter's routes on port 49999 (to be filled)."""

from __future__ import annotations

from typing import Any

from .rpc import INTERPRETER_PORT, Route, route


async def health(handler: Any) -> None:
    handler.set_header("Content-Type", "application/json")
    handler.finish('"OK"')


ROUTES: list[Route] = [route(INTERPRETER_PORT, "GET", "health", health)]
