"""Fixtures of the SDKs' tests (the shared ``served`` server is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandkasten_server import launcher
from sandkasten_server.launcher import Served


@pytest.fixture(scope="session")
def tight() -> Iterator[Served]:
    """A server with room for two sessions per user and one cold start at a time (refusing the next at once,
    503 with Retry-After: 1), and no pool. Its tests destroy what they make."""
    server = launcher.start(
        {
            "pool": {"enabled": False},
            "quota": {"max_sessions_per_user": 2, "max_cold_starts": 1, "cold_start_wait_s": 0},
        }
    )
    yield server
    server.stop()
    server.remove_state()
