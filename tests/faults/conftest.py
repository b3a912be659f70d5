"""Faults: each test runs its own ``sandkasten serve`` (it kills, locks or starves it), torn down clean."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sandkasten_server import launcher
from sandkasten_server.launcher import Served
from tests.conftest import containers_of

pytestmark = pytest.mark.docker

BASE_CONFIG: dict[str, Any] = {
    "pool": {"images": {"python": 1}, "with_kernel": False},
    "quota": {"max_sessions": 60, "max_sessions_per_user": 60},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A dockerd restart stops every container on the machine: that test goes last of all."""
    items.sort(key=lambda item: item.get_closest_marker("restarts_docker") is not None)


@pytest.fixture
def start_server(docker_client: Any) -> Iterator[Callable[..., Served]]:
    """``start_server(**config)`` -> a running server; at the end every one is stopped and nothing is left."""
    started: list[Served] = []

    def start(**config: Any) -> Served:
        server = launcher.start({**BASE_CONFIG, **config})
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.stop()
        for name in containers_of(docker_client, server.state_dir):  # a killed server leaves them by design
            docker_client.containers.get(name).remove(force=True)
        server.remove_state()
