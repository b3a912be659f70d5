"""One ``sandkasten serve`` for the hostile suite, with network allowed (so escapes are tried both ways).

Every test gets sessions from ``sessions``; whatever it made is destroyed after
it, and at the end nothing of the server may be left in Docker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sandkasten import SyncSandboxClient, SyncSession
from sandkasten_server.launcher import Served
from tests.conftest import serving

pytestmark = pytest.mark.docker


@pytest.fixture(scope="package")
def hostile_server(docker_client: Any) -> Iterator[Served]:
    """The package's shared server: network allowed, small sandboxes, room for many sessions."""
    config = {
        "pool": {"images": {"python": 2}, "with_kernel": False},
        "security": {"allow_network": True},
        "quota": {"max_sessions": 40, "max_sessions_per_user": 40},
        "defaults": {"memory_mb": 256, "pids": 128, "tmp_mb": 64, "workspace_mb": 64},
        "workspace": {"size_mb": 64},
    }
    with serving(docker_client, config) as server:
        yield server


@pytest.fixture(scope="package")
def client(hostile_server: Served) -> Iterator[SyncSandboxClient]:
    with SyncSandboxClient(hostile_server.base_url, hostile_server.api_key) as sync_client:
        yield sync_client


@pytest.fixture
def sessions(client: SyncSandboxClient) -> Iterator[Callable[..., SyncSession]]:
    """``sessions(**create_options)`` -> a new session, destroyed after the test."""
    yield from made_sessions(client)


def made_sessions(client: SyncSandboxClient) -> Iterator[Callable[..., SyncSession]]:
    """Yields ``create(**create_options)``; every session it made is destroyed when resumed."""
    made: list[SyncSession] = []

    def create(**options: Any) -> SyncSession:
        session = client.create_session(**options)
        made.append(session)
        return session

    yield create
    for session in made:
        session.destroy()  # idempotent: a test may have destroyed it already
