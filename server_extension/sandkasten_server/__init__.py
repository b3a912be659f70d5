"""Sandkasten's Jupyter Server extension: the REST API under ``/sandkasten/api``, and ``sandkasten serve``."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import SandkastenApp

    return [{"module": "sandkasten_server.app", "app": SandkastenApp}]
